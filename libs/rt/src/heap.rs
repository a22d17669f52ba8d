//! The program heap: the global allocator over pages the program maps for
//! itself. `alloc` (Vec, Box, String) works once [`init`] ran; before, an
//! allocation fails and panics.

use abi::syscall::SysError;
use linked_list_allocator::LockedHeap;

use crate::mem::{PAGE_SIZE, PageSource};

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Maps `pages` fresh pages from `source` and makes them the heap.
pub fn init(source: &PageSource, pages: u64) -> Result<(), SysError> {
    let start = source.alloc(pages)?;
    // SAFETY: the range was just mapped writable for this program and is
    // used by nothing else; `init` is called once.
    unsafe { HEAP.lock().init(start as *mut u8, (pages * PAGE_SIZE) as usize) };
    Ok(())
}

/// Bytes in use and bytes free.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.used(), heap.free())
}
