//! RefCache, from RadixVM (Clements, Kaashoek, Zeldovich, EuroSys'13): per-core delta caches
//! in front of a global count, with zero confirmed over a full epoch.
//!
//! Each core has a small hashed cache of `(object, delta)` slots. An increment or decrement
//! only adjusts the calling core's slot; when two objects collide in a slot the old one is
//! *evicted* (its delta is added to the global count). At each quiescent point the core
//! flushes its whole cache, then reports to the epoch clock. When a flush takes an object's
//! global count to zero, the flushing core puts it on its *review queue* with a grace-period
//! ticket. A review happens once every core has flushed since: if the global count is still
//! zero and the object is not *dirty*, it is freed. Any flush that touches an object under
//! review marks it dirty (and bumps a touch counter, so the reviewer's compare-and-swap sees
//! every touch); a dirty object is cleaned and queued again for another epoch. A flush that
//! reaches an object the review already freed (the review saw that flush's zero before the
//! flush marked the flags) leaves it alone.
//! *Weak references* carry the object's generation; `tryget` upgrades one by marking the
//! object dirty (so a pending review cannot free it) and adding +1 to the local cache.
//!
//! **Why zero is safe:** the true count is the global count plus every core's unflushed
//! delta. A review runs only after every core flushed after the object was queued; if no
//! flush touched the global count since then (not dirty) and it is still zero, every core's
//! delta for the object was zero when it flushed, and no new reference could appear from
//! nothing (only holders increment; weak upgrades mark dirty), so the count is zero. The
//! review's compare-and-swap on the flags word races only with flushes and upgrades on that
//! same word, so exactly one review frees the object.
//!
//! Costs: 32 bytes per object (global count, flags, ticket, review link) plus 8 per object
//! per core (sequence word) and `cache_slots` words per core; increments and decrements touch
//! only the core's own lines (collisions cost one global RMW). Zero detection takes up to
//! three quiescent rounds (flush, review, and a second review when dirty), and every
//! quiescent point scans the whole cache.

use crate::epoch::Clock;
use crate::layout::{PerCore, Planner, Span, claim};
use crate::lists::Lists;
use crate::seq::Seqs;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed};
use crate::{Config, LayoutError, Word, Words};

// Fields of an object's record.
const GLOBAL: usize = 0;
const FLAGS: usize = 1;
const TICKET: usize = 2;

// Flag bits; a touch counter in bits 8..32; the generation in the upper 32 bits.
const LIVE: u64 = 1;
const REVIEW: u64 = 2;
const DIRTY: u64 = 4;
const TOUCH_UNIT: u64 = 1 << 8;
const TOUCH_MASK: u64 = 0xffff_ff00;
const GEN_SHIFT: u32 = 32;

/// Marks an object dirty and changes the flags word even if it was dirty already, so a
/// reviewer's compare-and-swap fails after any touch (no ABA on the dirty bit).
fn touched(f: u64) -> u64 {
    (f & !TOUCH_MASK) | (f.wrapping_add(TOUCH_UNIT) & TOUCH_MASK) | DIRTY
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
    seqs: Seqs,
    clock: Clock,
    review: Lists,
}

struct Plan {
    p: Planner,
    obj: Span,
    cache: PerCore,
    seqs: Seqs,
    clock: Clock,
    review: Lists,
}

fn plan(cfg: &Config) -> Plan {
    let mut p = Planner::new();
    let obj = p.shared(cfg.n_objects, 3);
    let cache = p.per_core(cfg.n_cores, cfg.cache_slots, 1);
    let seqs = Seqs::plan(&mut p, cfg.n_cores, cfg.n_objects);
    let clock = Clock::plan(&mut p, cfg.n_cores);
    let review = Lists::plan_shared(&mut p, cfg.n_cores, cfg.n_objects);
    Plan {
        p,
        obj,
        cache,
        seqs,
        clock,
        review,
    }
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
        self.cache.at(
            &self.mem,
            core,
            obj as usize & (self.cfg.cache_slots - 1),
            0,
        )
    }

    /// Adds `delta` to the global count; queues the object for review on `core` if that made
    /// it zero, or marks it dirty if it is under review already. Off the fast path.
    #[cold]
    #[inline(never)]
    fn evict(&self, core: usize, obj: u32, delta: i32) {
        if delta == 0 {
            return;
        }
        let d = delta as i64 as u64;
        let now_zero = self.field(obj, GLOBAL).fetch_add(d, AcqRel).wrapping_add(d) == 0;
        // A flush can land on a freed object: the review saw this flush's zero in the global
        // count before the flush got here. The object is free already; leave it alone.
        let old = self.field(obj, FLAGS).fetch_update(AcqRel, Acquire, |f| {
            if f & LIVE == 0 {
                None
            } else if f & REVIEW != 0 {
                Some(touched(f))
            } else if now_zero {
                Some((f | REVIEW) & !DIRTY)
            } else {
                None
            }
        });
        if matches!(old, Ok(f) if f & REVIEW == 0) {
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
        if next.unsigned_abs() >= DELTA_LIMIT {
            self.evict(core, obj, next);
            slot.store(0, Relaxed);
        } else {
            slot.store(tag(obj) | next as u32 as u64, Relaxed);
        }
    }

    /// Moves the delta in `slot` (holding `w`) to its object's global count and empties the
    /// slot: one operation on that object, so snapshots of it never see the delta twice.
    fn evict_slot(&self, core: usize, slot: &Word, w: u64) {
        let obj = (w >> 32) as u32 - 1;
        self.seqs.write(&self.mem, core, obj, || {
            self.evict(core, obj, delta_of(w));
            slot.store(0, Relaxed);
        });
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

    /// Reviews an object whose grace period is over: frees it, drops it, or queues it again.
    fn review_one(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        let flags = self.field(obj, FLAGS);
        loop {
            let f = flags.load(Acquire);
            let zero = self.field(obj, GLOBAL).load(Acquire) == 0;
            let next = match (zero, f & DIRTY != 0) {
                (false, _) => f & !(REVIEW | DIRTY),
                (true, true) => f & !DIRTY,
                (true, false) => f & !(LIVE | REVIEW),
            };
            if flags.compare_exchange(f, next, AcqRel, Acquire).is_ok() {
                if zero && next & REVIEW != 0 {
                    self.queue(core, obj);
                } else if next & LIVE == 0 {
                    freed(obj);
                }
                return;
            }
        }
    }

    fn refs(&self, obj: u32) -> u64 {
        if self.field(obj, FLAGS).load(Acquire) & LIVE == 0 {
            return 0;
        }
        let cached = (0..self.cfg.n_cores)
            .map(|c| self.slot(c, obj).load(Relaxed))
            .filter(|w| w & !0xffff_ffff == tag(obj))
            .fold(0u64, |s, w| s.wrapping_add(delta_of(w) as i64 as u64));
        self.field(obj, GLOBAL).load(Acquire).wrapping_add(cached)
    }

    /// A weak reference to the current life of `obj`; the caller holds a reference.
    pub fn weak(&self, obj: u32) -> Weak {
        Weak {
            obj,
            generation: (self.field(obj, FLAGS).load(Acquire) >> GEN_SHIFT) as u32,
        }
    }

    /// Upgrades a weak reference to a counted one on `core`, unless that life of the object
    /// was freed.
    pub fn tryget(&self, core: usize, weak: Weak) -> bool {
        self.seqs.write(&self.mem, core, weak.obj, || {
            let upgraded = self
                .field(weak.obj, FLAGS)
                .fetch_update(AcqRel, Acquire, |f| {
                    (f & LIVE != 0 && (f >> GEN_SHIFT) as u32 == weak.generation)
                        .then(|| touched(f))
                })
                .is_ok();
            if upgraded {
                self.cached_add(core, weak.obj, 1);
            }
            upgraded
        })
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
        let Plan {
            p,
            obj,
            cache,
            seqs,
            clock,
            review,
        } = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(RefCache {
            mem,
            cfg,
            obj,
            cache,
            seqs,
            clock,
            review,
        })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, core: usize, obj: u32) {
        self.seqs.write(&self.mem, core, obj, || {
            self.field(obj, GLOBAL).store(1, Relaxed);
            let _ = self.field(obj, FLAGS).fetch_update(AcqRel, Acquire, |f| {
                Some((((f >> GEN_SHIFT) + 1) << GEN_SHIFT) | LIVE)
            });
        })
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        self.seqs
            .write(&self.mem, core, obj, || self.cached_add(core, obj, 1))
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, _freed: &mut impl FnMut(u32)) {
        self.seqs
            .write(&self.mem, core, obj, || self.cached_add(core, obj, -1))
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.seqs.read(&self.mem, obj, || self.refs(obj)) == Some(1)
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        self.flush(core);
        self.clock.quiescent(&self.mem, core);
        self.review.drain(&self.mem, core, |obj| {
            if self
                .clock
                .done(&self.mem, self.field(obj, TICKET).load(Relaxed))
            {
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
        build(Config {
            cache_slots: slots,
            ..Config::new(n, cores)
        })
        .unwrap()
    }

    fn round(r: &RefCache<Region>, freed: &mut Vec<u32>) {
        for c in 0..r.cfg.n_cores {
            r.quiescent(c, &mut |o| freed.push(o));
        }
    }

    #[test]
    fn collision_evicts_to_the_global_count() {
        let r = rc(4, 1, 2);
        r.create(0, 0);
        r.create(0, 2);
        r.inc(0, 0);
        assert_eq!(r.field(0, GLOBAL).load(Relaxed), 1, "cached");
        r.inc(0, 2); // same slot: evicts object 0's +1
        assert_eq!(r.field(0, GLOBAL).load(Relaxed), 2);
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
    fn a_touch_under_review_makes_it_dirty() {
        let r = rc(1, 2, 8);
        let mut freed = Vec::new();
        r.create(0, 0);
        r.inc(1, 0);
        r.dec(0, 0, &mut |_| {});
        r.quiescent(0, &mut |o| freed.push(o)); // global 1 - 1 = 0: queued on core 0
        r.dec(1, 0, &mut |_| {});
        r.inc(1, 0); // net 0 on core 1: its flush touches nothing
        r.quiescent(1, &mut |o| freed.push(o));
        assert_ne!(
            r.field(0, FLAGS).load(Relaxed) & DIRTY,
            0,
            "core 1 flushed +1 under review"
        );
        round(&r, &mut freed);
        assert!(freed.is_empty(), "dirty: queued again");
        assert_eq!(r.read_exact(0), 1);
        r.dec(0, 0, &mut |_| {});
        for _ in 0..RefCache::<Region>::SETTLE_ROUNDS {
            round(&r, &mut freed);
        }
        assert_eq!(freed, vec![0]);
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
        for _ in 0..RefCache::<Region>::SETTLE_ROUNDS {
            round(&r, &mut freed);
        }
        assert!(freed.is_empty());
        assert_eq!(r.read_exact(0), 1);
        r.dec(1, 0, &mut |_| {});
        for _ in 0..RefCache::<Region>::SETTLE_ROUNDS {
            round(&r, &mut freed);
        }
        assert_eq!(freed, vec![0]);
        assert!(!r.tryget(0, w), "freed");
        r.create(0, 0);
        assert!(!r.tryget(0, w), "a weak reference names one life only");
        assert!(r.tryget(0, r.weak(0)));
    }
}
