//! Scalable reference counting for shared copy-on-write frames: every strategy from the
//! literature behind one trait, over tables that can live in memory shared between
//! processes.
//!
//! # What this crate owns
//!
//! The counting algorithms and their table layouts. It decides no memory policy: callers
//! (the memory server, the process servers, the host benchmarks) decide when a frame is
//! created, shared and dropped, and what to do with a freed one.
//!
//! # Design rules
//!
//! - **Tables are words, indexed, never pointers.** Every strategy lays its tables out over
//!   one zeroed region of [`Word`]s (`&[Word]` mapped by a server, or a host [`Region`]),
//!   sized by [`RefCount::words_needed`]; the all-zero state means "every object free".
//!   Per-core parts sit on their own cache lines (given a region that starts on one, as
//!   mapped pages and [`Region`] do).
//! - **No allocation, no locks on the hot path** (the deferred manager's lock is the design
//!   being measured, and is only a try-lock on the flush path).
//! - **One contract** ([`RefCount`], in `strategy.rs`): create / inc / dec (single and
//!   batch), `try_remove_unique` for copy-on-write faults, frees reported exactly once
//!   through a callback, deferred work driven by `quiescent(core)`, and an exact read at
//!   quiescent points.
//!
//! # The strategies
//!
//! | module | source | zero detection | per-op cost |
//! |---|---|---|---|
//! | [`atomic`] | kref | inline, the 1→0 `fetch_sub` | one shared RMW |
//! | [`deferred`] | FTL OS | manager applies batches under a try-lock | buffered, one lock per batch |
//! | [`percpu`] | Linux percpu-ref | switch to atomic after a grace period; kill when only the base is left | per-core add |
//! | [`refcache`] | RadixVM | review queue, stable zero over a full epoch | per-core cache slot |
//! | [`paygo`] | PAYGO (FAST'19) | downs and anchors summed before ups | per-core add or anchor RMW |
//! | [`sloppy`] | Boyd-Wickizer et al. | spares returned at quiescent points | per-core spare or shared RMW |
//! | [`striped`] | Java `LongAdder` | decrement adder summed before the increment adder | CAS on base or a cell |
//! | [`snzi`] | Ellen et al. | root indicator's 1→0 | CAS on a leaf, parents on 0↔1 |
//! | [`biased`] | Choi et al., CPython 3.13 | owner merge, queued merge | owner: plain; others: RMW |
//!
//! Each module's docs name the paper, the invariant that makes its zero detection safe, and
//! its costs. Support modules: [`epoch`] (grace periods from quiescent reports), `lists`
//! (per-core intrusive work lists),
//! `layout` (carving a region), `sync` (the loom switch).
//!
//! Build with `--cfg loom` to run the model-checked protocols in `tests/loom.rs`.
//!
//! # Example
//!
//! ```
//! use refcount::{Config, RefCount, RefCache, Region};
//!
//! let table: RefCache<Region> = refcount::build(Config::new(64, 2)).unwrap();
//! let mut freed = Vec::new();
//! table.create(0, 7); // frame 7: one reference, taken on core 0
//! table.inc(1, 7); // shared with core 1
//! table.dec(0, 7, &mut |f| freed.push(f));
//! table.dec(1, 7, &mut |f| freed.push(f));
//! for _ in 0..RefCache::<Region>::SETTLE_ROUNDS {
//!     for core in 0..2 {
//!         table.quiescent(core, &mut |f| freed.push(f));
//!     }
//! }
//! assert_eq!(freed, [7]);
//! ```

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod layout;
mod lists;
mod strategy;
mod sync;

pub mod atomic;
pub mod biased;
pub mod deferred;
pub mod epoch;
pub mod paygo;
pub mod percpu;
pub mod refcache;
pub mod sloppy;
pub mod snzi;
pub mod striped;

#[cfg(feature = "alloc")]
mod region;

pub use atomic::Atomic;
pub use biased::Biased;
pub use deferred::Deferred;
pub use layout::{Config, LINE_WORDS, LayoutError};
pub use paygo::Paygo;
pub use percpu::PercpuRef;
pub use refcache::RefCache;
pub use sloppy::Sloppy;
pub use snzi::Snzi;
pub use strategy::RefCount;
pub use striped::Striped;

#[cfg(feature = "alloc")]
pub use region::Region;

/// One word of table memory.
pub type Word = sync::AtomicU64;

/// Memory a strategy's tables can live in: anything that dereferences to words, such as
/// `&'static [Word]` mapped by a server or an owned [`Region`] on the host.
pub trait Words: core::ops::Deref<Target = [Word]> + Sync {}

impl<T: core::ops::Deref<Target = [Word]> + Sync> Words for T {}

/// Builds a strategy over a fresh host [`Region`] sized for `cfg`.
#[cfg(feature = "alloc")]
pub fn build<S: RefCount<Mem = Region>>(cfg: Config) -> Result<S, LayoutError> {
    cfg.validate()?;
    S::new_in(Region::zeroed(S::words_needed(&cfg)), cfg)
}
