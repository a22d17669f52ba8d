//! How one server counts references to the frames of its processes' pages,
//! whatever the strategy and wherever it runs. Fork, exit, unmap and the
//! pager call this, and never ask which strategy is in force:
//!
//! - `deferred`: the FTL OS manager in the memory server, over the counter
//!   table (writable here for the count-1 shortcuts), fed by batches;
//! - `ipc`: atomic-ipc, every change a message before the operation returns;
//! - `shared`: a strategy of `libs/refcount` run here, on our own CPU as
//!   its core, over the region every process server maps.
//!
//! A page's `SHARED` flag means "mapped copy-on-write"; what a frame's count
//! looks like is the strategy's business. Frames whose last reference goes
//! come back to our stock (`Link`).

mod buffer;
mod deferred;
mod ipc;
mod shared;

use abi::msg::IpcBuffer;
use abi::process::{Placement, Strategy};
use proto::ProtoError;
use proto::memory::{MemoryReply, MemoryRequest};

use crate::cow::{CowMemory, Hints};
use crate::link::Link;
use crate::space::Page;
use crate::system;

pub use shared::{RegionView, SharedCounts, map_region};

enum Counter {
    Deferred(deferred::Deferred),
    Ipc(ipc::Ipc),
    Shared(shared::Shared),
}

pub struct MemClient {
    link: Link,
    /// The copy-on-write hints, when the kernel copies for us (`cow`).
    hints: Option<Hints>,
    strategy: Strategy,
    counter: Counter,
}

fn counter_for(strategy: Strategy, core: u16) -> Counter {
    match strategy {
        Strategy::Deferred => Counter::Deferred(deferred::Deferred::new()),
        Strategy::AtomicIpc => Counter::Ipc(ipc::Ipc::default()),
        _ => Counter::Shared(shared::Shared::new(core)),
    }
}

impl MemClient {
    pub fn new(client: u16, buffer: &'static mut IpcBuffer) -> Self {
        let strategy = system::get().strategy();
        let hints = system::get().cow.as_ref().map(CowMemory::hints);
        Self { link: Link::new(client, buffer), hints, strategy, counter: counter_for(strategy, client) }
    }

    /// After a swap (every buffer empty): the strategy now in force.
    pub fn follow_swap(&mut self) {
        self.strategy = system::get().strategy();
        self.counter = counter_for(self.strategy, self.link.client);
    }

    pub fn buffer(&mut self) -> &mut IpcBuffer {
        self.link.buffer()
    }

    pub fn call(&mut self, request: &MemoryRequest) -> Result<MemoryReply, ProtoError> {
        self.link.call(request)
    }

    /// A frame for a new page, held by one reference (ours).
    pub fn alloc_page(&mut self) -> Result<u32, ProtoError> {
        let frame = match self.link.take() {
            Err(ProtoError::NoMemory) if self.reports_quiescence() => self.reclaim()?,
            taken => taken?,
        };
        if let Counter::Shared(shared) = &mut self.counter {
            shared.create(frame);
        }
        Ok(frame)
    }

    /// The pool is empty, but a strategy placed here may hold frames whose
    /// count is zero until enough quiescent points have passed: report ours
    /// and have every other server report theirs, a few rounds, until a
    /// frame comes back.
    fn reclaim(&mut self) -> Result<u32, ProtoError> {
        const ROUNDS: usize = 64;
        let sys = system::get();
        for _ in 0..ROUNDS {
            self.quiescent(false);
            sys.nudge(self.link.client, false);
            rt::sys::yield_now();
            match self.link.take() {
                Err(ProtoError::NoMemory) => continue,
                taken => return taken,
            }
        }
        Err(ProtoError::NoMemory)
    }

    /// A free frame at hand, for the kernel's reserve (`cow`); none when
    /// the stock is empty (no message is sent).
    pub fn take_at_hand(&mut self) -> Option<u32> {
        self.link.take_at_hand()
    }

    /// A frame from `take_at_hand` that was never used.
    pub fn put_at_hand(&mut self, frame: u32) {
        self.link.put(frame);
    }

    /// The kernel copied a page into `frame` (from `take_at_hand`): it is
    /// a new page's, held by one reference, as from `alloc_page`.
    pub fn adopt_copy(&mut self, frame: u32) {
        if let Counter::Shared(shared) = &mut self.counter {
            shared.create(frame);
        }
    }

    /// The copy-on-write hints, when the kernel copies for us.
    pub fn hints(&self) -> Option<Hints> {
        self.hints
    }

    /// A frame from `alloc_page` that never got mapped.
    pub fn drop_unmapped(&mut self, frame: u32) {
        self.release(core::iter::once(Page { frame, flags: 0 }));
    }

    /// A fork shares `page` (the parent's; the child gets a copy of it
    /// after): one more reference, and the page is copy-on-write from now.
    /// The caller sets its copy-on-write hint ([`Hints::set`]).
    pub fn share(&mut self, page: &mut Page) {
        match &mut self.counter {
            Counter::Deferred(d) => d.share(&mut self.link, page),
            Counter::Ipc(i) => i.share(page.frame),
            Counter::Shared(s) => s.share(page.frame),
        }
        page.flags |= Page::SHARED;
    }

    /// The end of a fork's sharing: its increments reach the strategy
    /// before the fork returns.
    pub fn commit(&mut self) {
        match &mut self.counter {
            Counter::Deferred(d) => d.commit(&mut self.link),
            Counter::Ipc(i) => i.commit(&mut self.link),
            Counter::Shared(s) => s.commit(),
        }
    }

    /// Drops our reference to each page's frame (an exit, an unmap, an
    /// exec, a copy); their mappings must be gone already. Each frame's
    /// copy-on-write hint then says what is left ([`Hints::release`]): one
    /// reference, where the strategy shows it at no cost (deferred), else
    /// nothing known.
    pub fn release(&mut self, pages: impl Iterator<Item = Page>) {
        let hints = self.hints;
        let sole_allowed = hints.is_some_and(Hints::sole_allowed);
        let unknown = |page: &Page| {
            if let Some(hints) = hints {
                hints.release(page.frame, false);
            }
        };
        match &mut self.counter {
            Counter::Deferred(d) => {
                pages.for_each(|page| {
                    let sole = d.release(&mut self.link, page);
                    if let Some(hints) = hints {
                        hints.release(page.frame, sole && sole_allowed);
                    }
                });
                d.after_release(&mut self.link);
            }
            Counter::Ipc(i) => i.release(&mut self.link, pages.inspect(unknown)),
            Counter::Shared(s) => s.release(&mut self.link, pages.inspect(unknown)),
        }
    }

    /// A write fault on the copy-on-write `page`: whether our reference is
    /// the only one (`try_remove_unique`), so the page may be written in
    /// place; it is then no longer shared.
    pub fn claim_unique(&mut self, page: &mut Page) -> bool {
        let unique = match &mut self.counter {
            Counter::Deferred(d) => d.claim_unique(page.frame),
            Counter::Ipc(_) => system::get().count_of(page.frame) == 1,
            Counter::Shared(s) => s.try_remove_unique(page.frame),
        };
        if unique {
            page.flags &= !Page::SHARED;
        }
        unique
    }

    /// Our CPU is between requests, or idle: the strategy's deferred work.
    /// `idle` flushes buffered decrements too.
    pub fn quiescent(&mut self, idle: bool) {
        match &mut self.counter {
            Counter::Deferred(d) if idle => d.flush(&mut self.link),
            Counter::Deferred(_) | Counter::Ipc(_) => {}
            Counter::Shared(s) => s.quiescent(&mut self.link),
        }
    }

    /// Whether work waits for an idle moment.
    pub fn has_pending(&self) -> bool {
        match &self.counter {
            Counter::Deferred(d) => d.has_pending(),
            Counter::Ipc(_) | Counter::Shared(_) => false,
        }
    }

    /// Whether the strategy needs every core's quiescent reports.
    pub fn reports_quiescence(&self) -> bool {
        self.strategy.placement() == Placement::Shared
    }

    /// Flushes every buffer, reports a quiescent point and returns every
    /// frame at hand.
    pub fn quiesce(&mut self) {
        self.quiescent(true);
        self.link.give_back(0);
    }
}
