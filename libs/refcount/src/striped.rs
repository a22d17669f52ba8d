//! Striped counter, after Java's `LongAdder`: a base word plus cells that appear under
//! contention, picked by a per-core probe that is rehashed when it collides.
//!
//! An update first tries a compare-and-swap on the base. Once a CAS on the base fails, the
//! object gets cells (2, then doubling up to `n_cores`). An update then CASes the cell its
//! core's probe selects; a failed cell CAS rehashes the probe (xorshift, as `LongAdder`'s
//! `advanceProbe`), and a second failure in a row grows the cells first (LongAdder's
//! `collide` rule). Each cell sits in a different core's per-core array, so cells never share
//! a line. The count is the base plus all cells.
//!
//! Each object has two such adders, one counting increments and one decrements: every word
//! only grows, which is what makes the zero check sound without a snapshot (below).
//!
//! **Zero detection:** a decrement flags the object on the calling core, and at that core's
//! next quiescent point, after one shared RMW that orders it after other cores' earlier
//! checks (so the last checker sees every decrement), the checker sums the decrement adder,
//! then the increment adder. Equal sums mean zero, and a CAS on the object's live word reports
//! it once.
//!
//! # Why the sum can be read while other cores count
//!
//! Decrements store with Release and the checker loads with Acquire, decrements first. A
//! decrement it sees was made by a holder of the reference, so the increment that took it
//! happened before and is seen by the later loads of the increment adder. By induction on the
//! order references were taken (each by the holder of an earlier one, the first by
//! `create`), no reference that exists or can come to exist is missed: increments − decrements
//! is an upper bound on the count. A zero is therefore final (nobody holds a reference, so
//! nobody can take one), and a bound of 1 for a caller holding a reference means it is the
//! only one (`try_remove_unique`).
//!
//! Costs: 16 bytes per object per core (an increment and a decrement cell) plus the flag
//! links, 32 shared, and one probe word per core; an uncontended update is one CAS on a base,
//! a contended one a CAS on a cell.
//!
//! # Deviations from `LongAdder`, and why they are sound and no slower
//!
//! - **Cells laid out in advance.** `LongAdder` allocates its cell array on the first failed
//!   CAS on the base and doubles it under contention. These tables live in shared memory with
//!   no allocator, so every object has room for `n_cores` cells in the region, and the *number
//!   in use* grows as `LongAdder`'s does (base only, then 2, 4, … `n_cores` cells). A cell is
//!   one CAS either way; the cost is memory.
//! - **Capped at `n_cores`, indexed by remainder.** `LongAdder` stops doubling once the table
//!   has at least as many cells as CPUs, so it ends at the next power of two and indexes with
//!   a mask; here the last step stops at `n_cores` exactly (never more cells than cores that
//!   can contend) and the probe picks a cell by remainder, one division on the contended path
//!   only.
//! - **A probe per core.** `LongAdder`'s probe is per thread; here the core is the thread.
//!   It is rehashed after every failed cell CAS and kept in the core's own word.
//! - **Two adders per object.** `LongAdder::sum` is a racy estimate; counting increments and
//!   decrements in separate adders (each update still one CAS on one word) gives the checker a
//!   sound bound without any extra store on the update path.

use crate::layout::{PerCore, Planner, Span, claim};
use crate::lists::Lists;
use crate::strategy::RefCount;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::{Config, LayoutError, Word, Words};

// Fields of an object's record.
const INC_BASE: usize = 0;
const DEC_BASE: usize = 1;
const CELLS: usize = 2;
const LIVE: usize = 3;

// Fields of a cell.
const INC: usize = 0;
const DEC: usize = 1;

/// Two adders (increments, decrements) per object, each a base and contention-grown cells.
pub struct Striped<M: Words> {
    mem: M,
    cfg: Config,
    obj: Span,
    order: Span,
    cells: PerCore,
    probes: PerCore,
    flagged: Lists,
}

struct Plan {
    p: Planner,
    obj: Span,
    order: Span,
    cells: PerCore,
    probes: PerCore,
    flagged: Lists,
}

fn plan(cfg: &Config) -> Plan {
    let mut p = Planner::new();
    let obj = p.shared(cfg.n_objects, 4);
    let order = p.shared(1, 1);
    let cells = p.per_core(cfg.n_cores, cfg.n_objects, 2);
    let probes = p.per_core(cfg.n_cores, 1, 1);
    let flagged = Lists::plan_per_core(&mut p, cfg.n_cores, cfg.n_objects);
    Plan { p, obj, order, cells, probes, flagged }
}

/// Marsaglia's xorshift, as `LongAdder` advances a probe; never yields 0 from non-zero.
fn rehash(h: u64) -> u64 {
    let h = h ^ (h << 13);
    let h = h ^ (h >> 7);
    h ^ (h << 17)
}

impl<M: Words> Striped<M> {
    #[inline]
    fn field(&self, obj: u32, f: usize) -> &Word {
        self.obj.at(&self.mem, obj as usize, f)
    }

    #[inline]
    fn cell(&self, k: usize, obj: u32, side: usize) -> &Word {
        self.cells.at(&self.mem, k, obj as usize, side)
    }

    /// Cells in use for `obj` (0 while the base alone has sufficed).
    #[inline]
    pub fn cells(&self, obj: u32) -> usize {
        self.field(obj, CELLS).load(Acquire) as usize
    }

    /// The calling core's probe (seeded from the core id on first use).
    #[inline]
    fn probe(&self, core: usize) -> u64 {
        match self.probes.at(&self.mem, core, 0, 0).load(Relaxed) {
            0 => rehash(core as u64 + 1),
            h => h,
        }
    }

    fn grow(&self, obj: u32, from: usize) {
        let to = if from == 0 { 2 } else { 2 * from }.min(self.cfg.n_cores);
        if to > from {
            let _ = self.field(obj, CELLS).compare_exchange(from as u64, to as u64, AcqRel, Relaxed);
        }
    }

    /// One CAS that adds 1 to `w`; false if another core got there first.
    #[inline]
    fn try_add(w: &Word) -> bool {
        let v = w.load(Relaxed);
        w.compare_exchange(v, v.wrapping_add(1), AcqRel, Relaxed).is_ok()
    }

    /// Adds one to the increment (`side = INC`) or decrement adder of `obj`.
    #[inline]
    fn add(&self, core: usize, obj: u32, side: usize) {
        if self.cells(obj) == 0 {
            if Self::try_add(self.field(obj, if side == INC { INC_BASE } else { DEC_BASE })) {
                return;
            }
            self.grow(obj, 0);
        }
        let mut h = self.probe(core);
        let mut collided = false;
        loop {
            let n = self.cells(obj).max(1);
            if Self::try_add(self.cell(h as usize % n, obj, side)) {
                return;
            }
            if collided {
                self.grow(obj, n);
            }
            collided = !collided;
            h = rehash(h);
            // The core's own word, written only after a collision (`advanceProbe`).
            self.probes.at(&self.mem, core, 0, 0).store(h, Relaxed);
            crate::sync::spin();
        }
    }

    /// Increments − decrements, decrements read first: an upper bound on the count.
    fn bound(&self, obj: u32) -> u64 {
        let sum = |base: usize, side: usize| {
            (0..self.cfg.n_cores).fold(self.field(obj, base).load(Acquire), |s, k| s.wrapping_add(self.cell(k, obj, side).load(Acquire)))
        };
        let decs = sum(DEC_BASE, DEC);
        sum(INC_BASE, INC).wrapping_sub(decs)
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
        let Plan { p, obj, order, cells, probes, flagged } = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Striped { mem, cfg, obj, order, cells, probes, flagged })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, _core: usize, obj: u32) {
        // The adders of earlier lives balance; keep them.
        self.field(obj, INC_BASE).fetch_add(1, AcqRel);
        self.field(obj, LIVE).store(1, Release);
    }

    #[inline]
    fn inc(&self, core: usize, obj: u32) {
        self.add(core, obj, INC)
    }

    #[inline]
    fn dec(&self, core: usize, obj: u32, _freed: &mut impl FnMut(u32)) {
        self.add(core, obj, DEC);
        if !self.flagged.listed(&self.mem, core, obj) {
            self.flagged.push(&self.mem, core, obj);
        }
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.bound(obj) == 1
    }

    fn quiescent(&self, core: usize, freed: &mut impl FnMut(u32)) {
        // Publish: of two cores that both get here after a decrement, the later one's RMW
        // reads from the earlier one's and so sees its decrements.
        self.order.at(&self.mem, 0, 0).fetch_add(0, AcqRel);
        self.flagged.drain(&self.mem, core, |obj| {
            let live = self.field(obj, LIVE);
            if live.load(Acquire) == 1 && self.bound(obj) == 0 && live.compare_exchange(1, 0, AcqRel, Relaxed).is_ok() {
                freed(obj);
            }
        });
    }

    fn read_exact(&self, obj: u32) -> u64 {
        if self.field(obj, LIVE).load(Acquire) == 1 { self.bound(obj) } else { 0 }
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
        let used: u64 = (0..3).map(|k| s.cell(k, 0, INC).load(Relaxed)).sum();
        assert_eq!(used, 1, "one cell took the increment");
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
