//! Biased reference counting (Choi, Shull, Torrellas, PACT'18), as CPython 3.13's
//! free-threaded build uses it: the owning core counts without atomics, others atomically.
//!
//! The core that creates an object owns it. The owner's increments and decrements go to a
//! *local* count that only it writes (plain stores). Every other core updates the *shared*
//! count with atomics; the shared count may go negative (the owner took references that
//! others dropped). Its two low bits are flags, as in CPython:
//!
//! - When a non-owner's decrement finds the shared word exactly zero, it does not subtract:
//!   it sets `QUEUED` and hands its reference to the owner's merge queue (the queue holds
//!   that reference). At its next quiescent point the owner *merges*: folds the local count
//!   into the shared one, drops the queue's reference, and sets `MERGED`.
//! - When the owner's local count reaches zero it merges too (sets `MERGED`); if the shared
//!   word was zero, the object is free at once.
//! - Once `MERGED`, every core uses the shared count, and the decrement that takes it to zero
//!   frees the object.
//!
//! **Why zero is safe:** the count is `local + shared` (less one while queued). Before the
//! merge the object cannot be freed by a non-owner (no `MERGED` flag) and the owner frees it
//! only when both parts are zero. After the merge `local` is frozen at zero, so `shared` is
//! the whole count and reaches zero at exactly one atomic update. The queue's reference keeps
//! a queued object alive until its merge.
//!
//! **`try_remove_unique`** (CPython has no such query) reads the owner's decrements, then the
//! shared word, then the owner's increments: the owner's local count is kept as two words
//! that only grow (*ups*, *downs*). A decrement the reader sees (an owner's down, stored with
//! Release, or a shared RMW) was made by a holder of the reference, so the increment that took
//! it happened before and is seen by the later loads (an owner's up, or a shared increment
//! earlier in that word's modification order). By induction on the order references were
//! taken, no reference is missed: the sum is an upper bound on the count, and 1 means the
//! caller's is the only one. Once `MERGED`, the shared word alone is exact (less the queue's
//! reference while `QUEUED`).
//!
//! Costs: 40 bytes per object (owner, ups, downs, shared, queue link); the owner's updates are
//! plain stores on the object's line, everyone else's a shared RMW on the same line: this
//! strategy wins when the owner does most of the traffic, as in CPython.
//!
//! # Deviations from CPython, and why they are sound
//!
//! - **The queued merge at a quiescent point.** CPython merges a queued object when the owning
//!   thread next runs its eval breaker; here the owner merges at its next `quiescent`, the same
//!   "owner between operations" point.
//! - **The owner's count in two words.** CPython's `ob_ref_local` is one word that the owner
//!   adds to and subtracts from; here increments add to ups and decrements to downs (still one
//!   plain add each, and the decrement compares the two own words for the zero-local merge),
//!   which gives `try_remove_unique` its bound without any store on the fast path.

use crate::layout::{Planner, Span, claim};
use crate::lists::Lists;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::{Config, LayoutError, Word, Words};

// Fields of an object's record.
const OWNER: usize = 0;
const UPS: usize = 1;
const DOWNS: usize = 2;
const SHARED: usize = 3;

// Shared-word flags; the count is the word shifted right by `SHIFT` (signed).
const QUEUED: u64 = 1;
const MERGED: u64 = 2;
const SHIFT: u32 = 2;
const UNIT: u64 = 1 << SHIFT;

fn count(shared: u64) -> i64 {
    shared as i64 >> SHIFT
}

/// Owner-local counts, shared atomic counts, and per-owner merge queues.
pub struct Biased<M: Words> {
    mem: M,
    cfg: Config,
    obj: Span,
    queues: Lists,
}

fn plan(cfg: &Config) -> (Planner, Span, Lists) {
    let mut p = Planner::new();
    let obj = p.shared(cfg.n_objects, 4);
    let queues = Lists::plan_shared(&mut p, cfg.n_cores, cfg.n_objects);
    (p, obj, queues)
}

impl<M: Words> Biased<M> {
    #[inline]
    fn field(&self, obj: u32, f: usize) -> &Word {
        self.obj.at(&self.mem, obj as usize, f)
    }

    #[inline]
    fn owned_by(&self, core: usize, obj: u32) -> bool {
        self.field(obj, OWNER).load(Relaxed) == core as u64 + 1
    }

    /// The owner's local count reached zero: merge. True if the object is free.
    #[inline]
    fn merge_zero_local(&self, obj: u32) -> bool {
        let shared = self.field(obj, SHARED);
        self.field(obj, OWNER).store(0, Relaxed);
        if shared.load(Acquire) == 0 {
            return true;
        }
        shared.fetch_or(MERGED, AcqRel) | MERGED == MERGED
    }

    /// A non-owner's decrement. True if the object is free.
    #[inline]
    fn dec_shared(&self, obj: u32) -> bool {
        let shared = self.field(obj, SHARED);
        let old = shared.fetch_update(AcqRel, Acquire, |s| Some(if s == 0 { QUEUED } else { s.wrapping_sub(UNIT) })).unwrap_or_else(|s| s);
        if old == 0 {
            let owner = self.field(obj, OWNER).load(Acquire) as usize - 1;
            self.queues.push(&self.mem, owner, obj);
            return false;
        }
        old.wrapping_sub(UNIT) == MERGED
    }

    /// The owner merges a queued object: local into shared, less the queue's reference.
    /// True if the object is free.
    fn merge_queued(&self, obj: u32) -> bool {
        let local = self.local(obj);
        let old = self
            .field(obj, SHARED)
            .fetch_update(AcqRel, Acquire, |s| Some(((count(s) + local - 1) << SHIFT) as u64 | MERGED))
            .unwrap_or_else(|s| s);
        self.field(obj, OWNER).store(0, Relaxed);
        count(old) + local - 1 == 0
    }

    /// The owner's local count (exact for the owner; frozen once merged).
    #[inline]
    fn local(&self, obj: u32) -> i64 {
        self.field(obj, UPS).load(Relaxed).wrapping_sub(self.field(obj, DOWNS).load(Relaxed)) as i64
    }

    /// The owner's downs, the shared word, the owner's ups, in that order: an upper bound on
    /// the count (see the module docs), exact once merged.
    fn bound(&self, obj: u32) -> u64 {
        let downs = self.field(obj, DOWNS).load(Acquire);
        let s = self.field(obj, SHARED).load(Acquire);
        let local = if s & MERGED != 0 { 0 } else { self.field(obj, UPS).load(Acquire).wrapping_sub(downs) as i64 };
        (count(s) + local - (s & QUEUED) as i64) as u64
    }

    /// The owning core of `obj`, if it has not merged yet.
    pub fn owner(&self, obj: u32) -> Option<usize> {
        (self.field(obj, OWNER).load(Acquire) as usize).checked_sub(1)
    }
}

impl<M: Words> RefCount for Biased<M> {
    type Mem = M;
    const NAME: &'static str = "biased";
    const SETTLE_ROUNDS: usize = 1;

    fn words_needed(cfg: &Config) -> usize {
        plan(cfg).0.total()
    }

    fn new_in(mem: M, cfg: Config) -> Result<Self, LayoutError> {
        cfg.validate()?;
        let (p, obj, queues) = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Biased { mem, cfg, obj, queues })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, core: usize, obj: u32) {
        self.field(obj, UPS).store(1, Relaxed);
        self.field(obj, DOWNS).store(0, Relaxed);
        self.field(obj, SHARED).store(0, Relaxed);
        self.field(obj, OWNER).store(core as u64 + 1, Release);
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        if self.owned_by(core, obj) {
            let ups = self.field(obj, UPS);
            ups.store(ups.load(Relaxed).wrapping_add(1), Relaxed);
        } else {
            self.field(obj, SHARED).fetch_add(UNIT, Relaxed);
        }
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        let free = if self.owned_by(core, obj) {
            let downs = self.field(obj, DOWNS);
            let n = downs.load(Relaxed).wrapping_add(1);
            downs.store(n, Release);
            n == self.field(obj, UPS).load(Relaxed) && self.merge_zero_local(obj)
        } else {
            self.dec_shared(obj)
        };
        if free {
            freed(obj);
        }
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.bound(obj) == 1
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        self.queues.drain(&self.mem, core, |obj| {
            if self.merge_queued(obj) {
                freed(obj);
            }
        });
    }

    fn read_exact(&self, obj: u32) -> u64 {
        self.bound(obj)
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::*;
    use crate::{Region, build};

    #[test]
    fn owner_counts_locally_others_share() {
        let b: Biased<Region> = build(Config::new(1, 2)).unwrap();
        let mut freed = Vec::new();
        b.create(0, 0);
        b.inc(0, 0);
        b.inc(1, 0);
        assert_eq!(b.local(0), 2);
        assert!(!b.try_remove_unique(1, 0));
        assert_eq!(count(b.field(0, SHARED).load(Relaxed)), 1);
        b.dec(0, 0, &mut |o| freed.push(o));
        b.dec(0, 0, &mut |o| freed.push(o)); // local hits 0 with shared 1: merged
        assert_eq!(b.owner(0), None);
        assert_eq!(b.field(0, SHARED).load(Relaxed), UNIT | MERGED);
        b.dec(1, 0, &mut |o| freed.push(o));
        assert_eq!(freed, vec![0]);
    }

    #[test]
    fn negative_shared_goes_through_the_owners_queue() {
        let b: Biased<Region> = build(Config::new(1, 2)).unwrap();
        let mut freed = Vec::new();
        b.create(0, 0);
        b.inc(0, 0);
        b.inc(0, 0);
        b.dec(1, 0, &mut |o| freed.push(o)); // shared was 0: queued, not subtracted
        assert_eq!(b.field(0, SHARED).load(Relaxed), QUEUED);
        b.dec(1, 0, &mut |o| freed.push(o)); // now it may go negative
        assert_eq!(count(b.field(0, SHARED).load(Relaxed)), -1);
        assert_eq!(b.read_exact(0), 1);
        b.quiescent(1, &mut |o| freed.push(o));
        assert_eq!(b.owner(0), Some(0), "only the owner merges");
        b.quiescent(0, &mut |o| freed.push(o));
        assert_eq!(b.owner(0), None);
        assert_eq!(b.read_exact(0), 1);
        assert!(b.try_remove_unique(1, 0));
        b.dec(1, 0, &mut |o| freed.push(o));
        assert_eq!(freed, vec![0]);
    }
}
