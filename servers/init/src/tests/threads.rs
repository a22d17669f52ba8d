//! Threads: create, configure, start, suspend, resume, exit, affinity; and
//! preemption of a thread that never makes a system call.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, ThreadState, boot_slot};
use abi::syscall::SysError;
use rt::sys;
use rt::thread::{Spec, spawn};

use super::{PATIENCE, TestResult, check, expect_err, pause_for, tsc, wait_for};
use crate::env::{Env, INIT_PRIORITY};

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SPINS: AtomicU64 = AtomicU64::new(0);

extern "C" fn add_and_exit(amount: u64) -> ! {
    COUNTER.fetch_add(amount, Ordering::Relaxed);
    sys::thread_exit()
}

/// Spins without system calls, counting into the static at `counter`.
extern "C" fn spin(counter: u64) -> ! {
    // SAFETY: the spawner passes the address of a static AtomicU64.
    let counter = unsafe { &*(counter as *const AtomicU64) };
    loop {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The counter's value once it stopped changing over a pause, if it does
/// within [`PATIENCE`].
fn settled(counter: &AtomicU64) -> Option<u64> {
    // Still for several windows in a row: a host that deschedules the
    // other vCPU for one window must not pass for a stopped thread.
    const STILL_WINDOWS: u32 = 5;
    let start = tsc();
    let mut still = 0;
    let mut before = counter.load(Ordering::Relaxed);
    while tsc() - start < PATIENCE {
        pause_for(10_000_000);
        let now = counter.load(Ordering::Relaxed);
        still = if now == before { still + 1 } else { 0 };
        if still == STILL_WINDOWS {
            return Some(now);
        }
        before = now;
    }
    None
}

pub fn spec(entry: extern "C" fn(u64) -> !, arg: u64, priority: u8, cpu: u16) -> Spec {
    Spec { entry, arg, cspace: boot_slot::CSPACE, priority, cpu, fault_endpoint: None, ipc_buffer: None }
}

pub fn lifecycle(env: &Env) -> TestResult {
    let bare = env.slots.alloc();
    sys::create(ObjectKind::Thread, bare).map_err(|_| "create thread")?;
    check(sys::thread_state(bare) == Ok(ThreadState::Inactive), "a new thread is not inactive")?;
    expect_err(sys::thread_start(bare, 0x1000, 0x2000, 0), SysError::BadState, "an unconfigured thread started")?;
    expect_err(sys::thread_resume(bare), SysError::BadState, "an inactive thread resumed")?;
    env.slots.release(bare);

    let worker = env.slots.alloc();
    spawn(&env.pages, worker, spec(add_and_exit, 5, INIT_PRIORITY, 0)).map_err(|_| "spawn")?;
    let exited = wait_for(|| COUNTER.load(Ordering::Relaxed) == 5 && sys::thread_state(worker) == Ok(ThreadState::Dead));
    check(exited, "the worker did not run and exit")?;
    expect_err(sys::thread_suspend(worker), SysError::BadState, "a dead thread was suspended")?;
    env.slots.release(worker);

    let spinner = env.slots.alloc();
    let counter = &SPINS as *const AtomicU64 as u64;
    spawn(&env.pages, spinner, spec(spin, counter, INIT_PRIORITY, env.other_cpu())).map_err(|_| "spawn spinner")?;
    check(wait_for(|| SPINS.load(Ordering::Relaxed) > 0), "the spinner never ran")?;
    sys::thread_suspend(spinner).map_err(|_| "suspend")?;
    check(sys::thread_state(spinner) == Ok(ThreadState::Suspended), "suspended thread not reported suspended")?;
    // Its CPU stops it at its next switch: wait until the count holds still,
    // then watch it stay still.
    let frozen = settled(&SPINS).ok_or("a suspended thread never stopped")?;
    pause_for(50_000_000);
    check(SPINS.load(Ordering::Relaxed) == frozen, "a suspended thread kept running")?;
    sys::thread_resume(spinner).map_err(|_| "resume")?;
    check(wait_for(|| SPINS.load(Ordering::Relaxed) > frozen), "a resumed thread did not run")?;
    sys::thread_set_affinity(spinner, 0).map_err(|_| "affinity")?;
    let moved = SPINS.load(Ordering::Relaxed);
    check(wait_for(|| SPINS.load(Ordering::Relaxed) > moved), "a migrated thread did not run")?;
    expect_err(sys::thread_set_affinity(spinner, 4096), SysError::BadArgument, "affinity to a missing CPU")?;
    expect_err(sys::thread_set_priority(spinner, 64), SysError::BadArgument, "priority out of range")?;
    env.slots.release(spinner);
    check(sys::thread_state(spinner).is_err(), "a deleted thread's capability still works")?;
    Ok(())
}

static PREEMPTED_SPINS: AtomicU64 = AtomicU64::new(0);

/// A thread of init's priority on init's CPU that never enters the kernel
/// can only run if the timer preempts init, and init only sees it run if
/// the timer preempts the spinner.
pub fn preemption(env: &Env) -> TestResult {
    let spinner = env.slots.alloc();
    let counter = &PREEMPTED_SPINS as *const AtomicU64 as u64;
    spawn(&env.pages, spinner, spec(spin, counter, INIT_PRIORITY, 0)).map_err(|_| "spawn")?;
    let start = tsc();
    // Busy-wait without system calls.
    while PREEMPTED_SPINS.load(Ordering::Relaxed) == 0 && tsc() - start < PATIENCE {
        core::hint::spin_loop();
    }
    let ran = PREEMPTED_SPINS.load(Ordering::Relaxed) > 0;
    env.slots.release(spinner);
    check(ran, "the spinner never ran while init spun: no preemption")
}
