//! init's benchmark modes, each chosen by a kernel command-line word and
//! run by a `cargo xtask bench` suite: IPC round trips (`bench=ipc`),
//! forkbench (`bench=fork`), the experiment matrix's workloads
//! (`bench=matrix`) and the contention workloads (`bench=contention`). Each prints a `[bench] SUITE ...` header that the host
//! checks, then the result lines (its own, or those of the `apps`
//! workloads it runs as its children). The host parses these lines: keep
//! their format.

use abi::process::Strategy;
use abi::selftest::BENCH_MARKER;
use abi::workload::{self, encode};

use crate::env::Env;
use crate::system::System;
use crate::tests;

/// `cargo xtask bench ipc`: call/reply round trips with a server on the
/// same CPU and on another, after a warm-up: the mean, then in a second run
/// the median and least of the round trips timed one by one. Each line also
/// gives, over the
/// measured rounds, the Calls and ReplyRecvs that took the fast path and
/// the TSC cycles the kernel lock was held (0 unless the kernel times
/// holds: `lockstat`) and waited for.
pub fn ipc(env: &Env) -> bool {
    use abi::syscall::{IpcPath, KERNEL_INFO_IPC_PATH, KERNEL_INFO_LOCK_HOLD, KERNEL_INFO_LOCK_WAIT};
    const ROUNDS: u64 = 10_000;
    let info = |what| rt::sys::kernel_info(what).unwrap_or(0);
    let counters = || [KERNEL_INFO_IPC_PATH + IpcPath::Fast as u64, KERNEL_INFO_LOCK_HOLD, KERNEL_INFO_LOCK_WAIT].map(info);
    let tsc_hz = info(abi::syscall::KERNEL_INFO_TSC_HZ);
    for (name, cpu) in [("same_cpu", 0), ("cross_cpu", env.other_cpu())] {
        let mut before = [0; 3];
        let measured = tests::ipc::round_trips(env, cpu, 100).and_then(|_| {
            before = counters();
            tests::ipc::round_trips(env, cpu, ROUNDS)
        });
        let after = counters();
        let [fast, hold, wait] = [0, 1, 2].map(|i| after[i].wrapping_sub(before[i]));
        // Each round trip timed, in a run of its own (the mean above is
        // measured without the extra clock reads).
        let measured = measured.and_then(|mean| tests::ipc::round_trip_spread(env, cpu, ROUNDS).map(|spread| (mean, spread)));
        match measured {
            Ok((mean, (median, min))) => rt::println!(
                "{BENCH_MARKER} ipc {name} rounds={ROUNDS} mean_tsc={mean} median_tsc={median} min_tsc={min} tsc_hz={tsc_hz} cpus={} fast={fast} lock_hold_tsc={hold} lock_wait_tsc={wait}",
                env.cpus
            ),
            Err(reason) => {
                rt::println!("init: IPC benchmark {name} failed: {reason}");
                return false;
            }
        }
    }
    true
}

/// `cargo xtask bench fork`: forkbench under the booted strategy.
pub fn fork(env: &Env, strategy: Strategy, icount: bool) -> bool {
    const ROUNDS: u64 = 20;
    let Some(system) = start(env, strategy) else { return false };
    rt::println!("{BENCH_MARKER} fork strategy={} cpus={}", strategy.name(), system.cpus);
    let flags = if icount { workload::FORKBENCH_ICOUNT } else { 0 };
    system.run(0, "apps", encode(workload::FORKBENCH, ROUNDS, flags, 0)) == Ok(0)
}

/// The matrix's parameters: full and quick.
struct Sizes {
    forkbench_rounds: u64,
    storm_pages: u64,
    storm_rounds: u64,
    tree_depth: u64,
    tree_width: u64,
    trees: u64,
    parallel_rounds: u64,
}

const FULL: Sizes =
    Sizes { forkbench_rounds: 20, storm_pages: 1024, storm_rounds: 10, tree_depth: 2, tree_width: 3, trees: 5, parallel_rounds: 20 };
const QUICK: Sizes =
    Sizes { forkbench_rounds: 5, storm_pages: 1024, storm_rounds: 3, tree_depth: 2, tree_width: 3, trees: 2, parallel_rounds: 5 };

/// `cargo xtask bench matrix`: every workload of the experiment matrix
/// under the booted strategy, one after the other (`run_suite`).
pub fn matrix(env: &Env, strategy: Strategy, icount: bool, quick: bool) -> bool {
    let sizes = if quick { &QUICK } else { &FULL };
    let Some(system) = start(env, strategy) else { return false };
    rt::println!("{BENCH_MARKER} matrix strategy={} cpus={} quick={}", strategy.name(), system.cpus, u8::from(quick));
    let before = system.settled_memory();
    let flags = if icount { workload::BENCH_ICOUNT } else { 0 };
    let forkbench_flags = if icount { workload::FORKBENCH_ICOUNT } else { 0 };
    let runs = [
        ("forkbench", encode(workload::FORKBENCH, sizes.forkbench_rounds, forkbench_flags, 0)),
        ("cow_storm", encode(workload::COW_STORM, sizes.storm_pages, sizes.storm_rounds, flags)),
        (
            "fork_tree",
            encode(workload::FORKTREE_BENCH, sizes.tree_depth, sizes.tree_width, flags | sizes.trees << workload::TREE_ROUNDS_SHIFT),
        ),
        ("parallel_fork", encode(workload::PARALLEL_FORK, sizes.parallel_rounds, 0, flags)),
    ];
    run_suite(&system, "matrix", &runs, before)
}

/// `cargo xtask bench contention`: every CPU counting the same frames at
/// once, forks (SHARED_FORK) and copy-on-write faults (SHARED_COW).
pub fn contention(env: &Env, strategy: Strategy, icount: bool, quick: bool) -> bool {
    const PAGES: u64 = 256;
    let (fork_rounds, cow_rounds) = if quick { (3, 1) } else { (10, 4) };
    let Some(system) = start(env, strategy) else { return false };
    rt::println!("{BENCH_MARKER} contention strategy={} cpus={} quick={}", strategy.name(), system.cpus, u8::from(quick));
    let before = system.settled_memory();
    let flags = if icount { workload::BENCH_ICOUNT } else { 0 };
    let runs = [
        ("shared_fork", encode(workload::SHARED_FORK, PAGES, fork_rounds, flags)),
        ("shared_cow", encode(workload::SHARED_COW, PAGES, cow_rounds, flags)),
    ];
    run_suite(&system, "contention", &runs, before)
}

/// Runs each workload as init's child on CPU 0's server. A failed one is
/// reported (`[bench] SUITE failed workload=NAME status=S`) and the others
/// still run; the last lines are the share of time CPUs waited for the
/// kernel lock (`[bench] SUITE lock ...`), the memory server's counts before
/// and after (`[bench] SUITE memory ...`, every frame must be back) and, after
/// the IPC trace's remaining records are sent, `[bench] SUITE done
/// failed=N`.
fn run_suite(system: &System, suite: &str, runs: &[(&str, u64)], before: Result<proto::MemoryStats, proto::ProtoError>) -> bool {
    let lock_wait = || {
        let info = |what| rt::sys::kernel_info(what).unwrap_or(0);
        (info(abi::syscall::KERNEL_INFO_LOCK_WAIT), info(abi::syscall::KERNEL_INFO_LOCK_WAITS), tests::tsc())
    };
    let lock_before = lock_wait();
    let mut failed = 0;
    for &(name, arg) in runs {
        match system.run(0, "apps", arg) {
            Ok(0) => {}
            Ok(status) => {
                rt::println!("{BENCH_MARKER} {suite} failed workload={name} status={status}");
                failed += 1;
            }
            Err(error) => {
                rt::println!("{BENCH_MARKER} {suite} failed workload={name} error={error:?}");
                failed += 1;
            }
        }
    }
    let lock_after = lock_wait();
    rt::println!(
        "{BENCH_MARKER} {suite} lock wait_tsc={} waits={} elapsed_tsc={} cpus={}",
        lock_after.0.wrapping_sub(lock_before.0),
        lock_after.1.wrapping_sub(lock_before.1),
        lock_after.2.wrapping_sub(lock_before.2),
        system.cpus
    );
    let after = system.settled_memory();
    match (before, after) {
        (Ok(before), Ok(after)) => {
            // The servers' heap counts as free: its frames are counted
            // apart, and never come back.
            rt::println!(
                "{BENCH_MARKER} {suite} memory free_before={} free_after={} owned={} shared={}",
                before.free + before.heap,
                after.free + after.heap,
                after.owned,
                after.shared
            );
            if !crate::system::same_frames(&before, &after) {
                failed += 1;
            }
        }
        _ => {
            rt::println!("init: no memory stats");
            failed += 1;
        }
    }
    // A traced boot: what the idle CPUs have not drained yet (all of it on
    // one CPU, which is never idle while the workloads run).
    if let Some(sent) = rt::sys::trace_flush(abi::cap::boot_slot::CONSOLE_PORTS).ok().filter(|&n| n > 0) {
        rt::println!("init: flushed {sent} trace records");
    }
    rt::println!("{BENCH_MARKER} {suite} done failed={failed}");
    failed == 0
}

/// Starts the memory and process servers under `strategy`; `None` (after
/// saying why) if they did not start.
fn start(env: &Env, strategy: Strategy) -> Option<alloc::boxed::Box<System<'_>>> {
    System::start(env, strategy).inspect_err(|reason| rt::println!("init: the system did not start: {reason}")).ok()
}
