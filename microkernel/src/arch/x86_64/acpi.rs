//! ACPI, as far as bring-up needs it: the MADT's list of enabled CPUs (by
//! local APIC id). Parsing is the `acpi` crate's; this file only maps tables
//! through the direct map.

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

/// The local APIC ids of the enabled CPUs, in MADT order, at most [`MAX_CPUS`].
pub struct CpuList {
    pub apic_ids: [u32; MAX_CPUS],
    pub count: usize,
    /// Enabled CPUs beyond [`MAX_CPUS`], left off.
    pub ignored: usize,
}

pub fn cpus(rsdp: Option<u64>) -> Result<CpuList, AcpiError> {
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
    let mut list = CpuList { apic_ids: [0; MAX_CPUS], count: 0, ignored: 0 };
    for entry in madt.get().entries() {
        const ENABLED: u32 = 1;
        let apic_id = match entry {
            MadtEntry::LocalApic(lapic) if lapic.flags & ENABLED != 0 => u32::from(lapic.apic_id),
            MadtEntry::LocalX2Apic(x2apic) if x2apic.flags & ENABLED != 0 => x2apic.x2apic_id,
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
