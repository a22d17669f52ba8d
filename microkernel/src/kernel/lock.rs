//! The kernel lock's figures: how long CPUs wait for it and how long it is
//! held, per CPU, for `KernelInfo`.
//!
//! Waiting is always counted, and costs nothing when the lock is free: the
//! clock is read only after a first `try_lock` failed. Holding is timed only
//! with `lockstat` on the kernel command line (a load and a branch
//! otherwise), since it reads the clock twice on every kernel entry.
//! Each CPU writes only its own counters (plain loads and stores, no locked
//! instruction); any CPU may read them.

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::{self, MAX_CPUS};

use super::Kernel;

/// One CPU's counters, on a cache line of their own.
#[repr(align(64))]
struct CpuLockStats {
    wait_cycles: AtomicU64,
    waits: AtomicU64,
    hold_cycles: AtomicU64,
    holds: AtomicU64,
    /// The longest hold since it was last read.
    hold_max: AtomicU64,
    /// TSC when this CPU took the lock, while holds are timed.
    since: AtomicU64,
}

static STATS: [CpuLockStats; MAX_CPUS] = [const {
    CpuLockStats {
        wait_cycles: AtomicU64::new(0),
        waits: AtomicU64::new(0),
        hold_cycles: AtomicU64::new(0),
        holds: AtomicU64::new(0),
        hold_max: AtomicU64::new(0),
        since: AtomicU64::new(0),
    }
}; MAX_CPUS];
static TIME_HOLDS: AtomicBool = AtomicBool::new(false);

/// The command-line word that turns hold timing on.
pub const LOCKSTAT_FLAG: &str = "lockstat";

/// Turns hold timing on or off.
pub fn time_holds(on: bool) {
    TIME_HOLDS.store(on, Ordering::Relaxed);
}

/// Adds `value` to a counter only this CPU writes.
fn bump(counter: &AtomicU64, value: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(value), Ordering::Relaxed);
}

/// The kernel lock, held; it times the hold when asked to (the time it
/// was taken is kept per CPU, not here, so that the fast path keeps one
/// more register).
pub struct Held {
    guard: spin::MutexGuard<'static, Kernel>,
}

impl Deref for Held {
    type Target = Kernel;
    fn deref(&self) -> &Kernel {
        &self.guard
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut Kernel {
        &mut self.guard
    }
}

impl Drop for Held {
    #[inline(always)]
    fn drop(&mut self) {
        if TIME_HOLDS.load(Ordering::Relaxed) {
            count_hold();
        }
    }
}

/// Adds the hold ending now to this CPU's figures.
#[cold]
#[inline(never)]
fn count_hold() {
    let stats = &STATS[arch::cpu_index()];
    // 0: timing was turned on while the lock was held.
    let since = stats.since.load(Ordering::Relaxed);
    stats.since.store(0, Ordering::Relaxed);
    if since == 0 {
        return;
    }
    let held = arch::time::tsc().wrapping_sub(since);
    bump(&stats.hold_cycles, held);
    bump(&stats.holds, 1);
    if held > stats.hold_max.load(Ordering::Relaxed) {
        stats.hold_max.store(held, Ordering::Relaxed);
    }
}

/// Takes `lock`. While it waits (interrupts off), it serves TLB shootdowns,
/// which the holder may be waiting for. The guard always comes from the
/// `try_lock` here, so the kernel's address stays a constant the compiler
/// can rematerialise rather than keep in a register (the IPC fast path is
/// short of registers).
#[inline(always)]
pub fn take(lock: &'static spin::Mutex<Kernel>) -> Held {
    let guard = loop {
        if let Some(guard) = lock.try_lock() {
            break guard;
        }
        wait(lock);
    };
    if TIME_HOLDS.load(Ordering::Relaxed) {
        STATS[arch::cpu_index()].since.store(arch::time::tsc(), Ordering::Relaxed);
    }
    Held { guard }
}

/// Spins until `lock` looks free; counted as one wait.
#[cold]
#[inline(never)]
fn wait(lock: &'static spin::Mutex<Kernel>) {
    let start = arch::time::tsc();
    while lock.is_locked() {
        arch::tlb_serve();
        core::hint::spin_loop();
    }
    let stats = &STATS[arch::cpu_index()];
    bump(&stats.wait_cycles, arch::time::tsc().wrapping_sub(start));
    bump(&stats.waits, 1);
}

/// The counter `KernelInfo` selector `what` names, summed over every CPU
/// (for the longest hold: the largest, which reading starts again from 0;
/// a hold ending on another CPU during the read may be lost).
pub fn total(what: u64) -> Option<u64> {
    if what == abi::syscall::KERNEL_INFO_LOCK_HOLD_MAX {
        return Some(STATS.iter().map(|s| s.hold_max.swap(0, Ordering::Relaxed)).max().unwrap_or(0));
    }
    let field: fn(&CpuLockStats) -> &AtomicU64 = match what {
        abi::syscall::KERNEL_INFO_LOCK_WAIT => |s| &s.wait_cycles,
        abi::syscall::KERNEL_INFO_LOCK_WAITS => |s| &s.waits,
        abi::syscall::KERNEL_INFO_LOCK_HOLD => |s| &s.hold_cycles,
        abi::syscall::KERNEL_INFO_LOCK_HOLDS => |s| &s.holds,
        _ => return None,
    };
    Some(STATS.iter().map(|s| field(s).load(Ordering::Relaxed)).fold(0, u64::wrapping_add))
}
