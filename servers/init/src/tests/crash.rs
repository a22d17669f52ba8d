//! Fault injection for the restart tests: a thread of init that, after a
//! pause, unmaps the code of a server's program from its address space,
//! as a corrupted page table would. Every thread of the server faults at
//! its next instruction, and only the kernel's fault reports tell init's
//! supervisor; nothing in init calls for the restart.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use abi::syscall::MAP_BATCH_MAX;
use rt::mem::PAGE_SIZE;
use rt::sys::{self, Slot};

use crate::env::{Env, INIT_PRIORITY};
use crate::tests::pause_for;
use crate::tests::threads::spec;

/// What the crasher breaks, and when: the space, the first page and the
/// page count of the code, the TSC cycles to wait first, and the
/// crasher's own slot.
static PLAN: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// The crasher has broken the server.
static DONE: AtomicBool = AtomicBool::new(false);

/// Whether the last crasher started has broken its server.
pub fn done() -> bool {
    DONE.load(Relaxed)
}

/// Has a thread of init unmap `program`'s code from `space` in `delay`
/// TSC cycles, on the last CPU; the thread deletes itself once done, so
/// that its kernel objects are gone by the time a teardown counts them.
pub fn crash_later(env: &Env, space: Slot, program: &[u8], delay: u64) -> Result<(), &'static str> {
    let (start, pages) = rt::process::code_pages(program).map_err(|_| "the server's program has no code")?;
    let crasher = env.slots.alloc();
    DONE.store(false, Relaxed);
    for (field, value) in PLAN.iter().zip([space, start, pages, delay, crasher]) {
        field.store(value, Relaxed);
    }
    let cpu = env.cpus.saturating_sub(1) as u16;
    rt::thread::spawn(&env.pages, crasher, spec(crash, 0, INIT_PRIORITY, cpu)).map(|_| ()).map_err(|_| "start the crasher")
}

extern "C" fn crash(_: u64) -> ! {
    let [space, start, pages, delay, myself] = PLAN.each_ref().map(|field| field.load(Relaxed));
    pause_for(delay);
    for first in (0..pages).step_by(MAP_BATCH_MAX as usize) {
        let _ = sys::unmap(space, start + first * PAGE_SIZE, MAP_BATCH_MAX.min(pages - first));
    }
    DONE.store(true, Relaxed);
    // Our last capability: we end here.
    let _ = sys::cap_delete(myself);
    sys::thread_exit()
}
