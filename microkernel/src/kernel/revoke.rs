//! `CapRevoke`: deletes every capability derived from one, in every table,
//! in time bounded by the number of slots, not by the number removed times
//! it.
//!
//! A capability's id is larger than its parent's (it was derived later; a
//! deletion hands children to the grandparent, whose id is smaller still).
//! So one pass over every slot collects the capabilities with larger ids,
//! a sort puts them in id order, and one walk in that order finds the
//! descendants: a capability is one if its parent is the revoked one or a
//! descendant already found (kept sorted, searched by bisection). They are
//! then emptied without handing children on, since their children go too.
//! Cost: O(S log S) for S slots in use (32 tables of 256 slots at most),
//! whatever the shape of the tree.
//!
//! One kernel entry deletes at most [`BATCH`] of them, the newest first (a
//! capability's descendants are newer, so what is left is still one tree
//! under the revoked capability); with more left, the call restarts: the
//! thread's RIP goes back to its `syscall` instruction, so it leaves the
//! kernel (taking pending interrupts, and the CPU if its slice is over)
//! and enters again to go on. The list found stays in the scratch for the
//! entries that follow, so only the first sorts; once it is used up, one
//! more entry collects afresh (another thread may have derived from, or
//! moved, a descendant meanwhile) and goes on with what it finds, or
//! ends. The count deleted so far stays in the thread, and the last entry
//! returns the total.

use abi::cap::{CSPACE_SLOTS, Rights};
use abi::syscall::SysError;

use super::{Kernel, MAX_CSPACES};
use crate::object::ObjRef;

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

/// Room for every slot of every table.
const ROOM: usize = MAX_CSPACES * CSPACE_SLOTS;

/// The revoke's working memory (256 KiB, too much for a kernel stack).
struct Scratch {
    seen: [Seen; ROOM],
    doomed: [u64; ROOM],
    /// The restarted revoke whose descendants still to delete are
    /// `seen[..left]`: its thread and capability id.
    owner: Option<(ObjRef, u64)>,
    left: usize,
}

/// Only taken under the kernel lock, so never contended.
static SCRATCH: spin::Mutex<Scratch> =
    spin::Mutex::new(Scratch { seen: [Seen { id: 0, parent: 0, table: 0, slot: 0 }; ROOM], doomed: [0; ROOM], owner: None, left: 0 });

impl Kernel {
    /// `CapRevoke(slot)`: the capability itself stays; returns how many
    /// were deleted, or `None` when the call must restart to go on.
    pub fn cap_revoke(&mut self, t: u16, slot: u64) -> Result<Option<u64>, SysError> {
        let cap = self.lookup(t, slot)?;
        if !cap.rights.contains(Rights::DERIVE) {
            return Err(SysError::NoRight);
        }
        let me = self.thread_ref(t).ok_or(SysError::BadState)?;
        let (so_far, restartable) = match self.threads.at(t) {
            Some(thread) => (thread.revoking.filter(|r| r.0 == cap.id).map_or(0, |r| r.1), thread.ctx.saved_at_syscall()),
            None => (0, false),
        };
        let mut scratch = SCRATCH.lock();
        let resumed = so_far > 0 && scratch.owner == Some((me, cap.id));
        scratch.owner = None;
        let (mut left, fresh) = match resumed && scratch.left > 0 {
            true => (scratch.left, false),
            false => (self.find_descendants(cap.id, &mut scratch), true),
        };
        let mut total = so_far;
        loop {
            let now = left.min(BATCH);
            for seen in scratch.seen[left - now..left].iter().rev() {
                self.empty_slot(seen);
            }
            (left, total) = (left - now, total + now as u64);
            // Done once a fresh list is used up; a kept one is checked
            // against a fresh collection first.
            let done = left == 0 && (fresh || now == 0);
            match (done, restartable) {
                (true, _) => break,
                (false, true) => {
                    (scratch.owner, scratch.left) = (Some((me, cap.id)), left);
                    if let Some(thread) = self.threads.at_mut(t) {
                        thread.revoking = Some((cap.id, total));
                        thread.ctx.rip -= SYSCALL_LENGTH;
                    }
                    return Ok(None);
                }
                (false, false) if left == 0 => left = self.find_descendants(cap.id, &mut scratch),
                (false, false) => {}
            }
        }
        if let Some(thread) = self.threads.at_mut(t) {
            thread.revoking = None;
        }
        Ok(Some(total))
    }

    /// Leaves the descendants of capability `id` at the front of
    /// `scratch.seen`; returns how many there are.
    fn find_descendants(&self, id: u64, scratch: &mut Scratch) -> usize {
        let mut count = 0;
        for (table, cspace) in self.cspaces.iter() {
            for (slot, cap) in cspace.slots.iter().enumerate() {
                if let Some(cap) = cap.filter(|c| c.id > id) {
                    scratch.seen[count] = Seen { id: cap.id, parent: cap.parent, table, slot: slot as u16 };
                    count += 1;
                }
            }
        }
        let seen = &mut scratch.seen[..count];
        seen.sort_unstable_by_key(|s| s.id);
        let mut found = 0;
        for index in 0..count {
            let candidate = seen[index];
            if candidate.parent == id || scratch.doomed[..found].binary_search(&candidate.parent).is_ok() {
                scratch.doomed[found] = candidate.id;
                seen[found] = candidate;
                found += 1;
            }
        }
        found
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
