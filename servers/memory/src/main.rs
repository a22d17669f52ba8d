//! The memory server: it owns the frames of its PhysRange and the sharing
//! state of each (`counts`), hands frames to the process servers in batches
//! and takes them back (`pool`, refusing a frame that is not handed out).
//! For the strategies placed here it applies the process servers'
//! reference-count batches under its single thread, the lock of the
//! deferred manager; for those placed in the process servers it sets up
//! the region they count in. Frames whose count reaches zero go back to the
//! pool. Malformed or hostile requests get an error reply and the server
//! keeps serving.
//!
//! Start: `rdi` = the strategy's index (`abi::process::Strategy`), `rsi` =
//! the number of process servers (the strategy's cores).
#![no_std]
#![no_main]

extern crate alloc;

mod counts;
mod pool;
mod reclaim;
mod region;
mod swap;

use alloc::boxed::Box;
use alloc::vec::Vec;

use abi::cap::Rights;
use abi::msg::IpcBuffer;
use abi::process::{Placement, Strategy};
use proto::memory::{AttachPart, Layout, MemoryProtocol, MemoryReply, MemoryRequest, MemoryStats, client};
use proto::{ProtoError, accept, respond};
use rt::ipc::{self, Message, Received};
use rt::mem::{PAGE_SIZE, PageSource};
use rt::sys;

use counts::Counts;
use pool::Pool;
use refcount::Word;

rt::entry!(main);

/// Who sent a request: from the badge of its capability.
#[derive(Clone, Copy)]
struct Caller {
    /// The client's record in the pool.
    record: u8,
    /// A trusted system server (the process servers).
    trusted: bool,
    /// The supervisor (init), which may reclaim a dead client's frames.
    supervisor: bool,
}

/// Capability slots.
mod slot {
    /// The endpoint the server receives on (from the parent).
    pub const SERVICE: u64 = 1;
    /// The server's own address space (from the parent).
    pub const SPACE: u64 = 2;
    /// The frames it owns (from the parent).
    pub const FRAMES: u64 = 3;
    /// The counter table's frames, carved from `FRAMES`.
    pub const TABLE: u64 = 4;
    /// The same without the right to carve: what clients get.
    pub const TABLE_FOR_CLIENTS: u64 = 5;
    /// `FRAMES` without the right to carve: what clients get.
    pub const FRAMES_FOR_CLIENTS: u64 = 6;
}

/// Where the server maps its own heap and its counter table.
const HEAP_WINDOW: u64 = 0x0000_2000_0000_0000;
/// 4 MiB: the pool's bitmap, and a swap's list of every frame's count.
const HEAP_PAGES: u64 = 1024;

struct Server {
    pool: Pool,
    counts: Box<dyn Counts>,
    strategy: Strategy,
    /// Process servers: the strategy's cores.
    clients: u16,
    pages: PageSource,
    table: &'static [Word],
    region: region::Region,
    layout: Layout,
    batches: u64,
    ops_in_batches: u64,
}

fn main(args: rt::StartArgs) -> ! {
    let strategy = Strategy::from_index(args.0[0]).unwrap_or(Strategy::Deferred);
    let clients = args.0[1].clamp(1, u64::from(u16::MAX)) as u16;
    let Some(mut server) = Server::start(strategy, clients) else {
        rt::println!("memory: no usable frames; stopping");
        sys::thread_exit()
    };
    let _ = sys::trace_name(slot::SERVICE, "memory-server");
    rt::println!("memory: serving {} frames, strategy {}", server.pool.free_frames(), strategy.name());
    // SAFETY: the parent mapped this thread's IPC buffer there; only this
    // thread uses it.
    let buffer = unsafe { ipc::buffer_at(rt::process::IPC_BUFFER) };
    ipc::serve(slot::SERVICE, |message| server.serve(buffer, message))
}

impl Server {
    /// Takes the heap, the counter table and the strategy's region from the
    /// start of the range; the rest is the pool.
    fn start(strategy: Strategy, clients: u16) -> Option<Self> {
        let pages = PageSource::new(slot::SPACE, slot::FRAMES, HEAP_WINDOW);
        let total = sys::identify(slot::FRAMES).ok()?.size;
        let table_pages = (total * 8).div_ceil(PAGE_SIZE);
        if total <= HEAP_PAGES + table_pages + 1 || rt::heap::init(&pages, HEAP_PAGES).is_err() {
            return None;
        }
        let table_first = pages.frames(table_pages);
        let table_at = pages.window(table_pages);
        sys::phys_range_carve(slot::FRAMES, table_first, table_pages, slot::TABLE).ok()?;
        sys::cap_mint(slot::TABLE, slot::TABLE_FOR_CLIENTS, Rights::READ.union(Rights::WRITE), 0).ok()?;
        sys::cap_mint(slot::FRAMES, slot::FRAMES_FOR_CLIENTS, Rights::READ.union(Rights::WRITE), 0).ok()?;
        let rw = Rights::READ.union(Rights::WRITE);
        for first in (0..table_pages).step_by(abi::syscall::MAP_BATCH_MAX as usize) {
            let count = abi::syscall::MAP_BATCH_MAX.min(table_pages - first);
            sys::map_batch(slot::SPACE, slot::TABLE, first, table_at + first * PAGE_SIZE, count, rw).ok()?;
        }
        // SAFETY: the table's pages were just mapped writable there for
        // this server alone (no client maps them before it attaches). A
        // server that died before us may have used them: every entry
        // starts FREE (zero).
        unsafe { core::ptr::write_bytes(table_at as *mut u8, 0, (table_pages * PAGE_SIZE) as usize) };
        // SAFETY: the table's pages are mapped writable there for as long
        // as we live. Its words are atomics: the process servers write
        // some of them too.
        let table = unsafe { core::slice::from_raw_parts(table_at as *const Word, total as usize) };
        let region = region::Region::first(&pages, counts::region_words(strategy, total as u32, clients))?;
        let counts = counts::build(strategy, table, region.words(), clients).ok()?;
        let pool = Pool::new(pages.frames(0), total);
        let layout = Layout { pool_frames: total as u32, table_pages: table_pages as u32 };
        Some(Self { pool, counts, strategy, clients, pages, table, region, layout, batches: 0, ops_in_batches: 0 })
    }

    /// Handles one request; returns the reply message (its payload already
    /// in the IPC buffer).
    fn serve(&mut self, buffer: &mut IpcBuffer, message: Received) -> Message {
        let info = message.msg.info();
        let (reply, cap) = match proto::payload(&buffer.data, info.length()).map_err(MemoryReply::Error) {
            Ok(payload) => match (accept::<MemoryProtocol>(info.label(), payload), client::of(message.badge)) {
                (Ok(request), Some((record, trusted, supervisor))) => self.handle(Caller { record, trusted, supervisor }, request),
                (Ok(_), None) => (MemoryReply::Error(ProtoError::Denied), None),
                (Err(error_reply), _) => (error_reply, None),
            },
            Err(error_reply) => (error_reply, None),
        };
        if let Some(slot) = cap {
            buffer.send_cap = slot;
        }
        match respond::<MemoryProtocol>(&reply, &mut buffer.data) {
            Ok(out) => Message::with_payload(out.label, [0; 4], out.length, cap.is_some()),
            Err(_) => Message::default(),
        }
    }

    /// The reply to `request` from `caller`, and the capability to send
    /// with it. Only a trusted client may map the whole pool, the counter
    /// table or the region (docs/processes.md says what that exposes, and
    /// why it is accepted for the process servers) or swap the strategy;
    /// only the supervisor may reclaim. Every frame a request names is
    /// checked against the caller's record before any strategy code runs.
    fn handle(&mut self, caller: Caller, request: MemoryRequest) -> (MemoryReply, Option<u64>) {
        let denied = match request {
            MemoryRequest::Attach { .. } | MemoryRequest::Swap { .. } | MemoryRequest::AllocHeap { .. } => !caller.trusted,
            MemoryRequest::Reclaim { .. } => !caller.supervisor,
            _ => false,
        };
        if denied {
            return (MemoryReply::Error(ProtoError::Denied), None);
        }
        // Frames whose count reached zero, put back in the pool at the end.
        let mut zeroed = Vec::new();
        let mut release = |frame: u32| zeroed.push(frame);
        let holds = |pool: &Pool, frame: u32| pool.held_by(u64::from(frame), caller.record);
        let reply = match request {
            MemoryRequest::AllocFrames { count } => {
                let quota = if caller.trusted { u64::MAX } else { client::UNTRUSTED_QUOTA.saturating_sub(self.pool.held(caller.record)) };
                let runs = self.pool.alloc(count.min(u16::try_from(quota).unwrap_or(u16::MAX)), caller.record);
                for run in &runs {
                    (run.first..run.first + u64::from(run.count)).for_each(|frame| self.counts.hand_out(frame as u32));
                }
                (if runs.is_empty() { MemoryReply::Error(ProtoError::NoMemory) } else { MemoryReply::Frames { runs } }, None)
            }
            MemoryRequest::AllocHeap { count } => {
                // The frames stay FREE in the counts: no strategy sees
                // them, and no client request names them (`pool`).
                let room = client::heap_cap(u64::from(self.layout.pool_frames)).saturating_sub(self.pool.heap_of(caller.record));
                let run = u16::try_from(room).map_or(Some(count), |room| (room > 0).then_some(count.min(room)));
                match run.and_then(|count| self.pool.alloc_heap(count, caller.record)) {
                    Some(run) => (MemoryReply::Frames { runs: [run].into_iter().collect() }, None),
                    None => (MemoryReply::Error(ProtoError::NoMemory), None),
                }
            }
            MemoryRequest::FreeFrames { frames } => {
                // The protocol refuses a frame named twice in one request;
                // one handed back twice is free the second time; the
                // region's frames are the strategy's, not a client's.
                let returnable =
                    |frame: u32| holds(&self.pool, frame) && !self.region.contains(u64::from(frame)) && self.counts.may_return(frame);
                if frames.iter().all(|&frame| returnable(frame)) {
                    for &frame in &frames {
                        self.counts.free(frame, &mut release);
                    }
                    (MemoryReply::Ok, None)
                } else {
                    (MemoryReply::Error(ProtoError::NotOwned), None)
                }
            }
            MemoryRequest::RefBatch { ops } => {
                let applied = if ops.iter().all(|op| holds(&self.pool, op.frame)) {
                    self.counts.apply(&ops, &mut release)
                } else {
                    Err(ProtoError::NotOwned)
                };
                if applied.is_ok() {
                    self.batches += 1;
                    self.ops_in_batches += ops.len() as u64;
                }
                let freed = zeroed.len() as u16;
                (applied.map_or_else(MemoryReply::Error, |()| MemoryReply::RefBatchDone { freed }), None)
            }
            MemoryRequest::TryRemoveUnique { frame } => {
                let unique = if holds(&self.pool, frame) { self.counts.try_remove_unique(frame) } else { Err(ProtoError::NotOwned) };
                (unique.map_or_else(MemoryReply::Error, MemoryReply::Unique), None)
            }
            // Nothing is deferred here: the table strategies apply every
            // batch whole, and the others settle at the process servers'
            // own quiescent points.
            MemoryRequest::Settle => (MemoryReply::Ok, None),
            // Nothing counts as 2 implicitly any more: a fork of an owned
            // frame stores 2 itself.
            MemoryRequest::Materialize { .. } => (MemoryReply::Ok, None),
            MemoryRequest::Reclaim { record } => match self.reclaim(record) {
                Ok(taken) => (MemoryReply::RefBatchDone { freed: u16::try_from(taken).unwrap_or(u16::MAX) }, None),
                Err(error) => (MemoryReply::Error(error), None),
            },
            MemoryRequest::Swap { strategy } => {
                let swapped = Strategy::from_index(u64::from(strategy)).ok_or(ProtoError::InvalidArgument).and_then(|new| self.swap(new));
                (swapped.map_or_else(MemoryReply::Error, |()| MemoryReply::Ok), None)
            }
            MemoryRequest::Attach { part: AttachPart::Frames } => (MemoryReply::Attached(self.layout), Some(slot::FRAMES_FOR_CLIENTS)),
            MemoryRequest::Attach { part: AttachPart::Table } => (MemoryReply::Attached(self.layout), Some(slot::TABLE_FOR_CLIENTS)),
            MemoryRequest::Attach { part: AttachPart::Region } => match self.region.runs() {
                Some(runs) if self.strategy.placement() == Placement::Shared => (MemoryReply::Frames { runs }, None),
                _ => (MemoryReply::Error(ProtoError::InvalidArgument), None),
            },
            MemoryRequest::Stats => {
                let census = self.counts.census(self.layout.pool_frames, &|frame| self.pool.handed_out(u64::from(frame)));
                let stats = MemoryStats {
                    free: self.pool.free_frames(),
                    owned: census.owned,
                    shared: census.shared,
                    pending_ops: 0,
                    batches: self.batches,
                    ops_in_batches: self.ops_in_batches,
                    heap: self.pool.heap_frames(),
                };
                (MemoryReply::Stats(stats), None)
            }
        };
        for frame in zeroed {
            self.pool.release(u64::from(frame));
        }
        reply
    }
}
