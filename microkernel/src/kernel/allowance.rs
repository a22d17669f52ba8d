//! Allowances: who pays for kernel objects. Every object a thread creates
//! (`Create`, `PhysRangeCarve`, `ReplySave`) is charged to the capability
//! table it runs in, and returned to that table when the object is
//! destroyed. A new table has no allowance; init's has no bound, and it
//! hands parts of it to the tables it creates with `Allowance`. So a
//! process can exhaust only what it was given, as seL4's untyped memory
//! bounds what a process can retype.

use abi::cap::{ObjectKind, Rights};
use abi::syscall::{OWN_CSPACE, SysError};

use crate::object::ObjRef;

use super::Kernel;

impl Kernel {
    /// Takes one object from thread `t`'s table's allowance; the table to
    /// record as the object's payer.
    pub fn charge(&mut self, t: u16) -> Result<ObjRef, SysError> {
        let cspace = self.cspace_of(t)?;
        let table = self.cspaces.get_mut(cspace.index, cspace.generation).ok_or(SysError::BadState)?;
        table.allowance = table.allowance.checked_sub(1).ok_or(SysError::OutOfKernelMemory)?;
        Ok(cspace)
    }

    /// Gives `amount` objects back to `payer`'s allowance, if the table lives.
    pub fn refund(&mut self, payer: ObjRef, amount: u64) {
        if let Some(table) = self.cspaces.get_mut(payer.index, payer.generation) {
            table.allowance = table.allowance.saturating_add(amount);
        }
    }

    /// Records that `payer` paid for the new object `obj`.
    pub fn set_payer(&mut self, obj: ObjRef, payer: ObjRef) {
        let (i, g) = (obj.index, obj.generation);
        match obj.kind {
            ObjectKind::Thread => self.threads.set_payer(i, g, payer),
            ObjectKind::AddressSpace => self.spaces.set_payer(i, g, payer),
            ObjectKind::CSpace => self.cspaces.set_payer(i, g, payer),
            ObjectKind::Endpoint => self.endpoints.set_payer(i, g, payer),
            ObjectKind::Notification => self.notifications.set_payer(i, g, payer),
            ObjectKind::PhysRange => self.phys_ranges.set_payer(i, g, payer),
            ObjectKind::Reply => self.replies.set_payer(i, g, payer),
            ObjectKind::IrqLine => self.irq_lines.set_payer(i, g, payer),
            ObjectKind::IoPorts => self.io_ports.set_payer(i, g, payer),
        }
    }

    /// The table that paid for `obj`, if one did (boot objects are free).
    pub fn payer_of(&self, obj: ObjRef) -> Option<ObjRef> {
        let (i, g) = (obj.index, obj.generation);
        match obj.kind {
            ObjectKind::Thread => self.threads.payer(i, g),
            ObjectKind::AddressSpace => self.spaces.payer(i, g),
            ObjectKind::CSpace => self.cspaces.payer(i, g),
            ObjectKind::Endpoint => self.endpoints.payer(i, g),
            ObjectKind::Notification => self.notifications.payer(i, g),
            ObjectKind::PhysRange => self.phys_ranges.payer(i, g),
            ObjectKind::Reply => self.replies.payer(i, g),
            ObjectKind::IrqLine => self.irq_lines.payer(i, g),
            ObjectKind::IoPorts => self.io_ports.payer(i, g),
        }
    }

    /// `Allowance(cspace, amount)`: moves `amount` objects of thread `t`'s
    /// table's allowance to the table named by a CSpace capability with the
    /// write right; returns what the caller's table has left. With
    /// [`OWN_CSPACE`] (and amount 0) it only reports.
    pub fn allowance(&mut self, t: u16, cspace_slot: u64, amount: u64) -> Result<u64, SysError> {
        let own = self.cspace_of(t)?;
        let target = match cspace_slot {
            OWN_CSPACE => own,
            slot => self.lookup_as(t, slot, ObjectKind::CSpace, Rights::WRITE)?.obj,
        };
        let table = self.cspaces.get_mut(own.index, own.generation).ok_or(SysError::BadState)?;
        if target == own {
            return if amount == 0 { Ok(table.allowance) } else { Err(SysError::BadArgument) };
        }
        table.allowance = table.allowance.checked_sub(amount).ok_or(SysError::OutOfKernelMemory)?;
        let left = table.allowance;
        let target = self.cspaces.get_mut(target.index, target.generation).ok_or(SysError::ObjectDeleted)?;
        target.allowance = target.allowance.saturating_add(amount);
        Ok(left)
    }
}
