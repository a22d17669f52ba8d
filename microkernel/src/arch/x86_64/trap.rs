//! Every interrupt and exception enters here: 256 uniform 16-byte stubs push
//! a vector (and a zero where the CPU pushes no error code), save all
//! registers into a [`TrapFrame`], and call [`dispatch`].
//!
//! CPU exceptions in the kernel are fatal and reported in full (vector, error
//! code, RIP, CR2, registers, CPU) unless the faulting code asked for the
//! fault with [`probe`]. Device and IPI vectors go to their handlers.

use core::sync::atomic::Ordering;

use abi::exit::GuestExit;

use super::{apic, percpu};

pub const STUB_SIZE: usize = 16;

pub const TIMER_VECTOR: u64 = 0x20;
pub const PING_VECTOR: u64 = 0xF0;
pub const PONG_VECTOR: u64 = 0xF1;
/// Another CPU changed this CPU's run queue.
pub const RESCHED_VECTOR: u64 = 0xF2;
/// Another CPU changed page tables this CPU may cache.
pub const SHOOTDOWN_VECTOR: u64 = 0xF3;
/// Marks a frame built by the `syscall` entry (not a hardware vector).
pub const SYSCALL_MARK: u64 = 0x100;
pub const SPURIOUS_VECTOR: u64 = 0xFF;

core::arch::global_asm!(
    r#"
    .section .text.trap, "ax"
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    .if (vector == 8) || (vector == 10) || (vector == 11) || (vector == 12) || (vector == 13) || (vector == 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    pushq $0
    .endif
    pushq $vector
    jmp trap_common
    .set vector, vector + 1
    .endr

trap_common:
    testb $3, 24(%rsp)          /* from user mode: switch to the kernel GS */
    jz 1f
    swapgs
1:  push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call {dispatch}
    .global trap_return
trap_return:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    testb $3, 24(%rsp)
    jz 2f
    swapgs
2:  add $16, %rsp
    iretq
"#,
    dispatch = sym dispatch,
    options(att_syntax)
);

/// Address of the first entry stub.
pub fn stub_base() -> u64 {
    unsafe extern "C" {
        static trap_stubs: u8;
    }
    core::ptr::addr_of!(trap_stubs) as u64
}

/// The registers saved on entry, lowest address first. It is also a user
/// thread's saved context: every return to user mode goes through
/// `trap_return` with one of these.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// Every register zero.
    pub const EMPTY: Self = Self {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: 0,
        rsi: 0,
        rdx: 0,
        rcx: 0,
        rbx: 0,
        rax: 0,
        vector: 0,
        error: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    };

    /// A fresh user context: entry point, stack, one argument in `rdi`.
    pub fn new_user(rip: u64, rsp: u64, arg: u64) -> Self {
        Self {
            rip,
            rsp,
            rdi: arg,
            cs: u64::from(super::gdt::USER_CODE.0),
            ss: u64::from(super::gdt::USER_DATA.0),
            rflags: 0x202,
            ..Self::default()
        }
    }

    /// Whether the CPU was in user mode when this frame was taken.
    pub fn came_from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// The six system-call argument registers.
    pub fn syscall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }
}

extern "C" fn dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        0..=31 => exception(frame),
        TIMER_VECTOR => {
            percpu::current().ticks.fetch_add(1, Ordering::Relaxed);
            apic::end_of_interrupt();
            crate::kernel::on_tick(frame);
        }
        RESCHED_VECTOR => {
            apic::end_of_interrupt();
            crate::kernel::on_resched(frame);
        }
        SHOOTDOWN_VECTOR => {
            super::tlb::serve();
            apic::end_of_interrupt();
        }
        PING_VECTOR => {
            let me = percpu::current();
            me.pings.fetch_add(1, Ordering::Relaxed);
            let from = me.ping_from.load(Ordering::Acquire) as usize;
            if let Some(sender) = percpu::cpu(from) {
                apic::send_ipi(sender.apic_id(), PONG_VECTOR as u8);
            }
            apic::end_of_interrupt();
        }
        PONG_VECTOR => {
            percpu::current().pongs.fetch_add(1, Ordering::Release);
            apic::end_of_interrupt();
        }
        SPURIOUS_VECTOR => {}
        vector if (super::ioapic::IRQ_BASE..super::ioapic::IRQ_BASE + u64::from(super::ioapic::GSIS)).contains(&vector) => {
            apic::end_of_interrupt();
            crate::kernel::on_irq(frame, (vector - super::ioapic::IRQ_BASE) as u32);
        }
        vector => {
            crate::println!("warning: unexpected interrupt vector {vector:#x} on cpu {}", percpu::current().index());
            apic::end_of_interrupt();
        }
    }
}

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved 15",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved 31",
];

fn exception(frame: &mut TrapFrame) {
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    let me = percpu::current();
    let recover = me.recover_rip.swap(0, Ordering::Relaxed);
    if recover != 0 {
        me.fault_vector.store(frame.vector, Ordering::Relaxed);
        me.fault_addr.store(cr2, Ordering::Relaxed);
        frame.rip = recover;
        return;
    }
    let name = EXCEPTION_NAMES[frame.vector as usize];
    if frame.came_from_user() {
        let fault = crate::kernel::UserFault { vector: frame.vector, addr: cr2, error: frame.error, name };
        crate::kernel::on_user_fault(frame, fault);
        return;
    }
    crate::println!(
        "\nEXCEPTION {name} (vector {}) on cpu {}, error code {:#x}\n  rip {:#018x}  cs {:#x}  rflags {:#x}  rsp {:#018x}  ss {:#x}  cr2 {:#018x}\n  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n  rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\n  r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\n  r13 {:#018x} r14 {:#018x} r15 {:#018x}",
        frame.vector,
        me.index(),
        frame.error,
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss,
        cr2,
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
    );
    super::exit(GuestExit::Failure);
}

/// What an expected fault was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u64,
    /// CR2 at the fault (the faulting address for a page fault).
    pub addr: u64,
}

/// What [`probe`] does.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// Read one byte at the address.
    Read(u64),
    /// Execute `ud2`.
    InvalidOpcode,
    /// Execute `int3`.
    Breakpoint,
    /// Call the code at the address (a lone `ret`: it clobbers nothing).
    Execute(u64),
}

/// Runs one instruction that may fault, and reports the fault instead of
/// treating it as fatal. `Ok` holds the byte read by [`Probe::Read`].
pub fn probe(what: Probe) -> Result<u8, Fault> {
    let me = percpu::current();
    me.fault_vector.store(u64::MAX, Ordering::Relaxed);
    let faulted: u64;
    let byte: u64;
    // SAFETY: each arm arms the recovery address, runs one instruction, and
    // disarms it; a fault resumes at label 2 with every register restored by
    // the trap path. A read only reads, and faults rather than corrupting.
    unsafe {
        match what {
            Probe::Read(addr) => core::arch::asm!(
                "lea {tmp}, [rip + 2f]", "mov gs:[{off}], {tmp}", "xor {f:e}, {f:e}",
                "movzx {b:e}, byte ptr [{addr}]", "jmp 3f", "2:", "mov {f:e}, 1", "3:",
                "mov qword ptr gs:[{off}], 0",
                addr = in(reg) addr, tmp = out(reg) _, f = out(reg) faulted, b = out(reg) byte,
                off = const core::mem::offset_of!(percpu::PerCpu, recover_rip),
            ),
            Probe::InvalidOpcode => core::arch::asm!(
                "lea {tmp}, [rip + 2f]", "mov gs:[{off}], {tmp}", "xor {f:e}, {f:e}", "xor {b:e}, {b:e}",
                "ud2", "jmp 3f", "2:", "mov {f:e}, 1", "3:", "mov qword ptr gs:[{off}], 0",
                tmp = out(reg) _, f = out(reg) faulted, b = out(reg) byte,
                off = const core::mem::offset_of!(percpu::PerCpu, recover_rip),
            ),
            Probe::Breakpoint => core::arch::asm!(
                "lea {tmp}, [rip + 2f]", "mov gs:[{off}], {tmp}", "xor {f:e}, {f:e}", "xor {b:e}, {b:e}",
                "int3", "nop", "jmp 3f", "2:", "mov {f:e}, 1", "3:", "mov qword ptr gs:[{off}], 0",
                tmp = out(reg) _, f = out(reg) faulted, b = out(reg) byte,
                off = const core::mem::offset_of!(percpu::PerCpu, recover_rip),
            ),
            // A fault at the callee's first fetch leaves the return address
            // pushed: the stack pointer saved before the call is restored.
            Probe::Execute(addr) => core::arch::asm!(
                "lea {tmp}, [rip + 2f]", "mov gs:[{off}], {tmp}", "xor {f:e}, {f:e}", "xor {b:e}, {b:e}",
                "mov {sp}, rsp", "call {addr}", "jmp 3f", "2:", "mov rsp, {sp}", "mov {f:e}, 1", "3:",
                "mov qword ptr gs:[{off}], 0",
                addr = in(reg) addr, sp = out(reg) _, tmp = out(reg) _, f = out(reg) faulted, b = out(reg) byte,
                off = const core::mem::offset_of!(percpu::PerCpu, recover_rip),
            ),
        }
    }
    if faulted == 0 {
        return Ok(byte as u8);
    }
    Err(Fault { vector: me.fault_vector.load(Ordering::Relaxed), addr: me.fault_addr.load(Ordering::Relaxed) })
}
