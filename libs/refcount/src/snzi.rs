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
//! of the leaves' surpluses, read at a quiescent point or as a consistent snapshot.
//!
//! **Why zero is safe:** the root counts children with non-zero surplus (plus arrivals being
//! undone, which only happen while a sibling arrival keeps the child non-zero). It goes 1→0
//! exactly when the last surplus in the tree departs; a caller holding a reference keeps its
//! leaf's path non-zero, so that depart is unique and comes after every other one.
//!
//! Costs: 16 bytes per object per core (leaf and sequence word) plus 8 per inner node
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
//! - **Sequence words (not yet removed).** Arrivals and departures run inside a per-core
//!   sequence-word write (`seq.rs`) so that `try_remove_unique`, which SNZI does not have, can
//!   sum the leaves consistently: two stores to the core's own line per operation. Leaves are
//!   CAS'd both ways and a departure may take surplus from any leaf, so the monotone-word
//!   order the other strategies use does not apply; a replacement is left to do.

use crate::layout::{PerCore, Planner, Span, claim};
use crate::seq::Seqs;
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
    seqs: Seqs,
}

fn width(n_cores: usize) -> usize {
    n_cores.next_power_of_two().max(2)
}

fn plan(cfg: &Config) -> (Planner, Span, PerCore, Seqs) {
    let mut p = Planner::new();
    // Inner nodes 1..width, then the indicator.
    let inner = p.shared(cfg.n_objects, width(cfg.n_cores));
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
}
