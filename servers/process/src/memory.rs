//! One server's link to the memory server: the frames it keeps at hand
//! (refilled and returned in batches) and its reference-count buffers.
//!
//! - **deferred** (FTL OS): frames a process holds alone are uncounted
//!   (`OWNED` in the table). Increments are queued during a fork and
//!   committed before it returns ([`MemClient::commit`]); decrements wait
//!   in a buffer flushed when it fills, at unmap and exit, and when the
//!   server is idle.
//! - **atomic** and the other strategies: every frame is counted from the
//!   moment it is handed out
//!   (at 1), and every change reaches the memory server before the operation that
//!   made it returns: a fork's increments and an exit's decrements in
//!   batches, a copy-on-write copy's decrement at once. Dropping a frame
//!   is a decrement even if it was never shared; the memory server frees
//!   it at zero.
//!
//! Every batch goes out increments first, so a decrement never overtakes
//! its increment (`proto::memory`'s ordering rule).

use alloc::vec::Vec;

use abi::msg::IpcBuffer;
use abi::process::Strategy;
use proto::memory::{FreeList, MAX_FREE_FRAMES, MAX_REF_OPS, MemoryReply, MemoryRequest, RefOp, RefOps, table};
use proto::{MemoryProtocol, ProtoError};

use crate::slot;
use crate::system::{self, Counters};

/// Frames asked for per refill.
const REFILL: u16 = 256;
/// Frames kept at hand at most; beyond, half go back.
const KEEP_MAX: usize = 1024;

pub struct MemClient {
    client: u16,
    buffer: &'static mut IpcBuffer,
    strategy: Strategy,
    /// Free frames at hand.
    stash: Vec<u32>,
    incs: Vec<u32>,
    decs: Vec<u32>,
}

impl MemClient {
    pub fn new(client: u16, buffer: &'static mut IpcBuffer) -> Self {
        let strategy = system::get().strategy();
        Self { client, buffer, strategy, stash: Vec::new(), incs: Vec::new(), decs: Vec::new() }
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// After a swap: the strategy now in force.
    pub fn follow_swap(&mut self) {
        self.strategy = system::get().strategy();
    }


    /// Our IPC buffer (replies are encoded there too).
    pub fn buffer(&mut self) -> &mut IpcBuffer {
        self.buffer
    }

    /// Sends a request of the memory server's protocol.
    pub fn call(&mut self, request: &MemoryRequest) -> Result<MemoryReply, ProtoError> {
        rt::client::call::<MemoryProtocol>(slot::MEMORY, self.buffer, request)
    }

    /// A free frame (not zeroed).
    pub fn alloc(&mut self) -> Result<u32, ProtoError> {
        if let Some(frame) = self.stash.pop() {
            return Ok(frame);
        }
        Counters::add(&system::get().stats.frame_messages, 1);
        match self.call(&MemoryRequest::AllocFrames { client: self.client, count: REFILL })? {
            MemoryReply::Frames { runs } => {
                for run in runs.iter().rev() {
                    self.stash.extend((run.first..run.first + u64::from(run.count)).rev().map(|frame| frame as u32));
                }
                self.stash.pop().ok_or(ProtoError::NoMemory)
            }
            _ => Err(ProtoError::Malformed),
        }
    }

    /// Takes back a frame no process holds any more (one that was never
    /// shared, or one found unique).
    pub fn free(&mut self, frame: u32) {
        self.stash.push(frame);
        if self.stash.len() > KEEP_MAX {
            self.give_back(KEEP_MAX / 2);
        }
    }

    /// Returns all but `keep` frames at hand to the memory server.
    fn give_back(&mut self, keep: usize) {
        while self.stash.len() > keep {
            let take = (self.stash.len() - keep).min(MAX_FREE_FRAMES);
            let frames: FreeList = self.stash.drain(self.stash.len() - take..).collect();
            Counters::add(&system::get().stats.frame_messages, 1);
            if self.call(&MemoryRequest::FreeFrames { client: self.client, frames }) != Ok(MemoryReply::Ok) {
                rt::println!("process: the memory server refused frames back");
            }
        }
    }

    /// One more reference to a counted frame (a fork).
    pub fn inc(&mut self, frame: u32) {
        self.incs.push(frame);
        if self.incs.len() == MAX_REF_OPS {
            self.commit();
        }
    }

    /// Drops a reference to a counted frame: buffered by the deferred
    /// strategy, applied at once by the others.
    pub fn dec(&mut self, frame: u32) {
        self.decs.push(frame);
        if !self.strategy.defers() || self.incs.len() + self.decs.len() >= MAX_REF_OPS {
            self.flush();
        }
    }

    /// Whether our reference to `frame`, a shared frame, is the only one
    /// (`try_remove_unique`). Deferred and atomic read the counter table:
    /// the deferred table counts buffered decrements too, so ours are taken
    /// off, and `OWNED` on a shared frame is 2. The other strategies ask the
    /// memory server, which runs them.
    pub fn try_remove_unique(&mut self, frame: u32) -> bool {
        let word = system::get().count_of(frame);
        match self.strategy {
            Strategy::Deferred => {
                let count = if word == table::OWNED { 2 } else { word };
                count.saturating_sub(self.pending_decs(frame)) == 1
            }
            Strategy::Atomic => word == 1,
            _ => {
                Counters::add(&system::get().stats.unique_messages, 1);
                self.call(&MemoryRequest::TryRemoveUnique { client: self.client, frame }) == Ok(MemoryReply::Unique(true))
            }
        }
    }

    /// Drops references in bulk (an exit, an unmap): batched by every
    /// strategy, applied before the operation returns.
    pub fn dec_all(&mut self, frames: impl Iterator<Item = u32>) {
        self.decs.extend(frames);
        self.flush();
    }

    /// Sends the queued increments (a fork's, before it returns).
    pub fn commit(&mut self) {
        while !self.incs.is_empty() {
            let take = self.incs.len().min(MAX_REF_OPS);
            let ops: RefOps = self.incs.drain(..take).map(RefOp::inc).collect();
            self.send(ops);
        }
    }

    /// Sends everything queued: increments first, then decrements.
    pub fn flush(&mut self) {
        self.commit();
        while !self.decs.is_empty() {
            let take = self.decs.len().min(MAX_REF_OPS);
            let ops: RefOps = self.decs.drain(..take).map(RefOp::dec).collect();
            self.send(ops);
        }
    }

    fn send(&mut self, ops: RefOps) {
        let stats = &system::get().stats;
        Counters::add(&stats.ref_messages, 1);
        Counters::add(&stats.ref_ops, ops.len() as u64);
        let items = ops.len() as u64;
        let request = MemoryRequest::RefBatch { client: self.client, ops };
        if let Err(error) = rt::client::call_counted::<MemoryProtocol>(slot::MEMORY, self.buffer, &request, items) {
            rt::println!("process: a reference batch was refused: {error}");
        }
    }

    /// Whether decrements wait in the buffer (work for an idle moment).
    pub fn has_pending(&self) -> bool {
        !self.decs.is_empty() || !self.incs.is_empty()
    }

    /// Our own buffered decrements of `frame`.
    fn pending_decs(&self, frame: u32) -> u64 {
        self.decs.iter().filter(|&&f| f == frame).count() as u64
    }

    /// Flushes every buffer and returns every frame at hand.
    pub fn quiesce(&mut self) {
        self.flush();
        self.give_back(0);
    }
}
