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
//! Costs: 24 bytes per object per core (spares, list link, sequence word) plus 8 shared; an
//! object that is taken and dropped on the same core never touches the shared line. Zero
//! detection waits for the quiescent point of every core that holds spares.
//!
//! # Deviations from the paper, and why they are sound
//!
//! - **Sequence words** around each update, for `try_remove_unique`'s consistent snapshot,
//!   which the paper does not need: two stores to the core's own line per operation, measured
//!   by the benchmark. The spare threshold (`Config::spares`, half returned when exceeded) is
//!   the paper's.

use crate::layout::{PerCore, Planner, Span, claim};
use crate::lists::Lists;
use crate::seq::Seqs;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::{Config, LayoutError, Word, Words};

/// A shared count with per-core spare references.
pub struct Sloppy<M: Words> {
    mem: M,
    cfg: Config,
    shared: Span,
    spare: PerCore,
    seqs: Seqs,
    holding: Lists,
}

struct Plan {
    p: Planner,
    shared: Span,
    spare: PerCore,
    seqs: Seqs,
    holding: Lists,
}

fn plan(cfg: &Config) -> Plan {
    let mut p = Planner::new();
    let shared = p.shared(cfg.n_objects, 1);
    let spare = p.per_core(cfg.n_cores, cfg.n_objects, 1);
    let seqs = Seqs::plan(&mut p, cfg.n_cores, cfg.n_objects);
    let holding = Lists::plan_per_core(&mut p, cfg.n_cores, cfg.n_objects);
    Plan { p, shared, spare, seqs, holding }
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
        let Plan { p, shared, spare, seqs, holding } = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Sloppy { mem, cfg, shared, spare, seqs, holding })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, core: usize, obj: u32) {
        self.seqs.write(&self.mem, core, obj, || self.shared(obj).store(1, Release))
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        self.seqs.write(&self.mem, core, obj, || {
            let s = self.spare(core, obj);
            match s.load(Relaxed) {
                0 => {
                    self.shared(obj).fetch_add(1, Relaxed);
                }
                n => s.store(n - 1, Relaxed),
            }
        })
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, _freed: &mut impl FnMut(u32)) {
        self.seqs.write(&self.mem, core, obj, || {
            let s = self.spare(core, obj);
            let n = s.load(Relaxed) + 1;
            if n > self.cfg.spares {
                let give = n - self.cfg.spares / 2;
                self.shared(obj).fetch_sub(give, Release);
                s.store(n - give, Relaxed);
            } else {
                s.store(n, Relaxed);
            }
        });
        if !self.holding.listed(&self.mem, core, obj) {
            self.holding.push(&self.mem, core, obj);
        }
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.seqs.read(&self.mem, obj, || self.refs(obj)) == Some(1)
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        self.holding.drain(&self.mem, core, |obj| {
            let gone = self.seqs.write(&self.mem, core, obj, || {
                let s = self.spare(core, obj);
                let n = s.load(Relaxed);
                s.store(0, Relaxed);
                n > 0 && self.shared(obj).fetch_sub(n, AcqRel) == n
            });
            if gone {
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
}
