//! The FTL OS deferred manager's client rules, with the manager in the
//! memory server and the counter table mapped writable here.
//!
//! The table always holds the true count plus every buffered (and every
//! sent but not yet applied) decrement. So a word of 1 (or `OWNED`) seen by
//! a holder that has nothing buffered for the frame means it holds the only
//! reference, and nothing is buffered or in flight anywhere: no one else
//! may write that word, and the holder writes it directly:
//! - a fork of such a frame stores 2 (no increment to send);
//! - a release of such a frame frees it (back to our stock).
//!
//! Otherwise a fork queues an increment, committed before the fork returns,
//! unless we buffer a decrement of the frame: the two cancel (the table
//! stays the true count plus what is buffered). Decrements wait in a
//! per-frame buffer (found in O(1)), flushed with try-lock semantics: a
//! non-blocking send that a busy memory server refuses, so we keep
//! buffering, up to a hard limit where the flush blocks. Idle flushes block
//! too. A decrement never leaves before its increment: increments are
//! committed at the end of the fork that made them.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use proto::memory::{MAX_REF_OPS, RefOp, RefOps, table};

use crate::link::Link;
use crate::space::Page;
use crate::system::{self, Counters};

/// Buffered frames past which a flush is tried (without blocking).
const TRY_FLUSH_AT: usize = 8192;
/// Buffered frames past which a flush waits for the manager.
const HARD_LIMIT: usize = 4 * TRY_FLUSH_AT;
/// The most one `RefOp` carries.
const MAX_DELTA: u16 = i8::MAX as u16;

pub struct Deferred {
    table: &'static [AtomicU64],
    /// Increments of the fork in progress.
    incs: Vec<u32>,
    /// Our buffered decrements of each frame.
    pending: Vec<u16>,
    /// The frames with buffered decrements (each once; a frame whose
    /// decrements were taken back may linger, with none).
    dirty: Vec<u32>,
}

impl Deferred {
    pub fn new() -> Self {
        let table = system::get().table();
        Self { table, incs: Vec::new(), pending: vec![0; table.len()], dirty: Vec::new() }
    }

    fn word(&self, frame: u32) -> Option<&'static AtomicU64> {
        self.table.get(frame as usize)
    }

    fn pending(&self, frame: u32) -> u16 {
        self.pending.get(frame as usize).copied().unwrap_or(0)
    }

    /// Whether the word says one reference, and we buffer nothing for it.
    fn held_alone(&self, word: &AtomicU64, frame: u32) -> bool {
        self.pending(frame) == 0 && matches!(word.load(Relaxed), table::OWNED | 1)
    }

    pub fn share(&mut self, link: &mut Link, page: &Page) {
        let Some(word) = self.word(page.frame) else { return };
        let stats = &system::get().stats;
        if !page.is(Page::SHARED) || self.held_alone(word, page.frame) {
            word.store(2, Relaxed);
            Counters::add(&stats.direct_stores, 1);
        } else if self.pending(page.frame) > 0 {
            self.pending[page.frame as usize] -= 1;
            Counters::add(&stats.cancelled, 1);
        } else {
            self.incs.push(page.frame);
            if self.incs.len() == MAX_REF_OPS {
                self.commit(link);
            }
        }
    }

    /// Sends the queued increments (a fork's, before it returns).
    pub fn commit(&mut self, link: &mut Link) {
        while !self.incs.is_empty() {
            let take = self.incs.len().min(MAX_REF_OPS);
            let ops: RefOps = self.incs.drain(..take).map(RefOp::inc).collect();
            link.ref_batch(ops, true);
        }
    }

    pub fn release(&mut self, link: &mut Link, page: Page) {
        let Some(word) = self.word(page.frame) else { return };
        if !page.is(Page::SHARED) || self.held_alone(word, page.frame) {
            word.store(table::OWNED, Relaxed);
            if page.is(Page::SHARED) {
                Counters::add(&system::get().stats.direct_stores, 1);
            }
            link.put(page.frame);
            return;
        }
        let count = &mut self.pending[page.frame as usize];
        if *count == 0 {
            self.dirty.push(page.frame);
        }
        *count += 1;
        if *count == u16::MAX {
            self.flush(link);
        }
    }

    /// After a run of releases: flush if the buffer grew too large.
    pub fn after_release(&mut self, link: &mut Link) {
        if self.dirty.len() >= HARD_LIMIT {
            self.flush(link);
        } else if self.dirty.len() >= TRY_FLUSH_AT {
            self.try_flush(link);
        }
    }

    /// Our reference is the only one: the word less our buffered decrements
    /// is 1. The frame is then owned again (`OWNED`), and those decrements
    /// are dropped with it (they counted references we no longer have).
    pub fn claim_unique(&mut self, frame: u32) -> bool {
        let Some(word) = self.word(frame) else { return false };
        let count = match word.load(Relaxed) {
            table::OWNED => 1,
            count => count,
        };
        if count.saturating_sub(u64::from(self.pending(frame))) != 1 {
            return false;
        }
        word.store(table::OWNED, Relaxed);
        self.pending[frame as usize] = 0;
        true
    }

    pub fn has_pending(&self) -> bool {
        !self.dirty.is_empty() || !self.incs.is_empty()
    }

    /// Sends every buffered decrement, waiting for the manager.
    pub fn flush(&mut self, link: &mut Link) {
        self.commit(link);
        while let Some(ops) = self.next_batch() {
            link.ref_batch(ops, true);
        }
    }

    /// Sends buffered decrements while the manager takes them at once.
    fn try_flush(&mut self, link: &mut Link) {
        while let Some(ops) = self.next_batch() {
            if !link.ref_batch(ops.clone(), false) {
                // Busy: put them back and keep buffering.
                for op in ops {
                    self.unbuffer_failed(op);
                }
                return;
            }
        }
    }

    fn unbuffer_failed(&mut self, op: RefOp) {
        let count = &mut self.pending[op.frame as usize];
        if *count == 0 {
            self.dirty.push(op.frame);
        }
        *count += u16::from(op.delta.unsigned_abs());
    }

    /// Takes up to a batch of buffered decrements out of the buffer.
    fn next_batch(&mut self) -> Option<RefOps> {
        let mut ops = RefOps::new();
        while !ops.is_full() {
            let Some(&frame) = self.dirty.last() else { break };
            let count = &mut self.pending[frame as usize];
            if *count == 0 {
                self.dirty.pop();
                continue;
            }
            let delta = (*count).min(MAX_DELTA);
            *count -= delta;
            let _ = ops.push(RefOp { frame, delta: -(delta as i8) });
        }
        (!ops.is_empty()).then_some(ops)
    }
}
