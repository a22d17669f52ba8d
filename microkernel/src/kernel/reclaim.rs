//! Reclaiming cycles: capability tables and threads that keep each other
//! alive once nothing outside names them (a table holding a capability to
//! itself, a table holding the capability of a stopped thread that runs in
//! it). When a reference to a table or thread goes and others remain, the
//! kernel finds what is reachable from it through capabilities (a table's
//! CSpace and Thread capabilities; a stopped thread's table) and, if every
//! reference to every object found comes from inside that set, deletes the
//! capabilities inside it that name its members: the objects then die the
//! ordinary way. A thread that can still run (ready, running, blocked) is
//! reachable from outside by definition, so nothing it uses is reclaimed.
//! The walk is bounded by the pools (32 tables of 256 slots, 128 threads).

use abi::cap::{CSPACE_SLOTS, ObjectKind};

use crate::object::ObjRef;
use crate::object::thread::State;

use super::{Kernel, MAX_CSPACES, MAX_THREADS};

/// Objects found by one walk, and the references each gets from inside.
struct Set {
    tables: [bool; MAX_CSPACES],
    threads: [bool; MAX_THREADS],
    table_refs: [u32; MAX_CSPACES],
    thread_refs: [u32; MAX_THREADS],
}

impl Set {
    fn has(&self, obj: ObjRef) -> bool {
        match obj.kind {
            ObjectKind::CSpace => self.tables.get(usize::from(obj.index)).copied().unwrap_or(false),
            ObjectKind::Thread => self.threads.get(usize::from(obj.index)).copied().unwrap_or(false),
            _ => false,
        }
    }
}

impl Kernel {
    /// Called when a reference to `obj` (a table or thread) went away and
    /// others remain: reclaims the cycle it is part of, if nothing outside
    /// names it.
    pub fn reclaim_cycle(&mut self, obj: ObjRef) {
        if self.reclaiming || !matches!(obj.kind, ObjectKind::CSpace | ObjectKind::Thread) {
            return;
        }
        let Some(set) = self.unreachable_from(obj) else { return };
        self.reclaiming = true;
        for (index, _) in set.tables.iter().enumerate().filter(|(_, member)| **member) {
            let Some(generation) = self.cspaces.generation_of(index as u16) else { continue };
            let table = ObjRef { kind: ObjectKind::CSpace, index: index as u16, generation };
            for slot in 0..CSPACE_SLOTS as u64 {
                let names_member = self.cspaces.get(table.index, generation).and_then(|t| t.slots[slot as usize]).is_some_and(|cap| set.has(cap.obj));
                if names_member {
                    self.delete_slot(table, slot);
                }
            }
        }
        self.reclaiming = false;
    }

    /// A thread that cannot run by itself: only a capability holder could
    /// start or resume it.
    fn stopped(&self, t: u16) -> bool {
        self.threads.at(t).is_some_and(|thread| matches!(thread.state, State::Inactive | State::Suspended | State::Dead))
    }

    /// What is reachable from `start`, if every reference to it comes from
    /// inside; `None` when something outside still names a member.
    fn unreachable_from(&self, start: ObjRef) -> Option<Set> {
        let mut set = Set { tables: [false; MAX_CSPACES], threads: [false; MAX_THREADS], table_refs: [0; MAX_CSPACES], thread_refs: [0; MAX_THREADS] };
        let mut pending = [start; MAX_CSPACES + MAX_THREADS];
        let mut count = 1;
        while count > 0 {
            count -= 1;
            let obj = pending[count];
            if !self.alive(obj) || set.has(obj) {
                continue;
            }
            match obj.kind {
                ObjectKind::Thread => {
                    if !self.stopped(obj.index) {
                        return None;
                    }
                    set.threads[usize::from(obj.index)] = true;
                    if let Some(cspace) = self.threads.at(obj.index).and_then(|thread| thread.cspace) {
                        pending[count] = cspace;
                        count += 1;
                    }
                }
                ObjectKind::CSpace => {
                    set.tables[usize::from(obj.index)] = true;
                    let table = self.cspaces.get(obj.index, obj.generation)?;
                    for cap in table.slots.iter().flatten().filter(|cap| matches!(cap.obj.kind, ObjectKind::CSpace | ObjectKind::Thread)) {
                        if !set.has(cap.obj) && count < pending.len() {
                            pending[count] = cap.obj;
                            count += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        self.count_inside(&mut set);
        let tables_inside = set.tables.iter().enumerate().filter(|(_, m)| **m).all(|(i, _)| self.cspaces.refs_at(i as u16) == set.table_refs[i]);
        let threads_inside = set.threads.iter().enumerate().filter(|(_, m)| **m).all(|(i, _)| self.threads.refs_at(i as u16) == set.thread_refs[i]);
        (tables_inside && threads_inside).then_some(set)
    }

    /// Counts the references members get from members: capabilities in
    /// member tables, and member threads' hold on their table.
    fn count_inside(&self, set: &mut Set) {
        for index in 0..MAX_CSPACES {
            let Some(table) = set.tables[index].then(|| self.cspaces.at(index as u16)).flatten() else { continue };
            for cap in table.slots.iter().flatten().filter(|cap| self.alive(cap.obj)) {
                match cap.obj.kind {
                    ObjectKind::CSpace if set.has(cap.obj) => set.table_refs[usize::from(cap.obj.index)] += 1,
                    ObjectKind::Thread if set.has(cap.obj) => set.thread_refs[usize::from(cap.obj.index)] += 1,
                    _ => {}
                }
            }
        }
        for index in 0..MAX_THREADS {
            if let Some(cspace) = set.threads[index].then(|| self.threads.at(index as u16).and_then(|t| t.cspace)).flatten()
                && set.has(cspace) {
                    set.table_refs[usize::from(cspace.index)] += 1;
                }
        }
    }
}
