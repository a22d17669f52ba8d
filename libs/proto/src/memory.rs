//! The memory server protocol: frames handed out and taken back in runs, and
//! the reference-count batches of the deferred strategy. It owns the message
//! types, their bounds and their validation; the counting itself lives in the
//! memory server and `libs/refcount`.
//!
//! # Ordering rule of the deferred strategy
//!
//! A decrement is never committed before the increment it matches. Clients
//! guarantee it across batches: a process server commits a fork's increments
//! (and its [`MemoryRequest::MakeShared`]) before the fork returns, so any
//! later decrement of those frames travels in the same batch or a later one.
//! The server guarantees it within a batch: it applies all increments of a
//! [`MemoryRequest::RefBatch`] before any of its decrements, each group in the
//! order sent ([`commit_order`]). So a batch that holds both the `+1` and the
//! `-1` of a frame never drops it to zero in between.

use abi::msg::IPC_BUFFER_DATA;
use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::codec::size;
use crate::{MEMORY_PROTOCOL, ProtoError, Protocol};

/// Runs per `AllocFrames` reply or `FreeFrames` request.
pub const MAX_RUNS: usize = 64;
/// Operations per `RefBatch`.
pub const MAX_REF_OPS: usize = 90;
/// Frames per `MakeShared`.
pub const MAX_SHARE_FRAMES: usize = 96;

/// Consecutive physical frames: frame numbers `first .. first + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FrameRun {
    /// Frame number (physical address / 4096) of the first frame.
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

/// A change of one shared frame's counter by `delta` (never 0). Positive
/// deltas are increments (fork of a shared page), negative ones decrements
/// (copy-on-write copy, unmap, exit); a client may merge several of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefOp {
    pub frame: u64,
    pub delta: i8,
}

impl RefOp {
    pub const fn inc(frame: u64) -> Self {
        Self { frame, delta: 1 }
    }

    pub const fn dec(frame: u64) -> Self {
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
pub type ShareFrames = Vec<u64, MAX_SHARE_FRAMES>;

/// Requests to the memory server (sent by process servers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "no heap in servers: a message is its bounded inline capacity, and lives in one buffer at a time"
)]
pub enum MemoryRequest {
    /// Up to `count` (at least 1) new owned frames. → [`MemoryReply::Frames`]
    /// with at least one frame and at most `count`, in at most [`MAX_RUNS`]
    /// runs; a client that got fewer asks again. [`ProtoError::NoMemory`]
    /// when no frame is free.
    AllocFrames { count: u16 },
    /// Gives owned frames back to the pool. → [`MemoryReply::Ok`]
    FreeFrames { runs: Runs },
    /// Commits the counter changes a client (`client`: the process server's
    /// index) has queued; see the module's ordering rule.
    /// → [`MemoryReply::RefBatchDone`] with the number of frames freed.
    RefBatch { client: u16, ops: RefOps },
    /// Turns owned frames into shared ones with count 2: the first fork of a
    /// page. The counter table is read-only to process servers, so this write
    /// goes through the server; the fork sends it before it returns, like its
    /// increments. → [`MemoryReply::Ok`]
    MakeShared { frames: ShareFrames },
    /// `try_remove_unique` under the server's lock: if the counter is 1 the
    /// frame becomes owned again. Process servers normally read the shared
    /// table without IPC; this is the path for strategies whose counters the
    /// reader cannot see. → [`MemoryReply::Unique`]
    TryRemoveUnique { frame: u64 },
    /// → [`MemoryReply::Stats`]
    Stats,
}

/// The memory server's counters, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Frames in the pool.
    pub free: u64,
    /// Frames handed out and not shared.
    pub owned: u64,
    /// Frames with a counter.
    pub shared: u64,
    /// Counter changes queued and not applied yet (strategies that defer on
    /// the server side; 0 for the others).
    pub pending_ops: u64,
    /// `RefBatch`es applied.
    pub batches: u64,
    /// Operations in those batches (`ops_in_batches / batches` is the mean
    /// batch size).
    pub ops_in_batches: u64,
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
    Unique(bool),
    Stats(MemoryStats),
    Error(ProtoError),
}

/// The memory server protocol, for the helpers of [`crate::protocol`].
pub struct MemoryProtocol;

const RUN_LEN: usize = size::U64 + size::U16;
const REF_OP_LEN: usize = size::U64 + size::BYTE;

impl Protocol for MemoryProtocol {
    const LABEL: u64 = MEMORY_PROTOCOL;
    const REQUEST_KINDS: u32 = 6;
    const REPLY_KINDS: u32 = 6;
    const MAX_REQUEST_LEN: usize = size::TAG
        + size::max(
            size::max(size::U16, size::seq(MAX_RUNS, RUN_LEN)),
            size::max(
                size::U16 + size::seq(MAX_REF_OPS, REF_OP_LEN),
                size::max(size::seq(MAX_SHARE_FRAMES, size::U64), size::U64),
            ),
        );
    const MAX_REPLY_LEN: usize = size::TAG
        + size::max(
            size::max(size::seq(MAX_RUNS, RUN_LEN), size::U16),
            size::max(size::BYTE, size::max(6 * size::U64, size::TAG)),
        );
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
            MemoryRequest::AllocFrames { count } => *count > 0,
            MemoryRequest::FreeFrames { runs } => valid_runs(runs),
            MemoryRequest::RefBatch { ops, .. } => {
                !ops.is_empty() && ops.iter().all(|op| op.delta != 0)
            }
            MemoryRequest::MakeShared { frames } => {
                !frames.is_empty()
                    && frames
                        .iter()
                        .enumerate()
                        .all(|(i, f)| !frames[..i].contains(f))
            }
            MemoryRequest::TryRemoveUnique { .. } | MemoryRequest::Stats => true,
        };
        if valid {
            Ok(())
        } else {
            Err(ProtoError::InvalidArgument)
        }
    }
}

/// Non-empty, no empty or overflowing run, no frame twice (a double free
/// within one message).
fn valid_runs(runs: &[FrameRun]) -> bool {
    !runs.is_empty()
        && runs.iter().enumerate().all(|(i, run)| {
            run.count > 0
                && run.end().is_some()
                && !runs[..i].iter().any(|earlier| earlier.overlaps(run))
        })
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

    fn runs(list: &[(u64, u16)]) -> Runs {
        list.iter()
            .map(|&(first, count)| FrameRun::new(first, count))
            .collect()
    }

    fn check(request: MemoryRequest) -> Result<(), ProtoError> {
        MemoryProtocol::validate(&request)
    }

    #[test]
    fn commit_order_puts_increments_first() {
        let ops = [
            RefOp::dec(1),
            RefOp::inc(2),
            RefOp {
                frame: 3,
                delta: -4,
            },
            RefOp { frame: 1, delta: 2 },
        ];
        let order: std::vec::Vec<_> = commit_order(&ops).copied().collect();
        assert_eq!(
            order,
            [
                RefOp::inc(2),
                RefOp { frame: 1, delta: 2 },
                RefOp::dec(1),
                RefOp {
                    frame: 3,
                    delta: -4
                }
            ]
        );
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
    fn validation_rejects_nonsense() {
        let bad = Err(ProtoError::InvalidArgument);
        assert_eq!(check(MemoryRequest::AllocFrames { count: 0 }), bad);
        assert_eq!(check(MemoryRequest::AllocFrames { count: 1 }), Ok(()));
        assert_eq!(check(MemoryRequest::FreeFrames { runs: runs(&[]) }), bad);
        assert_eq!(
            check(MemoryRequest::FreeFrames {
                runs: runs(&[(5, 0)])
            }),
            bad
        );
        assert_eq!(
            check(MemoryRequest::FreeFrames {
                runs: runs(&[(u64::MAX - 1, 2)])
            }),
            bad
        );
        assert_eq!(
            check(MemoryRequest::FreeFrames {
                runs: runs(&[(0, 4), (3, 1)])
            }),
            bad
        );
        assert_eq!(
            check(MemoryRequest::FreeFrames {
                runs: runs(&[(0, 4), (4, 1)])
            }),
            Ok(())
        );
        let ops = |list: &[RefOp]| list.iter().copied().collect::<RefOps>();
        assert_eq!(
            check(MemoryRequest::RefBatch {
                client: 0,
                ops: ops(&[])
            }),
            bad
        );
        assert_eq!(
            check(MemoryRequest::RefBatch {
                client: 0,
                ops: ops(&[RefOp { frame: 1, delta: 0 }])
            }),
            bad
        );
        assert_eq!(
            check(MemoryRequest::RefBatch {
                client: 0,
                ops: ops(&[RefOp::inc(1), RefOp::dec(1)])
            }),
            Ok(())
        );
        let frames = |list: &[u64]| list.iter().copied().collect::<ShareFrames>();
        assert_eq!(
            check(MemoryRequest::MakeShared {
                frames: frames(&[])
            }),
            bad
        );
        assert_eq!(
            check(MemoryRequest::MakeShared {
                frames: frames(&[1, 2, 1])
            }),
            bad
        );
        assert_eq!(
            check(MemoryRequest::MakeShared {
                frames: frames(&[1, 2])
            }),
            Ok(())
        );
    }

    #[test]
    fn accept_answers_an_invalid_request_with_an_error() {
        let mut buf = [0u8; 16];
        let length = crate::encode(&MemoryRequest::AllocFrames { count: 0 }, &mut buf).unwrap();
        assert_eq!(
            accept::<MemoryProtocol>(MEMORY_PROTOCOL, &buf[..length]),
            Err(MemoryReply::Error(ProtoError::InvalidArgument))
        );
    }
}
