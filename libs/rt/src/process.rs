//! Starting a program from an ELF executable in an address space of its
//! own, from user space: the caller provides the frames (a [`PageSource`])
//! and the capability slots; the kernel only maps. Each PT_LOAD segment gets
//! fresh, zeroed frames, filled through a temporary window in the caller's
//! own space, then mapped into the new space with the segment's rights.

use abi::cap::{ObjectKind, Rights};
use abi::syscall::{SysError, USER_END};
use elf::ElfBytes;
use elf::abi::{PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;

use crate::mem::{PAGE_SIZE, PageSource};
use crate::sys::{self, Slot, ThreadConfig};

/// Stack pages of a spawned program, under `USER_END` with a guard page.
pub const STACK_PAGES: u64 = 16;
/// One past the top of a program's stack (a guard page lies above).
pub const STACK_TOP: u64 = USER_END - PAGE_SIZE;
/// Where a spawned program finds its IPC buffer: the page under its stack's
/// guard page.
pub const IPC_BUFFER: u64 = STACK_TOP - (STACK_PAGES + 2) * PAGE_SIZE;

/// Why a program could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// The file is not a static x86_64 executable.
    NotExecutable,
    /// A segment lies outside the user half or is inconsistent.
    BadSegment(u64),
    Sys(SysError),
}

impl From<SysError> for SpawnError {
    fn from(error: SysError) -> Self {
        Self::Sys(error)
    }
}

/// The capability slots (in the caller's table) that will name the new
/// program's address space, table and thread.
#[derive(Clone, Copy, Debug)]
pub struct Slots {
    pub space: Slot,
    pub cspace: Slot,
    pub thread: Slot,
}

/// A loaded program whose thread has not started yet, so the caller can
/// give it capabilities first.
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    pub slots: Slots,
    entry: u64,
}

impl Prepared {
    /// Starts the program's thread with `arg` in `rdi`.
    pub fn start(self, arg: u64) -> Result<(), SysError> {
        self.start_with([arg, 0, 0])
    }

    /// Starts the program's thread with `rdi`, `rsi`, `rdx` set to `args`.
    pub fn start_with(self, args: [u64; 3]) -> Result<(), SysError> {
        // The ABI wants rsp + 8 aligned to 16 at function entry.
        sys::thread_start_with(self.slots.thread, self.entry, STACK_TOP - 8, args)
    }
}

/// Creates the address space, table and thread in `slots` and loads `elf`;
/// the thread will run at `priority` on `cpu` once [`Prepared::start`]ed,
/// its faults and its exit reported to `fault_endpoint` (a slot of the
/// caller's table) if one is given.
pub fn prepare(
    elf: &[u8],
    pages: &PageSource,
    slots: Slots,
    priority: u8,
    cpu: u16,
    fault_endpoint: Option<Slot>,
) -> Result<Prepared, SpawnError> {
    sys::create(ObjectKind::AddressSpace, slots.space)?;
    sys::create(ObjectKind::CSpace, slots.cspace)?;
    let entry = load(elf, pages, slots.space)?;
    let stack = STACK_TOP - STACK_PAGES * PAGE_SIZE;
    let rw = Rights::READ.union(Rights::WRITE);
    place(pages, slots.space, stack, STACK_PAGES, &[], rw)?;
    place(pages, slots.space, IPC_BUFFER, 1, &[], rw)?;
    sys::create(ObjectKind::Thread, slots.thread)?;
    let config = ThreadConfig { space: slots.space, cspace: slots.cspace, ipc_buffer: IPC_BUFFER, fault_endpoint, priority, cpu };
    sys::thread_configure(slots.thread, &config)?;
    Ok(Prepared { slots, entry })
}

/// The pages of `elf`'s first executable segment once loaded: its first
/// page's address and how many pages it spans.
pub fn code_pages(elf: &[u8]) -> Result<(u64, u64), SpawnError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(elf).map_err(|_| SpawnError::NotExecutable)?;
    let segments = file.segments().ok_or(SpawnError::NotExecutable)?;
    let code = segments.iter().find(|s| s.p_type == PT_LOAD && s.p_flags & PF_X != 0).ok_or(SpawnError::NotExecutable)?;
    let start = code.p_vaddr & !(PAGE_SIZE - 1);
    let end = code.p_vaddr.checked_add(code.p_memsz).ok_or(SpawnError::BadSegment(code.p_vaddr))?.next_multiple_of(PAGE_SIZE);
    Ok((start, (end - start) / PAGE_SIZE))
}

/// Maps every PT_LOAD segment of `elf` into `space`; returns the entry point.
pub fn load(elf: &[u8], pages: &PageSource, space: Slot) -> Result<u64, SpawnError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(elf).map_err(|_| SpawnError::NotExecutable)?;
    if file.ehdr.e_type != elf::abi::ET_EXEC {
        return Err(SpawnError::NotExecutable);
    }
    let segments = file.segments().ok_or(SpawnError::NotExecutable)?;
    for segment in segments.iter().filter(|s| s.p_type == PT_LOAD) {
        let bad = SpawnError::BadSegment(segment.p_vaddr);
        let start = segment.p_vaddr & !(PAGE_SIZE - 1);
        let end = segment.p_vaddr.checked_add(segment.p_memsz).ok_or(bad)?.next_multiple_of(PAGE_SIZE);
        let bytes = usize::try_from(segment.p_offset)
            .ok()
            .zip(usize::try_from(segment.p_filesz).ok())
            .and_then(|(offset, len)| elf.get(offset..offset.checked_add(len)?))
            .ok_or(bad)?;
        if end > IPC_BUFFER || segment.p_filesz > segment.p_memsz {
            return Err(bad);
        }
        let mut rights = Rights::READ;
        if segment.p_flags & PF_W != 0 {
            rights = rights.union(Rights::WRITE);
        }
        if segment.p_flags & PF_X != 0 {
            rights = rights.union(Rights::GRANT);
        }
        let contents = Contents { offset: segment.p_vaddr - start, bytes };
        place(pages, space, start, (end - start) / PAGE_SIZE, &[contents], rights)?;
    }
    Ok(file.ehdr.e_entry)
}

/// Bytes to put at `offset` from the start of a run of pages.
struct Contents<'a> {
    offset: u64,
    bytes: &'a [u8],
}

/// Takes `count` fresh frames, zeroes them and fills in `contents` through a
/// window in the caller's space, then maps them at `vaddr` in `space`.
fn place(pages: &PageSource, space: Slot, vaddr: u64, count: u64, contents: &[Contents], rights: Rights) -> Result<(), SpawnError> {
    let frame = pages.frames(count);
    let window = pages.window(count);
    let len = (count * PAGE_SIZE) as usize;
    sys::map_batch(pages.space(), pages.range(), frame, window, count, Rights::READ.union(Rights::WRITE))?;
    // SAFETY: the window was just mapped writable for this call alone.
    let target = unsafe { core::slice::from_raw_parts_mut(window as *mut u8, len) };
    target.fill(0);
    for part in contents {
        let at = part.offset as usize;
        target[at..at + part.bytes.len()].copy_from_slice(part.bytes);
    }
    sys::unmap(pages.space(), window, count)?;
    sys::map_batch(space, pages.range(), frame, vaddr, count, rights)?;
    Ok(())
}
