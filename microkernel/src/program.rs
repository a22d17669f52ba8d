//! Starting a user program from an ELF file of the boot image: a fresh
//! address space, each PT_LOAD segment copied into frames of its own with its
//! rights, a stack below `USER_END`, then [`arch::run_user`]. When the program
//! ends, its whole user half is freed.

use elf::ElfBytes;
use elf::abi::{PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;

use abi::syscall::USER_END;

use crate::arch::paging::{MapError, PAGE_SIZE, PageTableFlags, Root, phys_to_virt};
use crate::arch::{self, UserExit};
use crate::mm::frame;

/// User stack size, with an unmapped guard page below it.
const STACK_PAGES: u64 = 16;
const STACK_TOP: u64 = USER_END - PAGE_SIZE;

/// Why a program could not be started.
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

/// Loads `elf` into a new address space, runs it to its end, frees its
/// memory, and says how it ended.
pub fn run(elf: &[u8]) -> Result<UserExit, LoadError> {
    let space = Root::new_user(arch::kernel_space(), &mut frame::alloc_zeroed)?;
    let loaded = load(space, elf);
    let outcome = loaded.map(|entry| arch::run_user(space, entry, STACK_TOP));
    space.clear_user_half(&mut |paddr| {
        frame::free(paddr).expect("user frames come from the frame allocator");
    });
    frame::free(space.0).expect("the root table came from the frame allocator");
    x86_64::instructions::interrupts::enable();
    outcome
}

fn load(space: Root, elf: &[u8]) -> Result<u64, LoadError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(elf).map_err(LoadError::Elf)?;
    if file.ehdr.e_type != elf::abi::ET_EXEC {
        return Err(LoadError::NotExecutable);
    }
    let segments = file.segments().ok_or(LoadError::NotExecutable)?;
    for segment in segments.iter().filter(|s| s.p_type == PT_LOAD) {
        let start = segment.p_vaddr & !(PAGE_SIZE - 1);
        let end = segment.p_vaddr.checked_add(segment.p_memsz).ok_or(LoadError::BadSegment(segment.p_vaddr))?;
        let file_bytes = usize::try_from(segment.p_offset)
            .ok()
            .zip(usize::try_from(segment.p_filesz).ok())
            .and_then(|(offset, len)| elf.get(offset..offset.checked_add(len)?))
            .ok_or(LoadError::BadSegment(segment.p_vaddr))?;
        if end > STACK_TOP - (STACK_PAGES + 1) * PAGE_SIZE || segment.p_filesz > segment.p_memsz {
            return Err(LoadError::BadSegment(segment.p_vaddr));
        }
        let mut flags = PageTableFlags::USER_ACCESSIBLE;
        if segment.p_flags & PF_W != 0 {
            flags |= PageTableFlags::WRITABLE;
        }
        if segment.p_flags & PF_X == 0 {
            flags |= PageTableFlags::NO_EXECUTE;
        }
        for page in (start..end).step_by(PAGE_SIZE as usize) {
            let paddr = frame::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
            if let Err(error) = space.map(page, paddr, flags, &mut frame::alloc_zeroed) {
                frame::free(paddr).expect("just allocated");
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
    let stack_flags = PageTableFlags::USER_ACCESSIBLE | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    for page in (STACK_TOP - STACK_PAGES * PAGE_SIZE..STACK_TOP).step_by(PAGE_SIZE as usize) {
        let paddr = frame::alloc_zeroed().ok_or(MapError::OutOfFrames)?;
        space.map(page, paddr, stack_flags, &mut frame::alloc_zeroed)?;
    }
    Ok(file.ehdr.e_entry)
}
