//! The process servers: one thread per CPU in one address space, sharing
//! the process table. Each serves its own endpoint: the processes it owns
//! (spawned or forked onto its CPU) call it for fork, exit, wait, exec,
//! getpid, brk and mmap, and it is their pager (demand-zero pages and
//! copy-on-write faults). Each keeps its own frames at hand (`link`) and
//! counts references as the strategy in force wants (`counts`): in batches
//! to the memory server, or itself over shared memory as its CPU's core.
//!
//! Start: `rdi` = the strategy's index, `rsi` = the number of CPUs (and
//! servers); capability slots as in [`slot`], filled by init.
#![no_std]
#![no_main]

extern crate alloc;

mod counts;
mod fork;
mod lifecycle;
mod link;
mod loader;
mod pagemap;
mod pager;
mod phases;
mod procs;
mod server;
mod space;
mod swap;
mod system;

use abi::process::Strategy;

rt::entry!(main);

/// Capability slots of the servers' shared table.
pub mod slot {
    /// Our address space (from init).
    pub const SPACE: u64 = 1;
    /// Frames for our own heap, stacks and IPC buffers (from init).
    pub const FRAMES: u64 = 2;
    /// The memory server's endpoint (from init).
    pub const MEMORY: u64 = 3;
    /// The boot image, read-only (from init).
    pub const BOOT_IMAGE: u64 = 4;
    /// Our own capability table (from init).
    pub const CSPACE: u64 = 5;
    /// Server `k`'s endpoint is `FIRST_ENDPOINT + k` (from init).
    pub const FIRST_ENDPOINT: u64 = 8;
    /// Most servers (CPUs).
    pub const MAX_SERVERS: u64 = 8;
    /// The memory pool, read-write (from the memory server).
    pub const POOL: u64 = 16;
    /// The counter table, read-only (from the memory server).
    pub const TABLE: u64 = 17;
    /// Server thread `k` (from 1).
    pub const FIRST_THREAD: u64 = 18;
    /// Idle thread `k`.
    pub const FIRST_IDLE_THREAD: u64 = 26;
    /// Idle thread `k`'s endpoint to its server (badge 0).
    pub const FIRST_IDLE_ENDPOINT: u64 = 34;
    /// Server `k`'s saved reply to its idle thread.
    pub const FIRST_IDLE_REPLY: u64 = 42;
    /// Server `k`'s notification to resume after a swap.
    pub const FIRST_RESUME: u64 = 50;
    /// Slots from here are handed out for processes.
    pub const FIRST_FREE: u64 = 58;
}

fn main(args: rt::StartArgs) -> ! {
    let [strategy, cpus, _] = args.0;
    let strategy = Strategy::from_index(strategy).unwrap_or(Strategy::Deferred);
    let cpus = cpus.clamp(1, slot::MAX_SERVERS) as u16;
    match system::start(strategy, cpus) {
        Ok(()) => server::run(0),
        Err(reason) => {
            rt::println!("process: cannot start: {reason}");
            rt::sys::thread_exit()
        }
    }
}
