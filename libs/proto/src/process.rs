//! The process server protocol: spawn, fork, exec, exit, wait and the
//! address-space calls of a process (brk, mmap, munmap). It owns the message
//! types, their bounds and their validation; processes themselves live in the
//! process server.
//!
//! Fork replies twice, like Unix: the parent gets
//! [`ProcessReply::Forked`] with the child's pid, and the child starts by
//! receiving `Forked { child_pid: 0 }`. Pid 0 is never a process's pid.
//!
//! `Exit` and a successful `Exec` get no reply: the caller's threads are
//! destroyed, or resume at the new program's entry point. A failed `Exec`
//! gets an `Error` reply and the old program goes on.

use abi::msg::IPC_BUFFER_DATA;
use serde::{Deserialize, Serialize};

use crate::codec::size;
use crate::{PROCESS_PROTOCOL, ProtoError, Protocol};

/// Bytes of a program name (a boot image entry).
pub const PROGRAM_NAME_LEN: usize = 32;
/// The page size of `Mmap` and `Munmap` (x86_64 base pages).
pub const PAGE_SIZE: u64 = 4096;

/// A program's name in the boot image.
pub type ProgramName = heapless::String<PROGRAM_NAME_LEN>;

/// Requests to a process server (sent by processes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessRequest {
    /// Starts `program` as a new child. → [`ProcessReply::Spawned`]
    Spawn { program: ProgramName },
    /// Copies the caller (copy-on-write). → [`ProcessReply::Forked`] twice,
    /// see the module docs.
    Fork,
    /// Ends the caller with `status`. No reply.
    Exit { status: i32 },
    /// Waits for the child `pid` to exit, or any child when `None`.
    /// → [`ProcessReply::Exited`]
    Wait { pid: Option<u32> },
    /// Replaces the caller's program. No reply on success.
    Exec { program: ProgramName },
    /// → [`ProcessReply::Pid`]
    GetPid,
    /// Moves the end of the heap to `new_end`. → [`ProcessReply::BrkSet`]
    /// with the end now in force (the old one if the move was refused).
    Brk { new_end: u64 },
    /// Maps `pages` demand-zero pages somewhere. → [`ProcessReply::Mapped`]
    Mmap { pages: u32 },
    /// Unmaps `pages` pages from the page-aligned `addr`.
    /// → [`ProcessReply::Unmapped`]
    Munmap { addr: u64, pages: u32 },
}

/// Replies of a process server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessReply {
    Spawned { pid: u32 },
    Forked { child_pid: u32 },
    Exited { pid: u32, status: i32 },
    Pid(u32),
    BrkSet(u64),
    Mapped { addr: u64 },
    Unmapped,
    Error(ProtoError),
}

/// The process server protocol, for the helpers of [`crate::protocol`].
pub struct ProcessProtocol;

const NAME_LEN: usize = size::seq(PROGRAM_NAME_LEN, size::BYTE);

impl Protocol for ProcessProtocol {
    const LABEL: u64 = PROCESS_PROTOCOL;
    const REQUEST_KINDS: u32 = 9;
    const REPLY_KINDS: u32 = 8;
    const MAX_REQUEST_LEN: usize = size::TAG
        + size::max(
            size::max(NAME_LEN, size::I32),
            size::max(size::BYTE + size::U32, size::U64 + size::U32),
        );
    const MAX_REPLY_LEN: usize = size::TAG
        + size::max(
            size::max(size::U32, size::U32 + size::I32),
            size::max(size::U64, size::TAG),
        );
    type Request = ProcessRequest;
    type Reply = ProcessReply;

    fn error_reply(error: ProtoError) -> ProcessReply {
        ProcessReply::Error(error)
    }

    fn reply_error(reply: &ProcessReply) -> Option<ProtoError> {
        match reply {
            ProcessReply::Error(error) => Some(*error),
            _ => None,
        }
    }

    fn validate(request: &ProcessRequest) -> Result<(), ProtoError> {
        let valid = match request {
            ProcessRequest::Spawn { program } | ProcessRequest::Exec { program } => {
                !program.is_empty()
            }
            // Pid 0 is what a fork child is told, never a process.
            ProcessRequest::Wait { pid } => *pid != Some(0),
            ProcessRequest::Mmap { pages } => *pages > 0,
            ProcessRequest::Munmap { addr, pages } => {
                *pages > 0
                    && addr % PAGE_SIZE == 0
                    && (*pages as u64)
                        .checked_mul(PAGE_SIZE)
                        .and_then(|len| addr.checked_add(len))
                        .is_some()
            }
            ProcessRequest::Fork
            | ProcessRequest::Exit { .. }
            | ProcessRequest::GetPid
            | ProcessRequest::Brk { .. } => true,
        };
        if valid {
            Ok(())
        } else {
            Err(ProtoError::InvalidArgument)
        }
    }
}

const _: () = {
    assert!(ProcessProtocol::MAX_REQUEST_LEN <= IPC_BUFFER_DATA);
    assert!(ProcessProtocol::MAX_REPLY_LEN <= IPC_BUFFER_DATA);
};

#[cfg(test)]
mod tests {
    use super::*;

    fn check(request: ProcessRequest) -> Result<(), ProtoError> {
        ProcessProtocol::validate(&request)
    }

    #[test]
    fn validation_rejects_nonsense() {
        let bad = Err(ProtoError::InvalidArgument);
        assert_eq!(
            check(ProcessRequest::Spawn {
                program: ProgramName::new()
            }),
            bad
        );
        assert_eq!(
            check(ProcessRequest::Exec {
                program: ProgramName::new()
            }),
            bad
        );
        assert_eq!(
            check(ProcessRequest::Spawn {
                program: ProgramName::try_from("forktest").unwrap()
            }),
            Ok(())
        );
        assert_eq!(check(ProcessRequest::Wait { pid: Some(0) }), bad);
        assert_eq!(check(ProcessRequest::Wait { pid: None }), Ok(()));
        assert_eq!(check(ProcessRequest::Mmap { pages: 0 }), bad);
        assert_eq!(
            check(ProcessRequest::Munmap {
                addr: 0x1000,
                pages: 0
            }),
            bad
        );
        assert_eq!(
            check(ProcessRequest::Munmap {
                addr: 0x1001,
                pages: 1
            }),
            bad
        );
        assert_eq!(
            check(ProcessRequest::Munmap {
                addr: !0xFFF,
                pages: 2
            }),
            bad
        );
        assert_eq!(
            check(ProcessRequest::Munmap {
                addr: 0x1000,
                pages: 3
            }),
            Ok(())
        );
        assert_eq!(check(ProcessRequest::Brk { new_end: u64::MAX }), Ok(()));
    }
}
