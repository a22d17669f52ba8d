//! The frames of the trace stream and their limits.
//!
//! Owns what may appear on the wire; not how it is encoded (see `encode`) or
//! read back (see `decode`). Every frame is bounded, so the kernel can encode
//! one into a fixed buffer of [`MAX_FRAME_LEN`] bytes.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::record::{RECORD_MAX_ENCODED, Record};

/// The stream format this crate writes. Bump it when a frame or the record
/// changes.
///
/// - 1: `Hello`, `Names`, `Batch`, `Lost`.
/// - 2: adds [`Frame::Message`] (a record's message content) and
///   `Record::FLAG_MESSAGE`; every frame of version 1 reads the same.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format this crate reads: a version-1 capture is a version-2
/// capture without messages.
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// Payload bytes a [`Frame::Message`] carries at most: a whole IPC buffer.
pub const MESSAGE_MAX: usize = 1024;
/// Message registers a [`Frame::Message`] carries.
pub const MESSAGE_REGISTERS: usize = 4;
/// Records per `Batch` frame.
pub const BATCH_MAX: usize = 16;
/// Entries per `Names` frame.
pub const NAMES_MAX: usize = 8;
/// Bytes of a name.
pub const NAME_MAX: usize = 32;

/// What a [`NameEntry`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NameKind {
    /// A thread: `id` and `generation` as in [`crate::ThreadRef`].
    Thread,
    /// An endpoint or notification: `id` as in `Record::endpoint`; `generation` is 0.
    Endpoint,
    /// A message label: the label is `(generation << 32) | id`.
    Label,
}

/// One name for the reader to print instead of a number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameEntry {
    pub kind: NameKind,
    pub id: u32,
    pub generation: u32,
    pub name: String<NAME_MAX>,
}

impl NameEntry {
    /// An entry whose name is `name` cut to [`NAME_MAX`] bytes at a character
    /// boundary.
    pub fn new(kind: NameKind, id: u32, generation: u32, name: &str) -> Self {
        let mut cut = name.len().min(NAME_MAX);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut s = String::new();
        // Cannot fail: `cut` is at most the capacity.
        let _ = s.push_str(&name[..cut]);
        NameEntry { kind, id, generation, name: s }
    }

    /// The entry naming label `label`.
    pub fn label(label: u64, name: &str) -> Self {
        NameEntry::new(NameKind::Label, label as u32, (label >> 32) as u32, name)
    }

    /// The label this entry names, when it names one.
    pub fn label_value(&self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.id)
    }
}

/// One unit of the stream. Variant order is part of the wire format.
// Bounded and inline on purpose: the kernel builds frames without a heap.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame of a capture (and again whenever the writer restarts).
    Hello { format_version: u16, tsc_hz: u64, cpus: u16 },
    /// Names for threads, endpoints and labels seen in records.
    Names { entries: Vec<NameEntry, NAMES_MAX> },
    /// Records of one CPU, in the order that CPU wrote them.
    Batch { cpu: u16, records: Vec<Record, BATCH_MAX> },
    /// `count` records of `cpu` were dropped because its ring was full. Their
    /// sequence numbers were used, so they show up as a gap as well.
    Lost { cpu: u16, count: u64 },
    /// The message of record `seq` of `cpu` (a record with
    /// `Record::FLAG_MESSAGE`): its registers and the first bytes of its
    /// IPC-buffer payload. The payload is whole unless the kernel's capture
    /// limit, a full payload ring or the flight recorder cut it; the record's
    /// `len` (registers plus payload) says how long it was. Sent after the
    /// batch that carries its record. Since format version 2.
    Message { cpu: u16, seq: u64, mrs: [u64; MESSAGE_REGISTERS], payload: Vec<u8, MESSAGE_MAX> },
}

impl Frame {
    /// The hello of this crate's format.
    pub const fn hello(tsc_hz: u64, cpus: u16) -> Frame {
        Frame::Hello { format_version: FORMAT_VERSION, tsc_hz, cpus }
    }
}

/// Whether this crate reads captures of format `version`.
pub const fn reads_format(version: u16) -> bool {
    version >= OLDEST_FORMAT_VERSION && version <= FORMAT_VERSION
}

/// Bytes of the CRC-32 that follows the postcard body inside the COBS frame.
pub const CRC_LEN: usize = 4;

/// The longest batch body: tag, cpu varint, length varint, records.
const MAX_BATCH_LEN: usize = 1 + 3 + 1 + BATCH_MAX * RECORD_MAX_ENCODED;
/// The longest message body: tag, cpu and seq varints, the registers as
/// varints, the payload's length prefix and bytes.
const MAX_MESSAGE_LEN: usize = 1 + 3 + 10 + MESSAGE_REGISTERS * 10 + 2 + MESSAGE_MAX;

/// The longest postcard body: a full batch or a full message, whichever is
/// larger; a full `Names` is checked against it in tests.
pub const MAX_BODY_LEN: usize = if MAX_BATCH_LEN > MAX_MESSAGE_LEN { MAX_BATCH_LEN } else { MAX_MESSAGE_LEN };

/// The longest frame on the wire: body and CRC, the COBS overhead (one code
/// byte per 254 bytes, plus the first) and the 0x00 delimiter.
pub const MAX_FRAME_LEN: usize = {
    let raw = MAX_BODY_LEN + CRC_LEN;
    raw + raw / 254 + 1 + 1
};
