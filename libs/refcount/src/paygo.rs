//! PAYGO (Jung et al., "Pay Migration Tax to Homeland: Anchor-based Scalable Reference
//! Counting for Multicores", FAST'19): per-core local counters, plus anchor counters for
//! references that migrated.
//!
//! An increment bumps the calling core's local counter: that core is the reference's
//! *homeland*. A decrement on the homeland is a plain store to the same local counter; a
//! decrement on a *foreign* core pays the "migration tax": an atomic increment of the
//! homeland's anchor counter. Every core's `local − anchor` sums to the count. The explicit
//! API ([`Paygo::dec_from`]) takes the homeland; the trait's `dec` does not know it, so it
//! uses the calling core when that core has references homed there, and otherwise the first
//! core that has (references are interchangeable: only the sum matters).
//!
//! **Zero detection** (the flag protocol): a decrement flags the object on the calling
//! core's list; at that core's next quiescent point it publishes (one shared RMW, so the
//! last core to get there sees every earlier decrement) and sums the counters. A sum of zero
//! is final: nobody holds a reference, so nobody can add one. A compare-and-swap on the
//! object's live word reports it once even if several cores flagged it.
//!
//! # Why the sum can be read while other cores count
//!
//! Each core's local counter is kept as two words that only grow, *ups* (increments) and
//! *downs* (homeland decrements); the anchor (foreign decrements) only grows too. A checker
//! loads every core's downs and anchor first (Acquire; decrements store with Release), then
//! every core's ups. A decrement it sees was made by a holder of the reference, so the
//! increment that took it happened before, and the later load of that increment's ups word
//! sees it. By induction on the order references were taken (each one is taken by the holder
//! of an earlier one, the first by `create`), no reference that exists or can still come to
//! exist is missed: ups − downs − anchors is an upper bound on the count. So a zero is a
//! true zero, and a bound of 1 for a caller holding a reference means it holds the only one
//! (`try_remove_unique`). The bound is exact once the last decrement is seen, which the
//! publish step guarantees for the last checker, so no zero is missed either. The order is
//! the whole argument: a checker that loads ups first can miss the increment of a reference
//! handed on and see its drop, and the loom models `unique_while_a_reference_hops` and
//! `unique_while_a_reference_runs_ahead` fail on that swap.
//!
//! This port indexes counters directly by object (PAYGO hashes them per core to save
//! memory): 24 bytes per object per core (ups, downs, anchor) plus the flag links, and 8
//! shared. Increments and homeland decrements are one plain add to the core's own line;
//! foreign decrements are one atomic on the homeland's anchor.
//!
//! # Deviations from the paper, and why they are sound and no slower
//!
//! - **Homeland without per-task anchor information.** PAYGO records, per task, which core a
//!   reference was taken on, so that a foreign put pays its tax on the right anchor. The
//!   trait's `dec` carries no task, so it picks a homeland that has references homed there
//!   (see above). Callers that can keep the information use [`Paygo::get`], which returns a
//!   [`Home`] for the holder to keep, and [`Paygo::put`], which pays the tax on exactly that
//!   homeland, as PAYGO does ([`Paygo::dec_from`] takes the homeland as a core number). Sound
//!   because only the sum of `local − anchor` is the count; the cost of the trait's guess is
//!   that a decrement may pay the tax where PAYGO would not, or read other cores' counters to
//!   find a homeland.
//! - **Monotone words instead of the read-all flag.** PAYGO's checker raises a read-all flag
//!   that increments back off from while the counters are summed, so that it sums counters
//!   no increment is changing. Here the local counter is split into ups and downs (each
//!   operation is still one plain add) and the checker reads downs before ups (above), which
//!   gives the same guarantee the flag is for, an upper bound that is exact once the last
//!   decrement is seen, with no flag: no increment waits for a checker, and no fast path
//!   loads a word other cores write. *Sound*: the argument above, checked by the loom models
//!   named there. *No slower*, measured: refbench with a scratch copy of this module in which
//!   every increment first loads a shared flag word (spinning while it is set) and every
//!   check sets and clears it, against this module, five interleaved runs of each
//!   (`refbench --threads 2 --only paygo`, wall clock, 2 hardware threads, load average 16
//!   to 17 from other builds, so read the ratios, measured in the same run): one thread on
//!   a hot object 0.50× atomic without the flag against 0.40× with it, and 30.6 against
//!   42.3 ns per uncontended pair (medians). At 2 threads the runs scatter more than the
//!   difference (0.40× against 0.49× on the hot object).

use crate::layout::{PerCore, Planner, Span, claim};
use crate::lists::Lists;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::{Config, LayoutError, Word, Words};

const LIVE: u64 = 1;

/// Per-reference anchor information: the core whose local counter counted the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Home(u32);

// Fields of a core's local record.
const UPS: usize = 0;
const DOWNS: usize = 1;

/// Local and anchor counters per core, zero found by summing downs before ups.
pub struct Paygo<M: Words> {
    mem: M,
    cfg: Config,
    live: Span,
    order: Span,
    local: PerCore,
    anchor: PerCore,
    flagged: Lists,
}

struct Plan {
    p: Planner,
    live: Span,
    order: Span,
    local: PerCore,
    anchor: PerCore,
    flagged: Lists,
}

fn plan(cfg: &Config) -> Plan {
    let mut p = Planner::new();
    let live = p.shared(cfg.n_objects, 1);
    let order = p.shared(1, 1);
    let local = p.per_core(cfg.n_cores, cfg.n_objects, 2);
    let anchor = p.per_core(cfg.n_cores, cfg.n_objects, 1);
    let flagged = Lists::plan_per_core(&mut p, cfg.n_cores, cfg.n_objects);
    Plan { p, live, order, local, anchor, flagged }
}

impl<M: Words> Paygo<M> {
    #[inline]
    fn local(&self, core: usize, obj: u32, f: usize) -> &Word {
        self.local.at(&self.mem, core, obj as usize, f)
    }

    #[inline]
    fn anchor(&self, core: usize, obj: u32) -> &Word {
        self.anchor.at(&self.mem, core, obj as usize, 0)
    }

    /// References homed on `core` and not yet returned (a racy read for other cores).
    #[inline]
    fn homed(&self, core: usize, obj: u32) -> i64 {
        let ups = self.local(core, obj, UPS).load(Relaxed);
        ups.wrapping_sub(self.local(core, obj, DOWNS).load(Relaxed)).wrapping_sub(self.anchor(core, obj).load(Relaxed)) as i64
    }

    /// A plain add to the calling core's own word `f`; decrements release what they drop.
    #[inline]
    fn bump(&self, core: usize, obj: u32, f: usize) {
        let w = self.local(core, obj, f);
        w.store(w.load(Relaxed).wrapping_add(1), Release);
    }

    /// Ups − downs − anchors, downs and anchors read first: an upper bound on the count (see
    /// the module docs).
    fn bound(&self, obj: u32) -> u64 {
        let cores = 0..self.cfg.n_cores;
        let downs = cores
            .clone()
            .fold(0u64, |s, c| s.wrapping_add(self.local(c, obj, DOWNS).load(Acquire)).wrapping_add(self.anchor(c, obj).load(Acquire)));
        let ups = cores.fold(0u64, |s, c| s.wrapping_add(self.local(c, obj, UPS).load(Acquire)));
        ups.wrapping_sub(downs)
    }

    /// Takes a reference on `core` and returns its anchor information, for the holder (the
    /// paper's task) to keep and give back to [`Paygo::put`].
    #[inline]
    pub fn get(&self, core: usize, obj: u32) -> Home {
        self.inc(core, obj);
        Home(core as u32)
    }

    /// Drops a reference whose anchor information is `home`, from `core`: on its homeland a
    /// plain add, after a migration the tax on the homeland's anchor.
    #[inline]
    pub fn put(&self, core: usize, obj: u32, home: Home) {
        self.dec_from(core, home.0 as usize, obj)
    }

    /// Drops a reference taken on `home`, from `core`: local if they are the same core, an
    /// atomic on `home`'s anchor if not.
    #[inline]
    pub fn dec_from(&self, core: usize, home: usize, obj: u32) {
        if home == core {
            self.bump(core, obj, DOWNS);
        } else {
            self.anchor(home, obj).fetch_add(1, Release);
        }
        if !self.flagged.listed(&self.mem, core, obj) {
            self.flagged.push(&self.mem, core, obj);
        }
    }

    #[inline]
    fn homeland(&self, core: usize, obj: u32) -> usize {
        if self.homed(core, obj) > 0 {
            return core;
        }
        (1..self.cfg.n_cores).map(|i| (core + i) % self.cfg.n_cores).find(|&h| self.homed(h, obj) > 0).unwrap_or(core)
    }
}

impl<M: Words> RefCount for Paygo<M> {
    type Mem = M;
    const NAME: &'static str = "paygo";
    const SETTLE_ROUNDS: usize = 1;

    fn words_needed(cfg: &Config) -> usize {
        plan(cfg).p.total()
    }

    fn new_in(mem: M, cfg: Config) -> Result<Self, LayoutError> {
        cfg.validate()?;
        let Plan { p, live, order, local, anchor, flagged } = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Paygo { mem, cfg, live, order, local, anchor, flagged })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, core: usize, obj: u32) {
        self.bump(core, obj, UPS);
        self.live.at(&self.mem, obj as usize, 0).store(LIVE, Release);
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        let w = self.local(core, obj, UPS);
        w.store(w.load(Relaxed).wrapping_add(1), Relaxed);
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, _freed: &mut impl FnMut(u32)) {
        self.dec_from(core, self.homeland(core, obj), obj)
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.bound(obj) == 1
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        // Publish: of two cores that both get here after a decrement, the later one's RMW
        // reads from the earlier one's and so sees its decrements.
        self.order.at(&self.mem, 0, 0).fetch_add(0, AcqRel);
        self.flagged.drain(&self.mem, core, |obj| {
            let live = self.live.at(&self.mem, obj as usize, 0);
            if live.load(Acquire) == LIVE && self.bound(obj) == 0 && live.compare_exchange(LIVE, 0, AcqRel, Relaxed).is_ok() {
                freed(obj);
            }
        });
    }

    fn read_exact(&self, obj: u32) -> u64 {
        if self.live.at(&self.mem, obj as usize, 0).load(Acquire) == LIVE { self.bound(obj) } else { 0 }
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::*;
    use crate::{Region, build};

    #[test]
    fn foreign_decrements_pay_on_the_anchor() {
        let p: Paygo<Region> = build(Config::new(2, 3)).unwrap();
        let mut freed = Vec::new();
        p.create(0, 1);
        p.inc(2, 1);
        p.dec_from(1, 0, 1); // migrated to core 1: anchor of core 0
        assert_eq!(p.anchor(0, 1).load(Relaxed), 1);
        assert_eq!(p.homed(0, 1), 0, "the tax went to the homeland's anchor");
        assert_eq!(p.local(0, 1, DOWNS).load(Relaxed), 0, "the homeland's local counter is untouched");
        assert_eq!(p.read_exact(1), 1);
        p.dec(2, 1, &mut |_| {}); // homed on core 2: local
        assert_eq!(p.anchor(2, 1).load(Relaxed), 0);
        for c in 0..3 {
            p.quiescent(c, &mut |o| freed.push(o));
        }
        assert_eq!(freed, vec![1], "flagged on two cores, reported once");
        assert_eq!(p.read_exact(1), 0);
    }

    #[test]
    fn a_migrated_put_pays_at_the_home_it_was_taken_on() {
        let p: Paygo<Region> = build(Config::new(1, 3)).unwrap();
        p.create(2, 0);
        let home = p.get(0, 0); // a task takes a reference on core 0, then migrates to core 2
        p.put(2, 0, home);
        assert_eq!(p.anchor(0, 0).load(Relaxed), 1, "the tax goes to core 0's anchor");
        assert_eq!(p.local(2, 0, DOWNS).load(Relaxed), 0, "core 2's own reference is untouched");
        assert_eq!((p.homed(0, 0), p.homed(2, 0)), (0, 1));
        let here = p.get(2, 0);
        p.put(2, 0, here); // no migration: a plain add on the homeland
        assert_eq!(p.local(2, 0, DOWNS).load(Relaxed), 1);
        assert!(p.try_remove_unique(2, 0));
    }

    #[test]
    fn trait_dec_finds_a_homeland() {
        let p: Paygo<Region> = build(Config::new(1, 2)).unwrap();
        p.create(0, 0);
        p.inc(0, 0);
        p.dec(1, 0, &mut |_| {});
        assert_eq!(p.anchor(0, 0).load(Relaxed), 1, "core 1 homes nothing: core 0's anchor");
        assert!(p.try_remove_unique(1, 0));
    }
}
