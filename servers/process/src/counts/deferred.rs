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

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use proto::memory::{MAX_REF_OPS, RefOp, RefOps, table};

use super::buffer::{Buffer, MAX_PER_FRAME};
use crate::link::Link;
use crate::space::Page;
use crate::system::{self, Counters};

/// Frames with buffered decrements past which a flush is tried (without
/// blocking).
const TRY_FLUSH_AT: usize = 8192;
/// Frames with buffered decrements past which a flush waits for the
/// manager.
const HARD_LIMIT: usize = 4 * TRY_FLUSH_AT;

pub struct Deferred {
    table: &'static [AtomicU64],
    /// Increments of the fork in progress.
    incs: Vec<u32>,
    /// Our buffered decrements.
    decs: Buffer,
    /// Shortcuts taken since they were last added to the system's counters
    /// (once per fork or release, not per page).
    direct_stores: u64,
    cancelled: u64,
}

impl Deferred {
    pub fn new() -> Self {
        let table = system::get().table();
        Self { table, incs: Vec::new(), decs: Buffer::new(table.len()), direct_stores: 0, cancelled: 0 }
    }

    #[inline]
    fn word(&self, frame: u32) -> Option<&'static AtomicU64> {
        self.table.get(frame as usize)
    }

    #[inline]
    pub fn share(&mut self, link: &mut Link, page: &Page) {
        let Some(word) = self.word(page.frame) else { return };
        if !page.is(Page::SHARED) {
            word.store(2, Relaxed);
        } else if self.decs.cancel(page.frame) {
            self.cancelled += 1;
        } else if matches!(word.load(Relaxed), table::OWNED | 1) {
            // Nothing of ours is buffered for it (or `cancel` took it).
            word.store(2, Relaxed);
            self.direct_stores += 1;
        } else {
            self.incs.push(page.frame);
            if self.incs.len() == MAX_REF_OPS {
                self.commit(link);
            }
        }
    }

    /// Sends the queued increments (a fork's, before it returns).
    pub fn commit(&mut self, link: &mut Link) {
        self.count_shortcuts();
        while !self.incs.is_empty() {
            let take = self.incs.len().min(MAX_REF_OPS);
            let ops: RefOps = self.incs.drain(..take).map(RefOp::inc).collect();
            link.ref_batch(ops, true);
        }
    }

    /// Inlined into each caller's loop (one per page of an exit). Whether
    /// exactly one reference to the frame is left, as far as it shows at
    /// no cost: the first decrement we buffer of a word of 2.
    #[inline(always)]
    pub fn release(&mut self, link: &mut Link, page: Page) -> bool {
        let Some(word) = self.word(page.frame) else { return false };
        if page.is(Page::SHARED) {
            let mut seen = 0;
            let alone = || {
                seen = word.load(Relaxed);
                matches!(seen, table::OWNED | 1)
            };
            match self.decs.add_one_unless(page.frame, alone) {
                Some(MAX_PER_FRAME) => self.flush(link),
                // The word less our one buffered decrement is 1: the true
                // count plus everyone else's buffered decrements. A holder
                // is left (else the word would be ours alone) and it holds
                // the only reference.
                Some(1) => return seen == 2,
                Some(_) => {}
                None => {
                    self.direct_stores += 1;
                    word.store(table::OWNED, Relaxed);
                    link.put(page.frame);
                }
            }
        } else {
            word.store(table::OWNED, Relaxed);
            link.put(page.frame);
        }
        false
    }

    /// After a run of releases: flush if the buffer grew too large.
    pub fn after_release(&mut self, link: &mut Link) {
        self.count_shortcuts();
        if self.decs.frames() >= HARD_LIMIT {
            self.flush(link);
        } else if self.decs.frames() >= TRY_FLUSH_AT {
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
        if count.saturating_sub(u64::from(self.decs.count(frame))) != 1 {
            return false;
        }
        word.store(table::OWNED, Relaxed);
        self.decs.clear(frame);
        true
    }

    fn count_shortcuts(&mut self) {
        let stats = &system::get().stats;
        Counters::add(&stats.direct_stores, core::mem::take(&mut self.direct_stores));
        Counters::add(&stats.cancelled, core::mem::take(&mut self.cancelled));
    }

    pub fn has_pending(&self) -> bool {
        self.decs.frames() > 0 || !self.incs.is_empty()
    }

    /// Sends every buffered decrement, waiting for the manager.
    pub fn flush(&mut self, link: &mut Link) {
        self.commit(link);
        while let Some(ops) = self.decs.next_batch() {
            link.ref_batch(ops, true);
        }
    }

    /// Sends buffered decrements while the manager takes them at once.
    fn try_flush(&mut self, link: &mut Link) {
        while let Some(ops) = self.decs.next_batch() {
            if !link.ref_batch(ops.clone(), false) {
                // Busy: put them back and keep buffering.
                for op in ops {
                    self.decs.add(op.frame, u16::from(op.delta.unsigned_abs()));
                }
                return;
            }
        }
    }
}
