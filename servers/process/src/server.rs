//! One server thread: receives on its CPU's endpoint, tells faults from
//! requests, answers, and does its deferred work (flushing buffered
//! decrements, reporting quiescent points) between requests and when its
//! CPU is idle.
//!
//! Idle means that nothing else on the CPU wants to run: each server has
//! an idle thread at the lowest priority that calls it. The server keeps
//! that call unanswered (parked) while it has nothing buffered, answers it
//! once it buffers work, and flushes when the call comes back: the idle
//! thread got to run, so the CPU had nothing better to do.
//!
//! A strategy placed here needs every core's quiescent reports, and a
//! parked server makes none: so a busy server nudges the parked ones now
//! and then (a non-blocking message), and each reports its own.

use abi::msg::kernel_label;
use abi::process::INIT_PID;
use proto::{Phase, ProcessProtocol, ProcessReply, ProcessRequest, ProtoError, accept, respond};
use rt::ipc::{self, Message, Received};
use rt::sys::Slot;

use core::sync::atomic::Ordering::Relaxed;

use crate::counts::MemClient;
use crate::cow::Copies;
use crate::system::{self, NUDGE_LABEL};
use crate::{fork, lifecycle, pager, swap};

/// Priority of the server threads: above their processes.
pub const PRIORITY: u8 = 12;
/// Priority of the processes.
pub const PROCESS_PRIORITY: u8 = 8;
/// Priority of the idle threads: below everything.
pub const IDLE_PRIORITY: u8 = 1;
/// Badge of the idle threads' endpoints (0 is never a pid).
pub const IDLE_BADGE: u64 = 0;
/// Label of an idle thread's call.
const IDLE_LABEL: u64 = 0x1D1E;
/// Label of a swap coordinator's call to pause (badge 0 too).
pub const PAUSE_LABEL: u64 = 0x9A05E;
/// Requests a server handles between two nudges of the parked servers.
const NUDGE_EVERY: u32 = 64;

/// What a handled message is answered with, encoded into the IPC buffer
/// only when it is sent.
pub enum Answer {
    /// A message with no payload (a fault's resume, an idle thread's).
    Plain(Message),
    Reply(ProcessReply),
}

pub struct Server {
    /// Our CPU, and our index among the servers.
    pub index: u16,
    pub mem: MemClient,
    /// Our control page with the kernel, if the kernel copies for us.
    pub copies: Option<Copies>,
    /// Our idle thread's call is held (its reply saved).
    idle_parked: bool,
    /// Requests since we last nudged the parked servers.
    since_nudge: u32,
}

/// An idle thread: tells its server, again and again, that the CPU is idle.
pub extern "C" fn idle_thread(index: u64) -> ! {
    let ep = crate::slot::FIRST_IDLE_ENDPOINT + index;
    loop {
        if ipc::call(ep, Message::new(IDLE_LABEL, [0; 4])).is_err() {
            end_if_retired(ep);
        }
    }
}

/// Ends the calling thread if `ep`'s capability is gone: init revoked the
/// servers' endpoints (a restart, which ends every thread of ours anyway),
/// and this thread must not spin on an endpoint it no longer has.
fn end_if_retired(ep: Slot) {
    if rt::sys::identify(ep).is_err() {
        rt::sys::thread_exit();
    }
}

/// Serves CPU `index`'s endpoint forever.
pub fn run(index: u16) -> ! {
    let buffer_at = if index == 0 { rt::process::IPC_BUFFER } else { system::get().ipc_buffer(index) };
    // SAFETY: this thread's own IPC buffer, mapped by init (server 0) or by
    // `system::start`; no one else uses it.
    let buffer = unsafe { ipc::buffer_at(buffer_at) };
    let sys = system::get();
    let copies = sys.cow.as_ref().map(|memory| Copies::new(memory, index));
    let mut server = Server { index, mem: MemClient::new(index, buffer), copies, idle_parked: false, since_nudge: 0 };
    let ep = system::get().endpoint(index);
    let _ = rt::sys::trace_name(ep, "process-server");
    let mut answer: Option<Message> = None;
    loop {
        if server.idle_parked && server.mem.has_pending() {
            server.wake_idle();
        }
        let received = match answer.take() {
            Some(reply) => ipc::reply_recv(ep, reply),
            None => ipc::recv(ep),
        };
        if received.is_err() {
            end_if_retired(ep);
        }
        if let Ok(received) = received {
            let handled = server.handle(received);
            // Before the answer is encoded: this work may use the IPC
            // buffer (a quiescent point's frees can send frames back, an
            // end answers the parent's wait).
            lifecycle::end_killed(&mut server);
            server.between_requests();
            answer = handled.map(|answer| server.encode(answer));
        }
    }
}

impl Server {
    fn idle_reply(&self) -> Slot {
        crate::slot::FIRST_IDLE_REPLY + u64::from(self.index)
    }

    /// The idle thread called: flush, report, and hold its call until
    /// there is work again.
    fn idle(&mut self) -> Option<Message> {
        self.mem.quiescent(true);
        if ipc::reply_save(self.idle_reply()).is_ok() {
            self.idle_parked = true;
            system::get().parked[usize::from(self.index)].store(true, Relaxed);
            None
        } else {
            Some(Message::default())
        }
    }

    /// A quiescent point of a strategy placed here, and now and then a
    /// nudge to the parked servers so that they report theirs.
    fn between_requests(&mut self) {
        if !self.mem.reports_quiescence() {
            return;
        }
        self.mem.quiescent(false);
        self.since_nudge += 1;
        if self.since_nudge < NUDGE_EVERY {
            return;
        }
        self.since_nudge = 0;
        system::get().nudge(self.index, true);
    }

    /// Lets the idle thread call again (it runs once the CPU is idle).
    fn wake_idle(&mut self) {
        let _ = ipc::reply_with(self.idle_reply(), Message::default());
        self.idle_parked = false;
        system::get().parked[usize::from(self.index)].store(false, Relaxed);
    }

    /// Handles one message; returns the answer, or `None` when there is none
    /// to send now (exit, exec, a wait that blocks, a killed process).
    #[allow(clippy::result_large_err, reason = "the error is the reply itself, encoded once into the IPC buffer; no heap in servers")]
    fn handle(&mut self, received: Received) -> Option<Answer> {
        let pid = received.badge as u32;
        let info = received.msg.info();
        if received.badge == IDLE_BADGE && info.label() == IDLE_LABEL {
            self.settle_copies();
            return self.idle().map(Answer::Plain);
        }
        if received.badge == IDLE_BADGE && info.label() == PAUSE_LABEL {
            swap::pause(self);
            return None;
        }
        if received.badge == IDLE_BADGE && info.label() == NUDGE_LABEL {
            // Reported by `between_requests`; a nudge gets no reply.
            return None;
        }
        let phases = &system::get().stats.phases;
        if info.label() == kernel_label::FAULT {
            self.settle_copies();
            return phases.time(self.index, Phase::Fault, || pager::fault(self, pid, received.msg.mrs)).map(Answer::Plain);
        }
        let accepted = proto::payload(&self.mem.buffer().data, info.length())
            .map_err(ProcessReply::Error)
            .and_then(|payload| accept::<ProcessProtocol>(info.label(), payload));
        let request = match accepted {
            Ok(request) => request,
            Err(error_reply) => return Some(Answer::Reply(error_reply)),
        };
        // Only now that the request is out of the IPC buffer: applying the
        // kernel's copies may send the memory server messages through it.
        self.settle_copies();
        let reply = match request {
            ProcessRequest::Spawn { program, arg } => lifecycle::spawn(self, pid, &program, arg).map(|pid| ProcessReply::Spawned { pid }),
            ProcessRequest::Fork { resume, stack, cpu } => phases
                .time(self.index, Phase::Fork, || fork::fork(self, pid, resume, stack, cpu))
                .map(|child_pid| ProcessReply::Forked { child_pid }),
            ProcessRequest::Exit { status } => {
                lifecycle::exit(self, pid, status);
                return None;
            }
            ProcessRequest::Wait { pid: wanted } => match phases.time(self.index, Phase::Wait, || lifecycle::wait(pid, wanted)) {
                Ok(Some((pid, status))) => Ok(ProcessReply::Exited { pid, status }),
                Ok(None) => return None,
                Err(error) => Err(error),
            },
            ProcessRequest::Exec { program, arg } => match lifecycle::exec(self, pid, &program, arg) {
                Ok(()) => return None,
                Err(error) => Err(error),
            },
            ProcessRequest::GetPid => Ok(ProcessReply::Pid(pid)),
            ProcessRequest::Brk { new_end } => lifecycle::brk(self, pid, new_end).map(ProcessReply::BrkSet),
            ProcessRequest::Mmap { pages } => lifecycle::mmap(self, pid, pages).map(|addr| ProcessReply::Mapped { addr }),
            ProcessRequest::Munmap { addr, pages } => lifecycle::munmap(self, pid, addr, pages).map(|()| ProcessReply::Unmapped),
            ProcessRequest::Quiesce | ProcessRequest::Swap { .. } if pid != INIT_PID => Err(ProtoError::Denied),
            ProcessRequest::Quiesce => {
                // Killed processes first: their frames go back too.
                lifecycle::end_killed(self);
                self.quiesce();
                Ok(ProcessReply::Quiesced)
            }
            ProcessRequest::Swap { strategy } => swap::coordinate(self, strategy).map(|()| ProcessReply::Swapped),
            ProcessRequest::Kill { pid: target } => lifecycle::kill(pid, target).map(|()| ProcessReply::Killed),
            ProcessRequest::TimePhases { on } => {
                system::get().stats.phases.set_timed(on);
                Ok(ProcessReply::PhasesTimed)
            }
            ProcessRequest::Stats => {
                let processes = system::get().procs.lock().count();
                Ok(ProcessReply::Stats(system::get().stats.snapshot(processes)))
            }
        };
        Some(Answer::Reply(reply.unwrap_or_else(ProcessReply::Error)))
    }

    /// Applies the copies the kernel made for our processes, and refills
    /// its reserve: before anything reads or changes a page map, and never
    /// while a request's payload is still in the IPC buffer (a release may
    /// send the memory server a message through it).
    pub fn settle_copies(&mut self) {
        if let Some(copies) = &self.copies {
            copies.settle(&mut self.mem);
        }
    }

    /// Everything back: the kernel's reserve first (so that it copies
    /// nothing more), its copies applied, buffers flushed, and every frame
    /// at hand returned to the memory server (`MemClient::quiesce`).
    pub fn quiesce(&mut self) {
        if let Some(copies) = &self.copies {
            copies.take_back(&mut self.mem);
            copies.apply_log(&mut self.mem);
        }
        self.mem.quiesce();
    }

    fn encode(&mut self, answer: Answer) -> Message {
        match answer {
            Answer::Plain(message) => message,
            Answer::Reply(reply) => self.reply(&reply),
        }
    }

    /// Encodes `reply` into our IPC buffer; the message that sends it.
    pub fn reply(&mut self, reply: &ProcessReply) -> Message {
        match respond::<ProcessProtocol>(reply, &mut self.mem.buffer().data) {
            Ok(out) => Message::with_payload(out.label, [0; 4], out.length, false),
            Err(_) => Message::default(),
        }
    }
}

/// A request from a pid we do not know.
pub fn unknown<T>() -> Result<T, ProtoError> {
    Err(ProtoError::NoSuchProcess)
}
