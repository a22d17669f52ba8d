//! Copy-on-write faults the kernel resolves for a pager, as the pager
//! armed it (`CowArm`), with no round trip to the pager.
//!
//! The pager keeps the policy: a frame's hint, in memory the pager
//! writes, says what the pager's own uniqueness check would decide:
//! `HINT_SHARED` (another reference exists; set when a fork shares the
//! frame) or `HINT_SOLE` (the faulting mapping holds the only reference;
//! set when a release leaves one). The kernel only carries it out: on a
//! write to a [`COPY_ON_WRITE`] page of an armed space whose frame has a
//! hint, it clears the hint and either copies the page into a frame of
//! the pager's reserve and maps the copy writable (shared), or gives the
//! page its write right back in place (sole), and logs
//! `(tag, address, frame)` for the pager, which applies the change to its
//! page map and counts at its next request. Anything else (no hint, an
//! empty reserve, a full log, the space running on another CPU, a frame
//! outside the pool) is a fault for the pager, as before. Every copy is
//! traced (`Kind::CowCopy`), every page taken in place too
//! (`Kind::CowReuse`).
//!
//! Nothing the pager writes is trusted: every frame number is checked
//! against the armed PhysRange, which must still exist; a bad value only
//! sends the fault to the pager.

use core::sync::atomic::AtomicU8;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use abi::cap::{ObjectKind, Rights};
use abi::cow::{COW_HINT_FRAMES, COW_HINTS_PER_FRAME, COW_LOG, COW_RESERVE, CowControl, HINT_NONE, HINT_SHARED, HINT_SOLE};
use abi::syscall::{SysError, USER_END};
use trace::{Kind, Record};

use crate::arch::TlbChange;
use crate::arch::paging::{PAGE_SIZE, PageTableFlags as Flags, phys_to_virt};
use crate::capture::{self, category};
use crate::object::{CowArm, ObjRef, PhysRange};

use super::Kernel;
use super::vm::{COPY_ON_WRITE, KERNEL_OWNED, MAY_WRITE};

/// What one resolved fault did, for the log and the trace: the page at
/// `vaddr` now maps pool frame `frame`, a copy or (`in_place`) the same.
struct Resolved {
    vaddr: u64,
    frame: u32,
    in_place: bool,
}

impl Kernel {
    /// `CowArm(space, pool, meta, control_frame, tag)`: see
    /// `abi::syscall::Sysnum::CowArm`. Arming again replaces the arming.
    pub fn cow_arm(&mut self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let [space_slot, pool_slot, meta_slot, control_frame, tag, _] = args;
        let tag = u32::try_from(tag).map_err(|_| SysError::BadArgument)?;
        let (space, _) = self.space(t, space_slot)?;
        let pool = self.writable_range(t, pool_slot)?.0;
        let (meta, meta_range) = self.writable_range(t, meta_slot)?;
        let control = meta_range.paddr(control_frame).ok_or(SysError::BadArgument)?;
        let entry = self.spaces.get_mut(space.index, space.generation).ok_or(SysError::ObjectDeleted)?;
        entry.cow = Some(CowArm { pool, meta, control, tag });
        Ok(0)
    }

    /// The PhysRange in `slot`, with the read and write rights.
    fn writable_range(&self, t: u16, slot: u64) -> Result<(ObjRef, PhysRange), SysError> {
        let cap = self.lookup_as(t, slot, ObjectKind::PhysRange, Rights::READ.union(Rights::WRITE))?;
        let range = self.range_of(cap.obj).ok_or(SysError::ObjectDeleted)?;
        Ok((cap.obj, range))
    }

    fn range_of(&self, range: ObjRef) -> Option<PhysRange> {
        self.phys_ranges.get(range.index, range.generation).copied()
    }

    /// Thread `t`, running on `cpu`, took a write fault at `addr` on a
    /// present page: whether the kernel resolved it (by a copy, or by the
    /// page taken in place).
    pub(super) fn resolve_cow(&mut self, t: u16, cpu: usize, addr: u64) -> bool {
        let Some(space) = self.threads.at(t).and_then(|thread| thread.space()) else { return false };
        let Some((root, Some(arm))) = self.spaces.get(space.index, space.generation).map(|s| (s.root, s.cow)) else { return false };
        let vaddr = addr & !(PAGE_SIZE - 1);
        if vaddr >= USER_END {
            return false;
        }
        let Some((old, flags)) = root.translate(vaddr) else { return false };
        if !flags.contains(COPY_ON_WRITE | MAY_WRITE | Flags::USER_ACCESSIBLE) || flags.intersects(Flags::WRITABLE | KERNEL_OWNED) {
            return false;
        }
        if self.running_elsewhere(root, cpu) {
            return false;
        }
        let (Some(pool), Some(meta)) = (self.range_of(arm.pool), self.range_of(arm.meta)) else { return false };
        // SAFETY: `control` is a frame of a live PhysRange of RAM, which
        // the pager could write (checked by `CowArm`), seen through the
        // direct map; the kernel only reads and writes it with atomics, and
        // trusts none of its values.
        let control = unsafe { &*(phys_to_virt(arm.control) as *const CowControl) };
        let Some(resolved) = resolve(control, pool, meta, old, vaddr) else { return false };
        let writable = (flags | Flags::WRITABLE) & !COPY_ON_WRITE;
        let Some(new) = pool.paddr(u64::from(resolved.frame)) else { return false };
        if root.replace(vaddr, Some((new, writable))).is_err() {
            return false;
        }
        self.shootdown(root, TlbChange::Page(vaddr));
        log(control, arm.tag, &resolved);
        if capture::active() {
            self.trace_resolved(t, &resolved);
        }
        true
    }

    #[cold]
    #[inline(never)]
    fn trace_resolved(&self, t: u16, resolved: &Resolved) {
        let src = self.tref(t);
        let kind = if resolved.in_place { Kind::CowReuse } else { Kind::CowCopy };
        capture::emit(category::FAULT, || Record { src, badge: resolved.vaddr, label: u64::from(resolved.frame), ..Record::empty(kind) });
    }
}

/// Resolves the write fault on the page at `old` as its frame's hint says,
/// if the log has room: in place (sole), or by a copy into a reserve frame
/// (shared) if the reserve has one.
fn resolve(control: &CowControl, pool: PhysRange, meta: PhysRange, old: u64, vaddr: u64) -> Option<Resolved> {
    let log_room = control.log_tail.load(Relaxed).wrapping_sub(control.log_head.load(Acquire)) < COW_LOG as u32;
    let index = pool.frame_of(old)?;
    let hint = hint(control, meta, index)?;
    if !log_room {
        return None;
    }
    match hint.load(Relaxed) {
        HINT_SHARED => copy(control, pool, hint, old, vaddr),
        // Only the pager ever sets it back to sole, so losing this race
        // only sends the fault to the pager.
        HINT_SOLE => hint.compare_exchange(HINT_SOLE, HINT_NONE, AcqRel, Relaxed).ok().map(|_| Resolved {
            vaddr,
            frame: index as u32,
            in_place: true,
        }),
        _ => None,
    }
}

/// Copies the page at `old` into a reserve frame, if the reserve has one:
/// the copy's frame.
fn copy(control: &CowControl, pool: PhysRange, hint: &AtomicU8, old: u64, vaddr: u64) -> Option<Resolved> {
    let head = control.reserve_head.load(Acquire);
    let held = control.reserve_tail.load(Acquire).wrapping_sub(head);
    if held == 0 || held > COW_RESERVE as u32 {
        return None;
    }
    let frame = control.reserve[head as usize % COW_RESERVE].load(Relaxed);
    let new = pool.paddr(u64::from(frame)).filter(|&new| new != old)?;
    // The hint first: one lost to a reserve emptied meanwhile only sends
    // this fault to the pager. Clearing it is always safe; setting it
    // never happens here.
    if hint.compare_exchange(HINT_SHARED, HINT_NONE, AcqRel, Relaxed).is_err() {
        return None;
    }
    control.reserve_head.compare_exchange(head, head.wrapping_add(1), AcqRel, Relaxed).ok()?;
    // SAFETY: both are frames of the pool, in the direct map: `old` is
    // mapped read-only in the faulting space (whose only thread running
    // is this CPU's, stopped in the kernel), `new` was the pager's to give
    // and is mapped nowhere yet.
    unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(old), phys_to_virt(new), PAGE_SIZE as usize) };
    Some(Resolved { vaddr, frame, in_place: false })
}

/// Pool frame `frame`'s hint; the hint frames are frames of `meta`.
fn hint(control: &CowControl, meta: PhysRange, frame: u64) -> Option<&AtomicU8> {
    let count = u64::from(control.hint_frames.load(Relaxed)).min(COW_HINT_FRAMES as u64);
    if frame / COW_HINTS_PER_FRAME >= count {
        return None;
    }
    let first = u64::from(control.hint_first.load(Relaxed));
    meta.paddr(first + count - 1)?;
    let byte = meta.paddr(first)? + frame;
    // SAFETY: a byte of a frame of a live PhysRange of RAM (checked above:
    // the hint frames lie within it), in the direct map; read and written
    // with atomics only.
    Some(unsafe { &*(phys_to_virt(byte) as *const AtomicU8) })
}

/// Appends the copy to the log (the kernel lock makes the kernel its only
/// writer; `copy` checked there is room).
fn log(control: &CowControl, tag: u32, resolved: &Resolved) {
    let tail = control.log_tail.load(Relaxed);
    let record = &control.log[tail as usize % COW_LOG];
    record.vaddr.store(resolved.vaddr, Relaxed);
    record.tag.store(tag, Relaxed);
    record.frame.store(resolved.frame, Relaxed);
    control.log_tail.store(tail.wrapping_add(1), Release);
}
