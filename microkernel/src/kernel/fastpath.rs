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
//! else returns false before changing any state, and the slow path runs
//! the system call as it always did. Each outcome is counted
//! (`KernelInfo(KERNEL_INFO_IPC_PATH + path)`), so tests can tell which
//! path ran.

use abi::cap::{ObjectKind, Rights};
use abi::msg::MsgInfo;
use abi::syscall::{IpcPath, Sysnum};

use crate::arch::{self, UserContext};
use crate::capture;
use crate::object::ObjRef;
use crate::object::thread::{Blocked, State};

use super::Kernel;
use super::sched::push;

const CALL: u64 = Sysnum::Call as u64;
const REPLY_RECV: u64 = Sysnum::ReplyRecv as u64;

/// The endpoint capability a fast-path IPC goes through.
#[derive(Clone, Copy)]
struct Through {
    ep: ObjRef,
    badge: u64,
    grant: bool,
}

impl Kernel {
    /// Runs the running thread's system call on the fast path if it can;
    /// then the context to resume: the partner's.
    pub fn fastpath(&mut self, cpu: usize) -> Option<*const UserContext> {
        let current = self.cpus[cpu].current?;
        let ctx = &self.threads.at(current)?.ctx;
        let call = match ctx.rax {
            CALL => true,
            REPLY_RECV => false,
            _ => return None,
        };
        let (info, slot) = (MsgInfo(ctx.rsi), ctx.rdi);
        let (path, resume) = self.try_fastpath(cpu, current, info, slot, call);
        self.ipc_paths[path as usize] += 1;
        resume
    }

    fn try_fastpath(&mut self, cpu: usize, current: u16, info: MsgInfo, slot: u64, call: bool) -> (IpcPath, Option<*const UserContext>) {
        if info.with_cap() {
            return (IpcPath::CapTransfer, None);
        }
        if info.length() != 0 {
            return (IpcPath::LongMessage, None);
        }
        let Some(through) = self.endpoint_cap(current, slot, if call { Rights::WRITE } else { Rights::READ }) else {
            return (IpcPath::Other, None);
        };
        let outcome = if call { self.fast_call(cpu, current, through) } else { self.fast_reply_recv(cpu, current, through.ep) };
        match outcome {
            Ok(resume) => (IpcPath::Fast, Some(resume)),
            Err(path) => (path, None),
        }
    }

    /// The one capability lookup: an endpoint capability with `rights` in
    /// `slot` of the running thread `t`.
    fn endpoint_cap(&self, t: u16, slot: u64, rights: Rights) -> Option<Through> {
        let thread = self.threads.at(t).filter(|t| t.state == State::Running)?;
        let cspace = thread.cspace?;
        let table = self.cspaces.get(cspace.index, cspace.generation)?;
        let cap = table.slots.get(usize::try_from(slot).ok()?)?.as_ref()?;
        let usable = cap.obj.kind == ObjectKind::Endpoint && cap.rights.contains(rights);
        usable.then_some(Through { ep: cap.obj, badge: cap.badge, grant: cap.rights.contains(Rights::GRANT) })
    }

    /// `Call` by `caller`: straight to the receiver waiting on the endpoint,
    /// whose context it returns; or why not.
    fn fast_call(&mut self, cpu: usize, caller: u16, through: Through) -> Result<*const UserContext, IpcPath> {
        let ready_bits = self.cpus[cpu].ready_bits;
        let endpoint = self.endpoints.get_mut(through.ep.index, through.ep.generation).ok_or(IpcPath::Other)?;
        let receiver = endpoint.receivers.head.ok_or(IpcPath::NotWaiting)?;
        let (Some(to), Some(from)) = (self.threads.at(receiver), self.threads.at(caller)) else { return Err(IpcPath::Other) };
        if usize::from(to.cpu) != cpu {
            return Err(IpcPath::OtherCpu);
        }
        if to.priority < from.priority || ready_bits >> to.priority != 0 {
            return Err(IpcPath::Priority);
        }
        if !to.ctx.saved_at_syscall() {
            return Err(IpcPath::Other);
        }
        let generation = self.threads.generation_of(caller).ok_or(IpcPath::Other)?;
        let caller_ref = ObjRef { kind: ObjectKind::Thread, index: caller, generation };
        // From here on the call is the fast path's.
        let (from, to) = self.threads.pair_mut(caller, receiver).ok_or(IpcPath::Other)?;
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
        if capture::active() {
            self.trace_fast_send(caller);
            self.trace_send(caller, through.ep, through.badge, true, Some(receiver), true);
            self.trace_delivery(caller, receiver, through.ep, through.badge, true, true);
        }
        let abandoned = self.threads.at_mut(receiver).and_then(|t| t.reply_to.replace(caller_ref));
        let resume = self.resume_partner(cpu, receiver);
        if let Some(previous) = abandoned {
            self.abandon_reply(previous);
        }
        resume.ok_or(IpcPath::Other)
    }

    /// `ReplyRecv` by `server`: the reply goes straight to its caller, whose
    /// context it returns, and the server waits on endpoint `ep`; or why not.
    fn fast_reply_recv(&mut self, cpu: usize, server: u16, ep: ObjRef) -> Result<*const UserContext, IpcPath> {
        let ready_bits = self.cpus[cpu].ready_bits;
        let endpoint = self.endpoints.get_mut(ep.index, ep.generation).ok_or(IpcPath::Other)?;
        if endpoint.senders.head.is_some() {
            return Err(IpcPath::Other);
        }
        let caller = self.threads.at(server).and_then(|s| s.reply_to).ok_or(IpcPath::NotWaiting)?;
        let to = self
            .threads
            .get(caller.index, caller.generation)
            .filter(|c| c.state == State::Blocked(Blocked::Reply))
            .ok_or(IpcPath::NotWaiting)?;
        if to.outgoing.from_kernel || !to.ctx.saved_at_syscall() {
            return Err(IpcPath::Other);
        }
        if usize::from(to.cpu) != cpu {
            return Err(IpcPath::OtherCpu);
        }
        if ready_bits >> to.priority != 0 {
            return Err(IpcPath::Priority);
        }
        // From here on the reply is the fast path's.
        let (from, to) = self.threads.pair_mut(server, caller.index).ok_or(IpcPath::Other)?;
        from.reply_to = None;
        from.state = State::Blocked(Blocked::Recv { ep });
        deliver(&from.ctx, &mut to.ctx, 0);
        push(&mut self.threads, &mut endpoint.receivers, server);
        if capture::active() {
            self.trace_fast_send(server);
            self.trace_reply(server, caller.index, false, true, true);
        }
        self.resume_partner(cpu, caller.index).ok_or(IpcPath::Other)
    }

    /// Thread `t`, its message delivered, gets the CPU; its context, to
    /// resume.
    #[inline(always)]
    fn resume_partner(&mut self, cpu: usize, t: u16) -> Option<*const UserContext> {
        let thread = self.threads.at_mut(t)?;
        thread.state = State::Running;
        arch::save_syscalls_into(&thread.ctx);
        let (space, resume) = (thread.space, &raw const thread.ctx);
        let cpu = &mut self.cpus[cpu];
        cpu.current = Some(t);
        cpu.slice_over = false;
        let root = space.and_then(|s| self.spaces.get(s.index, s.generation)).map(|s| s.root);
        if let Some(root) = root.filter(|r| r.0 != cpu.loaded_root) {
            // SAFETY: every address space shares the kernel half.
            unsafe { arch::switch_to(root) };
            cpu.loaded_root = root.0;
        }
        Some(resume)
    }

    /// With tracing on, the message the fast path delivers is recorded as
    /// the slow path records it: in the sender's `outgoing`.
    #[cold]
    #[inline(never)]
    fn trace_fast_send(&mut self, t: u16) {
        if let Some(thread) = self.threads.at_mut(t) {
            let ctx = &thread.ctx;
            (thread.outgoing.info, thread.outgoing.mrs) = (ctx.rsi, [ctx.rdx, ctx.r10, ctx.r8, ctx.r9]);
        }
    }
}

/// Moves a registers-only message from the sender's saved context `from`
/// into the result registers of the receiver's `to`, saved at a `syscall`:
/// success, `badge`, the info word (the label; length 0 and no capability,
/// as the slow path would say) and the message registers.
fn deliver(from: &UserContext, to: &mut UserContext, badge: u64) {
    (to.rax, to.rdi, to.rsi) = (0, badge, MsgInfo::new(MsgInfo(from.rsi).label(), 0, false).0);
    [to.rdx, to.r10, to.r8, to.r9] = [from.rdx, from.r10, from.r8, from.r9];
}
