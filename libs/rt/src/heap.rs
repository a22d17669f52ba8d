//! The program heap: the global allocator over pages the program maps for
//! itself, and over more memory it may add later ([`grow`]). `alloc` (Vec,
//! Box, String) works once [`init`] ran; before, an allocation fails and
//! panics. Talc keeps free chunks in size bins, so an allocation or a free
//! costs the same however fragmented the heap is (a sorted free list made
//! every free of the process servers' page maps walk the list).

use abi::syscall::SysError;
use talc::{ErrOnOom, Span, Talc, Talck};

use crate::mem::{PAGE_SIZE, PageSource};

#[global_allocator]
static HEAP: Talck<spin::Mutex<()>, ErrOnOom> = Talc::new(ErrOnOom).lock();

/// The span of the heap's memory added last, which adjacent memory
/// extends instead of starting a span of its own.
static LAST: spin::Mutex<Span> = spin::Mutex::new(Span::empty());

/// Maps `pages` fresh pages from `source` and makes them the heap.
pub fn init(source: &PageSource, pages: u64) -> Result<(), SysError> {
    let start = source.alloc(pages)?;
    // SAFETY: the range was just mapped writable for this program and is
    // used by nothing else; `init` is called once.
    unsafe { grow(start as *mut u8, (pages * PAGE_SIZE) as usize) }
}

/// Adds `size` bytes at `base` to the heap: they extend the span added
/// last when they follow it, else they are a span of their own.
///
/// # Safety
///
/// `base .. base + size` is mapped writable for as long as the program
/// lives, and nothing else uses it, now or later.
pub unsafe fn grow(base: *mut u8, size: usize) -> Result<(), SysError> {
    let mut last = LAST.lock();
    let added = Span::from_base_size(base, size);
    let mut heap = HEAP.lock();
    let grown = match last.get_base_acme() {
        // SAFETY: `last` is a span the allocator returned, and the memory
        // after it is the caller's to give (this function's contract).
        Some((start, end)) if end == base => Ok(unsafe { heap.extend(*last, Span::new(start, base.wrapping_add(size))) }),
        // SAFETY: the caller gives the memory (this function's contract).
        _ => unsafe { heap.claim(added) },
    };
    // Claiming fails only for a span too small to hold the allocator's own
    // metadata.
    *last = grown.map_err(|()| SysError::BadArgument)?;
    Ok(())
}

/// Bytes in use and bytes free.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    let counters = heap.get_counters();
    (counters.allocated_bytes, counters.available_bytes)
}
