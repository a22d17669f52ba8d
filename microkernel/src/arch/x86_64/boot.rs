//! The PVH entry: from QEMU's 32-bit protected mode with paging off to Rust in
//! long mode, running higher-half on the boot page tables.
//!
//! QEMU finds `pvh_entry` through the Xen ELF note (XEN_ELFNOTE_PHYS32_ENTRY)
//! and jumps there with `%ebx` holding the physical address of `hvm_start_info`.
//! The boot tables map the first 4 GiB three times with 2 MiB pages: identity
//! (the entry itself, and the AP trampoline later), at the direct-map base, and
//! at the kernel base. They live in the identity-mapped `.boot.bss`, so the AP
//! trampoline can load them from 32-bit code. Nothing here touches memory that
//! `start_info` may occupy: page tables and stack are the kernel's own sections.

core::arch::global_asm!(
    r#"
    .section .note.pvh, "a"
    .balign 4
    .long 4                 /* name size */
    .long 8                 /* descriptor size: QEMU reads 8 bytes for ELF64 */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_entry

    .section .boot.bss, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:        .skip 4096
boot_pdpt_low:    .skip 4096    /* PML4[0] (identity) and PML4[256] (direct map) */
boot_pdpt_kernel: .skip 4096    /* PML4[511]: the top 2 GiB */
boot_pds:         .skip 4096 * 4

    .section .boot.data, "aw"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 0x08: 64-bit kernel code */
    .quad 0x00CF92000000FFFF    /* 0x10: kernel data */
boot_gdt_end:
boot_gdtr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .bss.boot_stack, "aw", @nobits
    .balign 4096
boot_stack:
    .skip 65536
boot_stack_top:

    .section .boot.text, "ax"
    .code32
    .global pvh_entry
pvh_entry:
    cli
    cld
    mov %ebx, %esi

    /* 2048 page-directory entries: 4 GiB of 2 MiB pages (present, writable, large). */
    mov $boot_pds, %edi
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%edi,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 1b

    mov $boot_pdpt_low, %edi
    mov $boot_pds + 3, %eax
    mov %eax, 0(%edi)
    add $4096, %eax
    mov %eax, 8(%edi)
    add $4096, %eax
    mov %eax, 16(%edi)
    add $4096, %eax
    mov %eax, 24(%edi)

    mov $boot_pdpt_kernel, %edi
    movl $boot_pds + 3, 510*8(%edi)
    movl $boot_pds + 4096 + 3, 511*8(%edi)

    mov $boot_pml4, %edi
    movl $boot_pdpt_low + 3, 0(%edi)
    movl $boot_pdpt_low + 3, 256*8(%edi)
    movl $boot_pdpt_kernel + 3, 511*8(%edi)

    mov %cr4, %eax
    or $0xA0, %eax              /* PAE | PGE */
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx       /* EFER */
    rdmsr
    or $0x901, %eax             /* SCE | LME | NXE */
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax        /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdtr
    ljmp $0x08, $boot_long_mode

    .code64
boot_long_mode:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs

    movabs $__bss_start, %rdi
    movabs $__bss_end, %rcx
    sub %rdi, %rcx
    rep stosb

    movabs $boot_stack_top, %rsp
    mov %esi, %edi
    movabs ${entry}, %rax
    call *%rax
    ud2
"#,
    entry = sym super::bsp_main,
    options(att_syntax)
);

/// Physical address of the boot PML4, which the AP trampoline loads before
/// it can reach the kernel's own tables.
pub fn boot_page_table() -> u64 {
    unsafe extern "C" {
        static boot_pml4: u8;
    }
    // `.boot.bss` is linked at its physical address, so this is physical.
    core::ptr::addr_of!(boot_pml4) as u64
}
