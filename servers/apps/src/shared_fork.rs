//! SHARED_FORK and SHARED_COW: every CPU counting the same frames at once.
//! The parent maps `pages` pages and writes each; then one worker per CPU,
//! forked onto that CPU's server, so every worker holds every parent page
//! copy-on-write, and all of them work at the same time:
//! - SHARED_FORK: each worker runs `rounds` rounds of fork + its child
//!   writes [`CHILD_WRITES`] pages + exit + wait, so every CPU's server
//!   counts the same parent frames up and down concurrently;
//! - SHARED_COW: each worker writes every page and exits: a copy-on-write
//!   fault on a frame all the others hold too, whose count every CPU drops
//!   at once; `rounds` such passes.
//!
//! A pass whose workers do no work times their fork and exit alone; the
//! difference is the work's. One line, which the host parses (keep it):
//!
//! `shared_fork cpus=N pages=P rounds=R mean_instructions_per_op=..
//! mean_ns_per_op=.. mem_ipc_per_op=.. cow_copies_per_op=..`
//! (`shared_cow ...` the same), an op being a worker's fork round or a
//! worker's fault. Instructions (under icount, `c` has
//! `abi::workload::BENCH_ICOUNT`) are the whole machine's, on the one clock
//! every CPU advances; wall nanoseconds are what shows contention.
//!
//! Exit statuses: 1 mmap failed, 2 fork failed, 3 a worker did not exit 0,
//! 4 stats failed, 5 no TSC frequency, 7 no pages.

use crate::forkbench::fork_once;
use crate::measure::{self, Delta, OrDash, Ratio, nanos};
use crate::outcome::{Failure, Outcome, check, cpus};
use crate::parallel_fork::{MAX_WORKERS, on_every_cpu};
use crate::region::Region;

/// Pages each SHARED_FORK worker's child writes.
const CHILD_WRITES: u32 = 16;

#[derive(Clone, Copy)]
pub enum Contention {
    Fork,
    Cow,
}

impl Contention {
    fn name(self) -> &'static str {
        match self {
            Contention::Fork => "shared_fork",
            Contention::Cow => "shared_cow",
        }
    }
}

pub fn run(kind: Contention, pages: u16, rounds: u16, icount: bool) -> Outcome {
    check(pages > 0, 7, "no pages")?;
    let (pages, rounds) = (u32::from(pages), u64::from(rounds.max(1)));
    let tsc_hz = measure::tsc_hz(5)?;
    let cpus = usize::from(cpus()?).min(MAX_WORKERS);
    let region = Region::map(pages).map_err(|e| Failure::new(1, "mmap failed").error(e))?;
    region.touch(pages, 1);
    let who = kind.name();
    let (work, delta, ops) = match kind {
        Contention::Fork => {
            let idle = on_every_cpu(cpus, who, || Ok(()))?;
            let before = measure::stats(4)?;
            let busy = on_every_cpu(cpus, who, || (0..rounds).try_for_each(|_| fork_once(Some(&region), CHILD_WRITES).map(|_| ())))?;
            let delta = Delta::between(&before, &measure::stats(4)?);
            (busy.saturating_sub(idle), delta, cpus as u64 * rounds)
        }
        Contention::Cow => {
            let mut idle = 0;
            for _ in 0..rounds {
                idle += on_every_cpu(cpus, who, || Ok(()))?;
            }
            let before = measure::stats(4)?;
            let mut busy = 0;
            for _ in 0..rounds {
                busy += on_every_cpu(cpus, who, || {
                    region.touch(pages, 2);
                    Ok(())
                })?;
            }
            let delta = Delta::between(&before, &measure::stats(4)?);
            (busy.saturating_sub(idle), delta, cpus as u64 * rounds * u64::from(pages))
        }
    };
    let per_op = work / ops;
    rt::println!(
        "{who} cpus={cpus} pages={pages} rounds={rounds} mean_instructions_per_op={} mean_ns_per_op={} mem_ipc_per_op={} \
         cow_copies_per_op={}",
        OrDash(icount.then_some(per_op)),
        nanos(per_op, tsc_hz),
        Ratio::of(delta.mem_messages, ops),
        Ratio::of(delta.cow_copies, ops),
    );
    Ok(())
}
