//! ACPI, as far as bring-up needs it: from the MADT, the enabled CPUs (by
//! local APIC id), the I/O APIC, and where ISA interrupts are wired. Parsing
//! is the `acpi` crate's; this file only maps tables through the direct map.

use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};

use super::paging::phys_to_virt;
use super::percpu::MAX_CPUS;

/// ACPI tables are in RAM or ROM below 4 GiB, which the direct map covers.
#[derive(Clone, Copy)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = NonNull::new(phys_to_virt(physical_address as u64).cast::<T>()).expect("direct map is never null");
        // SAFETY: the region is mapped for as long as the kernel runs.
        unsafe { PhysicalMapping::new(physical_address, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Why the CPU list could not be read.
#[derive(Debug)]
#[allow(dead_code, reason = "the cause is shown through Debug")]
pub enum AcpiError {
    Tables(acpi::AcpiError),
}

/// What the MADT says: the local APIC ids of the enabled CPUs, in MADT
/// order, at most [`MAX_CPUS`]; the first I/O APIC; and the ISA overrides.
pub struct Platform {
    pub apic_ids: [u32; MAX_CPUS],
    pub count: usize,
    /// Enabled CPUs beyond [`MAX_CPUS`], left off.
    pub ignored: usize,
    /// Physical address and first GSI of the first I/O APIC.
    pub ioapic: Option<(u64, u32)>,
    /// For each ISA IRQ: its GSI and MPS flags (polarity, trigger).
    pub isa: [(u32, u16); 16],
}

pub fn platform(rsdp: Option<u64>) -> Result<Platform, AcpiError> {
    // SAFETY: the RSDP address came from the loader; without one, this is a
    // BIOS (qboot) machine, where the search area is defined.
    let tables = unsafe {
        match rsdp {
            Some(address) => AcpiTables::from_rsdp(DirectMap, address as usize),
            None => AcpiTables::search_for_rsdp_bios(DirectMap),
        }
    }
    .map_err(AcpiError::Tables)?;
    let madt = tables.find_table::<Madt>().map_err(AcpiError::Tables)?;
    let mut list =
        Platform { apic_ids: [0; MAX_CPUS], count: 0, ignored: 0, ioapic: None, isa: core::array::from_fn(|irq| (irq as u32, 0)) };
    for entry in madt.get().entries() {
        const ENABLED: u32 = 1;
        let apic_id = match entry {
            MadtEntry::LocalApic(lapic) if lapic.flags & ENABLED != 0 => u32::from(lapic.apic_id),
            MadtEntry::LocalX2Apic(x2apic) if x2apic.flags & ENABLED != 0 => x2apic.x2apic_id,
            MadtEntry::IoApic(ioapic) => {
                let (address, base) = (ioapic.io_apic_address, ioapic.global_system_interrupt_base);
                list.ioapic.get_or_insert((u64::from(address), base));
                continue;
            }
            MadtEntry::InterruptSourceOverride(iso) if iso.bus == 0 => {
                let (irq, gsi, flags) = (iso.irq, iso.global_system_interrupt, iso.flags);
                if let Some(slot) = list.isa.get_mut(usize::from(irq)) {
                    *slot = (gsi, flags);
                }
                continue;
            }
            _ => continue,
        };
        match list.apic_ids.get_mut(list.count) {
            Some(slot) => {
                *slot = apic_id;
                list.count += 1;
            }
            None => list.ignored += 1,
        }
    }
    Ok(list)
}
