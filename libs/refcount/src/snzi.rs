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
//! before its parent is. The root is a plain counter.
//!
//! An increment arrives at the calling core's leaf. A decrement departs from the calling
//! core's leaf if it has surplus, else from another core's (the surpluses are fungible: only
//! their sum is the count). The per-object count the strategy must answer exactly is the sum
//! of the leaves' surpluses, read at a quiescent point or as a consistent snapshot.
//!
//! **Why zero is safe:** the root counts children with non-zero surplus (plus arrivals being
//! undone, which only happen while a sibling arrival keeps the child non-zero). It goes 1→0
//! exactly when the last surplus in the tree departs; a caller holding a reference keeps its
//! leaf's path non-zero, so that depart is unique and comes after every other one.
//!
//! Costs: 16 bytes per object per core (leaf and sequence word) plus 8 per inner node
//! (about `n_cores` of them); an increment/decrement pair is two CASes on the core's own leaf
//! while the leaf keeps some surplus, but climbs to the root when it goes 0↔1, which a single
//! hot reference taken and dropped does every time.
//!
//! # Deviations from the paper, and why they are sound
//!
//! - **The root.** The paper's root carries an indicator word with an *announce* bit, so that
//!   `query` is one read of a word separate from the root's counter. Nothing here queries: the
//!   one question asked is whether the count reached zero, and the depart that takes the root
//!   counter 1→0 answers it with a single RMW that is unique (see above). The indicator would
//!   add a second shared word to every root transition, so it is left out; below the root, the
//!   half-increment protocol is the paper's. (Left to do: the indicator, for `query`.)
//! - **Sequence words (not yet removed).** Arrivals and departures run inside a per-core
//!   sequence-word write (`seq.rs`) so that `try_remove_unique`, which SNZI does not have, can
//!   sum the leaves consistently: two stores to the core's own line per operation. Leaves are
//!   CAS'd both ways and a departure may take surplus from any leaf, so the monotone-word
//!   order the other strategies use does not apply; a replacement is left to do.

use crate::layout::{PerCore, Planner, Span, claim};
use crate::seq::Seqs;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed};
use crate::sync::spin;
use crate::{Config, LayoutError, Word, Words};

/// A node word: version in the high half, surplus in halves (1 = ½, 2 = one) in the low.
const ONE: u64 = 2;
const HALF: u64 = 1;
const LOW: u64 = 0xffff_ffff;

/// A non-zero-indicator tree per object.
pub struct Snzi<M: Words> {
    mem: M,
    cfg: Config,
    /// Leaves sit at heap index `width + core`; the root is index 1.
    width: usize,
    inner: Span,
    leaves: PerCore,
    seqs: Seqs,
}

fn width(n_cores: usize) -> usize {
    n_cores.next_power_of_two().max(2)
}

fn plan(cfg: &Config) -> (Planner, Span, PerCore, Seqs) {
    let mut p = Planner::new();
    let inner = p.shared(cfg.n_objects, width(cfg.n_cores) - 1);
    let leaves = p.per_core(cfg.n_cores, cfg.n_objects, 1);
    let seqs = Seqs::plan(&mut p, cfg.n_cores, cfg.n_objects);
    (p, inner, leaves, seqs)
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
    fn arrive(&self, obj: u32, i: usize) {
        if i == 1 {
            self.node(obj, 1).fetch_add(1, AcqRel);
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
            return self.node(obj, 1).fetch_sub(1, AcqRel) == 1;
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

    fn sum(&self, obj: u32) -> u64 {
        (0..self.cfg.n_cores).map(|c| (self.node(obj, self.width + c).load(Acquire) & LOW) / ONE).sum()
    }

    /// SNZI's query: whether the object has any reference (the root indicator).
    pub fn query(&self, obj: u32) -> bool {
        self.node(obj, 1).load(Acquire) != 0
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
        let (p, inner, leaves, seqs) = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Snzi { mem, cfg, width: width(cfg.n_cores), inner, leaves, seqs })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, core: usize, obj: u32) {
        self.inc(core, obj)
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        self.seqs.write(&self.mem, core, obj, || self.arrive(obj, self.width + core))
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        if self.seqs.write(&self.mem, core, obj, || self.depart_any(core, obj)) {
            freed(obj);
        }
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.seqs.read(&self.mem, obj, || self.sum(obj)) == Some(1)
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
        assert_eq!(s.node(0, 1).load(Relaxed), 1);
        s.inc(1, 0); // sibling leaf under the same inner node: the root does not move
        assert_eq!(s.node(0, 1).load(Relaxed), 1);
        s.inc(3, 0); // the other subtree: the root counts it
        assert_eq!(s.node(0, 1).load(Relaxed), 2);
        assert_eq!(s.read_exact(0), 3);
        s.dec(2, 0, &mut |o| freed.push(o)); // core 2's leaf is empty: departs elsewhere
        s.dec(3, 0, &mut |o| freed.push(o));
        assert_eq!(s.read_exact(0), 1);
        assert!(s.try_remove_unique(1, 0));
        s.dec(1, 0, &mut |o| freed.push(o));
        assert_eq!(freed, vec![0]);
        assert!(!s.query(0));
    }
}
