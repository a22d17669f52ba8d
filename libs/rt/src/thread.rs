//! Starting threads in the caller's own address space: a stack and an IPC
//! buffer from a [`PageSource`], then Create (or a thread object someone
//! else created, such as a supervisor that keeps a capability to it),
//! Configure and Start.

use abi::cap::ObjectKind;
use abi::syscall::SysError;

use crate::mem::PageSource;
use crate::sys::{self, Slot, ThreadConfig};

/// Stack pages of a spawned thread.
pub const STACK_PAGES: u64 = 16;

/// A thread started by [`spawn`].
#[derive(Clone, Copy, Debug)]
pub struct Spawned {
    pub slot: Slot,
    pub ipc_buffer: u64,
}

/// What to run and where.
#[derive(Clone, Copy)]
pub struct Spec {
    pub entry: extern "C" fn(u64) -> !,
    pub arg: u64,
    /// The thread's capability table (a CSpace capability of the caller).
    pub cspace: Slot,
    pub priority: u8,
    pub cpu: u16,
    pub fault_endpoint: Option<Slot>,
    /// An IPC buffer page prepared by the caller; `None` maps a fresh one.
    pub ipc_buffer: Option<u64>,
}

/// Creates a thread in `slot` of the caller's table, running
/// `spec.entry(spec.arg)` in the caller's address space.
pub fn spawn(pages: &PageSource, slot: Slot, spec: Spec) -> Result<Spawned, SysError> {
    let memory = memory_for(pages, &spec)?;
    sys::create(ObjectKind::Thread, slot)?;
    run(pages, slot, spec, memory)
}

/// Configures and starts the thread object in `slot` of the caller's
/// table (created, not configured yet) to run `spec.entry(spec.arg)` in
/// the caller's address space.
pub fn start_in(pages: &PageSource, slot: Slot, spec: Spec) -> Result<Spawned, SysError> {
    let memory = memory_for(pages, &spec)?;
    run(pages, slot, spec, memory)
}

/// A fresh stack, and the IPC buffer `spec` names or a fresh one.
fn memory_for(pages: &PageSource, spec: &Spec) -> Result<(u64, u64), SysError> {
    let stack = pages.alloc(STACK_PAGES)?;
    let ipc_buffer = match spec.ipc_buffer {
        Some(buffer) => buffer,
        None => pages.alloc(1)?,
    };
    Ok((stack, ipc_buffer))
}

fn run(pages: &PageSource, slot: Slot, spec: Spec, (stack, ipc_buffer): (u64, u64)) -> Result<Spawned, SysError> {
    let config = ThreadConfig {
        space: pages.space(),
        cspace: spec.cspace,
        ipc_buffer,
        fault_endpoint: spec.fault_endpoint,
        priority: spec.priority,
        cpu: spec.cpu,
    };
    sys::thread_configure(slot, &config)?;
    // The ABI wants rsp + 8 aligned to 16 at function entry.
    let stack_top = stack + STACK_PAGES * crate::mem::PAGE_SIZE - 8;
    sys::thread_start(slot, spec.entry as usize as u64, stack_top, spec.arg)?;
    Ok(Spawned { slot, ipc_buffer })
}
