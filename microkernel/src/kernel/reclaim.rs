//! Reclaiming cycles: capability tables and threads that keep each other
//! alive once nothing outside names them (a table holding a capability to
//! itself, a table holding the capability of a stopped thread that runs in
//! it). When a reference to a table, thread, endpoint or notification goes
//! and others remain, the kernel runs a trial deletion from it, as Bacon
//! and Rajan's cycle collector does: it finds what is reachable from it (a
//! table's CSpace and Thread capabilities; a thread's table and fault
//! endpoint; the endpoint or notification a blocked thread waits on, and
//! the threads waiting on one), counts the references each member gets
//! from the others, and marks live every member named from outside, every
//! thread that can run (ready, running, or waiting for a reply: it is
//! reachable from outside by definition), and everything a live member
//! leads to. The members left are garbage, even beside live ones (a dead
//! table holding a capability to a live one): the capabilities in garbage
//! tables that name garbage are deleted, and the objects die the ordinary
//! way (a thread waiting on a dying endpoint is woken with
//! `ObjectDeleted`). The walk is bounded by the pools (32 tables of 256
//! slots, 128 threads). The deletions may start walks of their own; each
//! slot is checked again before it is emptied, so nested walks only ever
//! find less.
//!
//! A walk that finds a member live only because it runs is remembered
//! ([`Retry`]) and tried again once that thread stops (blocks, is
//! suspended, dies): the last outside reference may go while a member
//! still runs, and nothing else would look again. At most [`RETRIES`]
//! walks wait at once (a newer one takes the oldest's place), each retried
//! at most [`MAX_TRIES`] times, so the work stays bounded.

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

/// Members of one kind, the references each gets from inside, and
/// whether each is live (named from outside, or reachable from a live one).
struct Members<const N: usize> {
    found: [bool; N],
    inside: [u32; N],
    live: [bool; N],
}

impl<const N: usize> Members<N> {
    const fn new() -> Self {
        Self { found: [false; N], inside: [0; N], live: [false; N] }
    }

    /// Marks member `index` live; true if it was not yet.
    fn mark_live(&mut self, index: u16) -> bool {
        let i = usize::from(index);
        let newly = self.found.get(i).copied().unwrap_or(false) && !self.live[i];
        if newly {
            self.live[i] = true;
        }
        newly
    }

    fn garbage(&self, index: u16) -> bool {
        self.has(index) && !self.live[usize::from(index)]
    }

    /// Whether `index` is a member, and the references it gets from inside.
    fn inside_of(&self, index: u16) -> (bool, u32) {
        let i = usize::from(index);
        (self.has(index), self.inside.get(i).copied().unwrap_or(0))
    }

    fn has(&self, index: u16) -> bool {
        self.found.get(usize::from(index)).copied().unwrap_or(false)
    }

    fn count(&mut self, index: u16) {
        if let Some(inside) = self.inside.get_mut(usize::from(index)) {
            *inside += 1;
        }
    }
}

/// A list of the objects one walk meets, each at most once.
type Objects = heapless::Vec<ObjRef, { MAX_CSPACES + MAX_THREADS + MAX_ENDPOINTS + MAX_NOTIFICATIONS }>;

/// Objects found by one walk.
struct Set {
    tables: Members<MAX_CSPACES>,
    threads: Members<MAX_THREADS>,
    endpoints: Members<MAX_ENDPOINTS>,
    notifications: Members<MAX_NOTIFICATIONS>,
}

impl Set {
    fn mark_live(&mut self, obj: ObjRef) -> bool {
        match obj.kind {
            ObjectKind::CSpace => self.tables.mark_live(obj.index),
            ObjectKind::Thread => self.threads.mark_live(obj.index),
            ObjectKind::Endpoint => self.endpoints.mark_live(obj.index),
            ObjectKind::Notification => self.notifications.mark_live(obj.index),
            _ => false,
        }
    }

    fn find(&mut self, obj: ObjRef) {
        let found = match obj.kind {
            ObjectKind::CSpace => self.tables.found.get_mut(usize::from(obj.index)),
            ObjectKind::Thread => self.threads.found.get_mut(usize::from(obj.index)),
            ObjectKind::Endpoint => self.endpoints.found.get_mut(usize::from(obj.index)),
            ObjectKind::Notification => self.notifications.found.get_mut(usize::from(obj.index)),
            _ => None,
        };
        if let Some(found) = found {
            *found = true;
        }
    }

    fn garbage(&self, obj: ObjRef) -> bool {
        match obj.kind {
            ObjectKind::CSpace => self.tables.garbage(obj.index),
            ObjectKind::Thread => self.threads.garbage(obj.index),
            ObjectKind::Endpoint => self.endpoints.garbage(obj.index),
            ObjectKind::Notification => self.notifications.garbage(obj.index),
            _ => false,
        }
    }

    fn inside_of(&self, kind: ObjectKind, index: u16) -> (bool, u32) {
        match kind {
            ObjectKind::CSpace => self.tables.inside_of(index),
            ObjectKind::Thread => self.threads.inside_of(index),
            ObjectKind::Endpoint => self.endpoints.inside_of(index),
            ObjectKind::Notification => self.notifications.inside_of(index),
            _ => (false, 0),
        }
    }

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
    /// finds, and remembers to try again when a member is live only
    /// because it runs.
    fn reclaim_from(&mut self, start: ObjRef, tries: u8) {
        let (set, runner) = self.find_garbage(start);
        if let Some(thread) = runner.and_then(|t| self.thread_ref(t)).filter(|_| tries < MAX_TRIES) {
            self.remember(Retry { thread, start, tries: tries + 1 });
        }
        for index in (0..MAX_CSPACES as u16).filter(|&i| set.tables.garbage(i)) {
            let Some(generation) = self.cspaces.generation_of(index) else { continue };
            let table = ObjRef { kind: ObjectKind::CSpace, index, generation };
            for slot in 0..CSPACE_SLOTS as u64 {
                let names_garbage =
                    self.cspaces.get(table.index, generation).and_then(|t| t.slots[slot as usize]).is_some_and(|cap| set.garbage(cap.obj));
                if names_garbage {
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

    /// Calls `f` with what `obj` leads to: a table's capabilities (only its
    /// tables and threads when `finding`: an endpoint or notification joins
    /// the set only through a thread waiting on it, which keeps walks
    /// short), a thread's table and fault endpoint and what it waits on,
    /// the threads waiting on an endpoint or notification.
    fn each_edge(&self, obj: ObjRef, finding: bool, mut f: impl FnMut(ObjRef)) {
        match obj.kind {
            ObjectKind::Thread => {
                let Some(thread) = self.threads.get(obj.index, obj.generation) else { return };
                let waits_on = self.stopped(obj.index).flatten();
                for next in [thread.cspace, thread.fault_ep.map(|(ep, _)| ep), waits_on].into_iter().flatten() {
                    f(next);
                }
            }
            ObjectKind::CSpace => {
                let Some(table) = self.cspaces.get(obj.index, obj.generation) else { return };
                for cap in table.slots.iter().flatten() {
                    if !finding || matches!(cap.obj.kind, ObjectKind::CSpace | ObjectKind::Thread) {
                        f(cap.obj);
                    }
                }
            }
            ObjectKind::Endpoint => {
                let Some(endpoint) = self.endpoints.get(obj.index, obj.generation) else { return };
                for queue in [endpoint.senders, endpoint.receivers] {
                    let mut cursor = queue.head;
                    while let Some(t) = cursor {
                        if let Some(waiter) = self.thread_ref(t) {
                            f(waiter);
                        }
                        cursor = self.threads.at(t).and_then(|thread| thread.next);
                    }
                }
            }
            ObjectKind::Notification => {
                let waiter = self.notifications.get(obj.index, obj.generation).and_then(|n| n.waiter);
                if let Some(waiter) = waiter.and_then(|w| self.thread_ref(w)) {
                    f(waiter);
                }
            }
            _ => {}
        }
    }

    /// Trial deletion from `start` (as Bacon and Rajan's cycle collector):
    /// finds the tables, threads, endpoints and notifications reachable
    /// from it, counts the references its members get from each other,
    /// marks live every member named from outside or able to run and all
    /// that such a member leads to; the rest is garbage. Also names a
    /// member thread live only because it runs, if any: once it stops,
    /// more may be garbage.
    fn find_garbage(&self, start: ObjRef) -> (Set, Option<u16>) {
        let mut set = Set { tables: Members::new(), threads: Members::new(), endpoints: Members::new(), notifications: Members::new() };
        // Every member once, in the order found; the work lists hold each
        // member at most once too, so none overflows (and none is filled
        // in advance: a walk costs what it finds).
        let mut members = Objects::new();
        let mut pending = Objects::new();
        let tracked =
            |obj: ObjRef| matches!(obj.kind, ObjectKind::CSpace | ObjectKind::Thread | ObjectKind::Endpoint | ObjectKind::Notification);
        if tracked(start) && self.alive(start) {
            set.find(start);
            let _ = members.push(start);
            let _ = pending.push(start);
        }
        while let Some(obj) = pending.pop() {
            self.each_edge(obj, true, |next| {
                if tracked(next) && !set.has(next) && self.alive(next) {
                    set.find(next);
                    let _ = members.push(next);
                    let _ = pending.push(next);
                }
            });
        }
        self.count_inside(&mut set, &members);
        let mut roots = Objects::new();
        let mut runner = None;
        for &obj in &members {
            let (_, inside) = set.inside_of(obj.kind, obj.index);
            let named = self.refs_of(obj) != inside;
            let runs = obj.kind == ObjectKind::Thread && self.stopped(obj.index).is_none();
            if runs && !named {
                runner.get_or_insert(obj.index);
            }
            if (named || runs) && set.mark_live(obj) {
                let _ = roots.push(obj);
            }
        }
        while let Some(obj) = roots.pop() {
            self.each_edge(obj, false, |next| {
                if set.mark_live(next) {
                    let _ = roots.push(next);
                }
            });
        }
        (set, runner)
    }

    /// How many references `obj` has in all.
    fn refs_of(&self, obj: ObjRef) -> u32 {
        match obj.kind {
            ObjectKind::CSpace => self.cspaces.refs_at(obj.index),
            ObjectKind::Thread => self.threads.refs_at(obj.index),
            ObjectKind::Endpoint => self.endpoints.refs_at(obj.index),
            ObjectKind::Notification => self.notifications.refs_at(obj.index),
            _ => 0,
        }
    }

    /// Counts the references members get from members: capabilities in
    /// member tables, and member threads' hold on their table and fault
    /// endpoint.
    fn count_inside(&self, set: &mut Set, members: &Objects) {
        for obj in members {
            match obj.kind {
                ObjectKind::CSpace => {
                    let Some(table) = self.cspaces.at(obj.index) else { continue };
                    for cap in table.slots.iter().flatten() {
                        if self.alive(cap.obj) && set.has(cap.obj) {
                            set.count(cap.obj);
                        }
                    }
                }
                ObjectKind::Thread => {
                    let Some(thread) = self.threads.at(obj.index) else { continue };
                    for held in [thread.cspace, thread.fault_ep.map(|(ep, _)| ep)].into_iter().flatten() {
                        if set.has(held) {
                            set.count(held);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
