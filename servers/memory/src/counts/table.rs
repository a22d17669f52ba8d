//! Deferred and atomic: one word per frame in the counter table, which the
//! server maps read-only into the process servers.
//!
//! The strategies differ in what a frame handed out looks like:
//! - **deferred** (FTL OS): `OWNED`, no counter. Its owner's process server
//!   forks it without a message, so `OWNED` met by a counter change counts
//!   as 2 (the owner and the one fork that made it shared).
//! - **atomic**: a count of 1 from the start; every change is counted.

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
}

impl Counts for Table {
    fn hand_out(&mut self, _: u16, frame: u32) {
        let value = match self.strategy {
            Strategy::Deferred => table::OWNED,
            _ => 1,
        };
        if let Some(entry) = self.entry(frame) {
            entry.store(value, Relaxed);
        }
    }

    fn held_alone(&self, frame: u32) -> bool {
        self.entry(frame).is_some_and(|e| matches!(e.load(Relaxed), table::OWNED | 1))
    }

    fn free(&mut self, _: u16, frame: u32, freed: Freed) {
        if let Some(entry) = self.entry(frame) {
            entry.store(table::FREE, Relaxed);
            freed(frame);
        }
    }

    fn apply(&mut self, _: u16, ops: &[RefOp], _: &dyn Fn(u32) -> bool, freed: Freed) -> Result<(), ProtoError> {
        let mut skipped = false;
        for op in commit_order(ops) {
            let Some(entry) = self.entry(op.frame) else {
                skipped = true;
                continue;
            };
            let count = match entry.load(Relaxed) {
                table::FREE => {
                    skipped = true;
                    continue;
                }
                table::OWNED => 2,
                count => count as i64,
            };
            let new = count + i64::from(op.delta);
            if new <= 0 {
                entry.store(table::FREE, Relaxed);
                freed(op.frame);
            } else {
                entry.store(new as u64, Relaxed);
            }
        }
        if skipped { Err(ProtoError::NotOwned) } else { Ok(()) }
    }

    fn quiescent(&mut self, _: u16, _: Freed) {}

    fn try_remove_unique(&mut self, _: u16, frame: u32) -> bool {
        self.entry(frame).is_some_and(|e| e.load(Relaxed) == 1)
    }

    fn settle(&mut self, _: Freed) {}

    fn count(&self, frame: u32) -> u64 {
        match self.entry(frame).map_or(table::FREE, |e| e.load(Relaxed)) {
            table::OWNED => 1,
            count => count,
        }
    }

    fn materialize(&mut self, frame: u32) {
        if self.strategy == Strategy::Deferred
            && let Some(entry) = self.entry(frame)
            && entry.load(Relaxed) == table::OWNED
        {
            entry.store(2, Relaxed);
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
