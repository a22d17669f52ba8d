//! Taking back every frame of a dead client: its supervisor tore it down
//! (its threads, its mappings), so whatever its frames' counts say, no
//! one maps them any more. They go back to the pool, their counter words
//! to `FREE`, and the frames it held as its heap with them; a strategy placed in the process servers starts over with a
//! zeroed region, which the restarted servers map and fill from their
//! (empty) page maps.

use alloc::vec::Vec;

use abi::process::Placement;
use proto::ProtoError;

use crate::Server;
use crate::counts;
use crate::region::Region;

impl Server {
    /// Frees every frame handed to client record `record`, its heap's
    /// among them; how many.
    pub fn reclaim(&mut self, record: u8) -> Result<u64, ProtoError> {
        let frames: Vec<u32> = (0..self.layout.pool_frames).filter(|&frame| self.pool.held_by(u64::from(frame), record)).collect();
        let mut zeroed = Vec::new();
        for &frame in &frames {
            self.counts.free(frame, &mut |freed| zeroed.push(freed));
        }
        zeroed.into_iter().for_each(|frame| self.pool.release(u64::from(frame)));
        let heap = self.pool.release_heap(record);
        if self.strategy.placement() == Placement::Shared {
            let words = counts::region_words(self.strategy, self.layout.pool_frames, self.clients);
            let region = Region::from_pool(&self.pages, &mut self.pool, words).ok_or(ProtoError::NoMemory)?;
            match counts::build(self.strategy, self.table, region.words(), self.clients) {
                Ok(fresh) => self.counts = fresh,
                Err(_) => {
                    region.release(&mut self.pool);
                    return Err(ProtoError::NoMemory);
                }
            }
            core::mem::replace(&mut self.region, region).release(&mut self.pool);
        }
        Ok(frames.len() as u64 + heap)
    }
}
