//! The process servers: one thread per CPU in one address space, sharing
//! the process table. Each serves its own endpoint: the processes it owns
//! (spawned or forked onto its CPU) call it for fork, exit, wait, exec,
//! getpid, brk and mmap, and it is their pager (demand-zero pages and
//! copy-on-write faults). Each keeps its own frames at hand (`link`) and
//! counts references as the strategy in force wants (`counts`): in batches
//! to the memory server, or itself over shared memory as its CPU's core.
//!
//! Start: `rdi` = the strategy's index, `rsi` = the number of CPUs (and
//! servers), `rdx` = options (`proto::process::OPTION_COW_BY_PAGER`);
//! capability slots as in [`slot`], filled by init.
#![no_std]
#![no_main]

extern crate alloc;

mod counts;
mod cow;
mod fork;
mod heap;
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

/// Capability slots of the servers' shared table (init fills the first).
pub use proto::process::server_slot as slot;

fn main(args: rt::StartArgs) -> ! {
    let [strategy, cpus, options] = args.0;
    let strategy = Strategy::from_index(strategy).unwrap_or(Strategy::Deferred);
    let cpus = cpus.clamp(1, slot::MAX_SERVERS) as u16;
    let kernel_copies = options & proto::process::OPTION_COW_BY_PAGER == 0;
    match system::start(strategy, cpus, kernel_copies) {
        Ok(()) => server::run(0),
        Err(reason) => {
            rt::println!("process: cannot start: {reason}");
            rt::sys::thread_exit()
        }
    }
}
