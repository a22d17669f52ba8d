//! FORKBENCH: the cost of fork + exit + wait as the parent's resident
//! memory and the child's writes grow. For each shape it prints one line
//! (`fork pages=P child_writes=W rounds=R mean_ns=.. min_ns=..
//! mean_instructions=.. mem_ipc_per_fork=.. ref_ops_per_ipc=..
//! cow_copies_per_fork=.. copies_avoided_per_fork=.. ref_ops_per_fork=..
//! direct_per_fork=.. cancelled_per_fork=.. switches_per_fork=..
//! flushes_per_fork=.. page_flushes_per_fork=.. ipis_per_fork=..`) that
//! init and the host parse: keep the format. Then: reference operations
//! sent to the memory server, the deferred manager's count-1 stores and
//! cancelled increments (each a change that sent no message), the kernel's
//! address-space switches, full and single-page TLB flushes and shootdown
//! IPIs per fork (every CPU's), and `phase_NAME=` per
//! `proto::Phase`: the process servers' TSC cycles (instructions under
//! icount) per fork in that phase, the breakdown of where a fork goes. The
//! breakdown comes from as many forks again, timed by the servers
//! (`TimePhases`), so the figures before it do not pay for the timing.
//! After the shapes, the page-fault latencies (`pagefault`).
//!
//! Exit statuses: 1 mmap failed, 2 fork failed, 3 a child did not exit 0,
//! 4 stats failed, 5 no TSC frequency, 6 munmap failed, 7 no TLB counts,
//! 8 phase timing refused;
//! `pagefault`'s from 10.

use proto::ProcessStats;

use crate::measure::{self, Delta, OrDash, PhasesPerFork, Ratio, Tlb, TlbPer, nanos, tsc};
use crate::outcome::{Failure, Outcome, expect_exit};
use crate::region::Region;

/// (resident pages of the parent, pages the child writes).
const SHAPES: [(u32, u32); 6] = [(0, 0), (16, 0), (256, 0), (4096, 0), (256, 16), (4096, 256)];

/// `rounds` measured forks per shape (at least 1); under icount the TSC
/// counts instructions, which the line then reports too.
pub fn run(rounds: u16, icount: bool) -> Outcome {
    let rounds = u64::from(rounds.max(1));
    let tsc_hz = measure::tsc_hz(5)?;
    for (pages, writes) in SHAPES {
        shape(pages, writes, rounds, icount, tsc_hz)?;
    }
    crate::pagefault::run(rounds, icount, tsc_hz)
}

fn shape(pages: u32, writes: u32, rounds: u64, icount: bool, tsc_hz: u64) -> Outcome {
    let region = if pages == 0 {
        None
    } else {
        let region = Region::map(pages).map_err(|e| Failure::new(1, "mmap failed").error(e))?;
        region.touch(pages, 1);
        Some(region)
    };
    // Warm-up: the first fork of a shape pays for first-touch costs.
    fork_once(region.as_ref(), writes)?;
    let before = stats()?;
    let tlb_before = Tlb::now(7)?;
    let mut total = 0u64;
    let mut min = u64::MAX;
    for _ in 0..rounds {
        let cycles = fork_once(region.as_ref(), writes)?;
        total += cycles;
        min = min.min(cycles);
    }
    let tlb = Tlb::now(7)?.since(&tlb_before);
    let after = stats()?;
    let delta = Delta::between(&before, &after);
    let phases = timed_phases(region.as_ref(), writes, rounds)?;
    rt::println!(
        "fork pages={pages} child_writes={writes} rounds={rounds} mean_ns={} min_ns={} mean_instructions={} \
         mem_ipc_per_fork={} ref_ops_per_ipc={} cow_copies_per_fork={} copies_avoided_per_fork={} ref_ops_per_fork={} \
         direct_per_fork={} cancelled_per_fork={}{}{}",
        nanos(total, tsc_hz) / rounds,
        nanos(min, tsc_hz),
        OrDash(icount.then_some(total / rounds)),
        Ratio::of(delta.mem_messages, rounds),
        Ratio::of(delta.ref_ops, delta.ref_messages),
        Ratio::of(delta.cow_copies, rounds),
        Ratio::of(delta.cow_reused, rounds),
        Ratio::of(delta.ref_ops, rounds),
        Ratio::of(delta.direct_stores, rounds),
        Ratio::of(delta.cancelled, rounds),
        TlbPer(&tlb, rounds, "fork"),
        PhasesPerFork(&phases, rounds),
    );
    if let Some(region) = region {
        region.unmap().map_err(|e| Failure::new(6, "munmap failed").error(e))?;
    }
    Ok(())
}

/// One fork whose child writes the first `writes` pages of `region` and
/// exits; the TSC cycles from before the fork to after the wait. Its
/// failures: 2 fork failed, 3 the child exited with another status.
pub fn fork_once(region: Option<&Region>, writes: u32) -> Result<u64, Failure> {
    let start = tsc();
    match rt::proc::fork() {
        Ok(0) => {
            if let Some(region) = region {
                region.touch(writes, 2);
            }
            rt::proc::exit(0)
        }
        Ok(pid) => {
            expect_exit(pid, 0, 3, "child exited with another status")?;
            Ok(tsc() - start)
        }
        Err(error) => Err(Failure::new(2, "fork failed").error(error)),
    }
}

/// The servers' cycles per phase over `rounds` more forks, timed.
fn timed_phases(region: Option<&Region>, writes: u32, rounds: u64) -> Result<[u64; proto::Phase::COUNT], Failure> {
    let timing = |on| rt::proc::time_phases(on).map_err(|e| Failure::new(8, "phase timing refused").error(e));
    timing(true)?;
    let before = stats()?;
    let forks = (0..rounds).try_for_each(|_| fork_once(region, writes).map(|_| ()));
    let after = stats();
    timing(false)?;
    forks?;
    Ok(Delta::between(&before, &after?).phases)
}

fn stats() -> Result<ProcessStats, Failure> {
    measure::stats(4)
}
