//! [`ProtoError`]: why a request was rejected. It travels in the `Error`
//! reply of every protocol, so it is part of the wire format: new variants go
//! at the end, and the order of the existing ones never changes.

use core::fmt;

use serde::{Deserialize, Serialize};

/// Why a message was rejected, by the codec or by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProtoError {
    /// The bytes do not decode as a message of the protocol: truncated, a bad
    /// varint, invalid UTF-8, a vector longer than its bound, and so on.
    Malformed,
    /// The message decoded but bytes were left over. The length in the message
    /// info is exact, so leftovers mean the sender has another layout.
    TrailingBytes,
    /// The label names another protocol than the one served on this endpoint.
    WrongProtocol,
    /// The label names this protocol at a version this side does not speak.
    UnsupportedVersion,
    /// The message's kind (its top-level enum tag) is unknown to this side:
    /// the peer speaks a newer protocol under the same version, or garbage.
    UnknownRequest,
    /// The message does not fit: more than `IPC_BUFFER_DATA` bytes, or more
    /// than the buffer it is encoded into.
    TooLarge,
    /// Well formed but meaningless: a zero count, a zero delta, an unaligned
    /// address, a duplicate or overflowing frame range.
    InvalidArgument,
    /// The memory server has no free frame left (or the process server could
    /// not get one).
    NoMemory,
    /// A frame the caller does not hold (free of a frame it never got, or a
    /// reference change on a frame that is free).
    NotOwned,
    /// No process has that pid.
    NoSuchProcess,
    /// The boot image has no program of that name.
    NoSuchProgram,
    /// `Wait` named a process that is not a child of the caller.
    NotChild,
    /// `Wait` with no pid, but the caller has no child to wait for.
    NoChildren,
    /// `Munmap` of a range that is not (entirely) mapped.
    NotMapped,
    /// The caller may not make this request: a badge that names no client,
    /// an untrusted client asking what only system servers may, a process
    /// asking what only init may.
    Denied,
    /// A per-process limit is reached: children, or pages charged.
    LimitReached,
    /// The server died while the request was in flight, or before it was
    /// made (its endpoint is gone): its supervisor restarts it, and the
    /// request may be made again to the new one.
    ServerDied,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed message",
            Self::TrailingBytes => "trailing bytes after the message",
            Self::WrongProtocol => "label names another protocol",
            Self::UnsupportedVersion => "unsupported protocol version",
            Self::UnknownRequest => "unknown message kind",
            Self::TooLarge => "message too large",
            Self::InvalidArgument => "invalid argument",
            Self::NoMemory => "out of memory",
            Self::NotOwned => "frame not held by the caller",
            Self::NoSuchProcess => "no such process",
            Self::NoSuchProgram => "no such program",
            Self::NotChild => "not a child of the caller",
            Self::NoChildren => "no child to wait for",
            Self::NotMapped => "range not mapped",
            Self::Denied => "not permitted to the caller",
            Self::LimitReached => "a per-process limit is reached",
            Self::ServerDied => "the server died",
        })
    }
}

impl From<postcard::Error> for ProtoError {
    fn from(error: postcard::Error) -> Self {
        match error {
            postcard::Error::SerializeBufferFull => Self::TooLarge,
            // An unknown enum tag is also just "malformed" to postcard (serde
            // reports it as a custom error); `protocol::accept` tells the
            // unknown request kind apart by reading the tag itself.
            _ => Self::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcard_errors_map_to_meaning() {
        assert_eq!(ProtoError::from(postcard::Error::SerializeBufferFull), ProtoError::TooLarge);
        assert_eq!(ProtoError::from(postcard::Error::DeserializeBadEnum), ProtoError::Malformed);
        assert_eq!(ProtoError::from(postcard::Error::SerdeDeCustom), ProtoError::Malformed);
        assert_eq!(ProtoError::from(postcard::Error::DeserializeUnexpectedEnd), ProtoError::Malformed);
        assert_eq!(ProtoError::from(postcard::Error::DeserializeBadVarint), ProtoError::Malformed);
    }

    #[test]
    fn wire_tags_are_stable() {
        // The error crosses the wire by its variant index: pin the first and
        // the last so that a reordering fails here, not between two servers.
        let mut buf = [0u8; 4];
        assert_eq!(postcard::to_slice(&ProtoError::Malformed, &mut buf).unwrap(), &[0]);
        assert_eq!(postcard::to_slice(&ProtoError::NotMapped, &mut buf).unwrap(), &[13]);
        assert_eq!(postcard::to_slice(&ProtoError::LimitReached, &mut buf).unwrap(), &[15]);
        assert_eq!(postcard::to_slice(&ProtoError::ServerDied, &mut buf).unwrap(), &[16]);
    }
}
