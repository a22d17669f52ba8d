//! The few figures that say whether a capture is whole: records read, records
//! lost (reported by `Lost` frames, or missing from a CPU's sequence numbers)
//! and damaged frames. `cargo xtask` prints them after a traced boot;
//! `ipctrace check` goes into the detail.

use alloc::collections::BTreeMap;

use crate::decode::{DecodeStats, Item, decode_all};
use crate::frame::Frame;

/// What one capture holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records read.
    pub records: u64,
    /// CPUs that wrote a record.
    pub cpus: usize,
    /// Records the kernel reported dropped (`Lost` frames).
    pub lost_reported: u64,
    /// Sequence numbers missing between the records of a CPU.
    pub missing: u64,
    /// Frames or runs of bytes that could not be read.
    pub damaged_frames: u64,
    /// Whether the capture starts with a `Hello`.
    pub hello: bool,
    /// `Message` frames read.
    pub messages: u64,
    /// Payload bytes those messages carry.
    pub payload_bytes: u64,
}

impl Summary {
    /// Summarises the capture `bytes`.
    pub fn of(bytes: &[u8]) -> Summary {
        let (items, stats): (_, DecodeStats) = decode_all(bytes);
        let mut summary = Summary { damaged_frames: stats.bad_frames, ..Summary::default() };
        let mut last_seq: BTreeMap<u16, u64> = BTreeMap::new();
        for item in items {
            match item {
                Item::Frame(Frame::Hello { .. }) => summary.hello = true,
                Item::Frame(Frame::Batch { cpu, records }) => {
                    for record in records {
                        summary.records += 1;
                        if let Some(previous) = last_seq.insert(cpu, record.seq) {
                            summary.missing += record.seq.saturating_sub(previous + 1);
                        }
                    }
                }
                Item::Frame(Frame::Lost { count, .. }) => summary.lost_reported += count,
                Item::Frame(Frame::Message { payload, .. }) => {
                    summary.messages += 1;
                    summary.payload_bytes += payload.len() as u64;
                }
                Item::Frame(Frame::Names { .. }) | Item::Damage(_) => {}
            }
        }
        summary.cpus = last_seq.len();
        summary
    }

    /// Records lost on the way: the larger of what the kernel reported and
    /// what the sequence numbers show (a dropped record is both).
    pub fn lost(&self) -> u64 {
        self.lost_reported.max(self.missing)
    }

    /// Nothing lost, nothing damaged, and the capture announced itself.
    pub fn is_whole(&self) -> bool {
        self.hello && self.lost() == 0 && self.damaged_frames == 0
    }
}
