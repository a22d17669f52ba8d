//! Hostile clients of a memory server: a victim and an attacker, each
//! known to the server by the badge of its own capability, neither trusted.
//! The attacker frees, counts and claims the victim's frames, frames out
//! of the pool, free frames and the server's own, over-decrements its own
//! frames, frees twice, asks for what only trusted servers may, and sends
//! garbage. Every request must be refused with the right error and change
//! nothing: afterwards the victim gets back every frame it was handed, and
//! the pool counts what it counted before. The same test runs against a
//! memory server of its own (`memory_server`) and the live one under every
//! strategy (`memory_hostile`).

use alloc::vec::Vec;

use abi::msg::IpcBuffer;
use proto::memory::{AttachPart, FreeList, MAX_FREE_FRAMES, MAX_REF_OPS, RefOps};
use proto::{MemoryProtocol, MemoryReply, MemoryRequest, ProtoError, RefOp};
use rt::ipc::{self, Message};
use rt::sys::Slot;

use super::{TestResult, check};

/// A memory server's client capability and init's IPC buffer.
pub struct Client<'a> {
    pub ep: Slot,
    pub buffer: &'a mut IpcBuffer,
}

impl Client<'_> {
    pub fn call(&mut self, request: &MemoryRequest) -> Result<MemoryReply, ProtoError> {
        let out = proto::request::<MemoryProtocol>(request, &mut self.buffer.data)?;
        self.raw_call(out.label, out.length)
    }

    pub fn raw_call(&mut self, label: u64, length: usize) -> Result<MemoryReply, ProtoError> {
        let reply = ipc::call(self.ep, Message::with_payload(label, [0; 4], length, false)).map_err(|_| ProtoError::Malformed)?;
        let payload = proto::payload(&self.buffer.data, reply.info().length())?;
        proto::read_reply::<MemoryProtocol>(reply.label(), payload)
    }

    pub fn free_frames(&mut self) -> Result<u64, &'static str> {
        match self.call(&MemoryRequest::Stats) {
            Ok(MemoryReply::Stats(stats)) => Ok(stats.free),
            _ => Err("no stats"),
        }
    }

    /// `count` frames, one by one as numbers.
    pub fn alloc(&mut self, count: u16) -> Result<Vec<u32>, &'static str> {
        match self.call(&MemoryRequest::AllocFrames { count }) {
            Ok(MemoryReply::Frames { runs }) => {
                let frames: Vec<u32> = runs.iter().flat_map(|run| run.first..run.first + u64::from(run.count)).map(|f| f as u32).collect();
                check(frames.len() == usize::from(count), "a short batch of frames")?;
                Ok(frames)
            }
            _ => Err("AllocFrames failed"),
        }
    }

    pub fn free(&mut self, frames: &[u32]) -> Result<MemoryReply, ProtoError> {
        self.call(&MemoryRequest::FreeFrames { frames: frames.iter().copied().collect() })
    }

    pub fn batch(&mut self, ops: &[RefOp]) -> Result<MemoryReply, ProtoError> {
        self.call(&MemoryRequest::RefBatch { ops: ops.iter().copied().collect::<RefOps>() })
    }

    fn expect(&mut self, request: &MemoryRequest, error: ProtoError, what: &'static str) -> TestResult {
        let reply = self.call(request);
        if reply != Err(error) {
            rt::println!("init: {request:?} answered {reply:?}, not {error:?}");
            return Err(what);
        }
        Ok(())
    }
}

/// Where the attack happens.
pub struct Target {
    /// The endpoint's unbadged capability: no client at all.
    pub original: Slot,
    /// Two capabilities of distinct untrusted badges.
    pub victim: Slot,
    pub attacker: Slot,
    /// Frames of the pool (its frame numbers are `0..pool_frames`).
    pub pool_frames: u32,
    /// The strategy counts in the process servers: `RefBatch` and
    /// `TryRemoveUnique` are refused for every frame.
    pub shared_placement: bool,
    /// Also try every frame of the pool (a live server: the process
    /// servers' frames among them).
    pub sweep: bool,
}

pub fn attack(target: &Target, buffer: &mut IpcBuffer) -> TestResult {
    let mut nobody = Client { ep: target.original, buffer };
    nobody.expect(&MemoryRequest::Stats, ProtoError::Denied, "a request with no badge was served")?;
    nobody.expect(&MemoryRequest::AllocFrames { count: 1 }, ProtoError::Denied, "an unbadged client got frames")?;
    let buffer = nobody.buffer;
    let mut victim = Client { ep: target.victim, buffer };
    let free = victim.free_frames()?;
    let held = victim.alloc(8)?;
    let buffer = victim.buffer;
    let mut attacker = Client { ep: target.attacker, buffer };
    let own = attacker.alloc(4)?;
    check(own.iter().all(|frame| !held.contains(frame)), "two clients were handed the same frame")?;

    foreign_frames(&mut attacker, &held, own[0])?;
    // Frames never handed to the attacker: past the pool, at its end, the
    // server's own (frame 0 holds its heap), and one it gave back.
    attacker.free(&own[3..4]).map_err(|_| "a client could not give back its own frame")?;
    for frame in [u32::MAX, target.pool_frames, 0, own[3]] {
        foreign_frames(&mut attacker, &[frame], own[0])?;
    }
    over_decrements(&mut attacker, own[1], target.shared_placement)?;
    attacker.expect(&MemoryRequest::FreeFrames { frames: [own[1]].into_iter().collect() }, ProtoError::NotOwned, "a repeated free")?;
    for part in [AttachPart::Frames, AttachPart::Table, AttachPart::Region] {
        attacker.expect(&MemoryRequest::Attach { part }, ProtoError::Denied, "an untrusted client attached the pool")?;
    }
    attacker.expect(&MemoryRequest::Swap { strategy: 0 }, ProtoError::Denied, "an untrusted client swapped the strategy")?;
    garbage(&mut attacker)?;
    if target.sweep {
        sweep(&mut attacker, target.pool_frames, &own[..3])?;
    }
    check(attacker.free(&[own[0], own[2]]) == Ok(MemoryReply::Ok), "the attacker's own frames did not go back")?;
    let buffer = attacker.buffer;
    let mut victim = Client { ep: target.victim, buffer };
    check(victim.free(&held) == Ok(MemoryReply::Ok), "the victim lost frames to the attacker")?;
    check(victim.free_frames()? == free, "the attacks changed the pool")
}

/// Frees, counts and claims of `frames`, which the attacker does not hold,
/// alone and next to its own frame `own`: all refused, nothing changed.
fn foreign_frames(attacker: &mut Client, frames: &[u32], own: u32) -> TestResult {
    for &frame in frames {
        let not_owned = ProtoError::NotOwned;
        attacker.expect(&MemoryRequest::FreeFrames { frames: [frame].into_iter().collect() }, not_owned, "a foreign frame was freed")?;
        let pair = if frame == own { [frame].into_iter().collect() } else { [own, frame].into_iter().collect::<FreeList>() };
        attacker.expect(&MemoryRequest::FreeFrames { frames: pair }, not_owned, "a foreign frame was freed beside an own one")?;
        for delta in [-1, 1, i8::MIN, i8::MAX] {
            let ops = [RefOp { frame, delta }].into_iter().collect();
            attacker.expect(&MemoryRequest::RefBatch { ops }, not_owned, "a foreign frame was counted")?;
        }
        attacker.expect(&MemoryRequest::TryRemoveUnique { frame }, not_owned, "a foreign frame was claimed")?;
    }
    Ok(())
}

/// Batches that would take `own`'s count below zero, alone or behind an
/// increment, are refused whole; a batch that reaches zero frees it.
fn over_decrements(attacker: &mut Client, own: u32, shared_placement: bool) -> TestResult {
    let refused = ProtoError::InvalidArgument;
    for ops in
        [&[RefOp { frame: own, delta: -2 }][..], &[RefOp::dec(own), RefOp::dec(own)], &[RefOp::inc(own), RefOp { frame: own, delta: -3 }]]
    {
        check(attacker.batch(ops) == Err(refused), "an over-decrement was applied")?;
    }
    if shared_placement {
        check(attacker.batch(&[RefOp::dec(own)]) == Err(refused), "a batch was applied under a shared strategy")?;
        attacker.expect(&MemoryRequest::TryRemoveUnique { frame: own }, refused, "TryRemoveUnique under a shared strategy")?;
        return check(attacker.free(&[own]) == Ok(MemoryReply::Ok), "the attacker's own frame did not go back");
    }
    check(attacker.call(&MemoryRequest::TryRemoveUnique { frame: own }) == Ok(MemoryReply::Unique(true)), "an own frame is not unique")?;
    // Refused batches changed nothing: the count is still 1, so +1 -1 -1
    // frees it.
    let freed = attacker.batch(&[RefOp::dec(own), RefOp::inc(own), RefOp::dec(own)]);
    check(freed == Ok(MemoryReply::RefBatchDone { freed: 1 }), "a count left at 1 by refused batches did not reach zero")
}

/// Garbage, a wrong label and an oversized length: errors, and the server
/// keeps serving.
fn garbage(attacker: &mut Client) -> TestResult {
    attacker.buffer.data[..8].fill(0xFF);
    check(attacker.raw_call(proto::MEMORY_PROTOCOL, 8).is_err(), "garbage was accepted")?;
    check(attacker.raw_call(7, 0) == Err(ProtoError::WrongProtocol), "a wrong label was accepted")?;
    check(attacker.raw_call(proto::MEMORY_PROTOCOL, 4000).is_err(), "an oversized payload was accepted")?;
    check(attacker.free_frames().is_ok(), "the server stopped serving after garbage")
}

/// Every frame of the pool but the attacker's own: freed, decremented
/// and incremented, in full batches; all refused.
fn sweep(attacker: &mut Client, pool_frames: u32, own: &[u32]) -> TestResult {
    let others: Vec<u32> = (0..pool_frames).filter(|frame| !own.contains(frame)).collect();
    for chunk in others.chunks(MAX_FREE_FRAMES) {
        check(attacker.free(chunk) == Err(ProtoError::NotOwned), "a sweep freed a frame not the attacker's")?;
    }
    for chunk in others.chunks(MAX_REF_OPS) {
        for delta in [-1, 1] {
            let ops: Vec<RefOp> = chunk.iter().map(|&frame| RefOp { frame, delta }).collect();
            check(attacker.batch(&ops) == Err(ProtoError::NotOwned), "a sweep counted a frame not the attacker's")?;
        }
    }
    Ok(())
}
