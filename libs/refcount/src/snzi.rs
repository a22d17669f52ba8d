//! SNZI, the scalable non-zero indicator (Ellen, Lev, Luchangco, Moir, PODC'07), as a
//! reference count: a tree per object whose root says whether the count is non-zero.
//!
//! Each object has a binary tree: one leaf per core, inner nodes above, a root on top.
//! `arrive` at a node adds one to its surplus; a node tells its parent only when its surplus
//! goes 0→1 (arrive) or 1→0 (depart), so the root changes only when a whole subtree starts
//! or stops holding references. Inner nodes and leaves use the paper's *half-increment*
//! protocol: the first arriver moves the node 0→½ (with a new version), arrives at the
//! parent, then moves it ½→1; anyone who finds ½ helps the same way, and an arrival at the
//! parent whose ½→1 step lost the race is undone by a depart. So no node is seen non-zero
//! before its parent is. The root is the paper's: a counter with an announce bit and a
//! version, and a separate indicator word that `query` reads (below).
//!
//! An increment arrives at the calling core's leaf. A decrement departs from the calling
//! core's leaf if it has surplus, else from another core's (the surpluses are fungible: only
//! their sum is the count). The per-object count the strategy must answer exactly is the sum
//! of the leaves' surpluses, read at a quiescent point.
//!
//! **Why zero is safe:** the root counts children with non-zero surplus (plus arrivals being
//! undone, which only happen while a sibling arrival keeps the child non-zero). It goes 1→0
//! exactly when the last surplus in the tree departs; a caller holding a reference keeps its
//! leaf's path non-zero, so that depart is unique and comes after every other one.
//!
//! Costs: 8 bytes per object per core (the leaf) plus 8 per inner node
//! (about `n_cores` of them) and 8 for the indicator; an increment/decrement pair is two CASes on the core's own leaf
//! while the leaf keeps some surplus, but climbs to the root when it goes 0↔1, which a single
//! hot reference taken and dropped does every time.
//!
//! # Deviations from the paper, and why they are sound
//!
//! - **LL/SC on the indicator.** The paper clears the indicator with load-linked /
//!   store-conditional, so that the clear fails if an arrival wrote it meanwhile. Here the
//!   indicator word carries the root version that set it and the clear is a compare-and-swap
//!   from the value read: an arrival of a later version writes a different value, so the CAS
//!   fails as the SC would. A write of the same value could only come from an arrival of the
//!   same version, and every such arrival wrote before it departed, which was before the
//!   departure that took the counter to zero (the root counter counted it), so before the
//!   clear read the word. Zero detection does not read the indicator: the departure that
//!   takes the root counter 1→0 is one CAS, unique (see above).
//! - **`try_remove_unique`, which SNZI does not have, stays off the fast path.** It reads
//!   the leaves (below) and touches the tree only when the caller's leaf is empty; arrivals
//!   and departures carry nothing for it.
//!
//! # `try_remove_unique` without a sequence word
//!
//! The caller on core c holds a reference. If c's leaf holds no whole unit, it first
//! *gathers* one: an arrival at its own leaf, then a departure from another leaf that has a
//! unit (surpluses are fungible; the root stays non-zero throughout, so nothing is freed).
//! Then it reads every other leaf, c's leaf, and every other leaf again (Acquire), and
//! answers true only if c's leaf holds exactly one unit and every other leaf was exactly 0
//! (no half) in both reads with an unchanged sum of versions. Why that is the only
//! reference:
//!
//! - Only core c arrives at c's leaf, and c is busy here, so c's leaf does not grow during
//!   the check.
//! - A leaf at 0 changes only by an arrival, whose first step (0→½) starts a new version;
//!   versions only grow. A leaf read 0 twice with the same version was therefore 0 the
//!   whole time between the two reads (a departure never leaves 0, and no arrival began).
//! - So at the moment c's leaf was read, between the two passes, every other leaf was 0 and
//!   c's held one unit: the leaves summed to 1, the caller's reference. Nobody else holds
//!   one, so nobody can take one, and it stays unique.
//!
//! Under the crate's orderings, the same holds reference by reference: an arrival or
//! departure the reader saw synchronises with it, so the reader's later loads see whatever
//! happened before it, including the take of any reference that the departure's holder
//! handed on. A single pass is not enough: a reference that moves from core 2 to core 1
//! against the reader's scan (taken on 1 after 1 was read, dropped on 2 before 2 was read)
//! is missed; the loom model `unique_while_a_reference_runs_ahead` fails that way.
//! Versions are 32 bits: a wrong answer needs exactly 2^32 arrivals from zero at one leaf
//! between the two reads of one check.

use crate::layout::{PerCore, Planner, Span, claim};
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::sync::spin;
use crate::{Config, LayoutError, Word, Words};

/// A node word: version in the high half, surplus in halves (1 = ½, 2 = one) in the low.
const ONE: u64 = 2;
const HALF: u64 = 1;
const LOW: u64 = 0xffff_ffff;

/// The root word: its counter in the low half, the announce bit, and a version above it
/// (bumped by every 0→1 arrival).
const ANNOUNCE: u64 = 1 << 32;
const VERSION: u64 = 1 << 33;

/// The indicator word: the bit `query` reads, tagged with the root version that set it, so
/// that a compare-and-swap on it fails once a later arrival has written it (the paper's
/// LL/SC).
const INDICATED: u64 = 1;

/// A non-zero-indicator tree per object.
pub struct Snzi<M: Words> {
    mem: M,
    cfg: Config,
    /// Leaves sit at heap index `width + core`; the root is index 1.
    width: usize,
    inner: Span,
    leaves: PerCore,
}

fn width(n_cores: usize) -> usize {
    n_cores.next_power_of_two().max(2)
}

fn plan(cfg: &Config) -> (Planner, Span, PerCore) {
    let mut p = Planner::new();
    // Inner nodes 1..width, then the indicator.
    let inner = p.shared(cfg.n_objects, width(cfg.n_cores));
    let leaves = p.per_core(cfg.n_cores, cfg.n_objects, 1);
    (p, inner, leaves)
}

impl<M: Words> Snzi<M> {
    #[inline]
    fn node(&self, obj: u32, i: usize) -> &Word {
        if i >= self.width {
            self.leaves.at(&self.mem, i - self.width, obj as usize, 0)
        } else {
            self.inner.at(&self.mem, obj as usize, i - 1)
        }
    }

    #[inline]
    fn indicator(&self, obj: u32) -> &Word {
        self.inner.at(&self.mem, obj as usize, self.width - 1)
    }

    /// The paper's root `Arrive`: a 0→1 arrival starts a new version with the announce bit
    /// set; whoever sees the bit sets the indicator and then clears the bit.
    fn arrive_root(&self, obj: u32) {
        let root = self.node(obj, 1);
        let mut x = root.load(Acquire);
        let new = loop {
            let new = if x & LOW == 0 { (((x >> 33) + 1) * VERSION) | ANNOUNCE | 1 } else { x + 1 };
            match root.compare_exchange(x, new, AcqRel, Acquire) {
                Ok(_) => break new,
                Err(now) => x = now,
            }
            spin();
        };
        if new & ANNOUNCE != 0 {
            self.indicator(obj).store(((new >> 33) << 1) | INDICATED, Release);
            let _ = root.compare_exchange(new, new & !ANNOUNCE, AcqRel, Relaxed);
        }
    }

    /// The paper's root `Depart`. True if it took the counter to zero; that departure also
    /// clears the indicator unless a later arrival has already started a new version.
    fn depart_root(&self, obj: u32) -> bool {
        let root = self.node(obj, 1);
        let mut x = root.load(Acquire);
        loop {
            match root.compare_exchange(x, (x & !ANNOUNCE) - 1, AcqRel, Acquire) {
                Ok(_) => break,
                Err(now) => x = now,
            }
            spin();
        }
        if x & LOW >= 2 {
            return false;
        }
        let version = x >> 33;
        let indicator = self.indicator(obj);
        loop {
            let i = indicator.load(Acquire);
            if root.load(Acquire) >> 33 != version || i & INDICATED == 0 {
                return true;
            }
            if indicator.compare_exchange(i, i & !INDICATED, AcqRel, Relaxed).is_ok() {
                return true;
            }
            spin();
        }
    }

    #[inline]
    fn arrive(&self, obj: u32, i: usize) {
        if i == 1 {
            self.arrive_root(obj);
            return;
        }
        let w = self.node(obj, i);
        let mut done = false;
        let mut undo = 0;
        while !done {
            let mut x = w.load(Acquire);
            if x & LOW >= ONE && w.compare_exchange(x, x + ONE, AcqRel, Relaxed).is_ok() {
                done = true;
            }
            if x & LOW == 0 {
                let half = ((x >> 32) + 1) << 32 | HALF;
                if w.compare_exchange(x, half, AcqRel, Relaxed).is_ok() {
                    done = true;
                    x = half;
                }
            }
            if x & LOW == HALF {
                self.arrive(obj, i / 2);
                if w.compare_exchange(x, (x & !LOW) | ONE, AcqRel, Relaxed).is_err() {
                    undo += 1;
                }
            }
            if !done {
                spin();
            }
        }
        for _ in 0..undo {
            let zero = self.depart(obj, i / 2);
            debug_assert!(!zero, "an undone arrival never empties the root");
        }
    }

    /// Departs from node `i`, which has surplus. True if the root went to zero.
    #[inline]
    fn depart(&self, obj: u32, i: usize) -> bool {
        if i == 1 {
            return self.depart_root(obj);
        }
        let w = self.node(obj, i);
        loop {
            let x = w.load(Acquire);
            debug_assert!(x & LOW >= ONE);
            if w.compare_exchange(x, x - ONE, AcqRel, Relaxed).is_ok() {
                return x & LOW == ONE && self.depart(obj, i / 2);
            }
            spin();
        }
    }

    /// Departs from the first leaf, starting at `core`'s, that has a whole unit of surplus.
    #[inline]
    fn depart_any(&self, core: usize, obj: u32) -> bool {
        let n = self.cfg.n_cores;
        loop {
            for leaf in (0..n).map(|k| self.width + (core + k) % n) {
                let w = self.node(obj, leaf);
                let x = w.load(Acquire);
                if x & LOW >= ONE && w.compare_exchange(x, x - ONE, AcqRel, Relaxed).is_ok() {
                    return x & LOW == ONE && self.depart(obj, leaf / 2);
                }
            }
            spin();
        }
    }

    /// If every leaf but `core`'s is empty, the sum of their versions (which only grow, so an
    /// equal sum later means no leaf's version moved).
    fn others_empty(&self, core: usize, obj: u32) -> Option<u64> {
        (0..self.cfg.n_cores).filter(|&c| c != core).try_fold(0u64, |versions, c| {
            let x = self.node(obj, self.width + c).load(Acquire);
            (x & LOW == 0).then(|| versions + (x >> 32))
        })
    }

    /// Moves one unit of surplus from another leaf to `core`'s: an arrival there, then a
    /// departure from the first other leaf found with a unit (the root stays non-zero
    /// throughout). False, with nothing changed in sum, if no other leaf had one.
    fn gather(&self, core: usize, obj: u32) -> bool {
        let own = self.width + core;
        self.arrive(obj, own);
        let n = self.cfg.n_cores;
        for leaf in (1..n).map(|k| self.width + (core + k) % n) {
            let w = self.node(obj, leaf);
            let x = w.load(Acquire);
            if x & LOW >= ONE && w.compare_exchange(x, x - ONE, AcqRel, Relaxed).is_ok() {
                let zero = x & LOW == ONE && self.depart(obj, leaf / 2);
                debug_assert!(!zero, "the caller's leaf keeps the root non-zero");
                return true;
            }
        }
        let zero = self.depart(obj, own);
        debug_assert!(!zero, "the caller holds a reference");
        false
    }

    fn sum(&self, obj: u32) -> u64 {
        (0..self.cfg.n_cores).map(|c| (self.node(obj, self.width + c).load(Acquire) & LOW) / ONE).sum()
    }

    /// SNZI's query: whether the object has any reference (one read of the indicator).
    pub fn query(&self, obj: u32) -> bool {
        self.indicator(obj).load(Acquire) & INDICATED != 0
    }
}

impl<M: Words> RefCount for Snzi<M> {
    type Mem = M;
    const NAME: &'static str = "snzi";
    const SETTLE_ROUNDS: usize = 0;

    fn words_needed(cfg: &Config) -> usize {
        plan(cfg).0.total()
    }

    fn new_in(mem: M, cfg: Config) -> Result<Self, LayoutError> {
        cfg.validate()?;
        let (p, inner, leaves) = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Snzi { mem, cfg, width: width(cfg.n_cores), inner, leaves })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, core: usize, obj: u32) {
        self.inc(core, obj)
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        self.arrive(obj, self.width + core)
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        if self.depart_any(core, obj) {
            freed(obj);
        }
    }

    /// Moves a unit of surplus to the caller's leaf if it has none, then checks that the
    /// caller's leaf holds exactly one while every other leaf holds none, unchanged between
    /// two reads (the module docs give the argument).
    fn try_remove_unique(&self, core: usize, obj: u32) -> bool {
        let own = self.width + core;
        if self.node(obj, own).load(Acquire) & LOW < ONE && !self.gather(core, obj) {
            return false;
        }
        let before = self.others_empty(core, obj);
        let alone = self.node(obj, own).load(Acquire) & LOW == ONE;
        alone && before.is_some() && self.others_empty(core, obj) == before
    }

    fn quiescent(&self, _core: usize, _freed: &mut impl FnMut(u32)) {}

    fn read_exact(&self, obj: u32) -> u64 {
        self.sum(obj)
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::*;
    use crate::{Region, build};

    #[test]
    fn the_root_moves_only_on_subtree_transitions() {
        let s: Snzi<Region> = build(Config::new(1, 4)).unwrap();
        let mut freed = Vec::new();
        s.create(0, 0);
        assert!(s.query(0));
        assert_eq!(s.node(0, 1).load(Relaxed) & LOW, 1);
        assert_eq!(s.node(0, 1).load(Relaxed) & ANNOUNCE, 0, "announced, then the bit cleared");
        s.inc(1, 0); // sibling leaf under the same inner node: the root does not move
        assert_eq!(s.node(0, 1).load(Relaxed) & LOW, 1);
        s.inc(3, 0); // the other subtree: the root counts it
        assert_eq!(s.node(0, 1).load(Relaxed) & LOW, 2);
        assert_eq!(s.read_exact(0), 3);
        s.dec(2, 0, &mut |o| freed.push(o)); // core 2's leaf is empty: departs elsewhere
        s.dec(3, 0, &mut |o| freed.push(o));
        assert_eq!(s.read_exact(0), 1);
        assert!(s.try_remove_unique(1, 0));
        s.dec(1, 0, &mut |o| freed.push(o));
        assert_eq!(freed, vec![0]);
        assert!(!s.query(0), "the last departure cleared the indicator");
        s.create(2, 0);
        assert!(s.query(0));
        assert_eq!(s.node(0, 1).load(Relaxed) >> 33, 2, "a new version per 0→1 arrival");
    }

    #[test]
    fn unique_gathers_the_callers_unit_onto_its_leaf() {
        let s: Snzi<Region> = build(Config::new(1, 3)).unwrap();
        s.create(2, 0);
        assert!(s.try_remove_unique(0, 0), "the one unit sat on core 2's leaf");
        assert_eq!((0..3).map(|c| s.node(0, s.width + c).load(Relaxed) & LOW).collect::<Vec<_>>(), [ONE, 0, 0]);
        s.inc(0, 0);
        s.dec(1, 0, &mut |_| {}); // departs from core 0's leaf: 1 left there
        s.inc(2, 0);
        assert!(!s.try_remove_unique(1, 0), "two references");
        assert_eq!(s.read_exact(0), 2, "a gather moves a unit, never adds or drops one");
    }
}
