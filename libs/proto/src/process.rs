//! The process server protocol: spawn, fork, exec, exit, wait, the
//! address-space calls of a process (brk, mmap, munmap), and the system's
//! own requests (quiesce, stats). It owns the message types, their bounds
//! and their validation; processes themselves live in the process server.
//!
//! A process reaches its server through the endpoint capability in slot
//! [`abi::process::SERVER_SLOT`] of its table, badged with its pid.
//!
//! Fork replies like Unix: the parent gets [`ProcessReply::Forked`] with the
//! child's pid. The child gets no message: its thread starts at `resume`
//! with its stack pointer at `stack` (both chosen by the parent's runtime,
//! which saved its registers there before the call), and its runtime makes
//! `fork` return 0. Pid 0 is never a process's pid.
//!
//! `Exit` and a successful `Exec` get no reply: the caller's thread is
//! destroyed, or replaced by one running the new program under the same
//! pid. A failed `Exec` gets an `Error` reply and the old program goes on.

use abi::msg::IPC_BUFFER_DATA;
use serde::{Deserialize, Serialize};

use crate::codec::size;
use crate::{PROCESS_PROTOCOL, ProtoError, Protocol};

/// Bytes of a program name (a boot image entry).
pub const PROGRAM_NAME_LEN: usize = 32;
/// The page size of `Mmap` and `Munmap` (x86_64 base pages).
pub const PAGE_SIZE: u64 = 4096;

/// Bit of the process server program's third start argument: resolve every
/// copy-on-write fault in the pager, never arming the kernel to copy
/// (init's `cow=pager` boot word).
pub const OPTION_COW_BY_PAGER: u64 = 1;

/// Capability slots of the process servers' shared table: init fills
/// those marked "from init" before it starts the program, which fills the
/// others itself.
pub mod server_slot {
    /// The servers' address space (from init).
    pub const SPACE: u64 = 1;
    /// Frames for their own heap, stacks and IPC buffers (from init).
    pub const FRAMES: u64 = 2;
    /// The memory server's endpoint (from init).
    pub const MEMORY: u64 = 3;
    /// The boot image, read-only (from init).
    pub const BOOT_IMAGE: u64 = 4;
    /// Their own capability table (from init).
    pub const CSPACE: u64 = 5;
    /// init's supervisor endpoint, badged with the program's generation
    /// (from init): every thread of theirs reports its faults and its exit there.
    pub const SUPERVISOR: u64 = 6;
    /// Server `k`'s endpoint is `FIRST_ENDPOINT + k` (from init).
    pub const FIRST_ENDPOINT: u64 = 8;
    /// Most servers (CPUs).
    pub const MAX_SERVERS: u64 = 8;
    /// The memory pool, read-write (from the memory server).
    pub const POOL: u64 = 16;
    /// The counter table, read-only (from the memory server).
    pub const TABLE: u64 = 17;
    /// Server thread `k` (from 1): a thread object init created and keeps
    /// a capability to, so that it can end it whatever it is doing.
    pub const FIRST_THREAD: u64 = 18;
    /// Idle thread `k` (created by init, like the server threads).
    pub const FIRST_IDLE_THREAD: u64 = 26;
    /// Idle thread `k`'s endpoint to its server (badge 0).
    pub const FIRST_IDLE_ENDPOINT: u64 = 34;
    /// Server `k`'s saved reply to its idle thread.
    pub const FIRST_IDLE_REPLY: u64 = 42;
    /// Server `k`'s notification to resume after a swap.
    pub const FIRST_RESUME: u64 = 50;
    /// Slots from here are handed out for processes.
    pub const FIRST_FREE: u64 = 58;
}

/// The system's own programs in the boot image: init starts them itself,
/// each with the capabilities it needs, and restarts them. `Spawn` and
/// `Exec` of one are refused with [`ProtoError::Denied`], whoever asks: run
/// as a process, a server would hold none of its capabilities, and a
/// process could start copies of the servers at will.
pub const SERVER_PROGRAMS: [&str; 3] = ["init", "memory", "process"];

/// A program's name in the boot image.
pub type ProgramName = heapless::String<PROGRAM_NAME_LEN>;

/// Requests to a process server (sent by processes, and by init).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessRequest {
    /// Starts `program` as a new child; its `main` gets `arg`.
    /// → [`ProcessReply::Spawned`]; `Denied` for one of
    /// [`SERVER_PROGRAMS`].
    Spawn { program: ProgramName, arg: u64 },
    /// Copies the caller (copy-on-write); the child is served by the
    /// process server of `cpu`, or the caller's own when `None`.
    /// → [`ProcessReply::Forked`], see the module docs.
    Fork { resume: u64, stack: u64, cpu: Option<u16> },
    /// Ends the caller with `status`. No reply.
    Exit { status: i32 },
    /// Waits for the child `pid` to exit, or any child when `None`.
    /// → [`ProcessReply::Exited`]
    Wait { pid: Option<u32> },
    /// Replaces the caller's program by `program`, whose `main` gets `arg`.
    /// No reply on success.
    Exec { program: ProgramName, arg: u64 },
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
    /// Flushes the server's buffered counter changes and returns the frames
    /// it keeps at hand to the memory server, so that the memory server's
    /// counts are exact. → [`ProcessReply::Quiesced`]
    Quiesce,
    /// → [`ProcessReply::Stats`]
    Stats,
    /// Swaps the reference-count strategy (`abi::process::Strategy` index)
    /// of the memory server and every process server, live: the servers
    /// pause, flush, and resume under the new one. → [`ProcessReply::Swapped`]
    Swap { strategy: u8 },
    /// Ends `pid` and every process descended from it with
    /// `abi::process::STATUS_KILLED`; their parents' waits answer as for an
    /// exit. Only init, or an ancestor of `pid`, may. → [`ProcessReply::Killed`]
    /// once every one of them is marked (each server ends its own at its
    /// next turn); [`ProtoError::Denied`] for any other caller.
    Kill { pid: u32 },
    /// Turns the servers' per-phase timing (`ProcessStats::phases`) on or
    /// off: off by default, so a benchmark's headline figures do not pay
    /// for the breakdown. → [`ProcessReply::PhasesTimed`]
    TimePhases { on: bool },
}

/// The process servers' counters (summed over every CPU's server).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Processes alive (zombies included).
    pub processes: u32,
    pub forks: u64,
    /// Write faults on copy-on-write pages.
    pub cow_faults: u64,
    /// Of those, the ones that copied the page.
    pub cow_copies: u64,
    /// The ones that found the page unique and wrote it in place.
    pub cow_reused: u64,
    /// Of the copies, those the kernel made with no call to the pager
    /// (`CowArm`).
    pub kernel_copies: u64,
    /// Of the pages written in place, those the kernel gave their write
    /// right back with no call to the pager (a sole hint, `CowArm`).
    pub kernel_reuses: u64,
    /// Demand-zero faults.
    pub zero_fills: u64,
    /// `RefBatch` messages sent to the memory server.
    pub ref_messages: u64,
    /// Counter changes in those messages.
    pub ref_ops: u64,
    /// `AllocFrames` and `FreeFrames` messages sent to the memory server.
    pub frame_messages: u64,
    /// Deferred: count-1 shortcuts, a counter word written by the frame's
    /// only holder where a message would have gone.
    pub direct_stores: u64,
    /// Deferred: fork increments cancelled against a buffered decrement of
    /// the same frame by the same server.
    pub cancelled: u64,
    /// TSC cycles (instructions under icount) the servers spent in each
    /// [`Phase`], system calls included.
    pub phases: [u64; Phase::COUNT],
}

/// Where a process server's time goes, for a breakdown of fork and its
/// faults (`ProcessStats::phases`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A whole fork request.
    Fork,
    /// Of it: the counts (every page shared, the increments committed).
    ForkCounts,
    /// Of it: mapping the child (ShareCow) and copying the page map.
    ForkMap,
    /// A whole exit, by request or by the pager.
    Exit,
    /// Of it: deleting the process's kernel objects (the address space's
    /// teardown).
    ExitObjects,
    /// Of it: dropping its pages' references.
    ExitCounts,
    /// Wait requests.
    Wait,
    /// Page faults.
    Fault,
}

impl Phase {
    pub const COUNT: usize = 8;
    pub const ALL: [Phase; Phase::COUNT] =
        [Phase::Fork, Phase::ForkCounts, Phase::ForkMap, Phase::Exit, Phase::ExitObjects, Phase::ExitCounts, Phase::Wait, Phase::Fault];

    pub const fn name(self) -> &'static str {
        match self {
            Phase::Fork => "fork",
            Phase::ForkCounts => "fork_counts",
            Phase::ForkMap => "fork_map",
            Phase::Exit => "exit",
            Phase::ExitObjects => "exit_objects",
            Phase::ExitCounts => "exit_counts",
            Phase::Wait => "wait",
            Phase::Fault => "fault",
        }
    }
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
    Quiesced,
    Stats(ProcessStats),
    Swapped,
    Killed,
    PhasesTimed,
}

/// The process server protocol, for the helpers of [`crate::protocol`].
pub struct ProcessProtocol;

const NAME_LEN: usize = size::seq(PROGRAM_NAME_LEN, size::BYTE);
const FORK_LEN: usize = 2 * size::U64 + size::BYTE + size::U16;
const STATS_LEN: usize = size::U32 + (12 + Phase::COUNT) * size::U64;

impl Protocol for ProcessProtocol {
    const LABEL: u64 = PROCESS_PROTOCOL;
    const REQUEST_KINDS: u32 = 14;
    const REPLY_KINDS: u32 = 13;
    const MAX_REQUEST_LEN: usize =
        size::TAG + size::max(size::max(NAME_LEN + size::U64, FORK_LEN), size::max(size::BYTE + size::U32, size::U64 + size::U32));
    const MAX_REPLY_LEN: usize = size::TAG + size::max(size::max(size::U32, size::U32 + size::I32), size::max(size::U64, STATS_LEN));
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
            ProcessRequest::Spawn { program, .. } | ProcessRequest::Exec { program, .. } => !program.is_empty(),
            // Pid 0 is never a process.
            ProcessRequest::Wait { pid } => *pid != Some(0),
            ProcessRequest::Kill { pid } => *pid != 0,
            ProcessRequest::Mmap { pages } => *pages > 0,
            ProcessRequest::Munmap { addr, pages } => {
                *pages > 0
                    && addr % PAGE_SIZE == 0
                    && (*pages as u64).checked_mul(PAGE_SIZE).and_then(|len| addr.checked_add(len)).is_some()
            }
            ProcessRequest::Fork { stack, .. } => stack % 8 == 0,
            ProcessRequest::Exit { .. }
            | ProcessRequest::GetPid
            | ProcessRequest::Brk { .. }
            | ProcessRequest::Quiesce
            | ProcessRequest::Stats
            | ProcessRequest::Swap { .. }
            | ProcessRequest::TimePhases { .. } => true,
        };
        if valid { Ok(()) } else { Err(ProtoError::InvalidArgument) }
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

    fn fork(stack: u64) -> ProcessRequest {
        ProcessRequest::Fork { resume: 0x40_1000, stack, cpu: None }
    }

    #[test]
    fn validation_rejects_nonsense() {
        let bad = Err(ProtoError::InvalidArgument);
        assert_eq!(check(ProcessRequest::Spawn { program: ProgramName::new(), arg: 0 }), bad);
        assert_eq!(check(ProcessRequest::Exec { program: ProgramName::new(), arg: 1 }), bad);
        assert_eq!(check(ProcessRequest::Spawn { program: ProgramName::try_from("forktest").unwrap(), arg: u64::MAX }), Ok(()));
        assert_eq!(check(ProcessRequest::Exec { program: ProgramName::try_from("hello").unwrap(), arg: 0 }), Ok(()));
        assert_eq!(check(ProcessRequest::Wait { pid: Some(0) }), bad);
        assert_eq!(check(ProcessRequest::Wait { pid: None }), Ok(()));
        assert_eq!(check(ProcessRequest::Kill { pid: 0 }), bad);
        assert_eq!(check(ProcessRequest::Kill { pid: u32::MAX }), Ok(()));
        assert_eq!(check(ProcessRequest::Mmap { pages: 0 }), bad);
        assert_eq!(check(ProcessRequest::Munmap { addr: 0x1000, pages: 0 }), bad);
        assert_eq!(check(ProcessRequest::Munmap { addr: 0x1001, pages: 1 }), bad);
        assert_eq!(check(ProcessRequest::Munmap { addr: !0xFFF, pages: 2 }), bad);
        assert_eq!(check(ProcessRequest::Munmap { addr: 0x1000, pages: 3 }), Ok(()));
        assert_eq!(check(ProcessRequest::Brk { new_end: u64::MAX }), Ok(()));
        assert_eq!(check(ProcessRequest::Quiesce), Ok(()));
        assert_eq!(check(ProcessRequest::Stats), Ok(()));
        // Any strategy index: the servers refuse unknown ones, not the codec.
        for strategy in [0, 1, 8, u8::MAX] {
            assert_eq!(check(ProcessRequest::Swap { strategy }), Ok(()));
        }
    }

    #[test]
    fn fork_needs_an_aligned_stack() {
        let bad = Err(ProtoError::InvalidArgument);
        for misaligned in [1, 4, 0x7FFF_FFFC, 0x7FFF_FFFF, u64::MAX] {
            assert_eq!(check(fork(misaligned)), bad, "stack {misaligned:#x}");
        }
        for aligned in [0, 8, 0x7FFF_FFF8, u64::MAX - 7] {
            assert_eq!(check(fork(aligned)), Ok(()), "stack {aligned:#x}");
        }
        // The resume address and the CPU are the process's business.
        assert_eq!(check(ProcessRequest::Fork { resume: u64::MAX, stack: 0x7FFF_F000, cpu: Some(u16::MAX) }), Ok(()));
        assert_eq!(check(ProcessRequest::Fork { resume: 0, stack: 0x7FFF_F004, cpu: Some(0) }), bad);
    }
}
