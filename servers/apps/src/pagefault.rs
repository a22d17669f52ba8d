//! LAT_PAGEFAULT: what one page fault costs, resolved, timed one at a time
//! (as lmbench's `lat_pagefault` does), for each kind of fault the pager
//! resolves:
//! - `zero`: the first touch of an anonymous page, which gets a fresh zeroed
//!   frame;
//! - `cow_copy`: a child's write to a page its parent still shares, which is
//!   copied;
//! - `cow_reuse`: a write to a copy-on-write page whose other holder has
//!   exited, which the uniqueness check finds ours alone: written in place.
//!
//! One line per kind, which the host parses (keep the format):
//! `pagefault kind=K faults=N mean_ns=.. min_ns=.. mean_instructions=..
//! copies_per_fault=.. reused_per_fault=.. switches_per_fault=..
//! flushes_per_fault=.. page_flushes_per_fault=.. ipis_per_fault=..`.
//! Each fault is the one write between two TSC reads; the counts come from
//! the process servers and the kernel around the faults (every CPU's).
//!
//! Exit statuses: 10 mmap failed, 11 fork failed, 12 the child failed,
//! 13 munmap failed, 14 stats failed, 15 no TLB counts.

use crate::measure::{self, Delta, OrDash, Ratio, Tlb, TlbPer, nanos, tsc};
use crate::outcome::{Failure, Outcome, expect_exit, finish_child};
use crate::region::Region;

/// Faults timed per forkbench round.
const FAULTS_PER_ROUND: u64 = 64;
/// The most faults of one kind.
const MAX_FAULTS: u64 = 4096;

/// Times `rounds * FAULTS_PER_ROUND` faults of each kind.
pub fn run(rounds: u64, icount: bool, tsc_hz: u64) -> Outcome {
    let faults = (rounds * FAULTS_PER_ROUND).min(MAX_FAULTS) as u32;
    let report = Report { faults, icount, tsc_hz };
    zero(&report)?;
    cow_copy(&report)?;
    cow_reuse(&report)
}

/// How the lines are printed.
struct Report {
    faults: u32,
    icount: bool,
    tsc_hz: u64,
}

/// The counters before a run of faults.
struct Before {
    stats: proto::ProcessStats,
    tlb: Tlb,
}

impl Report {
    fn before(&self) -> Result<Before, Failure> {
        Ok(Before { stats: measure::stats(14)?, tlb: Tlb::now(15)? })
    }

    /// Writes the first byte of each page of `region`, each write timed
    /// alone, and prints the line of `kind`.
    fn time_writes(&self, kind: &str, region: &Region) -> Outcome {
        let before = self.before()?;
        let (mut total, mut min) = (0u64, u64::MAX);
        for page in 0..self.faults {
            let start = tsc();
            region.write_byte(page, 0x5A);
            let cycles = tsc() - start;
            total += cycles;
            min = min.min(cycles);
        }
        let tlb = Tlb::now(15)?.since(&before.tlb);
        let delta = Delta::between(&before.stats, &measure::stats(14)?);
        let faults = u64::from(self.faults);
        rt::println!(
            "pagefault kind={kind} faults={faults} mean_ns={} min_ns={} mean_instructions={} copies_per_fault={} reused_per_fault={}{}",
            nanos(total, self.tsc_hz) / faults,
            nanos(min, self.tsc_hz),
            OrDash(self.icount.then_some(total / faults)),
            Ratio::of(delta.cow_copies, faults),
            Ratio::of(delta.cow_reused, faults),
            TlbPer(&tlb, faults, "fault"),
        );
        Ok(())
    }

    /// A region of `faults` pages, every one resident when `resident`.
    fn region(&self, resident: bool) -> Result<Region, Failure> {
        let region = Region::map(self.faults).map_err(|e| Failure::new(10, "mmap failed").error(e))?;
        if resident {
            region.touch(self.faults, 1);
        }
        Ok(region)
    }
}

fn unmap(region: Region) -> Outcome {
    region.unmap().map_err(|e| Failure::new(13, "munmap failed").error(e))
}

fn zero(report: &Report) -> Outcome {
    let region = report.region(false)?;
    report.time_writes("zero", &region)?;
    unmap(region)
}

/// The child writes; the parent holds every page meanwhile.
fn cow_copy(report: &Report) -> Outcome {
    let region = report.region(true)?;
    match rt::proc::fork() {
        Ok(0) => finish_child("pagefault cow_copy", report.time_writes("cow_copy", &region)),
        Ok(pid) => expect_exit(pid, 0, 12, "the writing child failed")?,
        Err(error) => return Err(Failure::new(11, "fork failed").error(error)),
    }
    unmap(region)
}

/// A child shares every page and exits; then the parent writes.
fn cow_reuse(report: &Report) -> Outcome {
    let region = report.region(true)?;
    match rt::proc::fork() {
        Ok(0) => rt::proc::exit(0),
        Ok(pid) => expect_exit(pid, 0, 12, "the sharing child failed")?,
        Err(error) => return Err(Failure::new(11, "fork failed").error(error)),
    }
    report.time_writes("cow_reuse", &region)?;
    unmap(region)
}
