//! Striped counter, after Java's `LongAdder`: a base word plus cells that appear under
//! contention.
//!
//! An update first tries a compare-and-swap on the object's base. Once a CAS on the base
//! fails, the object gets cells (2, then doubling up to `n_cores`) and each core updates the
//! cell its core id selects, by CAS; a failed cell CAS grows the cells again. Cells live in
//! per-core arrays, so with as many cells as cores no two cores share a line. The count is
//! the base plus all cells.
//!
//! **Zero detection:** the sum is exact only at a quiescent point, so a decrement flags the
//! object on the calling core, and at that core's next quiescent point, after one shared RMW
//! that orders it after other cores' earlier checks, a consistent snapshot (`seq.rs`) of base
//! and cells decides: a sum of zero is final (no holder is left to add
//! one) and a CAS on the object's live word reports it once.
//!
//! Costs: 24 bytes per object per core (cell, flag link, sequence word) plus 24 shared; an
//! uncontended update is one CAS on the base, a contended one a CAS on the core's own cell.
//!
//! # Deviations from `LongAdder`, and why they are sound
//!
//! - **Cells laid out in advance.** `LongAdder` allocates its cell array on the first failed
//!   CAS on the base and doubles it under contention. These tables live in shared memory with
//!   no allocator, so every object has a cell per core in the region, and the *number in use*
//!   grows as `LongAdder`'s does (base only, then 2, 4, … `n_cores` cells).
//! - **The core id instead of a rehashed probe.** `LongAdder` picks a cell with a per-thread
//!   probe that it rehashes after a failed cell CAS. With one thread per core and cells growing
//!   up to `n_cores`, the core id is a probe that never collides once all cells are in use;
//!   before that, a failed cell CAS grows the cells, which is what the rehash is looking for.
//! - **Sequence words** around every update, for the consistent snapshot that the zero check
//!   and `try_remove_unique` read (`LongAdder::sum` is a racy estimate): two stores to the
//!   core's own line per update, measured by the benchmark; a lighter check is left to do.

use crate::layout::{PerCore, Planner, Span, claim};
use crate::lists::Lists;
use crate::seq::Seqs;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::sync::spin;
use crate::{Config, LayoutError, Word, Words};

// Fields of an object's record.
const BASE: usize = 0;
const CELLS: usize = 1;
const LIVE: usize = 2;

/// A base and contention-grown cells per object.
pub struct Striped<M: Words> {
    mem: M,
    cfg: Config,
    obj: Span,
    cells: PerCore,
    seqs: Seqs,
    flagged: Lists,
}

struct Plan {
    p: Planner,
    obj: Span,
    cells: PerCore,
    seqs: Seqs,
    flagged: Lists,
}

fn plan(cfg: &Config) -> Plan {
    let mut p = Planner::new();
    let obj = p.shared(cfg.n_objects, 3);
    let cells = p.per_core(cfg.n_cores, cfg.n_objects, 1);
    let seqs = Seqs::plan(&mut p, cfg.n_cores, cfg.n_objects);
    let flagged = Lists::plan_per_core(&mut p, cfg.n_cores, cfg.n_objects);
    Plan { p, obj, cells, seqs, flagged }
}

impl<M: Words> Striped<M> {
    #[inline]
    fn field(&self, obj: u32, f: usize) -> &Word {
        self.obj.at(&self.mem, obj as usize, f)
    }

    #[inline]
    fn cell(&self, k: usize, obj: u32) -> &Word {
        self.cells.at(&self.mem, k, obj as usize, 0)
    }

    /// Cells in use for `obj` (0 while the base alone has sufficed).
    #[inline]
    pub fn cells(&self, obj: u32) -> usize {
        self.field(obj, CELLS).load(Acquire) as usize
    }

    fn grow(&self, obj: u32, from: usize) {
        let to = if from == 0 { 2 } else { 2 * from }.min(self.cfg.n_cores);
        if to > from {
            let _ = self.field(obj, CELLS).compare_exchange(from as u64, to as u64, AcqRel, Relaxed);
        }
    }

    #[inline]
    fn add(&self, core: usize, obj: u32, x: u64) {
        if self.cells(obj) == 0 {
            let base = self.field(obj, BASE);
            let b = base.load(Relaxed);
            if base.compare_exchange(b, b.wrapping_add(x), AcqRel, Relaxed).is_ok() {
                return;
            }
            self.grow(obj, 0);
        }
        loop {
            let n = self.cells(obj).max(1);
            let cell = self.cell(core % n, obj);
            let v = cell.load(Relaxed);
            if cell.compare_exchange(v, v.wrapping_add(x), AcqRel, Relaxed).is_ok() {
                return;
            }
            self.grow(obj, n);
            spin();
        }
    }

    fn sum(&self, obj: u32) -> u64 {
        (0..self.cfg.n_cores).fold(self.field(obj, BASE).load(Acquire), |s, k| s.wrapping_add(self.cell(k, obj).load(Acquire)))
    }
}

impl<M: Words> RefCount for Striped<M> {
    type Mem = M;
    const NAME: &'static str = "striped";
    const SETTLE_ROUNDS: usize = 1;

    fn words_needed(cfg: &Config) -> usize {
        plan(cfg).p.total()
    }

    fn new_in(mem: M, cfg: Config) -> Result<Self, LayoutError> {
        cfg.validate()?;
        let Plan { p, obj, cells, seqs, flagged } = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Striped { mem, cfg, obj, cells, seqs, flagged })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, core: usize, obj: u32) {
        self.seqs.write(&self.mem, core, obj, || {
            // The cells of an earlier life sum with its base to zero; keep them.
            self.field(obj, BASE).fetch_add(1, AcqRel);
            self.field(obj, LIVE).store(1, Release);
        })
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        self.seqs.write(&self.mem, core, obj, || self.add(core, obj, 1))
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, _freed: &mut impl FnMut(u32)) {
        self.seqs.write(&self.mem, core, obj, || self.add(core, obj, u64::MAX));
        if !self.flagged.listed(&self.mem, core, obj) {
            self.flagged.push(&self.mem, core, obj);
        }
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.seqs.read(&self.mem, obj, || self.sum(obj)) == Some(1)
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        self.seqs.publish(&self.mem);
        self.flagged.drain(&self.mem, core, |obj| {
            let live = self.field(obj, LIVE);
            if live.load(Acquire) != 1 {
                return;
            }
            match self.seqs.read(&self.mem, obj, || self.sum(obj)) {
                Some(0) => {
                    if live.compare_exchange(1, 0, AcqRel, Relaxed).is_ok() {
                        freed(obj);
                    }
                }
                Some(_) => {}
                None => self.flagged.push(&self.mem, core, obj),
            }
        });
    }

    fn read_exact(&self, obj: u32) -> u64 {
        if self.field(obj, LIVE).load(Acquire) == 1 { self.sum(obj) } else { 0 }
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::*;
    use crate::{Region, build};

    #[test]
    fn cells_grow_on_contention_up_to_the_core_count() {
        let s: Striped<Region> = build(Config::new(1, 3)).unwrap();
        s.create(0, 0);
        s.inc(1, 0);
        assert_eq!(s.cells(0), 0, "no contention: base only");
        s.grow(0, 0);
        assert_eq!(s.cells(0), 2);
        s.inc(1, 0);
        assert_eq!(s.cell(1, 0).load(Relaxed), 1);
        s.grow(0, 2);
        assert_eq!(s.cells(0), 3, "capped at n_cores");
        s.grow(0, 3);
        assert_eq!(s.cells(0), 3);
        s.inc(2, 0);
        assert_eq!(s.read_exact(0), 4);
        let mut freed = Vec::new();
        for c in [2, 2, 0, 1] {
            s.dec(c, 0, &mut |_| {});
        }
        s.quiescent(0, &mut |o| freed.push(o));
        s.quiescent(2, &mut |o| freed.push(o));
        assert_eq!(freed, vec![0], "reported once although flagged on two cores");
        s.create(1, 0);
        assert_eq!(s.read_exact(0), 1, "a new life starts from the old residue");
    }
}
