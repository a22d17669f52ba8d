//! The `syscall` entry: swap to the kernel GS and this CPU's kernel stack,
//! save the user registers into a [`SyscallFrame`], hand the call to the
//! portable dispatcher, and return with `sysretq`.
//!
//! `sysretq` to a non-canonical RIP would fault in ring 0 on Intel CPUs; it
//! cannot happen because user space ends at `abi::syscall::USER_END`, a page
//! short of the canonical boundary.

use core::mem::offset_of;

use x86_64::registers::model_specific::Msr;

use super::gdt::{KERNEL_CODE, KERNEL_DATA};
use super::percpu::PerCpu;

const IA32_STAR: u32 = 0xC000_0081;
const IA32_LSTAR: u32 = 0xC000_0082;
const IA32_FMASK: u32 = 0xC000_0084;
/// Flags cleared on entry: IF (interrupts stay off in the kernel), DF, TF, AC.
const ENTRY_FLAGS_MASK: u64 = (1 << 9) | (1 << 10) | (1 << 8) | (1 << 18);

core::arch::global_asm!(
    r#"
    .section .text.syscall, "ax"
    .global syscall_entry
syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    push qword ptr gs:[{user_rsp}]
    push r11
    push rcx
    push rax
    push rdi
    push rsi
    push rdx
    push r10
    push r8
    push r9
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    call {dispatch}
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    pop r9
    pop r8
    pop r10
    pop rdx
    pop rsi
    pop rdi
    pop rax
    pop rcx
    pop r11
    pop rsp
    swapgs
    sysretq
"#,
    user_rsp = const offset_of!(PerCpu, user_rsp),
    kernel_rsp = const offset_of!(PerCpu, kernel_rsp),
    dispatch = sym dispatch,
);

/// The user registers at a `syscall`, lowest address first.
#[repr(C)]
pub struct SyscallFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r9: u64,
    pub r8: u64,
    pub r10: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rax: u64,
    pub rip: u64,
    pub rflags: u64,
    pub rsp: u64,
}

extern "C" fn dispatch(frame: &mut SyscallFrame) {
    let args = [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9];
    let (rax, rdx) = abi::syscall::encode(crate::syscall::dispatch(frame.rax, args));
    frame.rax = rax;
    frame.rdx = rdx;
}

/// Points this CPU's `syscall` instruction at [`syscall_entry`].
pub fn init() {
    unsafe extern "C" {
        fn syscall_entry();
    }
    // sysret loads CS = base + 16 and SS = base + 8 (both RPL 3) from STAR[63:48]:
    // user code 0x20 and user data 0x18 with base 0x10 (the kernel data selector).
    let star = (u64::from(KERNEL_DATA.0) << 48) | (u64::from(KERNEL_CODE.0) << 32);
    // SAFETY: the selectors match this CPU's GDT, the entry point is the
    // code above, and EFER.SCE was set at boot.
    unsafe {
        Msr::new(IA32_STAR).write(star);
        Msr::new(IA32_LSTAR).write(syscall_entry as *const () as u64);
        Msr::new(IA32_FMASK).write(ENTRY_FLAGS_MASK);
    }
}
