//! One server's link to the memory server: its IPC buffer, and the free
//! frames it keeps at hand (its stock), refilled and given back in batches.
//! It knows nothing of counts: `counts` decides when a frame is free.

use alloc::vec::Vec;

use abi::msg::IpcBuffer;
use proto::memory::{FreeList, MAX_FREE_FRAMES, MemoryReply, MemoryRequest, RefOps};
use proto::{MemoryProtocol, ProtoError};
use rt::ipc::{self, Message};

use crate::slot;
use crate::system::{self, Counters};

/// Frames asked for per refill.
const REFILL: u16 = 256;
/// Frames kept at hand at most; beyond, half go back.
const KEEP_MAX: usize = 1024;

pub struct Link {
    /// Our index among the servers: the strategy's `core`. (The memory
    /// server knows every server thread by the badge of `slot::MEMORY`.)
    pub client: u16,
    buffer: &'static mut IpcBuffer,
    /// Free frames at hand.
    stock: Vec<u32>,
}

impl Link {
    pub fn new(client: u16, buffer: &'static mut IpcBuffer) -> Self {
        Self { client, buffer, stock: Vec::new() }
    }

    /// Our IPC buffer (replies are encoded there too).
    pub fn buffer(&mut self) -> &mut IpcBuffer {
        self.buffer
    }

    /// Sends a request of the memory server's protocol.
    pub fn call(&mut self, request: &MemoryRequest) -> Result<MemoryReply, ProtoError> {
        rt::client::call::<MemoryProtocol>(slot::MEMORY, self.buffer, request)
    }

    /// A free frame from the stock (not zeroed), refilled when empty.
    pub fn take(&mut self) -> Result<u32, ProtoError> {
        if let Some(frame) = self.stock.pop() {
            return Ok(frame);
        }
        Counters::add(&system::get().stats.frame_messages, 1);
        match self.call(&MemoryRequest::AllocFrames { count: REFILL })? {
            MemoryReply::Frames { runs } => {
                for run in runs.iter().rev() {
                    self.stock.extend((run.first..run.first + u64::from(run.count)).rev().map(|frame| frame as u32));
                }
                self.stock.pop().ok_or(ProtoError::NoMemory)
            }
            _ => Err(ProtoError::Malformed),
        }
    }

    /// A free frame from the stock, without a message when it is empty.
    pub fn take_at_hand(&mut self) -> Option<u32> {
        self.stock.pop()
    }

    /// Takes a frame no reference holds any more into the stock.
    pub fn put(&mut self, frame: u32) {
        self.stock.push(frame);
        if self.stock.len() > KEEP_MAX {
            self.give_back(KEEP_MAX / 2);
        }
    }

    /// Returns all but `keep` frames at hand to the memory server.
    pub fn give_back(&mut self, keep: usize) {
        while self.stock.len() > keep {
            let take = (self.stock.len() - keep).min(MAX_FREE_FRAMES);
            let frames: FreeList = self.stock.drain(self.stock.len() - take..).collect();
            Counters::add(&system::get().stats.frame_messages, 1);
            if self.call(&MemoryRequest::FreeFrames { frames }) != Ok(MemoryReply::Ok) {
                rt::println!("process: the memory server refused frames back");
            }
        }
    }

    /// Sends a batch of counter changes; `wait`: as a call, else as a
    /// non-blocking send, which fails (and sends nothing) when the memory
    /// server is busy: the deferred manager's try-lock. Whether it went.
    pub fn ref_batch(&mut self, ops: RefOps, wait: bool) -> bool {
        let items = ops.len() as u64;
        let request = MemoryRequest::RefBatch { ops };
        let sent = if wait {
            if let Err(error) = rt::client::call_counted::<MemoryProtocol>(slot::MEMORY, self.buffer, &request, items) {
                rt::println!("process: a reference batch was refused: {error}");
            }
            true
        } else {
            proto::request::<MemoryProtocol>(&request, &mut self.buffer.data)
                .is_ok_and(|out| ipc::nb_send(slot::MEMORY, Message::with_payload(out.label, [items, 0, 0, 0], out.length, false)).is_ok())
        };
        if sent {
            let stats = &system::get().stats;
            Counters::add(&stats.ref_messages, 1);
            Counters::add(&stats.ref_ops, items);
        }
        sent
    }
}
