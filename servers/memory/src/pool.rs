//! The frame pool: one bit per frame of the server's PhysRange, first-fit
//! runs, and the carved capability that goes with each run handed out.

use alloc::vec;
use alloc::vec::Vec;

use proto::ProtoError;
use proto::memory::FrameRun;

/// A run handed out, and the slot of the capability carved for it.
struct Lease {
    run: FrameRun,
    slot: u64,
}

pub struct Pool {
    /// Bit set: frame in use (or the server's own).
    used: Vec<u64>,
    frames: u64,
    free: u64,
    leases: Vec<Lease>,
    first_slot: u64,
}

impl Pool {
    /// Frames `[first, frames)` of the range are free; below `first` are the
    /// server's own. Carved capabilities go to slots from `first_slot`.
    pub fn new(first: u64, frames: u64, first_slot: u64) -> Self {
        let mut used = vec![0u64; frames.div_ceil(64) as usize];
        for frame in 0..first {
            used[(frame / 64) as usize] |= 1 << (frame % 64);
        }
        Self { used, frames, free: frames - first, leases: Vec::new(), first_slot }
    }

    pub fn free_frames(&self) -> u64 {
        self.free
    }

    pub fn owned(&self) -> u64 {
        self.leases.iter().map(|lease| u64::from(lease.run.count)).sum()
    }

    fn is_used(&self, frame: u64) -> bool {
        self.used[(frame / 64) as usize] & (1 << (frame % 64)) != 0
    }

    fn set(&mut self, run: FrameRun, used: bool) {
        for frame in run.first..run.first + u64::from(run.count) {
            let (word, bit) = ((frame / 64) as usize, frame % 64);
            if used {
                self.used[word] |= 1 << bit;
            } else {
                self.used[word] &= !(1 << bit);
            }
        }
    }

    /// A free slot for a carved capability.
    fn free_slot(&self) -> Option<u64> {
        (self.first_slot..abi::cap::CSPACE_SLOTS as u64).find(|slot| self.leases.iter().all(|l| l.slot != *slot))
    }

    /// The first run of `count` free frames, with a capability carved for it.
    pub fn alloc(&mut self, count: u16) -> Result<(FrameRun, u64), ProtoError> {
        let count64 = u64::from(count);
        let mut start = 0;
        while start + count64 <= self.frames {
            match (start..start + count64).find(|&f| self.is_used(f)) {
                Some(used) => start = used + 1,
                None => break,
            }
        }
        if count == 0 || start + count64 > self.frames {
            return Err(ProtoError::NoMemory);
        }
        let slot = self.free_slot().ok_or(ProtoError::NoMemory)?;
        let run = FrameRun::new(start, count);
        rt::sys::phys_range_carve(crate::slot::FRAMES, start, count64, slot).map_err(|_| ProtoError::NoMemory)?;
        self.set(run, true);
        self.free -= count64;
        self.leases.push(Lease { run, slot });
        Ok((run, slot))
    }

    /// Takes back a run handed out whole, revoking its capability.
    pub fn release(&mut self, run: FrameRun) -> Result<(), ProtoError> {
        let index = self.leases.iter().position(|lease| lease.run == run).ok_or(ProtoError::NotOwned)?;
        let lease = self.leases.swap_remove(index);
        let _ = rt::sys::cap_revoke(lease.slot);
        let _ = rt::sys::cap_delete(lease.slot);
        self.set(run, false);
        self.free += u64::from(run.count);
        Ok(())
    }
}
