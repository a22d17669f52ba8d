//! Per-core intrusive lists of object indices, with the links in the table itself.
//!
//! Several strategies keep work for a core to do at its next quiescent point: objects to
//! check for zero, to review, to merge. No allocation is allowed, so each object carries a
//! link word and each core a head word. Any core may push onto any core's list (a Treiber
//! push); only the owning core drains its list, taking the whole list with one swap, which
//! avoids the ABA problem of popping one node at a time.
//!
//! A link word is 0 when the object is on no list. Who may push an object is the caller's
//! rule, and must make the pusher the only writer of that link: with per-core links, a core
//! pushes only onto its own list; with shared links, a flag in the object (won by an RMW)
//! says which core queued it.

use crate::Word;
use crate::layout::{PerCore, Planner, Span};
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::spin;

/// Set in a link word while the object is listed; the low bits hold the next index + 1.
const LISTED: u64 = 1 << 63;

#[derive(Clone, Copy, Debug)]
enum Links {
    /// One link per object; an object is on at most one core's list.
    Shared(Span),
    /// One link per object per core; an object may be on every core's own list.
    PerCore(PerCore),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Lists {
    heads: PerCore,
    links: Links,
}

impl Lists {
    /// Lists whose objects are each on at most one list at a time.
    pub(crate) fn plan_shared(p: &mut Planner, n_cores: usize, n_objects: usize) -> Self {
        Lists { heads: p.per_core(n_cores, 1, 1), links: Links::Shared(p.shared(n_objects, 1)) }
    }

    /// Lists where each core may list every object on its own list.
    pub(crate) fn plan_per_core(p: &mut Planner, n_cores: usize, n_objects: usize) -> Self {
        Lists { heads: p.per_core(n_cores, 1, 1), links: Links::PerCore(p.per_core(n_cores, n_objects, 1)) }
    }

    #[inline]
    fn link<'m>(&self, mem: &'m [Word], core: usize, obj: u32) -> &'m Word {
        match self.links {
            Links::Shared(s) => s.at(mem, obj as usize, 0),
            Links::PerCore(p) => p.at(mem, core, obj as usize, 0),
        }
    }

    /// Whether `obj` is on `core`'s list. Meaningful for per-core links, read by their owner.
    #[inline]
    pub(crate) fn listed(&self, mem: &[Word], core: usize, obj: u32) -> bool {
        self.link(mem, core, obj).load(Relaxed) != 0
    }

    /// Pushes `obj` onto `core`'s list. The caller must hold the right to `obj`'s link (see
    /// the module docs) and `obj` must not be listed.
    #[inline]
    pub(crate) fn push(&self, mem: &[Word], core: usize, obj: u32) {
        let head = self.heads.at(mem, core, 0, 0);
        let link = self.link(mem, core, obj);
        loop {
            let h = head.load(Relaxed);
            link.store(LISTED | h, Relaxed);
            if head.compare_exchange_weak(h, obj as u64 + 1, Release, Relaxed).is_ok() {
                return;
            }
            spin();
        }
    }

    /// Takes `core`'s whole list and calls `f` on each object, unlinked first, so `f` may
    /// push it again. Only `core` may drain its list.
    pub(crate) fn drain(&self, mem: &[Word], core: usize, mut f: impl FnMut(u32)) {
        let mut cur = self.heads.at(mem, core, 0, 0).swap(0, Acquire);
        while cur != 0 {
            let obj = (cur - 1) as u32;
            let link = self.link(mem, core, obj);
            cur = link.load(Relaxed) & !LISTED;
            link.store(0, Relaxed);
            f(obj);
        }
    }
}
