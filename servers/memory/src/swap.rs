//! Swapping the strategy live, between placements too. The process servers
//! have paused: their buffers are flushed and their frame stocks returned,
//! and none has an operation in flight. So this server may run every core's
//! quiescent point of a strategy placed in them; once the old strategy has
//! settled, every frame's count is exact, and the new one adopts each
//! count (a strategy placed in the process servers gets a fresh zeroed
//! region instead, which they fill from their page maps), and the old
//! region goes back to the pool.

use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use abi::process::{Placement, Strategy};
use proto::ProtoError;
use proto::memory::table;

use crate::Server;
use crate::counts;
use crate::region::Region;

impl Server {
    pub fn swap(&mut self, new: Strategy) -> Result<(), ProtoError> {
        let mut zeroed = Vec::new();
        self.counts.settle_paused(&mut |frame| zeroed.push(frame));
        zeroed.into_iter().for_each(|frame| self.pool.release(u64::from(frame)));

        let frames = self.layout.pool_frames;
        let words = counts::region_words(new, frames, self.clients);
        let region = Region::from_pool(&self.pages, &mut self.pool, words).ok_or(ProtoError::NoMemory)?;
        let held: Vec<(u32, u64)> = (0..frames)
            .filter(|&f| self.pool.is_used(u64::from(f)))
            .map(|f| (f, self.counts.count(f)))
            .filter(|&(_, count)| count > 0)
            .collect();
        // The old strategy's view ends here: the table starts over too.
        self.table.iter().for_each(|entry| entry.store(table::FREE, Relaxed));
        let mut fresh = match counts::build(new, self.table, region.words(), self.clients) {
            Ok(fresh) => fresh,
            Err(_) => {
                region.release(&mut self.pool);
                return Err(ProtoError::NoMemory);
            }
        };
        // A strategy placed in the process servers is filled there, from
        // their page maps, once its region is mapped.
        if new.placement() == Placement::Server {
            for (frame, count) in held {
                fresh.adopt(frame, count);
            }
        }
        self.counts = fresh;
        core::mem::replace(&mut self.region, region).release(&mut self.pool);
        rt::println!("memory: strategy {} -> {}", self.strategy.name(), new.name());
        self.strategy = new;
        Ok(())
    }
}
