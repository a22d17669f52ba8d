//! Reads QEMU's PVH `hvm_start_info` (Xen's arch-x86/hvm/start_info.h) into
//! the portable [`BootInfo`].
//!
//! Runs on the boot page tables, before any allocation, and reads the
//! loader's structures through the direct map only.

use crate::bootinfo::{BootInfo, MemoryRegion, PhysBlob, RegionKind};

use super::paging::phys_to_virt;

const START_INFO_MAGIC: u32 = 0x336e_c578;

#[repr(C)]
#[derive(Clone, Copy)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// Why the loader's hand-over could not be used.
#[derive(Debug)]
#[allow(dead_code, reason = "the cause is shown through Debug")]
pub enum StartInfoError {
    BadMagic(u32),
    NoMemoryMap,
}

/// Copies everything the kernel needs out of `hvm_start_info` at `paddr`.
pub fn read(paddr: u64, info: &mut BootInfo) -> Result<(), StartInfoError> {
    let start: StartInfo = read_phys(paddr);
    if start.magic != START_INFO_MAGIC {
        return Err(StartInfoError::BadMagic(start.magic));
    }
    if start.version < 1 || start.memmap_paddr == 0 || start.memmap_entries == 0 {
        return Err(StartInfoError::NoMemoryMap);
    }
    for index in 0..u64::from(start.memmap_entries) {
        let entry: MemmapEntry = read_phys(start.memmap_paddr + index * size_of::<MemmapEntry>() as u64);
        let kind = match entry.kind {
            1 => RegionKind::Usable,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Bad,
            _ => RegionKind::Reserved,
        };
        info.push_region(MemoryRegion { start: entry.addr, len: entry.size, kind });
    }
    info.rsdp = (start.rsdp_paddr != 0).then_some(start.rsdp_paddr);
    if start.nr_modules > 0 && start.modlist_paddr != 0 {
        let module: ModuleEntry = read_phys(start.modlist_paddr);
        info.initrd = (module.size > 0).then_some(PhysBlob { start: module.paddr, len: module.size });
    }
    if start.cmdline_paddr != 0 {
        // SAFETY: the loader NUL-terminates the command line; the scan stops
        // at MAX_CMDLINE, so at most that many bytes are read.
        let bytes = unsafe { c_string(start.cmdline_paddr, crate::bootinfo::MAX_CMDLINE) };
        info.set_cmdline(bytes);
    }
    Ok(())
}

fn read_phys<T: Copy>(paddr: u64) -> T {
    // SAFETY: the boot tables map the first 4 GiB at the direct-map base and
    // the loader put its structures there; unaligned reads are allowed.
    unsafe { core::ptr::read_unaligned(phys_to_virt(paddr).cast::<T>()) }
}

/// # Safety
/// `paddr` must point at mapped memory holding a NUL within `max` bytes, or
/// at least `max` readable bytes.
unsafe fn c_string(paddr: u64, max: usize) -> &'static [u8] {
    let base = phys_to_virt(paddr).cast_const();
    // SAFETY: per the contract, every byte up to the NUL or `max` is readable.
    let len = (0..max).take_while(|&i| unsafe { *base.add(i) } != 0).count();
    // SAFETY: the `len` bytes just scanned are readable and not written again.
    unsafe { core::slice::from_raw_parts(base, len) }
}
