//! The memory server as init runs it: one generation at a time, each
//! started from the boot image over the same carved pool, on a fresh
//! endpoint, its thread reporting its faults and its exit to init's
//! supervisor. A teardown ends its thread at once, then revokes every
//! capability derived from its endpoint (every client's) and from the pool
//! (its own, the counter table it carved, what it gave its clients), so
//! that every call queued on it fails and nothing it handed out is left.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use abi::cap::{ObjectKind, Rights};
use abi::process::Strategy;
use proto::memory::client;
use rt::process::{Slots, prepare};
use rt::sys::{self, Slot};

use crate::env::Env;
use crate::supervisor::{self, MEMORY_SERVER};
use crate::system::{self, MEMORY_ALLOWANCE};
use crate::tests::process::BootImage;

const MEMORY_PRIORITY: u8 = 13;

/// The slots of init's that name the running memory server. Written only
/// by whoever starts or tears it down; read by any thread of init.
pub struct MemoryServer {
    /// How many generations have started.
    number: AtomicU64,
    /// Its endpoint, unbadged: init mints each client's capability from
    /// it (the server refuses requests through it).
    original: AtomicU64,
    /// init's own capability to it (badge `client::INIT`).
    init: AtomicU64,
    /// Its space, table and thread.
    program: [AtomicU64; 3],
    /// The supervisor endpoint badged with this generation.
    reports: AtomicU64,
    /// The pool's frames, carved once: every generation serves them.
    pool: Slot,
}

impl MemoryServer {
    pub fn new(pool: Slot) -> Self {
        let none = || AtomicU64::new(0);
        Self { number: none(), original: none(), init: none(), program: [none(), none(), none()], reports: none(), pool }
    }

    pub fn original(&self) -> Slot {
        self.original.load(Relaxed)
    }

    /// init's capability (badge `client::INIT`).
    pub fn init_cap(&self) -> Slot {
        self.init.load(Relaxed)
    }

    /// The program's address space (a fault-injection test breaks it).
    pub fn space(&self) -> Slot {
        self.program[0].load(Relaxed)
    }

    /// The badge of the running generation's reports.
    pub fn report_badge(&self) -> u64 {
        supervisor::report_badge(MEMORY_SERVER, self.number.load(Relaxed))
    }

    /// Starts a new generation from the boot image; returns once it serves.
    pub fn launch(&self, env: &Env, supervisor_endpoint: Slot, strategy: Strategy, cpus: u16) -> Result<(), &'static str> {
        let image = BootImage::map(env)?;
        let number = self.number.fetch_add(1, Relaxed) + 1;
        let alloc = |into: &AtomicU64| {
            let slot = env.slots.alloc();
            into.store(slot, Relaxed);
            slot
        };
        let original = alloc(&self.original);
        sys::create(ObjectKind::Endpoint, original).map_err(|_| "create the memory endpoint")?;
        let _ = sys::trace_name(original, "memory-server");
        sys::cap_mint(original, alloc(&self.init), Rights::WRITE, client::INIT).map_err(|_| "mint init's memory capability")?;
        let reports = alloc(&self.reports);
        let badge = supervisor::report_badge(MEMORY_SERVER, number);
        sys::cap_mint(supervisor_endpoint, reports, Rights::WRITE, badge).map_err(|_| "mint the memory server's supervisor capability")?;
        let [space, cspace, thread] = &self.program;
        let slots = Slots { space: alloc(space), cspace: alloc(cspace), thread: alloc(thread) };
        let server = prepare(image.program("memory")?, &env.pages, slots, MEMORY_PRIORITY, 0, Some(reports))
            .map_err(|_| "load the memory server")?;
        for (source, at) in [(original, 1), (slots.space, 2), (self.pool, 3)] {
            sys::cap_mint_to(source, slots.cspace, at, Rights::ALL, 0).map_err(|_| "give the memory server its capabilities")?;
        }
        system::give_allowance(slots.cspace, MEMORY_ALLOWANCE)?;
        server.start_with([strategy as u64, u64::from(cpus), 0]).map_err(|_| "start the memory server")?;
        system::await_ready(slots.thread, original, "the memory server did not start")
    }

    /// Ends the running generation's thread, whatever it is doing.
    pub fn end_thread(&self, env: &Env) {
        let thread = self.program[2].swap(0, Relaxed);
        let _ = sys::cap_revoke(thread);
        env.slots.release(thread);
    }

    /// Takes back everything the running generation held (its thread
    /// ended already): every client's capability and every call queued on
    /// its endpoint, its table and space, and all it derived from the pool.
    pub fn release(&self, env: &Env) {
        let slots = [&self.original, &self.init, &self.reports, &self.program[0], &self.program[1]].map(|slot| slot.swap(0, Relaxed));
        for &slot in slots.iter().chain([&self.pool]) {
            let _ = sys::cap_revoke(slot);
        }
        for slot in slots {
            env.slots.release(slot);
        }
    }
}
