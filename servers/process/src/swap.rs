//! Swapping the reference-count strategy live. The server that receives
//! `Swap` coordinates:
//! 1. it pauses every other server: each flushes its buffers, returns its
//!    frame stock, answers, and waits on its resume notification, so no
//!    counter change is in flight anywhere;
//! 2. leaving the deferred strategy, it makes every fork's implicit count
//!    of 2 explicit (`Materialize`), so the memory server sees exact counts;
//! 3. the memory server hands every count to the new strategy (`Swap`);
//! 4. entering the deferred strategy, every page is marked counted: a
//!    frame held alone is at 1 in the table, not `OWNED`, so the next fork
//!    must send its increment;
//! 5. every server resumes under the new strategy.

use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use alloc::vec::Vec;

use abi::process::Strategy;
use proto::ProtoError;
use proto::memory::{FreeList, MAX_FREE_FRAMES, MemoryReply, MemoryRequest, table};
use rt::ipc::{self, Message};

use crate::server::{PAUSE_LABEL, Server};
use crate::slot;
use crate::space::{AddrSpace, Page};
use crate::system;

/// A coordinator's call to pause: flush, answer, wait to be resumed.
pub fn pause(server: &mut Server) {
    server.mem.quiesce();
    let _ = ipc::reply(Message::default());
    let _ = ipc::wait(slot::FIRST_RESUME + u64::from(server.index));
    server.mem.follow_swap();
}

/// Runs a swap to strategy `index`.
pub fn coordinate(server: &mut Server, index: u8) -> Result<(), ProtoError> {
    let sys = system::get();
    let new = Strategy::from_index(u64::from(index)).ok_or(ProtoError::InvalidArgument)?;
    let Some(_swapping) = sys.swapping.try_lock() else { return Err(ProtoError::InvalidArgument) };
    let old = sys.strategy();
    server.mem.quiesce();
    let others: Vec<u16> = (0..sys.cpus).filter(|&k| k != server.index).collect();
    for &k in &others {
        let _ = ipc::call(sys.endpoint(k), Message::new(PAUSE_LABEL, [0; 4]));
    }
    let records = memory_records();
    let mut swapped = Ok(());
    if old.defers() {
        swapped = materialize(server, &records);
    }
    if swapped.is_ok() {
        swapped = match server.mem.call(&MemoryRequest::Swap { strategy: index }) {
            Ok(MemoryReply::Ok) => Ok(()),
            Ok(_) => Err(ProtoError::Malformed),
            Err(error) => Err(error),
        };
    }
    if swapped.is_ok() {
        sys.set_strategy(new);
        server.mem.follow_swap();
        if new.defers() {
            for record in &records {
                record.lock().pages.values_mut().for_each(|page| page.flags |= Page::SHARED);
            }
        }
    }
    for &k in &others {
        let _ = ipc::signal(slot::FIRST_RESUME + u64::from(k), 1);
    }
    swapped
}

/// Every process's memory record.
fn memory_records() -> Vec<Arc<spin::Mutex<AddrSpace>>> {
    system::get().procs.lock().map.values().map(|process| process.memory.clone()).collect()
}

/// Sends `Materialize` for every shared frame still `OWNED` in the table.
fn materialize(server: &mut Server, records: &[Arc<spin::Mutex<AddrSpace>>]) -> Result<(), ProtoError> {
    let sys = system::get();
    let mut frames = BTreeSet::new();
    for record in records {
        let memory = record.lock();
        let implicit = memory.pages.values().filter(|page| page.is(Page::SHARED) && sys.count_of(page.frame) == table::OWNED);
        frames.extend(implicit.map(|page| page.frame));
    }
    let frames: Vec<u32> = frames.into_iter().collect();
    for chunk in frames.chunks(MAX_FREE_FRAMES) {
        let frames: FreeList = chunk.iter().copied().collect();
        match server.mem.call(&MemoryRequest::Materialize { frames })? {
            MemoryReply::Ok => {}
            _ => return Err(ProtoError::Malformed),
        }
    }
    Ok(())
}
