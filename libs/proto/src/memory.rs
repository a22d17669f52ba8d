//! The memory server protocol: frames handed out and taken back in batches,
//! the reference-count batches of the process servers, and the counter table
//! they read. It owns the message types, their bounds and their validation;
//! the counting itself lives in the memory server.
//!
//! # The counter table
//!
//! The memory server keeps one [`table`] word per frame of its pool, in pages
//! it maps writable into the process servers ([`MemoryRequest::Attach`]), so
//! a copy-on-write fault reads a frame's count without IPC. The memory
//! server applies batches to it; a process server writes only the words of
//! frames it holds alone (the deferred manager's count-1 shortcuts).
//!
//! # The strategy's region
//!
//! Strategies placed in the process servers (`abi::process::Placement::Shared`)
//! keep their tables in a region of zeroed pool frames the memory server sets
//! up; [`AttachPart::Region`] tells a process server which frames to map.
//!
//! # Ordering rule of the deferred strategy
//!
//! A decrement is never committed before the increment it matches. Clients
//! guarantee it across batches: a process server commits a fork's increments
//! before the fork returns, so any later decrement of those frames travels in
//! the same batch or a later one. The server guarantees it within a batch: it
//! applies all increments of a [`MemoryRequest::RefBatch`] before any of its
//! decrements, each group in the order sent ([`commit_order`]). So a batch
//! that holds both the `+1` and the `-1` of a frame never drops it to zero in
//! between.

use abi::msg::IPC_BUFFER_DATA;
use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::codec::size;
use crate::{MEMORY_PROTOCOL, ProtoError, Protocol};

/// Runs per `AllocFrames` reply.
pub const MAX_RUNS: usize = 64;
/// Operations per `RefBatch`.
pub const MAX_REF_OPS: usize = 160;
/// Frames per `FreeFrames`.
pub const MAX_FREE_FRAMES: usize = 200;

/// The words of the counter table, one per frame of the pool.
pub mod table {
    /// A free frame (or one that is not the pool's: the server's own).
    pub const FREE: u64 = 0;
    /// Deferred strategy: a frame with one owner and no counter (a count of
    /// 1). Its owner's process server forks it by storing 2, with no
    /// message, and frees it by taking it back into its stock.
    pub const OWNED: u64 = 1 << 63;
}

/// Who a request comes from: the badge of the capability it came through,
/// which the memory server's parent minted for each client, never a field
/// the client writes. The low byte is the client's record (1 to
/// [`client::RECORDS`]` - 1`); [`client::TRUSTED`] marks the trusted
/// system servers (the process servers), which may map the whole pool and
/// the counter table, and swap the strategy. Any other badge (0, the
/// endpoint's unbadged original, among them) is refused with
/// [`ProtoError::Denied`].
pub mod client {
    /// Client records the memory server keeps (record 0 is no one's).
    pub const RECORDS: u64 = 16;
    /// The badge bit of a trusted system server.
    pub const TRUSTED: u64 = 1 << 8;
    /// The badge bit of the supervisor, which may reclaim a dead client's
    /// frames.
    pub const SUPERVISOR: u64 = 1 << 9;
    /// init: statistics, settling, and as the supervisor that restarts
    /// the servers, reclaiming; it holds no frames in the running system.
    pub const INIT: u64 = 1 | SUPERVISOR;
    /// The process servers (all threads of one program, one protection
    /// domain: frames move between their stocks).
    pub const PROCESS_SERVERS: u64 = PROCESS_SERVERS_RECORD as u64 | TRUSTED;
    /// The process servers' record.
    pub const PROCESS_SERVERS_RECORD: u8 = 2;
    /// Frames an untrusted client may hold at once.
    pub const UNTRUSTED_QUOTA: u64 = 4096;
    /// Of a pool of `pool_frames` frames, how many a trusted client may
    /// hold as its own heap ([`super::MemoryRequest::AllocHeap`]): a
    /// sixteenth. Frames held as a heap never come back while the client
    /// lives, so this bounds what a client's records can take from the
    /// processes' memory.
    pub const fn heap_cap(pool_frames: u64) -> u64 {
        pool_frames / 16
    }

    /// The record, trust and supervision of `badge`, if it names a client.
    pub const fn of(badge: u64) -> Option<(u8, bool, bool)> {
        let record = badge & 0xFF;
        if badge & !(0xFF | TRUSTED | SUPERVISOR) != 0 || record == 0 || record >= RECORDS {
            return None;
        }
        Some((record as u8, badge & TRUSTED != 0, badge & SUPERVISOR != 0))
    }
}

/// Consecutive frames of the pool: frame numbers `first .. first + count`
/// (frame numbers count pages from the start of the pool's PhysRange).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameRun {
    pub first: u64,
    pub count: u16,
}

impl FrameRun {
    pub const fn new(first: u64, count: u16) -> Self {
        Self { first, count }
    }

    /// One past the last frame number, or `None` if that overflows.
    pub const fn end(&self) -> Option<u64> {
        self.first.checked_add(self.count as u64)
    }

    /// Whether the two runs share a frame.
    pub fn overlaps(&self, other: &Self) -> bool {
        let (Some(end), Some(other_end)) = (self.end(), other.end()) else {
            return true;
        };
        self.first < other_end && other.first < end
    }
}

/// A change of one counted frame's counter by `delta` (never 0). Positive
/// deltas are increments (fork of a shared page), negative ones decrements
/// (copy-on-write copy, unmap, exit); a client may merge several of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefOp {
    pub frame: u32,
    pub delta: i8,
}

impl RefOp {
    pub const fn inc(frame: u32) -> Self {
        Self { frame, delta: 1 }
    }

    pub const fn dec(frame: u32) -> Self {
        Self { frame, delta: -1 }
    }

    pub const fn is_increment(&self) -> bool {
        self.delta > 0
    }
}

/// The order in which a server applies a batch: every increment, then every
/// decrement, each in the order sent.
pub fn commit_order(ops: &[RefOp]) -> impl Iterator<Item = &RefOp> {
    let increments = ops.iter().filter(|op| op.is_increment());
    let decrements = ops.iter().filter(|op| op.delta < 0);
    increments.chain(decrements)
}

pub type Runs = Vec<FrameRun, MAX_RUNS>;
pub type RefOps = Vec<RefOp, MAX_REF_OPS>;
pub type FreeList = Vec<u32, MAX_FREE_FRAMES>;

/// The capability an [`MemoryRequest::Attach`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachPart {
    /// The pool's frames, read-write: the client maps the frames it is
    /// given from it.
    Frames,
    /// The counter table's pages, read-write.
    Table,
    /// The frames of the region of the strategy in force, when it is placed
    /// in the process servers: the reply is [`MemoryReply::Frames`], the runs
    /// in order, mapped through the pool's capability. No capability.
    Region,
}

/// Where things are, as [`MemoryReply::Attached`] tells a client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Frames of the pool (entries of the counter table).
    pub pool_frames: u32,
    /// Pages of the counter table.
    pub table_pages: u32,
}

/// Requests to the memory server (sent by process servers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "no heap in servers: a message is its bounded inline capacity, and lives in one buffer at a time"
)]
pub enum MemoryRequest {
    /// Up to `count` (at least 1) new frames for the caller. → [`MemoryReply::Frames`]
    /// with at least one frame and at most `count`, in at most [`MAX_RUNS`]
    /// runs; a client that got fewer asks again. [`ProtoError::NoMemory`]
    /// when no frame is free, or when an untrusted client holds its quota.
    AllocFrames { count: u16 },
    /// Gives frames the caller holds alone (uncounted, or counted at 1)
    /// back to the pool. → [`MemoryReply::Ok`]; [`ProtoError::NotOwned`]
    /// (and nothing freed) if one of them was not handed to the caller, is
    /// free or shared. Strategies that detect zero late put a frame back
    /// once they see it.
    FreeFrames { frames: FreeList },
    /// Applies the counter changes the caller has queued; see the module's
    /// ordering rule. Frames whose count reaches zero go back to the pool.
    /// → [`MemoryReply::RefBatchDone`] with the number freed; nothing is
    /// applied and the reply is [`ProtoError::NotOwned`] if a frame was not
    /// handed to the caller or is free, [`ProtoError::InvalidArgument`] if
    /// the batch would take a count below zero.
    RefBatch { ops: RefOps },
    /// A capability for part of the pool, sent with the reply.
    /// → [`MemoryReply::Attached`]; [`ProtoError::Denied`] unless the
    /// caller is trusted ([`client::TRUSTED`]).
    Attach { part: AttachPart },
    /// → [`MemoryReply::Stats`]
    Stats,
    /// `try_remove_unique` of `frame` for the caller, by the strategy
    /// itself: for the strategies whose counts the table does not show in
    /// one word. → [`MemoryReply::Unique`]: true if the caller's reference
    /// is the only one (it may then write the frame in place);
    /// [`ProtoError::NotOwned`] for a frame not handed to the caller.
    TryRemoveUnique { frame: u32 },
    /// Runs every client's quiescent point until every frame whose count
    /// reached zero is back in the pool (for exact counts).
    /// → [`MemoryReply::Ok`]
    Settle,
    /// Deferred strategy: these frames were shared by a fork with no message
    /// (their entry is still `OWNED`, standing for 2): make the 2 explicit.
    /// Frames no longer `OWNED` are left alone, so holders may all send it.
    /// Sent before a strategy swap, which must see exact counts.
    /// → [`MemoryReply::Ok`]
    Materialize { frames: FreeList },
    /// Hands every frame's count to strategy `strategy`
    /// (`abi::process::Strategy` index) and runs it from now on. The clients
    /// must have flushed and paused first. → [`MemoryReply::Ok`];
    /// [`ProtoError::Denied`] unless the caller is trusted,
    /// [`ProtoError::InvalidArgument`] for an unknown strategy,
    /// [`ProtoError::NoMemory`] when its tables do not fit.
    Swap { strategy: u8 },
    /// The client of record `record` is dead (its supervisor tore it down):
    /// every frame handed to it goes back to the pool whatever its count,
    /// and a strategy placed in the process servers starts over with a
    /// zeroed region. → [`MemoryReply::RefBatchDone`] with the frames
    /// taken back (at most `u16::MAX` reported); [`ProtoError::Denied`]
    /// unless the caller is the supervisor ([`client::SUPERVISOR`]).
    Reclaim { record: u8 },
    /// Up to `count` (at least 1) new frames for the caller's own heap,
    /// in one run (consecutive frames: one span through a mapping of the
    /// whole pool). → [`MemoryReply::Frames`] with one run of at most
    /// `count` frames, fewer only when the caller nears its cap
    /// ([`client::heap_cap`]); [`ProtoError::NoMemory`] when it holds its
    /// cap or no run of that length is free; [`ProtoError::Denied`] unless
    /// the caller is trusted. The frames are the caller's until its
    /// supervisor reclaims it: it cannot give them back, count them or ask
    /// of them ([`ProtoError::NotOwned`]), and no count shows them as
    /// owned; [`MemoryStats::heap`] counts them.
    AllocHeap { count: u16 },
}

/// The memory server's counters, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Frames in the pool.
    pub free: u64,
    /// Frames handed out and held by one reference (uncounted, or counted 1).
    pub owned: u64,
    /// Frames counted at 2 or more.
    pub shared: u64,
    /// Counter changes queued and not applied yet (strategies that defer on
    /// the server side; 0 for the others).
    pub pending_ops: u64,
    /// `RefBatch`es applied.
    pub batches: u64,
    /// Operations in those batches (`ops_in_batches / batches` is the mean
    /// batch size).
    pub ops_in_batches: u64,
    /// Frames held as clients' heaps ([`MemoryRequest::AllocHeap`]):
    /// neither free nor owned, and back only when their client is
    /// reclaimed. A leak check counts them apart: `free + heap` is what a
    /// workload must leave as it found.
    pub heap: u64,
}

/// Replies of the memory server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "no heap in servers: a message is its bounded inline capacity, and lives in one buffer at a time"
)]
pub enum MemoryReply {
    Frames { runs: Runs },
    Ok,
    RefBatchDone { freed: u16 },
    Attached(Layout),
    Stats(MemoryStats),
    Error(ProtoError),
    Unique(bool),
}

/// The memory server protocol, for the helpers of [`crate::protocol`].
pub struct MemoryProtocol;

const RUN_LEN: usize = size::U64 + size::U16;
const REF_OP_LEN: usize = size::U32 + size::BYTE;

impl Protocol for MemoryProtocol {
    const LABEL: u64 = MEMORY_PROTOCOL;
    const REQUEST_KINDS: u32 = 11;
    const REPLY_KINDS: u32 = 7;
    const MAX_REQUEST_LEN: usize = size::TAG
        + size::max(size::max(size::U16, size::seq(MAX_FREE_FRAMES, size::U32)), size::max(size::seq(MAX_REF_OPS, REF_OP_LEN), size::U32));
    const MAX_REPLY_LEN: usize = size::TAG
        + size::max(size::max(size::seq(MAX_RUNS, RUN_LEN), size::U16), size::max(2 * size::U32, size::max(7 * size::U64, size::TAG)));
    type Request = MemoryRequest;
    type Reply = MemoryReply;

    fn error_reply(error: ProtoError) -> MemoryReply {
        MemoryReply::Error(error)
    }

    fn reply_error(reply: &MemoryReply) -> Option<ProtoError> {
        match reply {
            MemoryReply::Error(error) => Some(*error),
            _ => None,
        }
    }

    fn validate(request: &MemoryRequest) -> Result<(), ProtoError> {
        let valid = match request {
            MemoryRequest::AllocFrames { count, .. } | MemoryRequest::AllocHeap { count } => *count > 0,
            MemoryRequest::FreeFrames { frames, .. } => {
                !frames.is_empty() && frames.iter().enumerate().all(|(i, f)| !frames[..i].contains(f))
            }
            MemoryRequest::RefBatch { ops, .. } => !ops.is_empty() && ops.iter().all(|op| op.delta != 0),
            MemoryRequest::Attach { .. }
            | MemoryRequest::Stats
            | MemoryRequest::TryRemoveUnique { .. }
            | MemoryRequest::Settle
            | MemoryRequest::Swap { .. } => true,
            MemoryRequest::Reclaim { record } => u64::from(*record) < client::RECORDS && *record != 0,
            MemoryRequest::Materialize { frames } => !frames.is_empty(),
        };
        if valid { Ok(()) } else { Err(ProtoError::InvalidArgument) }
    }
}

const _: () = {
    assert!(MemoryProtocol::MAX_REQUEST_LEN <= IPC_BUFFER_DATA);
    assert!(MemoryProtocol::MAX_REPLY_LEN <= IPC_BUFFER_DATA);
    // `freed` counts frames of one batch.
    assert!(MAX_REF_OPS <= u16::MAX as usize);
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accept;

    fn check(request: MemoryRequest) -> Result<(), ProtoError> {
        MemoryProtocol::validate(&request)
    }

    fn free(list: &[u32]) -> MemoryRequest {
        MemoryRequest::FreeFrames { frames: list.iter().copied().collect() }
    }

    fn materialize(list: &[u32]) -> MemoryRequest {
        MemoryRequest::Materialize { frames: list.iter().copied().collect() }
    }

    fn batch(list: &[RefOp]) -> MemoryRequest {
        MemoryRequest::RefBatch { ops: list.iter().copied().collect() }
    }

    #[test]
    fn commit_order_puts_increments_first() {
        let ops = [RefOp::dec(1), RefOp::inc(2), RefOp { frame: 3, delta: -4 }, RefOp { frame: 1, delta: 2 }];
        let order: std::vec::Vec<_> = commit_order(&ops).copied().collect();
        assert_eq!(order, [RefOp::inc(2), RefOp { frame: 1, delta: 2 }, RefOp::dec(1), RefOp { frame: 3, delta: -4 }]);
    }

    #[test]
    fn runs_overlap_by_frame() {
        let a = FrameRun::new(10, 5);
        assert!(a.overlaps(&FrameRun::new(14, 1)));
        assert!(!a.overlaps(&FrameRun::new(15, 1)));
        assert!(!a.overlaps(&FrameRun::new(5, 5)));
        assert!(a.overlaps(&FrameRun::new(0, 11)));
        assert_eq!(FrameRun::new(u64::MAX, 1).end(), None);
    }

    #[test]
    fn badges_name_clients() {
        assert_eq!(client::of(0), None);
        assert_eq!(client::of(client::INIT), Some((1, false, true)));
        assert_eq!(client::of(client::PROCESS_SERVERS), Some((2, true, false)));
        assert_eq!(client::of(client::RECORDS - 1), Some(((client::RECORDS - 1) as u8, false, false)));
        assert_eq!(client::of(client::RECORDS), None);
        assert_eq!(client::of(client::TRUSTED), None);
        assert_eq!(client::of(client::SUPERVISOR), None);
        assert_eq!(client::of(1 << 10 | 1), None);
        assert_eq!(client::of(u64::MAX), None);
    }

    #[test]
    fn the_heap_cap_is_a_sixteenth_of_the_pool() {
        assert_eq!(client::heap_cap(100_000), 6_250);
        assert_eq!(client::heap_cap(15), 0);
    }

    #[test]
    fn table_words_tell_owned_from_any_count() {
        assert_ne!(table::FREE, table::OWNED);
        // A count (at most one per reference to a frame) never reaches the
        // marker bit, so a word is a count or `OWNED`, never both.
        assert_eq!(table::OWNED.count_ones(), 1);
        assert!(table::OWNED > u64::from(u32::MAX));
    }

    #[test]
    fn validation_rejects_nonsense() {
        let bad = Err(ProtoError::InvalidArgument);
        assert_eq!(check(MemoryRequest::AllocFrames { count: 0 }), bad);
        assert_eq!(check(MemoryRequest::AllocFrames { count: 1 }), Ok(()));
        assert_eq!(check(MemoryRequest::AllocFrames { count: u16::MAX }), Ok(()));
        assert_eq!(check(MemoryRequest::AllocHeap { count: 0 }), bad);
        assert_eq!(check(MemoryRequest::AllocHeap { count: u16::MAX }), Ok(()));

        // FreeFrames: non-empty, no frame twice (a double free in one message).
        assert_eq!(check(free(&[])), bad);
        assert_eq!(check(free(&[1, 2, 1])), bad);
        assert_eq!(check(free(&[7, 7])), bad);
        assert_eq!(check(free(&[0])), Ok(()));
        assert_eq!(check(free(&[1, 2, u32::MAX])), Ok(()));
        let all: FreeList = (0..MAX_FREE_FRAMES as u32).rev().collect();
        assert_eq!(check(MemoryRequest::FreeFrames { frames: all.clone() }), Ok(()));
        let mut last_repeats_first = all;
        last_repeats_first[MAX_FREE_FRAMES - 1] = last_repeats_first[0];
        assert_eq!(check(MemoryRequest::FreeFrames { frames: last_repeats_first }), bad);

        // RefBatch: non-empty, no zero delta; a frame may appear twice.
        assert_eq!(check(batch(&[])), bad);
        assert_eq!(check(batch(&[RefOp { frame: 1, delta: 0 }])), bad);
        assert_eq!(check(batch(&[RefOp::inc(1), RefOp { frame: 2, delta: 0 }])), bad);
        assert_eq!(check(batch(&[RefOp::inc(1), RefOp::dec(1)])), Ok(()));
        assert_eq!(check(batch(&[RefOp { frame: u32::MAX, delta: i8::MIN }, RefOp { frame: 0, delta: i8::MAX }])), Ok(()));

        for part in [AttachPart::Frames, AttachPart::Table] {
            assert_eq!(check(MemoryRequest::Attach { part }), Ok(()));
        }
        assert_eq!(check(MemoryRequest::Stats), Ok(()));

        // TryRemoveUnique names any frame: whether the frame is the
        // caller's is the server's question, not the codec's.
        for frame in [0, 0x1234, u32::MAX] {
            assert_eq!(check(MemoryRequest::TryRemoveUnique { frame }), Ok(()));
        }
        assert_eq!(check(MemoryRequest::Settle), Ok(()));

        // Materialize: non-empty; unlike FreeFrames a frame may appear twice
        // (every holder of a forked frame may name it).
        assert_eq!(check(materialize(&[])), bad);
        assert_eq!(check(materialize(&[0])), Ok(()));
        assert_eq!(check(materialize(&[7, 7])), Ok(()));
        assert_eq!(check(materialize(&[1, 2, 1, u32::MAX])), Ok(()));
        let same: FreeList = core::iter::repeat_n(u32::MAX, MAX_FREE_FRAMES).collect();
        assert_eq!(check(MemoryRequest::Materialize { frames: same }), Ok(()));

        // Swap names any strategy: whether it exists is the server's
        // question (InvalidArgument from the server, not the codec).
        for strategy in [0, 1, 8, u8::MAX] {
            assert_eq!(check(MemoryRequest::Swap { strategy }), Ok(()));
        }

        // Reclaim names a client record: never record 0, none past the last.
        assert_eq!(check(MemoryRequest::Reclaim { record: 0 }), bad);
        assert_eq!(check(MemoryRequest::Reclaim { record: client::RECORDS as u8 }), bad);
        assert_eq!(check(MemoryRequest::Reclaim { record: u8::MAX }), bad);
        assert_eq!(check(MemoryRequest::Reclaim { record: 2 }), Ok(()));
    }

    #[test]
    fn accept_answers_an_invalid_request_with_an_error() {
        let mut buf = [0u8; 16];
        let length = crate::encode(&MemoryRequest::AllocFrames { count: 0 }, &mut buf).unwrap();
        assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &buf[..length]), Err(MemoryReply::Error(ProtoError::InvalidArgument)));
        let length = crate::encode(&free(&[3, 3]), &mut buf).unwrap();
        assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &buf[..length]), Err(MemoryReply::Error(ProtoError::InvalidArgument)));
        let length = crate::encode(&materialize(&[]), &mut buf).unwrap();
        assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &buf[..length]), Err(MemoryReply::Error(ProtoError::InvalidArgument)));
        // The same frame twice is a double free, but not a double materialize.
        let length = crate::encode(&materialize(&[3, 3]), &mut buf).unwrap();
        assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &buf[..length]), Ok(materialize(&[3, 3])));
    }
}
