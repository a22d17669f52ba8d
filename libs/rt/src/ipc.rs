//! IPC for clients and servers: typed wrappers over Send/Recv/Call/Reply/
//! ReplyRecv and notifications, with the register layout of `abi::msg`.

use abi::msg::{IpcBuffer, MsgInfo};
use abi::syscall::{SysError, Sysnum};

use crate::sys::Slot;

/// A message: its info word and four registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub info: u64,
    pub mrs: [u64; 4],
}

impl Message {
    pub const fn new(label: u64, mrs: [u64; 4]) -> Self {
        Self { info: MsgInfo::new(label, 0, false).0, mrs }
    }

    /// With `length` bytes of the sender's IPC buffer and, if `with_cap`,
    /// the capability its `send_cap` names.
    pub const fn with_payload(label: u64, mrs: [u64; 4], length: usize, with_cap: bool) -> Self {
        Self { info: MsgInfo::new(label, length, with_cap).0, mrs }
    }

    pub fn info(&self) -> MsgInfo {
        MsgInfo(self.info)
    }

    pub fn label(&self) -> u64 {
        self.info().label()
    }
}

/// A received message and the badge of the capability it came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub badge: u64,
    pub msg: Message,
}

/// Inlined, as every wrapper below that runs it: the message then stays
/// in registers instead of making a round trip through memory.
#[inline]
fn ipc(sysnum: Sysnum, slot: Slot, msg: Message) -> Result<Received, SysError> {
    let (rax, badge, info, m0, m1, m2, m3): (u64, u64, u64, u64, u64, u64, u64);
    // SAFETY: `syscall` enters the kernel, which checks every argument and
    // returns the message in these registers; rcx and r11 are clobbered.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") sysnum as u64 => rax,
            inlateout("rdi") slot => badge,
            inlateout("rsi") msg.info => info,
            inlateout("rdx") msg.mrs[0] => m0,
            inlateout("r10") msg.mrs[1] => m1,
            inlateout("r8") msg.mrs[2] => m2,
            inlateout("r9") msg.mrs[3] => m3,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    match rax {
        0 => Ok(Received { badge, msg: Message { info, mrs: [m0, m1, m2, m3] } }),
        code => Err(SysError::from_code(code).unwrap_or(SysError::UnknownSyscall)),
    }
}

#[inline]
pub fn send(ep: Slot, msg: Message) -> Result<(), SysError> {
    ipc(Sysnum::Send, ep, msg).map(|_| ())
}

#[inline]
pub fn nb_send(ep: Slot, msg: Message) -> Result<(), SysError> {
    ipc(Sysnum::NbSend, ep, msg).map(|_| ())
}

#[inline]
pub fn recv(ep: Slot) -> Result<Received, SysError> {
    ipc(Sysnum::Recv, ep, Message::default())
}

#[inline]
pub fn nb_recv(ep: Slot) -> Result<Received, SysError> {
    ipc(Sysnum::NbRecv, ep, Message::default())
}

/// Sends and waits for the reply.
#[inline]
pub fn call(ep: Slot, msg: Message) -> Result<Message, SysError> {
    ipc(Sysnum::Call, ep, msg).map(|received| received.msg)
}

/// Answers the last caller received from.
#[inline]
pub fn reply(msg: Message) -> Result<(), SysError> {
    ipc(Sysnum::Reply, abi::syscall::IMPLICIT_REPLY, msg).map(|_| ())
}

/// Answers the caller named by the Reply capability in `slot` (used up).
#[inline]
pub fn reply_with(slot: Slot, msg: Message) -> Result<(), SysError> {
    ipc(Sysnum::Reply, slot, msg).map(|_| ())
}

/// Keeps the pending reply in a Reply capability at `dst`, to answer later.
pub fn reply_save(dst: Slot) -> Result<(), SysError> {
    crate::sys::raw_syscall(Sysnum::ReplySave as u64, [dst, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Replies to the last caller (if any) and waits for the next message.
#[inline]
pub fn reply_recv(ep: Slot, msg: Message) -> Result<Received, SysError> {
    ipc(Sysnum::ReplyRecv, ep, msg)
}

/// A server loop: receives on `ep` and answers each message with what
/// `handle` returns, forever.
pub fn serve(ep: Slot, mut handle: impl FnMut(Received) -> Message) -> ! {
    let mut received = recv(ep);
    loop {
        received = match received {
            Ok(message) => reply_recv(ep, handle(message)),
            Err(_) => recv(ep),
        };
    }
}

pub fn signal(ntfn: Slot, bits: u64) -> Result<(), SysError> {
    crate::sys::raw_syscall(Sysnum::Signal as u64, [ntfn, bits, 0, 0, 0, 0]).map(|_| ())
}

/// Waits until some bits are set; returns and clears them.
pub fn wait(ntfn: Slot) -> Result<u64, SysError> {
    crate::sys::raw_syscall(Sysnum::Wait as u64, [ntfn, 0, 0, 0, 0, 0])
}

/// Returns and clears the bits, without waiting.
pub fn poll(ntfn: Slot) -> Result<u64, SysError> {
    crate::sys::raw_syscall(Sysnum::Poll as u64, [ntfn, 0, 0, 0, 0, 0])
}

/// The IPC buffer at `addr`, as given to `ThreadConfigure`.
///
/// # Safety
/// `addr` must be the calling thread's own mapped IPC buffer, and no other
/// reference to it may be live.
pub unsafe fn buffer_at(addr: u64) -> &'static mut IpcBuffer {
    // SAFETY: forwarded to the caller.
    unsafe { &mut *(addr as *mut IpcBuffer) }
}
