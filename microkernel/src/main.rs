//! The microkernel: mechanism only.
//!
//! Design principles (see docs/architecture.md §3 and docs/kernel.md):
//! - the kernel maps, schedules and passes messages; every policy, including
//!   which frame user memory uses, lives in user-space servers;
//! - nothing user space does may panic or hang the kernel: arguments are
//!   checked and bad ones get an error code;
//! - one facade (`arch`) hides the architecture; the portable kernel never
//!   names a register.
//!
//! Boot: `arch` enters at the PVH entry, sets up the boot CPU, and calls
//! [`kmain`], which builds the kernel's memory, starts every CPU, prints the
//! banner, and runs the self-tests when the command line asks for them.
#![no_std]
#![no_main]
#![forbid(unsafe_op_in_unsafe_fn)]

mod arch;
mod bootinfo;
mod capture;
mod console;
mod kernel;
mod mm;
mod object;
mod program;
mod selftest;
mod uaccess;

use abi::exit::GuestExit;

use crate::bootinfo::BootInfo;

/// The portable half of boot, on the boot CPU with its descriptor tables
/// loaded and interrupts off.
fn kmain(info: &'static BootInfo) -> ! {
    println!("microkernel {} (x86_64), cmdline {:?}", env!("CARGO_PKG_VERSION"), info.cmdline());
    let [low, kernel] = arch::reserved_memory();
    let initrd = info.initrd.map_or(0..0, |blob| blob.start..blob.start + blob.len);
    if let Err(error) = mm::frame::init(info, &[low, kernel, initrd]) {
        panic!("frame allocator: {error:?}");
    }
    let phys_end = info.usable().map(|r| r.end()).max().unwrap_or(0);
    if let Err(error) = arch::init_memory(phys_end) {
        panic!("kernel page tables: {error:?}");
    }
    let cpus = arch::start_cpus(info);
    capture::configure_from_cmdline(info.cmdline());
    arch::configure_haltpoll(info.cmdline());
    kernel::time_lock_holds(info.has_flag(kernel::LOCKSTAT_FLAG));
    println!("cpus online: {cpus}");
    println!("memory: {} MiB usable", info.usable_bytes() >> 20);
    report_boot_image(info);
    crash_if_asked(info);
    let selftest = info.has_flag(abi::selftest::CMDLINE_FLAG);
    if selftest && !selftest::run(info) {
        println!("{} done", abi::selftest::MARKER);
        arch::exit(GuestExit::Failure);
    }
    start_init(info);
    arch::start_scheduling()
}

/// Fails on purpose when the command line asks (see `abi::selftest::crash`).
fn crash_if_asked(info: &BootInfo) {
    use abi::selftest::crash;
    if info.has_flag(crash::PANIC) {
        panic!("crash requested on the command line");
    }
    if info.has_flag(crash::FAULT) {
        println!("reading an unmapped kernel address, as asked");
        arch::touch_unmapped();
    }
    if info.has_flag(crash::HANG) {
        println!("idling forever, as asked");
        arch::idle();
    }
}

/// Creates init from the boot image; without it there is nothing to run.
fn start_init(info: &BootInfo) {
    let (Ok(image), Some(blob)) = (boot_image(info), info.initrd) else {
        panic!("no readable boot image: nothing to run");
    };
    let Some(init) = image.find("init") else {
        panic!("the boot image has no init");
    };
    let flags = abi::selftest::init_flags(info.cmdline().split_ascii_whitespace());
    if let Err(error) = kernel::start_init(init.data, blob, flags) {
        panic!("init could not start: {error:?}");
    }
}

fn report_boot_image(info: &BootInfo) {
    let Some(blob) = info.initrd else {
        println!("boot image: none");
        return;
    };
    match boot_image(info) {
        Ok(image) => println!("boot image: {} files, {} KiB at {:#x}", image.len(), blob.len / 1024, blob.start),
        Err(error) => println!("boot image: unreadable ({error:?})"),
    }
}

/// The `-initrd` module as a boot image.
fn boot_image(info: &BootInfo) -> Result<bootimage::Image<'static>, bootimage::ImageError> {
    let blob = info.initrd.ok_or(bootimage::ImageError::TooShort)?;
    // SAFETY: the loader placed the module there; the frame allocator
    // reserves its range, so nothing else writes it.
    let bytes = unsafe { core::slice::from_raw_parts(arch::paging::phys_to_virt(blob.start), blob.len as usize) };
    bootimage::Image::parse(bytes)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let cpu = arch::try_current_cpu().map_or(0, |cpu| cpu.index());
    match info.location() {
        Some(at) => {
            arch::console_write_forced(format_args!("\nKERNEL PANIC on cpu {cpu} at {}:{}: {}\n", at.file(), at.line(), info.message()))
        }
        None => arch::console_write_forced(format_args!("\nKERNEL PANIC on cpu {cpu}: {}\n", info.message())),
    }
    capture::drain_all();
    arch::exit(GuestExit::Failure)
}
