//! Thread system calls: configure, start, suspend, resume, exit, affinity,
//! priority and state.

use abi::cap::{ObjectKind, Rights, ThreadState};
use abi::syscall::{SysError, USER_END};

use crate::arch::paging::PAGE_SIZE;
use crate::arch::{self, UserContext};
use crate::object::ObjRef;
use crate::object::thread::State;

use super::{Kernel, PRIORITIES, UserFault};

/// `ThreadConfigure`'s "no fault endpoint".
pub const NO_FAULT_ENDPOINT: u64 = u64::MAX;

impl Kernel {
    fn thread_cap(&self, t: u16, slot: u64) -> Result<ObjRef, SysError> {
        Ok(self.lookup_as(t, slot, ObjectKind::Thread, Rights::WRITE)?.obj)
    }

    /// The priority (or MCP) `t` may hand out: at most its own MCP.
    fn check_priority(&self, t: u16, priority: u64) -> Result<u8, SysError> {
        if priority >= PRIORITIES as u64 {
            return Err(SysError::BadArgument);
        }
        let mcp = self.threads.at(t).map_or(0, |thread| thread.mcp);
        if priority > u64::from(mcp) {
            return Err(SysError::NoRight);
        }
        Ok(priority as u8)
    }

    /// `ThreadConfigure(thread, space, cspace, ipc_buffer, fault_ep,
    /// priority | cpu << 8 | mcp << 16)`: the thread's MCP is the larger of
    /// its priority and `mcp`, both at most the caller's MCP.
    pub fn thread_configure(&mut self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let [thread_slot, space_slot, cspace_slot, ipc_buffer, fault_slot, placement] = args;
        let target = self.thread_cap(t, thread_slot)?;
        let space = self.lookup_as(t, space_slot, ObjectKind::AddressSpace, Rights::WRITE)?.obj;
        let root = self.spaces.get(space.index, space.generation).ok_or(SysError::ObjectDeleted)?.root;
        let cspace = self.lookup_as(t, cspace_slot, ObjectKind::CSpace, Rights::WRITE)?.obj;
        let fault_ep = match fault_slot {
            NO_FAULT_ENDPOINT => None,
            slot => {
                let cap = self.lookup_as(t, slot, ObjectKind::Endpoint, Rights::WRITE)?;
                Some((cap.obj, cap.badge))
            }
        };
        if ipc_buffer % PAGE_SIZE != 0 || ipc_buffer >= USER_END {
            return Err(SysError::BadAddress);
        }
        let (priority, cpu, mcp) = (placement & 0xFF, placement >> 8 & 0xFF, placement >> 16);
        if cpu >= arch::cpu_count() as u64 {
            return Err(SysError::BadArgument);
        }
        let priority = self.check_priority(t, priority)?;
        let mcp = self.check_priority(t, mcp)?.max(priority);
        let thread = self.threads.get(target.index, target.generation).ok_or(SysError::ObjectDeleted)?;
        if !matches!(thread.state, State::Inactive | State::Suspended) {
            return Err(SysError::BadState);
        }
        for held in [Some(space), Some(cspace), fault_ep.map(|(ep, _)| ep)].into_iter().flatten() {
            self.hold(held);
        }
        let thread = self.threads.get_mut(target.index, target.generation).ok_or(SysError::ObjectDeleted)?;
        let released = [
            thread.set_space(Some((space, root))),
            thread.cspace.replace(cspace),
            core::mem::replace(&mut thread.fault_ep, fault_ep).map(|(ep, _)| ep),
        ];
        thread.ipc_buffer = ipc_buffer;
        thread.priority = priority;
        thread.mcp = mcp;
        thread.cpu = cpu as u16;
        for old in released.into_iter().flatten() {
            self.drop_ref(old);
        }
        Ok(0)
    }

    /// `ThreadStart(thread, rip, rsp, arg)`: a configured, never-started thread.
    pub fn thread_start(&mut self, t: u16, args: [u64; 6]) -> Result<u64, SysError> {
        let target = self.thread_cap(t, args[0])?;
        if args[1] >= USER_END || args[2] > USER_END {
            return Err(SysError::BadAddress);
        }
        let thread = self.threads.get_mut(target.index, target.generation).ok_or(SysError::ObjectDeleted)?;
        if thread.state != State::Inactive || thread.space().is_none() || thread.cspace.is_none() {
            return Err(SysError::BadState);
        }
        thread.ctx = UserContext::new_user(args[1], args[2], args[3]);
        thread.ctx.rsi = args[4];
        thread.ctx.rdx = args[5];
        self.make_ready(target.index);
        Ok(0)
    }

    /// `ThreadExit`: a thread with a fault endpoint reports its end there,
    /// as a fault with vector [`EXIT_VECTOR`](abi::msg::kernel_label::EXIT_VECTOR),
    /// so whoever manages it can reap it; it dies at the reply. One without
    /// a handler ends at once.
    pub fn thread_exit(&mut self, t: u16) {
        let handled = self
            .threads
            .at(t)
            .and_then(|thread| thread.fault_ep)
            .is_some_and(|(ep, _)| self.endpoints.get(ep.index, ep.generation).is_some());
        if handled {
            let exit = UserFault { vector: abi::msg::kernel_label::EXIT_VECTOR, addr: 0, error: 0, name: "exit" };
            return self.fault(t, exit);
        }
        self.stop_thread(t, State::Dead);
        self.check_init_alive(t);
    }

    pub fn thread_suspend(&mut self, t: u16, slot: u64) -> Result<u64, SysError> {
        let target = self.thread_cap(t, slot)?;
        match self.threads.get(target.index, target.generation).map(|th| th.state) {
            Some(State::Ready | State::Running | State::Blocked(_)) => {
                self.stop_thread(target.index, State::Suspended);
                Ok(0)
            }
            Some(_) => Err(SysError::BadState),
            None => Err(SysError::ObjectDeleted),
        }
    }

    pub fn thread_resume(&mut self, t: u16, slot: u64) -> Result<u64, SysError> {
        let target = self.thread_cap(t, slot)?;
        match self.threads.get(target.index, target.generation).map(|th| th.state) {
            Some(State::Suspended) => {
                self.make_ready(target.index);
                Ok(0)
            }
            Some(_) => Err(SysError::BadState),
            None => Err(SysError::ObjectDeleted),
        }
    }

    /// `ThreadSetAffinity(thread, cpu)`: a running thread moves at its
    /// CPU's next switch, a ready one at once.
    pub fn thread_set_affinity(&mut self, t: u16, slot: u64, cpu: u64) -> Result<u64, SysError> {
        let target = self.thread_cap(t, slot)?;
        if cpu >= arch::cpu_count() as u64 {
            return Err(SysError::BadArgument);
        }
        let state = self.threads.get(target.index, target.generation).ok_or(SysError::ObjectDeleted)?.state;
        self.unready(target.index);
        if let Some(thread) = self.threads.at_mut(target.index) {
            thread.cpu = cpu as u16;
        }
        match state {
            State::Ready => self.make_ready(target.index),
            State::Running => {
                let running_on = self.cpus.iter().position(|c| c.current == Some(target.index));
                if let Some(other) = running_on.filter(|&c| c != arch::cpu_index()) {
                    arch::send_resched(other);
                }
            }
            _ => {}
        }
        Ok(0)
    }

    /// `ThreadSetPriority(thread, priority)`: at most the caller's MCP.
    pub fn thread_set_priority(&mut self, t: u16, slot: u64, priority: u64) -> Result<u64, SysError> {
        let target = self.thread_cap(t, slot)?;
        let priority = self.check_priority(t, priority)?;
        let state = self.threads.get(target.index, target.generation).ok_or(SysError::ObjectDeleted)?.state;
        self.unready(target.index);
        if let Some(thread) = self.threads.at_mut(target.index) {
            thread.priority = priority;
        }
        if state == State::Ready {
            self.make_ready(target.index);
        }
        Ok(0)
    }

    pub fn thread_state(&self, t: u16, slot: u64) -> Result<u64, SysError> {
        let target = self.lookup_as(t, slot, ObjectKind::Thread, Rights::READ)?.obj;
        let state = self.threads.get(target.index, target.generation).ok_or(SysError::ObjectDeleted)?.state;
        Ok(match state {
            State::Inactive => ThreadState::Inactive,
            State::Ready => ThreadState::Ready,
            State::Running => ThreadState::Running,
            State::Blocked(_) => ThreadState::Blocked,
            State::Suspended => ThreadState::Suspended,
            State::Dead => ThreadState::Dead,
        } as u64)
    }
}
