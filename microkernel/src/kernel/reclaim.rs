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
//! `ObjectDeleted`). The walk is bounded by the pools, which boot sizes
//! from RAM (`kernel/sizing.rs`). It keeps its marks in the objects' pool
//! slots ([`Marks`], under a stamp of its own, so nothing is cleared
//! before a walk) and its work lists in memory taken at boot ([`Lists`]).
//! The deletions may start walks of their own: those stamp anew, so what
//! a walk found garbage is kept as a `doomed` mark that only the object's
//! end clears, and each slot is checked again before it is emptied.
//!
//! A walk that finds a member live only because it runs is remembered
//! ([`Retry`]) and tried again once that thread stops (blocks, is
//! suspended, dies): the last outside reference may go while a member
//! still runs, and nothing else would look again. At most [`RETRIES`]
//! walks wait at once (a newer one takes the oldest's place), each retried
//! at most [`MAX_TRIES`] times, so the work stays bounded.

use core::cell::Cell;

use abi::cap::{CSPACE_SLOTS, ObjectKind};

use crate::object::pool::Marks;
use crate::object::thread::{Blocked, State};
use crate::object::{ObjRef, storage};

use super::Kernel;

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

/// The walk's work lists, each room for every object of the four kinds a
/// walk tracks (a member enters each at most once), taken at boot from
/// the kernel's frames ([`Lists::provide`]).
#[derive(Default)]
pub struct Lists {
    pub members: &'static mut [ObjRef],
    pub pending: &'static mut [ObjRef],
    pub roots: &'static mut [ObjRef],
}

impl Lists {
    /// Lists for `objects` tracked objects; false when RAM has no room.
    pub fn provide(&mut self, objects: usize) -> bool {
        let none = ObjRef { kind: ObjectKind::Thread, index: 0, generation: 0 };
        let list = || storage::filled(objects, |_| none);
        match (list(), list(), list()) {
            (Some(members), Some(pending), Some(roots)) => {
                *self = Self { members, pending, roots };
                true
            }
            _ => false,
        }
    }
}

/// A stack over one of the lists.
struct Stack<'a> {
    items: &'a mut [ObjRef],
    len: usize,
}

impl<'a> Stack<'a> {
    fn new(items: &'a mut [ObjRef]) -> Self {
        Self { items, len: 0 }
    }

    fn push(&mut self, obj: ObjRef) {
        if let Some(item) = self.items.get_mut(self.len) {
            *item = obj;
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<ObjRef> {
        self.len = self.len.checked_sub(1)?;
        Some(self.items[self.len])
    }

    fn as_slice(&self) -> &[ObjRef] {
        &self.items[..self.len]
    }
}

/// Tables the walk's stack bitmap of garbage tables covers, at most (the
/// table pool is never sized larger: see `kernel/sizing.rs`).
pub const MAX_TABLES: usize = 4096;

/// One walk: its stamp on the marks of what it finds.
#[derive(Clone, Copy)]
struct Walk(u32);

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
        self.walks = self.walks.wrapping_add(1).max(1);
        let walk = Walk(self.walks);
        let mut lists = core::mem::take(&mut self.walk_lists);
        let (garbage_tables, runner) = self.find_garbage(start, walk, &mut lists);
        self.walk_lists = lists;
        if let Some(thread) = runner.and_then(|t| self.thread_ref(t)).filter(|_| tries < MAX_TRIES) {
            self.remember(Retry { thread, start, tries: tries + 1 });
        }
        // The deletions may start walks of their own, which stamp marks
        // anew; what this walk found garbage stays `doomed` (a capability
        // in a garbage table is unreachable whatever it names, so emptying
        // it early is never wrong).
        let words = usize::from(self.cspaces.end()).div_ceil(64).min(garbage_tables.len());
        for (word, &bits) in garbage_tables[..words].iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let index = (word * 64) as u16 + bits.trailing_zeros() as u16;
                bits &= bits - 1;
                self.empty_garbage_slots(index);
            }
        }
    }

    /// Empties the slots of garbage table `index` that name garbage.
    fn empty_garbage_slots(&mut self, index: u16) {
        let Some(generation) = self.cspaces.generation_of(index) else { return };
        let table = ObjRef { kind: ObjectKind::CSpace, index, generation };
        for slot in 0..CSPACE_SLOTS as u64 {
            let names_garbage = self
                .cspaces
                .get(table.index, generation)
                .and_then(|t| t.slots[slot as usize])
                .is_some_and(|cap| self.marks(cap.obj).is_some_and(|m| m.get().doomed));
            if names_garbage {
                self.delete_slot(table, slot);
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

    /// The walk's marks on `obj`, for the four kinds it tracks.
    fn marks(&self, obj: ObjRef) -> Option<&Cell<Marks>> {
        match obj.kind {
            ObjectKind::CSpace => self.cspaces.marks(obj.index),
            ObjectKind::Thread => self.threads.marks(obj.index),
            ObjectKind::Endpoint => self.endpoints.marks(obj.index),
            ObjectKind::Notification => self.notifications.marks(obj.index),
            _ => None,
        }
    }

    /// Whether `walk` found `obj`.
    fn found(&self, obj: ObjRef, walk: Walk) -> bool {
        self.marks(obj).is_some_and(|m| m.get().stamp == walk.0)
    }

    /// Notes that `walk` found `obj`: no references from inside yet, not
    /// live (a verdict of garbage from an enclosing walk stays).
    fn find(&self, obj: ObjRef, walk: Walk) {
        if let Some(marks) = self.marks(obj) {
            marks.set(Marks { stamp: walk.0, inside: 0, live: false, doomed: marks.get().doomed });
        }
    }

    /// Marks a member of `walk` live; true if it was not yet.
    fn mark_live(&self, obj: ObjRef, walk: Walk) -> bool {
        let Some(marks) = self.marks(obj).filter(|m| m.get().stamp == walk.0 && !m.get().live) else { return false };
        marks.set(Marks { live: true, ..marks.get() });
        true
    }

    /// Trial deletion from `start` (as Bacon and Rajan's cycle collector):
    /// finds the tables, threads, endpoints and notifications reachable
    /// from it, counts the references its members get from each other,
    /// marks live every member named from outside or able to run and all
    /// that such a member leads to; the rest is garbage (marked `doomed`).
    /// Returns the garbage tables (a bitmap by index) and a member thread
    /// live only because it runs, if any: once it stops, more may be
    /// garbage.
    fn find_garbage(&self, start: ObjRef, walk: Walk, lists: &mut Lists) -> ([u64; MAX_TABLES / 64], Option<u16>) {
        // Every member once, in the order found; the work lists hold each
        // member at most once too, so none overflows (and none is filled
        // in advance: a walk costs what it finds).
        let mut members = Stack::new(lists.members);
        let mut pending = Stack::new(lists.pending);
        let tracked =
            |obj: ObjRef| matches!(obj.kind, ObjectKind::CSpace | ObjectKind::Thread | ObjectKind::Endpoint | ObjectKind::Notification);
        if tracked(start) && self.alive(start) {
            self.find(start, walk);
            members.push(start);
            pending.push(start);
        }
        while let Some(obj) = pending.pop() {
            self.each_edge(obj, true, |next| {
                if tracked(next) && !self.found(next, walk) && self.alive(next) {
                    self.find(next, walk);
                    members.push(next);
                    pending.push(next);
                }
            });
        }
        self.count_inside(walk, members.as_slice());
        let mut roots = Stack::new(lists.roots);
        let mut runner = None;
        for &obj in members.as_slice() {
            let inside = self.marks(obj).map_or(0, |m| m.get().inside);
            let named = self.refs_of(obj) != inside;
            let runs = obj.kind == ObjectKind::Thread && self.stopped(obj.index).is_none();
            if runs && !named {
                runner.get_or_insert(obj.index);
            }
            if (named || runs) && self.mark_live(obj, walk) {
                roots.push(obj);
            }
        }
        while let Some(obj) = roots.pop() {
            self.each_edge(obj, false, |next| {
                if self.mark_live(next, walk) {
                    roots.push(next);
                }
            });
        }
        let mut garbage_tables = [0u64; MAX_TABLES / 64];
        for &obj in members.as_slice() {
            let Some(marks) = self.marks(obj).filter(|m| !m.get().live) else { continue };
            marks.set(Marks { doomed: true, ..marks.get() });
            if obj.kind == ObjectKind::CSpace && usize::from(obj.index) < MAX_TABLES {
                garbage_tables[usize::from(obj.index) / 64] |= 1 << (obj.index % 64);
            }
        }
        (garbage_tables, runner)
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
    fn count_inside(&self, walk: Walk, members: &[ObjRef]) {
        let count = |obj: ObjRef| {
            if let Some(marks) = self.marks(obj).filter(|m| m.get().stamp == walk.0) {
                marks.set(Marks { inside: marks.get().inside + 1, ..marks.get() });
            }
        };
        for obj in members {
            match obj.kind {
                ObjectKind::CSpace => {
                    let Some(table) = self.cspaces.at(obj.index) else { continue };
                    for cap in table.slots.iter().flatten() {
                        if self.alive(cap.obj) {
                            count(cap.obj);
                        }
                    }
                }
                ObjectKind::Thread => {
                    let Some(thread) = self.threads.at(obj.index) else { continue };
                    for held in [thread.cspace, thread.fault_ep.map(|(ep, _)| ep)].into_iter().flatten() {
                        count(held);
                    }
                }
                _ => {}
            }
        }
    }
}
