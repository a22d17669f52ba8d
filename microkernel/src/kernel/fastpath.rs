//! The IPC fast path, in the manner of seL4's: `Call` and `ReplyRecv`
//! between two threads on one CPU, run straight from the syscall frame.
//!
//! It is taken when the message is its registers only (no IPC-buffer
//! payload, no capability), the partner waits (a receiver on the endpoint
//! for a Call, the caller for the reply of a ReplyRecv, with no sender
//! queued for its receive half), runs on this CPU and would run next
//! anyway (above every ready thread; a Call's receiver also at least at the
//! caller's priority). Then it does one capability lookup per object and
//! moves the message registers from the sender's saved context to the
//! partner's (the `syscall` entry saved both straight into their TCBs), with
//! no ready-queue work, no hand-off and no context copy. Anything
//! else falls back before changing any state, and the slow path runs the
//! system call as it always did. Each outcome is counted
//! (`KernelInfo(KERNEL_INFO_IPC_PATH + path)`; a fall-back where its check
//! failed), so tests can tell which path ran.

use abi::cap::{ObjectKind, Rights};
use abi::msg::MsgInfo;
use abi::syscall::{IpcPath, Sysnum};

use crate::arch::{self, UserContext};
use crate::capture;
use crate::object::pool::Pool;
use crate::object::thread::{Blocked, State, Thread};
use crate::object::{CSpace, ObjRef};

use super::sched::append;
use super::{Cpu, Kernel};

const CALL: u64 = Sysnum::Call as u64;
const REPLY_RECV: u64 = Sysnum::ReplyRecv as u64;

/// A fall-back to the slow path, counted by [`fall_back`].
struct FellBack;

/// Counts a fall-back for `path` in `paths` (`Kernel::ipc_paths`). Out of
/// line and at each check, so that the checks carry no reason in a
/// register on the way to one shared exit.
#[cold]
#[inline(never)]
fn fall_back(paths: &mut [u64; IpcPath::ALL.len()], path: IpcPath) -> FellBack {
    paths[path as usize] += 1;
    FellBack
}

/// The endpoint capability a fast-path IPC goes through.
#[derive(Clone, Copy)]
struct Through {
    ep: ObjRef,
    badge: u64,
    grant: bool,
}

impl Kernel {
    /// Runs the running thread's system call on the fast path if it can;
    /// then the context to resume: the partner's. Tracing costs this one
    /// branch when off; on, a copy of the path that also records runs.
    pub fn fastpath(&mut self, cpu: usize) -> Option<*const UserContext> {
        if capture::active() {
            return self.traced_fastpath(cpu);
        }
        self.fastpath_as::<false>(cpu)
    }

    /// The fast path while tracing is on: out of line, so that the path
    /// without it keeps its registers.
    #[cold]
    #[inline(never)]
    fn traced_fastpath(&mut self, cpu: usize) -> Option<*const UserContext> {
        self.fastpath_as::<true>(cpu)
    }

    /// [`Kernel::fastpath`], recording what it does if `TRACE`.
    #[inline(always)]
    fn fastpath_as<const TRACE: bool>(&mut self, cpu: usize) -> Option<*const UserContext> {
        let current = self.cpus[cpu].current?;
        let outcome = match self.threads.at(current)?.ctx.rax {
            CALL => self.fast_call::<TRACE>(cpu, current),
            REPLY_RECV => self.fast_reply_recv::<TRACE>(cpu, current),
            _ => return None,
        };
        // A fall-back was counted where it was found.
        let resume = outcome.ok()?;
        self.ipc_paths[IpcPath::Fast as usize] += 1;
        Some(resume)
    }

    /// `Call` by `caller`: straight to the receiver waiting on the endpoint,
    /// whose context it returns; or why not. `TRACE`: record it.
    #[inline(always)]
    fn fast_call<const TRACE: bool>(&mut self, cpu: usize, caller: u16) -> Result<*const UserContext, FellBack> {
        let Kernel { threads, cspaces, endpoints, cpus, ipc_paths, .. } = self;
        let mut miss = |path| fall_back(ipc_paths, path);
        let through = endpoint_cap(cspaces, threads.at(caller).ok_or_else(|| miss(IpcPath::Other))?, Rights::WRITE, &mut miss)?;
        let endpoint = endpoints.get_mut(through.ep.index, through.ep.generation).ok_or_else(|| miss(IpcPath::Other))?;
        let receiver = endpoint.receivers.head.ok_or_else(|| miss(IpcPath::NotWaiting))?;
        let ((from, generation), (to, _)) = threads.pair_mut(caller, receiver).ok_or_else(|| miss(IpcPath::Other))?;
        let cpu_state = &mut cpus[cpu];
        if usize::from(to.cpu) != cpu {
            return Err(miss(IpcPath::OtherCpu));
        }
        if to.priority < from.priority || cpu_state.ready_bits >> to.priority != 0 {
            return Err(miss(IpcPath::Priority));
        }
        if !to.ctx.saved_at_syscall() {
            return Err(miss(IpcPath::Other));
        }
        // From here on the call is the fast path's.
        endpoint.receivers.head = to.next.take();
        if endpoint.receivers.head.is_none() {
            endpoint.receivers.tail = None;
        }
        from.outgoing.from_kernel = false;
        // As the slow path records it: whether the reply may carry a
        // capability (the call went through a capability with grant).
        from.reply_grant = through.grant;
        from.state = State::Blocked(Blocked::Reply);
        deliver(&from.ctx, &mut to.ctx, through.badge);
        let abandoned = to.reply_to.replace(ObjRef { kind: ObjectKind::Thread, index: caller, generation });
        let resume = resume(cpu_state, receiver, to);
        if TRACE {
            self.trace_fast_call(caller, receiver, through);
        }
        if let Some(previous) = abandoned {
            self.abandon_reply(previous);
        }
        Ok(resume)
    }

    /// `ReplyRecv` by `server`: the reply goes straight to its caller, whose
    /// context it returns, and the server waits on the endpoint; or why not.
    /// `TRACE`: record it.
    #[inline(always)]
    fn fast_reply_recv<const TRACE: bool>(&mut self, cpu: usize, server: u16) -> Result<*const UserContext, FellBack> {
        let Kernel { threads, cspaces, endpoints, cpus, ipc_paths, .. } = self;
        let mut miss = |path| fall_back(ipc_paths, path);
        let from = threads.at(server).ok_or_else(|| miss(IpcPath::Other))?;
        let ep = endpoint_cap(cspaces, from, Rights::READ, &mut miss)?.ep;
        // A sender already queued is for the slow path's receive.
        let endpoint =
            endpoints.get_mut(ep.index, ep.generation).filter(|e| e.senders.head.is_none()).ok_or_else(|| miss(IpcPath::Other))?;
        let caller = from.reply_to.ok_or_else(|| miss(IpcPath::NotWaiting))?;
        let ((from, _), (to, generation)) = threads.pair_mut(server, caller.index).ok_or_else(|| miss(IpcPath::NotWaiting))?;
        if generation != caller.generation || to.state != State::Blocked(Blocked::Reply) {
            return Err(miss(IpcPath::NotWaiting));
        }
        if to.outgoing.from_kernel || !to.ctx.saved_at_syscall() {
            return Err(miss(IpcPath::Other));
        }
        let cpu_state = &mut cpus[cpu];
        if usize::from(to.cpu) != cpu {
            return Err(miss(IpcPath::OtherCpu));
        }
        if cpu_state.ready_bits >> to.priority != 0 {
            return Err(miss(IpcPath::Priority));
        }
        // From here on the reply is the fast path's.
        from.reply_to = None;
        from.state = State::Blocked(Blocked::Recv { ep });
        from.next = None;
        deliver(&from.ctx, &mut to.ctx, 0);
        let resume = resume(cpu_state, caller.index, to);
        append(threads, &mut endpoint.receivers, server);
        if TRACE {
            self.trace_fast_reply(server, caller.index);
        }
        Ok(resume)
    }

    /// With tracing on, a fast-path Call is recorded as the slow path
    /// records it (the message in the sender's `outgoing`, then the Call and
    /// its delivery), flagged fast.
    #[cold]
    #[inline(never)]
    fn trace_fast_call(&mut self, caller: u16, receiver: u16, through: Through) {
        self.trace_fast_send(caller);
        self.trace_send(caller, through.ep, through.badge, true, Some(receiver), true);
        self.trace_delivery(caller, receiver, through.ep, through.badge, true, true);
    }

    /// With tracing on, a fast-path ReplyRecv, as [`Kernel::trace_fast_call`].
    #[cold]
    #[inline(never)]
    fn trace_fast_reply(&mut self, server: u16, caller: u16) {
        self.trace_fast_send(server);
        self.trace_reply(server, caller, false, true, true);
    }

    /// The message the fast path delivers, in the sender's `outgoing`.
    fn trace_fast_send(&mut self, t: u16) {
        if let Some(thread) = self.threads.at_mut(t) {
            let ctx = &thread.ctx;
            (thread.outgoing.info, thread.outgoing.mrs) = (ctx.rsi, [ctx.rdx, ctx.r10, ctx.r8, ctx.r9]);
        }
    }
}

/// The endpoint capability, with `rights`, that the running thread `from`
/// names for a registers-only message; or the fall-back (`miss` counts
/// why the fast path cannot take it).
#[inline(always)]
fn endpoint_cap(
    cspaces: &Pool<CSpace>,
    from: &Thread,
    rights: Rights,
    miss: &mut impl FnMut(IpcPath) -> FellBack,
) -> Result<Through, FellBack> {
    let info = MsgInfo(from.ctx.rsi);
    if info.with_cap() {
        return Err(miss(IpcPath::CapTransfer));
    }
    if info.length() != 0 {
        return Err(miss(IpcPath::LongMessage));
    }
    let lookup = || {
        let cspace = from.cspace.filter(|_| from.state == State::Running)?;
        let table = cspaces.get(cspace.index, cspace.generation)?;
        let cap = table.slots.get(usize::try_from(from.ctx.rdi).ok()?)?.as_ref()?;
        let usable = cap.obj.kind == ObjectKind::Endpoint && cap.rights.contains(rights);
        usable.then_some(Through { ep: cap.obj, badge: cap.badge, grant: cap.rights.contains(Rights::GRANT) })
    };
    lookup().ok_or_else(|| miss(IpcPath::Other))
}

/// Thread `t`, its message delivered, gets the CPU whose state is `cpu`;
/// its context, to resume.
#[inline(always)]
fn resume(cpu: &mut Cpu, t: u16, thread: &mut Thread) -> *const UserContext {
    thread.state = State::Running;
    arch::save_syscalls_into(&thread.ctx);
    cpu.current = Some(t);
    cpu.slice_over = false;
    // The root kept with the thread's space: no look-up of the space. An
    // orphaned root this switch leaves is freed by the next sweep
    // (`loaded.rs`).
    if let Some(root) = thread.root().filter(|r| r.0 != cpu.loaded_root) {
        // SAFETY: every address space shares the kernel half.
        unsafe { arch::switch_to(root) };
        cpu.loaded_root = root.0;
    }
    &raw const thread.ctx
}

/// Moves a registers-only message from the sender's saved context `from`
/// into the result registers of the receiver's `to`, saved at a `syscall`:
/// success, `badge`, the info word (the label; length 0 and no capability,
/// as the slow path would say) and the message registers.
fn deliver(from: &UserContext, to: &mut UserContext, badge: u64) {
    (to.rax, to.rdi, to.rsi) = (0, badge, MsgInfo::new(MsgInfo(from.rsi).label(), 0, false).0);
    [to.rdx, to.r10, to.r8, to.r9] = [from.rdx, from.r10, from.r8, from.r9];
}
