//! The process API of programs run by a process server, so that workloads
//! read like ordinary programs: fork, exit, wait, exec, spawn, getpid, sbrk
//! and mmap. Each is one typed call (`libs/proto`'s process protocol) to the
//! server in slot `abi::process::SERVER_SLOT`, through the IPC buffer the
//! server mapped at `process::IPC_BUFFER`.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::msg::IpcBuffer;
use abi::process::{SERVER_SLOT, START_MAGIC, STATUS_PANIC};
use proto::{ProcessProtocol, ProcessReply, ProcessRequest, ProcessStats, ProgramName, ProtoError};

use crate::client;

static IS_PROCESS: AtomicBool = AtomicBool::new(false);
/// The heap's end as last set, 0 until the first `sbrk`.
static BREAK: AtomicU64 = AtomicU64::new(0);
/// Why the last fork failed, for the parent's side of `rt_fork`.
static FORK_ERROR: spin::Mutex<ProtoError> = spin::Mutex::new(ProtoError::Malformed);

/// Called by `entry!` with the second start register: a process server
/// starts its processes with `START_MAGIC` there.
pub fn note_start(arg1: u64) {
    IS_PROCESS.store(arg1 == START_MAGIC, Ordering::Relaxed);
}

/// Whether this program runs as a process of a process server.
pub fn is_process() -> bool {
    IS_PROCESS.load(Ordering::Relaxed)
}

fn buffer() -> &'static mut IpcBuffer {
    // SAFETY: a process has one thread, whose IPC buffer the server mapped
    // at `IPC_BUFFER`; the calls below use it one at a time.
    unsafe { crate::ipc::buffer_at(crate::process::IPC_BUFFER) }
}

fn call(request: &ProcessRequest) -> Result<ProcessReply, ProtoError> {
    client::call::<ProcessProtocol>(SERVER_SLOT, buffer(), request)
}

fn unexpected<T>(_: ProcessReply) -> Result<T, ProtoError> {
    Err(ProtoError::Malformed)
}

fn name(program: &str) -> Result<ProgramName, ProtoError> {
    ProgramName::try_from(program).map_err(|_| ProtoError::InvalidArgument)
}

/// Forks: the child's pid in the parent, 0 in the child. The child is
/// served by the same process server as the caller.
pub fn fork() -> Result<u32, ProtoError> {
    fork_with(None)
}

/// Forks a child served by (and running on) `cpu`'s process server.
pub fn fork_on(cpu: u16) -> Result<u32, ProtoError> {
    fork_with(Some(cpu))
}

fn fork_with(cpu: Option<u16>) -> Result<u32, ProtoError> {
    // SAFETY: `rt_fork` returns like a function in the parent and, with
    // the same saved registers and stack contents, in the child.
    let result = unsafe { crate::fork::rt_fork(cpu.map_or(u64::MAX, u64::from)) };
    u32::try_from(result).map_err(|_| *FORK_ERROR.lock())
}

/// The parent's half of `rt_fork`: asks the server to fork, with the child
/// to resume at `resume` on stack `stack`.
pub(crate) extern "C" fn fork_request(stack: u64, resume: u64, cpu: u64) -> i64 {
    let cpu = u16::try_from(cpu).ok();
    match call(&ProcessRequest::Fork { resume, stack, cpu }) {
        Ok(ProcessReply::Forked { child_pid }) => i64::from(child_pid),
        Ok(_) => {
            *FORK_ERROR.lock() = ProtoError::Malformed;
            -1
        }
        Err(error) => {
            *FORK_ERROR.lock() = error;
            -1
        }
    }
}

/// Ends the process with `status`.
pub fn exit(status: i32) -> ! {
    let _ = client::send::<ProcessProtocol>(SERVER_SLOT, buffer(), &ProcessRequest::Exit { status });
    // The server destroys the thread while it waits; if the call failed
    // there is no server to tell.
    crate::sys::thread_exit()
}

/// Waits for child `pid` (any child when `None`); returns its pid and
/// exit status.
pub fn wait(pid: Option<u32>) -> Result<(u32, i32), ProtoError> {
    match call(&ProcessRequest::Wait { pid })? {
        ProcessReply::Exited { pid, status } => Ok((pid, status)),
        other => unexpected(other),
    }
}

/// Replaces this program by `program`, whose `main` gets `arg`; returns
/// only if that failed.
pub fn exec(program: &str, arg: u64) -> ProtoError {
    match name(program).and_then(|program| call(&ProcessRequest::Exec { program, arg })) {
        Err(error) => error,
        Ok(_) => ProtoError::Malformed,
    }
}

/// Starts `program` as a child; returns its pid.
pub fn spawn(program: &str, arg: u64) -> Result<u32, ProtoError> {
    match call(&ProcessRequest::Spawn { program: name(program)?, arg })? {
        ProcessReply::Spawned { pid } => Ok(pid),
        other => unexpected(other),
    }
}

pub fn getpid() -> Result<u32, ProtoError> {
    match call(&ProcessRequest::GetPid)? {
        ProcessReply::Pid(pid) => Ok(pid),
        other => unexpected(other),
    }
}

fn brk(new_end: u64) -> Result<u64, ProtoError> {
    match call(&ProcessRequest::Brk { new_end })? {
        ProcessReply::BrkSet(end) => Ok(end),
        other => unexpected(other),
    }
}

/// Grows the heap by `bytes` (rounded up to pages by the server); returns
/// the start of the new part. `NoMemory` if the server refused.
pub fn sbrk(bytes: u64) -> Result<u64, ProtoError> {
    let mut current = BREAK.load(Ordering::Relaxed);
    if current == 0 {
        current = brk(0)?;
    }
    let wanted = current.checked_add(bytes).ok_or(ProtoError::InvalidArgument)?;
    let now = brk(wanted)?;
    BREAK.store(now, Ordering::Relaxed);
    if now < wanted { Err(ProtoError::NoMemory) } else { Ok(current) }
}

/// Maps `pages` demand-zero pages; returns their address.
pub fn mmap(pages: u32) -> Result<u64, ProtoError> {
    match call(&ProcessRequest::Mmap { pages })? {
        ProcessReply::Mapped { addr } => Ok(addr),
        other => unexpected(other),
    }
}

pub fn munmap(addr: u64, pages: u32) -> Result<(), ProtoError> {
    match call(&ProcessRequest::Munmap { addr, pages })? {
        ProcessReply::Unmapped => Ok(()),
        other => unexpected(other),
    }
}

/// Ends `pid` and every process descended from it (only init or an
/// ancestor may); their parents' waits see `abi::process::STATUS_KILLED`.
pub fn kill(pid: u32) -> Result<(), ProtoError> {
    match call(&ProcessRequest::Kill { pid })? {
        ProcessReply::Killed => Ok(()),
        other => unexpected(other),
    }
}

/// Sends `request` as it is and returns the reply: for tests of what a
/// server refuses a process (`Swap`, `Quiesce`).
pub fn request(request: &ProcessRequest) -> Result<ProcessReply, ProtoError> {
    call(request)
}

/// The process servers' counters.
pub fn stats() -> Result<ProcessStats, ProtoError> {
    match call(&ProcessRequest::Stats)? {
        ProcessReply::Stats(stats) => Ok(stats),
        other => unexpected(other),
    }
}

/// Turns the process servers' per-phase timing on or off.
pub fn time_phases(on: bool) -> Result<(), ProtoError> {
    match call(&ProcessRequest::TimePhases { on })? {
        ProcessReply::PhasesTimed => Ok(()),
        other => unexpected(other),
    }
}

/// Ends the process after a panic, if it is one.
pub(crate) fn exit_after_panic() {
    if is_process() {
        exit(STATUS_PANIC);
    }
}
