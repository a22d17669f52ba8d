//! Access to user memory from the kernel: every range is checked against the
//! user half and against the current page tables (present and
//! user-accessible) before one byte is read. These helpers are the only
//! kernel code that touches user pages by their user address: SMAP (where
//! on) lets them through alone.

use abi::syscall::{SysError, USER_END};

use crate::arch::paging::{PAGE_SIZE, PageTableFlags, Root};

/// Whether `[ptr, ptr + len)` lies in the user half and every page of it is
/// mapped user-accessible (and writable, when `write`) in the running space.
pub fn check_range(ptr: u64, len: u64, write: bool) -> Result<(), SysError> {
    if len == 0 {
        return Ok(());
    }
    let end = ptr.checked_add(len).ok_or(SysError::BadAddress)?;
    if end > USER_END {
        return Err(SysError::BadAddress);
    }
    let mut required = PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE;
    if write {
        required |= PageTableFlags::WRITABLE;
    }
    let space = Root::current();
    let first = ptr & !(PAGE_SIZE - 1);
    for page in (first..end).step_by(PAGE_SIZE as usize) {
        match space.translate(page) {
            Some((_, flags)) if flags.contains(required) => {}
            _ => return Err(SysError::BadAddress),
        }
    }
    Ok(())
}

/// Copies `out.len()` bytes from user address `ptr`.
pub fn copy_from_user(ptr: u64, out: &mut [u8]) -> Result<(), SysError> {
    check_range(ptr, out.len() as u64, false)?;
    // SAFETY: the whole range is mapped user-readable in the running space,
    // and no other thread can unmap it while this CPU runs in the kernel
    // (one program runs at a time).
    crate::arch::user_access(|| unsafe { core::ptr::copy_nonoverlapping(ptr as *const u8, out.as_mut_ptr(), out.len()) });
    Ok(())
}
