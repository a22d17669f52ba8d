//! A strategy of `libs/refcount` as this server's counts: every operation
//! runs here, in the name of the process server (core) that sent it. A
//! batch's end is a quiescent point of every core: the sender's, and the
//! others' too, because a process server's operations only ever run in
//! this thread, one message at a time, so between two messages no core has
//! one in flight. So grace periods, epochs and reviews advance as the
//! process servers work, and a server that stays quiet holds nothing up.

use proto::ProtoError;
use proto::memory::{RefOp, commit_order};
use refcount::{Config, LayoutError, RefCount, Word};

use super::{Census, Counts, Freed};

pub struct Library<S> {
    strategy: S,
    cores: usize,
}

impl<S: RefCount<Mem = &'static [Word]>> Library<S> {
    pub fn words_needed(config: &Config) -> usize {
        S::words_needed(config)
    }

    /// Places the strategy over a zeroed `region`.
    pub fn new(region: &'static [Word], config: Config) -> Result<Self, LayoutError> {
        let cores = config.n_cores;
        Ok(Self { strategy: S::new_in(region, config)?, cores })
    }

    fn core(&self, client: u16) -> usize {
        usize::from(client).min(self.cores - 1)
    }
}

impl<S: RefCount<Mem = &'static [Word]>> Counts for Library<S> {
    fn hand_out(&mut self, client: u16, frame: u32) {
        self.strategy.create(self.core(client), frame);
    }

    fn held_alone(&self, frame: u32) -> bool {
        self.strategy.read_exact(frame) == 1
    }

    fn free(&mut self, client: u16, frame: u32, freed: Freed) {
        self.strategy.dec(self.core(client), frame, &mut |f| freed(f));
    }

    fn apply(&mut self, client: u16, ops: &[RefOp], in_use: &dyn Fn(u32) -> bool, freed: Freed) -> Result<(), ProtoError> {
        let core = self.core(client);
        let mut skipped = false;
        for op in commit_order(ops) {
            if !in_use(op.frame) {
                skipped = true;
                continue;
            }
            for _ in 0..op.delta.unsigned_abs() {
                if op.is_increment() {
                    self.strategy.inc(core, op.frame);
                } else {
                    self.strategy.dec(core, op.frame, &mut |f| freed(f));
                }
            }
        }
        if skipped { Err(ProtoError::NotOwned) } else { Ok(()) }
    }

    fn quiescent(&mut self, client: u16, freed: Freed) {
        let sender = self.core(client);
        self.strategy.quiescent(sender, &mut |f| freed(f));
        for core in (0..self.cores).filter(|&c| c != sender) {
            self.strategy.quiescent(core, &mut |f| freed(f));
        }
    }

    fn try_remove_unique(&mut self, client: u16, frame: u32) -> bool {
        self.strategy.try_remove_unique(self.core(client), frame)
    }

    fn settle(&mut self, freed: Freed) {
        for _ in 0..S::SETTLE_ROUNDS {
            for core in 0..self.cores {
                self.strategy.quiescent(core, &mut |f| freed(f));
            }
        }
    }

    fn count(&self, frame: u32) -> u64 {
        self.strategy.read_exact(frame)
    }

    fn adopt(&mut self, frame: u32, count: u64) {
        if count == 0 {
            return;
        }
        self.strategy.create(0, frame);
        for _ in 1..count {
            self.strategy.inc(0, frame);
        }
    }

    fn census(&self, frames: u32, in_use: &dyn Fn(u32) -> bool) -> Census {
        let mut census = Census::default();
        for frame in (0..frames).filter(|&f| in_use(f)) {
            match self.strategy.read_exact(frame) {
                0 => {}
                1 => census.owned += 1,
                _ => census.shared += 1,
            }
        }
        census
    }
}
