//! The trait every counting strategy implements: the contract the memory server relies on.
//!
//! # The caller's side of the contract
//!
//! - **Cores.** Every operation names the calling core, `core < n_cores`. At most one thread
//!   acts as a given core at a time, and it does not interleave two operations of the same
//!   core (a server thread pinned per CPU, or a thread per simulated core in tests). Per-core
//!   words are written without atomic read-modify-writes on that promise.
//! - **References.** An object is *free* until [`RefCount::create`] makes it live with one
//!   reference. [`RefCount::inc`] and [`RefCount::dec`] are called only by a holder of a
//!   reference to the object (so never on a free object); `dec` gives up one held reference.
//!   A reference may be taken on one core and dropped on another.
//! - **Quiescent points.** Every core calls [`RefCount::quiescent`] from time to time, between
//!   operations, also when idle. Strategies with grace periods or buffers make progress only
//!   there, so a core that never calls it can delay frees forever (but never cause a wrong
//!   one).
//! - **Frees.** An object is reported exactly once, through the `freed` callback of some
//!   `dec` or `quiescent` call (on any core), after its last reference is gone, and never
//!   while a reference exists. Once reported it is free: the caller may `create` it again.
//!   With no operations in flight, `SETTLE_ROUNDS` rounds in which every core calls
//!   `quiescent` once (cores in any fixed order) report every object whose count is zero.
//!   While other cores are busy, strategies whose zero check waits on them (a grace period,
//!   a spare return, a merge) may take longer.
//! - **Exact reads.** [`RefCount::read_exact`] is exact only at a quiescent point of the
//!   whole system: no operation of any core in flight. At other times it is a racy estimate.

use crate::{Config, LayoutError, Words};

/// A reference-counting strategy over tables in a region of words.
pub trait RefCount: Sync + Sized {
    /// The region type the tables live in.
    type Mem: Words;

    /// Short name for tables and JSON.
    const NAME: &'static str;

    /// Rounds of `quiescent` on every core after which, with no other operations, every
    /// object at zero has been reported.
    const SETTLE_ROUNDS: usize;

    /// Words of zeroed region the tables for `cfg` need.
    fn words_needed(cfg: &Config) -> usize;

    /// Bytes of region the tables for `cfg` need.
    fn bytes_needed(cfg: &Config) -> usize {
        Self::words_needed(cfg) * 8
    }

    /// Places the tables over `mem`, which must be zeroed and at least `words_needed` long.
    fn new_in(mem: Self::Mem, cfg: Config) -> Result<Self, LayoutError>;

    /// The config the tables were built for.
    fn config(&self) -> &Config;

    /// Makes the free object `obj` live, with one reference held by the caller on `core`.
    fn create(&self, core: usize, obj: u32);

    /// Adds one reference; the caller holds one already.
    fn inc(&self, core: usize, obj: u32);

    /// Drops one held reference. May report frees (of `obj` or of others) to `freed`.
    fn dec(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32));

    /// Adds one reference to each object in `objs` (a fork's worth); repeats are allowed.
    fn inc_batch(&self, core: usize, objs: &[u32]) {
        for &o in objs {
            self.inc(core, o);
        }
    }

    /// Drops one held reference to each object in `objs` (an exit's worth).
    fn dec_batch(&self, core: usize, objs: &[u32], freed: &mut impl FnMut(u32)) {
        for &o in objs {
            self.dec(core, o, freed);
        }
    }

    /// The copy-on-write fast path. The caller holds a reference. Returns true only if that
    /// reference is the only one, so the caller may write to the object in place; it stays
    /// the one reference afterwards (strategies with an *owned* state switch to it). May
    /// return false although the count is 1 (a buffered decrement, a busy moment); never true
    /// when it is not.
    fn try_remove_unique(&self, core: usize, obj: u32) -> bool;

    /// `core` is between operations: do its deferred work (flush buffers, report the grace
    /// period, review, merge) and report the frees it finds to `freed`.
    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32));

    /// The number of references to `obj` (0 for a free object), exact at a quiescent point
    /// of the whole system.
    fn read_exact(&self, obj: u32) -> u64;
}
