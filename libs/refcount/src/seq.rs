//! Consistent reads of one object's count spread over many cores: a sequence word per object
//! per core, and a double collect.
//!
//! Every operation a core performs on an object's words runs inside [`Seqs::write`], which
//! makes the core's sequence word for that object odd for the duration and even again after
//! (a seqlock whose only writer is the owning core). [`Seqs::read`] loads every core's word
//! for the object, reads the data, and loads the words again: if none was odd and their sum
//! did not move (the words only grow, so an unchanged sum means each is unchanged), no
//! operation on the object overlapped the read, and the data is a snapshot of one instant.
//! It can fail while other cores work on the same object; callers treat a failure as "don't
//! know" (try again at the next quiescent point, or answer the conservative way). An object
//! that every core hammers may keep failing, which delays (never falsifies) the zero checks
//! of PAYGO and the striped counter and makes `try_remove_unique` answer false; work on other
//! objects does not disturb it.
//!
//! A snapshot is consistent but may be *old*: under a weak memory model two cores that each
//! update and then read may both read the other's earlier state. A zero check must not miss
//! the last decrement, so checkers first [`Seqs::publish`]: a read-modify-write on one shared
//! word. Of two cores that publish after their updates, the later one's RMW reads from the
//! earlier one's, so its snapshot sees the earlier core's updates; the core that publishes
//! last after the last decrement therefore sees them all.
//!
//! Cost: 8 bytes per object per core, and on the fast path two stores to a line the core
//! owns. Orderings follow Boehm's
//! seqlock recipe (release fence after the odd store, acquire fence before the re-check).

use crate::Word;
use crate::layout::{PerCore, Planner, Span};
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::sync::{fence, spin};

/// Attempts a read makes before it reports failure.
const READ_TRIES: usize = 4;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Seqs {
    seq: PerCore,
    order: Span,
    n_cores: usize,
}

impl Seqs {
    pub(crate) fn plan(p: &mut Planner, n_cores: usize, n_objects: usize) -> Self {
        Seqs { seq: p.per_core(n_cores, n_objects, 1), order: p.shared(1, 1), n_cores }
    }

    /// Orders the caller's later reads after every update that any core made before its own
    /// `publish` call that came earlier (see the module docs).
    pub(crate) fn publish(&self, mem: &[Word]) {
        self.order.at(mem, 0, 0).fetch_add(0, AcqRel);
    }

    /// Runs `f`, one operation of `core` on `obj`'s words, as a write section.
    #[inline]
    pub(crate) fn write<R>(&self, mem: &[Word], core: usize, obj: u32, f: impl FnOnce() -> R) -> R {
        let w = self.seq.at(mem, core, obj as usize, 0);
        let s = w.load(Relaxed);
        w.store(s + 1, Relaxed);
        fence(Release);
        let r = f();
        w.store(s + 2, Release);
        r
    }

    /// `f`'s result if it ran while no core was in a write section on `obj`, else `None`.
    pub(crate) fn read<T>(&self, mem: &[Word], obj: u32, mut f: impl FnMut() -> T) -> Option<T> {
        for _ in 0..READ_TRIES {
            let mut before = 0u64;
            let mut odd = false;
            for c in 0..self.n_cores {
                let s = self.seq.at(mem, c, obj as usize, 0).load(Acquire);
                odd |= s & 1 == 1;
                before = before.wrapping_add(s);
            }
            if !odd {
                let value = f();
                fence(Acquire);
                let after = (0..self.n_cores).fold(0u64, |a, c| a.wrapping_add(self.seq.at(mem, c, obj as usize, 0).load(Relaxed)));
                if after == before {
                    return Some(value);
                }
            }
            spin();
        }
        None
    }
}
