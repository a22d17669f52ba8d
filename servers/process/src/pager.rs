//! The pager of a server's processes. A fault arrives as a call from the
//! kernel on the faulting thread's behalf; the reply resumes it, or the
//! process is ended.
//! - A page in a demand-zero region (heap, stack, anonymous mapping) gets
//!   a fresh zeroed frame.
//! - A write to a shared page first tries `try_remove_unique`
//!   (`MemClient::claim_unique`): if the caller holds the only reference,
//!   the page is made writable in place. Otherwise the page is copied,
//!   remapped in one system call (`Remap`), and the old frame loses a
//!   reference.
//! - Anything else (a bad address, a write to code) ends the process with
//!   `STATUS_FAULT`; a page that cannot get a frame, with `STATUS_NO_MEMORY`.

use abi::msg::kernel_label;
use abi::process::{STATUS_FAULT, STATUS_NO_MEMORY};
use rt::ipc::Message;
use rt::mem::PAGE_SIZE;
use rt::sys::{self, Slot};

use crate::lifecycle;
use crate::loader::map_zeroed;
use crate::server::Server;
use crate::slot;
use crate::space::{AddrSpace, Page};
use crate::system::{self, Counters};

const PAGE_FAULT: u64 = 14;
/// Page-fault error code bits.
const PRESENT: u64 = 1;
const WRITE: u64 = 2;

/// How a fault ends.
enum Outcome {
    Resume,
    Kill(i32),
}

/// Handles a fault of `pid`'s thread: `[vector, address, rip, error code]`.
pub fn fault(server: &mut Server, pid: u32, registers: [u64; 4]) -> Option<Message> {
    let [vector, addr, _rip, error] = registers;
    let (record, space) = {
        let table = system::get().procs.lock();
        let process = table.map.get(&pid)?;
        (process.memory.clone(), process.objects?.space)
    };
    let outcome = if vector == PAGE_FAULT {
        let mut memory = record.lock();
        page_fault(server, &mut memory, space, addr, error)
    } else {
        Outcome::Kill(STATUS_FAULT)
    };
    match outcome {
        Outcome::Resume => Some(Message::new(kernel_label::RESUME, [0; 4])),
        Outcome::Kill(status) => {
            lifecycle::exit(server, pid, status);
            None
        }
    }
}

fn page_fault(server: &mut Server, memory: &mut AddrSpace, space: Slot, addr: u64, error: u64) -> Outcome {
    let vaddr = addr & !(PAGE_SIZE - 1);
    match memory.pages.get(addr / PAGE_SIZE) {
        Some(page) if error & (PRESENT | WRITE) == PRESENT | WRITE && page.is(Page::WRITABLE) => {
            if page.is(Page::SHARED) {
                copy_on_write(server, memory, space, vaddr, page)
            } else {
                // Left read-only by a fork that failed half-way.
                resume_if(sys::protect(space, vaddr, 1, page.rights()).is_ok())
            }
        }
        Some(_) => Outcome::Kill(STATUS_FAULT),
        None if memory.demand_zero(addr) => {
            Counters::add(&system::get().stats.zero_fills, 1);
            match map_zeroed(space, vaddr, Page::WRITABLE, memory, &mut server.mem) {
                Ok(_) => Outcome::Resume,
                Err(_) => Outcome::Kill(STATUS_NO_MEMORY),
            }
        }
        None => Outcome::Kill(STATUS_FAULT),
    }
}

fn resume_if(ok: bool) -> Outcome {
    if ok { Outcome::Resume } else { Outcome::Kill(STATUS_FAULT) }
}

fn copy_on_write(server: &mut Server, memory: &mut AddrSpace, space: Slot, vaddr: u64, page: Page) -> Outcome {
    let sys = system::get();
    Counters::add(&sys.stats.cow_faults, 1);
    let vpn = vaddr / PAGE_SIZE;
    let mut claimed = page;
    if server.mem.claim_unique(&mut claimed) {
        // Ours alone: written in place, no longer shared.
        memory.pages.insert(vpn, claimed);
        Counters::add(&sys.stats.cow_reused, 1);
        return resume_if(sys::protect(space, vaddr, 1, claimed.rights()).is_ok());
    }
    let Ok(copy) = server.mem.alloc_page() else { return Outcome::Kill(STATUS_NO_MEMORY) };
    let fresh = Page { frame: copy, flags: page.flags & !Page::SHARED };
    sys.frame_mut(copy).copy_from_slice(sys.frame_mut(page.frame));
    if sys::remap(space, slot::POOL, u64::from(copy), vaddr, fresh.rights()).is_err() {
        server.mem.drop_unmapped(copy);
        return Outcome::Kill(STATUS_FAULT);
    }
    memory.pages.insert(vpn, fresh);
    Counters::add(&sys.stats.cow_copies, 1);
    server.mem.release(core::iter::once(page));
    Outcome::Resume
}
