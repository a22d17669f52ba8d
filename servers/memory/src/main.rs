//! The memory server: it owns a PhysRange of user frames and hands them out
//! in batches over IPC (`libs/proto`'s memory protocol). A batch is one
//! contiguous run, delivered with a PhysRange capability carved for it, so
//! the client can map exactly those frames; freeing the run revokes that
//! capability. Malformed or hostile requests get an error reply and the
//! server keeps serving.
//!
//! This first version serves frame batches and statistics. The sharing
//! counts and the refcount strategies (RefBatch, MakeShared,
//! TryRemoveUnique) arrive with the process servers; until then those
//! requests are answered with `UnknownRequest`.
#![no_std]
#![no_main]

extern crate alloc;

mod pool;

use abi::msg::IpcBuffer;
use proto::memory::{FrameRun, MemoryProtocol, MemoryReply, MemoryRequest, MemoryStats};
use proto::{ProtoError, accept, respond};
use rt::ipc::{self, Message, Received};
use rt::mem::PageSource;

use pool::Pool;

rt::entry!(main);

/// Capability slots the parent fills before the server starts.
mod slot {
    /// The endpoint the server receives on.
    pub const SERVICE: u64 = 1;
    /// The server's own address space.
    pub const SPACE: u64 = 2;
    /// The frames it owns.
    pub const FRAMES: u64 = 3;
    /// First slot for carved ranges.
    pub const FIRST_CARVE: u64 = 16;
}

/// Where the server maps its own heap.
const HEAP_WINDOW: u64 = 0x0000_2000_0000_0000;
const HEAP_PAGES: u64 = 64;

fn main(_: rt::StartArgs) -> ! {
    let pages = PageSource::new(slot::SPACE, slot::FRAMES, HEAP_WINDOW);
    let total = rt::sys::identify(slot::FRAMES).map(|id| id.size).unwrap_or(0);
    if total <= HEAP_PAGES || rt::heap::init(&pages, HEAP_PAGES).is_err() {
        rt::println!("memory: no usable frames ({total}); stopping");
        rt::sys::thread_exit();
    }
    // Frames below `pages.frames(0)` are the server's own heap.
    let mut pool = Pool::new(pages.frames(0), total, slot::FIRST_CARVE);
    rt::println!("memory: serving {} frames", pool.free_frames());
    // SAFETY: the parent mapped this thread's IPC buffer there; only this
    // thread uses it.
    let buffer = unsafe { ipc::buffer_at(rt::process::IPC_BUFFER) };
    ipc::serve(slot::SERVICE, |message| serve(&mut pool, buffer, message))
}

/// Handles one request; returns the reply message (its payload already in
/// the IPC buffer).
fn serve(pool: &mut Pool, buffer: &mut IpcBuffer, message: Received) -> Message {
    let info = message.msg.info();
    let reply = match proto::payload(&buffer.data, info.length()).map_err(MemoryReply::Error) {
        Ok(payload) => match accept::<MemoryProtocol>(info.label(), payload) {
            Ok(request) => handle(pool, request),
            Err(error_reply) => Handled::plain(error_reply),
        },
        Err(error_reply) => Handled::plain(error_reply),
    };
    if let Some(slot) = reply.cap {
        buffer.send_cap = slot;
    }
    match respond::<MemoryProtocol>(&reply.reply, &mut buffer.data) {
        Ok(out) => Message::with_payload(out.label, [0; 4], out.length, reply.cap.is_some()),
        Err(_) => Message::default(),
    }
}

/// A reply, and the capability to send with it.
struct Handled {
    reply: MemoryReply,
    cap: Option<u64>,
}

impl Handled {
    fn plain(reply: MemoryReply) -> Self {
        Self { reply, cap: None }
    }
}

fn handle(pool: &mut Pool, request: MemoryRequest) -> Handled {
    match request {
        MemoryRequest::AllocFrames { count } => match pool.alloc(count) {
            Ok((run, slot)) => {
                let mut runs = proto::memory::Runs::new();
                let _ = runs.push(run);
                Handled { reply: MemoryReply::Frames { runs }, cap: Some(slot) }
            }
            Err(error) => Handled::plain(MemoryReply::Error(error)),
        },
        MemoryRequest::FreeFrames { runs } => {
            let freed = runs.iter().try_for_each(|run: &FrameRun| pool.release(*run));
            Handled::plain(freed.map_or_else(MemoryReply::Error, |()| MemoryReply::Ok))
        }
        MemoryRequest::Stats => {
            let stats = MemoryStats { free: pool.free_frames(), owned: pool.owned(), ..MemoryStats::default() };
            Handled::plain(MemoryReply::Stats(stats))
        }
        MemoryRequest::RefBatch { .. } | MemoryRequest::MakeShared { .. } | MemoryRequest::TryRemoveUnique { .. } => {
            Handled::plain(MemoryReply::Error(ProtoError::UnknownRequest))
        }
    }
}
