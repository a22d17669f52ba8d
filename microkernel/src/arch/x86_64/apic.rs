//! The local APIC (xAPIC, memory-mapped): this CPU's timer, inter-processor
//! interrupts and end-of-interrupt. The legacy 8259 PICs are masked for good.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

use super::paging::phys_to_virt;
use super::trap::{SPURIOUS_VECTOR, TIMER_VECTOR};

const IA32_APIC_BASE: u32 = 0x1B;
const APIC_ENABLE: u64 = 1 << 11;

const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xB0;
const REG_SPURIOUS: usize = 0xF0;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3E0;

const ICR_PENDING: u32 = 1 << 12;
const ICR_INIT: u32 = 0x500;
const ICR_STARTUP: u32 = 0x600;
const ICR_ASSERT: u32 = 1 << 14;
const TIMER_PERIODIC: u32 = 1 << 17;
const TIMER_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0b0011;

/// Physical base of the register page, the same on every CPU.
static BASE: AtomicU64 = AtomicU64::new(0);

fn reg(offset: usize) -> *mut u32 {
    phys_to_virt(BASE.load(Ordering::Relaxed) + offset as u64).cast()
}

fn read(offset: usize) -> u32 {
    // SAFETY: `reg` points into the APIC page, mapped by the direct map.
    unsafe { reg(offset).read_volatile() }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`; APIC registers take 32-bit writes.
    unsafe { reg(offset).write_volatile(value) }
}

/// Enables the local APIC of the running CPU (and, on the first call, masks
/// the 8259 PICs).
pub fn init_local() {
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting the enable
    // bit keeps the base unchanged.
    let value = unsafe { msr.read() };
    unsafe { msr.write(value | APIC_ENABLE) };
    if BASE.swap(value & 0xF_FFFF_F000, Ordering::Relaxed) == 0 {
        // SAFETY: writing all-ones to the PIC data ports masks every line.
        unsafe {
            Port::<u8>::new(0x21).write(0xFF);
            Port::<u8>::new(0xA1).write(0xFF);
        }
    }
    write(REG_SPURIOUS, (1 << 8) | SPURIOUS_VECTOR as u32);
}

pub fn id() -> u32 {
    read(REG_ID) >> 24
}

pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}

fn send(apic_id: u32, command: u32) {
    while read(REG_ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, command);
}

/// A fixed interrupt with `vector` to the CPU with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    x86_64::instructions::interrupts::without_interrupts(|| send(apic_id, ICR_ASSERT | u32::from(vector)));
}

pub fn send_init(apic_id: u32) {
    send(apic_id, ICR_INIT | ICR_ASSERT);
}

/// A startup IPI: the target starts in real mode at physical `page * 4096`.
pub fn send_startup(apic_id: u32, page: u8) {
    send(apic_id, ICR_STARTUP | ICR_ASSERT | u32::from(page));
}

/// Starts the timer counting down from its maximum, masked, for calibration.
pub fn start_calibration() {
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, TIMER_MASKED | TIMER_VECTOR as u32);
    write(REG_TIMER_INITIAL, u32::MAX);
}

/// Timer counts elapsed since [`start_calibration`].
pub fn calibration_elapsed() -> u32 {
    u32::MAX - read(REG_TIMER_CURRENT)
}

/// Periodic timer interrupts every `count` timer ticks (bus clock / 16).
pub fn start_periodic(count: u32) {
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, TIMER_PERIODIC | TIMER_VECTOR as u32);
    write(REG_TIMER_INITIAL, count.max(1));
}
