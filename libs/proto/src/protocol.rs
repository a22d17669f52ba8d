//! The [`Protocol`] trait and the helpers both ends use around it: a server
//! turns a raw (label, bytes) into a typed request or into the error reply to
//! send ([`accept`]), and always has a reply to send ([`respond`]); a client
//! encodes a request ([`request`]) and reads the typed reply ([`read_reply`]).
//! It owns no IPC: callers move the bytes with `rt::ipc`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ProtoError, check_label, decode, encode};

/// One request/reply protocol: its label and its two message enums.
pub trait Protocol {
    /// Label of every request and reply (protocol and version).
    const LABEL: u64;
    /// Variants of the request enum: a tag at or beyond this is
    /// [`ProtoError::UnknownRequest`] rather than `Malformed`.
    const REQUEST_KINDS: u32;
    /// Variants of the reply enum.
    const REPLY_KINDS: u32;
    /// Largest encoded request, checked against the IPC buffer at compile time.
    const MAX_REQUEST_LEN: usize;
    /// Largest encoded reply, checked against the IPC buffer at compile time.
    const MAX_REPLY_LEN: usize;
    type Request: Serialize + DeserializeOwned;
    type Reply: Serialize + DeserializeOwned;

    /// The reply that reports `error`.
    fn error_reply(error: ProtoError) -> Self::Reply;
    /// The error a reply reports, if it is the error reply.
    fn reply_error(reply: &Self::Reply) -> Option<ProtoError>;
    /// Rejects a decoded request whose arguments make no sense, before the
    /// server acts on it (zero counts, overlapping ranges, ...).
    fn validate(request: &Self::Request) -> Result<(), ProtoError>;
}

/// What to put in the message info of an outgoing message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub label: u64,
    /// Bytes of the IPC buffer payload used.
    pub length: usize,
}

/// Server side: the typed, validated request in a received message, or the
/// error reply to send back. A bad message is the sender's problem: the
/// server answers it and keeps serving.
#[allow(clippy::result_large_err, reason = "the error reply is what the server sends; there is no heap to box it")]
pub fn accept<P: Protocol>(label: u64, payload: &[u8]) -> Result<P::Request, P::Reply> {
    let checked = check_label(label, P::LABEL)
        .and_then(|()| decode_kind::<P::Request>(payload, P::REQUEST_KINDS))
        .and_then(|request| P::validate(&request).map(|()| request));
    checked.map_err(P::error_reply)
}

/// Server side: encodes `reply` into `buf`. If it does not fit, the error
/// reply [`ProtoError::TooLarge`] is sent instead, so that the caller is
/// never left without an answer; only a `buf` too small for even that fails.
pub fn respond<P: Protocol>(reply: &P::Reply, buf: &mut [u8]) -> Result<Outgoing, ProtoError> {
    let length = match encode(reply, buf) {
        Ok(length) => length,
        Err(_) => encode(&P::error_reply(ProtoError::TooLarge), buf)?,
    };
    Ok(Outgoing { label: P::LABEL, length })
}

/// Client side: encodes `request` into `buf`.
pub fn request<P: Protocol>(request: &P::Request, buf: &mut [u8]) -> Result<Outgoing, ProtoError> {
    Ok(Outgoing { label: P::LABEL, length: encode(request, buf)? })
}

/// Client side: the typed reply in a received message; the error reply comes
/// back as `Err` with the server's reason.
pub fn read_reply<P: Protocol>(label: u64, payload: &[u8]) -> Result<P::Reply, ProtoError> {
    check_label(label, P::LABEL)?;
    let reply = decode_kind::<P::Reply>(payload, P::REPLY_KINDS)?;
    match P::reply_error(&reply) {
        Some(error) => Err(error),
        None => Ok(reply),
    }
}

/// [`decode`], reporting a message that failed because its top-level tag is
/// beyond the enum's `kinds` variants as [`ProtoError::UnknownRequest`].
/// The tag is postcard's varint `u32`, the first thing in the message.
fn decode_kind<T: DeserializeOwned>(payload: &[u8], kinds: u32) -> Result<T, ProtoError> {
    decode::<T>(payload).map_err(|error| match postcard::take_from_bytes::<u32>(payload) {
        Ok((tag, _)) if error == ProtoError::Malformed && tag >= kinds => ProtoError::UnknownRequest,
        _ => error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MAX_RUNS, Runs};
    use crate::{FrameRun, MemoryProtocol, MemoryReply, MemoryRequest};

    fn full_frames() -> MemoryReply {
        let runs: Runs = (0..MAX_RUNS as u64).map(|i| FrameRun::new(u64::MAX - i, u16::MAX)).collect();
        MemoryReply::Frames { runs }
    }

    #[test]
    fn respond_falls_back_to_an_error_that_fits() {
        let mut small = [0u8; 16];
        let sent = respond::<MemoryProtocol>(&full_frames(), &mut small).unwrap();
        assert_eq!(sent.label, MemoryProtocol::LABEL);
        assert_eq!(read_reply::<MemoryProtocol>(sent.label, &small[..sent.length]), Err(ProtoError::TooLarge));
        // Not even the error fits: the caller hears of it.
        assert_eq!(respond::<MemoryProtocol>(&full_frames(), &mut []), Err(ProtoError::TooLarge));
    }

    #[test]
    fn request_reports_a_buffer_too_small() {
        let mut small = [0u8; 2];
        let sent = request::<MemoryProtocol>(&MemoryRequest::AllocFrames { count: u16::MAX }, &mut small);
        assert_eq!(sent, Err(ProtoError::TooLarge));
        assert_eq!(request::<MemoryProtocol>(&MemoryRequest::Stats, &mut small), Ok(Outgoing { label: MemoryProtocol::LABEL, length: 1 }));
    }
}
