//! The `syscall` entry: swap to the kernel GS, save the user registers as a
//! [`TrapFrame`] straight into the running thread's saved context in its TCB
//! (`PerCpu::syscall_frame` points just past it; so a thread's context has
//! one shape however it entered, and a system call copies no registers),
//! then switch to this CPU's kernel stack and hand the kernel the frame. The
//! kernel answers with the context to resume: this thread's, another's, or
//! the idle context.
//!
//! The way out depends on that context. One saved at a `syscall` (its vector
//! is [`SYSCALL_MARK`]) leaves with `sysretq`: rcx and r11 are dead at a
//! system-call boundary, so they can carry RIP and RFLAGS. Any other (a
//! thread preempted by an interrupt, a new thread, the idle loop) leaves
//! through `trap_return` and `iretq`, which restores every register.
//! User space ends at `abi::syscall::USER_END`, a page short of the
//! canonical boundary, so `sysretq` never meets a non-canonical RIP.
//!
//! A running thread's context belongs to its CPU: this entry writes it and
//! the exit reads it outside the kernel lock, and the kernel touches it
//! only from that CPU or while the thread does not run (a thread running
//! on another CPU is never freed, nor its registers read or written, until
//! that CPU has switched away from it).

use core::mem::offset_of;

use x86_64::registers::model_specific::Msr;

use super::gdt::{KERNEL_CODE, KERNEL_DATA, USER_CODE, USER_DATA};
use super::percpu::PerCpu;
use super::trap::{SYSCALL_MARK, TrapFrame};

const IA32_STAR: u32 = 0xC000_0081;
const IA32_LSTAR: u32 = 0xC000_0082;
const IA32_FMASK: u32 = 0xC000_0084;
/// Flags cleared on entry: IF (interrupts stay off in the kernel), DF (so
/// the entry needs no `cld`), TF, AC.
const ENTRY_FLAGS_MASK: u64 = (1 << 9) | (1 << 10) | (1 << 8) | (1 << 18);

core::arch::global_asm!(
    r#"
    .section .text.syscall, "ax"
    .global syscall_entry
syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{syscall_frame}]
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
    mov rsp, gs:[{kernel_rsp}]
    call {dispatch}
    mov rsp, rax
    cmp qword ptr [rsp + 15 * 8], {mark}
    jne trap_return
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    mov rcx, [rsp]
    mov r11, [rsp + 16]
    mov rsp, [rsp + 24]
    swapgs
    sysretq
"#,
    user_rsp = const offset_of!(PerCpu, user_rsp),
    syscall_frame = const offset_of!(PerCpu, syscall_frame),
    kernel_rsp = const offset_of!(PerCpu, kernel_rsp),
    user_ss = const USER_DATA.0 as u64,
    user_cs = const USER_CODE.0 as u64,
    mark = const SYSCALL_MARK,
    dispatch = sym crate::kernel::on_syscall,
);

impl TrapFrame {
    /// Whether this context was saved at a `syscall` (and leaves with `sysretq`).
    pub fn saved_at_syscall(&self) -> bool {
        self.vector == SYSCALL_MARK
    }
}

/// Points this CPU's `syscall` instruction at `syscall_entry`.
pub fn init() {
    unsafe extern "C" {
        fn syscall_entry();
    }
    // STAR[47:32] is the kernel CS (SS = +8); sysret loads CS = STAR[63:48]
    // + 16 and SS = + 8, with RPL 3: user code 0x23 and user data 0x1b.
    let star = (u64::from(KERNEL_DATA.0) << 48) | (u64::from(KERNEL_CODE.0) << 32);
    // SAFETY: the selectors match this CPU's GDT, the entry point is the
    // code above, and EFER.SCE was set at boot.
    unsafe {
        Msr::new(IA32_STAR).write(star);
        Msr::new(IA32_LSTAR).write(syscall_entry as *const () as u64);
        Msr::new(IA32_FMASK).write(ENTRY_FLAGS_MASK);
    }
}
