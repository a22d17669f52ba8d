//! The kernel's object state and its entry points.
//!
//! All kernel objects, capability tables and run queues live in one
//! [`Kernel`] behind one lock, taken on every entry from user mode or from
//! an interrupt, as in seL4's SMP configuration: a big lock keeps every
//! invariant local, and the work under it is short and bounded. Each entry
//! saves the running thread's context from the frame, does its work, and
//! fills the frame with whatever this CPU runs next.

mod allowance;
mod boot;
mod caps;
mod cow;
mod fastpath;
mod ipc;
mod irq;
mod loaded;
mod lock;
mod privilege;
mod reclaim;
mod revoke;
mod sched;
mod sizing;
mod syscalls;
mod threads;
mod vm;

use core::sync::atomic::{AtomicBool, Ordering};

use abi::cap::ObjectKind;

use crate::arch::{self, MAX_CPUS, UserContext};
use crate::object::pool::Pool;
use crate::object::thread::Thread;
use crate::object::{CSpace, Endpoint, IoPorts, IrqLine, Notification, ObjRef, PhysRange, Reply, Space};

pub use boot::start_init;
pub use lock::{LOCKSTAT_FLAG, time_holds as time_lock_holds};
pub use vm::KERNEL_OWNED;

/// Priorities 0 (lowest) to 63.
pub const PRIORITIES: usize = 64;

/// One CPU's scheduling state.
pub struct Cpu {
    pub current: Option<u16>,
    pub ready: [crate::object::Queue; PRIORITIES],
    /// Bit p set: `ready[p]` is not empty.
    pub ready_bits: u64,
    /// The timer asked to rotate the current thread.
    pub slice_over: bool,
    /// The address space in CR3 (physical root), for targeted shootdowns;
    /// an idle CPU keeps the last one it ran. Bit 0 set: stale, a
    /// shootdown skipped this idle CPU, so the value matches no root and
    /// the next load writes CR3 (`loaded.rs`).
    pub loaded_root: u64,
    /// A thread woken on this CPU that the next switch runs directly,
    /// without the ready queue (the IPC fast path).
    pub handoff: Option<u16>,
    /// The idle context a system call resumes when nothing is ready.
    pub idle: UserContext,
}

pub struct Kernel {
    pub threads: Pool<Thread>,
    pub spaces: Pool<Space>,
    pub cspaces: Pool<CSpace>,
    pub endpoints: Pool<Endpoint>,
    pub notifications: Pool<Notification>,
    pub phys_ranges: Pool<PhysRange>,
    pub replies: Pool<Reply>,
    pub irq_lines: Pool<IrqLine>,
    pub io_ports: Pool<IoPorts>,
    pub cpus: [Cpu; MAX_CPUS],
    next_cap_id: u64,
    /// Capability insertions, moves, and deletions that hand children on,
    /// since boot: a revoke split over entries trusts its round only if
    /// none happened between them (`revoke.rs`).
    pub cap_changes: u64,
    /// User threads killed by a fault they had no handler for.
    pub kills: u64,
    /// Init's thread: when it ends, nothing is left to end the run.
    pub init: Option<u16>,
    /// `Call`s and `ReplyRecv`s by the way they ran, indexed by
    /// `abi::syscall::IpcPath`.
    pub ipc_paths: [u64; abi::syscall::IpcPath::ALL.len()],
    /// Reclaim walks to try again once a thread stops (`reclaim.rs`).
    reclaim_retries: [Option<reclaim::Retry>; reclaim::RETRIES],
    retries_waiting: usize,
    /// The entry a new retry replaces when all are taken.
    retry_oldest: usize,
    /// The last cycle walk's stamp, and the walks' work lists.
    walks: u32,
    walk_lists: reclaim::Lists,
    /// Released roots still in some CPU's CR3 (`loaded.rs`).
    orphans: loaded::Orphans,
}

static KERNEL: spin::Mutex<Kernel> = spin::Mutex::new(Kernel::new());
static STARTED: AtomicBool = AtomicBool::new(false);

impl Kernel {
    const fn new() -> Self {
        Self {
            threads: Pool::new(),
            spaces: Pool::new(),
            cspaces: Pool::new(),
            endpoints: Pool::new(),
            notifications: Pool::new(),
            phys_ranges: Pool::new(),
            replies: Pool::new(),
            irq_lines: Pool::new(),
            io_ports: Pool::new(),
            cpus: [const {
                Cpu {
                    current: None,
                    ready: [crate::object::Queue { head: None, tail: None }; PRIORITIES],
                    ready_bits: 0,
                    slice_over: false,
                    loaded_root: 0,
                    handoff: None,
                    idle: UserContext::EMPTY,
                }
            }; MAX_CPUS],
            next_cap_id: 1,
            cap_changes: 0,
            kills: 0,
            init: None,
            ipc_paths: [0; abi::syscall::IpcPath::ALL.len()],
            reclaim_retries: [None; reclaim::RETRIES],
            retries_waiting: 0,
            retry_oldest: 0,
            walks: 0,
            walk_lists: reclaim::Lists { members: &mut [], pending: &mut [], roots: &mut [] },
            orphans: loaded::Orphans::new(),
        }
    }

    /// Whether `obj` still names a live object.
    pub fn alive(&self, obj: ObjRef) -> bool {
        let (i, g) = (obj.index, obj.generation);
        match obj.kind {
            ObjectKind::Thread => self.threads.get(i, g).is_some(),
            ObjectKind::AddressSpace => self.spaces.get(i, g).is_some(),
            ObjectKind::CSpace => self.cspaces.get(i, g).is_some(),
            ObjectKind::Endpoint => self.endpoints.get(i, g).is_some(),
            ObjectKind::Notification => self.notifications.get(i, g).is_some(),
            ObjectKind::PhysRange => self.phys_ranges.get(i, g).is_some(),
            ObjectKind::Reply => self.replies.get(i, g).is_some(),
            ObjectKind::IrqLine => self.irq_lines.get(i, g).is_some(),
            ObjectKind::IoPorts => self.io_ports.get(i, g).is_some(),
        }
    }

    /// Init leaves through the debug-exit port; if it ends any other way
    /// (killed, or exited without a verdict), the run has failed.
    pub fn check_init_alive(&self, t: u16) {
        if self.init == Some(t) {
            crate::println!("init ended without reporting a result");
            arch::exit(abi::exit::GuestExit::Failure);
        }
    }

    pub fn thread_ref(&self, index: u16) -> Option<ObjRef> {
        let generation = self.threads.generation_of(index)?;
        Some(ObjRef { kind: ObjectKind::Thread, index, generation })
    }
}

/// Takes the kernel lock (see [`lock::take`]).
fn lock() -> lock::Held {
    lock::take(&KERNEL)
}

/// Whether the scheduler runs (init exists).
pub fn started() -> bool {
    STARTED.load(Ordering::Acquire)
}

/// A fault taken by a user thread.
#[derive(Clone, Copy, Debug)]
pub struct UserFault {
    pub vector: u64,
    pub addr: u64,
    pub error: u64,
    pub name: &'static str,
}

impl UserFault {
    /// A page fault (vector 14) from user mode, a write to a present page:
    /// what copy-on-write looks like.
    pub fn is_user_write_to_present_page(&self) -> bool {
        const PAGE_FAULT: u64 = 14;
        const PRESENT_WRITE_USER: u64 = 0b111;
        self.vector == PAGE_FAULT && self.error & PRESENT_WRITE_USER == PRESENT_WRITE_USER
    }
}

/// Saves the running thread's registers, taken by an interrupt or a fault
/// in `frame`; returns this CPU's index. (A system call saves them in the
/// TCB itself.)
fn enter(kernel: &mut Kernel, frame: &UserContext) -> usize {
    let cpu = arch::cpu_index();
    if frame.came_from_user()
        && let Some(thread) = kernel.cpus[cpu].current.and_then(|t| kernel.threads.at_mut(t))
    {
        thread.ctx = *frame;
    }
    cpu
}

/// The system call whose registers the entry saved at `frame`, the running
/// thread's context; returns the context to resume. The `syscall` entry
/// calls it directly.
pub extern "C" fn on_syscall(frame: *const UserContext) -> *const UserContext {
    let mut kernel = lock();
    let cpu = arch::cpu_index();
    debug_assert!(kernel.cpus[cpu].current.and_then(|t| kernel.threads.at(t)).is_some_and(|t| core::ptr::eq(&t.ctx, frame)));
    match kernel.fastpath(cpu) {
        Some(resume) => resume,
        None => slow_syscall(&mut kernel),
    }
}

/// Every system call the fast path did not run; out of line, so that the
/// fast path pays none of its stack frame (nor keeps the CPU's index for
/// it).
#[inline(never)]
fn slow_syscall(kernel: &mut Kernel) -> *const UserContext {
    let cpu = arch::cpu_index();
    if let Some(current) = kernel.cpus[cpu].current
        && let Some((sysnum, args)) = kernel.threads.at(current).map(|t| (t.ctx.rax, t.ctx.syscall_args()))
    {
        kernel.syscall(cpu, current, sysnum, args);
    }
    kernel.retry_reclaims();
    let next = kernel.switch(cpu);
    kernel.context(cpu, next)
}

pub fn on_user_fault(frame: &mut UserContext, fault: UserFault) {
    let mut kernel = lock();
    let cpu = enter(&mut kernel, frame);
    if let Some(current) = kernel.cpus[cpu].current {
        kernel.fault(current, fault);
    }
    kernel.retry_reclaims();
    kernel.switch_into(cpu, frame);
}

/// The timer: the running thread's time slice is over.
pub fn on_tick(frame: &mut UserContext) {
    reschedule(frame, true);
}

/// A device interrupt on I/O APIC `pin`: masked until acknowledged, and
/// delivered to its notification.
pub fn on_irq(frame: &mut UserContext, pin: u32) {
    let mut kernel = lock();
    let cpu = enter(&mut kernel, frame);
    kernel.irq(pin);
    if frame.came_from_user() || is_idle(frame) {
        kernel.switch_into(cpu, frame);
    }
}

/// Another CPU changed this CPU's run queue.
pub fn on_resched(frame: &mut UserContext) {
    reschedule(frame, false);
}

/// Chooses again what this CPU runs, rotating the current thread when its
/// slice is over; only from user mode or the idle loop.
fn reschedule(frame: &mut UserContext, slice_over: bool) {
    if !started() || !(frame.came_from_user() || is_idle(frame)) {
        return;
    }
    let mut kernel = lock();
    let cpu = enter(&mut kernel, frame);
    kernel.cpus[cpu].slice_over |= slice_over;
    kernel.switch_into(cpu, frame);
}

/// The first entry of a CPU into the scheduler.
pub fn on_first_entry(frame: &mut UserContext) {
    let mut kernel = lock();
    let cpu = arch::cpu_index();
    *frame = arch::idle_context();
    kernel.switch_into(cpu, frame);
}

/// Interrupts are only taken in user mode or in the idle loop once the
/// scheduler runs; kernel code with interrupts on before that (boot,
/// self-tests, an AP waiting to start) must not be switched away from.
fn is_idle(frame: &UserContext) -> bool {
    arch::in_idle(frame)
}
