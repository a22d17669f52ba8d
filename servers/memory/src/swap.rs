//! Swapping the strategy live. The process servers have paused: their
//! buffers are flushed, their frame stocks returned, and the frames the
//! deferred strategy shared without a message are materialized. So every
//! frame's count is exact once the old strategy has settled; the new one
//! adopts each count, over a fresh region, and the old region goes back
//! to the pool.

use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use abi::process::Strategy;
use proto::ProtoError;
use proto::memory::table;

use crate::Server;
use crate::counts;
use crate::region::Region;

impl Server {
    pub fn swap(&mut self, new: Strategy) -> Result<(), ProtoError> {
        let mut zeroed = Vec::new();
        self.counts.settle(&mut |frame| zeroed.push(frame));
        zeroed.into_iter().for_each(|frame| self.pool.release(u64::from(frame)));

        let frames = self.layout.pool_frames;
        let words = counts::region_words(new, frames, self.clients);
        let region = Region::from_pool(&self.pages, &mut self.pool, words).ok_or(ProtoError::NoMemory)?;
        let held: Vec<(u32, u64)> =
            (0..frames).filter(|&f| self.pool.is_used(u64::from(f))).map(|f| (f, self.counts.count(f))).filter(|&(_, count)| count > 0).collect();
        // The old strategy's view ends here: the table starts over too.
        self.table.iter().for_each(|entry| entry.store(table::FREE, Relaxed));
        let mut fresh = match counts::build(new, self.table, region.words(), self.clients) {
            Ok(fresh) => fresh,
            Err(_) => {
                region.release(&mut self.pool);
                return Err(ProtoError::NoMemory);
            }
        };
        for (frame, count) in held {
            fresh.adopt(frame, count);
        }
        self.counts = fresh;
        core::mem::replace(&mut self.region, region).release(&mut self.pool);
        rt::println!("memory: strategy {} -> {}", self.strategy.name(), new.name());
        self.strategy = new;
        Ok(())
    }
}
