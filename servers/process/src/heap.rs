//! The servers' own heap: what a request that grows a process's records
//! is admitted against, and how the heap grows. It starts as the fixed
//! span init carved (`system::start`); when an admission finds it short,
//! the asking server thread takes a run of frames from the memory server
//! as heap (`AllocHeap`: consecutive frames are one span of our mapping
//! of the pool), up to the cap the memory server keeps. Those frames stay
//! the heap for as long as the servers live. A request the heap cannot
//! take, even grown, gets `NoMemory`, so an allocation never fails inside
//! a server: that would end the server thread, and the supervisor would
//! restart the servers, ending every process.

use abi::msg::IpcBuffer;
use proto::memory::{MemoryReply, MemoryRequest};
use proto::{MemoryProtocol, ProtoError};
use rt::mem::PAGE_SIZE;

use crate::slot;
use crate::system;

/// Heap every server thread may still need for its small records (table
/// entries, saved replies, buffers) after a request that grows a
/// process's records was admitted.
const SMALL_RECORDS: usize = 1 << 20;

/// Frames asked for per growth (1 MiB).
const GROWTH: u16 = 256;

/// What an admission must leave free: the small records, and the
/// deferred strategy's buffered decrements of every server (a count per
/// pool frame each), which a swap to it allocates while every request
/// waits.
fn reserve() -> usize {
    let sys = system::get();
    let buffers = usize::from(sys.cpus) * core::mem::size_of::<u16>() * sys.pool_frames() as usize;
    SMALL_RECORDS + buffers
}

/// Whether our heap can take `bytes` more for a process's records and
/// still keep its reserve, growing it from the memory server's frames
/// (through `buffer`, the asking thread's IPC buffer) if it must;
/// `NoMemory` if it cannot. Checked before the records grow (a fork's page
/// map, a page, a mapping), so that a full heap refuses requests instead
/// of failing an allocation.
pub fn allows(buffer: &mut IpcBuffer, bytes: usize) -> Result<(), ProtoError> {
    let needed = bytes.saturating_add(reserve());
    // Each turn adds at least one frame, and the memory server's cap
    // bounds them: the loop ends.
    while rt::heap::usage().1 < needed {
        grow(buffer)?;
    }
    Ok(())
}

/// One run of frames more for the heap; `NoMemory` when the memory server
/// refuses it (at the cap, or no run of frames free).
fn grow(buffer: &mut IpcBuffer) -> Result<(), ProtoError> {
    let run = match rt::client::call::<MemoryProtocol>(slot::MEMORY, buffer, &MemoryRequest::AllocHeap { count: GROWTH })? {
        MemoryReply::Frames { runs } if runs.len() == 1 => runs[0],
        _ => return Err(ProtoError::Malformed),
    };
    let base = system::get().frames_at(run.first, u64::from(run.count)).ok_or(ProtoError::Malformed)?;
    // SAFETY: the memory server handed these frames to us alone, as our
    // heap, for as long as we live (no request of ours can give them back),
    // and our mapping of the whole pool maps them writable there.
    unsafe { rt::heap::grow(base, (u64::from(run.count) * PAGE_SIZE) as usize) }.map_err(|_| ProtoError::NoMemory)
}
