//! Capability tables: lookup with type and rights checks, and the
//! operations copy, mint, move, delete and revoke.
//!
//! Every capability has an id and the id of the capability it was derived
//! from. Deleting one hands its children to its own parent, so "every
//! capability whose parent is X" always finds X's whole subtree after
//! repeated deletion (revoke, in `revoke.rs`, relies on it). An object dies
//! with the last capability or thread that names it.

use abi::cap::{ObjectKind, Rights};
use abi::syscall::SysError;

use crate::object::thread::State;
use crate::object::{Cap, ObjRef};

use super::Kernel;

impl Kernel {
    /// The capability table of thread `t`.
    pub fn cspace_of(&self, t: u16) -> Result<ObjRef, SysError> {
        self.threads.at(t).and_then(|thread| thread.cspace).ok_or(SysError::BadState)
    }

    fn slot(&self, cspace: ObjRef, slot: u64) -> Result<&Option<Cap>, SysError> {
        let table = self.cspaces.get(cspace.index, cspace.generation).ok_or(SysError::BadState)?;
        usize::try_from(slot).ok().and_then(|s| table.slots.get(s)).ok_or(SysError::BadSlot)
    }

    fn slot_mut(&mut self, cspace: ObjRef, slot: u64) -> Result<&mut Option<Cap>, SysError> {
        let table = self.cspaces.get_mut(cspace.index, cspace.generation).ok_or(SysError::BadState)?;
        usize::try_from(slot).ok().and_then(|s| table.slots.get_mut(s)).ok_or(SysError::BadSlot)
    }

    /// The capability in `slot` of thread `t`'s table.
    pub fn lookup(&self, t: u16, slot: u64) -> Result<Cap, SysError> {
        let cap = (*self.slot(self.cspace_of(t)?, slot)?).ok_or(SysError::EmptySlot)?;
        if !self.alive(cap.obj) {
            return Err(SysError::EmptySlot);
        }
        Ok(cap)
    }

    /// Like [`lookup`](Self::lookup), also checking kind and rights.
    pub fn lookup_as(&self, t: u16, slot: u64, kind: ObjectKind, rights: Rights) -> Result<Cap, SysError> {
        let cap = self.lookup(t, slot)?;
        if cap.obj.kind != kind {
            return Err(SysError::WrongType);
        }
        if !cap.rights.contains(rights) {
            return Err(SysError::NoRight);
        }
        Ok(cap)
    }

    fn new_cap_id(&mut self) -> u64 {
        self.next_cap_id += 1;
        self.next_cap_id
    }

    fn add_ref(&mut self, obj: ObjRef) {
        let (i, g) = (obj.index, obj.generation);
        match obj.kind {
            ObjectKind::Thread => self.threads.add_ref(i, g),
            ObjectKind::AddressSpace => self.spaces.add_ref(i, g),
            ObjectKind::CSpace => self.cspaces.add_ref(i, g),
            ObjectKind::Endpoint => self.endpoints.add_ref(i, g),
            ObjectKind::Notification => self.notifications.add_ref(i, g),
            ObjectKind::PhysRange => self.phys_ranges.add_ref(i, g),
            ObjectKind::Reply => self.replies.add_ref(i, g),
            ObjectKind::IrqLine => self.irq_lines.add_ref(i, g),
            ObjectKind::IoPorts => self.io_ports.add_ref(i, g),
        }
    }

    /// Drops a reference to `obj`, destroying it when it was the last.
    pub fn drop_ref(&mut self, obj: ObjRef) {
        let (i, g) = (obj.index, obj.generation);
        let last = match obj.kind {
            ObjectKind::Thread => self.threads.drop_ref(i, g),
            ObjectKind::AddressSpace => self.spaces.drop_ref(i, g),
            ObjectKind::CSpace => self.cspaces.drop_ref(i, g),
            ObjectKind::Endpoint => self.endpoints.drop_ref(i, g),
            ObjectKind::Notification => self.notifications.drop_ref(i, g),
            ObjectKind::PhysRange => self.phys_ranges.drop_ref(i, g),
            ObjectKind::Reply => self.replies.drop_ref(i, g),
            ObjectKind::IrqLine => self.irq_lines.drop_ref(i, g),
            ObjectKind::IoPorts => self.io_ports.drop_ref(i, g),
        };
        if last {
            self.destroy(obj);
        } else {
            self.reclaim_cycle(obj);
        }
    }

    /// Takes a reference to `obj` that is not a capability (a thread's
    /// address space, table or fault endpoint).
    pub fn hold(&mut self, obj: ObjRef) {
        self.add_ref(obj);
    }

    /// Puts a capability to `obj` into an empty slot.
    pub fn insert_cap(&mut self, cspace: ObjRef, slot: u64, obj: ObjRef, rights: Rights, badge: u64, parent: u64) -> Result<(), SysError> {
        if self.slot(cspace, slot)?.is_some() {
            return Err(SysError::SlotOccupied);
        }
        let id = self.new_cap_id();
        *self.slot_mut(cspace, slot)? = Some(Cap { obj, rights, badge, id, parent, derived: false });
        self.cap_changes += 1;
        self.add_ref(obj);
        Ok(())
    }

    /// Notes that a child of the capability in `slot` was made (it keeps
    /// the mark for good: its children are handed to its parent, which was
    /// marked when it was derived from, so the mark stays true wherever
    /// children may be).
    pub fn mark_derived(&mut self, cspace: ObjRef, slot: u64) {
        if let Ok(Some(cap)) = self.slot_mut(cspace, slot) {
            cap.derived = true;
        }
    }

    /// `CapCopy` and `CapMint`: a child capability with at most the
    /// source's rights, and a new badge when `badge` is given, in the
    /// caller's table or one it holds a writable CSpace capability to.
    pub fn cap_derive(&mut self, t: u16, src: u64, dst_cspace: u64, dst: u64, rights: Rights, badge: Option<u64>) -> Result<u64, SysError> {
        let cap = self.lookup(t, src)?;
        if !cap.rights.contains(Rights::DERIVE) {
            return Err(SysError::NoRight);
        }
        let cspace = match dst_cspace {
            abi::syscall::OWN_CSPACE => self.cspace_of(t)?,
            slot => self.lookup_as(t, slot, ObjectKind::CSpace, Rights::WRITE)?.obj,
        };
        self.insert_cap(cspace, dst, cap.obj, cap.rights.intersect(rights), badge.unwrap_or(cap.badge), cap.id)?;
        self.mark_derived(self.cspace_of(t)?, src);
        Ok(0)
    }

    /// `CapMove`: the same capability, in another slot.
    pub fn cap_move(&mut self, t: u16, src: u64, dst: u64) -> Result<u64, SysError> {
        let cspace = self.cspace_of(t)?;
        self.lookup(t, src)?;
        if self.slot(cspace, dst)?.is_some() {
            return Err(SysError::SlotOccupied);
        }
        let cap = self.slot_mut(cspace, src)?.take();
        *self.slot_mut(cspace, dst)? = cap;
        self.cap_changes += 1;
        Ok(0)
    }

    /// `CapDelete`.
    pub fn cap_delete(&mut self, t: u16, slot: u64) -> Result<u64, SysError> {
        let cspace = self.cspace_of(t)?;
        self.slot(cspace, slot)?.ok_or(SysError::EmptySlot)?;
        self.delete_slot(cspace, slot);
        Ok(0)
    }

    /// Empties a slot, hands the capability's children to its parent, and
    /// drops its reference to the object.
    pub fn delete_slot(&mut self, cspace: ObjRef, slot: u64) {
        let Ok(entry) = self.slot_mut(cspace, slot) else { return };
        let Some(cap) = entry.take() else { return };
        if cap.derived {
            self.cap_changes += 1;
            for (_, table) in self.cspaces.iter_mut() {
                for child in table.slots.iter_mut().flatten().filter(|c| c.parent == cap.id) {
                    child.parent = cap.parent;
                }
            }
        }
        self.drop_ref(cap.obj);
    }

    /// Ends an object whose last reference went away, and gives what it
    /// cost back to the allowance that paid for it.
    fn destroy(&mut self, obj: ObjRef) {
        let (i, g) = (obj.index, obj.generation);
        if let Some(payer) = self.payer_of(obj) {
            self.refund(payer, 1);
        }
        match obj.kind {
            ObjectKind::Thread => self.destroy_thread(obj),
            ObjectKind::Endpoint => {
                self.abort_endpoint(obj);
                self.endpoints.remove(i, g);
            }
            ObjectKind::Notification => {
                self.abort_notification(obj);
                self.notifications.remove(i, g);
            }
            ObjectKind::AddressSpace => {
                if let Some(space) = self.spaces.remove(i, g) {
                    self.release_space(space);
                }
            }
            ObjectKind::CSpace => {
                // Each deletion may change any table: find the next
                // occupied slot afresh each time (a scan of empty slots is
                // cheap; a lookup per slot is not).
                let mut from = 0;
                while let Some(slot) =
                    self.cspaces.get(i, g).and_then(|table| table.slots[from..].iter().position(Option::is_some)).map(|at| from + at)
                {
                    self.delete_slot(obj, slot as u64);
                    from = slot + 1;
                }
                let payer = self.cspaces.payer(i, g);
                if let (Some(table), Some(payer)) = (self.cspaces.remove(i, g), payer) {
                    // What the table was given and did not spend goes back.
                    self.refund(payer, table.allowance);
                }
            }
            ObjectKind::PhysRange => {
                self.phys_ranges.remove(i, g);
            }
            ObjectKind::Reply => {
                let caller = self.replies.remove(i, g).and_then(|reply| reply.caller);
                if let Some(caller) = caller.filter(|c| self.waits_for_reply(*c)) {
                    self.set_result(caller.index, Err(SysError::NoReply));
                    self.make_ready(caller.index);
                }
            }
            ObjectKind::IoPorts => {
                self.io_ports.remove(i, g);
            }
            ObjectKind::IrqLine => {
                if let Some(line) = self.irq_lines.remove(i, g) {
                    crate::arch::irq_route(line.pin, line.mode, true);
                    if let Some((ntfn, _)) = line.target {
                        self.drop_ref(ntfn);
                    }
                }
            }
        }
    }

    /// A dead thread lets go of its table and fault endpoint at once (its
    /// address space stays until the thread is destroyed: a CPU may still
    /// run on it), so a table that names the dead thread is no longer kept
    /// alive by it.
    pub fn release_at_death(&mut self, t: u16) {
        let Some(thread) = self.threads.at_mut(t) else { return };
        let held = [thread.cspace.take(), thread.fault_ep.take().map(|(ep, _)| ep)];
        for held in held.into_iter().flatten() {
            self.drop_ref(held);
        }
    }

    /// A thread with no references left: it stops, leaves every queue, and
    /// lets go of what it held. A thread running on another CPU is marked
    /// dead and reaped by that CPU's next switch.
    fn destroy_thread(&mut self, obj: ObjRef) {
        self.stop_thread(obj.index, State::Dead);
        let Some(thread) = self.threads.get_mut(obj.index, obj.generation) else { return };
        let held = [thread.set_space(None), thread.cspace.take(), thread.fault_ep.take().map(|(ep, _)| ep)];
        let running_elsewhere = self.cpus.iter().any(|cpu| cpu.current == Some(obj.index));
        if !running_elsewhere {
            self.threads.remove(obj.index, obj.generation);
        }
        for held in held.into_iter().flatten() {
            self.drop_ref(held);
        }
    }
}
