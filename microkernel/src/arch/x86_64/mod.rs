//! x86_64: boot (PVH), descriptor tables, traps, page tables, the local APIC,
//! time and SMP bring-up. Exports the names the portable kernel uses.

mod acpi;
mod apic;
mod boot;
mod context;
mod gdt;
mod haltpoll;
mod idt;
mod ioapic;
pub mod paging;
mod percpu;
mod serial;
mod smp;
mod stacks;
mod start_info;
mod supervisor;
mod syscall;
pub mod time;
mod tlb;
mod trap;

use core::sync::atomic::Ordering;

use abi::exit::GuestExit;
use x86_64::instructions::port::Port;

use crate::bootinfo::BootInfo;

pub use haltpoll::{arm as haltpoll_arm, configure as configure_haltpoll};
pub use percpu::{MAX_CPUS, PerCpu, cpu, current as current_cpu, try_current as try_current_cpu};
pub use supervisor::{enabled as supervisor_protection, user_access};
pub use tlb::{Change as TlbChange, serve as tlb_serve, shootdown as tlb_shootdown, switch_to, totals as tlb_totals};
pub use trap::TrapFrame as UserContext;
pub use trap::{Fault, PING_VECTOR, Probe, probe};

/// The idle context of the running CPU.
pub fn idle_context() -> UserContext {
    context::idle(current_cpu())
}

/// The next `syscall` on the running CPU saves the user registers into
/// `ctx`: the context of the thread it is about to run.
#[inline]
pub fn save_syscalls_into(ctx: *const UserContext) {
    current_cpu().set_syscall_frame(ctx);
}

/// Starts scheduling on the running CPU; never returns.
pub fn start_scheduling() -> ! {
    context::start_scheduling(current_cpu())
}

/// Whether `frame` interrupted the idle loop (the only kernel code that runs
/// with interrupts on once the scheduler started).
pub fn in_idle(frame: &UserContext) -> bool {
    context::is_idle(frame)
}

/// The I/O APIC pin (and its mode) ISA IRQ `irq` arrives on, if it can be routed.
pub fn irq_pin(irq: u8) -> Option<(u32, u32)> {
    ioapic::isa_pin(irq)
}

/// Routes an I/O APIC pin to the boot CPU, masked or not.
pub fn irq_route(pin: u32, mode: u32, masked: bool) {
    let boot_cpu = cpu(0).map_or(0, |c| c.apic_id());
    ioapic::route(pin, mode, boot_cpu, masked);
}

/// Index of the running CPU.
#[inline]
pub fn cpu_index() -> usize {
    current_cpu().index()
}

/// Asks CPU `index` to look at its run queue again.
pub fn send_resched(index: usize) {
    if let Some(cpu) = cpu(index) {
        apic::send_ipi(cpu.apic_id(), trap::RESCHED_VECTOR as u8);
    }
}

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();
static KERNEL_SPACE: spin::Once<paging::Root> = spin::Once::new();

/// Stack for double faults on the boot CPU, before kernel stacks exist.
static BSP_FAULT_STACK: BspFaultStack = BspFaultStack([0; 16384]);
#[repr(align(16))]
struct BspFaultStack([u8; 16384]);

/// Boot CPU entry from `boot.rs`, on the boot stack and boot page tables.
extern "C" fn bsp_main(start_info: u64) -> ! {
    serial::init();
    let info = BOOT_INFO.call_once(|| {
        let mut info = BootInfo::empty();
        if let Err(error) = start_info::read(start_info, &mut info) {
            panic!("unusable PVH start_info at {start_info:#x}: {error:?}");
        }
        info
    });
    let cpu = percpu::install(0, 0);
    let fault_stack_top = BSP_FAULT_STACK.0.as_ptr_range().end as u64;
    gdt::load(cpu, fault_stack_top);
    idt::load();
    crate::kmain(info)
}

/// Physical ranges the kernel must never hand out: low memory (firmware,
/// the AP trampoline) and the loaded kernel image.
pub fn reserved_memory() -> [core::ops::Range<u64>; 2] {
    [0..0x10_0000, paging::ImageLayout::of_running_kernel().physical_extent()]
}

/// Builds the kernel's page tables over `[0, phys_end)` and switches to them.
pub fn init_memory(phys_end: u64) -> Result<(), paging::MapError> {
    // The direct map also covers the 4 GiB below, where the local APIC lives.
    let root = paging::build_kernel_space(phys_end.max(1 << 32), &mut crate::mm::frame::alloc_zeroed)?;
    // SAFETY: the new tables map the kernel image, the boot stack (in .bss)
    // and all of physical memory at the same addresses as the boot tables.
    unsafe { root.activate() };
    KERNEL_SPACE.call_once(|| root);
    Ok(())
}

/// The kernel's own address space, once [`init_memory`] ran.
pub fn kernel_space() -> paging::Root {
    *KERNEL_SPACE.get().expect("init_memory runs first")
}

/// Brings up interrupts, the timer and every CPU in the MADT; returns the
/// number of CPUs online.
pub fn start_cpus(info: &BootInfo) -> usize {
    init_user_entry(percpu::current());
    apic::init_local();
    let bsp_apic = apic::id();
    percpu::current().apic_id.store(bsp_apic, Ordering::Relaxed);
    time::calibrate();
    time::start_tick();
    x86_64::instructions::interrupts::enable();
    match acpi::platform(info.rsdp) {
        Ok(list) => {
            if let Some((address, gsi_base)) = list.ioapic {
                ioapic::init(address, gsi_base, &list.isa);
            }
            if list.ignored > 0 {
                crate::println!("smp: {} CPUs beyond the limit of {MAX_CPUS} stay off", list.ignored);
            }
            smp::start_aps(&list.apic_ids[..list.count], kernel_space())
        }
        Err(error) => {
            crate::println!("acpi: {error:?}; running on the boot CPU only");
            1
        }
    }
}

/// Number of CPUs online.
pub fn cpu_count() -> usize {
    smp::ONLINE.load(Ordering::Acquire)
}

/// Application processor entry from the trampoline, on its own stack and
/// the kernel's page tables.
extern "C" fn ap_main(index: usize) -> ! {
    let cpu = percpu::install(index, apic::id());
    let fault_stack = stacks::alloc(kernel_space()).unwrap_or_else(|e| panic!("cpu {index}: no fault stack: {e:?}"));
    gdt::load(cpu, fault_stack);
    idt::load();
    init_user_entry(cpu);
    apic::init_local();
    time::start_tick();
    smp::ONLINE.fetch_add(1, Ordering::Release);
    while !crate::kernel::started() {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
    start_scheduling()
}

/// Gives the running CPU its stack for entries from user mode and enables
/// `syscall`.
fn init_user_entry(cpu: &'static PerCpu) {
    let stack = stacks::alloc(kernel_space()).unwrap_or_else(|e| panic!("cpu {}: no kernel stack: {e:?}", cpu.index()));
    cpu.set_kernel_stack(stack);
    syscall::init();
    supervisor::enable();
}

/// Sleeps until the next interrupt, forever.
pub fn idle() -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}

/// Reads an I/O port of `width` bytes (1, 2 or 4; the caller checked).
pub fn port_in(port: u16, width: u8) -> u64 {
    // SAFETY: the caller holds an IoPorts capability covering the port.
    unsafe {
        match width {
            1 => u64::from(Port::<u8>::new(port).read()),
            2 => u64::from(Port::<u16>::new(port).read()),
            _ => u64::from(Port::<u32>::new(port).read()),
        }
    }
}

/// Writes an I/O port of `width` bytes (1, 2 or 4; the caller checked).
pub fn port_out(port: u16, width: u8, value: u64) {
    // SAFETY: the caller holds an IoPorts capability covering the port.
    unsafe {
        match width {
            1 => Port::<u8>::new(port).write(value as u8),
            2 => Port::<u16>::new(port).write(value as u16),
            _ => Port::<u32>::new(port).write(value as u32),
        }
    }
}

/// Reads an address that is never mapped: an unhandled kernel page fault.
pub fn touch_unmapped() {
    // SAFETY: the read faults before it returns anything; the fault is
    // fatal and reported, which is what the caller asks for.
    unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
}

/// A kernel-half address in a range nothing ever maps.
const UNMAPPED: u64 = 0xFFFF_FC00_0000_0000;

/// Sends test IPI `vector` to CPU `target`, naming the running CPU as sender.
pub fn send_test_ping(target: &PerCpu) {
    target.ping_from.store(current_cpu().index() as u32, Ordering::Release);
    apic::send_ipi(target.apic_id(), PING_VECTOR as u8);
}

pub fn console_write(args: core::fmt::Arguments) {
    serial::write_fmt(args);
}

/// Writes raw bytes to the trace port (COM2).
pub fn trace_port_write(bytes: &[u8]) {
    serial::write_trace(bytes);
}

pub fn console_write_forced(args: core::fmt::Arguments) {
    serial::write_fmt_forced(args);
}

/// Leaves QEMU through `isa-debug-exit`; halts if the device is missing.
pub fn exit(how: GuestExit) -> ! {
    x86_64::instructions::interrupts::disable();
    // SAFETY: port 0xf4 is the debug-exit device, or nothing at all.
    unsafe { Port::<u32>::new(abi::exit::DEBUG_EXIT_PORT).write(how.code()) };
    loop {
        x86_64::instructions::hlt();
    }
}
