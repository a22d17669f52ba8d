//! Atomic (kref): one atomic word per object. The baseline every other strategy is
//! measured against.
//!
//! Linux's `struct kref` and Rust's `Arc` count this way. Zero is safe to detect because
//! the word *is* the count: the `fetch_sub` that takes it from 1 to 0 is unique, and it
//! happens after every other decrement (release/acquire pairs order the frees).
//!
//! Costs: 8 bytes per object; every inc and dec is a read-modify-write on the object's
//! line, which bounces between cores when the object is shared: the scalability problem
//! the other strategies attack. Zero detection is immediate.

use crate::layout::{Planner, Span, claim};
use crate::strategy::RefCount;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::fence;
use crate::{Config, LayoutError, Words};

/// One atomic count per object.
pub struct Atomic<M: Words> {
    mem: M,
    cfg: Config,
    count: Span,
}

fn plan(cfg: &Config) -> (Planner, Span) {
    let mut p = Planner::new();
    let count = p.shared(cfg.n_objects, 1);
    (p, count)
}

impl<M: Words> RefCount for Atomic<M> {
    type Mem = M;
    const NAME: &'static str = "atomic";
    const SETTLE_ROUNDS: usize = 0;

    fn words_needed(cfg: &Config) -> usize {
        plan(cfg).0.total()
    }

    fn new_in(mem: M, cfg: Config) -> Result<Self, LayoutError> {
        cfg.validate()?;
        let (p, count) = plan(&cfg);
        claim(&mem, p.total())?;
        Ok(Atomic { mem, cfg, count })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn create(&self, _core: usize, obj: u32) {
        self.count.at(&self.mem, obj as usize, 0).store(1, Release);
    }

    #[inline]
    fn inc(&self, _core: usize, obj: u32) {
        self.count.at(&self.mem, obj as usize, 0).fetch_add(1, Relaxed);
    }

    #[inline]
    fn dec(&self, _core: usize, obj: u32, freed: &mut impl FnMut(u32)) {
        if self.count.at(&self.mem, obj as usize, 0).fetch_sub(1, Release) == 1 {
            fence(Acquire);
            freed(obj);
        }
    }

    fn try_remove_unique(&self, _core: usize, obj: u32) -> bool {
        self.count.at(&self.mem, obj as usize, 0).load(Acquire) == 1
    }

    fn quiescent(&self, _core: usize, _freed: &mut impl FnMut(u32)) {}

    fn read_exact(&self, obj: u32) -> u64 {
        self.count.at(&self.mem, obj as usize, 0).load(Acquire)
    }
}
