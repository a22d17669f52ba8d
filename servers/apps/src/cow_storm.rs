//! COW_STORM: a copy-on-write fault storm. The parent maps `pages` pages
//! and writes each. Each round it forks; the child writes every page (one
//! copy-on-write fault and one copy each) and exits while the parent waits.
//! Quiet rounds, whose child writes nothing, time fork + exit + wait alone,
//! so the difference is what the faults cost, the frees of the copies
//! included. One line, which the host parses (keep the format):
//!
//! `cow_storm pages=P rounds=R mean_instructions=.. per_fault_instructions=..
//! mean_ns=.. mem_ipc_per_fork=.. cow_copies_per_fork=.. copies_avoided_per_fork=..`
//!
//! - `mean_instructions`: a storm round, from before the fork to after the
//!   wait; `per_fault_instructions`: (storm round - quiet round) / pages.
//!   Both are TSC deltas, printed only when `c` has `abi::workload::BENCH_ICOUNT`
//!   (the TSC then counts instructions), `-` otherwise.
//! - The counters are per storm round, from the process servers' stats.
//!
//! Exit statuses: 1 mmap failed, 2 fork failed, 3 a child did not exit 0,
//! 4 stats failed, 5 no TSC frequency, 6 munmap failed, 7 no pages.

use crate::forkbench::fork_once;
use crate::measure::{self, Delta, OrDash, Ratio, nanos};
use crate::outcome::{Failure, Outcome, check};
use crate::region::Region;

pub fn run(pages: u16, rounds: u16, icount: bool) -> Outcome {
    check(pages > 0, 7, "no pages")?;
    let (pages, rounds) = (u32::from(pages), u64::from(rounds.max(1)));
    let tsc_hz = measure::tsc_hz(5)?;
    let region = Region::map(pages).map_err(|e| Failure::new(1, "mmap failed").error(e))?;
    region.touch(pages, 1);
    // Warm-up: the first fork of the parent's pages differs (they are not
    // yet counted as shared under every strategy).
    fork_once(Some(&region), 0)?;
    fork_once(Some(&region), pages)?;
    let mut quiet = 0u64;
    for _ in 0..rounds {
        quiet += fork_once(Some(&region), 0)?;
    }
    let before = measure::stats(4)?;
    let mut storm = 0u64;
    for _ in 0..rounds {
        storm += fork_once(Some(&region), pages)?;
    }
    let delta = Delta::between(&before, &measure::stats(4)?);
    let (storm, quiet) = (storm / rounds, quiet / rounds);
    rt::println!(
        "cow_storm pages={pages} rounds={rounds} mean_instructions={} per_fault_instructions={} mean_ns={} \
         mem_ipc_per_fork={} cow_copies_per_fork={} copies_avoided_per_fork={}",
        OrDash(icount.then_some(storm)),
        OrDash(icount.then_some(storm.saturating_sub(quiet) / u64::from(pages))),
        nanos(storm, tsc_hz),
        Ratio::of(delta.mem_messages, rounds),
        Ratio::of(delta.cow_copies, rounds),
        Ratio::of(delta.cow_reused, rounds),
    );
    region.unmap().map_err(|e| Failure::new(6, "munmap failed").error(e))
}
