//! How a strategy's tables are carved out of one flat, zero-initialised region of words.
//!
//! Tables hold indices, never pointers, so the region can be mapped at different addresses
//! in different processes. A [`Planner`] lays out spans of words (shared per-object arrays
//! and per-core arrays) rounded to whole cache lines, so that no two cores' private words
//! share a line and no per-core word shares a line with a shared one. This module owns the
//! arithmetic only; it never touches the words' contents except to check they are zero.

use crate::Word;

/// Words in one 64-byte cache line.
pub const LINE_WORDS: usize = 8;

/// The size of a strategy's tables and its tunables. All strategies read the same config
/// and ignore the tunables that are not theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Objects are named `0..n_objects` (frame numbers). At most `u32::MAX - 1`.
    pub n_objects: usize,
    /// Callers pass `core < n_cores` to every per-core operation.
    pub n_cores: usize,
    /// RefCache: delta-cache slots per core (a power of two).
    pub cache_slots: usize,
    /// Deferred: a client tries to flush its decrements at this many; its buffers hold twice
    /// as many, and a full buffer flushes under a blocking lock.
    pub batch: usize,
    /// Sloppy: spare references a core may keep per object before it returns half.
    pub spares: u64,
}

impl Config {
    /// A config with the default tunables.
    pub const fn new(n_objects: usize, n_cores: usize) -> Self {
        Config { n_objects, n_cores, cache_slots: 512, batch: 32, spares: 16 }
    }

    pub(crate) fn validate(&self) -> Result<(), LayoutError> {
        if self.n_objects == 0 || self.n_objects >= u32::MAX as usize {
            return Err(LayoutError::BadObjectCount);
        }
        if self.n_cores == 0 || self.n_cores > u32::MAX as usize {
            return Err(LayoutError::BadCoreCount);
        }
        if !self.cache_slots.is_power_of_two() {
            return Err(LayoutError::BadTunable);
        }
        if self.batch == 0 || self.spares < 2 {
            return Err(LayoutError::BadTunable);
        }
        Ok(())
    }
}

/// Why a region cannot hold a strategy's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// `n_objects` is zero or does not fit a `u32` index.
    BadObjectCount,
    /// `n_cores` is zero or too large.
    BadCoreCount,
    /// A tunable is out of range (`cache_slots` not a power of two, `batch` zero, `spares < 2`).
    BadTunable,
    /// The region has `given` words; the tables need `needed`.
    TooSmall { needed: usize, given: usize },
    /// The region is not zero-initialised (first non-zero word given).
    NotZeroed { word: usize },
}

/// Hands out consecutive, line-aligned spans of words.
pub(crate) struct Planner {
    next: usize,
}

impl Planner {
    pub(crate) fn new() -> Self {
        Planner { next: 0 }
    }

    fn take(&mut self, words: usize) -> usize {
        let off = self.next;
        self.next += words.div_ceil(LINE_WORDS) * LINE_WORDS;
        off
    }

    /// `n` records of `width` words each, shared by all cores.
    #[inline]
    pub(crate) fn shared(&mut self, n: usize, width: usize) -> Span {
        Span { off: self.take(n * width), n, width }
    }

    /// One array of `n` records of `width` words for each of `n_cores` cores, each array on
    /// its own lines.
    pub(crate) fn per_core(&mut self, n_cores: usize, n: usize, width: usize) -> PerCore {
        let stride = (n * width).div_ceil(LINE_WORDS) * LINE_WORDS;
        let off = self.take(stride * n_cores);
        PerCore { off, stride, n_cores, n, width }
    }

    pub(crate) fn total(&self) -> usize {
        self.next
    }
}

/// A shared array of records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    off: usize,
    n: usize,
    width: usize,
}

impl Span {
    /// Word `field` of record `i`. Panics if `i` is out of range: an object index past
    /// `n_objects` is a caller bug, and must not silently land in another table.
    #[inline]
    pub(crate) fn at<'m>(&self, mem: &'m [Word], i: usize, field: usize) -> &'m Word {
        assert!(i < self.n, "object index out of range");
        debug_assert!(field < self.width);
        &mem[self.off + i * self.width + field]
    }
}

/// One array of records per core.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PerCore {
    off: usize,
    stride: usize,
    n_cores: usize,
    n: usize,
    width: usize,
}

impl PerCore {
    /// Word `field` of record `i` in `core`'s array. Panics on an out-of-range core or index.
    #[inline]
    pub(crate) fn at<'m>(&self, mem: &'m [Word], core: usize, i: usize, field: usize) -> &'m Word {
        assert!(core < self.n_cores, "core out of range");
        assert!(i < self.n, "index out of range");
        debug_assert!(field < self.width);
        &mem[self.off + core * self.stride + i * self.width + field]
    }
}

/// Checks that `mem` is big enough and all zero, as every strategy's initial state is the
/// all-zero one (every object free).
pub(crate) fn claim(mem: &[Word], needed: usize) -> Result<(), LayoutError> {
    if mem.len() < needed {
        return Err(LayoutError::TooSmall { needed, given: mem.len() });
    }
    match mem[..needed].iter().position(|w| w.load(crate::sync::Ordering::Relaxed) != 0) {
        Some(word) => Err(LayoutError::NotZeroed { word }),
        None => Ok(()),
    }
}
