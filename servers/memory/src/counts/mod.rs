//! The sharing state of every frame, behind one interface whatever the
//! strategy: this server's thread is its only user, so it is the single
//! lock of the deferred manager, and every strategy's "cores" are the
//! process servers (`client` = the server's CPU), whose batches it applies
//! in their name.
//!
//! - `table`: deferred and atomic, whose count is one word of the counter
//!   table that process servers read without IPC.
//! - `library`: the other strategies of `libs/refcount`, over a region of
//!   this server's memory; process servers ask for `try_remove_unique`.

mod library;
mod table;

use alloc::boxed::Box;

use abi::process::Strategy;
use proto::ProtoError;
use proto::memory::RefOp;
use refcount::{Biased, Config, Paygo, PercpuRef, RefCache, Sloppy, Snzi, Striped, Word};

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
    /// A free frame goes to `client`, with one reference.
    fn hand_out(&mut self, client: u16, frame: u32);
    /// Whether `frame` is held by one reference (so its holder may free it).
    fn held_alone(&self, frame: u32) -> bool;
    /// `client` drops the one reference to `frame` it holds alone.
    fn free(&mut self, client: u16, frame: u32, freed: Freed);
    /// Applies a batch of `client`'s counter changes, increments first.
    /// `in_use` says which frames are handed out; changes of others are
    /// skipped and reported as `NotOwned` once the rest is applied.
    fn apply(&mut self, client: u16, ops: &[RefOp], in_use: &dyn Fn(u32) -> bool, freed: Freed) -> Result<(), ProtoError>;
    /// `client` is between operations (and, as the one thread that runs
    /// them, so is every other client): the strategy's deferred work.
    fn quiescent(&mut self, client: u16, freed: Freed);
    /// Whether `client`'s reference to `frame` is the only one; strategies
    /// with an owned state switch to it.
    fn try_remove_unique(&mut self, client: u16, frame: u32) -> bool;
    /// Every client's quiescent point, until every frame at zero is freed.
    fn settle(&mut self, freed: Freed);
    /// Owned and shared frames among those `in_use`.
    fn census(&self, frames: u32, in_use: &dyn Fn(u32) -> bool) -> Census;
    /// The references to `frame` (0 for a free one), exact once settled.
    /// A deferred `OWNED` frame counts 1: a swap first has its holders make
    /// every fork's implicit 2 explicit (`materialize`).
    fn count(&self, frame: u32) -> u64;
    /// Deferred: the `OWNED` frame, shared by a fork that sent no message,
    /// counts 2 from now on. A no-op for the other strategies.
    fn materialize(&mut self, _frame: u32) {}
    /// Takes over the free (in these counts) `frame` with `count`
    /// references: a swap hands every frame over this way.
    fn adopt(&mut self, frame: u32, count: u64);
}

/// Words of region the strategy needs beyond the counter table, for
/// `frames` frames and `clients` process servers.
pub fn region_words(strategy: Strategy, frames: u32, clients: u16) -> usize {
    let config = config(frames, clients);
    match strategy {
        Strategy::Deferred | Strategy::Atomic => 0,
        Strategy::Percpu => Library::<PercpuRef<&'static [Word]>>::words_needed(&config),
        Strategy::RefCache => Library::<RefCache<&'static [Word]>>::words_needed(&config),
        Strategy::Paygo => Library::<Paygo<&'static [Word]>>::words_needed(&config),
        Strategy::Sloppy => Library::<Sloppy<&'static [Word]>>::words_needed(&config),
        Strategy::Striped => Library::<Striped<&'static [Word]>>::words_needed(&config),
        Strategy::Snzi => Library::<Snzi<&'static [Word]>>::words_needed(&config),
        Strategy::Biased => Library::<Biased<&'static [Word]>>::words_needed(&config),
    }
}

fn config(frames: u32, clients: u16) -> Config {
    Config::new(frames as usize, usize::from(clients.max(1)))
}

/// The counts of `strategy` over the counter `table` and, for the library
/// strategies, a zeroed `region` of `region_words` words.
pub fn build(strategy: Strategy, table: &'static [Word], region: &'static [Word], clients: u16) -> Result<Box<dyn Counts>, refcount::LayoutError> {
    let config = config(table.len() as u32, clients);
    Ok(match strategy {
        Strategy::Deferred | Strategy::Atomic => Box::new(Table::new(table, strategy)),
        Strategy::Percpu => Box::new(Library::<PercpuRef<_>>::new(region, config)?),
        Strategy::RefCache => Box::new(Library::<RefCache<_>>::new(region, config)?),
        Strategy::Paygo => Box::new(Library::<Paygo<_>>::new(region, config)?),
        Strategy::Sloppy => Box::new(Library::<Sloppy<_>>::new(region, config)?),
        Strategy::Striped => Box::new(Library::<Striped<_>>::new(region, config)?),
        Strategy::Snzi => Box::new(Library::<Snzi<_>>::new(region, config)?),
        Strategy::Biased => Box::new(Library::<Biased<_>>::new(region, config)?),
    })
}
