//! Pairing each call (or fault delivery) with the receive and the reply that
//! carry its call id: the spans every analysis is built on.
//!
//! Owns the pairing rules only; it judges nothing (see `check`) and prints
//! nothing. Records are paired by id regardless of CPU or time order, because
//! a reply may be written on another CPU whose TSC is slightly behind.

use std::collections::HashMap;

use trace::{Kind, Record, ThreadRef};

use crate::load::Trace;

/// One request: the call, and when seen, its recv and its reply. Fields are
/// indices into `Trace::records`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub call_id: u64,
    pub call: usize,
    pub recv: Option<usize>,
    pub reply: Option<usize>,
}

/// Every span of a trace and the records that fit none.
#[derive(Clone, Debug, Default)]
pub struct Calls {
    /// In order of call time.
    pub spans: Vec<Span>,
    /// Call id to position in `spans`.
    pub index: HashMap<u64, usize>,
    /// Replies whose id has no call, or whose call already had a reply.
    pub orphan_replies: Vec<usize>,
    /// Calls that reuse the id of an earlier call (the later ones).
    pub duplicate_calls: Vec<usize>,
}

impl Calls {
    pub fn pair(t: &Trace) -> Calls {
        let mut c = Calls::default();
        let order = t.by_time();
        for &i in &order {
            let r = &t.records[i];
            if !r.kind.opens_call() {
                continue;
            }
            if r.call_id != 0 && c.index.contains_key(&r.call_id) {
                c.duplicate_calls.push(i);
                continue;
            }
            if r.call_id != 0 {
                c.index.insert(r.call_id, c.spans.len());
            }
            c.spans.push(Span { call_id: r.call_id, call: i, recv: None, reply: None });
        }
        for &i in &order {
            let r = &t.records[i];
            let span = match c.index.get(&r.call_id) {
                Some(&s) if r.call_id != 0 => Some(&mut c.spans[s]),
                _ => None,
            };
            match (r.kind, span) {
                (Kind::Recv, Some(s)) if s.recv.is_none() => s.recv = Some(i),
                (k, Some(s)) if k.closes_call() && s.reply.is_none() => s.reply = Some(i),
                (k, _) if k.closes_call() => c.orphan_replies.push(i),
                _ => {}
            }
        }
        c
    }

    pub fn get(&self, call_id: u64) -> Option<&Span> {
        self.index.get(&call_id).map(|&s| &self.spans[s])
    }
}

impl Span {
    pub fn call<'t>(&self, t: &'t Trace) -> &'t Record {
        &t.records[self.call]
    }

    fn tsc(t: &Trace, i: Option<usize>) -> Option<u64> {
        i.map(|i| t.records[i].tsc)
    }

    pub fn client(&self, t: &Trace) -> ThreadRef {
        self.call(t).src
    }

    /// The thread that served the call: who received it, else who replied,
    /// else whom the kernel handed it to.
    pub fn server(&self, t: &Trace) -> Option<ThreadRef> {
        let from_recv = self.recv.map(|i| t.records[i].dst);
        let from_reply = self.reply.map(|i| t.records[i].src);
        let direct = Some(self.call(t).dst);
        [from_recv, from_reply, direct].into_iter().flatten().find(|th| !th.is_none())
    }

    /// Call to the server's receive of it, in ticks.
    pub fn queue_ticks(&self, t: &Trace) -> Option<u64> {
        Some(Span::tsc(t, self.recv)?.saturating_sub(self.call(t).tsc))
    }

    /// Receive to reply, in ticks.
    pub fn service_ticks(&self, t: &Trace) -> Option<u64> {
        Some(Span::tsc(t, self.reply)?.saturating_sub(Span::tsc(t, self.recv)?))
    }

    /// Call to reply, in ticks.
    pub fn total_ticks(&self, t: &Trace) -> Option<u64> {
        Some(Span::tsc(t, self.reply)?.saturating_sub(self.call(t).tsc))
    }

    /// The first error: the call's own, else the reply's; 0 when both are ok.
    pub fn status(&self, t: &Trace) -> u16 {
        let call = self.call(t).status;
        if call != 0 {
            return call;
        }
        self.reply.map_or(0, |i| t.records[i].status)
    }
}
