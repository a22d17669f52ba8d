//! IPC: endpoints (send, receive, call, reply), notifications, and faults
//! delivered as calls to a thread's fault endpoint.
//!
//! A sender's message is captured into its TCB when it sends, so a blocked
//! sender's registers are free; the receiver gets the label, length,
//! registers, the IPC-buffer payload and at most one capability (only
//! through a capability with the grant right). A call leaves the caller
//! waiting for the reply, and the receiver remembers whom to reply to.

use abi::cap::Rights;
use abi::msg::{IPC_BUFFER_DATA, IpcBuffer, MsgInfo, kernel_label};
use abi::syscall::SysError;
use core::mem::offset_of;

use crate::object::thread::{Blocked, Message, State};
use crate::object::{Cap, ObjRef, Reply};
use abi::cap::ObjectKind;

use super::sched::{pop, push, unlink};
use super::{Kernel, UserFault, vm};
use crate::capture::{self, Content, category};
use trace::{Kind, Record, ThreadRef};

/// Message bytes a record reports: the registers plus the payload.
fn message_len(info: MsgInfo) -> u32 {
    (abi::msg::MESSAGE_REGISTERS * 8 + info.length().min(IPC_BUFFER_DATA)) as u32
}

impl Kernel {
    /// Writes a system call's result into `t`'s saved registers.
    pub fn set_result(&mut self, t: u16, result: Result<u64, SysError>) {
        if let Some(thread) = self.threads.at_mut(t) {
            let (rax, rdx) = abi::syscall::encode(result);
            thread.ctx.rax = rax;
            thread.ctx.rdx = rdx;
        }
    }

    /// Captures the message in `t`'s registers (info in rsi, registers in
    /// rdx, r10, r8, r9) for sending.
    fn capture(&mut self, t: u16) {
        if let Some(thread) = self.threads.at_mut(t) {
            let ctx = &thread.ctx;
            thread.outgoing = Message { info: ctx.rsi, mrs: [ctx.rdx, ctx.r10, ctx.r8, ctx.r9], from_kernel: false };
        }
    }

    /// `Send`, `NbSend` and `Call` by thread `t` through capability `cap`.
    pub fn send(&mut self, t: u16, cap: Cap, call: bool, block: bool) {
        if !cap.rights.contains(Rights::WRITE) {
            return self.set_result(t, Err(SysError::NoRight));
        }
        self.capture(t);
        self.send_captured(t, cap.obj, cap.badge, cap.rights.contains(Rights::GRANT), call, block);
    }

    fn send_captured(&mut self, t: u16, ep: ObjRef, badge: u64, grant: bool, call: bool, block: bool) {
        let Some(endpoint) = self.endpoints.get_mut(ep.index, ep.generation) else {
            return self.set_result(t, Err(SysError::ObjectDeleted));
        };
        let receiver = pop(&mut self.threads, &mut endpoint.receivers);
        if let Some(thread) = self.threads.at_mut(t) {
            thread.reply_grant = call && grant;
        }
        let tracing = capture::active();
        if tracing {
            self.trace_send(t, ep, badge, call, receiver, block);
        }
        if let Some(receiver) = receiver {
            self.transfer(t, receiver, badge, grant);
            self.wake(receiver);
            if tracing {
                self.trace_delivery(t, receiver, ep, badge, call, false);
            }
            if call {
                self.await_reply(t, receiver);
            } else {
                self.set_result(t, Ok(0));
            }
        } else if block {
            if let Some(endpoint) = self.endpoints.get_mut(ep.index, ep.generation) {
                push(&mut self.threads, &mut endpoint.senders, t);
            }
            if let Some(thread) = self.threads.at_mut(t) {
                thread.state = State::Blocked(Blocked::Send { ep, badge, call, grant });
            }
        } else {
            self.set_result(t, Err(SysError::WouldBlock));
        }
    }

    /// `Recv` and `NbRecv` by thread `t` through capability `cap`.
    pub fn recv(&mut self, t: u16, cap: Cap, block: bool) {
        if !cap.rights.contains(Rights::READ) {
            return self.set_result(t, Err(SysError::NoRight));
        }
        let ep = cap.obj;
        let Some(endpoint) = self.endpoints.get_mut(ep.index, ep.generation) else {
            return self.set_result(t, Err(SysError::ObjectDeleted));
        };
        if let Some(sender) = pop(&mut self.threads, &mut endpoint.senders) {
            let Some(State::Blocked(Blocked::Send { badge, call, grant, .. })) = self.threads.at(sender).map(|s| s.state) else {
                return self.set_result(t, Err(SysError::BadState));
            };
            self.transfer(sender, t, badge, grant);
            if capture::active() {
                self.trace_delivery(sender, t, ep, badge, call, false);
            }
            if call {
                self.await_reply(sender, t);
            } else {
                self.set_result(sender, Ok(0));
                self.wake(sender);
            }
        } else if block {
            push(&mut self.threads, &mut endpoint.receivers, t);
            if let Some(thread) = self.threads.at_mut(t) {
                thread.state = State::Blocked(Blocked::Recv { ep });
            }
        } else {
            self.set_result(t, Err(SysError::WouldBlock));
        }
    }

    /// The caller waits for `server`'s reply; a reply `server` still owed
    /// to an earlier caller is abandoned with `NoReply`.
    pub(super) fn await_reply(&mut self, caller: u16, server: u16) {
        let caller_ref = self.thread_ref(caller);
        if let Some(thread) = self.threads.at_mut(caller) {
            thread.state = State::Blocked(Blocked::Reply);
        }
        let previous = self.threads.at_mut(server).and_then(|s| core::mem::replace(&mut s.reply_to, caller_ref));
        if let Some(previous) = previous {
            self.abandon_reply(previous);
        }
    }

    /// A server took a new call before answering `previous`: if that caller
    /// still waits, it gets `NoReply`.
    pub(super) fn abandon_reply(&mut self, previous: ObjRef) {
        if self.waits_for_reply(previous) {
            self.set_result(previous.index, Err(SysError::NoReply));
            self.make_ready(previous.index);
        }
    }

    pub fn waits_for_reply(&self, caller: ObjRef) -> bool {
        self.threads.get(caller.index, caller.generation).is_some_and(|c| c.state == State::Blocked(Blocked::Reply))
    }

    /// `ReplySave`: the pending reply of thread `t` becomes a Reply
    /// capability in `dst`.
    pub fn reply_save(&mut self, t: u16, dst: u64) -> Result<u64, SysError> {
        let cspace = self.cspace_of(t)?;
        let pending = self.threads.at(t).and_then(|s| s.reply_to).filter(|c| self.waits_for_reply(*c));
        let caller = pending.ok_or(SysError::NoReply)?;
        let payer = self.charge(t)?;
        let (index, generation) = self.replies.insert(Reply { caller: Some(caller) }).inspect_err(|_| self.refund(payer, 1))?;
        let obj = ObjRef { kind: ObjectKind::Reply, index, generation };
        self.set_payer(obj, payer);
        if let Err(error) = self.insert_cap(cspace, dst, obj, Rights::WRITE, 0, 0) {
            if let Some(reply) = self.replies.get_mut(index, generation) {
                reply.caller = None;
            }
            self.drop_ref(obj);
            return Err(error);
        }
        if let Some(server) = self.threads.at_mut(t) {
            server.reply_to = None;
        }
        Ok(0)
    }

    /// `Reply` by thread `t`: to the caller named by the Reply capability
    /// in `slot` (which is used up), or to the last caller it received from.
    /// `then_recv` marks the reply half of a `ReplyRecv` (for the trace).
    pub fn reply(&mut self, t: u16, slot: u64, then_recv: bool) -> Result<u64, SysError> {
        self.capture(t);
        let caller = if slot == abi::syscall::IMPLICIT_REPLY {
            self.threads.at_mut(t).and_then(|s| s.reply_to.take()).ok_or(SysError::NoReply)?
        } else {
            let cap = self.lookup_as(t, slot, ObjectKind::Reply, Rights::WRITE)?;
            let caller = self.replies.get_mut(cap.obj.index, cap.obj.generation).and_then(|r| r.caller.take());
            self.delete_slot(self.cspace_of(t)?, slot);
            caller.ok_or(SysError::NoReply)?
        };
        if !self.waits_for_reply(caller) {
            return Err(SysError::NoReply);
        }
        let from_kernel = self.threads.at(caller.index).is_some_and(|c| c.outgoing.from_kernel);
        if capture::active() {
            self.trace_reply(t, caller.index, from_kernel, then_recv, false);
        }
        if from_kernel {
            let label = self.threads.at(t).map_or(0, |s| s.outgoing.info().label());
            let exiting = self.threads.at(caller.index).is_some_and(|c| c.outgoing.mrs[0] == kernel_label::EXIT_VECTOR);
            if label == kernel_label::RESUME && !exiting {
                self.make_ready(caller.index);
            } else {
                if !exiting {
                    crate::println!("thread {} killed by its pager (reply label {label:#x})", caller.index);
                }
                if capture::active() {
                    self.trace_kill(self.tref(t), caller.index);
                }
                self.stop_thread(caller.index, State::Dead);
                self.check_init_alive(caller.index);
            }
        } else {
            // A reply may carry a capability only if the caller called
            // through a capability with the grant right (seL4's grant-reply),
            // and opted in by naming an empty receive slot.
            let grant = self.threads.at(caller.index).is_some_and(|c| c.reply_grant);
            self.transfer(t, caller.index, 0, grant);
            self.wake(caller.index);
        }
        Ok(0)
    }

    /// Moves `sender`'s captured message into `receiver`'s registers, IPC
    /// buffer and capability table.
    fn transfer(&mut self, sender: u16, receiver: u16, badge: u64, grant: bool) {
        let Some(message) = self.threads.at(sender).map(|s| s.outgoing) else { return };
        let info = message.info();
        let mut length = 0;
        let mut cap_sent = false;
        if !message.from_kernel {
            if info.length() > 0 {
                length = self.copy_payload(sender, receiver, info.length().min(IPC_BUFFER_DATA));
            }
            if info.with_cap() && grant {
                cap_sent = self.transfer_cap(sender, receiver);
            }
        }
        if let Some(thread) = self.threads.at_mut(receiver) {
            let ctx = &mut thread.ctx;
            ctx.rax = 0;
            ctx.rdi = badge;
            ctx.rsi = MsgInfo::new(info.label(), length, cap_sent).0;
            [ctx.rdx, ctx.r10, ctx.r8, ctx.r9] = message.mrs;
        }
    }

    /// Copies `length` payload bytes between IPC buffers; returns the bytes
    /// copied (0 when either thread has no usable buffer).
    fn copy_payload(&self, sender: u16, receiver: u16, length: usize) -> usize {
        let (Some(from), Some(to)) = (self.ipc_buffer(sender, false), self.ipc_buffer(receiver, true)) else {
            return 0;
        };
        // SAFETY: both point at whole IPC buffers in frames mapped for those
        // threads (checked by `ipc_buffer`); distinct threads' buffers may
        // share a frame, so `copy` tolerates overlap.
        unsafe { core::ptr::copy(from, to, length) };
        length
    }

    /// Kernel pointer to thread `t`'s IPC buffer, if it has one mapped.
    fn ipc_buffer(&self, t: u16, write: bool) -> Option<*mut u8> {
        let thread = self.threads.at(t)?;
        let root = thread.root()?;
        (thread.ipc_buffer != 0).then_some(())?;
        vm::user_pointer(root, thread.ipc_buffer, write)
    }

    fn buffer_word(&self, t: u16, offset: usize) -> Option<u64> {
        let base = self.ipc_buffer(t, false)?;
        // SAFETY: the IPC buffer lies in one mapped page and `offset` is a
        // field offset of `IpcBuffer`, which fits in a page.
        Some(unsafe { base.add(offset).cast::<u64>().read_unaligned() })
    }

    fn set_buffer_word(&self, t: u16, offset: usize, value: u64) {
        if let Some(base) = self.ipc_buffer(t, true) {
            // SAFETY: as in `buffer_word`, and the page is writable.
            unsafe { base.add(offset).cast::<u64>().write_unaligned(value) };
        }
    }

    /// Copies the capability the sender names into the slot the receiver
    /// names, as a child of the sender's; false if either side is unusable.
    fn transfer_cap(&mut self, sender: u16, receiver: u16) -> bool {
        let sent = (|| {
            let send_slot = self.buffer_word(sender, offset_of!(IpcBuffer, send_cap))?;
            let recv_slot = self.buffer_word(receiver, offset_of!(IpcBuffer, recv_slot))?;
            let cap = self.lookup(sender, send_slot).ok()?;
            let cspace = self.cspace_of(receiver).ok()?;
            self.insert_cap(cspace, recv_slot, cap.obj, cap.rights, cap.badge, cap.id).ok()?;
            self.mark_derived(self.cspace_of(sender).ok()?, send_slot);
            Some(())
        })()
        .is_some();
        self.set_buffer_word(receiver, offset_of!(IpcBuffer, cap_received), u64::from(sent));
        sent
    }

    /// `Signal` by thread `t`: sets bits and wakes the waiter, if any.
    pub fn signal(&mut self, t: u16, cap: Cap, bits: u64) -> Result<u64, SysError> {
        if !cap.rights.contains(Rights::WRITE) {
            return Err(SysError::NoRight);
        }
        let src = self.tref(t);
        capture::emit(category::NOTIFY, || Record {
            src,
            endpoint: u32::from(cap.obj.index),
            badge: bits | cap.badge,
            ..Record::empty(Kind::NotifySignal)
        });
        self.notify(cap.obj, bits | cap.badge)
    }

    /// Sets `bits` on a notification and wakes its waiter, if any.
    pub fn notify(&mut self, ntfn: ObjRef, bits: u64) -> Result<u64, SysError> {
        let notification = self.notifications.get_mut(ntfn.index, ntfn.generation).ok_or(SysError::ObjectDeleted)?;
        notification.bits |= bits;
        if let Some(waiter) = notification.waiter.take() {
            let bits = core::mem::take(&mut notification.bits);
            if capture::active() {
                self.trace_wait(waiter, ntfn, bits);
            }
            self.set_result(waiter, Ok(bits));
            self.make_ready(waiter);
        }
        Ok(0)
    }

    /// `Wait` (blocking) and `Poll`: takes the bits, or waits for some.
    pub fn wait(&mut self, t: u16, cap: Cap, block: bool) {
        if !cap.rights.contains(Rights::READ) {
            return self.set_result(t, Err(SysError::NoRight));
        }
        let ntfn = cap.obj;
        let Some(notification) = self.notifications.get_mut(ntfn.index, ntfn.generation) else {
            return self.set_result(t, Err(SysError::ObjectDeleted));
        };
        if notification.bits != 0 || !block {
            let bits = core::mem::take(&mut notification.bits);
            if capture::active() {
                self.trace_wait(t, ntfn, bits);
            }
            return self.set_result(t, Ok(bits));
        }
        if notification.waiter.is_some() {
            return self.set_result(t, Err(SysError::BadState));
        }
        notification.waiter = Some(t);
        if let Some(thread) = self.threads.at_mut(t) {
            thread.state = State::Blocked(Blocked::Notification { ntfn });
        }
    }

    /// A user thread faulted: a call to its fault endpoint on its behalf, or,
    /// without one, the end of the thread.
    pub fn fault(&mut self, t: u16, fault: UserFault) {
        if fault.is_user_write_to_present_page() && self.resolve_cow(t, crate::arch::cpu_index(), fault.addr) {
            return;
        }
        let Some(thread) = self.threads.at_mut(t) else { return };
        let rip = thread.ctx.rip;
        match thread.fault_ep {
            Some((ep, badge)) if self.endpoints.get(ep.index, ep.generation).is_some() => {
                let thread = self.threads.at_mut(t).expect("checked above");
                thread.outgoing = Message {
                    info: MsgInfo::new(kernel_label::FAULT, 0, false).0,
                    mrs: [fault.vector, fault.addr, rip, fault.error],
                    from_kernel: true,
                };
                self.send_captured(t, ep, badge, false, true, true);
            }
            _ => {
                // The first kills are reported in full; a fuzzer may cause thousands.
                const REPORTED_KILLS: u64 = 8;
                if self.kills < REPORTED_KILLS {
                    crate::println!(
                        "thread {t}: {} (vector {}) at rip {rip:#x}, address {:#x}, error {:#x}; no fault endpoint, killed",
                        fault.name,
                        fault.vector,
                        fault.addr,
                        fault.error
                    );
                }
                self.kills += 1;
                if capture::active() {
                    self.trace_kill(ThreadRef::NONE, t);
                }
                self.stop_thread(t, State::Dead);
                self.check_init_alive(t);
            }
        }
    }

    /// Takes thread `t` out of whatever it waits in and gives it `state`.
    /// An IPC or wait it was blocked in ends with `BadState`.
    pub fn stop_thread(&mut self, t: u16, state: State) {
        let Some(previous) = self.threads.at(t).map(|thread| thread.state) else { return };
        match previous {
            State::Ready => self.unready(t),
            State::Blocked(Blocked::Send { ep, .. }) => {
                if let Some(endpoint) = self.endpoints.get_mut(ep.index, ep.generation) {
                    unlink(&mut self.threads, &mut endpoint.senders, t);
                }
            }
            State::Blocked(Blocked::Recv { ep }) => {
                if let Some(endpoint) = self.endpoints.get_mut(ep.index, ep.generation) {
                    unlink(&mut self.threads, &mut endpoint.receivers, t);
                }
            }
            State::Blocked(Blocked::Notification { ntfn }) => {
                if let Some(notification) = self.notifications.get_mut(ntfn.index, ntfn.generation) {
                    notification.waiter = None;
                }
            }
            State::Running => {
                let cpu = self.cpus.iter().position(|c| c.current == Some(t));
                if let Some(cpu) = cpu.filter(|&c| c != crate::arch::cpu_index()) {
                    crate::arch::send_resched(cpu);
                }
            }
            State::Blocked(Blocked::Reply) | State::Inactive | State::Suspended | State::Dead => {}
        }
        if matches!(previous, State::Blocked(_)) {
            self.set_result(t, Err(SysError::BadState));
        }
        if let Some(thread) = self.threads.at_mut(t) {
            thread.state = state;
        }
        if state == State::Dead {
            self.release_caller(t);
            self.release_at_death(t);
        }
    }

    /// A dead thread owes no reply: the caller it received from is
    /// answered with `NoReply` instead of waiting forever.
    fn release_caller(&mut self, t: u16) {
        let caller = self.threads.at_mut(t).and_then(|thread| thread.reply_to.take());
        if let Some(caller) = caller.filter(|c| self.waits_for_reply(*c)) {
            self.set_result(caller.index, Err(SysError::NoReply));
            self.make_ready(caller.index);
        }
    }

    /// An endpoint is going away: everyone waiting on it is told so.
    pub fn abort_endpoint(&mut self, ep: ObjRef) {
        let Some(endpoint) = self.endpoints.get_mut(ep.index, ep.generation) else { return };
        let (mut senders, mut receivers) = (endpoint.senders, endpoint.receivers);
        endpoint.senders = Default::default();
        endpoint.receivers = Default::default();
        while let Some(t) = pop(&mut self.threads, &mut senders).or_else(|| pop(&mut self.threads, &mut receivers)) {
            self.set_result(t, Err(SysError::ObjectDeleted));
            self.make_ready(t);
        }
    }

    /// A notification is going away: its waiter is told so.
    pub fn abort_notification(&mut self, ntfn: ObjRef) {
        let waiter = self.notifications.get_mut(ntfn.index, ntfn.generation).and_then(|n| n.waiter.take());
        if let Some(t) = waiter {
            self.set_result(t, Err(SysError::ObjectDeleted));
            self.make_ready(t);
        }
    }

    /// The trace name of thread `t`.
    pub fn tref(&self, t: u16) -> ThreadRef {
        self.threads.generation_of(t).map_or(ThreadRef::NONE, |g| ThreadRef::new(u32::from(t), g))
    }

    /// A send, call or fault delivery by `t`; a call gets its trace id here.
    #[cold]
    #[inline(never)]
    pub(super) fn trace_send(&mut self, t: u16, ep: ObjRef, badge: u64, call: bool, receiver: Option<u16>, block: bool) {
        let Some(message) = self.threads.at(t).map(|s| s.outgoing) else { return };
        let (kind, category) = match (message.from_kernel, call) {
            (true, _) => (Kind::FaultDelivery, category::FAULT),
            (false, true) => (Kind::Call, category::IPC),
            (false, false) => (Kind::Send, category::IPC),
        };
        if !capture::on(category) {
            return;
        }
        let call_id = if call { capture::new_call_id() } else { 0 };
        if let Some(thread) = self.threads.at_mut(t) {
            thread.call_id = call_id;
        }
        let info = message.info();
        let status = if receiver.is_none() && !block { SysError::WouldBlock.code() as u16 } else { 0 };
        let (src, dst) = (self.tref(t), receiver.map_or(ThreadRef::NONE, |r| self.tref(r)));
        // The sender's item count; a fault's registers are the kernel's, not a count.
        let items = if message.from_kernel { 0 } else { message.mrs[0].min(255) as u8 };
        let record = || Record {
            call_id,
            badge,
            label: info.label(),
            src,
            dst,
            endpoint: u32::from(ep.index),
            len: message_len(info),
            status,
            caps: u8::from(info.with_cap()),
            items,
            ..Record::empty(kind)
        };
        capture::emit_message(category, record, || Content { mrs: message.mrs, payload: self.sent_payload(t, &message) });
    }

    /// The IPC-buffer payload of the message `t` sends, for the trace: empty
    /// for a message of the kernel's or when `t` has no buffer mapped.
    fn sent_payload(&self, t: u16, message: &Message) -> &[u8] {
        let length = message.info().length().min(IPC_BUFFER_DATA);
        if length == 0 || message.from_kernel {
            return &[]; // Registers only: no page-table walk for the buffer.
        }
        match self.ipc_buffer(t, false) {
            // SAFETY: `ipc_buffer` points at a whole IPC buffer in a frame
            // mapped for `t`, whose data comes first; the kernel lock, held
            // while `self` is borrowed, keeps the mapping.
            Some(base) => unsafe { core::slice::from_raw_parts(base, length) },
            None => &[],
        }
    }

    /// A message from `sender` reached `receiver`; `fast` on the fast path.
    #[cold]
    #[inline(never)]
    pub(super) fn trace_delivery(&self, sender: u16, receiver: u16, ep: ObjRef, badge: u64, call: bool, fast: bool) {
        let Some(from) = self.threads.at(sender) else { return };
        let category = if from.outgoing.from_kernel { category::FAULT } else { category::IPC };
        let (message, call_id) = (from.outgoing, if call { from.call_id } else { 0 });
        let (src, dst) = (self.tref(sender), self.tref(receiver));
        capture::emit(category, || Record {
            call_id,
            badge,
            label: message.info().label(),
            src,
            dst,
            endpoint: u32::from(ep.index),
            len: message_len(message.info()),
            flags: if fast { Record::FLAG_FAST_PATH } else { 0 },
            ..Record::empty(Kind::Recv)
        });
    }

    /// A reply from `server` to `caller`; `fast` on the fast path.
    #[cold]
    #[inline(never)]
    pub(super) fn trace_reply(&self, server: u16, caller: u16, fault: bool, then_recv: bool, fast: bool) {
        let kind = match (fault, then_recv) {
            (true, _) => Kind::FaultReply,
            (false, true) => Kind::ReplyRecv,
            (false, false) => Kind::Reply,
        };
        let category = if fault { category::FAULT } else { category::IPC };
        let call_id = self.threads.at(caller).map_or(0, |c| c.call_id);
        let Some(message) = self.threads.at(server).map(|s| s.outgoing) else { return };
        let info = message.info();
        let (src, dst) = (self.tref(server), self.tref(caller));
        let flags = if fast { Record::FLAG_FAST_PATH } else { 0 };
        let record = Record { call_id, label: info.label(), src, dst, len: message_len(info), flags, ..Record::empty(kind) };
        if fault {
            // A pager's answer is its label (resume or kill); its registers say nothing.
            return capture::emit(category, || record);
        }
        capture::emit_message(category, || record, || Content { mrs: message.mrs, payload: self.sent_payload(server, &message) });
    }

    #[cold]
    #[inline(never)]
    fn trace_kill(&self, by: ThreadRef, victim: u16) {
        let dst = self.tref(victim);
        capture::emit(category::FAULT, || Record { src: by, dst, ..Record::empty(Kind::Kill) });
    }

    #[cold]
    #[inline(never)]
    fn trace_wait(&self, waiter: u16, ntfn: ObjRef, bits: u64) {
        let dst = self.tref(waiter);
        capture::emit(category::NOTIFY, || Record { dst, endpoint: u32::from(ntfn.index), badge: bits, ..Record::empty(Kind::NotifyWait) });
    }
}
