//! Starting the application processors: a real-mode trampoline copied to a
//! fixed low page, INIT-SIPI-SIPI to each CPU the MADT lists, one at a time.
//!
//! The trampoline climbs to long mode on the boot page tables (which identity
//! map it), then jumps to `ap_entry64` in the kernel image, which switches to
//! the kernel's own tables and the stack the boot CPU prepared.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::paging::{PAGE_SIZE, Root, phys_to_virt};
use super::{apic, boot, stacks, time};

/// Physical page the trampoline runs from (below 1 MiB, never given to the
/// frame allocator).
pub const TRAMPOLINE: u64 = 0x8000;

core::arch::global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl {base} + tramp_gdtr - ap_trampoline_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, ${base} + tramp32 - ap_trampoline_start

    .code32
tramp32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $0xA0, %eax
    mov %eax, %cr4
    mov {base} + ap_mailbox_boot_cr3 - ap_trampoline_start, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x901, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0
    ljmp $0x18, ${base} + tramp64 - ap_trampoline_start

    .code64
tramp64:
    mov {base} + ap_mailbox_kernel_cr3 - ap_trampoline_start, %rdi
    mov {base} + ap_mailbox_stack - ap_trampoline_start, %rsi
    mov {base} + ap_mailbox_cpu - ap_trampoline_start, %rdx
    mov {base} + ap_mailbox_entry - ap_trampoline_start, %rax
    jmp *%rax

    .balign 8
tramp_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF    /* 0x08: 32-bit code */
    .quad 0x00CF92000000FFFF    /* 0x10: data */
    .quad 0x00AF9A000000FFFF    /* 0x18: 64-bit code */
tramp_gdtr:
    .word 31
    .long {base} + tramp_gdt - ap_trampoline_start
    .balign 8
    .global ap_mailbox_boot_cr3
ap_mailbox_boot_cr3:   .quad 0
ap_mailbox_kernel_cr3: .quad 0
ap_mailbox_stack:      .quad 0
ap_mailbox_cpu:        .quad 0
ap_mailbox_entry:      .quad 0
    .global ap_trampoline_end
ap_trampoline_end:

    .section .text.ap_entry, "ax"
    .global ap_entry64
ap_entry64:
    mov %rdi, %cr3
    mov %rsi, %rsp
    mov %rdx, %rdi
    xor %ebp, %ebp
    push $0
    jmp {ap_main}
"#,
    base = const TRAMPOLINE,
    ap_main = sym super::ap_main,
    options(att_syntax)
);

/// The mailbox the boot CPU fills before each startup IPI, in trampoline order.
#[repr(C)]
struct Mailbox {
    boot_cr3: u64,
    kernel_cr3: u64,
    stack_top: u64,
    cpu: u64,
    entry: u64,
}

/// CPUs that reached `ap_main` and finished their bring-up (the boot CPU included).
pub static ONLINE: AtomicUsize = AtomicUsize::new(1);

fn trampoline_image() -> (&'static [u8], usize) {
    unsafe extern "C" {
        static ap_trampoline_start: u8;
        static ap_trampoline_end: u8;
        static ap_mailbox_boot_cr3: u8;
    }
    // SAFETY: the symbols delimit the trampoline blob in .rodata.
    unsafe {
        let start = core::ptr::addr_of!(ap_trampoline_start);
        let len = core::ptr::addr_of!(ap_trampoline_end).offset_from(start) as usize;
        let mailbox = core::ptr::addr_of!(ap_mailbox_boot_cr3).offset_from(start) as usize;
        (core::slice::from_raw_parts(start, len), mailbox)
    }
}

fn ap_entry_address() -> u64 {
    unsafe extern "C" {
        fn ap_entry64();
    }
    ap_entry64 as *const () as u64
}

/// Starts every CPU in `apic_ids` except the running one; returns how many
/// CPUs are online afterwards. A CPU that does not answer within 100 ms is
/// reported and left off.
pub fn start_aps(apic_ids: &[u32], kernel: Root) -> usize {
    let (image, mailbox_offset) = trampoline_image();
    assert!(image.len() as u64 <= PAGE_SIZE, "AP trampoline larger than a page");
    // SAFETY: the trampoline page is low memory the frame allocator never
    // hands out; nothing else runs from it.
    unsafe { core::ptr::copy_nonoverlapping(image.as_ptr(), phys_to_virt(TRAMPOLINE), image.len()) };
    let mailbox = phys_to_virt(TRAMPOLINE + mailbox_offset as u64).cast::<Mailbox>();
    let me = apic::id();
    for &apic_id in apic_ids.iter().filter(|&&id| id != me) {
        let index = ONLINE.load(Ordering::Acquire);
        let Ok(stack_top) = stacks::alloc(kernel) else {
            crate::println!("smp: no memory for a stack, cpu with APIC id {apic_id} stays off");
            break;
        };
        let fill =
            Mailbox { boot_cr3: boot::boot_page_table(), kernel_cr3: kernel.0, stack_top, cpu: index as u64, entry: ap_entry_address() };
        // SAFETY: the mailbox lies in the trampoline page, which no AP is
        // reading now: the previous one finished before this loop went on.
        unsafe { mailbox.write_volatile(fill) };
        apic::send_init(apic_id);
        time::delay_us(10_000);
        for _ in 0..2 {
            if ONLINE.load(Ordering::Acquire) > index {
                break;
            }
            apic::send_startup(apic_id, (TRAMPOLINE / PAGE_SIZE) as u8);
            time::delay_us(200);
        }
        let deadline = time::tsc() + time::tsc_hz() / 10;
        while ONLINE.load(Ordering::Acquire) == index && time::tsc() < deadline {
            time::relax();
        }
        if ONLINE.load(Ordering::Acquire) == index {
            crate::println!("smp: cpu with APIC id {apic_id} did not start");
        }
    }
    ONLINE.load(Ordering::Acquire)
}
