//! percpu-ref, after Linux's `lib/percpu-refcount.c`: per-core counters while the object
//! lives, an atomic counter once it is killed.
//!
//! In *percpu mode* a get or put is a plain store to the calling core's counter; the shared
//! atomic counter holds a large `BIAS` so that no put on it can reach zero. Killing an object
//! switches it to *atomic mode*: the mode flag is set, the base reference (Linux's initial
//! reference) is dropped, and after a grace period (every core has reported a quiescent
//! state, so no operation that saw percpu mode is still running) the per-core counters are
//! summed into the atomic counter with the bias removed. From then on the put that takes the
//! atomic counter to zero releases the object. The confirm-kill callback runs when the switch
//! completes. `resurrect` takes the base reference back and returns to percpu mode. `tryget`
//! succeeds unless the count reached zero; `tryget_live` also fails once the object is killed.
//!
//! **Zero detection for page counts.** Frames have no owner that decides their end, so the
//! strategy holds the base reference itself and *probes*: a percpu put lists the object on
//! its core; at that core's next quiescent point a consistent snapshot (`seq.rs`) that shows
//! live references drops it, otherwise the object is killed with the probe flag. When the
//! switch completes, a count of zero is reported free; otherwise the object is resurrected.
//!
//! **Why zero is safe:** while the bias is in the atomic counter it cannot reach zero; the
//! bias is removed only after the grace period, when the per-core counters are final (every
//! later operation sees atomic mode), so the atomic counter is then the exact count and
//! reaches zero once. A resurrect re-takes the base only with an increment-if-not-zero.
//! The per-core counters are never reset (that would be another core's store): the sum at
//! each switch is folded into the atomic counter instead, so the count is always
//! `atomic − BIAS + Σ per-core` in percpu mode and `atomic` in atomic mode.
//!
//! Costs: 24 bytes per object per core (counter, suspect link, sequence word) plus 32
//! shared; gets and puts touch only the core's own lines; a probe costs a grace period (two
//! quiescent rounds) and turns a busy object atomic for that long. The counters drift by one
//! per reference taken in one mode and dropped in the other; the bias (2^62) leaves room for
//! far more operations than a machine can run.
//!
//! # Deviations from Linux, and why they are sound
//!
//! - **The probe.** Linux never decides by itself that an object is dead: its owner calls
//!   `percpu_ref_kill` and the release callback runs at the last put. Frames have no such
//!   owner, so the strategy kills on suspicion (a put listed the object and a consistent
//!   snapshot showed no reference) and resurrects if the switch finds references. The kill,
//!   the grace period, the fold of the per-core counters into the atomic one (Linux's
//!   switch-to-atomic work and `confirm_switch`), `resurrect`, `tryget` and `tryget_live` follow
//!   Linux; the probe is the addition. It is sound because a kill never frees by itself: only
//!   the atomic counter reaching zero after the fold does, as in Linux.
//! - **Asynchronous only.** The switch completes at a later `quiescent` (Linux's `call_rcu`
//!   path). There is no synchronous `percpu_ref_switch_to_atomic_sync`, and no
//!   `switch_to_percpu` other than `resurrect`: left to do.
//! - **Sequence words.** Gets and puts run inside a per-core sequence-word write (`seq.rs`),
//!   which Linux does not have, so that the probe and `try_remove_unique` can read a
//!   consistent snapshot. They cost two stores to the core's own line per operation, measured
//!   by `cargo xtask bench refcount`; taking them off the fast path is left to do.

use crate::epoch::Clock;
use crate::layout::{PerCore, Planner, Span, claim};
use crate::lists::Lists;
use crate::seq::Seqs;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::{Config, LayoutError, Word, Words};

const BIAS: u64 = 1 << 62;

// Fields of an object's record.
const COUNT: usize = 0;
const MODE: usize = 1;
const TICKET: usize = 2;

// Mode bits.
const LIVE: u64 = 1;
/// Gets and puts go to the atomic counter.
const ATOMIC: u64 = 2;
/// Killed, waiting for the grace period; the bias is still in the atomic counter.
const SWITCHING: u64 = 4;
/// Killed: the base reference is gone and `tryget_live` fails.
const DEAD: u64 = 8;
/// Killed by a zero probe: resurrect when the switch finds references.
const PROBE: u64 = 16;

/// Per-core counters with kill, switch, bias and resurrect.
pub struct PercpuRef<M: Words> {
    mem: M,
    cfg: Config,
    obj: Span,
    pcpu: PerCore,
    seqs: Seqs,
    clock: Clock,
    suspects: Lists,
    switching: Lists,
}

struct Plan {
    p: Planner,
    obj: Span,
    pcpu: PerCore,
    seqs: Seqs,
    clock: Clock,
    suspects: Lists,
    switching: Lists,
}

fn plan(cfg: &Config) -> Plan {
    let mut p = Planner::new();
    let obj = p.shared(cfg.n_objects, 3);
    let pcpu = p.per_core(cfg.n_cores, cfg.n_objects, 1);
    let seqs = Seqs::plan(&mut p, cfg.n_cores, cfg.n_objects);
    let clock = Clock::plan(&mut p, cfg.n_cores);
    let suspects = Lists::plan_per_core(&mut p, cfg.n_cores, cfg.n_objects);
    let switching = Lists::plan_shared(&mut p, cfg.n_cores, cfg.n_objects);
    Plan { p, obj, pcpu, seqs, clock, suspects, switching }
}

impl<M: Words> PercpuRef<M> {
    #[inline]
    fn field(&self, obj: u32, f: usize) -> &Word {
        self.obj.at(&self.mem, obj as usize, f)
    }

    #[inline]
    fn local(&self, core: usize, obj: u32) -> &Word {
        self.pcpu.at(&self.mem, core, obj as usize, 0)
    }

    fn percpu_sum(&self, obj: u32) -> u64 {
        (0..self.cfg.n_cores).fold(0u64, |s, c| s.wrapping_add(self.local(c, obj).load(Relaxed)))
    }

    /// References held by callers, from one read of every word (exact if nothing moves).
    fn refs(&self, obj: u32) -> u64 {
        let m = self.field(obj, MODE).load(Acquire);
        if m & LIVE == 0 {
            return 0;
        }
        let count = self.field(obj, COUNT).load(Acquire);
        let internal =
            if m & ATOMIC == 0 || m & SWITCHING != 0 { count.wrapping_sub(BIAS).wrapping_add(self.percpu_sum(obj)) } else { count };
        // A torn read (words moving while they are read) can make this
        // wrap; callers that decide on it read inside a sequence check,
        // which throws such a value away.
        internal.wrapping_sub(u64::from(m & DEAD == 0))
    }

    /// Adds one to the calling core's counter (percpu mode only, from the owning core).
    #[inline]
    fn bump(&self, core: usize, obj: u32, delta: u64) {
        let w = self.local(core, obj);
        w.store(w.load(Relaxed).wrapping_add(delta), Relaxed);
    }

    fn inc_not_zero(&self, obj: u32) -> bool {
        self.field(obj, COUNT).fetch_update(AcqRel, Acquire, |c| (c != 0).then_some(c + 1)).is_ok()
    }

    /// Gets a reference unless the count already reached zero.
    pub fn tryget(&self, core: usize, obj: u32) -> bool {
        self.seqs.write(&self.mem, core, obj, || {
            let m = self.field(obj, MODE).load(Acquire);
            if m & (LIVE | ATOMIC) == LIVE {
                self.bump(core, obj, 1);
                true
            } else {
                m & LIVE != 0 && self.inc_not_zero(obj)
            }
        })
    }

    /// Gets a reference unless the object is killed (or its count reached zero).
    pub fn tryget_live(&self, core: usize, obj: u32) -> bool {
        self.seqs.write(&self.mem, core, obj, || {
            let m = self.field(obj, MODE).load(Acquire);
            if m & (LIVE | ATOMIC) == LIVE {
                self.bump(core, obj, 1);
                true
            } else {
                m & (LIVE | DEAD) == LIVE && self.inc_not_zero(obj)
            }
        })
    }

    /// Kills `obj`: drops the base reference and starts the switch to atomic mode, which
    /// completes at `core`'s quiescent point after a grace period. From then on the last put
    /// releases the object. False if it was not live in percpu mode.
    pub fn kill(&self, core: usize, obj: u32) -> bool {
        self.seqs.write(&self.mem, core, obj, || self.start_kill(core, obj, 0))
    }

    fn start_kill(&self, core: usize, obj: u32, probe: u64) -> bool {
        let mode = self.field(obj, MODE);
        let m = mode.load(Acquire);
        if m & (LIVE | ATOMIC) != LIVE || mode.compare_exchange(m, m | ATOMIC | SWITCHING | DEAD | probe, AcqRel, Relaxed).is_err() {
            return false;
        }
        // The base reference goes to the biased atomic counter: it cannot reach zero here.
        self.field(obj, COUNT).fetch_sub(1, AcqRel);
        let ticket = self.clock.begin(&self.mem);
        self.field(obj, TICKET).store(ticket, Relaxed);
        self.switching.push(&self.mem, core, obj);
        true
    }

    /// Brings a killed object whose switch completed back to life and to percpu mode.
    /// False if it is not killed, still switching, or already released.
    pub fn resurrect(&self, core: usize, obj: u32) -> bool {
        self.seqs.write(&self.mem, core, obj, || {
            let m = self.field(obj, MODE).load(Acquire);
            m & (LIVE | DEAD | SWITCHING) == LIVE | DEAD && self.back_to_percpu(obj)
        })
    }

    /// Re-takes the base reference unless the count reached zero, then restores the bias
    /// (less the frozen per-core sum) before clearing atomic mode.
    fn back_to_percpu(&self, obj: u32) -> bool {
        if !self.inc_not_zero(obj) {
            return false;
        }
        let sum = self.percpu_sum(obj);
        self.field(obj, COUNT).fetch_add(BIAS.wrapping_sub(sum), AcqRel);
        self.field(obj, MODE).store(LIVE, Release);
        true
    }

    /// Completes a switch whose grace period is over.
    fn complete(&self, obj: u32, freed: &mut impl FnMut(u32), confirmed: &mut impl FnMut(u32)) {
        let sum = self.percpu_sum(obj);
        let delta = sum.wrapping_sub(BIAS);
        let n = self.field(obj, COUNT).fetch_add(delta, AcqRel).wrapping_add(delta);
        let mode = self.field(obj, MODE);
        let m = mode.load(Acquire);
        mode.store(m & !SWITCHING, Release);
        confirmed(obj);
        if n == 0 {
            mode.store(0, Release);
            freed(obj);
        } else if m & PROBE != 0 {
            self.back_to_percpu(obj);
        }
    }

    /// [`RefCount::quiescent`], also reporting every completed kill to `confirmed` (Linux's
    /// confirm-kill callback: `tryget_live` fails on the object from now on).
    pub fn quiescent_confirm(&self, core: usize, freed: &mut impl FnMut(u32), confirmed: &mut impl FnMut(u32)) {
        self.clock.quiescent(&self.mem, core);
        self.switching.drain(&self.mem, core, |obj| {
            if self.clock.done(&self.mem, self.field(obj, TICKET).load(Relaxed)) {
                self.seqs.write(&self.mem, core, obj, || self.complete(obj, freed, confirmed));
            } else {
                self.switching.push(&self.mem, core, obj);
            }
        });
        self.suspects.drain(&self.mem, core, |obj| {
            let m = self.field(obj, MODE).load(Acquire);
            if m & (LIVE | ATOMIC) != LIVE {
                return;
            }
            if !matches!(self.seqs.read(&self.mem, obj, || self.refs(obj)), Some(r) if r > 0) {
                self.seqs.write(&self.mem, core, obj, || self.start_kill(core, obj, PROBE));
            }
        });
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
        let Plan { p, obj, pcpu, seqs, clock, suspects, switching } = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(PercpuRef { mem, cfg, obj, pcpu, seqs, clock, suspects, switching })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, core: usize, obj: u32) {
        self.seqs.write(&self.mem, core, obj, || {
            // Base reference + the caller's, less the residue of earlier lives.
            let count = BIAS.wrapping_add(2).wrapping_sub(self.percpu_sum(obj));
            self.field(obj, COUNT).store(count, Relaxed);
            self.field(obj, MODE).store(LIVE, Release);
        })
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        self.seqs.write(&self.mem, core, obj, || {
            if self.field(obj, MODE).load(Acquire) & ATOMIC == 0 {
                self.bump(core, obj, 1);
            } else {
                self.field(obj, COUNT).fetch_add(1, Relaxed);
            }
        })
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        let released = self.seqs.write(&self.mem, core, obj, || {
            if self.field(obj, MODE).load(Acquire) & ATOMIC == 0 {
                self.bump(core, obj, u64::MAX);
                if !self.suspects.listed(&self.mem, core, obj) {
                    self.suspects.push(&self.mem, core, obj);
                }
                false
            } else if self.field(obj, COUNT).fetch_sub(1, AcqRel) == 1 {
                self.field(obj, MODE).store(0, Release);
                true
            } else {
                false
            }
        });
        if released {
            freed(obj);
        }
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.seqs.read(&self.mem, obj, || self.refs(obj)) == Some(1)
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        self.quiescent_confirm(core, freed, &mut |_| {})
    }

    fn read_exact(&self, obj: u32) -> u64 {
        self.refs(obj)
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::*;
    use crate::{Region, build};

    fn pr(n: usize, cores: usize) -> PercpuRef<Region> {
        build(Config::new(n, cores)).unwrap()
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
        assert!(p.kill(0, 1));
        assert!(!p.kill(0, 1), "already killed");
        assert!(p.tryget(1, 1), "switching: the biased counter is not zero");
        assert!(!p.tryget_live(1, 1), "killed");
        p.dec(1, 1, &mut |o| freed.push(o));
        assert_eq!(p.read_exact(1), 2);
        p.quiescent_confirm(0, &mut |o| freed.push(o), &mut |o| confirmed.push(o));
        assert!(confirmed.is_empty(), "core 1 has not reported yet");
        p.quiescent_confirm(1, &mut |o| freed.push(o), &mut |o| confirmed.push(o));
        p.quiescent_confirm(0, &mut |o| freed.push(o), &mut |o| confirmed.push(o));
        assert_eq!(confirmed, vec![1], "completed at core 0's report after core 1's");
        assert_eq!(p.read_exact(1), 2);
        p.dec(0, 1, &mut |o| freed.push(o));
        assert!(freed.is_empty());
        p.dec(1, 1, &mut |o| freed.push(o));
        assert_eq!(freed, vec![1], "atomic mode: the last put releases at once");
    }

    #[test]
    fn resurrect_returns_to_percpu_mode() {
        let p = pr(1, 2);
        let (mut freed, mut confirmed) = (Vec::new(), Vec::new());
        p.create(0, 0);
        assert!(!p.resurrect(0, 0), "not killed");
        assert!(p.kill(0, 0));
        assert!(!p.resurrect(0, 0), "still switching");
        rounds(&p, 2, &mut freed, &mut confirmed);
        assert!(p.resurrect(1, 0));
        assert!(p.tryget_live(1, 0));
        assert_eq!(p.field(0, MODE).load(Relaxed), LIVE);
        assert_eq!(p.read_exact(0), 2);
        p.dec(0, 0, &mut |o| freed.push(o));
        p.dec(1, 0, &mut |o| freed.push(o));
        assert!(freed.is_empty(), "percpu puts never release directly");
        rounds(&p, 2, &mut freed, &mut confirmed);
        assert_eq!(freed, vec![0]);
        assert!(!p.tryget(0, 0), "released: the count is zero");
    }

    #[test]
    fn probe_keeps_referenced_objects_and_frees_dead_ones() {
        let p = pr(3, 2);
        let mut freed = Vec::new();
        for o in 0..3 {
            p.create(0, o);
            p.inc(1, o);
        }
        for o in 0..3 {
            p.dec(1, o, &mut |x| freed.push(x));
        }
        p.dec(0, 2, &mut |x| freed.push(x));
        for _ in 0..PercpuRef::<Region>::SETTLE_ROUNDS {
            for c in 0..2 {
                RefCount::quiescent(&p, c, &mut |x: u32| freed.push(x));
            }
        }
        assert_eq!(freed, vec![2]);
        assert_eq!((p.read_exact(0), p.read_exact(1)), (1, 1));
        assert!(p.try_remove_unique(1, 0));
        p.inc(0, 0);
        assert!(!p.try_remove_unique(1, 0));
    }
}
