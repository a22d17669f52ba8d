//! Typed wrappers over the kernel's system calls (numbers and errors from
//! `abi::syscall`), plus the raw entry for tests that must pass bad arguments.

use abi::syscall::{SysResult, Sysnum, decode};

/// Makes system call `number` with up to three arguments, unchecked.
pub fn raw_syscall(number: u64, a0: u64, a1: u64, a2: u64) -> SysResult {
    let (rax, rdx): (u64, u64);
    // SAFETY: `syscall` enters the kernel, which checks every argument and
    // clobbers only rcx and r11 besides its two result registers.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number => rax,
            in("rdi") a0,
            in("rsi") a1,
            inlateout("rdx") a2 => rdx,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    decode(rax, rdx)
}

/// Writes `bytes` to the kernel console.
pub fn debug_write(bytes: &[u8]) -> SysResult {
    raw_syscall(Sysnum::DebugWrite as u64, bytes.as_ptr() as u64, bytes.len() as u64, 0)
}

/// Ends the program with `status`.
pub fn exit(status: i32) -> ! {
    let _ = raw_syscall(Sysnum::Exit as u64, status as u32 as u64, 0, 0);
    unreachable!("the exit system call returned")
}
