//! The memory server, end to end: init starts it from the boot image with a
//! carved PhysRange and, as a trusted client (the process servers' badge),
//! attaches to its counter table (writable) and its pool, takes a batch of
//! frames, maps and uses one, applies counter batches and watches the
//! table change, gives the frames back, and sends malformed and
//! mislabelled requests, which it answers with errors while it keeps
//! serving; it takes frames as its heap, up to the cap, which only its
//! reclaim gives back. Then two untrusted clients attack each other
//! (`hostile_memory`).

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use abi::cap::{ObjectKind, Rights, boot_slot};
use abi::msg::IpcBuffer;
use abi::process::{Placement, Strategy};
use proto::memory::{AttachPart, FreeList, RefOps, client, table};
use proto::{MemoryProtocol, MemoryReply, MemoryRequest, ProtoError, RefOp};
use rt::ipc::{self, Message};
use rt::process::{Slots, prepare};
use rt::sys::{self, Slot};

use super::hostile_memory::{self, Target};
use super::process::BootImage;
use super::{TestResult, check};
use crate::env::{Env, INIT_PRIORITY};

/// Frames init gives the server.
const POOL_FRAMES: u64 = 4096;

fn call(ep: Slot, buffer: &mut IpcBuffer, request: &MemoryRequest) -> Result<MemoryReply, ProtoError> {
    let out = proto::request::<MemoryProtocol>(request, &mut buffer.data)?;
    raw_call(ep, buffer, out.label, out.length)
}

fn raw_call(ep: Slot, buffer: &mut IpcBuffer, label: u64, length: usize) -> Result<MemoryReply, ProtoError> {
    let reply = ipc::call(ep, Message::with_payload(label, [0; 4], length, false)).map_err(|_| ProtoError::Malformed)?;
    let payload = proto::payload(&buffer.data, reply.info().length())?;
    proto::read_reply::<MemoryProtocol>(reply.label(), payload)
}

fn stats(ep: Slot, buffer: &mut IpcBuffer) -> Result<proto::MemoryStats, &'static str> {
    match call(ep, buffer, &MemoryRequest::Stats) {
        Ok(MemoryReply::Stats(stats)) => Ok(stats),
        _ => Err("no stats"),
    }
}

fn free_frames(ep: Slot, buffer: &mut IpcBuffer) -> Result<u64, &'static str> {
    stats(ep, buffer).map(|stats| stats.free)
}

/// What `with_server` says of a server that stopped before it served.
const MEMORY_DID_NOT_START: &str = "the memory server did not start";

pub fn memory_server(env: &Env) -> TestResult {
    // A range too small for the server's heap and table: it stops at
    // once, and init hears of it instead of waiting for ever.
    let stopped = with_server_of(env, Strategy::Deferred, 64, |_, _| Ok(()));
    check(stopped == Err(MEMORY_DID_NOT_START), "a memory server that could not start was waited for")?;
    with_server(env, Strategy::Deferred, |ep, buffer| exercise(env, ep, buffer))?;
    with_server(env, Strategy::Atomic, |ep, buffer| shared_placement(env, ep, buffer))?;
    for strategy in [Strategy::Deferred, Strategy::AtomicIpc, Strategy::Percpu] {
        with_server(env, strategy, |ep, buffer| hostile(env, ep, buffer, strategy))?;
    }
    Ok(())
}

/// A capability to the server behind `original`, badged `badge`, in a new
/// slot of init's.
fn mint(env: &Env, original: Slot, badge: u64) -> Result<Slot, &'static str> {
    let slot = env.slots.alloc();
    sys::cap_mint(original, slot, Rights::WRITE.union(Rights::GRANT), badge).map_err(|_| "mint a client capability")?;
    Ok(slot)
}

/// The attacks of `hostile_memory` on a server of its own.
fn hostile(env: &Env, original: Slot, buffer: &mut IpcBuffer, strategy: Strategy) -> TestResult {
    let trusted = mint(env, original, client::PROCESS_SERVERS)?;
    buffer.recv_slot = env.slots.alloc();
    let layout = match call(trusted, buffer, &MemoryRequest::Attach { part: AttachPart::Table }) {
        Ok(MemoryReply::Attached(layout)) => layout,
        _ => return Err("Attach(Table) failed"),
    };
    env.slots.release(buffer.recv_slot);
    let target = Target {
        original,
        victim: mint(env, original, 3)?,
        attacker: mint(env, original, 4)?,
        pool_frames: layout.pool_frames,
        shared_placement: strategy.placement() == Placement::Shared,
        sweep: true,
    };
    let outcome = hostile_memory::attack(&target, buffer);
    for slot in [trusted, target.victim, target.attacker] {
        env.slots.release(slot);
    }
    outcome
}

/// Starts a memory server under `strategy` with a pool of its own, runs
/// `test` against it, and takes it all down again.
fn with_server(env: &Env, strategy: Strategy, test: impl FnOnce(Slot, &mut IpcBuffer) -> TestResult) -> TestResult {
    with_server_of(env, strategy, POOL_FRAMES, test)
}

/// [`with_server`] with a range of `frames` frames; the test runs once the
/// server serves (an error, and no hang, if it stopped instead).
fn with_server_of(env: &Env, strategy: Strategy, frames: u64, test: impl FnOnce(Slot, &mut IpcBuffer) -> TestResult) -> TestResult {
    let image = BootImage::map(env)?;
    let elf = image.program("memory")?;
    let (ep, pool) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    sys::phys_range_carve(boot_slot::FIRST_RAM, env.pages.frames(frames), frames, pool).map_err(|_| "carve the pool")?;
    let slots = Slots { space: env.slots.alloc(), cspace: env.slots.alloc(), thread: env.slots.alloc() };
    let started =
        prepare(elf, &env.pages, slots, INIT_PRIORITY + 1, env.other_cpu(), None).map_err(|_| "load the server").and_then(|program| {
            for (source, at) in [(ep, 1), (slots.space, 2), (pool, 3)] {
                sys::cap_mint_to(source, slots.cspace, at, Rights::ALL, 0).map_err(|_| "give the server its capabilities")?;
            }
            crate::system::give_allowance(slots.cspace, crate::system::MEMORY_ALLOWANCE)?;
            program.start(strategy as u64).map_err(|_| "start the server")
        });
    let started = started.and_then(|()| crate::system::await_ready(slots.thread, ep, MEMORY_DID_NOT_START));
    // SAFETY: init's own IPC buffer, used by this thread only.
    let buffer = unsafe { ipc::buffer_at(env.ipc_buffer) };
    let outcome = started.and_then(|()| test(ep, buffer));
    for slot in [slots.thread, slots.cspace, slots.space, pool, ep] {
        env.slots.release(slot);
    }
    outcome
}

fn exercise(env: &Env, original: Slot, buffer: &mut IpcBuffer) -> TestResult {
    let ep = mint(env, original, client::PROCESS_SERVERS)?;
    let outcome = exercise_as(env, ep, buffer).and_then(|()| heap_frames(env, original, ep, buffer));
    env.slots.release(ep);
    outcome
}

/// One run of frames for the trusted client `ep`'s heap.
fn heap_run(ep: Slot, buffer: &mut IpcBuffer, count: u16) -> Result<proto::FrameRun, ProtoError> {
    match call(ep, buffer, &MemoryRequest::AllocHeap { count })? {
        MemoryReply::Frames { runs } if runs.len() == 1 => Ok(runs[0]),
        _ => Err(ProtoError::Malformed),
    }
}

/// Frames for a client's heap: one run of consecutive frames, counted
/// apart (neither free nor owned); the client cannot give them back,
/// count them or ask of them; past the cap and to an untrusted client
/// there are none; reclaiming the client puts them back.
fn heap_frames(env: &Env, original: Slot, ep: Slot, buffer: &mut IpcBuffer) -> TestResult {
    let before = stats(ep, buffer)?;
    let run = heap_run(ep, buffer, 8).map_err(|_| "AllocHeap gave no run")?;
    check(run.count == 8, "AllocHeap did not give the 8 frames asked for")?;
    let after = stats(ep, buffer)?;
    let apart = (after.heap, after.free, after.owned) == (before.heap + 8, before.free - 8, before.owned);
    check(apart, "heap frames are not counted apart from free and owned ones")?;
    let frame = run.first as u32;
    let frames: FreeList = [frame].into_iter().collect();
    let ops: RefOps = [RefOp::inc(frame)].into_iter().collect();
    for request in [MemoryRequest::FreeFrames { frames }, MemoryRequest::RefBatch { ops }, MemoryRequest::TryRemoveUnique { frame }] {
        check(call(ep, buffer, &request) == Err(ProtoError::NotOwned), "a request named a frame of the client's heap")?;
    }
    // The rest up to the cap, then none.
    let cap = client::heap_cap(POOL_FRAMES);
    let rest = heap_run(ep, buffer, u16::MAX).map_err(|_| "AllocHeap gave nothing below the cap")?;
    check(u64::from(rest.count) == cap - 8, "AllocHeap went past the cap, or stopped short of it")?;
    check(heap_run(ep, buffer, 1) == Err(ProtoError::NoMemory), "AllocHeap went past the cap")?;
    let untrusted = mint(env, original, 3)?;
    let denied = heap_run(untrusted, buffer, 1);
    env.slots.release(untrusted);
    check(denied == Err(ProtoError::Denied), "an untrusted client got heap frames")?;
    let supervisor = mint(env, original, client::INIT)?;
    let reclaimed = call(supervisor, buffer, &MemoryRequest::Reclaim { record: client::PROCESS_SERVERS_RECORD });
    env.slots.release(supervisor);
    check(reclaimed == Ok(MemoryReply::RefBatchDone { freed: cap as u16 }), "the reclaim did not take the heap back")?;
    let after = stats(ep, buffer)?;
    check((after.heap, after.free) == (before.heap, before.free), "the heap's frames did not come back to the pool")
}

fn exercise_as(env: &Env, ep: Slot, buffer: &mut IpcBuffer) -> TestResult {
    let batch = env.slots.alloc();
    let free = free_frames(ep, buffer)?;
    check(free > 0 && free < POOL_FRAMES, "the server reports no frames")?;

    // The counter table: writable by clients (the deferred manager's
    // count-1 shortcuts).
    buffer.recv_slot = batch;
    let layout = match call(ep, buffer, &MemoryRequest::Attach { part: AttachPart::Table }) {
        Ok(MemoryReply::Attached(layout)) => layout,
        _ => return Err("Attach(Table) failed"),
    };
    check(buffer.cap_received == 1 && layout.pool_frames as u64 == POOL_FRAMES, "no table capability, or a wrong layout")?;
    let table_pages = u64::from(layout.table_pages);
    let table_at = env.pages.window(table_pages);
    let rw = Rights::READ.union(Rights::WRITE);
    sys::map_batch(boot_slot::ADDRESS_SPACE, batch, 0, table_at, table_pages, rw).map_err(|_| "map the table writable")?;
    // SAFETY: the table is mapped writable at `table_at`, one word per pool
    // frame, until the unmap below; its words are atomics.
    let words = unsafe { core::slice::from_raw_parts(table_at as *const AtomicU64, layout.pool_frames as usize) };
    let outcome = frames_and_counts(env, ep, buffer, words);
    sys::unmap(boot_slot::ADDRESS_SPACE, table_at, table_pages).map_err(|_| "unmap the table")?;
    env.slots.release(batch);
    outcome?;

    // Hostile input: garbage, a wrong label, an oversized length claim.
    buffer.data[..8].fill(0xFF);
    check(raw_call(ep, buffer, proto::MEMORY_PROTOCOL, 8).is_err(), "garbage was accepted")?;
    check(raw_call(ep, buffer, 7, 0) == Err(ProtoError::WrongProtocol), "a wrong label was accepted")?;
    check(raw_call(ep, buffer, proto::MEMORY_PROTOCOL, 4000).is_err(), "an oversized payload was accepted")?;
    check(free_frames(ep, buffer)? == free, "the server stopped serving after bad requests, or lost frames")
}

/// Frames in a batch, used through the pool capability; counter changes
/// seen in the table; frames back.
fn frames_and_counts(env: &Env, ep: Slot, buffer: &mut IpcBuffer, words: &[AtomicU64]) -> TestResult {
    let entry = |frame: u32| words[frame as usize].load(Relaxed);
    let free = free_frames(ep, buffer)?;
    let runs = match call(ep, buffer, &MemoryRequest::AllocFrames { count: 16 }) {
        Ok(MemoryReply::Frames { runs }) => runs,
        _ => return Err("AllocFrames failed"),
    };
    check(runs.iter().map(|run| u64::from(run.count)).sum::<u64>() == 16, "the batch does not hold 16 frames")?;
    check(free_frames(ep, buffer)? == free - 16, "the server did not count the batch")?;
    let frames: alloc::vec::Vec<u32> = runs.iter().flat_map(|run| run.first..run.first + u64::from(run.count)).map(|f| f as u32).collect();
    check(frames.iter().all(|&f| entry(f) == table::OWNED), "handed-out frames are not OWNED in the table")?;

    let pool = env.slots.alloc();
    buffer.recv_slot = pool;
    let attached = call(ep, buffer, &MemoryRequest::Attach { part: AttachPart::Frames });
    check(matches!(attached, Ok(MemoryReply::Attached(_))) && buffer.cap_received == 1, "Attach(Frames) failed")?;
    let at = env.pages.window(1);
    let rw = Rights::READ.union(Rights::WRITE);
    sys::map_batch(boot_slot::ADDRESS_SPACE, pool, u64::from(frames[15]), at, 1, rw).map_err(|_| "map a frame of the batch")?;
    // SAFETY: one page was just mapped writable at `at`.
    unsafe { (at as *mut u64).write_volatile(0xC0FFEE) };
    // SAFETY: as above.
    let readback = unsafe { (at as *const u64).read_volatile() };
    sys::unmap(boot_slot::ADDRESS_SPACE, at, 1).map_err(|_| "unmap")?;
    env.slots.release(pool);
    check(readback == 0xC0FFEE, "the frame does not hold a value")?;

    // A fork of an OWNED frame stores 2 (as its holder's process server
    // does): one decrement leaves 1, then +1 -1 -1 in one batch frees it
    // (increments first).
    let ops = |list: &[RefOp]| list.iter().copied().collect::<RefOps>();
    let first = frames[0];
    words[first as usize].store(2, Relaxed);
    let mut batch = |ops| call(ep, buffer, &MemoryRequest::RefBatch { ops });
    check(batch(ops(&[RefOp::dec(first)])) == Ok(MemoryReply::RefBatchDone { freed: 0 }), "a decrement of a shared OWNED frame")?;
    check(entry(first) == 1, "OWNED minus one is not 1")?;
    check(
        batch(ops(&[RefOp::dec(first), RefOp::dec(first), RefOp::inc(first)])) == Ok(MemoryReply::RefBatchDone { freed: 1 }),
        "the frame was not freed",
    )?;
    check(entry(first) == table::FREE, "a freed frame is not FREE in the table")?;
    check(batch(ops(&[RefOp::dec(first)])) == Err(ProtoError::NotOwned), "a decrement of a free frame was accepted")?;

    let rest: FreeList = frames[1..].iter().copied().collect();
    check(call(ep, buffer, &MemoryRequest::FreeFrames { frames: rest.clone() }) == Ok(MemoryReply::Ok), "FreeFrames")?;
    check(call(ep, buffer, &MemoryRequest::FreeFrames { frames: rest }) == Err(ProtoError::NotOwned), "a double free was accepted")?;
    // Frames never handed out: past the pool's end, the server's own
    // (frame 0 holds its heap), and one of a batch with a good one.
    for never in [u32::MAX, words.len() as u32, 0] {
        let frames: FreeList = [never].into_iter().collect();
        check(
            call(ep, buffer, &MemoryRequest::FreeFrames { frames }) == Err(ProtoError::NotOwned),
            "a frame never handed out was taken back",
        )?;
    }
    check(free_frames(ep, buffer)? == free, "the frames did not return to the pool, or a refused free changed it")?;
    let mixed = match call(ep, buffer, &MemoryRequest::AllocFrames { count: 1 }) {
        Ok(MemoryReply::Frames { runs }) => runs[0].first as u32,
        _ => return Err("AllocFrames failed"),
    };
    let frames: FreeList = [mixed, u32::MAX - 1].into_iter().collect();
    check(call(ep, buffer, &MemoryRequest::FreeFrames { frames }) == Err(ProtoError::NotOwned), "a batch with a bad frame was taken back")?;
    check(free_frames(ep, buffer)? == free - 1, "a refused batch freed its good frame")?;
    let frames: FreeList = [mixed].into_iter().collect();
    check(call(ep, buffer, &MemoryRequest::FreeFrames { frames }) == Ok(MemoryReply::Ok), "FreeFrames of the good frame")?;
    check(free_frames(ep, buffer)? == free, "the frames did not return to the pool")
}

/// A strategy placed in the process servers (atomic): the server names its
/// region's frames, refuses counter batches and `TryRemoveUnique` (the
/// counts are not its to change), and still checks the frames it takes
/// back.
fn shared_placement(env: &Env, original: Slot, buffer: &mut IpcBuffer) -> TestResult {
    let ep = mint(env, original, client::PROCESS_SERVERS)?;
    let outcome = shared_placement_as(ep, buffer);
    env.slots.release(ep);
    outcome
}

fn shared_placement_as(ep: Slot, buffer: &mut IpcBuffer) -> TestResult {
    let free = free_frames(ep, buffer)?;
    let region = match call(ep, buffer, &MemoryRequest::Attach { part: AttachPart::Region }) {
        Ok(MemoryReply::Frames { runs }) => runs,
        _ => return Err("Attach(Region) named no frames"),
    };
    check(!region.is_empty(), "the region has no frames")?;
    let frame = match call(ep, buffer, &MemoryRequest::AllocFrames { count: 1 }) {
        Ok(MemoryReply::Frames { runs }) => runs[0].first as u32,
        _ => return Err("AllocFrames failed"),
    };
    let ops: RefOps = [RefOp::inc(frame)].into_iter().collect();
    check(
        call(ep, buffer, &MemoryRequest::RefBatch { ops }) == Err(ProtoError::InvalidArgument),
        "a batch was applied under a shared strategy",
    )?;
    check(
        call(ep, buffer, &MemoryRequest::TryRemoveUnique { frame }) == Err(ProtoError::InvalidArgument),
        "TryRemoveUnique was answered under a shared strategy",
    )?;
    for bad in [region[0].first as u32, u32::MAX] {
        let frames: FreeList = [bad].into_iter().collect();
        check(
            call(ep, buffer, &MemoryRequest::FreeFrames { frames }) == Err(ProtoError::NotOwned),
            "a frame never handed out was taken back",
        )?;
    }
    let frames: FreeList = [frame].into_iter().collect();
    check(call(ep, buffer, &MemoryRequest::FreeFrames { frames: frames.clone() }) == Ok(MemoryReply::Ok), "FreeFrames")?;
    check(call(ep, buffer, &MemoryRequest::FreeFrames { frames }) == Err(ProtoError::NotOwned), "a double free was accepted")?;
    check(free_frames(ep, buffer)? == free, "the frames did not return to the pool")?;
    // After a swap the region comes out of the pool: its frames are
    // handed out, yet no client may give them back.
    let swap = MemoryRequest::Swap { strategy: Strategy::Percpu as u8 };
    check(call(ep, buffer, &swap) == Ok(MemoryReply::Ok), "the swap to percpu failed")?;
    let region = match call(ep, buffer, &MemoryRequest::Attach { part: AttachPart::Region }) {
        Ok(MemoryReply::Frames { runs }) => runs,
        _ => return Err("Attach(Region) named no frames after the swap"),
    };
    let before = free_frames(ep, buffer)?;
    let frames: FreeList = [region[0].first as u32].into_iter().collect();
    check(call(ep, buffer, &MemoryRequest::FreeFrames { frames }) == Err(ProtoError::NotOwned), "a region frame was taken back")?;
    check(free_frames(ep, buffer)? == before, "a refused region frame changed the pool")
}
