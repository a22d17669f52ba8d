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
use crate::object::thread::{Blocked, Message, State};
use crate::object::{Cap, ObjRef};

use super::Kernel;
use super::sched::{pop, push};

const CALL: u64 = Sysnum::Call as u64;
const REPLY_RECV: u64 = Sysnum::ReplyRecv as u64;

impl Kernel {
    /// Runs the system call in `frame` on the fast path if it can; true
    /// when it did (the frame then holds the partner's context).
    pub fn fastpath(&mut self, frame: &mut UserContext) -> bool {
        let call = match frame.rax {
            CALL => true,
            REPLY_RECV => false,
            _ => return false,
        };
        let cpu = crate::arch::cpu_index();
        let path = self.try_fastpath(cpu, frame, call);
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
        let Some(cap) = self.endpoint_cap(current, frame.rdi, if call { Rights::WRITE } else { Rights::READ }) else {
            return IpcPath::Other;
        };
        if call { self.fast_call(cpu, current, cap, frame) } else { self.fast_reply_recv(cpu, current, cap.obj, frame) }
    }

    /// The one capability lookup: an endpoint capability with `rights` in
    /// `slot` of the running thread `t`, whose endpoint is alive.
    fn endpoint_cap(&self, t: u16, slot: u64, rights: Rights) -> Option<Cap> {
        let thread = self.threads.at(t).filter(|t| t.state == State::Running)?;
        let cspace = thread.cspace?;
        let table = self.cspaces.get(cspace.index, cspace.generation)?;
        let cap = (*table.slots.get(usize::try_from(slot).ok()?)?)?;
        let usable = cap.obj.kind == ObjectKind::Endpoint && cap.rights.contains(rights);
        (usable && self.endpoints.get(cap.obj.index, cap.obj.generation).is_some()).then_some(cap)
    }

    /// `Call` by `caller`: straight to the receiver waiting on the endpoint.
    fn fast_call(&mut self, cpu: usize, caller: u16, cap: Cap, frame: &mut UserContext) -> IpcPath {
        let ep = cap.obj;
        let Some(receiver) = self.endpoints.get(ep.index, ep.generation).and_then(|e| e.receivers.head) else {
            return IpcPath::NotWaiting;
        };
        let (Some(to), Some(from)) = (self.threads.at(receiver), self.threads.at(caller)) else { return IpcPath::Other };
        if usize::from(to.cpu) != cpu {
            return IpcPath::OtherCpu;
        }
        if to.priority < from.priority || !self.outranks_ready(cpu, to.priority) {
            return IpcPath::Priority;
        }
        if !to.ctx.saved_at_syscall() {
            return IpcPath::Other;
        }
        if let Some(endpoint) = self.endpoints.get_mut(ep.index, ep.generation) {
            pop(&mut self.threads, &mut endpoint.receivers);
        }
        let mrs = [frame.rdx, frame.r10, frame.r8, frame.r9];
        self.block_sender(caller, frame, mrs);
        // As the slow path records it: whether the reply may carry a
        // capability (the call went through a capability with grant).
        if let Some(thread) = self.threads.at_mut(caller) {
            thread.reply_grant = cap.rights.contains(Rights::GRANT);
        }
        if capture::active() {
            self.trace_send(caller, ep, cap.badge, true, Some(receiver), true);
            self.trace_delivery(caller, receiver, ep, cap.badge, true, true);
        }
        self.await_reply(caller, receiver);
        self.resume_partner(cpu, receiver, frame, cap.badge, mrs);
        IpcPath::Fast
    }

    /// `ReplyRecv` by `server`: the reply goes straight to its caller, and
    /// the server waits on endpoint `ep`.
    fn fast_reply_recv(&mut self, cpu: usize, server: u16, ep: ObjRef, frame: &mut UserContext) -> IpcPath {
        if self.endpoints.get(ep.index, ep.generation).is_some_and(|e| e.senders.head.is_some()) {
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
        if !self.outranks_ready(cpu, to.priority) {
            return IpcPath::Priority;
        }
        let mrs = [frame.rdx, frame.r10, frame.r8, frame.r9];
        self.block_sender(server, frame, mrs);
        if let Some(thread) = self.threads.at_mut(server) {
            thread.reply_to = None;
            thread.state = State::Blocked(Blocked::Recv { ep });
        }
        if let Some(endpoint) = self.endpoints.get_mut(ep.index, ep.generation) {
            push(&mut self.threads, &mut endpoint.receivers, server);
        }
        if capture::active() {
            self.trace_reply(server, caller.index, false, true, true);
        }
        self.resume_partner(cpu, caller.index, frame, 0, mrs);
        IpcPath::Fast
    }

    /// The sending thread `t` leaves the CPU: its message and registers
    /// are kept in its TCB, as the slow path keeps them.
    fn block_sender(&mut self, t: u16, frame: &UserContext, mrs: [u64; 4]) {
        if let Some(thread) = self.threads.at_mut(t) {
            thread.outgoing = Message { info: frame.rsi, mrs, from_kernel: false };
            thread.ctx.save_syscall(frame);
        }
    }

    /// Thread `t` gets the CPU with the message (`badge`, the sender's
    /// label, registers `mrs`) in its result registers.
    fn resume_partner(&mut self, cpu: usize, t: u16, frame: &mut UserContext, badge: u64, mrs: [u64; 4]) {
        let label = MsgInfo(frame.rsi).label();
        let Some(thread) = self.threads.at_mut(t) else { return };
        thread.state = State::Running;
        frame.resume_syscall(&thread.ctx);
        (frame.rax, frame.rdi, frame.rsi) = (0, badge, MsgInfo::new(label, 0, false).0);
        [frame.rdx, frame.r10, frame.r8, frame.r9] = mrs;
        let root = thread.space.and_then(|s| self.spaces.get(s.index, s.generation)).map(|s| s.root);
        let cpu = &mut self.cpus[cpu];
        cpu.current = Some(t);
        cpu.slice_over = false;
        if let Some(root) = root.filter(|r| r.0 != cpu.loaded_root) {
            // SAFETY: every address space shares the kernel half.
            unsafe { arch::switch_to(root) };
            cpu.loaded_root = root.0;
        }
    }
}
