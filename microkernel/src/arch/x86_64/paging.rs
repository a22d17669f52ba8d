//! Four-level page tables: the kernel's own address space and the primitives
//! every later address space is built from (map, unmap with TLB flush,
//! translate).
//!
//! Virtual layout:
//! - `PHYS_MAP_BASE`: every physical byte, 2 MiB pages, no-execute;
//! - `KSTACK_BASE`: kernel stacks, 4 KiB pages with an unmapped guard below each;
//! - `KERNEL_BASE`: the kernel image, one 4 KiB page at a time with the
//!   rights of its section (text RX, rodata R, data RW).
//!
//! Page-table frames come from a caller-supplied source, so this module owns
//! no memory and decides no policy.

use x86_64::PhysAddr;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::{PageTableFlags as Flags, PhysFrame};

pub use x86_64::structures::paging::{PageTable, PageTableFlags};

pub const PAGE_SIZE: u64 = 4096;
const HUGE_2M: u64 = 2 << 20;

pub const PHYS_MAP_BASE: u64 = 0xFFFF_8000_0000_0000;
pub const KSTACK_BASE: u64 = 0xFFFF_FF00_0000_0000;
pub const KERNEL_BASE: u64 = 0xFFFF_FFFF_8000_0000;

/// Why a mapping operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The virtual or physical address is not aligned to the page size.
    Misaligned,
    /// Something is already mapped there.
    AlreadyMapped,
    /// Nothing is mapped there.
    NotMapped,
    /// A large page covers the address.
    LargePage,
    /// No frame was left for a page-table page.
    OutOfFrames,
}

/// The kernel address of physical address `paddr` through the direct map.
pub fn phys_to_virt(paddr: u64) -> *mut u8 {
    (PHYS_MAP_BASE + paddr) as *mut u8
}

/// The entries of `table` as the raw words the MMU reads, for loops that
/// change thousands of them (`ShareCow`).
pub fn raw_entries(table: &mut PageTable) -> &mut [u64; 512] {
    // SAFETY: a `PageTable` is 512 `PageTableEntry`s, each a
    // `repr(transparent)` u64, page-aligned: the same bytes as `[u64; 512]`,
    // borrowed mutably for as long as `table` is.
    unsafe { &mut *core::ptr::from_mut(table).cast::<[u64; 512]>() }
}

/// A frame for a page-table page, zeroed by the caller of `map`.
pub type FrameSource<'a> = &'a mut dyn FnMut() -> Option<u64>;

/// The root table of an address space, by physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root(pub u64);

impl Root {
    /// The address space loaded on this CPU.
    pub fn current() -> Self {
        Self(Cr3::read().0.start_address().as_u64())
    }

    /// Makes this the address space of this CPU (flushes non-global TLB entries).
    ///
    /// # Safety
    /// The table must map the running code, stack and per-CPU data.
    pub unsafe fn activate(self) {
        let frame = PhysFrame::containing_address(PhysAddr::new(self.0));
        // SAFETY: forwarded to the caller.
        unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    }

    fn table(self) -> &'static mut PageTable {
        table_at(self.0)
    }

    /// A new address space whose upper half is the kernel's (shared tables,
    /// so kernel mappings made later appear in it too) and lower half empty.
    pub fn new_user(kernel: Root, frames: FrameSource) -> Result<Self, MapError> {
        let root = Root(frames().ok_or(MapError::OutOfFrames)?);
        let table = root.table();
        table.zero();
        for index in 256..512 {
            table[index] = kernel.table()[index].clone();
        }
        Ok(root)
    }

    /// Hands out what the lower half holds, for a space that is being
    /// freed: `release` sees every mapped 4 KiB frame whose flags contain
    /// `marked` (with its flags) and every page-table frame under the root
    /// (with `None`). The root's user half is left empty, so a CPU that
    /// still has the root loaded, idle in the kernel half, walks no freed
    /// table; no thread may run on this space meanwhile.
    /// Entries are read eight at a time: a run of unused (or, in a last-level
    /// table, unmarked) entries costs about one instruction each.
    pub fn release_user_half(self, marked: Flags, mut release: impl FnMut(u64, Option<Flags>)) {
        let marked = marked | Flags::PRESENT;
        for_each_with(self.table(), 256, Flags::PRESENT, |upper| {
            for_each_with(table_at(upper.addr().as_u64()), 512, Flags::PRESENT, |middle| {
                for_each_with(table_at(middle.addr().as_u64()), 512, Flags::PRESENT, |lower| {
                    for_each_with(table_at(lower.addr().as_u64()), 512, marked, |leaf| release(leaf.addr().as_u64(), Some(leaf.flags())));
                    release(lower.addr().as_u64(), None);
                });
                release(middle.addr().as_u64(), None);
            });
            release(upper.addr().as_u64(), None);
        });
        for entry in self.table().iter_mut().take(256) {
            entry.set_unused();
        }
    }

    /// Changes the rights of the 4 KiB mapping at `vaddr`, keeping its frame.
    pub fn protect(self, vaddr: u64, flags: Flags) -> Result<(), MapError> {
        let entry = self.walk(vaddr, 1, None)?;
        if entry.is_unused() {
            return Err(MapError::NotMapped);
        }
        let paddr = entry.addr();
        entry.set_addr(paddr, flags | Flags::PRESENT);
        Ok(())
    }

    /// Maps one 4 KiB page.
    pub fn map(self, vaddr: u64, paddr: u64, flags: Flags, frames: FrameSource) -> Result<(), MapError> {
        self.map_sized(vaddr, paddr, flags, 1, frames)
    }

    /// Maps one 2 MiB page.
    pub fn map_2m(self, vaddr: u64, paddr: u64, flags: Flags, frames: FrameSource) -> Result<(), MapError> {
        self.map_sized(vaddr, paddr, flags | Flags::HUGE_PAGE, 2, frames)
    }

    fn map_sized(self, vaddr: u64, paddr: u64, flags: Flags, level: usize, frames: FrameSource) -> Result<(), MapError> {
        let size = if level == 1 { PAGE_SIZE } else { HUGE_2M };
        if !vaddr.is_multiple_of(size) || !paddr.is_multiple_of(size) {
            return Err(MapError::Misaligned);
        }
        let entry = self.walk(vaddr, level, Some(frames))?;
        if !entry.is_unused() {
            return Err(MapError::AlreadyMapped);
        }
        entry.set_addr(PhysAddr::new(paddr), flags | Flags::PRESENT);
        Ok(())
    }

    /// Removes the 4 KiB mapping at `vaddr` and flushes it from this CPU's
    /// TLB; returns the frame that was mapped.
    pub fn unmap(self, vaddr: u64) -> Result<u64, MapError> {
        let (paddr, _) = self.take(vaddr)?;
        if self == Self::current() || vaddr >= PHYS_MAP_BASE {
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(vaddr));
        }
        Ok(paddr)
    }

    /// Removes the 4 KiB mapping at `vaddr`, without a flush (the caller
    /// shoots it down); returns the frame and rights it had.
    pub fn take(self, vaddr: u64) -> Result<(u64, Flags), MapError> {
        self.replace(vaddr, None)
    }

    /// Points the 4 KiB mapping at `vaddr` at `new` (frame and rights), or
    /// removes it for `None`, in one walk and without a flush (the caller
    /// shoots it down); returns the frame and rights it had.
    pub fn replace(self, vaddr: u64, new: Option<(u64, Flags)>) -> Result<(u64, Flags), MapError> {
        if !vaddr.is_multiple_of(PAGE_SIZE) || new.is_some_and(|(paddr, _)| !paddr.is_multiple_of(PAGE_SIZE)) {
            return Err(MapError::Misaligned);
        }
        let entry = self.walk(vaddr, 1, None)?;
        if entry.is_unused() {
            return Err(MapError::NotMapped);
        }
        let old = (entry.addr().as_u64(), entry.flags());
        match new {
            Some((paddr, flags)) => entry.set_addr(PhysAddr::new(paddr), flags | Flags::PRESENT),
            None => entry.set_unused(),
        }
        Ok(old)
    }

    /// The physical address and rights `vaddr` maps to, if any.
    pub fn translate(self, vaddr: u64) -> Option<(u64, Flags)> {
        let mut table = self.table();
        for level in (1..=4).rev() {
            let entry = &table[table_index(vaddr, level)];
            if entry.is_unused() {
                return None;
            }
            if level == 1 || entry.flags().contains(Flags::HUGE_PAGE) {
                let offset = vaddr & ((1u64 << (12 + 9 * (level - 1))) - 1);
                return Some((entry.addr().as_u64() + offset, entry.flags()));
            }
            table = table_at(entry.addr().as_u64());
        }
        None
    }

    /// The last-level table that maps the 2 MiB around `vaddr`, creating
    /// the tables above it from `frames` when given; `None` if it does not
    /// exist (and may not be created) or a large page covers `vaddr`.
    pub fn leaf_table(self, vaddr: u64, frames: Option<FrameSource>) -> Option<&'static mut PageTable> {
        let first = self.walk(vaddr & !(HUGE_2M - 1), 1, frames).ok()?;
        // SAFETY: `walk` returned entry 0 of a last-level table, which is the
        // whole 4 KiB table in the direct map.
        Some(unsafe { &mut *(first as *mut PageTableEntry).cast::<PageTable>() })
    }

    /// The entry for `vaddr` at `level` (1 = 4 KiB), creating intermediate
    /// tables from `frames` when given.
    fn walk(self, vaddr: u64, level: usize, mut frames: Option<FrameSource>) -> Result<&'static mut PageTableEntry, MapError> {
        let mut table = self.table();
        for current in (level + 1..=4).rev() {
            let entry = &mut table[table_index(vaddr, current)];
            if entry.is_unused() {
                let source = frames.as_mut().ok_or(MapError::NotMapped)?;
                let frame = source().ok_or(MapError::OutOfFrames)?;
                table_at(frame).zero();
                let mut parent = Flags::PRESENT | Flags::WRITABLE;
                if vaddr < PHYS_MAP_BASE {
                    parent |= Flags::USER_ACCESSIBLE;
                }
                entry.set_addr(PhysAddr::new(frame), parent);
            } else if entry.flags().contains(Flags::HUGE_PAGE) {
                return Err(MapError::LargePage);
            }
            table = table_at(entry.addr().as_u64());
        }
        Ok(&mut table[table_index(vaddr, level)])
    }
}

/// Calls `each` for the entries among the first `count` of `table` (a
/// multiple of 8) whose flags contain `flags`, testing eight at a time
/// first: the tables of a small process are mostly empty, and a process's
/// last-level tables hold few kernel-owned frames or none. User tables have
/// no large pages (only the kernel's direct map does).
#[inline(always)]
fn for_each_with(table: &PageTable, count: usize, flags: Flags, mut each: impl FnMut(&PageTableEntry)) {
    // SAFETY: `PageTable` is `repr(C)` over 512 `PageTableEntry`s, each
    // `repr(transparent)` over a `u64`, so the table is 512 words.
    let words = unsafe { &*(table as *const PageTable).cast::<[u64; 512]>() };
    let bits = flags.bits();
    for (group, chunk) in words[..count].chunks_exact(8).enumerate() {
        if chunk.iter().fold(0, |any, &word| any | word) & bits != bits {
            continue;
        }
        for (i, &word) in chunk.iter().enumerate() {
            if word & bits == bits {
                each(&table[group * 8 + i]);
            }
        }
    }
}

pub fn table_index(vaddr: u64, level: usize) -> usize {
    ((vaddr >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

fn table_at(paddr: u64) -> &'static mut PageTable {
    // SAFETY: page-table frames are reached only through the direct map and
    // only by the code in this module, which never holds two references to
    // one table across a call.
    unsafe { &mut *phys_to_virt(paddr).cast::<PageTable>() }
}

/// The kernel image's sections, for mapping each with its own rights.
pub struct ImageLayout {
    pub text: core::ops::Range<u64>,
    pub rodata: core::ops::Range<u64>,
    pub data: core::ops::Range<u64>,
}

impl ImageLayout {
    pub fn of_running_kernel() -> Self {
        unsafe extern "C" {
            static __text_start: u8;
            static __rodata_start: u8;
            static __data_start: u8;
            static __kernel_end: u8;
        }
        let [text, rodata, data, end] = [
            core::ptr::addr_of!(__text_start),
            core::ptr::addr_of!(__rodata_start),
            core::ptr::addr_of!(__data_start),
            core::ptr::addr_of!(__kernel_end),
        ]
        .map(|p| p as u64);
        Self { text: text..rodata, rodata: rodata..data, data: data..end }
    }

    /// Physical range of the whole loaded kernel, boot section included.
    pub fn physical_extent(&self) -> core::ops::Range<u64> {
        unsafe extern "C" {
            static __boot_start: u8;
        }
        // The boot section is linked at its physical address.
        let start = core::ptr::addr_of!(__boot_start) as u64;
        start..self.data.end - KERNEL_BASE
    }
}

/// Builds the kernel's address space: the direct map of `[0, phys_end)` and
/// the kernel image with per-section rights.
pub fn build_kernel_space(phys_end: u64, frames: FrameSource) -> Result<Root, MapError> {
    let root = Root(frames().ok_or(MapError::OutOfFrames)?);
    root.table().zero();
    let direct = Flags::WRITABLE | Flags::NO_EXECUTE | Flags::GLOBAL;
    for paddr in (0..phys_end.next_multiple_of(HUGE_2M)).step_by(HUGE_2M as usize) {
        root.map_2m(PHYS_MAP_BASE + paddr, paddr, direct, frames)?;
    }
    // Every upper-half slot gets its table now, so address spaces that copy
    // the upper half see later kernel mappings too.
    for index in 256..512 {
        let entry = &mut root.table()[index];
        if entry.is_unused() {
            let frame = frames().ok_or(MapError::OutOfFrames)?;
            table_at(frame).zero();
            entry.set_addr(PhysAddr::new(frame), Flags::PRESENT | Flags::WRITABLE);
        }
    }
    let layout = ImageLayout::of_running_kernel();
    let sections = [
        (&layout.text, Flags::GLOBAL),
        (&layout.rodata, Flags::GLOBAL | Flags::NO_EXECUTE),
        (&layout.data, Flags::GLOBAL | Flags::NO_EXECUTE | Flags::WRITABLE),
    ];
    for (range, flags) in sections {
        for vaddr in range.clone().step_by(PAGE_SIZE as usize) {
            root.map(vaddr, vaddr - KERNEL_BASE, flags, frames)?;
        }
    }
    Ok(root)
}
