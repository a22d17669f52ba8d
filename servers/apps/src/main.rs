//! apps: the workload programs a process server runs, in one binary. The
//! start registers are `[pid, abi::process::START_MAGIC, arg]`; `arg` picks
//! the workload and its parameters (`abi::workload`):
//!
//! - bits 0..8: mode; 8..24: a; 24..40: b; 40..64: c.
//! - 1 FORKBENCH (a = rounds, b bit 0 = the machine runs under icount)
//! - 2 COW, 3 TREE (a = depth, b = width), 4 OOM, 5 CRASH, 6 EXEC,
//!   7 EXEC_TARGET (a = exit status), 8 MISC.
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

mod cow;
mod crash;
mod exec;
mod exec_target;
mod forkbench;
mod misc;
mod oom;
mod outcome;
mod region;
mod tree;

use abi::process::START_MAGIC;
use abi::workload;

use crate::outcome::{Failure, finish};

rt::entry!(main);

fn main(args: rt::StartArgs) -> ! {
    let [pid, magic, arg] = args.0;
    if magic != START_MAGIC {
        rt::println!("apps: FAILED: not started by a process server");
        rt::sys::thread_exit()
    }
    let (mode, a, b, _) = workload::decode(arg);
    // Parameters are 16 bits wide.
    let (a, b) = (a as u16, b as u16);
    match mode {
        workload::FORKBENCH => finish("forkbench", forkbench::run(a, b & workload::FORKBENCH_ICOUNT as u16 != 0)),
        workload::COW => finish("cow", cow::run()),
        workload::TREE => finish("tree", tree::run(a, b)),
        workload::OOM => finish("oom", oom::run()),
        workload::CRASH => finish("crash", crash::run()),
        workload::EXEC => finish("exec", exec::run()),
        workload::EXEC_TARGET => exec_target::run(a),
        workload::MISC => finish("misc", misc::run(pid)),
        mode => finish("apps", Err(Failure::new(126, "unknown mode").value(mode as i64))),
    }
}
