//! Typed calls to a server: a `libs/proto` request encoded into the caller's
//! IPC buffer, one IPC call, and the decoded reply (an `Error` reply comes
//! back as `Err`, and so does a server that died: `ServerDied`).

use abi::msg::IpcBuffer;
use proto::{ProtoError, Protocol};

use abi::syscall::SysError;

use crate::ipc::{self, Message};
use crate::sys::Slot;

/// Calls the server behind endpoint `ep` with `request`. A capability sent
/// with the reply lands in `buffer.recv_slot` (set by the caller).
pub fn call<P: Protocol>(ep: Slot, buffer: &mut IpcBuffer, request: &P::Request) -> Result<P::Reply, ProtoError> {
    call_counted::<P>(ep, buffer, request, 0)
}

/// [`call`] for a request that carries a batch of `items`: the count goes
/// in message register 0, where the IPC trace records it.
pub fn call_counted<P: Protocol>(ep: Slot, buffer: &mut IpcBuffer, request: &P::Request, items: u64) -> Result<P::Reply, ProtoError> {
    let out = proto::request::<P>(request, &mut buffer.data)?;
    let reply = ipc::call(ep, Message::with_payload(out.label, [items, 0, 0, 0], out.length, false)).map_err(call_error)?;
    let payload = proto::payload(&buffer.data, reply.info().length())?;
    proto::read_reply::<P>(reply.label(), payload)
}

/// Calls `ep` with a request that gets no answer, such as `Exit`: the
/// server ends the caller instead of replying. Returns only if the call
/// could not be made or the server answered after all.
pub fn send<P: Protocol>(ep: Slot, buffer: &mut IpcBuffer, request: &P::Request) -> Result<(), ProtoError> {
    let out = proto::request::<P>(request, &mut buffer.data)?;
    ipc::call(ep, Message::with_payload(out.label, [0; 4], out.length, false)).map(|_| ()).map_err(call_error)
}

/// What a failed IPC call means to the caller: the server died owing the
/// reply (`NoReply`), its endpoint was deleted under the call, or the
/// capability to it is gone (revoked by the server's supervisor); any
/// other failure is the caller's own.
fn call_error(error: SysError) -> ProtoError {
    match error {
        SysError::NoReply | SysError::ObjectDeleted | SysError::EmptySlot => ProtoError::ServerDied,
        _ => ProtoError::Malformed,
    }
}
