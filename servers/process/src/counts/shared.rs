//! The strategies placed here: `libs/refcount` run by each server on its
//! own CPU (`core` = our index), over the region the memory server set up
//! and every process server maps writable. Every operation is a direct
//! call on shared memory, no message: `atomic` is the `fetch_add` /
//! `fetch_sub` of Linux's `get_page` / `put_page`, `deferred-shared` FTL OS
//! with the manager's lock word in the region, and the others as their
//! papers place them. We report our own quiescent points (between
//! requests, when idle), never another core's. Frames a strategy frees, on
//! whichever core it notices, come back to that core's stock.

use alloc::sync::Arc;
use alloc::vec::Vec;

use abi::cap::Rights;
use abi::msg::IpcBuffer;
use abi::process::Strategy;
use abi::syscall::MAP_BATCH_MAX;
use proto::memory::{AttachPart, MemoryReply, MemoryRequest};
use proto::{MemoryProtocol, ProtoError};
use refcount::{Atomic, Biased, Config, Deferred, Paygo, PercpuRef, RefCache, RefCount, Sloppy, Snzi, Striped, Word};
use rt::mem::PAGE_SIZE;
use rt::sys;

use crate::link::Link;
use crate::space::Page;
use crate::{slot, system};

/// A strategy's operations as a trait object, shared by every server
/// thread (each passes its own core).
pub trait SharedCounts: Send + Sync {
    fn create(&self, core: usize, frame: u32);
    fn inc(&self, core: usize, frame: u32);
    fn inc_batch(&self, core: usize, frames: &[u32]);
    fn dec_batch(&self, core: usize, frames: &[u32], freed: &mut dyn FnMut(u32));
    fn try_remove_unique(&self, core: usize, frame: u32) -> bool;
    fn quiescent(&self, core: usize, freed: &mut dyn FnMut(u32));
}

struct Dyn<S>(S);

impl<S: RefCount + Send> SharedCounts for Dyn<S> {
    fn create(&self, core: usize, frame: u32) {
        self.0.create(core, frame);
    }
    fn inc(&self, core: usize, frame: u32) {
        self.0.inc(core, frame);
    }
    fn inc_batch(&self, core: usize, frames: &[u32]) {
        self.0.inc_batch(core, frames);
    }
    fn dec_batch(&self, core: usize, frames: &[u32], freed: &mut dyn FnMut(u32)) {
        self.0.dec_batch(core, frames, &mut |f| freed(f));
    }
    fn try_remove_unique(&self, core: usize, frame: u32) -> bool {
        self.0.try_remove_unique(core, frame)
    }
    fn quiescent(&self, core: usize, freed: &mut dyn FnMut(u32)) {
        self.0.quiescent(core, &mut |f| freed(f));
    }
}

/// Where the region is mapped in our space.
#[derive(Clone, Copy)]
pub struct RegionView {
    pub at: u64,
    pub pages: u64,
}

fn config() -> Config {
    let sys = system::get();
    Config::new(sys.pool_frames() as usize, usize::from(sys.cpus))
}

fn words_needed(strategy: Strategy) -> usize {
    let config = config();
    match strategy {
        Strategy::Atomic => Atomic::<&[Word]>::words_needed(&config),
        Strategy::DeferredShared => Deferred::<&[Word]>::words_needed(&config),
        Strategy::Percpu => PercpuRef::<&[Word]>::words_needed(&config),
        Strategy::RefCache => RefCache::<&[Word]>::words_needed(&config),
        Strategy::Paygo => Paygo::<&[Word]>::words_needed(&config),
        Strategy::Sloppy => Sloppy::<&[Word]>::words_needed(&config),
        Strategy::Striped => Striped::<&[Word]>::words_needed(&config),
        Strategy::Snzi => Snzi::<&[Word]>::words_needed(&config),
        Strategy::Biased => Biased::<&[Word]>::words_needed(&config),
        Strategy::Deferred | Strategy::AtomicIpc => 0,
    }
}

fn over<S: RefCount<Mem = &'static [Word]> + Send + 'static>(region: &'static [Word]) -> Option<Arc<dyn SharedCounts>> {
    let strategy = S::new_in(region, config()).ok()?;
    Some(Arc::new(Dyn(strategy)))
}

/// `strategy` laid out over the zeroed `region`.
fn build(strategy: Strategy, region: &'static [Word]) -> Option<Arc<dyn SharedCounts>> {
    match strategy {
        Strategy::Atomic => over::<Atomic<_>>(region),
        Strategy::DeferredShared => over::<Deferred<_>>(region),
        Strategy::Percpu => over::<PercpuRef<_>>(region),
        Strategy::RefCache => over::<RefCache<_>>(region),
        Strategy::Paygo => over::<Paygo<_>>(region),
        Strategy::Sloppy => over::<Sloppy<_>>(region),
        Strategy::Striped => over::<Striped<_>>(region),
        Strategy::Snzi => over::<Snzi<_>>(region),
        Strategy::Biased => over::<Biased<_>>(region),
        Strategy::Deferred | Strategy::AtomicIpc => None,
    }
}

/// Asks the memory server where the (zeroed) region of `strategy` is, maps
/// it writable at a fresh window of our space, and lays the strategy out
/// over it: the one instance every server thread uses.
pub fn map_region(buffer: &mut IpcBuffer, strategy: Strategy) -> Result<(RegionView, Arc<dyn SharedCounts>), ProtoError> {
    let words = words_needed(strategy);
    let MemoryReply::Frames { runs } =
        rt::client::call::<MemoryProtocol>(slot::MEMORY, buffer, &MemoryRequest::Attach { part: AttachPart::Region })?
    else {
        return Err(ProtoError::Malformed);
    };
    let pages: u64 = runs.iter().map(|run| u64::from(run.count)).sum();
    if pages * PAGE_SIZE < words as u64 * 8 {
        return Err(ProtoError::Malformed);
    }
    let sys = system::get();
    let at = sys.pages.window(pages);
    let rw = Rights::READ.union(Rights::WRITE);
    let mut next = at;
    for run in &runs {
        for first in (0..u64::from(run.count)).step_by(MAP_BATCH_MAX as usize) {
            let count = MAP_BATCH_MAX.min(u64::from(run.count) - first);
            sys::map_batch(slot::SPACE, slot::POOL, run.first + first, next + first * PAGE_SIZE, count, rw)
                .map_err(|_| ProtoError::NoMemory)?;
        }
        next += u64::from(run.count) * PAGE_SIZE;
    }
    // SAFETY: `pages` pages were just mapped writable at `at`, at least
    // `words` words, for as long as this strategy is in force (a swap
    // replaces it while every server is paused); their words are atomics,
    // shared by every process server and the memory server.
    let region = unsafe { core::slice::from_raw_parts(at as *const Word, words) };
    let counts = build(strategy, region).ok_or(ProtoError::Malformed)?;
    Ok((RegionView { at, pages }, counts))
}

pub struct Shared {
    counts: Arc<dyn SharedCounts>,
    core: usize,
    /// Increments of the fork in progress.
    incs: Vec<u32>,
}

impl Shared {
    /// The strategy in force, as core `core`.
    pub fn new(core: u16) -> Self {
        let counts = system::get().shared_counts().expect("a shared strategy is laid out before any server counts with it");
        Self { counts, core: usize::from(core), incs: Vec::new() }
    }

    pub fn create(&mut self, frame: u32) {
        self.counts.create(self.core, frame);
    }

    pub fn share(&mut self, frame: u32) {
        self.incs.push(frame);
    }

    pub fn commit(&mut self) {
        self.counts.inc_batch(self.core, &self.incs);
        self.incs.clear();
    }

    pub fn release(&mut self, link: &mut Link, pages: impl Iterator<Item = Page>) {
        let frames: Vec<u32> = pages.map(|page| page.frame).collect();
        self.counts.dec_batch(self.core, &frames, &mut |frame| link.put(frame));
    }

    pub fn try_remove_unique(&mut self, frame: u32) -> bool {
        self.counts.try_remove_unique(self.core, frame)
    }

    pub fn quiescent(&mut self, link: &mut Link) {
        self.counts.quiescent(self.core, &mut |frame| link.put(frame));
    }
}
