//! Storage the kernel takes once at boot and keeps: its object pools and
//! the working memory of the walks bounded by them (revoke, cycle
//! reclaim), each sized from RAM (`kernel/sizing.rs`) and laid in one run
//! of frames from the kernel's reserve, reached through the direct map.

use crate::arch::paging::{PAGE_SIZE, phys_to_virt};
use crate::mm::frame;

/// `count` values made by `init(index)`, in frames taken for good; `None`
/// when RAM has no free run that long. Never frees: what boot sizes stays.
pub fn filled<U>(count: usize, mut init: impl FnMut(usize) -> U) -> Option<&'static mut [U]> {
    const { assert!(core::mem::align_of::<U>() <= PAGE_SIZE as usize) };
    if count == 0 {
        return Some(&mut []);
    }
    let bytes = count.checked_mul(core::mem::size_of::<U>())?;
    let base = frame::alloc_run(bytes.div_ceil(PAGE_SIZE as usize).max(1))?;
    let start = phys_to_virt(base).cast::<U>();
    for index in 0..count {
        // SAFETY: the run was just taken for this storage alone, is
        // direct-mapped, page aligned (enough for `U`) and holds `count`
        // values; each is written once before the slice is made.
        unsafe { start.add(index).write(init(index)) };
    }
    // SAFETY: every value was written above, and the frames are never
    // freed or handed out again, so the slice may live for good.
    Some(unsafe { core::slice::from_raw_parts_mut(start, count) })
}
