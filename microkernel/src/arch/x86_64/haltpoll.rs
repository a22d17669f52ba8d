//! Halt polling, as Linux's haltpoll idle driver does it: an idle CPU that
//! expects work soon spins for a short window, interrupts on, before it
//! halts, so that a wake-up from another CPU (a reschedule IPI) finds it
//! running. Under TCG a halted vCPU sleeps in its host thread, and waking
//! it costs from a tenth of a millisecond to several; a polling one takes
//! the interrupt at its next translated block.
//!
//! "Expects work soon" means it ran a thread since it last went idle: a
//! CPU polls at most one window per stretch of work, then halts, so an idle
//! system stops polling after one window per CPU. The window is the
//! `haltpoll=MICROSECONDS` kernel command-line word (default
//! [`DEFAULT_WINDOW_US`], or 0 with `icount` on the command line;
//! `haltpoll=0` turns polling off).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::percpu::{self, MAX_CPUS};
use super::time;

/// The poll window when the command line does not set one, in microseconds.
pub const DEFAULT_WINDOW_US: u64 = 100;

/// The window in TSC cycles.
static WINDOW: AtomicU64 = AtomicU64::new(0);

/// Whether a CPU ran a thread since it last polled; each CPU writes its own.
#[repr(align(64))]
struct Armed(AtomicBool);

static ARMED: [Armed; MAX_CPUS] = [const { Armed(AtomicBool::new(false)) }; MAX_CPUS];

/// Sets the window from the kernel command line; after TSC calibration.
pub fn configure(cmdline: &str) {
    let mut words = cmdline.split_ascii_whitespace();
    // Under --icount QEMU runs the vCPUs one at a time: a polling vCPU only
    // delays the one that would wake it.
    let default = if words.clone().any(|w| w == abi::selftest::ICOUNT_FLAG) { 0 } else { DEFAULT_WINDOW_US };
    let us = words.find_map(|w| w.strip_prefix("haltpoll=")?.parse::<u64>().ok()).unwrap_or(default);
    WINDOW.store(us.saturating_mul(time::tsc_hz()) / 1_000_000, Ordering::Relaxed);
    crate::println!("haltpoll: idle CPUs poll {us} us before halting");
}

/// The running CPU runs a thread: it polls the next time it goes idle.
pub fn arm() {
    ARMED[percpu::current().index()].0.store(true, Ordering::Relaxed);
}

/// Called by the idle loop with interrupts off: the TSC value to poll
/// until, or 0 to halt at once.
pub extern "C" fn poll_deadline() -> u64 {
    let window = WINDOW.load(Ordering::Relaxed);
    let armed = ARMED[percpu::current().index()].0.swap(false, Ordering::Relaxed);
    if armed && window != 0 { time::tsc().wrapping_add(window) } else { 0 }
}
