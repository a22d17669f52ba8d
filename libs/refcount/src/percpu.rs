//! percpu-ref, after Linux's `lib/percpu-refcount.c`: per-core counters while the object
//! lives, one atomic counter once it is switched to atomic mode.
//!
//! # The Linux mechanism, as this module has it
//!
//! - **Percpu mode.** A get or put is a plain add to the calling core's counter; the atomic
//!   counter holds the base reference plus a large `BIAS`, so that nothing can take it to
//!   zero while the per-core counters are live.
//! - **`switch_to_atomic`** ([`PercpuRef::switch_to_atomic`]): sets the atomic-mode flag and
//!   starts a grace period (`epoch.rs`, the crate's RCU). Gets and puts that see the flag go
//!   to the atomic counter; those that saw percpu mode are finished once every core has
//!   reported a quiescent state. Then the switch's callback (Linux's
//!   `percpu_ref_switch_to_atomic_rcu`) sums the per-core counters into the atomic one and
//!   removes the bias, and reports the switch through `confirmed` (`confirm_switch`). From
//!   then on the atomic counter is the exact count, and the put that takes it to zero
//!   releases the object.
//! - **`switch_to_atomic_sync`**: the same, and waits for the confirmation, driving the
//!   caller's own quiescent points meanwhile (Linux sleeps on `percpu_ref_switch_waitq`).
//! - **`switch_to_percpu`**: from atomic mode, puts the bias back (less the frozen per-core
//!   sum, see below) and clears the flag with a release store; no grace period is needed,
//!   since late atomic operations are still counted. Refused for a dead (killed) object, as
//!   in Linux.
//! - **`kill`** (`percpu_ref_kill_and_confirm`): marks the object dead, switches it to
//!   atomic mode, and drops the base reference. **`resurrect`**: takes the base back, clears
//!   dead, and switches to percpu mode. **`tryget`** succeeds unless the count reached zero;
//!   **`tryget_live`** also fails once the object is dead.
//!
//! # Zero detection for page counts
//!
//! Frames have no owner that decides their end, so the strategy holds every frame's base
//! reference and uses the switch above as its zero test: a put lists the object on its
//! core's suspect list, and at that core's next quiescent point a suspect in percpu mode is
//! switched to atomic mode (marked `AUTO`). When that switch is confirmed the atomic
//! counter is exact: if only the base is left the strategy kills the object (the base put
//! takes the counter to zero and releases it), otherwise it switches it back to percpu mode.
//! A suspect already in atomic mode with only the base left is killed at once. Every put
//! that does not release lists the object, so the last put of a life always leads to one of
//! these checks.
//!
//! # Why a release is safe and happens once
//!
//! The count is `atomic − BIAS + Σ per-core − base` in percpu mode and while switching,
//! `atomic − base` after the fold (base = 1 until the kill). While the bias is in the atomic
//! counter, no put reaches zero. The fold runs only after the grace period, so every get or
//! put that saw percpu mode has stored to its core's counter before that core's report and
//! is in the sum, and every later one goes to the atomic counter. The counter therefore
//! reaches zero exactly once, at the fold or at one put's `fetch_sub`, and only that one
//! step releases. The base is dropped only by a kill, and the strategy kills only an object
//! whose exact atomic count is the base alone: no caller holds a reference, so none can
//! take one. The per-core counters are never reset (that would be another core's store);
//! each switch folds their sum in instead, so they drift by the references taken in one mode
//! and dropped in the other, far inside the bias (2^62).
//!
//! # `try_remove_unique` without a sequence word
//!
//! Each core keeps gets and puts in two words that only grow. In percpu mode a reader loads
//! the mode, every core's puts, then every core's gets, then the atomic counter, then the
//! mode again (Acquire loads; puts are stored with Release). Every reference whose put it
//! saw was taken before that put (its holder took it), so its get is seen too: a percpu get
//! in the later load of its word, an atomic get (one that saw the previous atomic phase) in
//! the later load of the atomic counter. Counting the caller's own reference, by induction on
//! the order references were taken, no reference is missed, so the result is an upper bound
//! on the true count: 1 means the caller's is the only one (SRCU's lock/unlock check). In
//! atomic mode the counter alone is exact. Every mode change bumps a generation in the mode
//! word before it touches the atomic counter, so a changed mode word between the two loads
//! throws the answer away; while a switch is in flight the answer is false.
//!
//! # Deviations from Linux, and why they are sound and no slower
//!
//! - **The strategy decides zero** (above): Linux's owners kill; frames have none. The kill,
//!   the grace period, the fold and confirmation, both switches, `resurrect`, `tryget` and
//!   `tryget_live` are Linux's; the suspect list and the `AUTO` decision after the switch
//!   are the addition. The fast path gains a load of the core's own suspect link per put.
//! - **Split per-core counters.** Linux keeps one per-CPU word that gets add to and puts
//!   subtract from; here gets and puts add to two words on the core's own line: still one
//!   plain add per operation, and monotone words give `try_remove_unique` (which Linux does
//!   not have) its sound bound without any extra store.
//! - **No extra reference during the switch.** Linux takes one when a switch starts and drops
//!   it after `confirm_switch`, so a count that reached zero meanwhile is released right after
//!   the confirmation. Here the fold itself sees the zero and releases at that moment.
//! - **Folding instead of zeroing.** Linux zeroes the per-CPU counters on
//!   `switch_to_percpu`; here they keep their values and the bias added back is reduced by
//!   their sum, which is the same count without stores to other cores' lines.
//! - **`force_atomic` implied.** The strategy switches back to percpu mode only objects it
//!   switched itself, so a caller's `switch_to_atomic` stays, as Linux's `force_atomic`
//!   does; but `resurrect` always returns to percpu mode.
//!
//! Costs: 16 bytes per object per core (gets, puts) plus the suspect links (8), and 24
//! shared; gets and puts touch only the core's own lines and read the object's mode word; a
//! zero check costs a grace period (two quiescent rounds) during which the object is in
//! atomic mode.

use crate::epoch::Clock;
use crate::layout::{PerCore, Planner, Span, claim};
use crate::lists::Lists;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::sync::spin;
use crate::{Config, LayoutError, Word, Words};

const BIAS: u64 = 1 << 62;

// Fields of an object's record.
const COUNT: usize = 0;
const MODE: usize = 1;
const TICKET: usize = 2;

// Fields of a core's per-object record.
const GETS: usize = 0;
const PUTS: usize = 1;

// Mode bits; the rest of the mode word is a generation, bumped by every change.
const LIVE: u64 = 1;
/// Gets and puts go to the atomic counter.
const ATOMIC: u64 = 2;
/// A switch to atomic mode waits for its grace period.
const SWITCHING: u64 = 4;
/// Killed: the base reference is gone; `tryget_live` and `switch_to_percpu` fail.
const DEAD: u64 = 8;
/// Switched to atomic by the strategy's zero check: decide after the confirmation.
const AUTO: u64 = 16;
/// A switch to percpu mode (or a resurrect) is in progress; its core alone changes the mode.
const CLAIM: u64 = 32;
const FLAGS: u64 = 63;
const GENERATION: u64 = 64;

/// Per-core counters with Linux's switch between percpu and atomic mode.
pub struct PercpuRef<M: Words> {
    mem: M,
    cfg: Config,
    obj: Span,
    pcpu: PerCore,
    clock: Clock,
    suspects: Lists,
    switching: Lists,
}

struct Plan {
    p: Planner,
    obj: Span,
    pcpu: PerCore,
    clock: Clock,
    suspects: Lists,
    switching: Lists,
}

fn plan(cfg: &Config) -> Plan {
    let mut p = Planner::new();
    let obj = p.shared(cfg.n_objects, 3);
    let pcpu = p.per_core(cfg.n_cores, cfg.n_objects, 2);
    let clock = Clock::plan(&mut p, cfg.n_cores);
    let suspects = Lists::plan_per_core(&mut p, cfg.n_cores, cfg.n_objects);
    let switching = Lists::plan_shared(&mut p, cfg.n_cores, cfg.n_objects);
    Plan { p, obj, pcpu, clock, suspects, switching }
}

impl<M: Words> PercpuRef<M> {
    #[inline]
    fn field(&self, obj: u32, f: usize) -> &Word {
        self.obj.at(&self.mem, obj as usize, f)
    }

    #[inline]
    fn local(&self, core: usize, obj: u32, f: usize) -> &Word {
        self.pcpu.at(&self.mem, core, obj as usize, f)
    }

    #[inline]
    fn mode(&self, obj: u32) -> u64 {
        self.field(obj, MODE).load(Acquire)
    }

    /// Replaces the mode word's flags by `f(flags)` and bumps its generation, unless `f`
    /// declines; returns the flags it replaced.
    fn update_mode(&self, obj: u32, mut f: impl FnMut(u64) -> Option<u64>) -> Option<u64> {
        self.field(obj, MODE)
            .fetch_update(AcqRel, Acquire, |m| f(m & FLAGS).map(|new| (m & !FLAGS).wrapping_add(GENERATION) | new))
            .ok()
            .map(|m| m & FLAGS)
    }

    /// [`Self::update_mode`] with a change that always applies.
    fn set_mode(&self, obj: u32, f: impl Fn(u64) -> u64) -> u64 {
        self.update_mode(obj, |m| Some(f(m))).unwrap_or_default()
    }

    /// Σ gets − puts over every core (wrapping).
    fn percpu_sum(&self, obj: u32) -> u64 {
        (0..self.cfg.n_cores)
            .fold(0u64, |s, c| s.wrapping_add(self.local(c, obj, GETS).load(Acquire)).wrapping_sub(self.local(c, obj, PUTS).load(Acquire)))
    }

    /// A plain add to the calling core's own counter `f` (percpu mode only).
    #[inline]
    fn bump(&self, core: usize, obj: u32, f: usize) {
        let w = self.local(core, obj, f);
        w.store(w.load(Relaxed).wrapping_add(1), Release);
    }

    fn inc_not_zero(&self, obj: u32) -> bool {
        self.field(obj, COUNT).fetch_update(AcqRel, Acquire, |c| (c != 0).then_some(c + 1)).is_ok()
    }

    /// A put on the atomic counter; true if it released the object.
    fn put_atomic(&self, obj: u32) -> bool {
        if self.field(obj, COUNT).fetch_sub(1, AcqRel) != 1 {
            return false;
        }
        self.set_mode(obj, |_| 0);
        true
    }

    /// Gets a reference unless the count already reached zero.
    pub fn tryget(&self, core: usize, obj: u32) -> bool {
        self.get_if(core, obj, LIVE)
    }

    /// Gets a reference unless the object is dead (killed) or its count reached zero.
    pub fn tryget_live(&self, core: usize, obj: u32) -> bool {
        self.get_if(core, obj, LIVE | DEAD)
    }

    fn get_if(&self, core: usize, obj: u32, mask: u64) -> bool {
        let m = self.mode(obj);
        if m & (LIVE | ATOMIC) == LIVE {
            self.bump(core, obj, GETS);
            true
        } else {
            m & mask == LIVE && self.inc_not_zero(obj)
        }
    }

    /// Linux's `percpu_ref_switch_to_atomic`: starts the switch of a live percpu-mode object
    /// to atomic mode; it is confirmed at `core`'s quiescent point after a grace period.
    /// True if the object is now in atomic mode or on its way there.
    pub fn switch_to_atomic(&self, core: usize, obj: u32) -> bool {
        self.start_switch(core, obj, 0);
        let m = self.mode(obj);
        m & (LIVE | ATOMIC) == LIVE | ATOMIC
    }

    /// Linux's `percpu_ref_switch_to_atomic_sync`: [`PercpuRef::switch_to_atomic`], then
    /// drives `core`'s quiescent points (reporting frees to `freed`) until the switch is
    /// confirmed. Every other core must keep reporting quiescent states meanwhile.
    pub fn switch_to_atomic_sync(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        loop {
            self.start_switch(core, obj, 0);
            let m = self.mode(obj);
            if m & LIVE == 0 || m & (ATOMIC | SWITCHING | CLAIM) == ATOMIC {
                return;
            }
            self.quiescent_confirm(core, freed, &mut |_| {});
            spin();
        }
    }

    /// Sets `ATOMIC | SWITCHING | extra` on a live percpu-mode object and queues the fold
    /// after a grace period. False if it was not live in percpu mode.
    fn start_switch(&self, core: usize, obj: u32, extra: u64) -> bool {
        if self.update_mode(obj, |m| (m & (LIVE | ATOMIC | SWITCHING | CLAIM) == LIVE).then_some(m | ATOMIC | SWITCHING | extra)).is_none()
        {
            return false;
        }
        self.field(obj, TICKET).store(self.clock.begin(&self.mem), Relaxed);
        self.switching.push(&self.mem, core, obj);
        true
    }

    /// Linux's `percpu_ref_switch_to_percpu`: from atomic mode (no switch in flight, not
    /// dead) back to percpu mode at once. True if the object is in percpu mode afterwards.
    pub fn switch_to_percpu(&self, _core: usize, obj: u32) -> bool {
        let claimed = self.update_mode(obj, |m| (m & (LIVE | ATOMIC | SWITCHING | DEAD | CLAIM) == LIVE | ATOMIC).then_some(m | CLAIM));
        if claimed.is_none() {
            return self.mode(obj) & (LIVE | ATOMIC | CLAIM) == LIVE;
        }
        self.unfreeze(obj);
        true
    }

    /// The second half of a switch to percpu mode, by the core that owns the switch: the
    /// bias goes back into the atomic counter, less the per-core sum (final since the grace
    /// period of the switch to atomic), then the mode flips with a release store.
    fn unfreeze(&self, obj: u32) {
        let sum = self.percpu_sum(obj);
        self.field(obj, COUNT).fetch_add(BIAS.wrapping_sub(sum), AcqRel);
        self.set_mode(obj, |_| LIVE);
    }

    /// Linux's `percpu_ref_kill_and_confirm`: marks `obj` dead, switches it to atomic mode
    /// (confirmed at `core`'s quiescent point) and drops the base reference; from then on the
    /// last put releases it. Frees found now go to `freed`. False if it was not live or was
    /// dead already. Waits out a switch to percpu mode in progress (Linux serialises the
    /// two under its switch lock).
    pub fn kill(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) -> bool {
        let old = loop {
            let killed = self.update_mode(obj, |m| {
                (m & (LIVE | DEAD | CLAIM) == LIVE).then_some(if m & ATOMIC == 0 { m | ATOMIC | SWITCHING | DEAD } else { m | DEAD })
            });
            match killed {
                Some(old) => break old,
                None if self.mode(obj) & (LIVE | DEAD | CLAIM) == LIVE | CLAIM => spin(),
                None => return false,
            }
        };
        if old & ATOMIC == 0 {
            self.field(obj, TICKET).store(self.clock.begin(&self.mem), Relaxed);
            self.switching.push(&self.mem, core, obj);
        }
        if self.put_atomic(obj) {
            freed(obj);
        }
        true
    }

    /// Linux's `percpu_ref_resurrect`: takes the base reference of a dead object back and
    /// returns it to percpu mode. False if it is not dead, still switching, or released.
    pub fn resurrect(&self, _core: usize, obj: u32) -> bool {
        let claimed = self.update_mode(obj, |m| (m & (LIVE | DEAD | SWITCHING | CLAIM) == LIVE | DEAD).then_some(m | CLAIM));
        if claimed.is_none() {
            return false;
        }
        if !self.inc_not_zero(obj) {
            // Released meanwhile: the releasing put clears the mode word.
            return false;
        }
        self.unfreeze(obj);
        true
    }

    /// Completes a switch to atomic mode whose grace period is over: fold, confirm, and the
    /// strategy's decision for an `AUTO` switch.
    fn complete(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32), confirmed: &mut impl FnMut(u32)) {
        // Announce the fold to readers of the mode word before the atomic counter moves.
        self.set_mode(obj, |m| m);
        let delta = self.percpu_sum(obj).wrapping_sub(BIAS);
        let n = self.field(obj, COUNT).fetch_add(delta, AcqRel).wrapping_add(delta);
        let m = self.set_mode(obj, |m| m & !(SWITCHING | AUTO));
        confirmed(obj);
        if n == 0 {
            self.set_mode(obj, |_| 0);
            freed(obj);
        } else if m & (AUTO | DEAD) == AUTO && !self.kill_if_base_only(core, obj, freed) {
            self.switch_to_percpu(core, obj);
        }
    }

    /// The strategy's zero test on an atomic-mode object, whose count is exact: the base
    /// alone means no caller holds a reference, so none can take one; kill it (the base put
    /// releases it). True if it did.
    fn kill_if_base_only(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) -> bool {
        self.field(obj, COUNT).load(Acquire) == 1 && self.kill(core, obj, freed)
    }

    /// [`RefCount::quiescent`], also reporting every confirmed switch to atomic mode to
    /// `confirmed` (Linux's `confirm_switch` / confirm-kill callback).
    pub fn quiescent_confirm(&self, core: usize, freed: &mut impl FnMut(u32), confirmed: &mut impl FnMut(u32)) {
        self.clock.quiescent(&self.mem, core);
        self.switching.drain(&self.mem, core, |obj| {
            if self.clock.done(&self.mem, self.field(obj, TICKET).load(Relaxed)) {
                self.complete(core, obj, freed, confirmed);
            } else {
                self.switching.push(&self.mem, core, obj);
            }
        });
        self.suspects.drain(&self.mem, core, |obj| {
            let m = self.mode(obj);
            if m & (LIVE | DEAD) != LIVE {
                return; // released, or dead: its last put releases it
            }
            let checked = match m & (ATOMIC | SWITCHING | CLAIM) {
                0 => self.start_switch(core, obj, AUTO),
                // Exact now. A later put lists it again, so a count above the base is done
                // with; a forced atomic mode stays (Linux's `force_atomic`).
                ATOMIC => {
                    self.kill_if_base_only(core, obj, freed);
                    true
                }
                // An `AUTO` switch decides at its confirmation.
                x if x == ATOMIC | SWITCHING && m & AUTO != 0 => true,
                _ => false,
            };
            if !checked {
                self.suspects.push(&self.mem, core, obj); // mid-switch: look again next time
            }
        });
    }

    /// The bound of the module docs, or `None` while a switch is in flight or the mode
    /// changed under the reader.
    fn count_bound(&self, obj: u32) -> Option<u64> {
        let before = self.field(obj, MODE).load(Acquire);
        let m = before & FLAGS;
        let refs = match m & (LIVE | ATOMIC | SWITCHING | CLAIM) {
            LIVE => {
                let cores = 0..self.cfg.n_cores;
                let puts = cores.clone().fold(0u64, |s, c| s.wrapping_add(self.local(c, obj, PUTS).load(Acquire)));
                let gets = cores.fold(0u64, |s, c| s.wrapping_add(self.local(c, obj, GETS).load(Acquire)));
                self.field(obj, COUNT).load(Acquire).wrapping_sub(BIAS).wrapping_add(gets).wrapping_sub(puts)
            }
            x if x == LIVE | ATOMIC => self.field(obj, COUNT).load(Acquire),
            _ => return None,
        };
        let base = u64::from(m & DEAD == 0);
        (self.field(obj, MODE).load(Acquire) == before).then(|| refs.wrapping_sub(base))
    }
}

impl<M: Words> RefCount for PercpuRef<M> {
    type Mem = M;
    const NAME: &'static str = "percpu";
    const SETTLE_ROUNDS: usize = 2;

    fn words_needed(cfg: &Config) -> usize {
        plan(cfg).p.total()
    }

    fn new_in(mem: M, cfg: Config) -> Result<Self, LayoutError> {
        cfg.validate()?;
        let Plan { p, obj, pcpu, clock, suspects, switching } = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(PercpuRef { mem, cfg, obj, pcpu, clock, suspects, switching })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, _core: usize, obj: u32) {
        // Base reference + the caller's, less the residue of earlier lives.
        let count = BIAS.wrapping_add(2).wrapping_sub(self.percpu_sum(obj));
        self.field(obj, COUNT).store(count, Relaxed);
        self.set_mode(obj, |_| LIVE);
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        if self.mode(obj) & ATOMIC == 0 {
            self.bump(core, obj, GETS);
        } else {
            self.field(obj, COUNT).fetch_add(1, Relaxed);
        }
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        if self.mode(obj) & ATOMIC == 0 {
            self.bump(core, obj, PUTS);
        } else if self.put_atomic(obj) {
            freed(obj);
            return;
        }
        if !self.suspects.listed(&self.mem, core, obj) {
            self.suspects.push(&self.mem, core, obj);
        }
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.count_bound(obj) == Some(1)
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        self.quiescent_confirm(core, freed, &mut |_| {})
    }

    fn read_exact(&self, obj: u32) -> u64 {
        let m = self.mode(obj);
        if m & LIVE == 0 {
            return 0;
        }
        let count = self.field(obj, COUNT).load(Acquire);
        let internal =
            if m & ATOMIC == 0 || m & SWITCHING != 0 { count.wrapping_sub(BIAS).wrapping_add(self.percpu_sum(obj)) } else { count };
        internal.wrapping_sub(u64::from(m & DEAD == 0))
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::*;
    use crate::{Region, build};

    fn pr(n: usize, cores: usize) -> PercpuRef<Region> {
        build(Config::new(n, cores)).unwrap()
    }

    fn flags(p: &PercpuRef<Region>, obj: u32) -> u64 {
        p.mode(obj) & FLAGS
    }

    fn rounds(p: &PercpuRef<Region>, n: usize, freed: &mut Vec<u32>, confirmed: &mut Vec<u32>) {
        for _ in 0..n {
            for c in 0..p.cfg.n_cores {
                p.quiescent_confirm(c, &mut |o| freed.push(o), &mut |o| confirmed.push(o));
            }
        }
    }

    #[test]
    fn kill_switches_after_a_grace_period_then_last_put_releases() {
        let p = pr(2, 2);
        let (mut freed, mut confirmed) = (Vec::new(), Vec::new());
        p.create(0, 1);
        p.inc(1, 1);
        assert_eq!(p.read_exact(1), 2);
        assert!(p.kill(0, 1, &mut |o| freed.push(o)));
        assert!(!p.kill(0, 1, &mut |o| freed.push(o)), "already killed");
        assert!(p.tryget(1, 1), "switching: the biased counter is not zero");
        assert!(!p.tryget_live(1, 1), "killed");
        assert!(!p.try_remove_unique(1, 1), "no answer while a switch is in flight");
        p.dec(1, 1, &mut |o| freed.push(o));
        assert_eq!(p.read_exact(1), 2);
        p.quiescent_confirm(0, &mut |o| freed.push(o), &mut |o| confirmed.push(o));
        assert!(confirmed.is_empty(), "core 1 has not reported yet");
        p.quiescent_confirm(1, &mut |o| freed.push(o), &mut |o| confirmed.push(o));
        p.quiescent_confirm(0, &mut |o| freed.push(o), &mut |o| confirmed.push(o));
        assert_eq!(confirmed, vec![1], "completed at core 0's report after core 1's");
        assert_eq!(flags(&p, 1), LIVE | ATOMIC | DEAD);
        assert_eq!(p.read_exact(1), 2);
        p.dec(0, 1, &mut |o| freed.push(o));
        assert!(freed.is_empty());
        assert!(p.try_remove_unique(1, 1), "atomic mode: exact");
        p.dec(1, 1, &mut |o| freed.push(o));
        assert_eq!(freed, vec![1], "atomic mode: the last put releases at once");
        assert_eq!(flags(&p, 1), 0);
    }

    #[test]
    fn a_kill_with_no_reference_left_releases_at_the_fold() {
        let p = pr(1, 2);
        let (mut freed, mut confirmed) = (Vec::new(), Vec::new());
        p.create(0, 0);
        p.inc(1, 0);
        assert!(p.kill(0, 0, &mut |o| freed.push(o)));
        p.dec(0, 0, &mut |o| freed.push(o)); // percpu or atomic: the bias is still in
        p.dec(1, 0, &mut |o| freed.push(o));
        assert!(freed.is_empty(), "the bias keeps the counter above zero until the fold");
        rounds(&p, 1, &mut freed, &mut confirmed);
        p.quiescent_confirm(0, &mut |o| freed.push(o), &mut |o| confirmed.push(o));
        assert_eq!((freed, confirmed), (vec![0], vec![0]), "confirmed, then released by the fold");
    }

    #[test]
    fn resurrect_returns_to_percpu_mode() {
        let p = pr(1, 2);
        let (mut freed, mut confirmed) = (Vec::new(), Vec::new());
        p.create(0, 0);
        assert!(!p.resurrect(0, 0), "not killed");
        assert!(p.kill(0, 0, &mut |o| freed.push(o)));
        assert!(!p.resurrect(0, 0), "still switching");
        rounds(&p, 2, &mut freed, &mut confirmed);
        assert!(p.resurrect(1, 0));
        assert!(p.tryget_live(1, 0));
        assert_eq!(flags(&p, 0), LIVE);
        assert_eq!(p.read_exact(0), 2);
        p.dec(0, 0, &mut |o| freed.push(o));
        p.dec(1, 0, &mut |o| freed.push(o));
        assert!(freed.is_empty(), "percpu puts never release directly");
        rounds(&p, 2, &mut freed, &mut confirmed);
        assert_eq!(freed, vec![0]);
        assert!(!p.tryget(0, 0), "released: the count is zero");
        assert!(!p.resurrect(0, 0), "released");
    }

    #[test]
    fn switch_to_atomic_and_back_keeps_the_count() {
        let p = pr(1, 2);
        let (mut freed, mut confirmed) = (Vec::new(), Vec::new());
        p.create(0, 0);
        p.inc(1, 0);
        assert!(p.switch_to_percpu(0, 0), "already in percpu mode");
        assert!(p.switch_to_atomic(1, 0));
        assert!(!p.switch_to_percpu(0, 0), "a switch to atomic is in flight");
        rounds(&p, 2, &mut freed, &mut confirmed);
        assert_eq!(confirmed, vec![0]);
        assert_eq!(flags(&p, 0), LIVE | ATOMIC, "a caller's switch stays atomic");
        p.inc(0, 0);
        p.dec(1, 0, &mut |o| freed.push(o));
        rounds(&p, 2, &mut freed, &mut confirmed);
        assert_eq!(flags(&p, 0), LIVE | ATOMIC, "suspects do not undo a caller's switch");
        assert_eq!(p.read_exact(0), 2);
        assert!(p.switch_to_percpu(1, 0));
        assert_eq!(flags(&p, 0), LIVE);
        assert_eq!(p.read_exact(0), 2);
        p.dec(0, 0, &mut |o| freed.push(o));
        p.dec(0, 0, &mut |o| freed.push(o));
        rounds(&p, 2, &mut freed, &mut confirmed);
        assert_eq!(freed, vec![0], "the strategy's own switch found only the base");
    }

    #[test]
    fn the_sync_switch_waits_for_every_core() {
        let p = std::sync::Arc::new(pr(1, 2));
        p.create(0, 0);
        let done = std::sync::Arc::new(core::sync::atomic::AtomicBool::new(false));
        let other = {
            let (p, done) = (p.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reports = 0;
                while !done.load(Acquire) {
                    p.quiescent(1, &mut |_| panic!("nothing to free"));
                    reports += 1;
                    std::thread::yield_now();
                }
                reports
            })
        };
        p.switch_to_atomic_sync(0, 0, &mut |_| panic!("nothing to free"));
        assert_eq!(flags(&p, 0), LIVE | ATOMIC, "confirmed before it returns");
        done.store(true, Release);
        assert!(other.join().unwrap() > 0, "core 1 had to report");
        assert!(p.try_remove_unique(0, 0));
    }

    #[test]
    fn zero_check_keeps_referenced_objects_and_frees_dead_ones() {
        let p = pr(3, 2);
        let mut freed = Vec::new();
        for o in 0..3 {
            p.create(0, o);
            p.inc(1, o);
        }
        for o in 0..3 {
            p.dec(0, o, &mut |x| freed.push(x)); // taken on core 0, dropped there
        }
        p.dec(1, 2, &mut |x| freed.push(x));
        for _ in 0..PercpuRef::<Region>::SETTLE_ROUNDS {
            for c in 0..2 {
                RefCount::quiescent(&p, c, &mut |x: u32| freed.push(x));
            }
        }
        assert_eq!(freed, vec![2]);
        assert_eq!((p.read_exact(0), p.read_exact(1)), (1, 1));
        assert_eq!(flags(&p, 0), LIVE, "referenced: back to percpu mode");
        assert!(p.try_remove_unique(1, 0), "held by core 1, its get on core 1, core 0's put");
        p.inc(0, 0);
        assert!(!p.try_remove_unique(1, 0));
        p.dec(1, 0, &mut |x| freed.push(x));
        assert!(p.try_remove_unique(0, 0), "moved: core 0 holds the one left");
    }
}
