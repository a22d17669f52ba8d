//! RefCache, from RadixVM (Clements, Kaashoek, Zeldovich, EuroSys'13): per-core delta caches
//! in front of a global count, with zero confirmed over a full epoch.
//!
//! Each core has a small hashed cache of `(object, delta)` slots. An increment or decrement
//! only adjusts the calling core's slot; when two objects collide in a slot the old one is
//! *evicted*. At each quiescent point the core flushes its whole cache (evicts every slot it
//! touched, zero deltas included), then reports to the epoch clock. Eviction is the paper's
//! `evict`, done as one compare-and-swap on the object's state word (global count, flags and
//! generation together, which stands for the paper's object lock): the delta is added to
//! the global count, and if the count
//! is then zero the object is queued on the evicting core's review queue with a grace-period
//! ticket, or, if it is under review already, marked *dirty*. A review happens once every core
//! has flushed since the ticket; in one such step it frees the object if the count is still
//! zero and it is not dirty, queues it again if dirty, and drops it from review if the count
//! is not zero (the eviction that takes it to zero again queues it again).
//! *Weak references* carry the object's generation; `tryget` upgrades one in one such step,
//! marks the object dirty if it is under review, and adds +1 to the local cache.
//!
//! # Why a free is safe, references moving between cores included
//!
//! The true count is the global count plus every core's unflushed delta; no core's delta
//! alone says anything, since a reference taken on core A may be dropped on core B (A's slot
//! +1, B's slot −1). Evictions, reviews and upgrades of one object are each one RMW on its
//! state word, so they are totally ordered (its modification order). Let Q be the step that
//! queued the object (count zero, not dirty), and R
//! the review that frees it (count zero, still not dirty).
//!
//! 1. *No eviction of the object lies between Q and R.* Only a review clears `DIRTY` or
//!    `REVIEW`, and none runs between Q and R. The last eviction before R would have left the
//!    count at R's value, zero, with `REVIEW` set, so it would have set `DIRTY`.
//! 2. *Every core's operations on the object fall on one side of Q.* R runs only once every
//!    core c reported to the clock after Q's ticket (Q happens before that report, the report
//!    before R). In its `quiescent` call c flushed its whole cache just before the report, with
//!    no operation between. So c's slot for the object was empty at that report F_c. c's last
//!    eviction E_c of the object before F_c is not between Q and R (1), so it precedes Q, and
//!    c did no operation on the object between E_c and F_c: any would have left a touched
//!    slot (+1 then −1 is delta zero, and still touched), evicted before F_c. Hence each of
//!    c's operations precedes E_c (so Q, whose count includes it) or follows F_c (so Q).
//! 3. *Nothing is held at Q, so nothing is held at R.* The operations before Q are exactly
//!    those Q's count includes, and it is zero: no reference taken before Q survives it. An
//!    operation after Q on the object needs a held reference (the caller's contract), so there
//!    is none; an upgrade after Q either precedes R in that order (it set `DIRTY`: contradicts
//!    R) or follows it (it sees the object free and fails).
//!
//! Step 2 is where a zero delta matters: a core whose slot was touched but nets to zero must
//! still evict it, or a reference that moved from B to A while the object was under review
//! (B: +1 before the queueing, −1 after; A: +1 after its flush) is freed under A
//! (`tests::a_zero_delta_under_review_keeps_a_moved_reference`).
//!
//! # Deviations from the paper, and why they are sound and no slower
//!
//! - **Grace periods instead of `epoch + 2`.** RadixVM reviews an object two global epochs
//!   after it was queued, an epoch ending when every core has flushed. Here a ticket from the
//!   crate's clock (`epoch.rs`) ends when every core has flushed and reported after it: the
//!   condition step 2 needs, reached without waiting for the whole system's next epoch
//!   boundary, so reviews come no later.
//! - **One state word instead of a lock.** The paper locks the object around `evict` and
//!   `review`; here count, flags and generation share one word and each step is one
//!   compare-and-swap, which orders the steps as the lock would, with one RMW instead of
//!   lock, update and unlock, and no core ever waits for a preempted lock holder.
//! - **Zero deltas are evicted.** The paper skips a zero delta when a racy read of the count
//!   is not zero. Under a weak memory model that read may be stale by the time the core
//!   reports, which is exactly the case step 2 rules out, so every touched slot is evicted:
//!   one RMW on the object's line per touched object per core per epoch, the price the paper
//!   pays for every non-zero delta. The count has 36 bits and the generation 24 (a weak
//!   reference could be mistaken for one 2^24 lives later).
//! - **`try_remove_unique`, which RadixVM does not have, stays off the fast path.** It
//!   answers from the global count alone (below); what it needs from the other paths is one
//!   plain store to the evicting core's own line per eviction, and Release instead of
//!   Relaxed on the slot stores (the same `mov` on x86). Increments and decrements that hit
//!   their slot carry nothing else.
//!
//! # `try_remove_unique` without a sequence word
//!
//! The caller on core c holds a reference. It first evicts its own slot for the object (c
//! is between operations, so this is its own slow path), then reads every core's *eviction
//! count* for the object (a per-core, per-object word that only its core writes, bumped by
//! every eviction of the object after its compare-and-swap and before the slot is emptied),
//! the state word, every core's slot, and the eviction counts again, all with Acquire. It
//! answers true only if the object is live with global count 1, no slot holds a delta for
//! it (zero included), and the counts did not move. Why that is the only reference:
//!
//! - *A reference whose +1 was flushed* is in the count read, unless the eviction that
//!   flushed it is not visible to the state load; but then its slot still held the delta
//!   (the reader sees it, false) or the reader saw the slot emptied after it, whose Release
//!   store follows the eviction's count bump, so the second count read sees the bump
//!   (false), or the first one did, and the bump follows the compare-and-swap, so the state
//!   load sees it after all.
//! - *A reference whose +1 is still cached* makes its slot non-empty until an eviction, which
//!   the same reasoning catches.
//! - *A decrement the state shows* (the count read is below the number of references taken)
//!   was flushed by an eviction the state load synchronised with; the holder that dropped it
//!   had taken or been handed it after its +1 was cached, so the slot loads, which follow
//!   the state load, see that +1 or a later value of its slot (non-empty, or an eviction
//!   the counts show). So the count is never low by a moved reference.
//!
//! So the count read is an upper bound on the references, and 1 means the caller's is the
//! only one; nobody else can take one while it holds the only one. Weak upgrades are the
//! exception (`tryget` needs no reference): a caller that hands out weak references must not
//! rely on the answer staying true. It is false whenever another core caches a delta for
//! the object, even one that nets to zero, until that core's next quiescent point (the
//! memory server reaches one on every core after every batch). The loom models
//! `unique_while_a_holder_flushes` (drop the count check: it fails) and
//! `unique_while_a_reference_hops` check it.
//!
//! Costs: 16 bytes per object (state word, ticket) and a review link, plus
//! 8 per object per core (eviction count) and `cache_slots` words per core; increments and
//! decrements touch only the core's own lines (collisions cost one eviction RMW and one
//! store to the core's own eviction count). Zero
//! detection takes up to three quiescent rounds (flush, review, and a second review when
//! dirty), and every quiescent point scans the whole cache.

use crate::epoch::Clock;
use crate::layout::{PerCore, Planner, Span, claim};
use crate::lists::Lists;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::{Config, LayoutError, Word, Words};

// Fields of an object's record.
const STATE: usize = 0;
const TICKET: usize = 1;

// The state word: the global count (36 bits, two's complement, since flushes from different
// cores may arrive in any order), three flag bits, and the generation (24 bits).
const COUNT_BITS: u32 = 36;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const LIVE: u64 = 1 << COUNT_BITS;
const REVIEW: u64 = 2 << COUNT_BITS;
const DIRTY: u64 = 4 << COUNT_BITS;
const GEN_SHIFT: u32 = 40;

/// The global count in state word `s`, as a wrapping `u64`.
fn count_of(s: u64) -> u64 {
    (((s & COUNT_MASK) << (64 - COUNT_BITS)) as i64 >> (64 - COUNT_BITS)) as u64
}

/// `s` with its count moved by `delta`.
fn add_count(s: u64, delta: i32) -> u64 {
    (s & !COUNT_MASK) | (s.wrapping_add(delta as i64 as u64) & COUNT_MASK)
}

fn generation_of(s: u64) -> u32 {
    (s >> GEN_SHIFT) as u32
}

/// A core flushes a slot early before its delta leaves this range.
const DELTA_LIMIT: u32 = 1 << 30;

/// A weak reference: names one life of an object, and can be upgraded while it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weak {
    obj: u32,
    generation: u32,
}

/// Per-core delta caches, a review queue per core, and weak references.
pub struct RefCache<M: Words> {
    mem: M,
    cfg: Config,
    obj: Span,
    cache: PerCore,
    evictions: PerCore,
    clock: Clock,
    review: Lists,
}

struct Plan {
    p: Planner,
    obj: Span,
    cache: PerCore,
    evictions: PerCore,
    clock: Clock,
    review: Lists,
}

fn plan(cfg: &Config) -> Plan {
    let mut p = Planner::new();
    let obj = p.shared(cfg.n_objects, 2);
    let cache = p.per_core(cfg.n_cores, cfg.cache_slots, 1);
    let evictions = p.per_core(cfg.n_cores, cfg.n_objects, 1);
    let clock = Clock::plan(&mut p, cfg.n_cores);
    let review = Lists::plan_shared(&mut p, cfg.n_cores, cfg.n_objects);
    Plan { p, obj, cache, evictions, clock, review }
}

fn tag(obj: u32) -> u64 {
    (obj as u64 + 1) << 32
}

fn delta_of(slot: u64) -> i32 {
    slot as u32 as i32
}

impl<M: Words> RefCache<M> {
    #[inline]
    fn field(&self, obj: u32, f: usize) -> &Word {
        self.obj.at(&self.mem, obj as usize, f)
    }

    #[inline]
    fn slot(&self, core: usize, obj: u32) -> &Word {
        self.cache.at(&self.mem, core, obj as usize & (self.cfg.cache_slots - 1), 0)
    }

    /// Changes `obj`'s state word with `f` in one compare-and-swap (the paper's per-object
    /// lock: every eviction, review and upgrade of the object is one such step, so they are
    /// totally ordered). Returns the state it replaced, or `None` if `f` declined.
    fn update(&self, obj: u32, f: impl FnMut(u64) -> Option<u64>) -> Option<u64> {
        self.field(obj, STATE).fetch_update(AcqRel, Acquire, f).ok()
    }

    /// The paper's `evict`, in one step: adds `delta` (zero included) to the global count; if
    /// the count is then zero, queues the object for review on `core`, or marks it dirty if it
    /// is under review already. Off the fast path.
    #[cold]
    #[inline(never)]
    fn evict(&self, core: usize, obj: u32, delta: i32) {
        // A free object has no delta anywhere (the safety argument): declining leaves it alone
        // should a caller break the contract, rather than revive it.
        let old = self.update(obj, |s| {
            (s & LIVE != 0).then(|| {
                let next = add_count(s, delta);
                match (count_of(next) == 0, s & REVIEW != 0) {
                    (false, _) => next,
                    (true, true) => next | DIRTY,
                    (true, false) => (next | REVIEW) & !DIRTY,
                }
            })
        });
        // After the CAS, before the slot is emptied: a unique check that sees the empty slot
        // sees this count move too (see `try_remove_unique`).
        let w = self.evictions.at(&self.mem, core, obj as usize, 0);
        w.store(w.load(Relaxed) + 1, Release);
        if let Some(s) = old
            && s & REVIEW == 0
            && count_of(add_count(s, delta)) == 0
        {
            self.queue(core, obj);
        }
    }

    fn queue(&self, core: usize, obj: u32) {
        let ticket = self.clock.begin(&self.mem);
        self.field(obj, TICKET).store(ticket, Relaxed);
        self.review.push(&self.mem, core, obj);
    }

    #[inline]
    fn cached_add(&self, core: usize, obj: u32, delta: i32) {
        let slot = self.slot(core, obj);
        let w = slot.load(Relaxed);
        let cur = if w & !0xffff_ffff == tag(obj) {
            delta_of(w)
        } else {
            if w != 0 {
                self.evict_slot(core, slot, w);
            }
            0
        };
        let next = cur + delta;
        // Release: a unique check that sees this store sees the eviction counts before it.
        if next.unsigned_abs() >= DELTA_LIMIT {
            self.evict(core, obj, next);
            slot.store(0, Release);
        } else {
            slot.store(tag(obj) | next as u32 as u64, Release);
        }
    }

    /// Moves the delta in `slot` (holding `w`) to its object's global count and empties the
    /// slot.
    fn evict_slot(&self, core: usize, slot: &Word, w: u64) {
        self.evict(core, (w >> 32) as u32 - 1, delta_of(w));
        slot.store(0, Release);
    }

    /// The sum of every core's eviction count for `obj`; the counts only grow.
    fn evictions_of(&self, obj: u32) -> u64 {
        (0..self.cfg.n_cores).fold(0, |sum, c| sum + self.evictions.at(&self.mem, c, obj as usize, 0).load(Acquire))
    }

    fn flush(&self, core: usize) {
        for i in 0..self.cfg.cache_slots {
            let slot = self.cache.at(&self.mem, core, i, 0);
            let w = slot.load(Relaxed);
            if w != 0 {
                self.evict_slot(core, slot, w);
            }
        }
    }

    /// The paper's `review`, in one step, for an object whose grace period is over: drops it
    /// from review if its count is not zero, queues it again if dirty, else frees it.
    fn review_one(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        let old = self.update(obj, |s| {
            Some(match (count_of(s) == 0, s & DIRTY != 0) {
                (false, _) => s & !(REVIEW | DIRTY),
                (true, true) => s & !DIRTY,
                (true, false) => s & !(LIVE | REVIEW),
            })
        });
        let s = old.expect("the review always changes the state");
        match (count_of(s) == 0, s & DIRTY != 0) {
            (false, _) => {}
            (true, true) => self.queue(core, obj),
            (true, false) => freed(obj),
        }
    }

    fn refs(&self, obj: u32) -> u64 {
        let s = self.field(obj, STATE).load(Acquire);
        if s & LIVE == 0 {
            return 0;
        }
        let cached = (0..self.cfg.n_cores)
            .map(|c| self.slot(c, obj).load(Relaxed))
            .filter(|w| w & !0xffff_ffff == tag(obj))
            .fold(0u64, |s, w| s.wrapping_add(delta_of(w) as i64 as u64));
        count_of(s).wrapping_add(cached)
    }

    /// A weak reference to the current life of `obj`; the caller holds a reference.
    pub fn weak(&self, obj: u32) -> Weak {
        Weak { obj, generation: generation_of(self.field(obj, STATE).load(Acquire)) }
    }

    /// Upgrades a weak reference to a counted one on `core`, unless that life of the object
    /// was freed.
    pub fn tryget(&self, core: usize, weak: Weak) -> bool {
        // Dirty under review: the review pending now must not free the object this +1 is
        // about to reach (through this core's cache, flushed before its next report).
        let upgraded = self
            .update(weak.obj, |s| {
                (s & LIVE != 0 && generation_of(s) == weak.generation).then_some(if s & REVIEW != 0 { s | DIRTY } else { s })
            })
            .is_some();
        if upgraded {
            self.cached_add(core, weak.obj, 1);
        }
        upgraded
    }
}

impl<M: Words> RefCount for RefCache<M> {
    type Mem = M;
    const NAME: &'static str = "refcache";
    const SETTLE_ROUNDS: usize = 3;

    fn words_needed(cfg: &Config) -> usize {
        plan(cfg).p.total()
    }

    fn new_in(mem: M, cfg: Config) -> Result<Self, LayoutError> {
        cfg.validate()?;
        let Plan { p, obj, cache, evictions, clock, review } = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(RefCache { mem, cfg, obj, cache, evictions, clock, review })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, _core: usize, obj: u32) {
        self.update(obj, |s| Some((((s >> GEN_SHIFT) + 1) << GEN_SHIFT) | LIVE | add_count(0, 1)));
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        self.cached_add(core, obj, 1)
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, _freed: &mut impl FnMut(u32)) {
        self.cached_add(core, obj, -1)
    }

    /// Flushes the caller's own slot for `obj`, then answers from the global count alone:
    /// true if it is 1 while no core caches a delta for `obj` and no core evicted one
    /// meanwhile (the module docs give the argument).
    fn try_remove_unique(&self, core: usize, obj: u32) -> bool {
        let own = self.slot(core, obj);
        let w = own.load(Relaxed);
        if w & !0xffff_ffff == tag(obj) {
            self.evict_slot(core, own, w);
        }
        let before = self.evictions_of(obj);
        let s = self.field(obj, STATE).load(Acquire);
        let cached = (0..self.cfg.n_cores).any(|c| self.slot(c, obj).load(Acquire) & !0xffff_ffff == tag(obj));
        s & LIVE != 0 && count_of(s) == 1 && !cached && self.evictions_of(obj) == before
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        self.flush(core);
        self.clock.quiescent(&self.mem, core);
        self.review.drain(&self.mem, core, |obj| {
            if self.clock.done(&self.mem, self.field(obj, TICKET).load(Relaxed)) {
                self.review_one(core, obj, freed);
            } else {
                self.review.push(&self.mem, core, obj);
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

    fn rc(n: usize, cores: usize, slots: usize) -> RefCache<Region> {
        build(Config { cache_slots: slots, ..Config::new(n, cores) }).unwrap()
    }

    fn round(r: &RefCache<Region>, freed: &mut Vec<u32>) {
        for c in 0..r.cfg.n_cores {
            r.quiescent(c, &mut |o| freed.push(o));
        }
    }

    fn settle(r: &RefCache<Region>, freed: &mut Vec<u32>) {
        for _ in 0..RefCache::<Region>::SETTLE_ROUNDS {
            round(r, freed);
        }
    }

    /// Object 0 created on `first`, shared with `holder`, dropped on `first` and flushed
    /// there: the global count is 0 and it is queued on `first`, while `holder` holds +1.
    fn queued_while_held(r: &RefCache<Region>, first: usize, holder: usize, freed: &mut Vec<u32>) {
        r.create(first, 0);
        r.inc(holder, 0);
        r.dec(first, 0, &mut |o| freed.push(o));
        r.quiescent(first, &mut |o| freed.push(o));
    }

    #[test]
    fn collision_evicts_to_the_global_count() {
        let r = rc(4, 1, 2);
        r.create(0, 0);
        r.create(0, 2);
        r.inc(0, 0);
        assert_eq!(count_of(r.field(0, STATE).load(Relaxed)), 1, "cached");
        r.inc(0, 2); // same slot: evicts object 0's +1
        assert_eq!(count_of(r.field(0, STATE).load(Relaxed)), 2);
        assert_eq!((r.read_exact(0), r.read_exact(2)), (2, 2));
    }

    #[test]
    fn zero_must_hold_for_a_full_epoch() {
        let r = rc(2, 2, 8);
        let mut freed = Vec::new();
        r.create(0, 1);
        r.dec(1, 1, &mut |_| {});
        round(&r, &mut freed);
        assert!(freed.is_empty(), "queued, but the epoch is not over");
        round(&r, &mut freed);
        assert_eq!(freed, vec![1]);
        assert_eq!(r.read_exact(1), 0);
    }

    #[test]
    fn zero_again_under_review_makes_it_dirty() {
        let r = rc(1, 2, 8);
        let mut freed = Vec::new();
        queued_while_held(&r, 0, 1, &mut freed);
        r.inc(1, 0);
        r.quiescent(1, &mut |o| freed.push(o)); // global 2: not zero, not dirty
        assert_eq!(r.field(0, STATE).load(Relaxed) & (REVIEW | DIRTY), REVIEW);
        r.dec(0, 0, &mut |_| {});
        r.dec(0, 0, &mut |_| {});
        // Global 2 - 2 = 0 under review: dirty, so the review that runs in this same call
        // queues it again instead of trusting a zero that a flush made after the queueing.
        r.quiescent(0, &mut |o| freed.push(o));
        assert!(freed.is_empty(), "dirty: queued again");
        assert_eq!(r.field(0, STATE).load(Relaxed) & (REVIEW | DIRTY), REVIEW);
        settle(&r, &mut freed);
        assert_eq!(freed, vec![0]);
    }

    #[test]
    fn a_count_above_zero_at_review_drops_it_from_review() {
        let r = rc(1, 2, 8);
        let mut freed = Vec::new();
        queued_while_held(&r, 0, 1, &mut freed);
        round(&r, &mut freed); // core 1 flushes +1: global 1
        round(&r, &mut freed); // core 0 reviews: count 1
        assert!(freed.is_empty());
        assert_eq!(r.field(0, STATE).load(Relaxed) & (REVIEW | DIRTY), 0);
        r.dec(1, 0, &mut |_| {});
        settle(&r, &mut freed);
        assert_eq!(freed, vec![0], "the eviction that reached zero again queued it");
    }

    /// The reference moves A → … → B → A while the object is under review: B's flush
    /// carries a zero delta, which must still count as a touch.
    #[test]
    fn a_zero_delta_under_review_keeps_a_moved_reference() {
        let (a, b, c) = (0, 1, 2);
        let r = rc(1, 3, 8);
        let mut freed = Vec::new();
        queued_while_held(&r, c, b, &mut freed);
        r.quiescent(a, &mut |o| freed.push(o));
        r.inc(a, 0); // A takes the reference B holds ...
        r.dec(b, 0, &mut |o| freed.push(o)); // ... and B drops its own: B's slot is +1 - 1
        r.quiescent(b, &mut |o| freed.push(o)); // every core has flushed since the queueing
        r.quiescent(c, &mut |o| freed.push(o)); // the review
        assert!(freed.is_empty(), "freed while core A holds a reference");
        assert_eq!(r.read_exact(0), 1);
        r.dec(a, 0, &mut |o| freed.push(o));
        settle(&r, &mut freed);
        assert_eq!(freed, vec![0]);
    }

    #[test]
    fn unique_evicts_its_own_slot_and_waits_for_other_cores() {
        let r = rc(1, 2, 8);
        r.create(0, 0);
        r.inc(0, 0);
        r.dec(0, 0, &mut |_| {});
        assert!(r.try_remove_unique(0, 0), "the caller's own cached delta is flushed first");
        assert_eq!(delta_of(r.slot(0, 0).load(Relaxed)), 0);
        r.inc(1, 0);
        r.dec(1, 0, &mut |_| {});
        assert!(!r.try_remove_unique(0, 0), "core 1 caches a delta (zero): not known yet");
        r.quiescent(1, &mut |_| {});
        assert!(r.try_remove_unique(0, 0));
    }

    #[test]
    fn weak_upgrade_races_the_review() {
        let r = rc(1, 2, 8);
        let mut freed = Vec::new();
        r.create(0, 0);
        let w = r.weak(0);
        r.dec(0, 0, &mut |_| {});
        round(&r, &mut freed);
        assert!(r.tryget(1, w), "queued, not freed yet: the upgrade wins");
        settle(&r, &mut freed);
        assert!(freed.is_empty());
        assert_eq!(r.read_exact(0), 1);
        r.dec(1, 0, &mut |_| {});
        settle(&r, &mut freed);
        assert_eq!(freed, vec![0]);
        assert!(!r.tryget(0, w), "freed");
        r.create(0, 0);
        assert!(!r.tryget(0, w), "a weak reference names one life only");
        assert!(r.tryget(0, r.weak(0)));
    }
}
