//! Segmentation, reduced to what long mode still needs: one GDT and TSS per
//! CPU, with the selector layout `syscall`/`sysret` require.
//!
//! Layout: null, kernel code (0x08), kernel data (0x10), user data (0x18),
//! user code (0x20), TSS (0x28, two slots).

use x86_64::PrivilegeLevel::{Ring0, Ring3};
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::{lgdt, load_tss};
use x86_64::structures::DescriptorTablePointer;
use x86_64::structures::gdt::SegmentSelector;

use super::percpu::PerCpu;

pub const ENTRIES: usize = 7;
pub const KERNEL_CODE: SegmentSelector = SegmentSelector::new(1, Ring0);
pub const KERNEL_DATA: SegmentSelector = SegmentSelector::new(2, Ring0);
pub const USER_DATA: SegmentSelector = SegmentSelector::new(3, Ring3);
pub const USER_CODE: SegmentSelector = SegmentSelector::new(4, Ring3);
const TSS: SegmentSelector = SegmentSelector::new(5, Ring0);

/// Interrupt-stack-table slot used for double faults, so a kernel stack
/// overflow is still reported.
pub const DOUBLE_FAULT_IST: u16 = 0;

/// Loads `cpu`'s GDT and TSS on the running CPU; `fault_stack_top` is the
/// stack double faults run on.
pub fn load(cpu: &'static PerCpu, fault_stack_top: u64) {
    // SAFETY: only this CPU touches its own TSS and GDT, and only here,
    // before loading them.
    let (tss, gdt) = unsafe { (&mut *cpu.tss.get(), &mut *cpu.gdt.get()) };
    tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = VirtAddr::new(fault_stack_top);
    let base = tss as *const _ as u64;
    let limit = (size_of_val(tss) - 1) as u64;
    *gdt = [
        0,
        0x00AF_9A00_0000_FFFF, // kernel code: present, DPL 0, long mode
        0x00CF_9200_0000_FFFF, // kernel data
        0x00CF_F200_0000_FFFF, // user data: DPL 3
        0x00AF_FA00_0000_FFFF, // user code: DPL 3, long mode
        (limit & 0xFFFF) | ((base & 0xFF_FFFF) << 16) | (0x89 << 40) | ((limit >> 16) << 48) | ((base >> 24 & 0xFF) << 56),
        base >> 32,
    ];
    let pointer = DescriptorTablePointer { limit: (size_of_val(gdt) - 1) as u16, base: VirtAddr::from_ptr(gdt.as_ptr()) };
    // SAFETY: the GDT is 'static, well formed, and its code and data
    // selectors match what the running code already uses.
    unsafe {
        lgdt(&pointer);
        CS::set_reg(KERNEL_CODE);
        SS::set_reg(KERNEL_DATA);
        DS::set_reg(KERNEL_DATA);
        ES::set_reg(KERNEL_DATA);
        load_tss(TSS);
    }
}
