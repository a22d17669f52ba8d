//! Memory the workloads touch: a [`Region`] of pages this process mapped
//! (demand-zero), with volatile byte and word accesses bounded by its size,
//! and the page patterns the copy-on-write checks fill and compare. It
//! holds the only unsafe memory accesses of the crate besides the
//! deliberate faults of `crash`.

use proto::ProtoError;

pub const PAGE_SIZE: u64 = 4096;
pub const WORDS_PER_PAGE: u64 = PAGE_SIZE / 8;

/// Pages mapped into this process, writable, that no Rust reference points
/// into. A fork copies the mapping, so the same `Region` stays valid in the
/// child; `unmap` consumes it.
#[derive(Debug)]
pub struct Region {
    base: u64,
    pages: u32,
}

impl Region {
    /// Maps `pages` demand-zero pages.
    pub fn map(pages: u32) -> Result<Self, ProtoError> {
        Ok(Self { base: rt::proc::mmap(pages)?, pages })
    }

    /// # Safety
    ///
    /// `base..base + pages * PAGE_SIZE` must be writable memory of this
    /// process (mapped or demand-zero), used only through this `Region`.
    pub unsafe fn from_raw(base: u64, pages: u32) -> Self {
        Self { base, pages }
    }

    pub fn unmap(self) -> Result<(), ProtoError> {
        rt::proc::munmap(self.base, self.pages)
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn pages(&self) -> u32 {
        self.pages
    }

    fn word(&self, page: u32, word: u64) -> *mut u64 {
        assert!(page < self.pages && word < WORDS_PER_PAGE, "access outside the region");
        (self.base + u64::from(page) * PAGE_SIZE + word * 8) as *mut u64
    }

    /// Writes the first byte of `page`.
    pub fn write_byte(&self, page: u32, value: u8) {
        // SAFETY: `word` checked the bounds; the region is ours and writable
        // (the type's invariant), and no reference aliases it.
        unsafe { self.word(page, 0).cast::<u8>().write_volatile(value) }
    }

    pub fn read_byte(&self, page: u32) -> u8 {
        // SAFETY: as in `write_byte`.
        unsafe { self.word(page, 0).cast::<u8>().read_volatile() }
    }

    pub fn write_word(&self, page: u32, word: u64, value: u64) {
        // SAFETY: as in `write_byte`; `word` is 8-byte aligned as the base is
        // page-aligned.
        unsafe { self.word(page, word).write_volatile(value) }
    }

    pub fn read_word(&self, page: u32, word: u64) -> u64 {
        // SAFETY: as in `write_word`.
        unsafe { self.word(page, word).read_volatile() }
    }

    /// Writes one byte into each of the first `pages` pages, making them
    /// resident and private.
    pub fn touch(&self, pages: u32, value: u8) {
        for page in 0..pages {
            self.write_byte(page, value);
        }
    }

    /// Fills every word of `page` with the pattern of (`page`, `tag`).
    pub fn fill(&self, page: u32, tag: u64) {
        for word in 0..WORDS_PER_PAGE {
            self.write_word(page, word, pattern(page, tag, word));
        }
    }

    /// Whether every word of `page` holds the pattern of (`page`, `tag`).
    pub fn holds(&self, page: u32, tag: u64) -> bool {
        (0..WORDS_PER_PAGE).all(|word| self.read_word(page, word) == pattern(page, tag, word))
    }
}

/// A word that differs with the page, the writer's tag and the position;
/// its top bit is set, so a demand-zero page never holds a pattern.
fn pattern(page: u32, tag: u64, word: u64) -> u64 {
    (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(page) << 32) ^ word) | 1 << 63
}
