//! Deferred and atomic-ipc, the strategies placed in this server: one word
//! per frame in the counter table, which the process servers map writable.
//!
//! The strategies differ in what a frame handed out looks like:
//! - **deferred** (FTL OS): `OWNED`, no counter, a count of 1. Its owner's
//!   process server forks it by storing 2, and frees it by taking it back
//!   (the count-1 shortcuts: a holder of the only reference, with nothing
//!   buffered, is the word's only writer).
//! - **atomic-ipc**: a count of 1 from the start; every change is a message.

use core::sync::atomic::Ordering::Relaxed;

use abi::process::Strategy;
use proto::ProtoError;
use proto::memory::{RefOp, commit_order, table};
use refcount::Word;

use super::{Census, Counts, Freed};

pub struct Table {
    table: &'static [Word],
    strategy: Strategy,
}

impl Table {
    pub fn new(table: &'static [Word], strategy: Strategy) -> Self {
        Self { table, strategy }
    }

    fn entry(&self, frame: u32) -> Option<&Word> {
        self.table.get(frame as usize)
    }

    /// Whether `ops` may be applied whole: every frame counted, and every
    /// count, once the batch's increments and then its decrements are
    /// applied, at least zero (so never below on the way, decrements
    /// coming last) and at most `MAX_COUNT`.
    fn check(&self, ops: &[RefOp]) -> Result<(), ProtoError> {
        for (i, op) in ops.iter().enumerate() {
            if self.count(op.frame) == 0 {
                return Err(ProtoError::NotOwned);
            }
            if ops[..i].iter().any(|earlier| earlier.frame == op.frame) {
                continue;
            }
            let net: i64 = ops.iter().filter(|other| other.frame == op.frame).map(|other| i64::from(other.delta)).sum();
            let after = (self.count(op.frame) as i64).checked_add(net);
            if !after.is_some_and(|after| (0..=MAX_COUNT).contains(&after)) {
                return Err(ProtoError::InvalidArgument);
            }
        }
        Ok(())
    }
}

/// The most references a count may reach: one per page that maps the
/// frame, far below the `OWNED` marker bit.
const MAX_COUNT: i64 = u32::MAX as i64;

impl Counts for Table {
    fn hand_out(&mut self, frame: u32) {
        let value = match self.strategy {
            Strategy::Deferred => table::OWNED,
            _ => 1,
        };
        if let Some(entry) = self.entry(frame) {
            entry.store(value, Relaxed);
        }
    }

    fn may_return(&self, frame: u32) -> bool {
        self.entry(frame).is_some_and(|e| matches!(e.load(Relaxed), table::OWNED | 1))
    }

    fn free(&mut self, frame: u32, freed: Freed) {
        if let Some(entry) = self.entry(frame) {
            entry.store(table::FREE, Relaxed);
            freed(frame);
        }
    }

    fn apply(&mut self, ops: &[RefOp], freed: Freed) -> Result<(), ProtoError> {
        self.check(ops)?;
        for op in commit_order(ops) {
            let new = self.count(op.frame) as i64 + i64::from(op.delta);
            if let Some(entry) = self.entry(op.frame) {
                if new == 0 {
                    entry.store(table::FREE, Relaxed);
                    freed(op.frame);
                } else {
                    entry.store(new as u64, Relaxed);
                }
            }
        }
        Ok(())
    }

    fn try_remove_unique(&mut self, frame: u32) -> Result<bool, ProtoError> {
        Ok(self.entry(frame).is_some_and(|e| matches!(e.load(Relaxed), table::OWNED | 1)))
    }

    fn settle_paused(&mut self, _: Freed) {}

    fn count(&self, frame: u32) -> u64 {
        match self.entry(frame).map_or(table::FREE, |e| e.load(Relaxed)) {
            table::OWNED => 1,
            count => count,
        }
    }

    fn adopt(&mut self, frame: u32, count: u64) {
        if let Some(entry) = self.entry(frame) {
            entry.store(count, Relaxed);
        }
    }

    fn census(&self, _: u32, _: &dyn Fn(u32) -> bool) -> Census {
        let mut census = Census::default();
        for entry in self.table {
            match entry.load(Relaxed) {
                table::FREE => {}
                table::OWNED | 1 => census.owned += 1,
                _ => census.shared += 1,
            }
        }
        census
    }
}
