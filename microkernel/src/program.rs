//! Loading an ELF executable of the boot image into a fresh address space:
//! each PT_LOAD segment copied into frames of its own with its rights, a
//! stack below `USER_END`, and an IPC buffer page. Used for init only; every
//! later program is loaded by user space.

use elf::ElfBytes;
use elf::abi::{PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;

use abi::syscall::USER_END;

use crate::arch::paging::{MapError, PAGE_SIZE, PageTableFlags, Root, phys_to_virt};
use crate::kernel::KERNEL_OWNED;
use crate::mm::frame;

/// User stack size, with an unmapped guard page below it.
const STACK_PAGES: u64 = 16;
const STACK_TOP: u64 = USER_END - PAGE_SIZE;
/// The IPC buffer page, below the stack and its guard.
const IPC_BUFFER: u64 = STACK_TOP - (STACK_PAGES + 2) * PAGE_SIZE;

/// Why a program could not be loaded.
#[derive(Debug)]
#[allow(dead_code, reason = "the cause is shown through Debug")]
pub enum LoadError {
    Elf(elf::ParseError),
    NotExecutable,
    /// A segment lies outside the user half or overlaps another.
    BadSegment(u64),
    Map(MapError),
}

impl From<MapError> for LoadError {
    fn from(error: MapError) -> Self {
        Self::Map(error)
    }
}

/// Where the loaded program starts.
pub struct Loaded {
    pub entry: u64,
    pub stack_top: u64,
    pub ipc_buffer: u64,
    /// Page-table pages the load allocated (the root included).
    pub table_pages: usize,
}

/// Loads `elf` into the empty user half of `space`. Every frame it maps is
/// marked kernel-owned, so it goes back to the kernel with the space.
pub fn load(space: Root, elf: &[u8]) -> Result<Loaded, LoadError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(elf).map_err(LoadError::Elf)?;
    if file.ehdr.e_type != elf::abi::ET_EXEC {
        return Err(LoadError::NotExecutable);
    }
    let mut table_pages = 1;
    let mut tables = || {
        table_pages += 1;
        frame::alloc_zeroed()
    };
    let segments = file.segments().ok_or(LoadError::NotExecutable)?;
    for segment in segments.iter().filter(|s| s.p_type == PT_LOAD) {
        let start = segment.p_vaddr & !(PAGE_SIZE - 1);
        let end = segment.p_vaddr.checked_add(segment.p_memsz).ok_or(LoadError::BadSegment(segment.p_vaddr))?;
        let file_bytes = usize::try_from(segment.p_offset)
            .ok()
            .zip(usize::try_from(segment.p_filesz).ok())
            .and_then(|(offset, len)| elf.get(offset..offset.checked_add(len)?))
            .ok_or(LoadError::BadSegment(segment.p_vaddr))?;
        if end > IPC_BUFFER || segment.p_filesz > segment.p_memsz {
            return Err(LoadError::BadSegment(segment.p_vaddr));
        }
        let mut flags = PageTableFlags::USER_ACCESSIBLE | KERNEL_OWNED;
        if segment.p_flags & PF_W != 0 {
            flags |= PageTableFlags::WRITABLE;
        }
        if segment.p_flags & PF_X == 0 {
            flags |= PageTableFlags::NO_EXECUTE;
        }
        for page in (start..end).step_by(PAGE_SIZE as usize) {
            let paddr = frame::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
            if let Err(error) = space.map(page, paddr, flags, &mut tables) {
                let _ = frame::free(paddr);
                return Err(match error {
                    MapError::AlreadyMapped => LoadError::BadSegment(segment.p_vaddr),
                    other => other.into(),
                });
            }
            // Copy the part of the file image that falls in this page.
            let copy_from = page.max(segment.p_vaddr);
            let copy_to = (page + PAGE_SIZE).min(segment.p_vaddr + segment.p_filesz);
            if copy_from < copy_to {
                let source = &file_bytes[(copy_from - segment.p_vaddr) as usize..(copy_to - segment.p_vaddr) as usize];
                // SAFETY: the frame is ours and direct-mapped; the copy stays
                // inside it because copy_from..copy_to lies in this page.
                unsafe {
                    let dest = phys_to_virt(paddr).add((copy_from - page) as usize);
                    core::ptr::copy_nonoverlapping(source.as_ptr(), dest, source.len());
                }
            }
        }
    }
    let data = PageTableFlags::USER_ACCESSIBLE | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE | KERNEL_OWNED;
    let stack = (STACK_TOP - STACK_PAGES * PAGE_SIZE..STACK_TOP).step_by(PAGE_SIZE as usize);
    for page in stack.chain([IPC_BUFFER]) {
        let paddr = frame::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        space.map(page, paddr, data, &mut tables)?;
    }
    Ok(Loaded { entry: file.ehdr.e_entry, stack_top: STACK_TOP, ipc_buffer: IPC_BUFFER, table_pages })
}
