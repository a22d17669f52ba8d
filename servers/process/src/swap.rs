//! Swapping the reference-count strategy live, between placements too. The
//! server that receives `Swap` coordinates:
//! 1. it pauses every other server: each takes back the kernel's copy
//!    reserve and applies its copies (`cow`), flushes its buffers, reports
//!    a quiescent point, returns its frame stock, answers, and waits on its
//!    resume notification, so no counter operation is in flight anywhere;
//! 2. the memory server settles the old strategy (every frame at zero goes
//!    back to its pool) and runs the new one (`Swap`): placed there, it
//!    hands it every frame's count; placed here, it sets up a zeroed region;
//! 3. for a strategy placed here, the coordinator maps that region (and
//!    unmaps the old one) and fills it from the page maps, which hold
//!    every reference: a frame's count is the number of pages mapping it;
//! 4. every server resumes, with the new strategy.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use abi::process::{Placement, Strategy};
use abi::syscall::MAP_BATCH_MAX;
use proto::ProtoError;
use proto::memory::{MemoryReply, MemoryRequest};
use rt::ipc::{self, Message};
use rt::mem::PAGE_SIZE;

use crate::counts::{SharedCounts, map_region};
use crate::server::{PAUSE_LABEL, Server};
use crate::slot;
use crate::system;

/// A coordinator's call to pause: flush, answer, wait to be resumed.
pub fn pause(server: &mut Server) {
    server.quiesce();
    let _ = ipc::reply(Message::default());
    let _ = ipc::wait(slot::FIRST_RESUME + u64::from(server.index));
    server.mem.follow_swap();
}

/// Runs a swap to strategy `index`.
pub fn coordinate(server: &mut Server, index: u8) -> Result<(), ProtoError> {
    let sys = system::get();
    let new = Strategy::from_index(u64::from(index)).ok_or(ProtoError::InvalidArgument)?;
    let Some(_swapping) = sys.swapping.try_lock() else { return Err(ProtoError::InvalidArgument) };
    server.quiesce();
    let others: Vec<u16> = (0..sys.cpus).filter(|&k| k != server.index).collect();
    for &k in &others {
        let _ = ipc::call(sys.endpoint(k), Message::new(PAUSE_LABEL, [0; 4]));
    }
    let swapped = match server.mem.call(&MemoryRequest::Swap { strategy: index }) {
        Ok(MemoryReply::Ok) => follow(server, new),
        Ok(_) => Err(ProtoError::Malformed),
        Err(error) => Err(error),
    };
    for &k in &others {
        let _ = ipc::signal(slot::FIRST_RESUME + u64::from(k), 1);
    }
    swapped
}

/// The memory server runs `new` now: map its region, drop the old one's
/// mapping, and count the new way.
fn follow(server: &mut Server, new: Strategy) -> Result<(), ProtoError> {
    let sys = system::get();
    let shared = match new.placement() {
        Placement::Shared => {
            let (view, counts) = map_region(server.mem.buffer(), new)?;
            adopt(&*counts);
            Some((view, counts))
        }
        Placement::Server => None,
    };
    if let Some(old) = sys.region() {
        for first in (0..old.pages).step_by(MAP_BATCH_MAX as usize) {
            let _ = rt::sys::unmap(slot::SPACE, old.at + first * PAGE_SIZE, MAP_BATCH_MAX.min(old.pages - first));
        }
    }
    sys.set_region(shared);
    sys.set_strategy(new);
    server.mem.follow_swap();
    Ok(())
}

/// Counts every page of every process as one reference to its frame.
fn adopt(counts: &dyn SharedCounts) {
    let mut held: BTreeMap<u32, u64> = BTreeMap::new();
    let records: Vec<_> = system::get().procs.lock().map.values().map(|process| process.memory.clone()).collect();
    for record in records {
        for (_, page) in record.lock().pages.iter() {
            *held.entry(page.frame).or_default() += 1;
        }
    }
    for (frame, count) in held {
        counts.create(0, frame);
        (1..count).for_each(|_| counts.inc(0, frame));
    }
}
