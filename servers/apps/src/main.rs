//! apps: the workload programs a process server runs, in one binary. The
//! start registers are `[pid, abi::process::START_MAGIC, arg]`; `arg` picks
//! the workload and its parameters (`abi::workload`):
//!
//! - bits 0..8: mode; 8..24: a; 24..40: b; 40..64: c.
//! - 1 FORKBENCH (a = rounds, b bit 0 = the machine runs under icount),
//!   then the page-fault latencies (`pagefault`)
//! - 2 COW, 3 TREE (a = depth, b = width), 4 OOM, 5 CRASH, 6 EXEC,
//!   7 EXEC_TARGET (a = exit status), 8 MISC.
//! - The experiment matrix's benchmarks, whose `c` bit 0 says the machine
//!   runs under icount (`abi::workload::BENCH_ICOUNT`): 9 COW_STORM
//!   (a = pages, b = rounds), 10 PARALLEL_FORK (a = rounds),
//!   11 FORKTREE_BENCH (a = depth, b = width, c bits 8.. = trees),
//!   12 SHARED_FORK and 13 SHARED_COW (a = pages, b = rounds).
//! - 14 FORKBOMB (a = 1: never stops until killed).
//!
//! Each workload prints `apps: NAME ok` or `apps: NAME FAILED: REASON` and
//! exits with 0 or a small positive status naming the failed check (listed
//! in each workload's module). Common statuses: 120 = kernel_info failed,
//! 126 = unknown mode. Started other than by a process server, it prints a
//! FAILED line and ends its thread.
//!
//! Processes have no heap: workloads use the stack, fixed arrays and pages
//! from `mmap` and `sbrk`.
#![no_std]
#![no_main]

mod bomb;
mod cow;
mod cow_kernel;
mod cow_storm;
mod crash;
mod exec;
mod exec_target;
mod forkbench;
mod forktree_bench;
mod measure;
mod misc;
mod oom;
mod outcome;
mod pagefault;
mod parallel_fork;
mod region;
mod server_heap;
mod shared_fork;
mod tree;

use abi::process::START_MAGIC;
use abi::workload;

use crate::outcome::{Failure, finish};
use crate::shared_fork::Contention;

rt::entry!(main);

fn main(args: rt::StartArgs) -> ! {
    let [pid, magic, arg] = args.0;
    if magic != START_MAGIC {
        rt::println!("apps: FAILED: not started by a process server");
        rt::sys::thread_exit()
    }
    let (mode, a, b, c) = workload::decode(arg);
    // Parameters are 16 bits wide.
    let (a, b) = (a as u16, b as u16);
    let icount = c & workload::BENCH_ICOUNT != 0;
    let trees = (c >> workload::TREE_ROUNDS_SHIFT) as u16;
    match mode {
        workload::FORKBENCH => finish("forkbench", forkbench::run(a, b & workload::FORKBENCH_ICOUNT as u16 != 0)),
        workload::COW => finish("cow", cow::run()),
        workload::TREE => finish("tree", tree::run(a, b)),
        workload::OOM => finish("oom", oom::run()),
        workload::CRASH => finish("crash", crash::run()),
        workload::EXEC => finish("exec", exec::run()),
        workload::EXEC_TARGET => exec_target::run(a),
        workload::MISC => finish("misc", misc::run(pid)),
        workload::COW_STORM => finish("cow_storm", cow_storm::run(a, b, icount)),
        workload::PARALLEL_FORK => finish("parallel_fork", parallel_fork::run(a, icount)),
        workload::FORKTREE_BENCH => finish("fork_tree", forktree_bench::run(a, b, trees, icount)),
        workload::SHARED_FORK => finish("shared_fork", shared_fork::run(Contention::Fork, a, b, icount)),
        workload::SHARED_COW => finish("shared_cow", shared_fork::run(Contention::Cow, a, b, icount)),
        workload::FORKBOMB => bomb::run(a != 0),
        workload::COW_KERNEL => finish("cow_kernel", cow_kernel::run(a != 0, b != 0)),
        mode => finish("apps", Err(Failure::new(126, "unknown mode").value(mode as i64))),
    }
}
