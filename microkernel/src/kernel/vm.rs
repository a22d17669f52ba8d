//! The memory system calls: map a batch of frames from a PhysRange, unmap,
//! protect, query, and share copy-on-write, with a TLB shootdown whenever
//! rights shrink. The kernel never chooses a frame for user space; the only
//! frames it owns in a user space are those it loaded init from (marked
//! [`KERNEL_OWNED`]) and the page tables, which count against the space.

use abi::cap::{ObjectKind, Rights};
use abi::syscall::{SysError, USER_END};

use crate::arch::TlbChange;
use crate::arch::paging::{MapError, PAGE_SIZE, PageTable, PageTableFlags as Flags, Root, phys_to_virt, raw_entries, table_index};
use crate::mm::frame;
use crate::object::{ObjRef, PhysRange, Space};

use super::Kernel;

/// A leaf mapping whose frame the kernel allocated (init's image).
pub const KERNEL_OWNED: Flags = Flags::BIT_9;
/// A leaf mapping whose authority allows writing: the PhysRange it was
/// mapped from had the write right (or the kernel owns the frame). `Protect`
/// makes a page writable only where this bit is set, so rights never exceed
/// those of the capability that authorised the mapping.
pub const MAY_WRITE: Flags = Flags::BIT_10;
/// A read-only leaf mapping that `ShareCow` took the write right from: a
/// write to it may be served by a copy (`kernel::cow`, for an armed space).
/// `Remap` and `Protect` set a mapping's rights anew, without it.
pub const COPY_ON_WRITE: Flags = Flags::BIT_11;
/// The write bit of a raw entry, and how far it is below [`COPY_ON_WRITE`].
const WRITABLE: u64 = Flags::WRITABLE.bits();
const COW_FROM_WRITABLE: u32 = COPY_ON_WRITE.bits().trailing_zeros() - WRITABLE.trailing_zeros();
/// Most pages one call may cover.
const MAX_BATCH: u64 = abi::syscall::MAP_BATCH_MAX;

/// Kernel pointer to user address `vaddr` in `root`, if mapped for user
/// access (and writable when `write`).
pub fn user_pointer(root: Root, vaddr: u64, write: bool) -> Option<*mut u8> {
    if vaddr >= USER_END {
        return None;
    }
    let (paddr, flags) = root.translate(vaddr)?;
    let mut required = Flags::PRESENT | Flags::USER_ACCESSIBLE;
    if write {
        required |= Flags::WRITABLE;
    }
    flags.contains(required).then(|| phys_to_virt(paddr))
}

fn map_error(error: MapError) -> SysError {
    match error {
        MapError::Misaligned => SysError::BadArgument,
        MapError::AlreadyMapped => SysError::AlreadyMapped,
        MapError::NotMapped => SysError::NotMapped,
        MapError::LargePage => SysError::BadArgument,
        MapError::OutOfFrames => SysError::OutOfKernelMemory,
    }
}

/// Page-table rights for mapping rights (READ always, WRITE, GRANT = execute).
fn page_flags(rights: Rights) -> Flags {
    let mut flags = Flags::USER_ACCESSIBLE;
    if rights.contains(Rights::WRITE) {
        flags |= Flags::WRITABLE;
    }
    if !rights.contains(Rights::GRANT) {
        flags |= Flags::NO_EXECUTE;
    }
    flags
}

/// Checks a user range of `count` pages at `vaddr`.
fn user_range(vaddr: u64, count: u64) -> Result<core::iter::StepBy<core::ops::Range<u64>>, SysError> {
    if !vaddr.is_multiple_of(PAGE_SIZE) || count == 0 || count > MAX_BATCH {
        return Err(SysError::BadArgument);
    }
    let end = count.checked_mul(PAGE_SIZE).and_then(|len| vaddr.checked_add(len)).ok_or(SysError::BadAddress)?;
    if end > USER_END {
        return Err(SysError::BadAddress);
    }
    Ok((vaddr..end).step_by(PAGE_SIZE as usize))
}

impl Kernel {
    pub(super) fn space(&self, t: u16, slot: u64) -> Result<(ObjRef, Root), SysError> {
        let cap = self.lookup_as(t, slot, ObjectKind::AddressSpace, Rights::WRITE)?;
        let space = self.spaces.get(cap.obj.index, cap.obj.generation).ok_or(SysError::ObjectDeleted)?;
        Ok((cap.obj, space.root))
    }

    /// Maps with page tables charged to `space`.
    fn map_charged(&mut self, space: ObjRef, vaddr: u64, paddr: u64, flags: Flags) -> Result<(), SysError> {
        let Some(entry) = self.spaces.get_mut(space.index, space.generation) else { return Err(SysError::ObjectDeleted) };
        let root = entry.root;
        let mut pages = entry.table_pages;
        let mut tables = || {
            if pages >= Space::TABLE_PAGE_LIMIT {
                return None;
            }
            pages += 1;
            frame::alloc_zeroed()
        };
        let result = root.map(vaddr, paddr, flags, &mut tables).map_err(map_error);
        if let Some(entry) = self.spaces.get_mut(space.index, space.generation) {
            entry.table_pages = pages;
        }
        result
    }

    /// Frame `first_frame` onwards (`count` of them) of the PhysRange in
    /// `range_slot`, checked for `rights`: the physical address of the
    /// first, and the ceiling its mappings get ([`MAY_WRITE`] when the
    /// capability allows writing).
    fn range_frames(&self, t: u16, range_slot: u64, first_frame: u64, count: u64, rights: Rights) -> Result<(u64, Flags), SysError> {
        let mut needed = Rights::READ;
        if rights.contains(Rights::WRITE) {
            needed = needed.union(Rights::WRITE);
        }
        let range_cap = self.lookup_as(t, range_slot, ObjectKind::PhysRange, needed)?;
        let range = self.phys_ranges.get(range_cap.obj.index, range_cap.obj.generation).ok_or(SysError::ObjectDeleted)?;
        let last = first_frame.checked_add(count).ok_or(SysError::BadArgument)?;
        if last > range.frames {
            return Err(SysError::BadArgument);
        }
        let ceiling = if range_cap.rights.contains(Rights::WRITE) { MAY_WRITE } else { Flags::empty() };
        Ok((range.base + first_frame * PAGE_SIZE, ceiling))
    }

    /// `MapBatch(space, phys_range, first_frame, vaddr, count, rights)`:
    /// all pages or none.
    pub fn map_batch(&mut self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let [space_slot, range_slot, first_frame, vaddr, count, rights] = args;
        let rights = Rights(u8::try_from(rights).map_err(|_| SysError::BadArgument)?);
        let (space, root) = self.space(t, space_slot)?;
        let (base, ceiling) = self.range_frames(t, range_slot, first_frame, count, rights)?;
        let pages = user_range(vaddr, count)?;
        if pages.clone().any(|page| root.translate(page).is_some()) {
            return Err(SysError::AlreadyMapped);
        }
        for (i, page) in pages.clone().enumerate() {
            if let Err(error) = self.map_charged(space, page, base + i as u64 * PAGE_SIZE, page_flags(rights) | ceiling) {
                for done in pages.take(i) {
                    let _ = root.take(done);
                }
                return Err(error);
            }
        }
        Ok(count)
    }

    /// `Remap(space, phys_range, frame, vaddr, rights)`: the mapped page at
    /// `vaddr` maps frame `frame` of the PhysRange from now on, with
    /// `rights`. A copy-on-write fault's unmap and map in one call and one
    /// walk, with one page flushed where the space is loaded (usually
    /// nowhere: its thread waits for the pager).
    pub fn remap(&mut self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let [space_slot, range_slot, frame_index, vaddr, rights, _] = args;
        let rights = Rights(u8::try_from(rights).map_err(|_| SysError::BadArgument)?);
        let (_, root) = self.space(t, space_slot)?;
        let (paddr, ceiling) = self.range_frames(t, range_slot, frame_index, 1, rights)?;
        let _ = user_range(vaddr, 1)?;
        let (old, flags) = root.replace(vaddr, Some((paddr, page_flags(rights) | ceiling))).map_err(map_error)?;
        self.shootdown(root, TlbChange::Page(vaddr));
        if flags.contains(KERNEL_OWNED) {
            let _ = frame::free(old);
        }
        Ok(0)
    }

    /// `Unmap(space, vaddr, count)`: every page must be mapped.
    pub fn unmap(&mut self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let (_, root) = self.space(t, args[0])?;
        let pages = user_range(args[1], args[2])?;
        if pages.clone().any(|page| root.translate(page).is_none()) {
            return Err(SysError::NotMapped);
        }
        let mut owned = heapless::Vec::<u64, { MAX_BATCH as usize }>::new();
        for page in pages {
            if let Ok((paddr, flags)) = root.take(page)
                && flags.contains(KERNEL_OWNED)
            {
                let _ = owned.push(paddr);
            }
        }
        self.shootdown(root, change_of(args[1], args[2]));
        // Kernel-owned frames are never shared (ShareCow refuses them), so
        // once no TLB holds them they are free.
        for &paddr in &owned {
            let _ = frame::free(paddr);
        }
        Ok(args[2])
    }

    /// `Protect(space, vaddr, count, rights)`: every page must be mapped,
    /// and may become writable only where the PhysRange it was mapped from
    /// allowed writing ([`MAY_WRITE`]); all pages or none.
    pub fn protect(&mut self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let (_, root) = self.space(t, args[0])?;
        let rights = Rights(u8::try_from(args[3]).map_err(|_| SysError::BadArgument)?);
        let pages = user_range(args[1], args[2])?;
        for page in pages.clone() {
            let (_, current) = root.translate(page).ok_or(SysError::NotMapped)?;
            if rights.contains(Rights::WRITE) && !current.intersects(MAY_WRITE | KERNEL_OWNED) {
                return Err(SysError::NoRight);
            }
        }
        for page in pages {
            let (_, current) = root.translate(page).ok_or(SysError::NotMapped)?;
            root.protect(page, page_flags(rights) | (current & (KERNEL_OWNED | MAY_WRITE))).map_err(map_error)?;
        }
        self.shootdown(root, change_of(args[1], args[2]));
        Ok(args[2])
    }

    /// `Query(space, vaddr)`: physical address of the page, with the
    /// mapping's rights (as `Rights` bits) in the low 12 bits.
    pub fn query(&self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let cap = self.lookup_as(t, args[0], ObjectKind::AddressSpace, Rights::READ)?;
        let root = self.spaces.get(cap.obj.index, cap.obj.generation).ok_or(SysError::ObjectDeleted)?.root;
        if args[1] >= USER_END {
            return Err(SysError::BadAddress);
        }
        let (paddr, flags) = root.translate(args[1] & !(PAGE_SIZE - 1)).ok_or(SysError::NotMapped)?;
        let mut rights = Rights::READ;
        if flags.contains(Flags::WRITABLE) {
            rights = rights.union(Rights::WRITE);
        }
        if !flags.contains(Flags::NO_EXECUTE) {
            rights = rights.union(Rights::GRANT);
        }
        Ok(paddr | u64::from(rights.0))
    }

    /// `PhysRangeCarve(range, first_frame, frames, dst)`: a new PhysRange over
    /// `frames` frames of the source from `first_frame`, whose capability is
    /// a child of the source's (so revoking the source takes it away), with
    /// the source's rights. The kernel keeps no record of who uses which
    /// frames: carving hands out authority, not memory.
    pub fn phys_range_carve(&mut self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let [range_slot, first, frames, dst, _, _] = args;
        let cap = self.lookup_as(t, range_slot, ObjectKind::PhysRange, Rights::DERIVE)?;
        let range = self.phys_ranges.get(cap.obj.index, cap.obj.generation).ok_or(SysError::ObjectDeleted)?;
        let end = first.checked_add(frames).ok_or(SysError::BadArgument)?;
        if frames == 0 || end > range.frames {
            return Err(SysError::BadArgument);
        }
        let carved = PhysRange { base: range.base + first * PAGE_SIZE, frames };
        let cspace = self.cspace_of(t)?;
        let payer = self.charge(t)?;
        let (index, generation) = self.phys_ranges.insert(carved).inspect_err(|_| self.refund(payer, 1))?;
        let obj = ObjRef { kind: ObjectKind::PhysRange, index, generation };
        self.set_payer(obj, payer);
        if let Err(error) = self.insert_cap(cspace, dst, obj, cap.rights, 0, cap.id) {
            self.drop_ref(obj);
            return Err(error);
        }
        self.mark_derived(cspace, range_slot);
        Ok(0)
    }

    /// `ShareCow(src, dst, vaddr, count)`: every mapped page of the range in
    /// `src` becomes read-only there and is mapped read-only at the same
    /// address in `dst`, marked [`COPY_ON_WRITE`] in both if it was
    /// writable; all pages or none. Kernel-owned frames cannot be
    /// shared. It works a last-level table (2 MiB) at a time, in two tight
    /// passes over its entries (check, then share): a fork of thousands of
    /// pages is this call's loop.
    pub fn share_cow(&mut self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let (_, src) = self.space(t, args[0])?;
        let (dst_obj, dst) = self.space(t, args[1])?;
        // The range's checks; the pages are walked a table at a time below.
        let _ = user_range(args[2], args[3])?;
        for (start, slots) in table_chunks(args[2], args[3]) {
            let Some(src_table) = src.leaf_table(start, None) else { continue };
            let src_words = raw_entries(src_table);
            // Without a branch per entry: a kernel-owned frame among them?
            if slots.clone().fold(0, |any, index| any | src_words[index]) & KERNEL_OWNED.bits() != 0 {
                return Err(SysError::BadArgument);
            }
            if let Some(dst_table) = dst.leaf_table(start, None) {
                let dst_words = raw_entries(dst_table);
                if slots.into_iter().any(|index| src_words[index] != 0 && dst_words[index] != 0) {
                    return Err(SysError::AlreadyMapped);
                }
            }
        }
        let mut shared = 0;
        for (start, slots) in table_chunks(args[2], args[3]) {
            let Some(src_table) = src.leaf_table(start, None) else { continue };
            if slots.clone().all(|index| src_table[index].is_unused()) {
                continue;
            }
            let (src_words, dst_words) = (raw_entries(src_table), raw_entries(self.leaf_table_charged(dst_obj, dst, start)?));
            for index in slots {
                let entry = src_words[index];
                if entry == 0 {
                    continue;
                }
                // Branch-free: the write bit moves to the copy-on-write bit
                // (adding it 2^10 - 1 times over).
                let shared_entry = entry + (entry & WRITABLE) * ((1 << COW_FROM_WRITABLE) - 1);
                src_words[index] = shared_entry;
                dst_words[index] = shared_entry;
                shared += 1;
            }
        }
        self.shootdown(src, TlbChange::Many);
        Ok(shared)
    }

    /// The last-level table of `root` around `vaddr`, with any tables it
    /// needs charged to `space`.
    fn leaf_table_charged(&mut self, space: ObjRef, root: Root, vaddr: u64) -> Result<&'static mut PageTable, SysError> {
        let Some(entry) = self.spaces.get_mut(space.index, space.generation) else { return Err(SysError::ObjectDeleted) };
        let mut pages = entry.table_pages;
        let mut tables = || {
            if pages >= Space::TABLE_PAGE_LIMIT {
                return None;
            }
            pages += 1;
            frame::alloc_zeroed()
        };
        let table = root.leaf_table(vaddr, Some(&mut tables));
        if let Some(entry) = self.spaces.get_mut(space.index, space.generation) {
            entry.table_pages = pages;
        }
        table.ok_or(SysError::OutOfKernelMemory)
    }
}

/// The flush a change of `count` pages at `vaddr` needs.
fn change_of(vaddr: u64, count: u64) -> TlbChange {
    if count == 1 { TlbChange::Page(vaddr) } else { TlbChange::Many }
}

/// The pieces of the `count` pages at `vaddr` (already checked by
/// `user_range`) that each lie within one last-level table: the piece's
/// first address, and its entries' indices in that table.
fn table_chunks(vaddr: u64, count: u64) -> impl Iterator<Item = (u64, core::ops::Range<usize>)> {
    const TABLE_SPAN: u64 = 512 * PAGE_SIZE;
    let end = vaddr + count * PAGE_SIZE;
    let mut start = vaddr;
    core::iter::from_fn(move || {
        if start >= end {
            return None;
        }
        let piece_end = ((start / TABLE_SPAN) + 1).saturating_mul(TABLE_SPAN).min(end);
        let first = table_index(start, 1);
        let piece = (start, first..first + ((piece_end - start) / PAGE_SIZE) as usize);
        start = piece_end;
        Some(piece)
    })
}
