//! init, the root task: it receives every boot capability. In self-test mode
//! it runs the kernel's user-mode test suite (`tests/`) and reports through
//! the serial markers; otherwise it greets and powers off. Either way it ends
//! the run through the debug-exit port, with success or failure.
#![no_std]
#![no_main]

extern crate alloc;

mod bench;
mod env;
mod memory_server;
mod process_servers;
mod supervisor;
mod system;
mod tests;
mod workloads;

use abi::cap::boot_slot;
use abi::exit::GuestExit;
use abi::selftest::{
    INIT_FLAG_BENCH_CONTENTION, INIT_FLAG_BENCH_FORK, INIT_FLAG_BENCH_IPC, INIT_FLAG_BENCH_MATRIX, INIT_FLAG_BENCH_QUICK,
    INIT_FLAG_DEMO_IPC, INIT_FLAG_ICOUNT, INIT_FLAG_SELFTEST,
};
use abi::workload;

use env::Env;
use system::System;

rt::entry!(main);

/// init's heap: 1 MiB.
const HEAP_PAGES: u64 = 256;

fn main(args: rt::StartArgs) -> ! {
    let [ram_ranges, flags, ipc_buffer] = args.0;
    let env = Env::new(ram_ranges, ipc_buffer, flags);
    if rt::heap::init(&env.pages, HEAP_PAGES).is_err() {
        rt::println!("init: no memory for a heap");
        power_off(GuestExit::Failure);
    }
    rt::println!("init: hello from user mode ({ram_ranges} RAM ranges, {} CPUs)", env.cpus);
    let strategy = abi::selftest::strategy_of(flags);
    let passed = if let Some(plan) = abi::selftest::FuzzPlan::of(flags) {
        tests::fuzz::campaign(&env, plan)
    } else if flags & INIT_FLAG_SELFTEST != 0 {
        tests::run(&env, strategy, flags & abi::selftest::INIT_FLAG_SYSTEM_ONLY == 0)
    } else if flags & INIT_FLAG_BENCH_IPC != 0 {
        bench::ipc(&env)
    } else if flags & INIT_FLAG_BENCH_FORK != 0 {
        bench::fork(&env, strategy, flags & INIT_FLAG_ICOUNT != 0)
    } else if flags & INIT_FLAG_BENCH_MATRIX != 0 {
        bench::matrix(&env, strategy, flags & INIT_FLAG_ICOUNT != 0, flags & INIT_FLAG_BENCH_QUICK != 0)
    } else if flags & INIT_FLAG_BENCH_CONTENTION != 0 {
        bench::contention(&env, strategy, flags & INIT_FLAG_ICOUNT != 0, flags & INIT_FLAG_BENCH_QUICK != 0)
    } else {
        demo(&env, strategy, flags)
    };
    power_off(if passed { GuestExit::Success } else { GuestExit::Failure })
}

/// The default boot: IPC round trips with a server thread on init's CPU
/// and on another, then (with `system`) the whole system: a short
/// forkbench and the memory server's counts; all of it for `--trace` to
/// record.
fn demo(env: &Env, strategy: abi::process::Strategy, flags: u64) -> bool {
    let system = flags & INIT_FLAG_DEMO_IPC == 0;
    let _ = rt::sys::trace_name(boot_slot::THREAD, "init");
    for cpu in [0, env.other_cpu()] {
        match tests::ipc::round_trips(env, cpu, 100) {
            Ok(cycles) => rt::println!("init: 100 IPC round trips with a server on cpu {cpu}, {cycles} TSC cycles each"),
            Err(reason) => {
                rt::println!("init: IPC demo failed: {reason}");
                return false;
            }
        }
    }
    if !system {
        return flush_trace();
    }
    let system = match System::start(env, strategy) {
        Ok(system) => system,
        Err(reason) => {
            rt::println!("init: the system did not start: {reason}");
            return false;
        }
    };
    rt::println!("init: memory and process servers up on {} CPUs, strategy {}", system.cpus, strategy.name());
    let forkbench = workload::encode(workload::FORKBENCH, 3, 0, 0);
    let status = match abi::selftest::swap_of(flags) {
        None => system.run(0, "apps", forkbench),
        Some(target) => swap_while_running(&system, env.other_cpu(), forkbench, target),
    };
    match system.settled_memory() {
        Ok(stats) => rt::println!(
            "init: memory: {} frames free, {} owned, {} shared; {} reference batches, {} operations",
            stats.free,
            stats.owned,
            stats.shared,
            stats.batches,
            stats.ops_in_batches
        ),
        Err(error) => rt::println!("init: no memory stats: {error}"),
    }
    flush_trace() && status == Ok(0)
}

/// Runs `apps` with `arg` on `cpu`'s server and swaps the strategy to
/// `target` while it runs (`swap=NAME`); its exit status.
fn swap_while_running(system: &System, cpu: u16, arg: u64, target: abi::process::Strategy) -> Result<i32, proto::ProtoError> {
    let pid = system.spawn(cpu, "apps", arg)?;
    tests::pause_for(500_000_000);
    match system.swap(target) {
        Ok(()) => rt::println!("init: swapped the strategy to {} live, forkbench running", target.name()),
        Err(error) => rt::println!("init: the live swap to {} failed: {error}", target.name()),
    }
    system.wait(cpu, pid)
}

/// Sends the trace records still in the kernel's rings (when tracing).
fn flush_trace() -> bool {
    if let Some(sent) = rt::sys::trace_flush(boot_slot::CONSOLE_PORTS).ok().filter(|&n| n > 0) {
        rt::println!("init: flushed {sent} trace records");
    }
    true
}

fn power_off(how: GuestExit) -> ! {
    let _ = rt::sys::port_out(boot_slot::EXIT_PORT, abi::exit::DEBUG_EXIT_PORT, 4, u64::from(how.code()));
    rt::println!("init: the exit port did not end the machine");
    rt::sys::thread_exit()
}
