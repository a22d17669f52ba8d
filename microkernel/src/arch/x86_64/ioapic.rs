//! The I/O APIC: routes a global system interrupt (GSI) to a vector on the
//! boot CPU, masks and unmasks it. ISA IRQs reach their GSI through the
//! MADT's overrides, with the polarity and trigger mode they give.

use core::sync::atomic::{AtomicU64, Ordering};

use super::paging::phys_to_virt;

/// First vector used for device interrupts: GSI n arrives as `IRQ_BASE + n`.
pub const IRQ_BASE: u64 = 0x30;
/// GSIs this kernel routes (one I/O APIC's worth).
pub const GSIS: u32 = 24;

const REDIRECTION: u32 = 0x10;
const MASKED: u32 = 1 << 16;
const LEVEL: u32 = 1 << 15;
const ACTIVE_LOW: u32 = 1 << 13;

static BASE: AtomicU64 = AtomicU64::new(0);
static GSI_BASE: AtomicU64 = AtomicU64::new(0);
/// Per ISA IRQ: GSI in the low 32 bits, MPS flags above.
static ISA: [AtomicU64; 16] = [const { AtomicU64::new(u64::MAX) }; 16];

fn write(register: u32, value: u32) {
    let base = phys_to_virt(BASE.load(Ordering::Relaxed));
    // SAFETY: IOREGSEL (offset 0) selects, IOWIN (offset 0x10) writes; the
    // page is the I/O APIC's, reached through the direct map; callers hold
    // the kernel lock, so select and write are not interleaved.
    unsafe {
        base.cast::<u32>().write_volatile(register);
        base.add(0x10).cast::<u32>().write_volatile(value);
    }
}

/// Records the I/O APIC and the ISA wiring, and masks every line.
pub fn init(address: u64, gsi_base: u32, isa: &[(u32, u16); 16]) {
    BASE.store(address, Ordering::Relaxed);
    GSI_BASE.store(u64::from(gsi_base), Ordering::Relaxed);
    for (slot, &(gsi, flags)) in ISA.iter().zip(isa) {
        slot.store(u64::from(gsi) | u64::from(flags) << 32, Ordering::Relaxed);
    }
    for pin in 0..GSIS {
        write(REDIRECTION + 2 * pin, MASKED);
    }
}

/// The GSI and redirection mode of ISA IRQ `irq`.
fn isa_route(irq: u8) -> Option<(u32, u32)> {
    let word = ISA.get(usize::from(irq))?.load(Ordering::Relaxed);
    if word == u64::MAX {
        return None;
    }
    let (gsi, flags) = (word as u32, (word >> 32) as u16);
    let mut mode = 0;
    if flags & 0b11 == 0b11 {
        mode |= ACTIVE_LOW;
    }
    if (flags >> 2) & 0b11 == 0b11 {
        mode |= LEVEL;
    }
    Some((gsi, mode))
}

/// The I/O APIC pin (and mode) ISA IRQ `irq` arrives on, if routable.
pub fn isa_pin(irq: u8) -> Option<(u32, u32)> {
    if BASE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let (gsi, mode) = isa_route(irq)?;
    let pin = gsi.checked_sub(GSI_BASE.load(Ordering::Relaxed) as u32)?;
    (pin < GSIS).then_some((pin, mode))
}

/// Routes `pin` to vector `IRQ_BASE + pin` on the CPU with `apic_id`, masked or not.
pub fn route(pin: u32, mode: u32, apic_id: u32, masked: bool) {
    let low = (IRQ_BASE as u32 + pin) | mode | if masked { MASKED } else { 0 };
    write(REDIRECTION + 2 * pin + 1, apic_id << 24);
    write(REDIRECTION + 2 * pin, low);
}
