//! The memory server, end to end: init starts it from the boot image with a
//! carved PhysRange, takes a batch of frames (with a capability for exactly
//! them), maps and uses them, gives them back (the capability is revoked),
//! and sends it malformed and mislabelled requests, which it answers with
//! errors while it keeps serving.

use abi::cap::{ObjectKind, Rights, boot_slot};
use abi::msg::IpcBuffer;
use abi::syscall::SysError;
use proto::memory::Runs;
use proto::{MemoryProtocol, MemoryReply, MemoryRequest, ProtoError};
use rt::ipc::{self, Message};
use rt::process::{Slots, prepare};
use rt::sys::{self, Slot};

use super::process::BootImage;
use super::{TestResult, check, expect_err};
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

fn free_frames(ep: Slot, buffer: &mut IpcBuffer) -> Result<u64, &'static str> {
    match call(ep, buffer, &MemoryRequest::Stats) {
        Ok(MemoryReply::Stats(stats)) => Ok(stats.free),
        _ => Err("no stats"),
    }
}

pub fn memory_server(env: &Env) -> TestResult {
    let image = BootImage::map(env)?;
    let elf = image.program("memory")?;
    let (ep, pool, batch) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    sys::phys_range_carve(boot_slot::FIRST_RAM, env.pages.frames(POOL_FRAMES), POOL_FRAMES, pool).map_err(|_| "carve the pool")?;
    let slots = Slots { space: env.slots.alloc(), cspace: env.slots.alloc(), thread: env.slots.alloc() };
    let started = prepare(elf, &env.pages, slots, INIT_PRIORITY + 1, env.other_cpu()).map_err(|_| "load the server").and_then(|program| {
        for (source, at) in [(ep, 1), (slots.space, 2), (pool, 3)] {
            sys::cap_mint_to(source, slots.cspace, at, Rights::ALL, 0).map_err(|_| "give the server its capabilities")?;
        }
        program.start(0).map_err(|_| "start the server")
    });
    let outcome = started.and_then(|()| exercise(env, ep, batch));
    for slot in [slots.thread, slots.cspace, slots.space, batch, pool, ep] {
        env.slots.release(slot);
    }
    outcome
}

fn exercise(env: &Env, ep: Slot, batch: Slot) -> TestResult {
    // SAFETY: init's own IPC buffer, used by this thread only.
    let buffer = unsafe { ipc::buffer_at(env.ipc_buffer) };
    let free = free_frames(ep, buffer)?;
    check(free > 0 && free < POOL_FRAMES, "the server reports no frames")?;

    buffer.recv_slot = batch;
    let runs = match call(ep, buffer, &MemoryRequest::AllocFrames { count: 16 }) {
        Ok(MemoryReply::Frames { runs }) => runs,
        _ => return Err("AllocFrames failed"),
    };
    check(runs.len() == 1 && runs[0].count == 16, "the batch is not one run of 16")?;
    check(buffer.cap_received == 1, "no capability came with the batch")?;
    check(sys::identify(batch).map(|id| id.size) == Ok(16), "the capability does not cover the batch")?;
    check(free_frames(ep, buffer)? == free - 16, "the server did not count the batch")?;

    let at = env.pages.window(16);
    let rw = Rights::READ.union(Rights::WRITE);
    sys::map_batch(boot_slot::ADDRESS_SPACE, batch, 0, at, 16, rw).map_err(|_| "map the batch")?;
    // SAFETY: 16 pages were just mapped writable at `at`.
    let last = unsafe { (at as *mut u64).add(15 * 512) };
    // SAFETY: as above.
    unsafe { last.write_volatile(0xC0FFEE) };
    // SAFETY: as above.
    let readback = unsafe { last.read_volatile() };
    sys::unmap(boot_slot::ADDRESS_SPACE, at, 16).map_err(|_| "unmap")?;
    check(readback == 0xC0FFEE, "the batch's memory does not hold a value")?;

    let mut back = Runs::new();
    let _ = back.push(runs[0]);
    check(call(ep, buffer, &MemoryRequest::FreeFrames { runs: back.clone() }) == Ok(MemoryReply::Ok), "FreeFrames")?;
    expect_err(sys::identify(batch), SysError::EmptySlot, "the batch's capability survived its return")?;
    check(call(ep, buffer, &MemoryRequest::FreeFrames { runs: back }) == Err(ProtoError::NotOwned), "a double free was accepted")?;
    check(free_frames(ep, buffer)? == free, "the frames did not return to the pool")?;

    // Hostile input: garbage, a wrong label, an oversized length claim.
    buffer.data[..8].fill(0xFF);
    check(raw_call(ep, buffer, proto::MEMORY_PROTOCOL, 8).is_err(), "garbage was accepted")?;
    check(raw_call(ep, buffer, 7, 0) == Err(ProtoError::WrongProtocol), "a wrong label was accepted")?;
    check(raw_call(ep, buffer, proto::MEMORY_PROTOCOL, 4000).is_err(), "an oversized payload was accepted")?;
    check(free_frames(ep, buffer)? == free, "the server stopped serving after bad requests")
}
