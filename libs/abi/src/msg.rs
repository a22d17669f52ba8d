//! The IPC message layout: a message info word, four message registers, and
//! the per-thread IPC buffer for longer messages and capability transfer.
//!
//! Registers for `Send`/`Call`/`Reply`/`ReplyRecv`: `rdi` = endpoint slot,
//! `rsi` = [`MsgInfo`], `rdx`, `r10`, `r8`, `r9` = message registers 0..3.
//! On a receive the kernel returns: `rax` = error code, `rdi` = badge of the
//! sender's capability, `rsi` = info, `rdx`, `r10`, `r8`, `r9` = registers.

/// Message registers passed in CPU registers.
pub const MESSAGE_REGISTERS: usize = 4;
/// Bytes of payload the IPC buffer carries beyond the registers.
pub const IPC_BUFFER_DATA: usize = 1024;

/// Label, payload length and capability count, packed in one word:
/// bits 0..11 length in bytes, bit 12 a capability is attached, 16..63 label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgInfo(pub u64);

impl MsgInfo {
    pub const fn new(label: u64, length: usize, with_cap: bool) -> Self {
        Self((label << 16) | ((with_cap as u64) << 12) | (length as u64 & 0xFFF))
    }

    pub const fn label(self) -> u64 {
        self.0 >> 16
    }

    /// Payload bytes in the IPC buffer (at most [`IPC_BUFFER_DATA`] are honoured).
    pub const fn length(self) -> usize {
        (self.0 & 0xFFF) as usize
    }

    pub const fn with_cap(self) -> bool {
        self.0 & (1 << 12) != 0
    }
}

/// The per-thread IPC buffer, at the page-aligned address given to
/// `ThreadConfigure`.
#[repr(C)]
pub struct IpcBuffer {
    pub data: [u8; IPC_BUFFER_DATA],
    /// Sender: the slot of the capability to transfer when the info says so.
    pub send_cap: u64,
    /// Receiver: the empty slot where a transferred capability lands.
    pub recv_slot: u64,
    /// Receiver: set by the kernel to 1 when a capability arrived.
    pub cap_received: u64,
}

/// Labels the kernel uses for the messages it sends on a thread's behalf.
pub mod kernel_label {
    /// A fault: registers carry vector, faulting address (CR2), RIP, error code.
    pub const FAULT: u64 = 0xFFFF_0001;
    /// Reply label that resumes a faulted thread; any other label kills it.
    pub const RESUME: u64 = 0;
    /// The vector of a fault message that reports a `ThreadExit` (beyond
    /// the CPU's 256 vectors): the thread ends at the reply, whatever its
    /// label, so its handler learns of every end.
    pub const EXIT_VECTOR: u64 = 256;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_packs_and_unpacks() {
        let info = MsgInfo::new(0xABCDEF, 1000, true);
        assert_eq!(info.label(), 0xABCDEF);
        assert_eq!(info.length(), 1000);
        assert!(info.with_cap());
        assert!(!MsgInfo::new(1, 0, false).with_cap());
        assert!(size_of::<IpcBuffer>() <= 4096);
    }
}
