//! The time-stamp counter: cycles, or executed instructions when the
//! machine runs under `--icount` (one clock that every CPU advances).

use core::arch::x86_64::_rdtsc;

pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no side effects.
    unsafe { _rdtsc() }
}
