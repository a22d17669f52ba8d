//! The process table, shared by every server thread under one lock held
//! only for lookups and updates: pids, parents, the kernel objects and
//! memory record of each process, exit statuses and pending waits.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use abi::process::INIT_PID;
use rt::sys::Slot;

use crate::space::AddrSpace;

/// The kernel objects of a process, as slots of our table.
#[derive(Clone, Copy, Debug)]
pub struct Objects {
    pub space: Slot,
    pub cspace: Slot,
    pub thread: Slot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    Zombie(i32),
}

/// A parent blocked in `Wait`: its saved reply and which child it wants.
#[derive(Clone, Copy, Debug)]
pub struct Waiter {
    pub reply: Slot,
    pub pid: Option<u32>,
}

pub struct Process {
    pub parent: Option<u32>,
    pub state: State,
    /// `None` for init, which is a client but not our process.
    pub objects: Option<Objects>,
    pub memory: Arc<spin::Mutex<AddrSpace>>,
    pub waiter: Option<Waiter>,
}

pub struct Procs {
    table: spin::Mutex<Table>,
}

pub struct Table {
    pub map: BTreeMap<u32, Process>,
    next_pid: u32,
}

impl Procs {
    pub fn new() -> Self {
        let mut map = BTreeMap::new();
        let init = Process {
            parent: None,
            state: State::Running,
            objects: None,
            memory: Arc::new(spin::Mutex::new(AddrSpace::default())),
            waiter: None,
        };
        map.insert(INIT_PID, init);
        Self { table: spin::Mutex::new(Table { map, next_pid: INIT_PID + 1 }) }
    }

    pub fn lock(&self) -> spin::MutexGuard<'_, Table> {
        self.table.lock()
    }
}

impl Table {
    pub fn new_pid(&mut self) -> u32 {
        let pid = self.next_pid;
        self.next_pid += 1;
        pid
    }

    /// Children of `parent` matching `pid` (any when `None`).
    pub fn children(&self, parent: u32, pid: Option<u32>) -> Vec<u32> {
        self.map
            .iter()
            .filter(|(child, p)| p.parent == Some(parent) && pid.is_none_or(|want| want == **child))
            .map(|(child, _)| *child)
            .collect()
    }

    /// Processes alive or zombie, init not counted.
    pub fn count(&self) -> u32 {
        self.map.len() as u32 - 1
    }
}
