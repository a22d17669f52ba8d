//! How the guest ends a QEMU run: the `isa-debug-exit` device and its codes.
//!
//! Writing `code` to the device's port makes QEMU exit with status
//! `(code << 1) | 1`, so no guest status can ever be confused with QEMU's own
//! 0 (clean shutdown) or 1 (QEMU error).

/// I/O port of the `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// What the guest reports when it leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum GuestExit {
    /// Everything the boot was asked to do succeeded.
    Success = 0x10,
    /// A test failed, the kernel panicked, or an exception went unhandled.
    Failure = 0x11,
}

impl GuestExit {
    /// The value the guest writes to [`DEBUG_EXIT_PORT`].
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The exit status the QEMU process has after the guest wrote `self`.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }

    /// Maps a QEMU exit status back to what the guest reported, if it reported anything.
    pub fn from_qemu_status(status: i32) -> Option<Self> {
        [Self::Success, Self::Failure].into_iter().find(|exit| exit.qemu_status() == status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_never_collide_with_qemu_own_codes() {
        for exit in [GuestExit::Success, GuestExit::Failure] {
            assert_eq!(GuestExit::from_qemu_status(exit.qemu_status()), Some(exit));
            assert!(exit.qemu_status() > 1);
        }
        assert_eq!(GuestExit::Success.qemu_status(), 33);
        assert_eq!(GuestExit::from_qemu_status(0), None);
        assert_eq!(GuestExit::from_qemu_status(1), None);
    }
}
