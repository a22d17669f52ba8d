//! What every server thread shares: the strategy, the memory pool mapped
//! whole into our space (so frames are zeroed and copied without system
//! calls), the memory server's counter table and the region of a strategy
//! placed here (both writable), the boot image, the process table, the slot
//! allocator, which servers are parked idle, and the counters.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};

use abi::cap::{ObjectKind, Rights};
use abi::process::Placement;
use abi::process::Strategy;
use abi::syscall::MAP_BATCH_MAX;
use proto::memory::{AttachPart, MemoryReply, MemoryRequest};
use proto::{MemoryProtocol, ProcessStats};
use rt::mem::{PAGE_SIZE, PageSource};
use rt::sys::{self, Slot};

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::counts::{RegionView, SharedCounts, map_region};
use crate::cow::CowMemory;
use crate::phases::Phases;
use crate::procs::Procs;
use crate::slot;

/// Label of a server's nudge to another to report a quiescent point
/// (badge 0, like the idle threads'; no reply).
pub const NUDGE_LABEL: u64 = 0x9D6E;

/// Where our own heap and stacks come from.
const HEAP_WINDOW: u64 = 0x0000_2000_0000_0000;
/// The heap we start with, 4 MiB of init's frames: its reserve (1 MiB,
/// and the decrement buffers of every server: 0.8 MiB for 4 CPUs and
/// 100,000 frames) and the page maps of small processes (a 4096-page
/// process takes 8 leaves, 35 KiB). More comes from the memory server
/// (`heap`).
const HEAP_PAGES: u64 = 1024;
const TABLE_WINDOW: u64 = 0x0000_3000_0000_0000;
const BOOT_WINDOW: u64 = 0x0000_3800_0000_0000;
const POOL_WINDOW: u64 = 0x0000_4000_0000_0000;

pub struct System {
    /// The strategy in force (`Strategy` index); a swap changes it while
    /// every server is paused.
    strategy: AtomicU8,
    /// Held by the server that coordinates a swap.
    pub swapping: spin::Mutex<()>,
    pub cpus: u16,
    pub pages: PageSource,
    table: &'static [AtomicU64],
    pool_frames: u64,
    /// Where the region of a strategy placed here is mapped; a swap
    /// replaces it while every other server is paused.
    region: spin::Mutex<Option<(RegionView, Arc<dyn SharedCounts>)>>,
    /// Server `k` is idle with its idle thread parked: it reports no
    /// quiescent point until a message wakes it.
    pub parked: [AtomicBool; slot::MAX_SERVERS as usize],
    pub boot_image: &'static [u8],
    pub procs: Procs,
    slots: spin::Mutex<[u64; 4]>,
    /// Processes a `Kill` named, per server: each server ends its own.
    kills: [spin::Mutex<Vec<u32>>; slot::MAX_SERVERS as usize],
    /// IPC buffers of server threads `1..`.
    ipc_buffers: [u64; slot::MAX_SERVERS as usize],
    /// The copy-on-write hints and each server's control page with the
    /// kernel (`None` when the pool is too large for hints).
    pub cow: Option<CowMemory>,
    pub stats: Counters,
}

/// The counters of `proto::ProcessStats`, summed over the servers.
#[derive(Default)]
pub struct Counters {
    pub forks: AtomicU64,
    pub cow_faults: AtomicU64,
    pub cow_copies: AtomicU64,
    pub cow_reused: AtomicU64,
    pub zero_fills: AtomicU64,
    /// Copies the kernel made for us (counted in `cow_faults` and
    /// `cow_copies` too).
    pub kernel_copies: AtomicU64,
    /// Pages the kernel gave their write right back in place (counted in
    /// `cow_faults` and `cow_reused` too).
    pub kernel_reuses: AtomicU64,
    pub ref_messages: AtomicU64,
    pub ref_ops: AtomicU64,
    pub frame_messages: AtomicU64,
    /// Deferred: count-1 shortcuts (a word written by the frame's only
    /// holder instead of a message).
    pub direct_stores: AtomicU64,
    /// Deferred: increments cancelled against a buffered decrement.
    pub cancelled: AtomicU64,
    pub phases: Phases,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self, processes: u32) -> ProcessStats {
        ProcessStats {
            processes,
            forks: self.forks.load(Relaxed),
            cow_faults: self.cow_faults.load(Relaxed),
            cow_copies: self.cow_copies.load(Relaxed),
            cow_reused: self.cow_reused.load(Relaxed),
            kernel_copies: self.kernel_copies.load(Relaxed),
            kernel_reuses: self.kernel_reuses.load(Relaxed),
            zero_fills: self.zero_fills.load(Relaxed),
            ref_messages: self.ref_messages.load(Relaxed),
            ref_ops: self.ref_ops.load(Relaxed),
            frame_messages: self.frame_messages.load(Relaxed),
            direct_stores: self.direct_stores.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            phases: self.phases.total(),
        }
    }
}

static SYSTEM: spin::Once<System> = spin::Once::new();

pub fn get() -> &'static System {
    SYSTEM.get().expect("the system is set up before any server runs")
}

/// Sets up the shared state (on the first server thread, before the others
/// start) and starts server threads `1..cpus` and every idle thread, in
/// the thread objects init gave us; each reports its faults to init.
/// With `kernel_copies`, the kernel resolves the copy-on-write faults the
/// hints allow (`cow`).
pub fn start(strategy: Strategy, cpus: u16, kernel_copies: bool) -> Result<(), &'static str> {
    let pages = PageSource::new(slot::SPACE, slot::FRAMES, HEAP_WINDOW);
    rt::heap::init(&pages, HEAP_PAGES).map_err(|_| "no heap")?;
    // SAFETY: init mapped this thread's IPC buffer there; only this thread
    // uses it, and only until the server loop takes it over.
    let buffer = unsafe { rt::ipc::buffer_at(rt::process::IPC_BUFFER) };
    let mut attach = |part, at: Slot| {
        buffer.recv_slot = at;
        match rt::client::call::<MemoryProtocol>(slot::MEMORY, buffer, &MemoryRequest::Attach { part }) {
            Ok(MemoryReply::Attached(layout)) if buffer.cap_received == 1 => Ok(layout),
            _ => Err("the memory server did not attach us"),
        }
    };
    let layout = attach(AttachPart::Frames, slot::POOL)?;
    attach(AttachPart::Table, slot::TABLE)?;
    let pool_frames = u64::from(layout.pool_frames);
    map_all(slot::POOL, POOL_WINDOW, pool_frames, Rights::READ.union(Rights::WRITE))?;
    map_all(slot::TABLE, TABLE_WINDOW, u64::from(layout.table_pages), Rights::READ.union(Rights::WRITE))?;
    let image_pages = sys::identify(slot::BOOT_IMAGE).map_err(|_| "no boot image")?.size;
    map_all(slot::BOOT_IMAGE, BOOT_WINDOW, image_pages, Rights::READ)?;
    // SAFETY: the table is mapped writable at TABLE_WINDOW for as long as
    // we live, one word per pool frame, written with atomic stores only (by
    // the memory server, and by us for frames we hold alone).
    let table = unsafe { core::slice::from_raw_parts(TABLE_WINDOW as *const AtomicU64, pool_frames as usize) };
    // SAFETY: the boot image is mapped read-only there for as long as we live.
    let boot_image = unsafe { core::slice::from_raw_parts(BOOT_WINDOW as *const u8, (image_pages * PAGE_SIZE) as usize) };
    bootimage::Image::parse(boot_image).map_err(|_| "the boot image is unreadable")?;
    let cow =
        if kernel_copies { CowMemory::new(&pages, pool_frames, cpus).map_err(|_| "no memory for the copy-on-write hints")? } else { None };
    let mut ipc_buffers = [0; slot::MAX_SERVERS as usize];
    for buffer in ipc_buffers.iter_mut().take(cpus.into()).skip(1) {
        *buffer = pages.alloc(1).map_err(|_| "no IPC buffers")?;
    }
    SYSTEM.call_once(|| System {
        strategy: AtomicU8::new(strategy as u8),
        swapping: spin::Mutex::new(()),
        cpus,
        pages,
        table,
        pool_frames,
        region: spin::Mutex::new(None),
        parked: Default::default(),
        boot_image,
        procs: Procs::new(),
        slots: spin::Mutex::new([0; 4]),
        kills: Default::default(),
        ipc_buffers,
        cow,
        stats: Counters::default(),
    });
    // The reserve the heap keeps grows with the pool and the CPUs.
    crate::heap::allows(buffer, 0).map_err(|_| "no heap for the reserve")?;
    if strategy.placement() == Placement::Shared {
        let shared = map_region(buffer, strategy).map_err(|_| "cannot map the strategy's region")?;
        get().set_region(Some(shared));
    }
    for k in 0..cpus {
        let spec = |entry, priority, ipc_buffer| rt::thread::Spec {
            entry,
            arg: u64::from(k),
            cspace: slot::CSPACE,
            priority,
            cpu: k,
            fault_endpoint: Some(slot::SUPERVISOR),
            ipc_buffer,
        };
        sys::create(abi::cap::ObjectKind::Notification, slot::FIRST_RESUME + u64::from(k))
            .map_err(|_| "cannot create a resume notification")?;
        let idle_endpoint = slot::FIRST_IDLE_ENDPOINT + u64::from(k);
        sys::cap_mint(get().endpoint(k), idle_endpoint, Rights::WRITE, crate::server::IDLE_BADGE)
            .map_err(|_| "cannot mint an idle endpoint")?;
        let idle = spec(crate::server::idle_thread, crate::server::IDLE_PRIORITY, None);
        rt::thread::start_in(&get().pages, slot::FIRST_IDLE_THREAD + u64::from(k), idle).map_err(|_| "cannot start an idle thread")?;
        if k > 0 {
            let server = spec(server_thread, crate::server::PRIORITY, Some(get().ipc_buffer(k)));
            rt::thread::start_in(&get().pages, slot::FIRST_THREAD + u64::from(k), server).map_err(|_| "cannot start a server thread")?;
        }
    }
    Ok(())
}

/// The bytes of pool frame `frame` (below the pool's size), through our
/// mapping of the pool.
fn frame_bytes(frame: u32) -> &'static mut [u8; PAGE_SIZE as usize] {
    // SAFETY: the whole pool is mapped read-write at POOL_WINDOW for as
    // long as we live; callers name frames they hold.
    unsafe { &mut *((POOL_WINDOW + u64::from(frame) * PAGE_SIZE) as *mut [u8; PAGE_SIZE as usize]) }
}

extern "C" fn server_thread(index: u64) -> ! {
    crate::server::run(index as u16)
}

/// Maps `pages` pages of the PhysRange in `range` at `at`, in batches.
fn map_all(range: Slot, at: u64, pages: u64, rights: Rights) -> Result<(), &'static str> {
    for first in (0..pages).step_by(MAP_BATCH_MAX as usize) {
        let count = MAP_BATCH_MAX.min(pages - first);
        sys::map_batch(slot::SPACE, range, first, at + first * PAGE_SIZE, count, rights)
            .map_err(|_| "cannot map the pool, table or image")?;
    }
    Ok(())
}

impl System {
    pub fn strategy(&self) -> Strategy {
        Strategy::from_index(u64::from(self.strategy.load(Relaxed))).unwrap_or(Strategy::Deferred)
    }

    /// Only the coordinator of a swap, with every other server paused.
    pub fn set_strategy(&self, strategy: Strategy) {
        self.strategy.store(strategy as u8, Relaxed);
    }

    /// The bytes of pool frame `frame`, through our mapping of the pool.
    /// The caller holds the frame (it is ours to fill, or the faulting
    /// process's, blocked while we copy it).
    pub fn frame_mut(&self, frame: u32) -> &'static mut [u8; PAGE_SIZE as usize] {
        assert!(u64::from(frame) < self.pool_frames, "frame {frame} is not the pool's");
        frame_bytes(frame)
    }

    /// Where pool frames `first .. first + count` are in our mapping of
    /// the pool, if they are the pool's.
    pub fn frames_at(&self, first: u64, count: u64) -> Option<*mut u8> {
        (first.checked_add(count)? <= self.pool_frames).then(|| (POOL_WINDOW + first * PAGE_SIZE) as *mut u8)
    }

    /// The counter table's word for `frame`.
    pub fn count_of(&self, frame: u32) -> u64 {
        self.table.get(frame as usize).map_or(0, |word| word.load(Relaxed))
    }

    /// The counter table: one word per pool frame.
    pub fn table(&self) -> &'static [AtomicU64] {
        self.table
    }

    pub fn pool_frames(&self) -> u64 {
        self.pool_frames
    }

    /// Where the region of the strategy in force is, if it is placed here.
    pub fn region(&self) -> Option<RegionView> {
        self.region.lock().as_ref().map(|(view, _)| *view)
    }

    /// The strategy in force, if it is placed here.
    pub fn shared_counts(&self) -> Option<Arc<dyn SharedCounts>> {
        self.region.lock().as_ref().map(|(_, counts)| counts.clone())
    }

    /// Only the coordinator of a swap, with every other server paused.
    pub fn set_region(&self, region: Option<(RegionView, Arc<dyn SharedCounts>)>) {
        *self.region.lock() = region;
    }

    /// A free slot of our table.
    pub fn alloc_slot(&self) -> Option<Slot> {
        let mut used = self.slots.lock();
        for slot in slot::FIRST_FREE..abi::cap::CSPACE_SLOTS as u64 {
            let (word, bit) = ((slot / 64) as usize, slot % 64);
            if used[word] & (1 << bit) == 0 {
                used[word] |= 1 << bit;
                return Some(slot);
            }
        }
        None
    }

    /// Deletes the capability in `slot` (if any) and frees the slot.
    pub fn release_slot(&self, slot: Slot) {
        let _ = sys::cap_delete(slot);
        self.slots.lock()[(slot / 64) as usize] &= !(1 << (slot % 64));
    }

    /// Creates a kernel object of `kind` in a fresh slot.
    pub fn create(&self, kind: ObjectKind) -> Option<Slot> {
        let slot = self.alloc_slot()?;
        if sys::create(kind, slot).is_err() {
            self.release_slot(slot);
            return None;
        }
        Some(slot)
    }

    /// The IPC buffer of server thread `index` (not 0).
    pub fn ipc_buffer(&self, index: u16) -> u64 {
        self.ipc_buffers[usize::from(index)]
    }

    /// Asks the other servers (only the parked ones if `parked_only`) to
    /// report a quiescent point each: a non-blocking message, which a busy
    /// server does not get (it reports between its requests anyway).
    pub fn nudge(&self, from: u16, parked_only: bool) {
        for k in (0..self.cpus).filter(|&k| k != from && (!parked_only || self.parked[usize::from(k)].load(Relaxed))) {
            let _ = rt::ipc::nb_send(self.endpoint(k), rt::ipc::Message::new(NUDGE_LABEL, [0; 4]));
        }
    }

    /// Has server `index` end `pid` (killed) at its next turn, and wakes
    /// it if it waits for a message.
    pub fn queue_kill(&self, index: u16, pid: u32) {
        self.kills[usize::from(index) % self.kills.len()].lock().push(pid);
        let _ = rt::ipc::nb_send(self.endpoint(index), rt::ipc::Message::new(NUDGE_LABEL, [0; 4]));
    }

    /// The processes server `index` is to end.
    pub fn take_kills(&self, index: u16) -> Vec<u32> {
        core::mem::take(&mut *self.kills[usize::from(index) % self.kills.len()].lock())
    }

    /// The endpoint of server `index`.
    pub fn endpoint(&self, index: u16) -> Slot {
        slot::FIRST_ENDPOINT + u64::from(index)
    }
}
