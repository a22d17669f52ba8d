//! Consistent reads of one object's count spread over many cores: a sequence word per object
//! per core, and a double collect. Used by RefCache and SNZI for `try_remove_unique` only;
//! the other per-core strategies read monotone words in an order that needs no snapshot.
//!
//! Every operation a core performs on an object's words runs inside [`Seqs::write`], which
//! makes the core's sequence word for that object odd for the duration and even again after
//! (a seqlock whose only writer is the owning core). [`Seqs::read`] loads every core's word
//! for the object, reads the data, and loads the words again: if none was odd and their sum
//! did not move (the words only grow, so an unchanged sum means each is unchanged), no
//! operation on the object overlapped the read, and the data is a snapshot of one instant.
//! It can fail while other cores work on the same object; callers then answer the
//! conservative way (not unique).
//!
//! Cost: 8 bytes per object per core, and on the fast path two stores to a line the core
//! owns. Orderings follow Boehm's seqlock recipe (release fence after the odd store, acquire
//! fence before the re-check).

use crate::Word;
use crate::layout::{PerCore, Planner};
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{fence, spin};

/// Attempts a read makes before it reports failure.
const READ_TRIES: usize = 4;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Seqs {
    seq: PerCore,
    n_cores: usize,
}

impl Seqs {
    pub(crate) fn plan(p: &mut Planner, n_cores: usize, n_objects: usize) -> Self {
        Seqs { seq: p.per_core(n_cores, n_objects, 1), n_cores }
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
