//! What a CPU runs between kernel entries: a user thread's context, or the
//! idle context (kernel mode, interrupts on, a brief poll (`haltpoll.rs`),
//! then `hlt`). Every kernel exit goes
//! through `trap_return` with the frame the scheduler filled in, so a switch
//! is a change of frame (and of CR3), never a kernel stack switch.

use core::sync::atomic::{AtomicU64, Ordering};

use super::gdt::{KERNEL_CODE, KERNEL_DATA};
use super::percpu::{MAX_CPUS, PerCpu};
use super::trap::TrapFrame;
use super::{kernel_space, stacks};

core::arch::global_asm!(
    r#"
    .section .text.context, "ax"
    .global context_enter_first
context_enter_first:
    mov rsp, rdi
    sub rsp, {frame_size}
    mov rdi, rsp
    call {first}
    jmp trap_return

    .global context_idle_loop
context_idle_loop:
    cli
    call {idle_work}
    // More idle work waits: let pending interrupts in, then go on without
    // halting.
    test al, al
    jnz 3f
    // Poll until the deadline (0: none) with interrupts on, then halt.
    call {poll_deadline}
    mov rcx, rax
    sti
    test rcx, rcx
    jz 2f
1:
    rdtsc
    shl rdx, 32
    or rax, rdx
    cmp rax, rcx
    jb 1b
2:
    hlt
    jmp context_idle_loop
3:
    sti
    jmp context_idle_loop
    .global context_idle_loop_end
context_idle_loop_end:
"#,
    frame_size = const size_of::<TrapFrame>(),
    first = sym first_context,
    idle_work = sym crate::capture::idle_work,
    poll_deadline = sym super::haltpoll::poll_deadline,
);

unsafe extern "C" {
    fn context_enter_first(stack_top: u64) -> !;
    fn context_idle_loop() -> !;
    fn context_idle_loop_end();
}

/// Whether `frame` interrupted the idle loop.
pub fn is_idle(frame: &TrapFrame) -> bool {
    let start = context_idle_loop as *const () as u64;
    let end = context_idle_loop_end as *const () as u64;
    !frame.came_from_user() && (start..end).contains(&frame.rip)
}

/// Per-CPU top of the stack the idle context runs on.
static IDLE_STACKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

extern "C" fn first_context(frame: &mut TrapFrame) {
    crate::kernel::on_first_entry(frame);
}

/// The idle context of the running CPU.
pub fn idle(cpu: &PerCpu) -> TrapFrame {
    TrapFrame {
        rip: context_idle_loop as *const () as u64,
        cs: u64::from(KERNEL_CODE.0),
        rflags: 0x202,
        rsp: IDLE_STACKS[cpu.index()].load(Ordering::Relaxed),
        ss: u64::from(KERNEL_DATA.0),
        ..TrapFrame::default()
    }
}

/// Starts scheduling on the running CPU: from here on it only runs threads
/// and the idle context.
pub fn start_scheduling(cpu: &PerCpu) -> ! {
    let idle_top = stacks::alloc(kernel_space()).unwrap_or_else(|e| panic!("cpu {}: no idle stack: {e:?}", cpu.index()));
    IDLE_STACKS[cpu.index()].store(idle_top, Ordering::Relaxed);
    let entry_top = cpu.kernel_rsp.load(Ordering::Relaxed);
    x86_64::instructions::interrupts::disable();
    // SAFETY: the entry stack is this CPU's own and unused now; the frame
    // built on it is filled by the kernel before `trap_return` uses it.
    unsafe { context_enter_first(entry_top) }
}
