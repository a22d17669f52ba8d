//! The IPC fast path, in the manner of seL4's: `Call` and `ReplyRecv`
//! between two threads on one CPU, run straight from the syscall frame.
//!
//! It is taken when the message is its registers only (no IPC-buffer
//! payload, no capability), the partner waits (a receiver on the endpoint
//! for a Call, the caller for the reply of a ReplyRecv, with no sender
//! queued for its receive half), runs on this CPU and would run next
//! anyway (above every ready thread; a Call's receiver also at least at the
//! caller's priority). Then it does one capability lookup, saves the
//! sender's registers and loads the partner's straight into the frame,
//! with no ready-queue work, no hand-off and no full context copy. Anything
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
    /// Runs the system call in `frame` on the fast path if it can; true
    /// when it did (the frame then holds the partner's context).
    pub fn fastpath(&mut self, frame: &mut UserContext) -> bool {
        let call = match frame.rax {
            CALL => true,
            REPLY_RECV => false,
            _ => return false,
        };
        let path = self.try_fastpath(arch::cpu_index(), frame, call);
        self.ipc_paths[path as usize] += 1;
        path == IpcPath::Fast
    }

    fn try_fastpath(&mut self, cpu: usize, frame: &mut UserContext, call: bool) -> IpcPath {
        let info = MsgInfo(frame.rsi);
        if info.with_cap() {
            return IpcPath::CapTransfer;
        }
        if info.length() != 0 {
            return IpcPath::LongMessage;
        }
        let Some(current) = self.cpus[cpu].current else { return IpcPath::Other };
        let Some(through) = self.endpoint_cap(current, frame.rdi, if call { Rights::WRITE } else { Rights::READ }) else {
            return IpcPath::Other;
        };
        if call { self.fast_call(cpu, current, through, frame) } else { self.fast_reply_recv(cpu, current, through.ep, frame) }
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

    /// `Call` by `caller`: straight to the receiver waiting on the endpoint.
    fn fast_call(&mut self, cpu: usize, caller: u16, through: Through, frame: &mut UserContext) -> IpcPath {
        let ready_bits = self.cpus[cpu].ready_bits;
        let Some(endpoint) = self.endpoints.get_mut(through.ep.index, through.ep.generation) else { return IpcPath::Other };
        let Some(receiver) = endpoint.receivers.head else { return IpcPath::NotWaiting };
        let (Some(to), Some(from)) = (self.threads.at(receiver), self.threads.at(caller)) else { return IpcPath::Other };
        if usize::from(to.cpu) != cpu {
            return IpcPath::OtherCpu;
        }
        if to.priority < from.priority || ready_bits >> to.priority != 0 {
            return IpcPath::Priority;
        }
        if !to.ctx.saved_at_syscall() {
            return IpcPath::Other;
        }
        let Some(generation) = self.threads.generation_of(caller) else { return IpcPath::Other };
        let caller_ref = ObjRef { kind: ObjectKind::Thread, index: caller, generation };
        // From here on the call is the fast path's.
        let next = self.threads.at_mut(receiver).and_then(|t| t.next.take());
        endpoint.receivers.head = next;
        if next.is_none() {
            endpoint.receivers.tail = None;
        }
        if let Some(from) = self.threads.at_mut(caller) {
            from.ctx.save_syscall(frame);
            from.outgoing.from_kernel = false;
            // As the slow path records it: whether the reply may carry a
            // capability (the call went through a capability with grant).
            from.reply_grant = through.grant;
            from.state = State::Blocked(Blocked::Reply);
        }
        if capture::active() {
            self.trace_fast_send(caller, frame);
            self.trace_send(caller, through.ep, through.badge, true, Some(receiver), true);
            self.trace_delivery(caller, receiver, through.ep, through.badge, true, true);
        }
        let abandoned = self.threads.at_mut(receiver).and_then(|t| t.reply_to.replace(caller_ref));
        self.resume_partner(cpu, receiver, frame, through.badge);
        if let Some(previous) = abandoned {
            self.abandon_reply(previous);
        }
        IpcPath::Fast
    }

    /// `ReplyRecv` by `server`: the reply goes straight to its caller, and
    /// the server waits on endpoint `ep`.
    fn fast_reply_recv(&mut self, cpu: usize, server: u16, ep: ObjRef, frame: &mut UserContext) -> IpcPath {
        let ready_bits = self.cpus[cpu].ready_bits;
        let Some(endpoint) = self.endpoints.get_mut(ep.index, ep.generation) else { return IpcPath::Other };
        if endpoint.senders.head.is_some() {
            return IpcPath::Other;
        }
        let Some(caller) = self.threads.at(server).and_then(|s| s.reply_to) else { return IpcPath::NotWaiting };
        let Some(to) = self.threads.get(caller.index, caller.generation).filter(|c| c.state == State::Blocked(Blocked::Reply)) else {
            return IpcPath::NotWaiting;
        };
        if to.outgoing.from_kernel || !to.ctx.saved_at_syscall() {
            return IpcPath::Other;
        }
        if usize::from(to.cpu) != cpu {
            return IpcPath::OtherCpu;
        }
        if ready_bits >> to.priority != 0 {
            return IpcPath::Priority;
        }
        // From here on the reply is the fast path's.
        if let Some(from) = self.threads.at_mut(server) {
            from.ctx.save_syscall(frame);
            from.reply_to = None;
            from.state = State::Blocked(Blocked::Recv { ep });
        }
        push(&mut self.threads, &mut endpoint.receivers, server);
        if capture::active() {
            self.trace_fast_send(server, frame);
            self.trace_reply(server, caller.index, false, true, true);
        }
        self.resume_partner(cpu, caller.index, frame, 0);
        IpcPath::Fast
    }

    /// Thread `t` gets the CPU with the message in `frame` (its label and
    /// registers stay where the sender put them; registers only, so the
    /// sender's message word is already the receiver's) and `badge`.
    #[inline(always)]
    fn resume_partner(&mut self, cpu: usize, t: u16, frame: &mut UserContext, badge: u64) {
        let Some(thread) = self.threads.at_mut(t) else { return };
        thread.state = State::Running;
        frame.resume_syscall(&thread.ctx);
        (frame.rax, frame.rdi) = (0, badge);
        let space = thread.space;
        let cpu = &mut self.cpus[cpu];
        cpu.current = Some(t);
        cpu.slice_over = false;
        let Some(root) = space.and_then(|s| self.spaces.get(s.index, s.generation)).map(|s| s.root) else { return };
        if root.0 != cpu.loaded_root {
            // SAFETY: every address space shares the kernel half.
            unsafe { arch::switch_to(root) };
            cpu.loaded_root = root.0;
        }
    }

    /// With tracing on, the message the fast path delivers is recorded as
    /// the slow path records it: in the sender's `outgoing`.
    #[cold]
    #[inline(never)]
    fn trace_fast_send(&mut self, t: u16, frame: &UserContext) {
        if let Some(thread) = self.threads.at_mut(t) {
            thread.outgoing.info = frame.rsi;
            thread.outgoing.mrs = [frame.rdx, frame.r10, frame.r8, frame.r9];
        }
    }
}
