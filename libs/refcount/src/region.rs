//! A heap-allocated, zeroed, cache-line-aligned region of words for host-side tables.
//!
//! The memory server places tables over memory it maps; tests, benchmarks and host tools
//! use this instead. It over-allocates by one line and starts at the first 64-byte boundary,
//! so per-core spans land on their own lines without any `unsafe`.

extern crate alloc;

use alloc::boxed::Box;
use core::ops::Deref;

use crate::Word;
use crate::layout::LINE_WORDS;

/// Owned table memory. Dereferences to at least the `len` words asked for (the slack of the
/// alignment is left at the end), starting on a cache line.
pub struct Region {
    words: Box<[Word]>,
    start: usize,
}

impl Region {
    /// `len` zero words, the first one on a cache-line boundary.
    pub fn zeroed(len: usize) -> Self {
        let words: Box<[Word]> = (0..len + LINE_WORDS).map(|_| Word::new(0)).collect();
        let start = first_aligned(&words);
        Region { words, start }
    }
}

#[cfg(not(loom))]
fn first_aligned(words: &[Word]) -> usize {
    let addr = words.as_ptr() as usize;
    (64 - addr % 64) % 64 / core::mem::size_of::<Word>()
}

/// Loom's atomics are not plain words; alignment means nothing there.
#[cfg(loom)]
fn first_aligned(_: &[Word]) -> usize {
    0
}

impl Deref for Region {
    type Target = [Word];

    #[inline]
    fn deref(&self) -> &[Word] {
        &self.words[self.start..]
    }
}
