//! The IPC trace format, shared by the kernel (writer) and host tools (reader).
//!
//! The kernel writes a fixed-size [`Record`] into a per-CPU ring at the one
//! place every IPC and fault passes through, with no formatting. A drain
//! packs records into [`Frame::Batch`]es and sends them out of the second serial
//! port. On the wire each frame is
//!
//! ```text
//! COBS( postcard(Frame) ++ crc32_le(postcard(Frame)) ) 0x00
//! ```
//!
//! so the byte 0x00 appears only as a delimiter, a reader can start anywhere and
//! resynchronise at the next one, and the CRC rejects a frame damaged in
//! transit. A capture begins with [`Frame::Hello`] (format version, TSC rate,
//! CPU count), carries [`Frame::Names`] for the reader to print names,
//! [`Frame::Message`] for the content of the messages records stand for, and
//! reports ring overflow with [`Frame::Lost`].
//!
//! The crate is `no_std` and allocation-free on the writer side ([`encode`]);
//! the streaming `Decoder` needs the `alloc` feature.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;

mod crc;
#[cfg(any(feature = "alloc", test))]
mod decode;
mod encode;
mod frame;
mod record;
#[cfg(any(feature = "alloc", test))]
mod summary;

pub use crc::{Crc32, crc32};
#[cfg(any(feature = "alloc", test))]
pub use decode::{Damage, DamageReason, DecodeStats, Decoder, Item, decode_all};
pub use encode::{EncodeError, encode, encode_message};
pub use frame::{
    BATCH_MAX, CRC_LEN, FORMAT_VERSION, Frame, MAX_BODY_LEN, MAX_FRAME_LEN, MESSAGE_MAX, MESSAGE_REGISTERS, NAME_MAX, NAMES_MAX, NameEntry,
    NameKind, OLDEST_FORMAT_VERSION, reads_format,
};
pub use heapless;
pub use record::{Kind, RECORD_MAX_ENCODED, RECORD_SIZE, Record, ThreadRef};
#[cfg(any(feature = "alloc", test))]
pub use summary::Summary;

#[cfg(test)]
mod tests;
