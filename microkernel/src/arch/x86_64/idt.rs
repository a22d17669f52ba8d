//! The interrupt descriptor table: one table shared by every CPU, whose 256
//! gates all point into the uniform entry stubs of [`super::trap`].

use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

use super::gdt::{DOUBLE_FAULT_IST, KERNEL_CODE};
use super::trap::{STUB_SIZE, stub_base};

const DOUBLE_FAULT: usize = 8;

#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Gate([u64; 2]);

impl Gate {
    const EMPTY: Self = Self([0; 2]);

    /// A present ring-0 interrupt gate (interrupts stay off on entry).
    fn interrupt(handler: u64, ist: Option<u16>) -> Self {
        let ist_field = ist.map_or(0, |slot| u64::from(slot) + 1);
        let low =
            (handler & 0xFFFF) | (u64::from(KERNEL_CODE.0) << 16) | (ist_field << 32) | (0x8E << 40) | ((handler >> 16 & 0xFFFF) << 48);
        Self([low, handler >> 32])
    }
}

static IDT: spin::Once<[Gate; 256]> = spin::Once::new();

/// Builds the table (once) and loads it on the running CPU.
pub fn load() {
    let table = IDT.call_once(|| {
        let mut gates = [Gate::EMPTY; 256];
        for (vector, gate) in gates.iter_mut().enumerate() {
            let ist = (vector == DOUBLE_FAULT).then_some(DOUBLE_FAULT_IST);
            *gate = Gate::interrupt(stub_base() + (vector * STUB_SIZE) as u64, ist);
        }
        gates
    });
    let pointer = DescriptorTablePointer { limit: (size_of_val(table) - 1) as u16, base: VirtAddr::from_ptr(table.as_ptr()) };
    // SAFETY: the table is 'static and every gate points at a valid stub.
    unsafe { lidt(&pointer) };
}
