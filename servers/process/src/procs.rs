//! The process table, shared by every server thread under one lock held
//! only for lookups and updates: pids, parents, the kernel objects and
//! memory record of each process, exit statuses and pending waits.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use abi::process::INIT_PID;
use rt::sys::Slot;

use crate::space::AddrSpace;

/// Children (zombies included) a process may have at once; init's are
/// not limited (the kernel's pools bound them).
pub const MAX_CHILDREN: usize = 16;

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
    /// The server whose CPU runs it and whose endpoint is its pager.
    pub server: u16,
    /// A `Kill` named it: its server ends it at its next turn, and a child
    /// it forks meanwhile is killed too.
    pub killed: bool,
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
            server: 0,
            killed: false,
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
    /// Whether a process other than init is in the table.
    pub fn has_processes(&self) -> bool {
        self.map.keys().any(|&pid| pid != INIT_PID)
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

    /// Whether `parent` may have another child: fewer than
    /// [`MAX_CHILDREN`], zombies counted (they hold a table entry until
    /// waited for).
    pub fn may_have_child(&self, parent: u32) -> bool {
        parent == INIT_PID || self.map.values().filter(|p| p.parent == Some(parent)).count() < MAX_CHILDREN
    }

    /// Whether `ancestor` is `pid`'s parent, grandparent, ...
    pub fn is_ancestor(&self, ancestor: u32, pid: u32) -> bool {
        let mut next = self.map.get(&pid).and_then(|p| p.parent);
        while let Some(parent) = next {
            if parent == ancestor {
                return true;
            }
            next = self.map.get(&parent).and_then(|p| p.parent);
        }
        false
    }

    /// `root` and every running process descended from it, each once.
    pub fn running_subtree(&self, root: u32) -> Vec<u32> {
        let mut found = alloc::vec![root];
        let mut next = 0;
        while next < found.len() {
            let parent = found[next];
            found.extend(self.children(parent, None));
            next += 1;
        }
        found.retain(|pid| self.map.get(pid).is_some_and(|p| p.state == State::Running));
        found
    }

    /// Processes alive or zombie, init not counted.
    pub fn count(&self) -> u32 {
        self.map.len() as u32 - 1
    }
}
