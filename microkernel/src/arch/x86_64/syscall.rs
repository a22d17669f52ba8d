//! The `syscall` entry: swap to the kernel GS and this CPU's kernel stack,
//! save the user registers as a [`TrapFrame`] (so a thread's context has one
//! shape however it entered), hand it to the kernel, and leave through the
//! common `trap_return` (`iretq`), which may resume another thread.
//!
//! User space ends at `abi::syscall::USER_END`, a page short of the
//! canonical boundary, so a user RIP is always canonical.

use core::mem::offset_of;

use x86_64::registers::model_specific::Msr;

use super::gdt::{KERNEL_CODE, KERNEL_DATA, USER_CODE, USER_DATA};
use super::percpu::PerCpu;
use super::trap::{SYSCALL_MARK, TrapFrame};

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
    push {user_ss}
    push qword ptr gs:[{user_rsp}]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {mark}
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {dispatch}
    jmp trap_return
"#,
    user_rsp = const offset_of!(PerCpu, user_rsp),
    kernel_rsp = const offset_of!(PerCpu, kernel_rsp),
    user_ss = const USER_DATA.0 as u64,
    user_cs = const USER_CODE.0 as u64,
    mark = const SYSCALL_MARK,
    dispatch = sym dispatch,
);

extern "C" fn dispatch(frame: &mut TrapFrame) {
    crate::kernel::on_syscall(frame);
}

/// Points this CPU's `syscall` instruction at `syscall_entry`.
pub fn init() {
    unsafe extern "C" {
        fn syscall_entry();
    }
    // STAR[47:32] is the kernel CS (SS = +8). STAR[63:48] would serve
    // sysret, which this kernel does not use: it returns with iretq.
    let star = (u64::from(KERNEL_DATA.0) << 48) | (u64::from(KERNEL_CODE.0) << 32);
    // SAFETY: the selectors match this CPU's GDT, the entry point is the
    // code above, and EFER.SCE was set at boot.
    unsafe {
        Msr::new(IA32_STAR).write(star);
        Msr::new(IA32_LSTAR).write(syscall_entry as *const () as u64);
        Msr::new(IA32_FMASK).write(ENTRY_FLAGS_MASK);
    }
}
