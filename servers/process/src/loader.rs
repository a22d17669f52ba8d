//! Loading a program from the boot image into a fresh address space: each
//! PT_LOAD page gets a frame, filled through our mapping of the pool and
//! mapped with the segment's rights; the IPC buffer page is mapped too. The
//! stack and heap come later, one demand-zero fault at a time.

use elf::ElfBytes;
use elf::abi::{PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;
use proto::ProtoError;
use rt::mem::PAGE_SIZE;
use rt::process::IPC_BUFFER;
use rt::sys::{self, Slot};

use crate::counts::MemClient;
use crate::slot;
use crate::space::{AddrSpace, IPC_PAGE, Page};
use crate::system;

/// The bytes of program `name` in the boot image, which a process may
/// start: not one of the system's servers (`Denied`).
pub fn program(name: &str) -> Result<&'static [u8], ProtoError> {
    if proto::process::SERVER_PROGRAMS.contains(&name) {
        return Err(ProtoError::Denied);
    }
    let image = bootimage::Image::parse(system::get().boot_image).map_err(|_| ProtoError::NoSuchProgram)?;
    image.find(name).map(|file| file.data).ok_or(ProtoError::NoSuchProgram)
}

/// Loads `elf` into the empty `space` (our slot), recording its pages in
/// `memory`; returns the entry point. On failure the frames taken so far are
/// in `memory`, for the caller to release with the space.
pub fn load(elf: &[u8], space: Slot, memory: &mut AddrSpace, mem: &mut MemClient) -> Result<u64, ProtoError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(elf).map_err(|_| ProtoError::NoSuchProgram)?;
    if file.ehdr.e_type != elf::abi::ET_EXEC {
        return Err(ProtoError::NoSuchProgram);
    }
    let segments = file.segments().ok_or(ProtoError::NoSuchProgram)?;
    let mut top = 0;
    for segment in segments.iter().filter(|s| s.p_type == PT_LOAD) {
        let start = segment.p_vaddr & !(PAGE_SIZE - 1);
        let end = segment.p_vaddr.checked_add(segment.p_memsz).ok_or(ProtoError::NoSuchProgram)?.next_multiple_of(PAGE_SIZE);
        let bytes = usize::try_from(segment.p_offset)
            .ok()
            .zip(usize::try_from(segment.p_filesz).ok())
            .and_then(|(offset, len)| elf.get(offset..offset.checked_add(len)?))
            .ok_or(ProtoError::NoSuchProgram)?;
        if end > IPC_BUFFER || segment.p_filesz > segment.p_memsz {
            return Err(ProtoError::NoSuchProgram);
        }
        let mut flags = 0;
        if segment.p_flags & PF_W != 0 {
            flags |= Page::WRITABLE;
        }
        if segment.p_flags & PF_X != 0 {
            flags |= Page::EXECUTABLE;
        }
        for page in (start..end).step_by(PAGE_SIZE as usize) {
            let frame = map_zeroed(space, page, flags, memory, mem)?;
            let target = system::get().frame_mut(frame);
            // The file bytes that fall into this page.
            let from = page.max(segment.p_vaddr);
            let to = (page + PAGE_SIZE).min(segment.p_vaddr + segment.p_filesz);
            if from < to {
                let src = (from - segment.p_vaddr) as usize..(to - segment.p_vaddr) as usize;
                let dst = (from - page) as usize..(to - page) as usize;
                target[dst].copy_from_slice(&bytes[src]);
            }
        }
        top = top.max(end);
    }
    map_zeroed(space, IPC_PAGE * PAGE_SIZE, Page::WRITABLE, memory, mem)?;
    let pages = core::mem::take(&mut memory.pages);
    *memory = AddrSpace::new(top + PAGE_SIZE);
    memory.pages = pages;
    Ok(file.ehdr.e_entry)
}

/// Maps a fresh zeroed frame at `vaddr` in `space` with `flags`; records it.
pub fn map_zeroed(space: Slot, vaddr: u64, flags: u8, memory: &mut AddrSpace, mem: &mut MemClient) -> Result<u32, ProtoError> {
    crate::heap::allows(mem.buffer(), crate::pagemap::PageMap::PAGE_FOOTPRINT)?;
    let frame = mem.alloc_page()?;
    system::get().frame_mut(frame).fill(0);
    let page = Page { frame, flags };
    if sys::map_batch(space, slot::POOL, u64::from(frame), vaddr, 1, page.rights()).is_err() {
        mem.drop_unmapped(frame);
        return Err(ProtoError::NoMemory);
    }
    memory.pages.insert(vaddr / PAGE_SIZE, page);
    Ok(frame)
}
