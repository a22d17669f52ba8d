//! The program heap: the global allocator over pages the program maps for
//! itself. `alloc` (Vec, Box, String) works once [`init`] ran; before, an
//! allocation fails and panics. Talc keeps free chunks in size bins, so an
//! allocation or a free costs the same however fragmented the heap is (a
//! sorted free list made every free of the process servers' page maps walk
//! the list).

use abi::syscall::SysError;
use talc::{ErrOnOom, Span, Talc, Talck};

use crate::mem::{PAGE_SIZE, PageSource};

#[global_allocator]
static HEAP: Talck<spin::Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

/// Maps `pages` fresh pages from `source` and makes them the heap.
pub fn init(source: &PageSource, pages: u64) -> Result<(), SysError> {
    let start = source.alloc(pages)?;
    // SAFETY: the range was just mapped writable for this program and is
    // used by nothing else; `init` is called once.
    let claimed = unsafe { HEAP.lock().claim(Span::from_base_size(start as *mut u8, (pages * PAGE_SIZE) as usize)) };
    // Claiming fails only for a span too small to hold the allocator's own
    // metadata.
    claimed.map(|_| ()).map_err(|()| SysError::BadArgument)
}

/// Bytes in use and bytes free.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    let counters = heap.get_counters();
    (counters.allocated_bytes, counters.available_bytes)
}
