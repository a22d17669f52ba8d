//! The memory a strategy of `libs/refcount` keeps its tables in: pages of
//! this server's range mapped into its own space. The first comes from the
//! start of the range; a swap takes the next one from the pool, and gives
//! the old one back to it.

use alloc::vec::Vec;

use abi::cap::Rights;
use abi::syscall::MAP_BATCH_MAX;
use proto::memory::{FrameRun, Runs};
use refcount::Word;
use rt::mem::{PAGE_SIZE, PageSource};
use rt::sys;

use crate::pool::Pool;
use crate::slot;

/// Frames `first .. first + count` of the range.
#[derive(Clone, Copy)]
struct Run {
    first: u64,
    count: u64,
}

pub struct Region {
    at: u64,
    words: usize,
    runs: Vec<Run>,
}

fn pages_for(words: usize) -> u64 {
    (words as u64 * 8).div_ceil(PAGE_SIZE)
}

impl Region {
    /// No region (deferred and atomic need none).
    pub fn none() -> Self {
        Self { at: 0, words: 0, runs: Vec::new() }
    }

    /// `words` zeroed words from the start of the range, before the pool.
    pub fn first(pages: &PageSource, words: usize) -> Option<Self> {
        if words == 0 {
            return Some(Self::none());
        }
        let count = pages_for(words);
        let first = pages.frames(0);
        let at = pages.alloc(count).ok()?;
        // SAFETY: `count` pages were just mapped writable at `at` for this
        // server alone; a server that died before us may have used them.
        unsafe { core::ptr::write_bytes(at as *mut u8, 0, (count * PAGE_SIZE) as usize) };
        Some(Self { at, words, runs: alloc::vec![Run { first, count }] })
    }

    /// `words` words of frames from the pool, mapped and zeroed; `None`
    /// (and nothing taken) when the pool is short.
    pub fn from_pool(pages: &PageSource, pool: &mut Pool, words: usize) -> Option<Self> {
        if words == 0 {
            return Some(Self::none());
        }
        let count = pages_for(words);
        if pool.free_frames() < count {
            return None;
        }
        let mut region = Self { at: pages.window(count), words, runs: Vec::new() };
        let mut mapped = 0;
        while mapped < count {
            for run in pool.alloc(u16::try_from(count - mapped).unwrap_or(u16::MAX), crate::pool::SERVER) {
                let run = Run { first: run.first, count: u64::from(run.count) };
                region.runs.push(run);
                if map(run, region.at + mapped * PAGE_SIZE).is_none() {
                    region.release(pool);
                    return None;
                }
                mapped += run.count;
            }
        }
        // SAFETY: `count` pages were just mapped writable at `at` for this
        // server alone; the frames may hold a previous user's data.
        unsafe { core::ptr::write_bytes(region.at as *mut u8, 0, (count * PAGE_SIZE) as usize) };
        Some(region)
    }

    /// Whether `frame` is one of the region's.
    pub fn contains(&self, frame: u64) -> bool {
        self.runs.iter().any(|run| (run.first..run.first + run.count).contains(&frame))
    }

    /// The region's frames, in order, for a process server to map; `None`
    /// for no region, or one of more runs than a reply carries.
    pub fn runs(&self) -> Option<Runs> {
        if self.words == 0 {
            return None;
        }
        let mut runs = Runs::new();
        for run in &self.runs {
            runs.push(FrameRun::new(run.first, u16::try_from(run.count).ok()?)).ok()?;
        }
        Some(runs)
    }

    pub fn words(&self) -> &'static [Word] {
        if self.words == 0 {
            return &[];
        }
        // SAFETY: `words` words are mapped writable at `at` for as long as
        // the region lives, and only this server's thread uses them.
        unsafe { core::slice::from_raw_parts(self.at as *const Word, self.words) }
    }

    /// Unmaps the region and gives its frames to the pool.
    pub fn release(self, pool: &mut Pool) {
        let mut at = self.at;
        for run in &self.runs {
            for first in (0..run.count).step_by(MAP_BATCH_MAX as usize) {
                let _ = sys::unmap(slot::SPACE, at + first * PAGE_SIZE, MAP_BATCH_MAX.min(run.count - first));
            }
            at += run.count * PAGE_SIZE;
            if pool.handed_out(run.first) {
                (run.first..run.first + run.count).for_each(|frame| pool.release(frame));
            } else {
                // The first region, from before the pool.
                pool.grow_down(run.first, run.count);
            }
        }
    }
}

/// Maps `run` writable at `at`, in batches.
fn map(run: Run, at: u64) -> Option<()> {
    let rw = Rights::READ.union(Rights::WRITE);
    for first in (0..run.count).step_by(MAP_BATCH_MAX as usize) {
        let count = MAP_BATCH_MAX.min(run.count - first);
        sys::map_batch(slot::SPACE, slot::FRAMES, run.first + first, at + first * PAGE_SIZE, count, rw).ok()?;
    }
    Some(())
}
