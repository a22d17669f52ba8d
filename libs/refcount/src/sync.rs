//! The one switch between the real atomics and loom's model-checked ones.
//!
//! Every strategy imports its atomics from here, so `--cfg loom` swaps the whole crate
//! onto loom's scheduler at once. Nothing else in the crate names `core::sync::atomic`.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU64, Ordering, fence};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU64, Ordering, fence};

/// Backs off inside a retry loop. Under loom it yields, so the model checker runs the
/// thread that holds what we wait for instead of exploring an endless spin.
#[inline]
pub(crate) fn spin() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
