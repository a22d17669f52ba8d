//! Running one user program to its end on this CPU: [`run`] parks the
//! kernel's callee-saved registers on its stack, enters user mode with
//! `sysretq`, and returns when the program exits or is killed, through
//! [`leave`], which resumes the parked kernel context.
//!
//! This is the one-program-at-a-time precursor of threads: the scheduler
//! replaces it when threads arrive.

use core::mem::offset_of;

use super::paging::Root;
use super::percpu::{self, PerCpu};

/// User RFLAGS on entry: interrupts on, reserved bit 1 set.
const USER_RFLAGS: u64 = 0x202;

core::arch::global_asm!(
    r#"
    .section .text.user, "ax"
    .global user_enter
user_enter:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov gs:[{resume_rsp}], rsp
    mov rcx, rdi
    mov rsp, rsi
    mov r11, {rflags}
    xor eax, eax
    xor ebx, ebx
    xor edx, edx
    xor esi, esi
    xor edi, edi
    xor ebp, ebp
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    xor r12d, r12d
    xor r13d, r13d
    xor r14d, r14d
    xor r15d, r15d
    swapgs
    sysretq

    .global user_resume
user_resume:
    mov rsp, gs:[{resume_rsp}]
    mov rax, rdi
    mov rdx, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
"#,
    resume_rsp = const offset_of!(PerCpu, resume_rsp),
    rflags = const USER_RFLAGS,
);

unsafe extern "C" {
    fn user_enter(entry: u64, stack_top: u64) -> RawExit;
    fn user_resume(kind: u64, value: u64) -> !;
}

/// How a user program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserExit {
    /// It called exit with this status.
    Exited(i32),
    /// It took this exception vector and had nobody to handle it.
    Killed { vector: u64 },
}

#[repr(C)]
struct RawExit {
    kind: u64,
    value: u64,
}

/// Runs the program mapped in `space` from `entry` with stack `stack_top`
/// until it leaves. Interrupts are off when this returns.
pub fn run(space: Root, entry: u64, stack_top: u64) -> UserExit {
    let previous = Root::current();
    x86_64::instructions::interrupts::disable();
    // SAFETY: `space` shares the kernel half, so kernel code, stacks and
    // per-CPU data stay mapped.
    unsafe { space.activate() };
    // SAFETY: entry and stack are user addresses in `space`; `user_enter`
    // returns only through `user_resume`, with the callee-saved registers
    // it parked restored.
    let raw = unsafe { user_enter(entry, stack_top) };
    // SAFETY: the previous space was the running one before.
    unsafe { previous.activate() };
    match raw.kind {
        0 => UserExit::Exited(raw.value as i32),
        _ => UserExit::Killed { vector: raw.value },
    }
}

/// Ends the user program running on this CPU and resumes its [`run`].
/// Called from the system-call or trap path, in the kernel, interrupts off.
pub fn leave(how: UserExit) -> ! {
    debug_assert!(percpu::current().resume_rsp.load(core::sync::atomic::Ordering::Relaxed) != 0);
    let (kind, value) = match how {
        UserExit::Exited(status) => (0, status as u32 as u64),
        UserExit::Killed { vector } => (1, vector),
    };
    // SAFETY: a `run` on this CPU parked its context; the current stack
    // (syscall or trap stack) is abandoned, which is safe because nothing on
    // it is referenced afterwards.
    unsafe { user_resume(kind, value) }
}
