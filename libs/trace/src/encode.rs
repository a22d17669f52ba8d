//! Writing a frame into a caller's buffer, with no allocation (the kernel side).
//!
//! A frame on the wire is `COBS(postcard(Frame) ++ crc32_le(postcard(Frame))) 0x00`.
//! Serialization streams through the CRC into postcard's COBS flavor, so the
//! frame is built in place in the output buffer with no scratch copy.

use postcard::ser_flavors::{Cobs, Flavor, Slice};
use serde::Serialize;
use serde::ser::{SerializeStructVariant, Serializer};

use crate::crc::Crc32;
use crate::frame::{Frame, MESSAGE_MAX, MESSAGE_REGISTERS};

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is shorter than the frame; [`crate::MAX_FRAME_LEN`]
    /// bytes always suffice.
    BufferFull,
    /// postcard refused the value (cannot happen for the frames of this crate).
    Serialize,
}

/// A flavor that keeps a CRC of everything that passes through and appends it,
/// little-endian, before finishing the inner flavor.
struct CrcThen<B: Flavor> {
    crc: Crc32,
    inner: B,
}

impl<B: Flavor> Flavor for CrcThen<B> {
    type Output = B::Output;

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.crc.update(&[data]);
        self.inner.try_push(data)
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.crc.update(data);
        self.inner.try_extend(data)
    }

    fn finalize(mut self) -> postcard::Result<Self::Output> {
        self.inner.try_extend(&self.crc.finish().to_le_bytes())?;
        self.inner.finalize()
    }
}

fn map_err(e: postcard::Error) -> EncodeError {
    match e {
        postcard::Error::SerializeBufferFull => EncodeError::BufferFull,
        _ => EncodeError::Serialize,
    }
}

/// Encodes `frame` into the start of `out`, delimiter included, and returns
/// the number of bytes written.
pub fn encode(frame: &Frame, out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_value(frame, out)
}

fn encode_value(value: &impl Serialize, out: &mut [u8]) -> Result<usize, EncodeError> {
    let cobs = Cobs::try_new(Slice::new(out)).map_err(map_err)?;
    let flavor = CrcThen { crc: Crc32::new(), inner: cobs };
    let written = postcard::serialize_with_flavor(value, flavor).map_err(map_err)?;
    Ok(written.len())
}

/// Encodes the frame `Frame::Message { cpu, seq, mrs, payload }` from a
/// borrowed payload, byte for byte as [`encode`] would, without building
/// the frame (and its inline buffer of [`MESSAGE_MAX`] bytes) first. A
/// payload longer than that is cut to it.
pub fn encode_message(cpu: u16, seq: u64, mrs: &[u64; MESSAGE_REGISTERS], payload: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    let payload = &payload[..payload.len().min(MESSAGE_MAX)];
    encode_value(&MessageFrame { cpu, seq, mrs, payload }, out)
}

/// `Frame::Message` with its payload borrowed; serializes as that variant.
struct MessageFrame<'a> {
    cpu: u16,
    seq: u64,
    mrs: &'a [u64; MESSAGE_REGISTERS],
    payload: &'a [u8],
}

/// The variant index of `Frame::Message` (postcard writes it as the tag).
const MESSAGE_VARIANT: u32 = 4;

impl Serialize for MessageFrame<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut variant = serializer.serialize_struct_variant("Frame", MESSAGE_VARIANT, "Message", 4)?;
        variant.serialize_field("cpu", &self.cpu)?;
        variant.serialize_field("seq", &self.seq)?;
        variant.serialize_field("mrs", self.mrs)?;
        // A slice serializes as a sequence, as the frame's `heapless::Vec` does.
        variant.serialize_field("payload", self.payload)?;
        variant.end()
    }
}
