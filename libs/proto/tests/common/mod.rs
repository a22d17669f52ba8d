//! Messages for the integration tests: one sample of every variant of every
//! request and reply, the largest value of each variant, and proptest
//! strategies for arbitrary values. The `kind` functions match exhaustively,
//! so a new variant does not compile until the tests cover it.

#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::*;
use proto::memory::{AttachPart, FreeList, Layout, MAX_FREE_FRAMES, MAX_REF_OPS, MAX_RUNS, RefOps, Runs};
use proto::process::{PAGE_SIZE, PROGRAM_NAME_LEN};
use proto::{
    FrameRun, MemoryReply, MemoryRequest, MemoryStats, ProcessReply, ProcessRequest, ProcessStats, ProgramName, ProtoError, RefOp,
};

pub const ALL_ERRORS: [ProtoError; 17] = [
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
    ProtoError::Denied,
    ProtoError::LimitReached,
    ProtoError::ServerDied,
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
        ProtoError::Denied => 14,
        ProtoError::LimitReached => 15,
        ProtoError::ServerDied => 16,
    }
}

// The `kind` of a variant is its wire tag: `tags_follow_the_declared_order`
// checks it against postcard, so these functions also pin the order.

pub const MEMORY_REQUEST_KINDS: usize = 11;
pub fn memory_request_kind(request: &MemoryRequest) -> usize {
    match request {
        MemoryRequest::AllocFrames { .. } => 0,
        MemoryRequest::FreeFrames { .. } => 1,
        MemoryRequest::RefBatch { .. } => 2,
        MemoryRequest::Attach { .. } => 3,
        MemoryRequest::Stats => 4,
        MemoryRequest::TryRemoveUnique { .. } => 5,
        MemoryRequest::Settle => 6,
        MemoryRequest::Materialize { .. } => 7,
        MemoryRequest::Swap { .. } => 8,
        MemoryRequest::Reclaim { .. } => 9,
        MemoryRequest::AllocHeap { .. } => 10,
    }
}

pub const MEMORY_REPLY_KINDS: usize = 7;
pub fn memory_reply_kind(reply: &MemoryReply) -> usize {
    match reply {
        MemoryReply::Frames { .. } => 0,
        MemoryReply::Ok => 1,
        MemoryReply::RefBatchDone { .. } => 2,
        MemoryReply::Attached(_) => 3,
        MemoryReply::Stats(_) => 4,
        MemoryReply::Error(_) => 5,
        MemoryReply::Unique(_) => 6,
    }
}

pub const PROCESS_REQUEST_KINDS: usize = 14;
pub fn process_request_kind(request: &ProcessRequest) -> usize {
    match request {
        ProcessRequest::Spawn { .. } => 0,
        ProcessRequest::Fork { .. } => 1,
        ProcessRequest::Exit { .. } => 2,
        ProcessRequest::Wait { .. } => 3,
        ProcessRequest::Exec { .. } => 4,
        ProcessRequest::GetPid => 5,
        ProcessRequest::Brk { .. } => 6,
        ProcessRequest::Mmap { .. } => 7,
        ProcessRequest::Munmap { .. } => 8,
        ProcessRequest::Quiesce => 9,
        ProcessRequest::Stats => 10,
        ProcessRequest::Swap { .. } => 11,
        ProcessRequest::Kill { .. } => 12,
        ProcessRequest::TimePhases { .. } => 13,
    }
}

pub const PROCESS_REPLY_KINDS: usize = 13;
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
        ProcessReply::Quiesced => 8,
        ProcessReply::Stats(_) => 9,
        ProcessReply::Swapped => 10,
        ProcessReply::Killed => 11,
        ProcessReply::PhasesTimed => 12,
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
        MemoryRequest::FreeFrames { frames: [0x100u32, 0x101, 0x200, u32::MAX].into_iter().collect() },
        MemoryRequest::RefBatch { ops: [RefOp::inc(7), RefOp::dec(7), RefOp { frame: 9, delta: -2 }].into_iter().collect() },
        MemoryRequest::Attach { part: AttachPart::Frames },
        MemoryRequest::Attach { part: AttachPart::Table },
        MemoryRequest::Attach { part: AttachPart::Region },
        MemoryRequest::Stats,
        MemoryRequest::TryRemoveUnique { frame: 0x100 },
        MemoryRequest::TryRemoveUnique { frame: u32::MAX },
        MemoryRequest::Settle,
        MemoryRequest::Materialize { frames: [0x100u32].into_iter().collect() },
        // Holders of a frame may all name it: a frame may appear twice.
        MemoryRequest::Materialize { frames: [0x100u32, 0x200, 0x100, u32::MAX].into_iter().collect() },
        MemoryRequest::Swap { strategy: 0 },
        // Whether a strategy exists is the server's question.
        MemoryRequest::Swap { strategy: u8::MAX },
        MemoryRequest::Reclaim { record: 2 },
        MemoryRequest::AllocHeap { count: 256 },
    ]
}

pub fn memory_replies() -> Vec<MemoryReply> {
    let mut replies = vec![
        MemoryReply::Frames { runs: [FrameRun::new(0x1000, 64)].into_iter().collect() },
        MemoryReply::Ok,
        MemoryReply::RefBatchDone { freed: 2 },
        MemoryReply::Attached(Layout { pool_frames: 0x8000, table_pages: 64 }),
        MemoryReply::Stats(MemoryStats { free: 1, owned: 2, shared: 3, pending_ops: 4, batches: 5, ops_in_batches: 6, heap: 7 }),
        MemoryReply::Unique(false),
        MemoryReply::Unique(true),
    ];
    replies.extend(ALL_ERRORS.map(MemoryReply::Error));
    replies
}

pub fn process_requests() -> Vec<ProcessRequest> {
    vec![
        ProcessRequest::Spawn { program: name("forktest"), arg: 3 },
        ProcessRequest::Fork { resume: 0x40_1000, stack: 0x7FFF_FF00, cpu: None },
        ProcessRequest::Fork { resume: 0x40_1000, stack: 0x7FFF_FF00, cpu: Some(1) },
        ProcessRequest::Exit { status: -1 },
        ProcessRequest::Wait { pid: None },
        ProcessRequest::Wait { pid: Some(42) },
        ProcessRequest::Exec { program: name("hello"), arg: 0 },
        ProcessRequest::GetPid,
        ProcessRequest::Brk { new_end: 0x4000_0000 },
        ProcessRequest::Mmap { pages: 16 },
        ProcessRequest::Munmap { addr: 0x7000_0000, pages: 16 },
        ProcessRequest::Quiesce,
        ProcessRequest::Stats,
        ProcessRequest::Swap { strategy: 0 },
        ProcessRequest::Swap { strategy: 8 },
        ProcessRequest::Kill { pid: 2 },
        ProcessRequest::TimePhases { on: true },
        ProcessRequest::TimePhases { on: false },
    ]
}

pub fn process_replies() -> Vec<ProcessReply> {
    let mut replies = vec![
        ProcessReply::Spawned { pid: 2 },
        ProcessReply::Forked { child_pid: 3 },
        ProcessReply::Exited { pid: 3, status: 0 },
        ProcessReply::Pid(1),
        ProcessReply::BrkSet(0x4000_0000),
        ProcessReply::Mapped { addr: 0x7000_0000 },
        ProcessReply::Unmapped,
        ProcessReply::Quiesced,
        ProcessReply::Stats(ProcessStats {
            processes: 1,
            forks: 2,
            cow_faults: 3,
            cow_copies: 4,
            cow_reused: 5,
            kernel_copies: 4,
            kernel_reuses: 5,
            zero_fills: 6,
            ref_messages: 7,
            ref_ops: 8,
            frame_messages: 9,
            direct_stores: 10,
            cancelled: 11,
            phases: [12, 13, 14, 15, 16, 17, 18, 19],
        }),
        ProcessReply::Swapped,
        ProcessReply::Killed,
        ProcessReply::PhasesTimed,
    ];
    replies.extend(ALL_ERRORS.map(ProcessReply::Error));
    replies
}

/// The largest value of the request's variant (by encoded size). Valid where
/// the variant's largest value can be, so the bounds hold for what a server
/// accepts, not only for what it can decode.
pub fn largest_memory_request(like: &MemoryRequest) -> MemoryRequest {
    match like {
        MemoryRequest::AllocFrames { .. } => MemoryRequest::AllocFrames { count: u16::MAX },
        // Distinct frames (no double free), each a 5-byte varint.
        MemoryRequest::FreeFrames { .. } => {
            MemoryRequest::FreeFrames { frames: (0..MAX_FREE_FRAMES as u32).map(|i| u32::MAX - i).collect() }
        }
        MemoryRequest::RefBatch { .. } => MemoryRequest::RefBatch { ops: full(RefOp { frame: u32::MAX, delta: i8::MIN }) },
        MemoryRequest::Attach { .. } => MemoryRequest::Attach { part: AttachPart::Table },
        MemoryRequest::Stats => MemoryRequest::Stats,
        MemoryRequest::TryRemoveUnique { .. } => MemoryRequest::TryRemoveUnique { frame: u32::MAX },
        MemoryRequest::Settle => MemoryRequest::Settle,
        // As many 5-byte frames as a FreeFrames: as large, never larger.
        // Distinct or not makes no difference to the size.
        MemoryRequest::Materialize { .. } => {
            MemoryRequest::Materialize { frames: (0..MAX_FREE_FRAMES as u32).map(|i| u32::MAX - i).collect() }
        }
        // A u8 is one raw byte whatever its value.
        MemoryRequest::Swap { .. } => MemoryRequest::Swap { strategy: u8::MAX },
        MemoryRequest::Reclaim { .. } => MemoryRequest::Reclaim { record: 15 },
        MemoryRequest::AllocHeap { .. } => MemoryRequest::AllocHeap { count: u16::MAX },
    }
}

pub fn largest_memory_reply(like: &MemoryReply) -> MemoryReply {
    match like {
        MemoryReply::Frames { .. } => MemoryReply::Frames { runs: full(FrameRun::new(u64::MAX, u16::MAX)) },
        MemoryReply::Ok => MemoryReply::Ok,
        MemoryReply::RefBatchDone { .. } => MemoryReply::RefBatchDone { freed: u16::MAX },
        MemoryReply::Attached(_) => MemoryReply::Attached(Layout { pool_frames: u32::MAX, table_pages: u32::MAX }),
        MemoryReply::Stats(_) => MemoryReply::Stats(MemoryStats {
            free: u64::MAX,
            owned: u64::MAX,
            shared: u64::MAX,
            pending_ops: u64::MAX,
            batches: u64::MAX,
            ops_in_batches: u64::MAX,
            heap: u64::MAX,
        }),
        MemoryReply::Error(_) => MemoryReply::Error(ALL_ERRORS[ALL_ERRORS.len() - 1]),
        // A bool is one byte whatever its value.
        MemoryReply::Unique(_) => MemoryReply::Unique(true),
    }
}

pub fn largest_process_request(like: &ProcessRequest) -> ProcessRequest {
    let longest = || name(&"x".repeat(PROGRAM_NAME_LEN));
    match like {
        ProcessRequest::Spawn { .. } => ProcessRequest::Spawn { program: longest(), arg: u64::MAX },
        // The highest 8-aligned stack is still a 10-byte varint.
        ProcessRequest::Fork { .. } => ProcessRequest::Fork { resume: u64::MAX, stack: u64::MAX - 7, cpu: Some(u16::MAX) },
        ProcessRequest::Exit { .. } => ProcessRequest::Exit { status: i32::MIN },
        ProcessRequest::Wait { .. } => ProcessRequest::Wait { pid: Some(u32::MAX) },
        ProcessRequest::Exec { .. } => ProcessRequest::Exec { program: longest(), arg: u64::MAX },
        ProcessRequest::GetPid => ProcessRequest::GetPid,
        ProcessRequest::Brk { .. } => ProcessRequest::Brk { new_end: u64::MAX },
        ProcessRequest::Mmap { .. } => ProcessRequest::Mmap { pages: u32::MAX },
        // The most pages, at the highest page-aligned address that leaves
        // the range's end within the address space.
        ProcessRequest::Munmap { .. } => {
            ProcessRequest::Munmap { addr: (u64::MAX - u64::from(u32::MAX) * PAGE_SIZE) & !(PAGE_SIZE - 1), pages: u32::MAX }
        }
        ProcessRequest::Quiesce => ProcessRequest::Quiesce,
        ProcessRequest::Stats => ProcessRequest::Stats,
        ProcessRequest::Swap { .. } => ProcessRequest::Swap { strategy: u8::MAX },
        ProcessRequest::Kill { .. } => ProcessRequest::Kill { pid: u32::MAX },
        ProcessRequest::TimePhases { .. } => ProcessRequest::TimePhases { on: true },
    }
}

pub fn largest_process_reply(like: &ProcessReply) -> ProcessReply {
    match like {
        ProcessReply::Spawned { .. } => ProcessReply::Spawned { pid: u32::MAX },
        ProcessReply::Forked { .. } => ProcessReply::Forked { child_pid: u32::MAX },
        ProcessReply::Exited { .. } => ProcessReply::Exited { pid: u32::MAX, status: i32::MIN },
        ProcessReply::Pid(_) => ProcessReply::Pid(u32::MAX),
        ProcessReply::BrkSet(_) => ProcessReply::BrkSet(u64::MAX),
        ProcessReply::Mapped { .. } => ProcessReply::Mapped { addr: u64::MAX },
        ProcessReply::Unmapped => ProcessReply::Unmapped,
        ProcessReply::Error(_) => ProcessReply::Error(ALL_ERRORS[ALL_ERRORS.len() - 1]),
        ProcessReply::Quiesced => ProcessReply::Quiesced,
        ProcessReply::Stats(_) => ProcessReply::Stats(ProcessStats {
            processes: u32::MAX,
            forks: u64::MAX,
            cow_faults: u64::MAX,
            cow_copies: u64::MAX,
            cow_reused: u64::MAX,
            kernel_copies: u64::MAX,
            kernel_reuses: u64::MAX,
            zero_fills: u64::MAX,
            ref_messages: u64::MAX,
            ref_ops: u64::MAX,
            frame_messages: u64::MAX,
            direct_stores: u64::MAX,
            cancelled: u64::MAX,
            phases: [u64::MAX; proto::Phase::COUNT],
        }),
        ProcessReply::Swapped => ProcessReply::Swapped,
        ProcessReply::Killed => ProcessReply::Killed,
        ProcessReply::PhasesTimed => ProcessReply::PhasesTimed,
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

/// A frame number: often a small one, so that lists repeat frames.
fn arb_frame() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), 0u32..16]
}

fn arb_ref_ops() -> impl Strategy<Value = RefOps> {
    vec((arb_frame(), any::<i8>()), 0..=MAX_REF_OPS).prop_map(|ops| ops.into_iter().map(|(frame, delta)| RefOp { frame, delta }).collect())
}

fn arb_free_list() -> impl Strategy<Value = FreeList> {
    vec(arb_frame(), 0..=MAX_FREE_FRAMES).prop_map(|frames| frames.into_iter().collect())
}

fn arb_attach_part() -> impl Strategy<Value = AttachPart> {
    prop_oneof![Just(AttachPart::Frames), Just(AttachPart::Table), Just(AttachPart::Region)]
}

fn arb_name() -> impl Strategy<Value = ProgramName> {
    // Any Unicode that fits in 32 bytes, multi-byte characters included.
    proptest::string::string_regex(".{0,32}")
        .expect("valid regex")
        .prop_filter_map("fits in a program name", |text| ProgramName::try_from(text.as_str()).ok())
}

pub fn arb_memory_request() -> impl Strategy<Value = MemoryRequest> {
    prop_oneof![
        any::<u16>().prop_map(|count| MemoryRequest::AllocFrames { count }),
        arb_free_list().prop_map(|frames| MemoryRequest::FreeFrames { frames }),
        arb_ref_ops().prop_map(|ops| MemoryRequest::RefBatch { ops }),
        arb_attach_part().prop_map(|part| MemoryRequest::Attach { part }),
        Just(MemoryRequest::Stats),
        arb_frame().prop_map(|frame| MemoryRequest::TryRemoveUnique { frame }),
        Just(MemoryRequest::Settle),
        arb_free_list().prop_map(|frames| MemoryRequest::Materialize { frames }),
        any::<u8>().prop_map(|strategy| MemoryRequest::Swap { strategy }),
        any::<u16>().prop_map(|count| MemoryRequest::AllocHeap { count }),
    ]
}

pub fn arb_memory_reply() -> impl Strategy<Value = MemoryReply> {
    prop_oneof![
        arb_runs().prop_map(|runs| MemoryReply::Frames { runs }),
        Just(MemoryReply::Ok),
        any::<u16>().prop_map(|freed| MemoryReply::RefBatchDone { freed }),
        (any::<u32>(), any::<u32>()).prop_map(|(pool_frames, table_pages)| { MemoryReply::Attached(Layout { pool_frames, table_pages }) }),
        any::<[u64; 7]>().prop_map(|[free, owned, shared, pending_ops, batches, ops_in_batches, heap]| {
            MemoryReply::Stats(MemoryStats { free, owned, shared, pending_ops, batches, ops_in_batches, heap })
        }),
        arb_error().prop_map(MemoryReply::Error),
        any::<bool>().prop_map(MemoryReply::Unique),
    ]
}

pub fn arb_process_request() -> impl Strategy<Value = ProcessRequest> {
    prop_oneof![
        (arb_name(), any::<u64>()).prop_map(|(program, arg)| ProcessRequest::Spawn { program, arg }),
        // Half the stacks are any value (aligned one time in eight), half
        // are aligned, so that validation goes both ways.
        (any::<u64>(), prop_oneof![any::<u64>(), any::<u64>().prop_map(|s| s & !7)], any::<Option<u16>>())
            .prop_map(|(resume, stack, cpu)| ProcessRequest::Fork { resume, stack, cpu }),
        any::<i32>().prop_map(|status| ProcessRequest::Exit { status }),
        any::<Option<u32>>().prop_map(|pid| ProcessRequest::Wait { pid }),
        (arb_name(), any::<u64>()).prop_map(|(program, arg)| ProcessRequest::Exec { program, arg }),
        Just(ProcessRequest::GetPid),
        any::<u64>().prop_map(|new_end| ProcessRequest::Brk { new_end }),
        any::<u32>().prop_map(|pages| ProcessRequest::Mmap { pages }),
        (any::<u64>(), any::<u32>()).prop_map(|(addr, pages)| ProcessRequest::Munmap { addr, pages }),
        Just(ProcessRequest::Quiesce),
        Just(ProcessRequest::Stats),
        any::<u8>().prop_map(|strategy| ProcessRequest::Swap { strategy }),
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
        Just(ProcessReply::Quiesced),
        (any::<u32>(), any::<[u64; 12]>(), any::<[u64; 8]>()).prop_map(
            |(
                processes,
                [
                    forks,
                    cow_faults,
                    cow_copies,
                    cow_reused,
                    kernel_copies,
                    kernel_reuses,
                    zero_fills,
                    ref_messages,
                    ref_ops,
                    frame_messages,
                    direct_stores,
                    cancelled,
                ],
                phases,
            )| {
                ProcessReply::Stats(ProcessStats {
                    processes,
                    forks,
                    cow_faults,
                    cow_copies,
                    cow_reused,
                    kernel_copies,
                    kernel_reuses,
                    zero_fills,
                    ref_messages,
                    ref_ops,
                    frame_messages,
                    direct_stores,
                    cancelled,
                    phases,
                })
            }
        ),
        Just(ProcessReply::Swapped),
    ]
}
