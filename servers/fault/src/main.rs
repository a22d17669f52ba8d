//! A program that page-faults on purpose: the kernel must kill it, report
//! it, and carry on.
#![no_std]
#![no_main]

rt::entry!(main);

/// Canonical, in the user half, and never mapped.
const UNMAPPED: u64 = 0x6000_0000_0000;

fn main() -> i32 {
    rt::println!("fault: reading {UNMAPPED:#x}");
    // SAFETY: none; the read faults, which is this program's purpose.
    let value = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    rt::println!("fault: read {value:#x}, but the kernel should have killed me");
    0
}
