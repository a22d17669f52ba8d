//! The sharing state of every frame, behind one interface whatever the
//! strategy and its placement (`abi::process::Placement`):
//!
//! - `table`: the strategies placed here (deferred, atomic-ipc): one word
//!   per frame of the counter table, applied by this server's one thread,
//!   the single lock of the deferred manager, in the name of the process
//!   server (`client`) whose batch it is.
//! - `library`: the strategies placed in the process servers (atomic,
//!   deferred-shared and the rest of `libs/refcount`), over a region this
//!   server sets up and the process servers map writable. This server only
//!   reads it (census, swaps) and, during a swap, while every process server
//!   is paused, settles it and fills the next one.

mod library;
mod table;

use alloc::boxed::Box;

use abi::process::Strategy;
use proto::ProtoError;
use proto::memory::RefOp;
use refcount::{Atomic, Biased, Config, Deferred, Paygo, PercpuRef, RefCache, Sloppy, Snzi, Striped, Word};

pub use library::Library;
pub use table::Table;

/// Frames held by one reference and frames shared.
#[derive(Default)]
pub struct Census {
    pub owned: u64,
    pub shared: u64,
}

/// Where a frame whose count reached zero goes (the pool).
pub type Freed<'a> = &'a mut dyn FnMut(u32);

pub trait Counts {
    /// A free frame is handed out, with one reference.
    fn hand_out(&mut self, frame: u32);
    /// Whether `frame` may come back to the pool: held by one reference
    /// here, or free in a strategy placed in the process servers.
    fn may_return(&self, frame: u32) -> bool;
    /// Its holder drops the one reference to `frame` it holds alone.
    fn free(&mut self, frame: u32, freed: Freed);
    /// Applies a batch of a client's counter changes, increments first, or
    /// none of them: the caller has checked that every frame is the
    /// client's; `NotOwned` if one is free here, `InvalidArgument` if a
    /// count would go below zero (or past any count references can make),
    /// and for a strategy placed in the process servers.
    fn apply(&mut self, ops: &[RefOp], freed: Freed) -> Result<(), ProtoError>;
    /// Whether its holder's reference to `frame` (checked by the caller)
    /// is the only one. `InvalidArgument` for a strategy placed in the
    /// process servers.
    fn try_remove_unique(&mut self, frame: u32) -> Result<bool, ProtoError>;
    /// With every process server paused (a swap): every core's quiescent
    /// point, until every frame at zero is freed.
    fn settle_paused(&mut self, freed: Freed);
    /// Owned and shared frames among those `in_use`.
    fn census(&self, frames: u32, in_use: &dyn Fn(u32) -> bool) -> Census;
    /// The references to `frame` (0 for a free one), exact once settled.
    /// A deferred `OWNED` frame counts 1.
    fn count(&self, frame: u32) -> u64;
    /// Takes over the free (in these counts) `frame` with `count`
    /// references: a swap hands every frame over this way to a strategy
    /// placed here. One placed in the process servers is filled there.
    fn adopt(&mut self, _frame: u32, _count: u64) {}
}

/// Words of region the strategy needs beyond the counter table, for
/// `frames` frames and `clients` process servers (0 for those placed here).
/// The process servers compute the same from the same `config`.
pub fn region_words(strategy: Strategy, frames: u32, clients: u16) -> usize {
    let config = config(frames, clients);
    match strategy {
        Strategy::Deferred | Strategy::AtomicIpc => 0,
        Strategy::Atomic => Library::<Atomic<&'static [Word]>>::words_needed(&config),
        Strategy::DeferredShared => Library::<Deferred<&'static [Word]>>::words_needed(&config),
        Strategy::Percpu => Library::<PercpuRef<&'static [Word]>>::words_needed(&config),
        Strategy::RefCache => Library::<RefCache<&'static [Word]>>::words_needed(&config),
        Strategy::Paygo => Library::<Paygo<&'static [Word]>>::words_needed(&config),
        Strategy::Sloppy => Library::<Sloppy<&'static [Word]>>::words_needed(&config),
        Strategy::Striped => Library::<Striped<&'static [Word]>>::words_needed(&config),
        Strategy::Snzi => Library::<Snzi<&'static [Word]>>::words_needed(&config),
        Strategy::Biased => Library::<Biased<&'static [Word]>>::words_needed(&config),
    }
}

/// The tables' shape: one object per pool frame, one core per process
/// server (the process servers build their views with the same).
fn config(frames: u32, clients: u16) -> Config {
    Config::new(frames as usize, usize::from(clients.max(1)))
}

/// The counts of `strategy` over the counter `table` and, for the library
/// strategies, a zeroed `region` of `region_words` words.
pub fn build(
    strategy: Strategy,
    table: &'static [Word],
    region: &'static [Word],
    clients: u16,
) -> Result<Box<dyn Counts>, refcount::LayoutError> {
    let config = config(table.len() as u32, clients);
    Ok(match strategy {
        Strategy::Deferred | Strategy::AtomicIpc => Box::new(Table::new(table, strategy)),
        Strategy::Atomic => Box::new(Library::<Atomic<_>>::new(region, config)?),
        Strategy::DeferredShared => Box::new(Library::<Deferred<_>>::new(region, config)?),
        Strategy::Percpu => Box::new(Library::<PercpuRef<_>>::new(region, config)?),
        Strategy::RefCache => Box::new(Library::<RefCache<_>>::new(region, config)?),
        Strategy::Paygo => Box::new(Library::<Paygo<_>>::new(region, config)?),
        Strategy::Sloppy => Box::new(Library::<Sloppy<_>>::new(region, config)?),
        Strategy::Striped => Box::new(Library::<Striped<_>>::new(region, config)?),
        Strategy::Snzi => Box::new(Library::<Snzi<_>>::new(region, config)?),
        Strategy::Biased => Box::new(Library::<Biased<_>>::new(region, config)?),
    })
}
