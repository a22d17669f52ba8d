//! Reading frames back from a byte stream (the tools' side; needs `alloc`).
//!
//! The stream may be cut anywhere, start in the middle of a frame, or carry
//! line noise: the decoder takes chunks split at any byte, resynchronises at the
//! next 0x00 delimiter after anything it cannot read, and reports every piece
//! of damage instead of panicking. Memory stays bounded: a run of bytes longer
//! than any frame is counted and dropped, not buffered.

use alloc::vec::Vec;

use crate::crc::crc32;
use crate::frame::{CRC_LEN, Frame, MAX_FRAME_LEN};

/// Why a run of bytes between two delimiters was not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DamageReason {
    /// The COBS code bytes do not describe the run.
    Cobs,
    /// Too short to hold a CRC.
    Short,
    /// The CRC does not match the body.
    Crc,
    /// The CRC matches but the body is not a frame of this format.
    Body,
    /// Longer than any frame before a delimiter came.
    Oversize,
    /// The stream ended inside a frame.
    Truncated,
}

impl DamageReason {
    pub const fn name(self) -> &'static str {
        match self {
            DamageReason::Cobs => "bad COBS",
            DamageReason::Short => "too short",
            DamageReason::Crc => "CRC mismatch",
            DamageReason::Body => "undecodable body",
            DamageReason::Oversize => "oversize run",
            DamageReason::Truncated => "truncated at end",
        }
    }
}

/// A run of bytes that was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Stream offset of the run's first byte.
    pub offset: u64,
    /// Bytes skipped, its delimiter included when there was one.
    pub bytes: u64,
    pub reason: DamageReason,
}

/// What the decoder yields.
// Frames are moved out once each; boxing them would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Frame(Frame),
    Damage(Damage),
}

/// Totals since the decoder was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub frames: u64,
    pub bad_frames: u64,
    pub bytes_skipped: u64,
}

/// A streaming frame decoder.
#[derive(Debug, Default)]
pub struct Decoder {
    /// COBS bytes of the frame in progress, without its delimiter.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]` (or of the oversize run).
    start: u64,
    /// Stream offset of the next byte pushed.
    pos: u64,
    /// Bytes of an oversize run dropped so far; 0 when not in one.
    oversize: u64,
    stats: DecodeStats,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Feeds `chunk` and calls `sink` for each frame completed and each run
    /// of damage found, in stream order.
    pub fn push_with(&mut self, mut chunk: &[u8], sink: &mut impl FnMut(Item)) {
        while !chunk.is_empty() {
            let (run, delimited) = match chunk.iter().position(|&b| b == 0) {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            self.take_run(run);
            self.pos += run.len() as u64;
            if delimited {
                self.pos += 1;
                if let Some(item) = self.end_frame() {
                    sink(item);
                }
                chunk = &chunk[run.len() + 1..];
            } else {
                chunk = &[];
            }
        }
    }

    /// Feeds `chunk` and returns what it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Item> {
        let mut out = Vec::new();
        self.push_with(chunk, &mut |item| out.push(item));
        out
    }

    /// Ends the stream: a frame still in progress is reported as truncated.
    pub fn finish(&mut self) -> Option<Damage> {
        let bytes = self.buf.len() as u64 + self.oversize;
        if bytes == 0 {
            return None;
        }
        let damage = Damage { offset: self.start, bytes, reason: DamageReason::Truncated };
        self.buf.clear();
        self.oversize = 0;
        self.start = self.pos;
        self.note_damage(&damage);
        Some(damage)
    }

    fn take_run(&mut self, run: &[u8]) {
        if self.buf.is_empty() && self.oversize == 0 {
            self.start = self.pos;
        }
        if self.oversize > 0 {
            self.oversize += run.len() as u64;
        } else if self.buf.len() + run.len() >= MAX_FRAME_LEN {
            // The run cannot become a frame any more: count it, keep nothing.
            self.oversize = (self.buf.len() + run.len()) as u64;
            self.buf.clear();
        } else {
            self.buf.extend_from_slice(run);
        }
    }

    fn end_frame(&mut self) -> Option<Item> {
        let item = if self.oversize > 0 {
            let bytes = self.oversize + 1;
            self.oversize = 0;
            Some(Item::Damage(Damage { offset: self.start, bytes, reason: DamageReason::Oversize }))
        } else if self.buf.is_empty() {
            // A lone delimiter: writers may send one to make readers resync.
            None
        } else {
            let bytes = self.buf.len() as u64 + 1;
            Some(match decode_body(&mut self.buf) {
                Ok(frame) => Item::Frame(frame),
                Err(reason) => Item::Damage(Damage { offset: self.start, bytes, reason }),
            })
        };
        self.buf.clear();
        self.start = self.pos;
        match &item {
            Some(Item::Frame(_)) => self.stats.frames += 1,
            Some(Item::Damage(d)) => self.note_damage(&d.clone()),
            None => {}
        }
        item
    }

    fn note_damage(&mut self, d: &Damage) {
        self.stats.bad_frames += 1;
        self.stats.bytes_skipped += d.bytes;
    }
}

/// Decodes one COBS run (no delimiter) in place into a frame.
fn decode_body(run: &mut [u8]) -> Result<Frame, DamageReason> {
    let len = cobs::decode_in_place(run).map_err(|_| DamageReason::Cobs)?;
    let raw = run.get(..len).ok_or(DamageReason::Cobs)?;
    if raw.len() < CRC_LEN {
        return Err(DamageReason::Short);
    }
    let (body, tail) = raw.split_at(raw.len() - CRC_LEN);
    let mut crc = [0u8; CRC_LEN];
    crc.copy_from_slice(tail);
    if crc32(body) != u32::from_le_bytes(crc) {
        return Err(DamageReason::Crc);
    }
    match postcard::take_from_bytes::<Frame>(body) {
        Ok((frame, [])) => Ok(frame),
        _ => Err(DamageReason::Body),
    }
}

/// Decodes a whole stream at once.
pub fn decode_all(bytes: &[u8]) -> (Vec<Item>, DecodeStats) {
    let mut d = Decoder::new();
    let mut items = d.push(bytes);
    if let Some(damage) = d.finish() {
        items.push(Item::Damage(damage));
    }
    (items, d.stats())
}
