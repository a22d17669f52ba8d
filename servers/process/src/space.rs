//! A process's memory as its server sees it: which frame backs each mapped
//! page and whether it is shared copy-on-write, and the regions where a
//! fault gets a fresh zeroed page (heap, stack, anonymous mappings).

use alloc::collections::BTreeMap;

use abi::cap::Rights;
use proto::ProtoError;
use rt::mem::PAGE_SIZE;
use rt::process::{IPC_BUFFER, STACK_PAGES, STACK_TOP};

use crate::pagemap::PageMap;

/// Most heap a process may have.
pub const HEAP_MAX: u64 = 1 << 32;
/// Pages of anonymous memory a process may have reserved at once: 8 GiB,
/// more than the machine has (a process that touches more than there is
/// is ended with `STATUS_NO_MEMORY`), far less than the 2^32 pages a
/// request can name.
pub const MAX_RESERVED_PAGES: u64 = 1 << 21;
/// Anonymous mappings a process may have at once.
pub const MAX_MAPPINGS: usize = 1024;
/// Where anonymous mappings go.
const MMAP_BASE: u64 = 0x0000_1000_0000_0000;
const MMAP_END: u64 = 0x0000_6000_0000_0000;

/// One mapped page.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub frame: u32,
    pub flags: u8,
}

impl Page {
    /// The frame is shared copy-on-write (counted in the table).
    pub const SHARED: u8 = 1;
    /// The page may be written (once copied, if shared).
    pub const WRITABLE: u8 = 2;
    pub const EXECUTABLE: u8 = 4;

    pub fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The rights to map it with: writable only if not shared.
    pub fn rights(&self) -> Rights {
        let mut rights = Rights::READ;
        if self.is(Self::WRITABLE) && !self.is(Self::SHARED) {
            rights = rights.union(Rights::WRITE);
        }
        if self.is(Self::EXECUTABLE) {
            rights = rights.union(Rights::GRANT);
        }
        rights
    }
}

#[derive(Default)]
pub struct AddrSpace {
    /// Page number (address / 4096) to page.
    pub pages: PageMap,
    pub heap_start: u64,
    pub heap_end: u64,
    /// Anonymous mappings: start to end.
    pub mmaps: BTreeMap<u64, u64>,
    mmap_next: u64,
}

impl AddrSpace {
    /// An empty space whose heap starts at `heap_start`.
    pub fn new(heap_start: u64) -> Self {
        Self { pages: PageMap::default(), heap_start, heap_end: heap_start, mmaps: BTreeMap::new(), mmap_next: MMAP_BASE }
    }

    /// The regions of this space, without its pages (for a fork's child).
    pub fn clone_layout(&self) -> Self {
        Self {
            pages: PageMap::default(),
            heap_start: self.heap_start,
            heap_end: self.heap_end,
            mmaps: self.mmaps.clone(),
            mmap_next: self.mmap_next,
        }
    }

    /// Whether a fault at `addr` gets a fresh zeroed page.
    pub fn demand_zero(&self, addr: u64) -> bool {
        let stack = STACK_TOP - STACK_PAGES * PAGE_SIZE..STACK_TOP;
        (self.heap_start..self.heap_end).contains(&addr)
            || stack.contains(&addr)
            || self.mmaps.range(..=addr).next_back().is_some_and(|(_, &end)| addr < end)
    }

    /// Reserves `pages` pages of anonymous memory, with a guard page
    /// after. `LimitReached` past the process's quota of reserved pages or
    /// of mappings (each mapping is a record in our heap), `NoMemory` once
    /// the range for mappings is used up.
    pub fn mmap(&mut self, pages: u64) -> Result<u64, ProtoError> {
        let reserved: u64 = self.mmaps.iter().map(|(start, end)| (end - start) / PAGE_SIZE).sum();
        if self.mmaps.len() >= MAX_MAPPINGS || reserved.saturating_add(pages) > MAX_RESERVED_PAGES {
            return Err(ProtoError::LimitReached);
        }
        let start = self.mmap_next;
        let end = start.checked_add(pages * PAGE_SIZE).filter(|end| end + PAGE_SIZE <= MMAP_END).ok_or(ProtoError::NoMemory)?;
        self.mmaps.insert(start, end);
        self.mmap_next = end + PAGE_SIZE;
        Ok(start)
    }

    /// Removes `[start, end)` from the anonymous mappings; false unless it
    /// lies within one.
    pub fn munmap(&mut self, start: u64, end: u64) -> bool {
        let Some((&region_start, &region_end)) = self.mmaps.range(..=start).next_back() else { return false };
        if end > region_end {
            return false;
        }
        self.mmaps.remove(&region_start);
        if region_start < start {
            self.mmaps.insert(region_start, start);
        }
        if end < region_end {
            self.mmaps.insert(end, region_end);
        }
        true
    }

    /// Takes out the pages in `[start, end)`.
    pub fn take_range(&mut self, start: u64, end: u64) -> PageMap {
        self.pages.take_range(start / PAGE_SIZE, end.div_ceil(PAGE_SIZE))
    }
}

/// The page every process has its own copy of, never shared: the kernel
/// writes replies into it.
pub const IPC_PAGE: u64 = IPC_BUFFER / PAGE_SIZE;
