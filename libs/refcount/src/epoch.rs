//! Grace periods from quiescent-state reports: the crate's stand-in for RCU.
//!
//! There is no kernel RCU. Each participant (a core) calls `quiescent(core)` at points where
//! it is inside no reference-count operation. A grace period that began at ticket `t` is over
//! when every participant has reported since `t` was handed out; everything a core did before
//! that report is then visible to whoever observed the grace period end.
//!
//! The global clock is read with a read-modify-write (`fetch_add(0)`) on purpose: that RMW is
//! ordered after every `begin` it observes, so a core that reported past ticket `t` sees every
//! store made before `t` began. This gives RCU's guarantee with acquire/release orderings
//! only (no SeqCst store-load reasoning), which loom can check.
//!
//! Cost: one contended RMW per report and per `begin`, and a scan of `n_cores` words per
//! `done`. A core that stops reporting stalls every grace period: callers must report from
//! every core, also idle ones.

use crate::layout::{LayoutError, PerCore, Planner, Span, claim};
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::{Config, Word, Words};

/// The clock's place in a region: one global word and one word per core.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    global: Span,
    seen: PerCore,
    n_cores: usize,
}

impl Clock {
    pub(crate) fn plan(p: &mut Planner, n_cores: usize) -> Self {
        Clock { global: p.shared(1, 1), seen: p.per_core(n_cores, 1, 1), n_cores }
    }

    /// Starts a grace period and returns its ticket.
    pub(crate) fn begin(&self, mem: &[Word]) -> u64 {
        self.global.at(mem, 0, 0).fetch_add(1, AcqRel) + 1
    }

    /// `core` reports a quiescent state.
    pub(crate) fn quiescent(&self, mem: &[Word], core: usize) {
        let now = self.global.at(mem, 0, 0).fetch_add(0, AcqRel);
        self.seen.at(mem, core, 0, 0).store(now, Release);
    }

    /// Whether the grace period of `ticket` is over.
    pub(crate) fn done(&self, mem: &[Word], ticket: u64) -> bool {
        (0..self.n_cores).all(|c| self.seen.at(mem, c, 0, 0).load(Acquire) >= ticket)
    }

    /// The latest ticket handed out (0 before the first).
    pub(crate) fn now(&self, mem: &[Word]) -> u64 {
        self.global.at(mem, 0, 0).load(Relaxed)
    }
}

/// A standalone grace-period tracker over its own region, for callers outside the
/// strategies (the memory server's other deferred frees, for example).
pub struct Epoch<M: Words> {
    mem: M,
    clock: Clock,
}

impl<M: Words> Epoch<M> {
    /// Words of region an epoch for `n_cores` participants needs.
    pub fn words_needed(n_cores: usize) -> usize {
        let mut p = Planner::new();
        Clock::plan(&mut p, n_cores);
        p.total()
    }

    /// Places an epoch over a zeroed region.
    pub fn new_in(mem: M, n_cores: usize) -> Result<Self, LayoutError> {
        Config::new(1, n_cores).validate()?;
        let mut p = Planner::new();
        let clock = Clock::plan(&mut p, n_cores);
        claim(&mem, p.total())?;
        Ok(Epoch { mem, clock })
    }

    /// Starts a grace period; pass the ticket to [`Epoch::done`].
    pub fn begin(&self) -> u64 {
        self.clock.begin(&self.mem)
    }

    /// `core` (< n_cores) is inside no read-side section now.
    pub fn quiescent(&self, core: usize) {
        self.clock.quiescent(&self.mem, core)
    }

    /// Whether every core has reported a quiescent state since `ticket` began.
    pub fn done(&self, ticket: u64) -> bool {
        self.clock.done(&self.mem, ticket)
    }

    /// The latest ticket handed out.
    pub fn now(&self) -> u64 {
        self.clock.now(&self.mem)
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::*;
    use crate::Region;

    fn epoch(n: usize) -> Epoch<Region> {
        Epoch::new_in(Region::zeroed(Epoch::<Region>::words_needed(n)), n).unwrap()
    }

    #[test]
    fn grace_period_needs_every_core() {
        let e = epoch(3);
        let t = e.begin();
        assert_eq!(e.now(), t);
        assert!(!e.done(t));
        e.quiescent(0);
        e.quiescent(2);
        assert!(!e.done(t), "core 1 has not reported");
        e.quiescent(1);
        assert!(e.done(t));
    }

    #[test]
    fn reports_before_begin_do_not_count() {
        let e = epoch(2);
        e.quiescent(0);
        e.quiescent(1);
        let t = e.begin();
        assert!(!e.done(t));
        e.quiescent(1);
        e.quiescent(0);
        assert!(e.done(t));
        let t2 = e.begin();
        assert!(!e.done(t2) && e.done(t));
    }

    #[test]
    fn rejects_dirty_or_short_memory() {
        let r = Region::zeroed(Epoch::<Region>::words_needed(2));
        r[3].store(7, Relaxed);
        assert!(matches!(Epoch::new_in(r, 2), Err(LayoutError::NotZeroed { word: 3 })));
        assert!(matches!(Epoch::new_in(Region::zeroed(1), 2), Err(LayoutError::TooSmall { .. })));
        assert!(matches!(Epoch::new_in(Region::zeroed(64), 0), Err(LayoutError::BadCoreCount)));
    }
}
