//! PARALLEL_FORK: forks on every CPU at once. The parent forks one worker
//! on each CPU's process server (`fork_on`). Each worker maps
//! [`WORKER_PAGES`] pages of its own, writes them, and runs `rounds` rounds
//! of fork + the child writes [`CHILD_WRITES`] of them + exit + wait, while
//! the other workers do the same on their CPUs; the parent waits for every
//! worker. A first pass with no rounds times the workers' start, mapping
//! and exit alone, so the difference is the forks'. One line, which the
//! host parses (keep the format):
//!
//! `parallel_fork cpus=N rounds=R mean_instructions_per_fork=..
//! mean_ns_per_fork=.. mem_ipc_per_fork=.. cow_copies_per_fork=..`
//!
//! `mean_instructions_per_fork` is (pass with rounds - pass without) /
//! (N × R), printed only when `c` has `abi::workload::BENCH_ICOUNT`. Under
//! icount the TSC is one clock that every CPU's instructions advance, so
//! this is what the whole machine executed per fork, the servers' work
//! included: perfect scaling keeps it flat as CPUs are added. Without
//! icount, `mean_ns_per_fork` is the same quotient of wall time.
//!
//! Exit statuses: 1 a worker's mmap failed, 2 fork failed, 3 a worker did
//! not exit 0 (detail: its status), 4 stats failed, 5 no TSC frequency,
//! 120 kernel_info. A worker's: 1 mmap failed, 2 fork failed, 3 its child
//! did not exit 0.

use crate::forkbench::fork_once;
use crate::measure::{self, Delta, OrDash, Ratio, nanos, tsc};
use crate::outcome::{Failure, Outcome, cpus, expect_exit, finish_child};
use crate::region::Region;

/// Resident pages of each worker.
const WORKER_PAGES: u32 = 256;
/// Pages each worker's child writes.
const CHILD_WRITES: u32 = 16;
/// Most workers (CPUs) used; the kernel's pools bound the processes alive
/// at once to about 28, and each worker has one child at a time.
pub const MAX_WORKERS: usize = 12;

pub fn run(rounds: u16, icount: bool) -> Outcome {
    let rounds = u64::from(rounds.max(1));
    let tsc_hz = measure::tsc_hz(5)?;
    let cpus = usize::from(cpus()?).min(MAX_WORKERS);
    let setup = pass(cpus, 0)?;
    let before = measure::stats(4)?;
    let total = pass(cpus, rounds)?;
    let delta = Delta::between(&before, &measure::stats(4)?);
    let forks = cpus as u64 * rounds;
    let per_fork = total.saturating_sub(setup) / forks;
    rt::println!(
        "parallel_fork cpus={cpus} rounds={rounds} mean_instructions_per_fork={} mean_ns_per_fork={} \
         mem_ipc_per_fork={} cow_copies_per_fork={}",
        OrDash(icount.then_some(per_fork)),
        nanos(per_fork, tsc_hz),
        Ratio::of(delta.mem_messages, forks),
        Ratio::of(delta.cow_copies, forks),
    );
    Ok(())
}

/// One worker on each of the first `cpus` CPUs, each running `rounds`
/// rounds; the TSC cycles from the first fork to the last wait.
fn pass(cpus: usize, rounds: u64) -> Result<u64, Failure> {
    on_every_cpu(cpus, "parallel_fork worker", || worker(rounds))
}

/// Forks a worker onto each of the first `cpus` CPUs' servers, each running
/// `work` at once, and waits for every one: the TSC cycles from the first
/// fork to the last wait.
pub fn on_every_cpu(cpus: usize, who: &str, work: impl Fn() -> Outcome) -> Result<u64, Failure> {
    let start = tsc();
    let mut workers = [0u32; MAX_WORKERS];
    let mut forked = 0;
    let mut failure = None;
    for (cpu, worker_pid) in workers.iter_mut().enumerate().take(cpus.min(MAX_WORKERS)) {
        // `cpu` < MAX_WORKERS, so the conversion is exact.
        match rt::proc::fork_on(cpu as u16) {
            Ok(0) => finish_child(who, work()),
            Ok(pid) => {
                *worker_pid = pid;
                forked += 1;
            }
            Err(error) => {
                failure = Some(Failure::new(2, "fork_on failed").error(error));
                break;
            }
        }
    }
    // Wait for every worker forked, even after a failure, so none outlives us.
    for &pid in &workers[..forked] {
        if let Err(error) = expect_exit(pid, 0, 3, "a worker failed") {
            failure.get_or_insert(error);
        }
    }
    match failure {
        Some(failure) => Err(failure),
        None => Ok(tsc() - start),
    }
}

fn worker(rounds: u64) -> Outcome {
    let region = Region::map(WORKER_PAGES).map_err(|e| Failure::new(1, "mmap failed").error(e))?;
    region.touch(WORKER_PAGES, 1);
    for _ in 0..rounds {
        fork_once(Some(&region), CHILD_WRITES)?;
    }
    // Exit frees the region.
    Ok(())
}
