//! Writing a frame into a caller's buffer, with no allocation (the kernel side).
//!
//! A frame on the wire is `COBS(postcard(Frame) ++ crc32_le(postcard(Frame))) 0x00`.
//! Serialization streams through the CRC into postcard's COBS flavor, so the
//! frame is built in place in the output buffer with no scratch copy.

use postcard::ser_flavors::{Cobs, Flavor, Slice};

use crate::crc::Crc32;
use crate::frame::Frame;

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
    let cobs = Cobs::try_new(Slice::new(out)).map_err(map_err)?;
    let flavor = CrcThen { crc: Crc32::new(), inner: cobs };
    let written = postcard::serialize_with_flavor(frame, flavor).map_err(map_err)?;
    Ok(written.len())
}
