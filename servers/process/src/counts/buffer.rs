//! A server's buffered decrements: a count per frame, found in O(1), and
//! the list of frames that have one (each listed once), from which batches
//! are taken. Cancelling a decrement leaves its frame listed with a count
//! of 0, ready for the next; such entries are dropped as batches pass
//! them, or all at once when new listings make them most of the list.

use alloc::vec;
use alloc::vec::Vec;

use proto::memory::{RefOp, RefOps};

/// The mark of a listed frame, in its count's top bit.
const LISTED: u16 = 1 << 15;
/// The most decrements of one frame the buffer holds.
pub const MAX_PER_FRAME: u16 = LISTED - 1;
/// The most one `RefOp` carries.
const MAX_DELTA: u16 = i8::MAX as u16;

pub struct Buffer {
    counts: Vec<u16>,
    listed: Vec<u32>,
    /// Frames whose count is not 0.
    frames: usize,
}

impl Buffer {
    pub fn new(frames: usize) -> Self {
        Self { counts: vec![0; frames], listed: Vec::new(), frames: 0 }
    }

    /// Our buffered decrements of `frame`.
    #[inline]
    pub fn count(&self, frame: u32) -> u16 {
        self.counts.get(frame as usize).map_or(0, |c| c & !LISTED)
    }

    /// Frames with buffered decrements.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Buffers `n` more decrements of `frame`; its count after.
    #[inline]
    pub fn add(&mut self, frame: u32, n: u16) -> u16 {
        let Some(entry) = self.counts.get_mut(frame as usize) else { return 0 };
        let listed = *entry & LISTED != 0;
        *entry |= LISTED;
        if *entry & !LISTED == 0 {
            self.frames += 1;
        }
        *entry += n;
        let count = *entry & !LISTED;
        if !listed {
            self.listed.push(frame);
            self.compact_if_sparse();
        }
        count
    }

    /// Buffers one decrement of `frame`, unless nothing is buffered for it
    /// and `alone()` says ours is its only reference: `None` then, and
    /// nothing changes; else the frame's count after. One probe of the
    /// frame's entry (an exit's loop).
    #[inline]
    pub fn add_one_unless(&mut self, frame: u32, alone: impl FnOnce() -> bool) -> Option<u16> {
        let entry = self.counts.get_mut(frame as usize)?;
        if *entry & !LISTED == 0 {
            if alone() {
                return None;
            }
            self.frames += 1;
        }
        let listed = *entry & LISTED != 0;
        *entry = (*entry | LISTED) + 1;
        let count = *entry & !LISTED;
        if !listed {
            self.listed.push(frame);
            self.compact_if_sparse();
        }
        Some(count)
    }

    /// Takes back one buffered decrement of `frame`, if there is one.
    #[inline]
    pub fn cancel(&mut self, frame: u32) -> bool {
        match self.counts.get_mut(frame as usize) {
            Some(entry) if *entry & !LISTED > 0 => {
                *entry -= 1;
                if *entry & !LISTED == 0 {
                    self.frames -= 1;
                }
                true
            }
            _ => false,
        }
    }

    /// Takes back every buffered decrement of `frame`.
    pub fn clear(&mut self, frame: u32) {
        if let Some(entry) = self.counts.get_mut(frame as usize)
            && *entry & !LISTED > 0
        {
            *entry &= LISTED;
            self.frames -= 1;
        }
    }

    /// Takes up to a batch of buffered decrements out of the buffer.
    pub fn next_batch(&mut self) -> Option<RefOps> {
        let mut ops = RefOps::new();
        while !ops.is_full() {
            let Some(&frame) = self.listed.last() else { break };
            let entry = &mut self.counts[frame as usize];
            let delta = (*entry & !LISTED).min(MAX_DELTA);
            *entry -= delta;
            if *entry & !LISTED == 0 {
                *entry = 0;
                self.listed.pop();
                if delta > 0 {
                    self.frames -= 1;
                }
            }
            if delta > 0 {
                let _ = ops.push(RefOp { frame, delta: -(delta as i8) });
            }
        }
        (!ops.is_empty()).then_some(ops)
    }

    /// Drops the listed frames with nothing buffered once they are most of
    /// the list. Only a new listing can make it so: a frame cancelled and
    /// buffered again (a fork loop's steady state) keeps its place.
    fn compact_if_sparse(&mut self) {
        if self.listed.len() <= 2 * self.frames + 1024 {
            return;
        }
        let counts = &mut self.counts;
        self.listed.retain(|&frame| {
            let live = counts[frame as usize] & !LISTED > 0;
            if !live {
                counts[frame as usize] = 0;
            }
            live
        });
    }
}
