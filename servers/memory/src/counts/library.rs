//! A strategy of `libs/refcount` placed in the process servers, as this
//! server sees it: a view over the region it set up, which the process
//! servers map writable and operate on, each as its own core. This server
//! never acts as a core while they run: it reads counts (census), and only
//! during a swap, with every process server paused (so no core has an
//! operation in flight), runs every core's quiescent point to settle the
//! old strategy and fills the new one.

use proto::ProtoError;
use proto::memory::RefOp;
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
}

impl<S: RefCount<Mem = &'static [Word]>> Counts for Library<S> {
    /// A frame handed out is free in the strategy: the process server
    /// that takes it for a page creates it there.
    fn hand_out(&mut self, _: u32) {}

    /// A frame comes back once the strategy has freed it (and a process
    /// server has taken it into its stock), or unused from a stock.
    fn may_return(&self, _: u32) -> bool {
        true
    }

    fn free(&mut self, frame: u32, freed: Freed) {
        freed(frame);
    }

    fn apply(&mut self, _: &[RefOp], _: Freed) -> Result<(), ProtoError> {
        Err(ProtoError::InvalidArgument)
    }

    fn try_remove_unique(&mut self, _: u32) -> Result<bool, ProtoError> {
        Err(ProtoError::InvalidArgument)
    }

    fn settle_paused(&mut self, freed: Freed) {
        for _ in 0..S::SETTLE_ROUNDS {
            for core in 0..self.cores {
                self.strategy.quiescent(core, &mut |f| freed(f));
            }
        }
    }

    fn count(&self, frame: u32) -> u64 {
        self.strategy.read_exact(frame)
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
