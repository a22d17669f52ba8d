//! Privileges: the kernel services a capability table's threads may use
//! beyond what their capabilities name (the console, kernel information,
//! trace names; `abi::cap::privilege`). init's table has them all; a new
//! table has its creator's, so processes keep what their servers have,
//! and a holder of a writable CSpace capability can take them away, never
//! give them back.

use abi::cap::{ObjectKind, Rights};
use abi::syscall::SysError;

use crate::object::ObjRef;

use super::Kernel;

impl Kernel {
    /// The privileges of table `cspace` (none if it is gone).
    pub fn privileges_of(&self, cspace: ObjRef) -> u8 {
        self.cspaces.get(cspace.index, cspace.generation).map_or(0, |table| table.privileges)
    }

    /// `NoRight` unless thread `t`'s table has `privilege`.
    pub fn privileged(&self, t: u16, privilege: u8) -> Result<(), SysError> {
        let cspace = self.cspace_of(t)?;
        if self.privileges_of(cspace) & privilege == privilege { Ok(()) } else { Err(SysError::NoRight) }
    }

    /// `TableRestrict(cspace, keep)`: the table keeps only `keep`.
    pub fn table_restrict(&mut self, t: u16, slot: u64, keep: u64) -> Result<u64, SysError> {
        let keep = u8::try_from(keep).map_err(|_| SysError::BadArgument)?;
        let cspace = self.lookup_as(t, slot, ObjectKind::CSpace, Rights::WRITE)?.obj;
        let table = self.cspaces.get_mut(cspace.index, cspace.generation).ok_or(SysError::ObjectDeleted)?;
        table.privileges &= keep;
        Ok(u64::from(table.privileges))
    }
}
