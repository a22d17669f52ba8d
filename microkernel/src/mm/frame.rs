//! The physical frame allocator for kernel use: one bit per 4 KiB frame of
//! the usable RAM the boot loader reported, stored in frames it takes for
//! itself, next-fit search, and checked frees.
//!
//! It never panics on a bad request: freeing a frame it does not own returns
//! a [`FrameError`].

use core::ops::Range;

use crate::arch::paging::{PAGE_SIZE, phys_to_virt};
use crate::bootinfo::BootInfo;

/// Why a frame could not be freed, or the allocator not built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    Misaligned,
    OutOfRange,
    NotAllocated,
    NoRoomForBitmap,
}

struct FrameAllocator {
    /// Bit set: frame in use or not RAM.
    bitmap: &'static mut [u64],
    free: usize,
    usable: usize,
    /// Word where the next search starts.
    hint: usize,
}

static FRAMES: spin::Mutex<Option<FrameAllocator>> = spin::Mutex::new(None);

/// Builds the allocator over `info`'s usable RAM minus `reserved` (kernel
/// image, boot image, low memory).
pub fn init(info: &BootInfo, reserved: &[Range<u64>]) -> Result<(), FrameError> {
    let phys_end = info.usable().map(|r| r.end()).max().unwrap_or(0);
    let frames = (phys_end / PAGE_SIZE) as usize;
    let words = frames.div_ceil(64);
    let bitmap_bytes = ((words * 8) as u64).next_multiple_of(PAGE_SIZE);
    let overlaps = |start: u64, end: u64| reserved.iter().any(|r| start < r.end && r.start < end);
    let bitmap_start = info
        .usable()
        .flat_map(|region| {
            let first = region.start.next_multiple_of(PAGE_SIZE);
            let candidates = reserved.iter().map(|r| r.end.next_multiple_of(PAGE_SIZE));
            core::iter::once(first).chain(candidates).filter(move |&s| s >= first && s + bitmap_bytes <= region.end())
        })
        .find(|&start| !overlaps(start, start + bitmap_bytes))
        .ok_or(FrameError::NoRoomForBitmap)?;
    // SAFETY: the range is usable RAM, overlaps nothing reserved, and is
    // handed to nobody else; the direct map covers it.
    let bitmap = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(bitmap_start).cast::<u64>(), words) };
    bitmap.fill(u64::MAX);
    let mut allocator = FrameAllocator { bitmap, free: 0, usable: 0, hint: 0 };
    for region in info.usable() {
        let first = region.start.div_ceil(PAGE_SIZE);
        let last = region.end() / PAGE_SIZE;
        for frame in first..last {
            let addr = frame * PAGE_SIZE;
            if !overlaps(addr, addr + PAGE_SIZE) && !(bitmap_start..bitmap_start + bitmap_bytes).contains(&addr) {
                allocator.set(frame as usize, false);
                allocator.free += 1;
            }
        }
    }
    allocator.usable = allocator.free;
    *FRAMES.lock() = Some(allocator);
    Ok(())
}

impl FrameAllocator {
    fn set(&mut self, frame: usize, used: bool) {
        let (word, bit) = (frame / 64, frame % 64);
        if used {
            self.bitmap[word] |= 1 << bit;
        } else {
            self.bitmap[word] &= !(1 << bit);
        }
    }

    fn is_used(&self, frame: usize) -> bool {
        self.bitmap[frame / 64] & (1 << (frame % 64)) != 0
    }

    fn alloc(&mut self) -> Option<u64> {
        let words = self.bitmap.len();
        let word = (0..words).map(|i| (self.hint + i) % words).find(|&w| self.bitmap[w] != u64::MAX)?;
        let frame = word * 64 + self.bitmap[word].trailing_ones() as usize;
        self.set(frame, true);
        self.free -= 1;
        self.hint = word;
        Some(frame as u64 * PAGE_SIZE)
    }

    /// The lowest run of `count` free frames, taken.
    fn alloc_run(&mut self, count: usize) -> Option<u64> {
        let frames = self.bitmap.len() * 64;
        let mut start = 0;
        while start + count <= frames {
            match (start..start + count).rev().find(|&frame| self.is_used(frame)) {
                Some(used) => start = used + 1,
                None => {
                    for frame in start..start + count {
                        self.set(frame, true);
                    }
                    self.free -= count;
                    return Some(start as u64 * PAGE_SIZE);
                }
            }
        }
        None
    }

    fn free(&mut self, paddr: u64) -> Result<(), FrameError> {
        if !paddr.is_multiple_of(PAGE_SIZE) {
            return Err(FrameError::Misaligned);
        }
        let frame = (paddr / PAGE_SIZE) as usize;
        if frame >= self.bitmap.len() * 64 {
            return Err(FrameError::OutOfRange);
        }
        if !self.is_used(frame) {
            return Err(FrameError::NotAllocated);
        }
        self.set(frame, false);
        self.free += 1;
        Ok(())
    }
}

/// A frame, contents undefined; `None` when memory is exhausted.
pub fn alloc() -> Option<u64> {
    FRAMES.lock().as_mut()?.alloc()
}

/// `count` physically contiguous frames (the lowest such run), contents
/// undefined; `None` when no run is that long. For storage the kernel
/// takes once at boot and keeps.
pub fn alloc_run(count: usize) -> Option<u64> {
    FRAMES.lock().as_mut()?.alloc_run(count)
}

/// A frame filled with zeros.
pub fn alloc_zeroed() -> Option<u64> {
    let paddr = alloc()?;
    // SAFETY: the frame was just allocated to the caller and is direct-mapped.
    unsafe { core::ptr::write_bytes(phys_to_virt(paddr), 0, PAGE_SIZE as usize) };
    Some(paddr)
}

/// Returns a frame. Freeing a frame that is free already (a double free) or
/// outside the managed range is refused, and changes nothing.
pub fn free(paddr: u64) -> Result<(), FrameError> {
    FRAMES.lock().as_mut().ok_or(FrameError::OutOfRange)?.free(paddr)
}

/// Free frames now, and frames the allocator manages in all.
pub fn counts() -> (usize, usize) {
    FRAMES.lock().as_ref().map_or((0, 0), |a| (a.free, a.usable))
}

/// Hands every free frame beyond the first `keep` to user space, in at most
/// `max_runs` contiguous runs taken from the top of memory: `take(base,
/// frames)` for each. Those frames are never allocated to the kernel again.
pub fn carve_for_user(keep: usize, max_runs: u64, take: &mut dyn FnMut(u64, u64)) {
    let mut guard = FRAMES.lock();
    let Some(allocator) = guard.as_mut() else { return };
    let mut runs = 0;
    let mut frame = allocator.bitmap.len() * 64;
    while frame > 0 && allocator.free > keep && runs < max_runs {
        frame -= 1;
        if allocator.is_used(frame) {
            continue;
        }
        let end = frame + 1;
        let mut start = frame;
        while start > 0 && !allocator.is_used(start - 1) && allocator.free - (end - start) > keep {
            start -= 1;
        }
        for taken in start..end {
            allocator.set(taken, true);
        }
        allocator.free -= end - start;
        take(start as u64 * PAGE_SIZE, (end - start) as u64);
        runs += 1;
        frame = start;
    }
}
