//! The kernel's user-mode test suite, run by init in self-test mode. Each
//! test prints `[selftest] pass|fail NAME` (names and order in
//! `abi::selftest::USER_TESTS`); the last line is `[selftest] done`.

pub mod authority;
pub mod caps;
pub mod crash;
pub mod cycles;
pub mod faults;
pub mod fuzz;
pub mod fuzz_calls;
pub mod fuzz_partners;
pub mod hostile_memory;
pub mod ipc;
pub mod ipc_paths;
pub mod memory;
pub mod memserver;
pub mod pools;
pub mod process;
pub mod resources;
pub mod revoke_race;
pub mod rights;
pub mod syscalls;
pub mod threads;

use abi::selftest::{MARKER, SYSTEM_TESTS, USER_TESTS};
use abi::syscall::SysError;

use crate::env::Env;
use crate::system::System;
use crate::workloads::WORKLOADS;

/// A failed check, with what was expected.
pub type TestResult = Result<(), &'static str>;

/// A named test.
type Test = (&'static str, fn(&Env) -> TestResult);

const TESTS: [Test; 44] = [
    ("user_unknown_syscall", syscalls::unknown_syscall),
    ("user_bad_pointer", syscalls::bad_pointer),
    ("user_bad_length", syscalls::bad_length),
    ("user_heap", syscalls::heap),
    ("thread_lifecycle", threads::lifecycle),
    ("preemption", threads::preemption),
    ("ipc_same_cpu", ipc::same_cpu),
    ("ipc_cross_cpu", ipc::cross_cpu),
    ("ipc_payload_and_cap_transfer", ipc::payload_and_cap_transfer),
    ("ipc_fast_path", ipc_paths::fast_path),
    ("ipc_fallbacks", ipc_paths::fallbacks),
    ("reply_object", ipc::reply_object),
    ("notification", ipc::notification),
    ("irq_timer", ipc::irq_timer),
    ("cap_rights", caps::rights),
    ("cap_rights_matrix", rights::matrix),
    ("cap_badge", caps::badge),
    ("cap_revoke", caps::revoke),
    ("memory_map", memory::map),
    ("memory_remap", memory::remap),
    ("tlb_shootdown", memory::shootdown),
    ("idle_cpu_shootdown", memory::idle_cpu_shootdown),
    ("phys_range_carve", memory::carve),
    ("spawn_program", process::spawn_program),
    ("memory_server", memserver::memory_server),
    ("fault_delivery", faults::delivery),
    ("fault_kill", faults::kill),
    ("kernel_pool_exhaustion", caps::pool_exhaustion),
    ("pools_from_ram", pools::sized_from_ram),
    ("protect_bounded", authority::protect_bounded),
    ("priority_ceiling", authority::priority_ceiling),
    ("reply_grant", authority::reply_grant),
    ("exit_reported", authority::exit_reported),
    ("dead_server_releases_caller", authority::dead_server_releases_caller),
    ("trace_drain_race", authority::trace_drain_race),
    ("privileges", authority::privileges),
    ("allowance", resources::allowance),
    ("cycle_reclaimed", resources::cycle_reclaimed),
    ("cycle_member_stops", cycles::reclaimed_when_member_stops),
    ("cycle_fault_endpoint", cycles::fault_endpoint_inside),
    ("cycle_dead_beside_live", cycles::dead_beside_live),
    ("revoke_bound", resources::revoke_bound),
    ("revoke_race", revoke_race::copies_during_revoke),
    ("syscall_fuzz", fuzz::run),
];

/// Runs every user test (when `user_tests`), then starts the system and
/// runs its tests; true when all passed.
pub fn run(env: &Env, strategy: abi::process::Strategy, user_tests: bool) -> bool {
    let mut failed = 0;
    for (index, (name, test)) in TESTS.iter().enumerate().filter(|_| user_tests) {
        failed += report(USER_TESTS.get(index), name, || test(env));
    }
    let system = System::start(env, strategy);
    failed += report(SYSTEM_TESTS.first(), &"system_start", || system.as_ref().map(|_| ()).map_err(|reason| *reason));
    if let Ok(system) = &system {
        for (index, (name, test)) in WORKLOADS.iter().enumerate() {
            failed += report(SYSTEM_TESTS.get(index + 1), name, || test(system));
        }
    }
    rt::println!("{MARKER} done");
    failed == 0
}

/// Runs one test if it is the one expected at its position and prints its
/// marker; 1 if it failed.
fn report(expected: Option<&&str>, name: &&'static str, test: impl FnOnce() -> TestResult) -> usize {
    if expected != Some(name) {
        rt::println!("{MARKER} fail {name}: not in abi::selftest's list at its position");
        return 1;
    }
    match test() {
        Ok(()) => {
            rt::println!("{MARKER} pass {name}");
            0
        }
        Err(reason) => {
            rt::println!("{MARKER} fail {name}: {reason}");
            1
        }
    }
}

/// Checks that `result` is exactly the error `expected`.
pub fn expect_err<T>(result: Result<T, SysError>, expected: SysError, what: &'static str) -> TestResult {
    match result {
        Err(error) if error == expected => Ok(()),
        _ => Err(what),
    }
}

/// Checks a condition.
pub fn check(condition: bool, what: &'static str) -> TestResult {
    if condition { Ok(()) } else { Err(what) }
}

/// TSC cycles a test waits for another thread before it gives up: about
/// 3 s at 3 GHz, 10 s under `--icount` (1 GHz).
pub const PATIENCE: u64 = 10_000_000_000;

/// Yields until `done` holds, for at most [`PATIENCE`] TSC cycles.
pub fn wait_for(done: impl FnMut() -> bool) -> bool {
    wait_longer(done, PATIENCE)
}

/// Yields until `done` holds, for at most `patience` TSC cycles.
pub fn wait_longer(mut done: impl FnMut() -> bool, patience: u64) -> bool {
    let start = tsc();
    while tsc() - start < patience {
        if done() {
            return true;
        }
        rt::sys::yield_now();
    }
    done()
}

/// Lets other threads run for roughly `cycles` TSC cycles.
pub fn pause_for(cycles: u64) {
    let start = tsc();
    while tsc() - start < cycles {
        rt::sys::yield_now();
    }
}

/// The TSC (cycles, or instructions under `--icount`).
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}
