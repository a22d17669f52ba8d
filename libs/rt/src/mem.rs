//! Memory for a program that maps its own: frames taken in order from one
//! PhysRange capability, mapped into a virtual window of the program's own
//! address space. Enough for init and tests; the memory server replaces it.

use abi::cap::Rights;
use abi::syscall::{MAP_BATCH_MAX, SysError};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::sys::{self, Slot};

pub const PAGE_SIZE: u64 = 4096;

/// Frames from `range`, pages from `window`, both handed out in order.
pub struct PageSource {
    space: Slot,
    range: Slot,
    next_frame: AtomicU64,
    next_page: AtomicU64,
}

impl PageSource {
    pub const fn new(space: Slot, range: Slot, window_start: u64) -> Self {
        Self { space, range, next_frame: AtomicU64::new(0), next_page: AtomicU64::new(window_start) }
    }

    /// `count` fresh frames of the range (their index in it).
    pub fn frames(&self, count: u64) -> u64 {
        self.next_frame.fetch_add(count, Ordering::Relaxed)
    }

    /// Where the next window will start.
    pub fn next_window(&self) -> u64 {
        self.next_page.load(Ordering::Relaxed)
    }

    /// A virtual range of `count` pages, followed by an unmapped guard page.
    pub fn window(&self, count: u64) -> u64 {
        self.next_page.fetch_add((count + 1) * PAGE_SIZE, Ordering::Relaxed)
    }

    /// Maps `count` fresh, writable pages; returns their address.
    pub fn alloc(&self, count: u64) -> Result<u64, SysError> {
        self.alloc_frames(count).map(|(vaddr, _)| vaddr)
    }

    /// As [`PageSource::alloc`]; returns the address and the index of the
    /// first frame in the range (the frames are consecutive).
    pub fn alloc_frames(&self, count: u64) -> Result<(u64, u64), SysError> {
        let vaddr = self.window(count);
        let frame = self.frames(count);
        // The kernel maps at most MAP_BATCH_MAX pages a call.
        for first in (0..count).step_by(MAP_BATCH_MAX as usize) {
            let pages = MAP_BATCH_MAX.min(count - first);
            sys::map_batch(self.space, self.range, frame + first, vaddr + first * PAGE_SIZE, pages, Rights::READ.union(Rights::WRITE))?;
        }
        Ok((vaddr, frame))
    }

    pub fn space(&self) -> Slot {
        self.space
    }

    pub fn range(&self) -> Slot {
        self.range
    }
}
