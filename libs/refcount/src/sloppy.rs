//! Sloppy counters (Boyd-Wickizer et al., "An Analysis of Linux Scalability to Many Cores",
//! OSDI'10): a shared count plus per-core *spare* references.
//!
//! The shared count counts references in use *and* spares held by cores. A decrement does
//! not touch it: the dropped reference becomes a spare of the calling core. An increment
//! takes a local spare if there is one, and only otherwise increments the shared count. A
//! core holding more than `spares` spares returns half of them. At each quiescent point a
//! core returns all its spares (the objects with spares are on its list).
//!
//! **Why zero is safe:** the shared count equals references plus all spares, so it reaches
//! zero only when there are no references and no spares anywhere, and then nothing can raise
//! it (only holders increment). Returning spares is the only way down to zero, and the
//! `fetch_sub` that lands on zero is unique. A threshold return keeps half the spares, so it
//! never lands on zero.
//!
//! **`try_remove_unique`** (not in the paper) asks the shared count alone, less the calling
//! core's own spares: 1 means the caller's reference is the only one and no other core holds
//! a spare. Why that is sound while other cores count: think of each unit of the shared count
//! as a token, made by `create` or an increment's `fetch_add`, passed between "reference" and
//! "spare" on one core or with a reference to another core, and destroyed by a return. A
//! value read from the shared word counts the tokens made and not destroyed in a prefix of its
//! modification order, and every token destroyed in that prefix was made earlier in it (the
//! making happened before the return, and RMWs on one word follow happens-before). The
//! caller's token and its own spares are in it and not destroyed. Any other reference is
//! either a counted token (the answer is then at least 2) or was made by a `fetch_add` after
//! the prefix; that increment was made by the holder of an earlier reference, which by
//! induction was counted and not yet destroyed (at least 2 again), or is the caller's own,
//! taken later. The answer is false while another core holds spares of the object, until
//! its next quiescent point returns them.
//!
//! Costs: 16 bytes per object per core (spares, list link) plus 8 shared; an object that is
//! taken and dropped on the same core never touches the shared line. Zero detection waits for
//! the quiescent point of every core that holds spares.
//!
//! # Deviations from the paper
//!
//! None in the counting: the spare threshold (`Config::spares`, half returned when exceeded)
//! and the returns at quiescent points are the paper's, and no fast path does more than the
//! paper's spare or shared update (plus the list link that records which objects a core
//! holds spares of, so its quiescent point does not scan every object).

use crate::layout::{PerCore, Planner, Span, claim};
use crate::lists::Lists;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::{Config, LayoutError, Word, Words};

/// A shared count with per-core spare references.
pub struct Sloppy<M: Words> {
    mem: M,
    cfg: Config,
    shared: Span,
    spare: PerCore,
    holding: Lists,
}

struct Plan {
    p: Planner,
    shared: Span,
    spare: PerCore,
    holding: Lists,
}

fn plan(cfg: &Config) -> Plan {
    let mut p = Planner::new();
    let shared = p.shared(cfg.n_objects, 1);
    let spare = p.per_core(cfg.n_cores, cfg.n_objects, 1);
    let holding = Lists::plan_per_core(&mut p, cfg.n_cores, cfg.n_objects);
    Plan { p, shared, spare, holding }
}

impl<M: Words> Sloppy<M> {
    #[inline]
    fn shared(&self, obj: u32) -> &Word {
        self.shared.at(&self.mem, obj as usize, 0)
    }

    #[inline]
    fn spare(&self, core: usize, obj: u32) -> &Word {
        self.spare.at(&self.mem, core, obj as usize, 0)
    }

    fn refs(&self, obj: u32) -> u64 {
        let spares = (0..self.cfg.n_cores).map(|c| self.spare(c, obj).load(Relaxed)).sum::<u64>();
        self.shared(obj).load(Acquire) - spares
    }

    /// Spares of `obj` that `core` holds.
    pub fn spares(&self, core: usize, obj: u32) -> u64 {
        self.spare(core, obj).load(Relaxed)
    }
}

impl<M: Words> RefCount for Sloppy<M> {
    type Mem = M;
    const NAME: &'static str = "sloppy";
    const SETTLE_ROUNDS: usize = 1;

    fn words_needed(cfg: &Config) -> usize {
        plan(cfg).p.total()
    }

    fn new_in(mem: M, cfg: Config) -> Result<Self, LayoutError> {
        cfg.validate()?;
        let Plan { p, shared, spare, holding } = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Sloppy { mem, cfg, shared, spare, holding })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, _core: usize, obj: u32) {
        self.shared(obj).store(1, Release)
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        let s = self.spare(core, obj);
        match s.load(Relaxed) {
            0 => {
                self.shared(obj).fetch_add(1, Relaxed);
            }
            n => s.store(n - 1, Relaxed),
        }
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, _freed: &mut impl FnMut(u32)) {
        let s = self.spare(core, obj);
        let n = s.load(Relaxed) + 1;
        if n > self.cfg.spares {
            let give = n - self.cfg.spares / 2;
            self.shared(obj).fetch_sub(give, Release);
            s.store(n - give, Relaxed);
        } else {
            s.store(n, Relaxed);
        }
        if !self.holding.listed(&self.mem, core, obj) {
            self.holding.push(&self.mem, core, obj);
        }
    }

    fn try_remove_unique(&self, core: usize, obj: u32) -> bool {
        self.shared(obj).load(Acquire).wrapping_sub(self.spare(core, obj).load(Relaxed)) == 1
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        self.holding.drain(&self.mem, core, |obj| {
            let s = self.spare(core, obj);
            let n = s.load(Relaxed);
            s.store(0, Relaxed);
            if n > 0 && self.shared(obj).fetch_sub(n, AcqRel) == n {
                freed(obj);
            }
        });
    }

    fn read_exact(&self, obj: u32) -> u64 {
        self.refs(obj)
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::*;
    use crate::{Region, build};

    #[test]
    fn spares_absorb_local_traffic_and_return_past_the_threshold() {
        let s: Sloppy<Region> = build(Config { spares: 4, ..Config::new(1, 2) }).unwrap();
        let mut freed = Vec::new();
        s.create(0, 0);
        for _ in 0..5 {
            s.inc(0, 0);
        }
        assert_eq!(s.shared(0).load(Relaxed), 6);
        for _ in 0..5 {
            s.dec(0, 0, &mut |_| {});
        }
        assert_eq!(s.spares(0, 0), 2, "five spares exceed four: three go back");
        assert_eq!(s.shared(0).load(Relaxed), 3);
        s.inc(0, 0);
        assert_eq!((s.spares(0, 0), s.shared(0).load(Relaxed)), (1, 3), "taken from a spare");
        assert_eq!(s.read_exact(0), 2);
        s.dec(1, 0, &mut |_| {});
        s.dec(1, 0, &mut |_| {});
        s.quiescent(0, &mut |o| freed.push(o));
        assert!(freed.is_empty(), "core 1 still holds spares");
        s.quiescent(1, &mut |o| freed.push(o));
        assert_eq!(freed, vec![0]);
    }

    #[test]
    fn unique_needs_no_spares_elsewhere() {
        let s: Sloppy<Region> = build(Config::new(1, 2)).unwrap();
        s.create(0, 0);
        s.inc(1, 0);
        s.dec(0, 0, &mut |_| {}); // core 0 keeps a spare
        assert!(!s.try_remove_unique(1, 0), "core 0's spare is still in the shared count");
        s.quiescent(0, &mut |_| {});
        assert!(s.try_remove_unique(1, 0));
        s.inc(1, 0);
        s.dec(1, 0, &mut |_| {}); // a spare of core 1's own
        assert!(s.try_remove_unique(1, 0), "the caller's own spares do not count");
        s.inc(0, 0);
        assert!(!s.try_remove_unique(1, 0));
    }
}
