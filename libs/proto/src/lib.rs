//! The typed protocols of the memory server and the process server: the
//! messages, their bounds, and the codec that carries them over IPC.
//!
//! # Design
//!
//! - **One label per protocol.** The IPC label of every request and reply is
//!   the protocol's label ([`MEMORY_PROTOCOL`], [`PROCESS_PROTOCOL`]): the
//!   protocol in the high bits, its version in the low 16. A receiver accepts
//!   exactly its own version ([`check_label`]); postcard is not
//!   self-describing, so versions share no layout.
//! - **Messages are enums, bytes are postcard.** Each protocol has a request
//!   enum and a reply enum ([`MemoryRequest`]/[`MemoryReply`],
//!   [`ProcessRequest`]/[`ProcessReply`]), encoded with postcard into the IPC
//!   buffer payload; the message registers are not used. The payload length
//!   in the message info is exact: bytes left after a message are an error.
//! - **Bounded by construction.** Every variable part is a `heapless` type
//!   with a fixed capacity, and each protocol states its largest encoded
//!   request and reply ([`Protocol::MAX_REQUEST_LEN`],
//!   [`Protocol::MAX_REPLY_LEN`]), checked at compile time against
//!   [`abi::msg::IPC_BUFFER_DATA`] and by the tests against postcard. So
//!   any value a sender can build fits in one message.
//! - **Hostile input is ordinary input.** [`decode`] never panics: truncated
//!   bytes, garbage, a length prefix beyond a vector's capacity and trailing
//!   bytes all give a [`ProtoError`]. A server turns every received message
//!   into a typed request or the error reply to send ([`accept`]), so it
//!   answers a bad message and keeps serving.
//! - **Errors have meaning.** [`ProtoError`] names why a request was
//!   rejected, by the codec (`Malformed`, `TooLarge`, ...) or the server
//!   (`NoMemory`, `NotChild`, ...), and is the payload of every `Error` reply.
//!
//! The ordering rule of the deferred reference counts is in [`memory`]; the
//! fork/exit/exec reply rules are in [`process`].
//!
//! # Serving
//!
//! ```
//! use proto::{MemoryProtocol, MemoryReply, MemoryRequest, Outgoing, accept, respond};
//!
//! /// One turn of a memory server: `payload` is what arrived, `out` the IPC
//! /// buffer data to reply from.
//! fn handle(label: u64, payload: &[u8], out: &mut [u8]) -> Outgoing {
//!     let reply = match accept::<MemoryProtocol>(label, payload) {
//!         Ok(MemoryRequest::Stats) => MemoryReply::Stats(Default::default()),
//!         Ok(_) => MemoryReply::Ok,
//!         Err(error_reply) => error_reply,
//!     };
//!     respond::<MemoryProtocol>(&reply, out).expect("the IPC buffer holds any reply")
//! }
//!
//! let mut out = [0u8; abi::msg::IPC_BUFFER_DATA];
//! let sent = handle(proto::MEMORY_PROTOCOL, &[0xFF, 0xFF], &mut out);
//! assert_eq!(
//!     proto::read_reply::<MemoryProtocol>(sent.label, &out[..sent.length]),
//!     Err(proto::ProtoError::Malformed)
//! );
//! ```

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod codec;
mod error;
mod label;
pub mod memory;
pub mod process;
pub mod protocol;

pub use codec::{decode, encode, payload};
pub use error::ProtoError;
pub use label::{MEMORY_PROTOCOL, PROCESS_PROTOCOL, VERSION_BITS, check_label, label, protocol_of, version_of};
pub use memory::{FrameRun, MemoryProtocol, MemoryReply, MemoryRequest, MemoryStats, RefOp};
pub use process::{Phase, ProcessStats};
pub use process::{ProcessProtocol, ProcessReply, ProcessRequest, ProgramName};
pub use protocol::{Outgoing, Protocol, accept, read_reply, request, respond};
