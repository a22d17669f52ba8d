//! Messages for the integration tests: one sample of every variant of every
//! request and reply, the largest value of each variant, and proptest
//! strategies for arbitrary values. The `kind` functions match exhaustively,
//! so a new variant does not compile until the tests cover it.

#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::*;
use proto::memory::{MAX_REF_OPS, MAX_RUNS, MAX_SHARE_FRAMES, RefOps, Runs, ShareFrames};
use proto::process::PROGRAM_NAME_LEN;
use proto::{
    FrameRun, MemoryReply, MemoryRequest, MemoryStats, ProcessReply, ProcessRequest, ProgramName,
    ProtoError, RefOp,
};

pub const ALL_ERRORS: [ProtoError; 14] = [
    ProtoError::Malformed,
    ProtoError::TrailingBytes,
    ProtoError::WrongProtocol,
    ProtoError::UnsupportedVersion,
    ProtoError::UnknownRequest,
    ProtoError::TooLarge,
    ProtoError::InvalidArgument,
    ProtoError::NoMemory,
    ProtoError::NotOwned,
    ProtoError::NoSuchProcess,
    ProtoError::NoSuchProgram,
    ProtoError::NotChild,
    ProtoError::NoChildren,
    ProtoError::NotMapped,
];

/// Position in [`ALL_ERRORS`]; exhaustive so the array cannot fall behind.
pub fn error_kind(error: ProtoError) -> usize {
    match error {
        ProtoError::Malformed => 0,
        ProtoError::TrailingBytes => 1,
        ProtoError::WrongProtocol => 2,
        ProtoError::UnsupportedVersion => 3,
        ProtoError::UnknownRequest => 4,
        ProtoError::TooLarge => 5,
        ProtoError::InvalidArgument => 6,
        ProtoError::NoMemory => 7,
        ProtoError::NotOwned => 8,
        ProtoError::NoSuchProcess => 9,
        ProtoError::NoSuchProgram => 10,
        ProtoError::NotChild => 11,
        ProtoError::NoChildren => 12,
        ProtoError::NotMapped => 13,
    }
}

pub const MEMORY_REQUEST_KINDS: usize = 6;
pub fn memory_request_kind(request: &MemoryRequest) -> usize {
    match request {
        MemoryRequest::AllocFrames { .. } => 0,
        MemoryRequest::FreeFrames { .. } => 1,
        MemoryRequest::RefBatch { .. } => 2,
        MemoryRequest::MakeShared { .. } => 3,
        MemoryRequest::TryRemoveUnique { .. } => 4,
        MemoryRequest::Stats => 5,
    }
}

pub const MEMORY_REPLY_KINDS: usize = 6;
pub fn memory_reply_kind(reply: &MemoryReply) -> usize {
    match reply {
        MemoryReply::Frames { .. } => 0,
        MemoryReply::Ok => 1,
        MemoryReply::RefBatchDone { .. } => 2,
        MemoryReply::Unique(_) => 3,
        MemoryReply::Stats(_) => 4,
        MemoryReply::Error(_) => 5,
    }
}

pub const PROCESS_REQUEST_KINDS: usize = 9;
pub fn process_request_kind(request: &ProcessRequest) -> usize {
    match request {
        ProcessRequest::Spawn { .. } => 0,
        ProcessRequest::Fork => 1,
        ProcessRequest::Exit { .. } => 2,
        ProcessRequest::Wait { .. } => 3,
        ProcessRequest::Exec { .. } => 4,
        ProcessRequest::GetPid => 5,
        ProcessRequest::Brk { .. } => 6,
        ProcessRequest::Mmap { .. } => 7,
        ProcessRequest::Munmap { .. } => 8,
    }
}

pub const PROCESS_REPLY_KINDS: usize = 8;
pub fn process_reply_kind(reply: &ProcessReply) -> usize {
    match reply {
        ProcessReply::Spawned { .. } => 0,
        ProcessReply::Forked { .. } => 1,
        ProcessReply::Exited { .. } => 2,
        ProcessReply::Pid(_) => 3,
        ProcessReply::BrkSet(_) => 4,
        ProcessReply::Mapped { .. } => 5,
        ProcessReply::Unmapped => 6,
        ProcessReply::Error(_) => 7,
    }
}

pub fn name(text: &str) -> ProgramName {
    ProgramName::try_from(text).expect("test names fit")
}

fn full<T: Copy, const N: usize>(value: T) -> heapless::Vec<T, N> {
    core::iter::repeat_n(value, N).collect()
}

/// Valid requests, every variant at least once.
pub fn memory_requests() -> Vec<MemoryRequest> {
    vec![
        MemoryRequest::AllocFrames { count: 1 },
        MemoryRequest::AllocFrames { count: 512 },
        MemoryRequest::FreeFrames {
            runs: [FrameRun::new(0x100, 3), FrameRun::new(0x200, 1)]
                .into_iter()
                .collect(),
        },
        MemoryRequest::RefBatch {
            client: 3,
            ops: [
                RefOp::inc(7),
                RefOp::dec(7),
                RefOp {
                    frame: 9,
                    delta: -2,
                },
            ]
            .into_iter()
            .collect(),
        },
        MemoryRequest::MakeShared {
            frames: [1u64, 2, 0xFFFF_FFFF].into_iter().collect(),
        },
        MemoryRequest::TryRemoveUnique { frame: 0x12345 },
        MemoryRequest::Stats,
    ]
}

pub fn memory_replies() -> Vec<MemoryReply> {
    let mut replies = vec![
        MemoryReply::Frames {
            runs: [FrameRun::new(0x1000, 64)].into_iter().collect(),
        },
        MemoryReply::Ok,
        MemoryReply::RefBatchDone { freed: 2 },
        MemoryReply::Unique(true),
        MemoryReply::Unique(false),
        MemoryReply::Stats(MemoryStats {
            free: 1,
            owned: 2,
            shared: 3,
            pending_ops: 4,
            batches: 5,
            ops_in_batches: 6,
        }),
    ];
    replies.extend(ALL_ERRORS.map(MemoryReply::Error));
    replies
}

pub fn process_requests() -> Vec<ProcessRequest> {
    vec![
        ProcessRequest::Spawn {
            program: name("forktest"),
        },
        ProcessRequest::Fork,
        ProcessRequest::Exit { status: -1 },
        ProcessRequest::Wait { pid: None },
        ProcessRequest::Wait { pid: Some(42) },
        ProcessRequest::Exec {
            program: name("hello"),
        },
        ProcessRequest::GetPid,
        ProcessRequest::Brk {
            new_end: 0x4000_0000,
        },
        ProcessRequest::Mmap { pages: 16 },
        ProcessRequest::Munmap {
            addr: 0x7000_0000,
            pages: 16,
        },
    ]
}

pub fn process_replies() -> Vec<ProcessReply> {
    let mut replies = vec![
        ProcessReply::Spawned { pid: 2 },
        ProcessReply::Forked { child_pid: 3 },
        ProcessReply::Forked { child_pid: 0 },
        ProcessReply::Exited { pid: 3, status: 0 },
        ProcessReply::Pid(1),
        ProcessReply::BrkSet(0x4000_0000),
        ProcessReply::Mapped { addr: 0x7000_0000 },
        ProcessReply::Unmapped,
    ];
    replies.extend(ALL_ERRORS.map(ProcessReply::Error));
    replies
}

/// The largest value of the request's variant (by encoded size).
pub fn largest_memory_request(like: &MemoryRequest) -> MemoryRequest {
    match like {
        MemoryRequest::AllocFrames { .. } => MemoryRequest::AllocFrames { count: u16::MAX },
        MemoryRequest::FreeFrames { .. } => MemoryRequest::FreeFrames {
            runs: full(FrameRun::new(u64::MAX, u16::MAX)),
        },
        MemoryRequest::RefBatch { .. } => MemoryRequest::RefBatch {
            client: u16::MAX,
            ops: full(RefOp {
                frame: u64::MAX,
                delta: i8::MIN,
            }),
        },
        MemoryRequest::MakeShared { .. } => MemoryRequest::MakeShared {
            frames: full(u64::MAX),
        },
        MemoryRequest::TryRemoveUnique { .. } => MemoryRequest::TryRemoveUnique { frame: u64::MAX },
        MemoryRequest::Stats => MemoryRequest::Stats,
    }
}

pub fn largest_memory_reply(like: &MemoryReply) -> MemoryReply {
    match like {
        MemoryReply::Frames { .. } => MemoryReply::Frames {
            runs: full(FrameRun::new(u64::MAX, u16::MAX)),
        },
        MemoryReply::Ok => MemoryReply::Ok,
        MemoryReply::RefBatchDone { .. } => MemoryReply::RefBatchDone { freed: u16::MAX },
        MemoryReply::Unique(_) => MemoryReply::Unique(true),
        MemoryReply::Stats(_) => MemoryReply::Stats(MemoryStats {
            free: u64::MAX,
            owned: u64::MAX,
            shared: u64::MAX,
            pending_ops: u64::MAX,
            batches: u64::MAX,
            ops_in_batches: u64::MAX,
        }),
        MemoryReply::Error(_) => MemoryReply::Error(ALL_ERRORS[ALL_ERRORS.len() - 1]),
    }
}

pub fn largest_process_request(like: &ProcessRequest) -> ProcessRequest {
    let longest = || name(&"x".repeat(PROGRAM_NAME_LEN));
    match like {
        ProcessRequest::Spawn { .. } => ProcessRequest::Spawn { program: longest() },
        ProcessRequest::Fork => ProcessRequest::Fork,
        ProcessRequest::Exit { .. } => ProcessRequest::Exit { status: i32::MIN },
        ProcessRequest::Wait { .. } => ProcessRequest::Wait {
            pid: Some(u32::MAX),
        },
        ProcessRequest::Exec { .. } => ProcessRequest::Exec { program: longest() },
        ProcessRequest::GetPid => ProcessRequest::GetPid,
        ProcessRequest::Brk { .. } => ProcessRequest::Brk { new_end: u64::MAX },
        ProcessRequest::Mmap { .. } => ProcessRequest::Mmap { pages: u32::MAX },
        ProcessRequest::Munmap { .. } => ProcessRequest::Munmap {
            addr: u64::MAX,
            pages: u32::MAX,
        },
    }
}

pub fn largest_process_reply(like: &ProcessReply) -> ProcessReply {
    match like {
        ProcessReply::Spawned { .. } => ProcessReply::Spawned { pid: u32::MAX },
        ProcessReply::Forked { .. } => ProcessReply::Forked {
            child_pid: u32::MAX,
        },
        ProcessReply::Exited { .. } => ProcessReply::Exited {
            pid: u32::MAX,
            status: i32::MIN,
        },
        ProcessReply::Pid(_) => ProcessReply::Pid(u32::MAX),
        ProcessReply::BrkSet(_) => ProcessReply::BrkSet(u64::MAX),
        ProcessReply::Mapped { .. } => ProcessReply::Mapped { addr: u64::MAX },
        ProcessReply::Unmapped => ProcessReply::Unmapped,
        ProcessReply::Error(_) => ProcessReply::Error(ALL_ERRORS[ALL_ERRORS.len() - 1]),
    }
}

// Strategies: any value the types allow, valid or not.

pub fn arb_error() -> impl Strategy<Value = ProtoError> {
    proptest::sample::select(ALL_ERRORS.to_vec())
}

fn arb_run() -> impl Strategy<Value = FrameRun> {
    (any::<u64>(), any::<u16>()).prop_map(|(first, count)| FrameRun::new(first, count))
}

fn arb_runs() -> impl Strategy<Value = Runs> {
    vec(arb_run(), 0..=MAX_RUNS).prop_map(|runs| runs.into_iter().collect())
}

fn arb_ref_ops() -> impl Strategy<Value = RefOps> {
    vec((any::<u64>(), any::<i8>()), 0..=MAX_REF_OPS).prop_map(|ops| {
        ops.into_iter()
            .map(|(frame, delta)| RefOp { frame, delta })
            .collect()
    })
}

fn arb_share_frames() -> impl Strategy<Value = ShareFrames> {
    vec(any::<u64>(), 0..=MAX_SHARE_FRAMES).prop_map(|frames| frames.into_iter().collect())
}

fn arb_name() -> impl Strategy<Value = ProgramName> {
    // Any Unicode that fits in 32 bytes, multi-byte characters included.
    proptest::string::string_regex(".{0,32}")
        .expect("valid regex")
        .prop_filter_map("fits in a program name", |text| {
            ProgramName::try_from(text.as_str()).ok()
        })
}

pub fn arb_memory_request() -> impl Strategy<Value = MemoryRequest> {
    prop_oneof![
        any::<u16>().prop_map(|count| MemoryRequest::AllocFrames { count }),
        arb_runs().prop_map(|runs| MemoryRequest::FreeFrames { runs }),
        (any::<u16>(), arb_ref_ops())
            .prop_map(|(client, ops)| MemoryRequest::RefBatch { client, ops }),
        arb_share_frames().prop_map(|frames| MemoryRequest::MakeShared { frames }),
        any::<u64>().prop_map(|frame| MemoryRequest::TryRemoveUnique { frame }),
        Just(MemoryRequest::Stats),
    ]
}

pub fn arb_memory_reply() -> impl Strategy<Value = MemoryReply> {
    prop_oneof![
        arb_runs().prop_map(|runs| MemoryReply::Frames { runs }),
        Just(MemoryReply::Ok),
        any::<u16>().prop_map(|freed| MemoryReply::RefBatchDone { freed }),
        any::<bool>().prop_map(MemoryReply::Unique),
        any::<[u64; 6]>().prop_map(
            |[free, owned, shared, pending_ops, batches, ops_in_batches]| {
                MemoryReply::Stats(MemoryStats {
                    free,
                    owned,
                    shared,
                    pending_ops,
                    batches,
                    ops_in_batches,
                })
            }
        ),
        arb_error().prop_map(MemoryReply::Error),
    ]
}

pub fn arb_process_request() -> impl Strategy<Value = ProcessRequest> {
    prop_oneof![
        arb_name().prop_map(|program| ProcessRequest::Spawn { program }),
        Just(ProcessRequest::Fork),
        any::<i32>().prop_map(|status| ProcessRequest::Exit { status }),
        any::<Option<u32>>().prop_map(|pid| ProcessRequest::Wait { pid }),
        arb_name().prop_map(|program| ProcessRequest::Exec { program }),
        Just(ProcessRequest::GetPid),
        any::<u64>().prop_map(|new_end| ProcessRequest::Brk { new_end }),
        any::<u32>().prop_map(|pages| ProcessRequest::Mmap { pages }),
        (any::<u64>(), any::<u32>())
            .prop_map(|(addr, pages)| ProcessRequest::Munmap { addr, pages }),
    ]
}

pub fn arb_process_reply() -> impl Strategy<Value = ProcessReply> {
    prop_oneof![
        any::<u32>().prop_map(|pid| ProcessReply::Spawned { pid }),
        any::<u32>().prop_map(|child_pid| ProcessReply::Forked { child_pid }),
        (any::<u32>(), any::<i32>()).prop_map(|(pid, status)| ProcessReply::Exited { pid, status }),
        any::<u32>().prop_map(ProcessReply::Pid),
        any::<u64>().prop_map(ProcessReply::BrkSet),
        any::<u64>().prop_map(|addr| ProcessReply::Mapped { addr }),
        Just(ProcessReply::Unmapped),
        arb_error().prop_map(ProcessReply::Error),
    ]
}
