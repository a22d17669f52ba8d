//! Supervisor-mode protections: SMEP (the kernel never executes a user
//! page) and SMAP (the kernel never reads or writes a user page, except
//! inside [`user_access`], which the checked copy helpers of `uaccess` use).
//! Each is turned on where the CPU offers it (CPUID leaf 7); QEMU's `max`
//! CPU model offers both under TCG.

use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::registers::control::{Cr4, Cr4Flags};

static SMEP: AtomicBool = AtomicBool::new(false);
static SMAP: AtomicBool = AtomicBool::new(false);

/// Turns SMEP and SMAP on for the running CPU, where offered.
pub fn enable() {
    // CPUID leaf 7 reads as zeros where the CPU has none of its features.
    let features = core::arch::x86_64::__cpuid_count(7, 0).ebx;
    let (smep, smap) = (features & 1 << 7 != 0, features & 1 << 20 != 0);
    let mut flags = Cr4Flags::empty();
    if smep {
        flags |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    if smap {
        flags |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
    }
    // SAFETY: the kernel runs only from supervisor pages, and touches user
    // pages only through `user_access`; `syscall` clears RFLAGS.AC on entry.
    unsafe { Cr4::update(|cr4| *cr4 |= flags) };
    SMEP.store(smep, Ordering::Relaxed);
    SMAP.store(smap, Ordering::Relaxed);
}

/// Whether SMEP and SMAP are on.
pub fn enabled() -> (bool, bool) {
    (SMEP.load(Ordering::Relaxed), SMAP.load(Ordering::Relaxed))
}

/// Runs `access`, which reads or writes user pages the caller checked,
/// with SMAP lifted for it alone.
pub fn user_access<R>(access: impl FnOnce() -> R) -> R {
    let smap = SMAP.load(Ordering::Relaxed);
    if smap {
        // SAFETY: stac exists where SMAP does; it only sets RFLAGS.AC.
        unsafe { core::arch::asm!("stac", options(nomem, nostack)) };
    }
    let result = access();
    if smap {
        // SAFETY: as above; clac clears RFLAGS.AC again.
        unsafe { core::arch::asm!("clac", options(nomem, nostack)) };
    }
    result
}
