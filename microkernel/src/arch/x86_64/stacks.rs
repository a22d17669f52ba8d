//! Kernel stacks: 64 KiB each in the kernel-stack region, with an unmapped
//! 4 KiB guard page below each, so an overflow faults instead of corrupting.

use core::sync::atomic::{AtomicU64, Ordering};

use super::paging::{KSTACK_BASE, MapError, PAGE_SIZE, PageTableFlags, Root};
use crate::mm::frame;

pub const STACK_SIZE: u64 = 64 * 1024;
const SLOT_SIZE: u64 = STACK_SIZE + PAGE_SIZE;

static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

/// Maps a fresh stack in the kernel space; returns its top (16-byte aligned).
pub fn alloc(kernel: Root) -> Result<u64, MapError> {
    let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    let bottom = KSTACK_BASE + slot * SLOT_SIZE + PAGE_SIZE;
    let flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE | PageTableFlags::GLOBAL;
    for page in (bottom..bottom + STACK_SIZE).step_by(PAGE_SIZE as usize) {
        let paddr = frame::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        kernel.map(page, paddr, flags, &mut frame::alloc_zeroed)?;
    }
    Ok(bottom + STACK_SIZE)
}
