//! The codec: postcard bytes in the IPC buffer payload, bounded by
//! [`IPC_BUFFER_DATA`]. It owns the rules every message obeys (the size limit,
//! no trailing bytes, no panics on any input) and the arithmetic of postcard's
//! worst-case sizes; it must not know any particular message.

use abi::msg::IPC_BUFFER_DATA;
use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// Encodes `value` into the front of `buf` and returns the bytes used.
///
/// At most [`IPC_BUFFER_DATA`] bytes are written even when `buf` is longer,
/// since no more can travel in one message.
pub fn encode<T: Serialize + ?Sized>(value: &T, buf: &mut [u8]) -> Result<usize, ProtoError> {
    let limit = buf.len().min(IPC_BUFFER_DATA);
    let (window, _) = buf.split_at_mut(limit);
    Ok(postcard::to_slice(value, window)?.len())
}

/// Decodes one message that must fill `bytes` exactly.
///
/// Never panics. Truncated or invalid bytes give [`ProtoError::Malformed`]
/// (an unknown enum tag too: [`crate::accept`] tells that case apart); bytes left
/// after a complete message give [`ProtoError::TrailingBytes`], because the
/// payload length in the message info is exact and leftovers mean that the
/// two sides disagree on the layout.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ProtoError> {
    if bytes.len() > IPC_BUFFER_DATA {
        return Err(ProtoError::TooLarge);
    }
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() { Ok(value) } else { Err(ProtoError::TrailingBytes) }
}

/// The first `length` bytes of a received IPC buffer's data, where `length`
/// comes from the (untrusted) message info and may claim up to 4095 bytes.
pub fn payload(data: &[u8], length: usize) -> Result<&[u8], ProtoError> {
    if length > IPC_BUFFER_DATA {
        return Err(ProtoError::TooLarge);
    }
    data.get(..length).ok_or(ProtoError::TooLarge)
}

/// Worst-case encoded sizes of postcard's primitives, for the size bounds
/// each protocol computes at compile time.
pub mod size {
    /// Bytes of a varint carrying at most `bits` bits (7 bits per byte).
    pub const fn varint(bits: usize) -> usize {
        bits.div_ceil(7)
    }
    pub const U16: usize = varint(16);
    pub const U32: usize = varint(32);
    pub const U64: usize = varint(64);
    /// `i32` is zigzag-encoded into a `u32` varint.
    pub const I32: usize = U32;
    /// `i8`, `u8` and `bool` are one raw byte.
    pub const BYTE: usize = 1;
    /// An enum tag (a `u32` varint) for an enum of fewer than 128 variants.
    pub const TAG: usize = 1;
    /// The length prefix of a sequence or string of at most `len` elements.
    pub const fn len_prefix(len: usize) -> usize {
        if len < 1 << 7 {
            1
        } else if len < 1 << 14 {
            2
        } else {
            varint(usize::BITS as usize)
        }
    }
    /// A sequence of at most `len` elements of at most `element` bytes each.
    pub const fn seq(len: usize, element: usize) -> usize {
        len_prefix(len) + len * element
    }
    /// The larger of two sizes (a `const` `max`).
    pub const fn max(a: usize, b: usize) -> usize {
        if a > b { a } else { b }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_bounds_match_postcard() {
        let mut buf = [0u8; 16];
        assert_eq!(encode(&u16::MAX, &mut buf), Ok(size::U16));
        assert_eq!(encode(&u32::MAX, &mut buf), Ok(size::U32));
        assert_eq!(encode(&u64::MAX, &mut buf), Ok(size::U64));
        assert_eq!(encode(&i32::MIN, &mut buf), Ok(size::I32));
        assert_eq!(encode(&i8::MIN, &mut buf), Ok(size::BYTE));
        assert_eq!(size::len_prefix(127), 1);
        assert_eq!(size::len_prefix(128), 2);
    }

    #[test]
    fn encode_reports_a_full_buffer() {
        let mut small = [0u8; 3];
        assert_eq!(encode(&u64::MAX, &mut small), Err(ProtoError::TooLarge));
    }

    #[test]
    fn encode_never_writes_past_the_ipc_buffer() {
        let mut big = [0u8; 2 * IPC_BUFFER_DATA];
        let bytes = [7u8; IPC_BUFFER_DATA];
        // A 2-byte length prefix and 1022 bytes fill the IPC buffer exactly.
        assert_eq!(encode(&bytes[..IPC_BUFFER_DATA - 2], &mut big), Ok(IPC_BUFFER_DATA));
        assert_eq!(encode(&bytes[..IPC_BUFFER_DATA - 1], &mut big), Err(ProtoError::TooLarge));
    }

    #[test]
    fn decode_rejects_leftovers_and_oversize() {
        assert_eq!(decode::<u16>(&[5]), Ok(5));
        assert_eq!(decode::<u16>(&[5, 0]), Err(ProtoError::TrailingBytes));
        assert_eq!(decode::<u16>(&[]), Err(ProtoError::Malformed));
        assert_eq!(decode::<u16>(&[0xFF, 0xFF, 0xFF]), Err(ProtoError::Malformed));
        assert_eq!(decode::<u8>(&[0; IPC_BUFFER_DATA + 1]), Err(ProtoError::TooLarge));
    }

    #[test]
    fn payload_trusts_no_length() {
        let data = [1u8; IPC_BUFFER_DATA];
        assert_eq!(payload(&data, 3), Ok(&data[..3]));
        assert_eq!(payload(&data, IPC_BUFFER_DATA).map(<[u8]>::len), Ok(IPC_BUFFER_DATA));
        assert_eq!(payload(&data, IPC_BUFFER_DATA + 1), Err(ProtoError::TooLarge));
        assert_eq!(payload(&data, 0xFFF), Err(ProtoError::TooLarge));
        assert_eq!(payload(&data[..10], 11), Err(ProtoError::TooLarge));
    }
}
