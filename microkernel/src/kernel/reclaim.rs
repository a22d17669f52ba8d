//! Reclaiming cycles: capability tables and threads that keep each other
//! alive once nothing outside names them (a table holding a capability to
//! itself, a table holding the capability of a stopped thread that runs in
//! it). When a reference to a table, thread, endpoint or notification goes
//! and others remain, the kernel finds what is reachable from it (a table's
//! CSpace and Thread capabilities; a stopped thread's table; the endpoint
//! or notification a blocked thread waits on, and the threads waiting on
//! one) and, if every reference to
//! every object found comes from inside that set, deletes the capabilities
//! inside it that name its members: the objects then die the ordinary way
//! (a thread waiting on a dying endpoint is woken with `ObjectDeleted`). A
//! thread that can run (ready, running) or waits for a reply is reachable
//! from outside by definition, so nothing it uses is reclaimed. The walk is
//! bounded by the pools (32 tables of 256 slots, 128 threads). The
//! deletions may start walks of their own (a table reclaimed here may hold
//! the last outside capability of another cycle); each slot is checked
//! again before it is emptied, so nested walks only ever find less.
//!
//! A walk that meets a thread able to run is remembered ([`Retry`]) and
//! tried again once that thread stops (blocks, is suspended, dies): the
//! last outside reference may go while a member still runs, and nothing
//! else would look again. At most [`RETRIES`] walks wait at once (a newer
//! one takes the oldest's place), each retried at most [`MAX_TRIES`]
//! times, so the work stays bounded. A stopped member's hold on its fault
//! endpoint counts as a reference from inside, like its hold on its table.

use abi::cap::{CSPACE_SLOTS, ObjectKind};

use crate::object::ObjRef;
use crate::object::thread::State;

use crate::object::thread::Blocked;

use super::{Kernel, MAX_CSPACES, MAX_ENDPOINTS, MAX_NOTIFICATIONS, MAX_THREADS};

/// Walks that wait for a thread to stop, at most.
pub const RETRIES: usize = 16;
/// Times one walk is tried again, at most.
const MAX_TRIES: u8 = 4;

/// A walk from `start` that met `thread` able to run.
#[derive(Clone, Copy)]
pub struct Retry {
    thread: ObjRef,
    start: ObjRef,
    tries: u8,
}

/// Why a walk found nothing to reclaim.
enum Open {
    /// Something outside names a member.
    Named,
    /// This member thread can run (or waits for a reply).
    Runs(u16),
}

/// Members of one kind, and the references each gets from inside.
struct Members<const N: usize> {
    found: [bool; N],
    inside: [u32; N],
}

impl<const N: usize> Members<N> {
    const fn new() -> Self {
        Self { found: [false; N], inside: [0; N] }
    }

    fn has(&self, index: u16) -> bool {
        self.found.get(usize::from(index)).copied().unwrap_or(false)
    }

    fn count(&mut self, index: u16) {
        if let Some(inside) = self.inside.get_mut(usize::from(index)) {
            *inside += 1;
        }
    }

    /// Whether every member's references all come from inside.
    fn closed(&self, refs: impl Fn(u16) -> u32) -> bool {
        (0..N).filter(|&i| self.found[i]).all(|i| refs(i as u16) == self.inside[i])
    }
}

/// Objects found by one walk.
struct Set {
    tables: Members<MAX_CSPACES>,
    threads: Members<MAX_THREADS>,
    endpoints: Members<MAX_ENDPOINTS>,
    notifications: Members<MAX_NOTIFICATIONS>,
}

impl Set {
    fn has(&self, obj: ObjRef) -> bool {
        match obj.kind {
            ObjectKind::CSpace => self.tables.has(obj.index),
            ObjectKind::Thread => self.threads.has(obj.index),
            ObjectKind::Endpoint => self.endpoints.has(obj.index),
            ObjectKind::Notification => self.notifications.has(obj.index),
            _ => false,
        }
    }

    fn count(&mut self, obj: ObjRef) {
        match obj.kind {
            ObjectKind::CSpace => self.tables.count(obj.index),
            ObjectKind::Thread => self.threads.count(obj.index),
            ObjectKind::Endpoint => self.endpoints.count(obj.index),
            ObjectKind::Notification => self.notifications.count(obj.index),
            _ => {}
        }
    }
}

impl Kernel {
    /// Called when a reference to `obj` (a table or thread) went away and
    /// others remain: reclaims the cycle it is part of, if nothing outside
    /// names it.
    pub fn reclaim_cycle(&mut self, obj: ObjRef) {
        let reaches_further = match obj.kind {
            ObjectKind::CSpace | ObjectKind::Thread => true,
            // With nobody waiting, an endpoint or notification leads nowhere:
            // it alone cannot be a cycle (the usual case, kept cheap).
            ObjectKind::Endpoint => {
                self.endpoints.get(obj.index, obj.generation).is_some_and(|e| e.senders.head.is_some() || e.receivers.head.is_some())
            }
            ObjectKind::Notification => self.notifications.get(obj.index, obj.generation).is_some_and(|n| n.waiter.is_some()),
            _ => false,
        };
        if reaches_further {
            self.reclaim_from(obj, 0);
        }
    }

    /// Walks from `start`, tried `tries` times before: reclaims what it
    /// finds, or remembers to try again when it met a thread that runs.
    fn reclaim_from(&mut self, start: ObjRef, tries: u8) {
        let set = match self.unreachable_from(start) {
            Ok(set) => set,
            Err(Open::Named) => return,
            Err(Open::Runs(t)) => {
                if let Some(thread) = self.thread_ref(t).filter(|_| tries < MAX_TRIES) {
                    self.remember(Retry { thread, start, tries: tries + 1 });
                }
                return;
            }
        };
        for (index, _) in set.tables.found.iter().enumerate().filter(|(_, member)| **member) {
            let Some(generation) = self.cspaces.generation_of(index as u16) else { continue };
            let table = ObjRef { kind: ObjectKind::CSpace, index: index as u16, generation };
            for slot in 0..CSPACE_SLOTS as u64 {
                let names_member =
                    self.cspaces.get(table.index, generation).and_then(|t| t.slots[slot as usize]).is_some_and(|cap| set.has(cap.obj));
                if names_member {
                    self.delete_slot(table, slot);
                }
            }
        }
    }

    fn remember(&mut self, retry: Retry) {
        let same = |r: &Retry| r.thread == retry.thread && r.start == retry.start;
        if self.reclaim_retries.iter().flatten().any(same) {
            return;
        }
        let free = self.reclaim_retries.iter().position(Option::is_none);
        let at = free.unwrap_or(self.retry_oldest);
        if free.is_none() {
            self.retry_oldest = (self.retry_oldest + 1) % RETRIES;
        } else {
            self.retries_waiting += 1;
        }
        self.reclaim_retries[at] = Some(retry);
    }

    /// Tries again the walks whose thread has stopped since; called at the
    /// end of every system call and fault (one branch while none waits).
    pub fn retry_reclaims(&mut self) {
        if self.retries_waiting == 0 {
            return;
        }
        for at in 0..RETRIES {
            let Some(retry) = self.reclaim_retries[at] else { continue };
            let runs =
                self.threads.get(retry.thread.index, retry.thread.generation).is_some() && self.stopped(retry.thread.index).is_none();
            if runs {
                continue;
            }
            self.reclaim_retries[at] = None;
            self.retries_waiting -= 1;
            if self.alive(retry.start) {
                self.reclaim_from(retry.start, retry.tries);
            }
        }
    }

    /// Whether thread `t` cannot run by itself, and what it waits on if
    /// blocked: `None` for a thread that can run or waits for a reply.
    fn stopped(&self, t: u16) -> Option<Option<ObjRef>> {
        match self.threads.at(t)?.state {
            State::Inactive | State::Suspended | State::Dead => Some(None),
            State::Blocked(Blocked::Send { ep, .. } | Blocked::Recv { ep }) => Some(Some(ep)),
            State::Blocked(Blocked::Notification { ntfn }) => Some(Some(ntfn)),
            State::Ready | State::Running | State::Blocked(Blocked::Reply) => None,
        }
    }

    /// What is reachable from `start`, if every reference to it comes from
    /// inside; else why not.
    fn unreachable_from(&self, start: ObjRef) -> Result<Set, Open> {
        let mut set = Set { tables: Members::new(), threads: Members::new(), endpoints: Members::new(), notifications: Members::new() };
        let mut pending = [start; MAX_CSPACES + MAX_THREADS + MAX_ENDPOINTS + MAX_NOTIFICATIONS];
        let mut count = 1;
        let push = |pending: &mut [ObjRef], count: &mut usize, obj: ObjRef| {
            if *count < pending.len() {
                pending[*count] = obj;
                *count += 1;
            }
        };
        while count > 0 {
            count -= 1;
            let obj = pending[count];
            if !self.alive(obj) || set.has(obj) {
                continue;
            }
            match obj.kind {
                ObjectKind::Thread => {
                    let waits_on = self.stopped(obj.index).ok_or(Open::Runs(obj.index))?;
                    set.threads.found[usize::from(obj.index)] = true;
                    let cspace = self.threads.at(obj.index).and_then(|thread| thread.cspace);
                    for held in [cspace, waits_on].into_iter().flatten() {
                        push(&mut pending, &mut count, held);
                    }
                }
                ObjectKind::CSpace => {
                    set.tables.found[usize::from(obj.index)] = true;
                    let table = self.cspaces.get(obj.index, obj.generation).ok_or(Open::Named)?;
                    for cap in table.slots.iter().flatten().filter(|cap| matches!(cap.obj.kind, ObjectKind::CSpace | ObjectKind::Thread)) {
                        if !set.has(cap.obj) {
                            push(&mut pending, &mut count, cap.obj);
                        }
                    }
                }
                ObjectKind::Endpoint => {
                    set.endpoints.found[usize::from(obj.index)] = true;
                    let endpoint = self.endpoints.get(obj.index, obj.generation).ok_or(Open::Named)?;
                    for queue in [endpoint.senders, endpoint.receivers] {
                        let mut cursor = queue.head;
                        while let Some(t) = cursor {
                            push(&mut pending, &mut count, self.thread_ref(t).ok_or(Open::Named)?);
                            cursor = self.threads.at(t).and_then(|thread| thread.next);
                        }
                    }
                }
                ObjectKind::Notification => {
                    set.notifications.found[usize::from(obj.index)] = true;
                    let waiter = self.notifications.get(obj.index, obj.generation).ok_or(Open::Named)?.waiter;
                    if let Some(waiter) = waiter {
                        push(&mut pending, &mut count, self.thread_ref(waiter).ok_or(Open::Named)?);
                    }
                }
                _ => {}
            }
        }
        self.count_inside(&mut set);
        let closed = set.tables.closed(|i| self.cspaces.refs_at(i))
            && set.threads.closed(|i| self.threads.refs_at(i))
            && set.endpoints.closed(|i| self.endpoints.refs_at(i))
            && set.notifications.closed(|i| self.notifications.refs_at(i));
        if closed { Ok(set) } else { Err(Open::Named) }
    }

    /// Counts the references members get from members: capabilities in
    /// member tables, and member threads' hold on their table and fault
    /// endpoint.
    fn count_inside(&self, set: &mut Set) {
        for index in 0..MAX_CSPACES {
            let Some(table) = set.tables.found[index].then(|| self.cspaces.at(index as u16)).flatten() else { continue };
            for cap in table.slots.iter().flatten() {
                if self.alive(cap.obj) && set.has(cap.obj) {
                    set.count(cap.obj);
                }
            }
        }
        for index in 0..MAX_THREADS {
            let Some(thread) = set.threads.found[index].then(|| self.threads.at(index as u16)).flatten() else { continue };
            for held in [thread.cspace, thread.fault_ep.map(|(ep, _)| ep)].into_iter().flatten() {
                if set.has(held) {
                    set.count(held);
                }
            }
        }
    }
}
