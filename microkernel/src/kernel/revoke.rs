//! `CapRevoke`: deletes every capability derived from one, in every table,
//! in time bounded by the number of slots, not by the number removed times
//! it, and in bounded work per kernel entry.
//!
//! A capability's id is larger than its parent's (it was derived later; a
//! deletion hands children to the grandparent, whose id is smaller still).
//! So a pass over every slot collects the capabilities with larger ids, a
//! sort puts them in id order, and one walk in that order finds the
//! descendants: a capability is one if its parent is the revoked one or a
//! descendant already found (kept sorted, searched by bisection). They are
//! then emptied without handing children on, since their children go too.
//! Cost: O(S log S) for S slots in use (256 a table, the tables as many as
//! boot sized the pool for), whatever the shape of the tree.
//!
//! **Bounded per entry, with a continuation.** One round (collect, sort,
//! walk, delete) is split over kernel entries: one entry collects from at
//! most [`TABLES_PER_ENTRY`] tables, or does [`SIFTS_PER_ENTRY`] steps of
//! an in-place heap sort, or walks [`WALK_PER_ENTRY`] candidates, or
//! deletes [`BATCH`] descendants (the newest first, so what is left is
//! still one tree under the revoked capability). With more to do, the
//! call restarts: the thread's RIP goes back to its `syscall`
//! instruction, so it leaves the kernel (taking pending interrupts, and
//! the CPU if its slice is over) and enters again to go on. The round's
//! state stays in one scratch, and the count deleted so far in the thread.
//!
//! A round is only trusted if no capability changed between its entries:
//! every insertion, move, and deletion that hands children on counts in
//! `Kernel::cap_changes` (`caps.rs`), and an entry that finds the count
//! moved since the round's last entry (or another revoke in the scratch)
//! starts the round again. A round that ends untouched has seen every
//! descendant, so the revoke ends with it, with no collection to check.
//! After [`MAX_STALE`] stale rounds (a system busy changing capabilities),
//! rounds run in one entry up to their first deletions, as before the
//! split: slower entries, but each deletes, so the revoke ends.

use abi::cap::{CSPACE_SLOTS, Rights};
use abi::syscall::SysError;

use super::Kernel;
use crate::object::thread::Revoking;
use crate::object::{ObjRef, storage};

/// Bytes of the `syscall` instruction (0F 05), which a restart runs again.
const SYSCALL_LENGTH: u64 = 2;

/// One capability seen by the collection pass: id, parent id, where it is.
#[derive(Clone, Copy)]
struct Seen {
    id: u64,
    parent: u64,
    table: u16,
    slot: u16,
}

/// Capabilities one kernel entry deletes at most.
const BATCH: usize = 128;
/// Tables one kernel entry collects from at most.
const TABLES_PER_ENTRY: u16 = 1;
/// Heap-sort steps (one sift-down each) one kernel entry does at most.
const SIFTS_PER_ENTRY: usize = 128;
/// Candidates one kernel entry walks at most.
const WALK_PER_ENTRY: usize = 128;
/// Stale rounds after which a revoke's rounds run in one entry.
const MAX_STALE: u8 = 2;

/// Where a round stands.
#[derive(Clone, Copy)]
enum Phase {
    /// Collecting the capabilities newer than the revoked one into
    /// `seen[..count]`, from table index `next` on.
    Collect { next: u16 },
    /// Heap-sorting `seen[..count]` by id: building the heap (sifting
    /// down below `at`), then moving the largest behind a heap of `at`.
    Sort { building: bool, at: usize },
    /// Walking the candidates from `at` on; `found` descendants so far,
    /// at the front of `seen` (their ids in `doomed`).
    Walk { at: usize, found: usize },
    /// Deleting `seen[..left]`, the newest first.
    Delete { left: usize },
}

/// The revoke's working memory, room for every slot of every table, taken
/// at boot ([`provide`]), and the round under way.
struct Scratch {
    seen: &'static mut [Seen],
    doomed: &'static mut [u64],
    /// The revoke whose round this is: its thread and capability id.
    owner: Option<(ObjRef, u64)>,
    phase: Phase,
    count: usize,
    /// `Kernel::cap_changes` when the round's last entry left.
    changes: u64,
    /// The round runs in one entry up to its first deletions.
    whole: bool,
}

/// What one step of a round did.
enum Step {
    /// Go on in this entry.
    Next,
    /// This entry's share is done (`deleted` descendants).
    Leave { deleted: usize },
    /// The revoke is complete.
    Done { deleted: usize },
}

/// Only taken under the kernel lock, so never contended.
static SCRATCH: spin::Mutex<Scratch> = spin::Mutex::new(Scratch {
    seen: &mut [],
    doomed: &mut [],
    owner: None,
    phase: Phase::Collect { next: 0 },
    count: 0,
    changes: 0,
    whole: false,
});

/// Gives revoke room for `tables` tables' slots; false when RAM has none.
pub fn provide(tables: usize) -> bool {
    let slots = tables * CSPACE_SLOTS;
    let seen = storage::filled(slots, |_| Seen { id: 0, parent: 0, table: 0, slot: 0 });
    let doomed = storage::filled(slots, |_| 0);
    let (Some(seen), Some(doomed)) = (seen, doomed) else { return false };
    let mut scratch = SCRATCH.lock();
    (scratch.seen, scratch.doomed) = (seen, doomed);
    true
}

impl Kernel {
    /// `CapRevoke(slot)`: the capability itself stays; returns how many
    /// were deleted, or `None` when the call must restart to go on.
    pub fn cap_revoke(&mut self, t: u16, slot: u64) -> Result<Option<u64>, SysError> {
        let cap = self.lookup(t, slot)?;
        if !cap.rights.contains(Rights::DERIVE) {
            return Err(SysError::NoRight);
        }
        let me = self.thread_ref(t).ok_or(SysError::BadState)?;
        let (under_way, restartable) = match self.threads.at(t) {
            Some(thread) => (thread.revoking.filter(|r| r.id == cap.id), thread.ctx.saved_at_syscall()),
            None => (None, false),
        };
        let mut revoking = under_way.unwrap_or(Revoking { id: cap.id, deleted: 0, stale: 0 });
        let mut scratch = SCRATCH.lock();
        let ours = under_way.is_some() && scratch.owner == Some((me, cap.id));
        if !ours || scratch.changes != self.cap_changes {
            revoking.stale = revoking.stale.saturating_add(u8::from(under_way.is_some()));
            (scratch.owner, scratch.phase, scratch.count) = (Some((me, cap.id)), Phase::Collect { next: 0 }, 0);
            scratch.whole = !restartable || revoking.stale >= MAX_STALE;
        }
        loop {
            match self.revoke_step(cap.id, &mut scratch) {
                Step::Next => {}
                Step::Leave { deleted } => {
                    revoking.deleted += deleted as u64;
                    if !restartable {
                        continue;
                    }
                    scratch.changes = self.cap_changes;
                    if let Some(thread) = self.threads.at_mut(t) {
                        thread.revoking = Some(revoking);
                        thread.ctx.rip -= SYSCALL_LENGTH;
                    }
                    return Ok(None);
                }
                Step::Done { deleted } => {
                    revoking.deleted += deleted as u64;
                    break;
                }
            }
        }
        scratch.owner = None;
        if let Some(thread) = self.threads.at_mut(t) {
            thread.revoking = None;
        }
        Ok(Some(revoking.deleted))
    }

    /// One step of the round in `scratch` for the capability `id`.
    fn revoke_step(&mut self, id: u64, scratch: &mut Scratch) -> Step {
        let whole = scratch.whole;
        match scratch.phase {
            Phase::Collect { next } => {
                let last = if whole { u16::MAX } else { next.saturating_add(TABLES_PER_ENTRY) };
                let end = self.cspaces.end();
                for (table, cspace) in self.cspaces.iter().filter(|(table, _)| (next..last).contains(table)) {
                    for (slot, cap) in cspace.slots.iter().enumerate() {
                        if let Some(cap) = cap.filter(|c| c.id > id)
                            && let Some(entry) = scratch.seen.get_mut(scratch.count)
                        {
                            *entry = Seen { id: cap.id, parent: cap.parent, table, slot: slot as u16 };
                            scratch.count += 1;
                        }
                    }
                }
                scratch.phase = match last >= end {
                    true => Phase::Sort { building: true, at: scratch.count / 2 },
                    false => Phase::Collect { next: last },
                };
            }
            Phase::Sort { building, at } => {
                let steps = if whole { usize::MAX } else { SIFTS_PER_ENTRY };
                let (building, at) = heap_sort_steps(&mut scratch.seen[..scratch.count], building, at, steps);
                scratch.phase = match !building && at <= 1 {
                    true => Phase::Walk { at: 0, found: 0 },
                    false => Phase::Sort { building, at },
                };
            }
            Phase::Walk { at, found } => {
                let stop = if whole { scratch.count } else { scratch.count.min(at + WALK_PER_ENTRY) };
                let mut found = found;
                for index in at..stop {
                    let candidate = scratch.seen[index];
                    if candidate.parent == id || scratch.doomed[..found].binary_search(&candidate.parent).is_ok() {
                        scratch.doomed[found] = candidate.id;
                        scratch.seen[found] = candidate;
                        found += 1;
                    }
                }
                scratch.phase = match (stop == scratch.count, found) {
                    // Nothing derived from it is left.
                    (true, 0) => return Step::Done { deleted: 0 },
                    (true, _) => Phase::Delete { left: found },
                    (false, _) => Phase::Walk { at: stop, found },
                };
            }
            Phase::Delete { left } => {
                let now = left.min(BATCH);
                for index in (left - now..left).rev() {
                    let seen = scratch.seen[index];
                    self.empty_slot(&seen);
                }
                scratch.phase = Phase::Delete { left: left - now };
                // An untouched round saw every descendant: once its list
                // is deleted, none is left.
                return match left == now {
                    true => Step::Done { deleted: now },
                    false => Step::Leave { deleted: now },
                };
            }
        }
        match whole {
            true => Step::Next,
            false => Step::Leave { deleted: 0 },
        }
    }

    /// Empties the slot `seen` names, if it still holds that capability
    /// (destroying an object may have emptied it already), without handing
    /// its children on: they are being revoked too.
    fn empty_slot(&mut self, seen: &Seen) {
        let Some(generation) = self.cspaces.generation_of(seen.table) else { return };
        let Some(table) = self.cspaces.get_mut(seen.table, generation) else { return };
        let entry = &mut table.slots[usize::from(seen.slot)];
        if entry.is_some_and(|cap| cap.id == seen.id)
            && let Some(cap) = entry.take()
        {
            self.drop_ref(cap.obj);
        }
    }
}

/// Up to `steps` steps of an in-place heap sort of `seen` by id, from the
/// state (`building`, `at`); returns the state after them. Sorted once
/// `building` is false and `at` is at most 1.
fn heap_sort_steps(seen: &mut [Seen], mut building: bool, mut at: usize, steps: usize) -> (bool, usize) {
    for _ in 0..steps {
        if building {
            if at == 0 {
                (building, at) = (false, seen.len());
                continue;
            }
            at -= 1;
            sift_down(seen, at, seen.len());
        } else {
            if at <= 1 {
                break;
            }
            at -= 1;
            seen.swap(0, at);
            sift_down(seen, 0, at);
        }
    }
    (building, at)
}

/// Moves `seen[at]` down the max-heap `seen[..len]` to its place.
fn sift_down(seen: &mut [Seen], mut at: usize, len: usize) {
    loop {
        let mut child = 2 * at + 1;
        if child >= len {
            return;
        }
        if child + 1 < len && seen[child + 1].id > seen[child].id {
            child += 1;
        }
        if seen[at].id >= seen[child].id {
            return;
        }
        seen.swap(at, child);
        at = child;
    }
}
