//! The sharing state of every frame: one word per frame of the pool (the
//! counter table, `proto::memory::table`), which the server maps read-only
//! into the process servers. This thread is the only writer, so it is the
//! single lock of the deferred manager: a batch is applied whole before the
//! next message is received.
//!
//! The strategies differ in what a frame handed out looks like:
//! - **deferred** (FTL OS): `OWNED`, no counter. Its owner's process server
//!   forks it without a message, so `OWNED` met by a counter change counts
//!   as 2 (the owner and the one fork that made it shared).
//! - **atomic**: a count of 1 from the start; every change is counted.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use abi::process::Strategy;
use proto::ProtoError;
use proto::memory::{RefOp, commit_order, table};

pub struct Counts {
    table: &'static [AtomicU64],
    strategy: Strategy,
}

/// What a scan of the table finds.
#[derive(Default)]
pub struct Census {
    pub owned: u64,
    pub shared: u64,
}

impl Counts {
    pub fn new(table: &'static [AtomicU64], strategy: Strategy) -> Self {
        Self { table, strategy }
    }

    fn entry(&self, frame: u64) -> Option<&AtomicU64> {
        self.table.get(usize::try_from(frame).ok()?)
    }

    /// A free frame goes to a client.
    pub fn hand_out(&self, frame: u64) {
        let value = match self.strategy {
            Strategy::Deferred => table::OWNED,
            Strategy::Atomic => 1,
        };
        if let Some(entry) = self.entry(frame) {
            entry.store(value, Relaxed);
        }
    }

    /// Whether the caller may free `frame` directly: it holds the one
    /// reference.
    pub fn held_alone(&self, frame: u64) -> bool {
        self.entry(frame).is_some_and(|e| matches!(e.load(Relaxed), table::OWNED | 1))
    }

    /// Marks a frame free (its caller then returns it to the pool).
    pub fn clear(&self, frame: u64) {
        if let Some(entry) = self.entry(frame) {
            entry.store(table::FREE, Relaxed);
        }
    }

    /// Applies a batch, increments first; calls `freed` for every frame that
    /// reached zero. Operations on free frames are skipped, and reported as
    /// `NotOwned` once the rest is applied.
    pub fn apply(&self, ops: &[RefOp], freed: &mut impl FnMut(u64)) -> Result<(), ProtoError> {
        let mut skipped = false;
        for op in commit_order(ops) {
            let frame = u64::from(op.frame);
            let Some(entry) = self.entry(frame) else {
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
                freed(frame);
            } else {
                entry.store(new as u64, Relaxed);
            }
        }
        if skipped { Err(ProtoError::NotOwned) } else { Ok(()) }
    }

    /// Frames held by one reference and frames shared, by a scan.
    pub fn census(&self) -> Census {
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
