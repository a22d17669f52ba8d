//! `frame N`: one pool frame's reference count followed through the memory
//! server's messages — the `AllocFrames` reply that handed it out, the
//! increments and decrements of every `RefBatch` that names it, `FreeFrames`,
//! `Materialize` and `TryRemoveUnique` — in the order the memory server took
//! them (the time of its receive), each batch's operations in the order it
//! commits them (increments first, `proto::memory::commit_order`).
//!
//! Owns the history and its one judgement: counting from 1 at the hand-out,
//! a count that drops below zero means a decrement was applied before the
//! increment it matches — when every change of the count travels in a
//! message, as under `strategy=atomic-ipc` (`--exact`). Other strategies
//! change counts by stores in the counter table too (the deferred one forks
//! a frame held alone by storing 2), which no message shows; there a drop
//! below zero is reported, and may be such a store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use proto::{MemoryReply, MemoryRequest};
use trace::Kind;

use crate::calls::Calls;
use crate::load::Trace;
use crate::message;

/// One message that names the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index of the request's record in `Trace::records`.
    pub record: usize,
    /// When the memory server received it, in ns since the first record.
    pub ns: u64,
    /// What the message did to the frame.
    pub what: String,
    /// The count after it, when known (from a hand-out on).
    pub count: Option<i64>,
    /// The count dropped below zero here.
    pub below_zero: bool,
}

/// Everything the capture says about one frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub steps: Vec<Step>,
    /// Memory requests whose payload the capture cut: they may name the
    /// frame unseen.
    pub cut_requests: usize,
}

/// One memory request, decoded, with its reply.
struct Request {
    /// When the memory server received it, in ns since the first record.
    ns: u64,
    record: usize,
    request: MemoryRequest,
    reply: Option<MemoryReply>,
}

/// The memory requests of a capture in the order the memory server took
/// them, and how many the capture cut short.
pub struct Requests {
    list: Vec<Request>,
    cut: usize,
}

impl Requests {
    pub fn of(t: &Trace) -> Requests {
        let calls = Calls::pair(t);
        let mut requests = Requests { list: Vec::new(), cut: 0 };
        for (i, r) in t.records.iter().enumerate() {
            if r.label != proto::MEMORY_PROTOCOL || !matches!(r.kind, Kind::Send | Kind::Call) || !r.has_message() {
                continue;
            }
            let Some(request) = message::whole::<MemoryRequest>(t, r) else {
                requests.cut += 1;
                continue;
            };
            let span = calls.index.get(&r.call_id).map(|&s| calls.spans[s]).filter(|_| r.call_id != 0);
            let received = span.and_then(|s| s.recv).unwrap_or(i);
            let reply = span.and_then(|s| s.reply).and_then(|j| message::whole::<MemoryReply>(t, &t.records[j]));
            requests.list.push(Request { ns: t.ns(t.records[received].tsc), record: i, request, reply });
        }
        requests.list.sort_by_key(|q| (q.ns, q.record));
        requests
    }
}

impl History {
    /// The history of `frame`.
    pub fn of(requests: &Requests, frame: u64) -> History {
        let mut history = History { cut_requests: requests.cut, ..History::default() };
        for q in &requests.list {
            history.take(q, frame);
        }
        history
    }

    /// The history of every frame a request names, by frame number.
    pub fn all(requests: &Requests) -> BTreeMap<u64, History> {
        let mut all: BTreeMap<u64, History> = BTreeMap::new();
        for q in &requests.list {
            for frame in frames_named(&q.request, q.reply.as_ref()) {
                all.entry(frame).or_insert_with(|| History { cut_requests: requests.cut, ..History::default() }).take(q, frame);
            }
        }
        all
    }

    /// Adds what request `q` does to `frame`.
    fn take(&mut self, q: &Request, frame: u64) {
        for (what, change) in effects(&q.request, q.reply.as_ref(), frame) {
            let before = self.steps.last().and_then(|s| s.count);
            let count = match change {
                Change::HandedOut => Some(1),
                Change::Freed => Some(0),
                Change::Delta(d) => before.map(|c| c + i64::from(d)),
                Change::None => before,
            };
            let below_zero = matches!(change, Change::Delta(d) if d < 0) && count.is_some_and(|c| c < 0);
            self.steps.push(Step { record: q.record, ns: q.ns, what, count, below_zero });
        }
    }

    /// Steps where a decrement took the count below zero.
    pub fn below_zero(&self) -> usize {
        self.steps.iter().filter(|s| s.below_zero).count()
    }

    /// The history, one message per line, and the verdict; `exact` when
    /// every change of a count travels in a message.
    pub fn render(&self, t: &Trace, frame: u64, exact: bool) -> String {
        let mut out = String::new();
        for s in &self.steps {
            let r = &t.records[s.record];
            let count = s.count.map_or("?".to_string(), |c| c.to_string());
            let mark = match (s.below_zero, exact) {
                (false, _) => "",
                (true, true) => "  <- decrement before its increment",
                (true, false) => "  <- below zero",
            };
            let how = if r.call_id == 0 { r.kind.name().to_string() } else { format!("call {}", crate::names::call_id(r.call_id)) };
            let _ = writeln!(
                out,
                "{:>8}.{:06} ms {} {how}: {} -> count {count}{mark}",
                s.ns / 1_000_000,
                s.ns % 1_000_000,
                t.names.thread(r.src),
                s.what
            );
        }
        if self.cut_requests > 0 {
            let _ =
                writeln!(out, "({} memory requests were cut short in the capture and may name frame {frame} unseen)", self.cut_requests);
        }
        let below = self.below_zero();
        let verdict = match (below, exact) {
            (0, _) => "the count never drops below zero: no decrement before its increment".to_string(),
            (n, true) => format!("{n} decrements before their increment"),
            (n, false) => format!(
                "the count drops below zero {n} times: increments no message carries (stores in the counter table), \
                 or decrements before their increment; --exact under a strategy that sends every change (atomic-ipc)"
            ),
        };
        let _ = write!(out, "frame {frame}: {} messages; {verdict}", self.steps.len());
        out
    }
}

/// `frame all`: the frames whose count dropped below zero, with the step
/// where it first did, and the verdict over every frame.
pub fn render_all(t: &Trace, all: &BTreeMap<u64, History>, exact: bool) -> String {
    let mut out = String::new();
    let mut below = 0;
    for (frame, h) in all {
        if let Some(s) = h.steps.iter().find(|s| s.below_zero) {
            below += h.below_zero();
            let r = &t.records[s.record];
            let _ = writeln!(out, "frame {frame}: below zero at {} ms: {} by {}", s.ns / 1_000_000, s.what, t.names.thread(r.src));
        }
    }
    let steps: usize = all.values().map(|h| h.steps.len()).sum();
    let what = if exact { "decrements before their increment" } else { "drops below zero" };
    let _ = write!(out, "{} frames followed through {steps} steps; {below} {what}", all.len());
    if let Some(cut) = all.values().next().map(|h| h.cut_requests).filter(|&c| c > 0) {
        let _ = write!(out, " ({cut} memory requests cut short in the capture)");
    }
    out
}

/// What one message does to the frame's count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    HandedOut,
    Freed,
    Delta(i8),
    None,
}

/// Every frame `request` (answered by `reply`) names, each once.
fn frames_named(request: &MemoryRequest, reply: Option<&MemoryReply>) -> BTreeSet<u64> {
    match (request, reply) {
        (MemoryRequest::AllocFrames { .. }, Some(MemoryReply::Frames { runs })) => {
            runs.iter().flat_map(|run| run.first..run.end().unwrap_or(u64::MAX)).collect()
        }
        (MemoryRequest::RefBatch { ops, .. }, _) => ops.iter().map(|op| u64::from(op.frame)).collect(),
        (MemoryRequest::FreeFrames { frames, .. } | MemoryRequest::Materialize { frames }, _) => {
            frames.iter().map(|&f| u64::from(f)).collect()
        }
        (MemoryRequest::TryRemoveUnique { frame, .. }, _) => BTreeSet::from([u64::from(*frame)]),
        _ => BTreeSet::new(),
    }
}

/// The steps `request` (answered by `reply`) makes for `frame`.
fn effects(request: &MemoryRequest, reply: Option<&MemoryReply>, frame: u64) -> Vec<(String, Change)> {
    let named = |f: u32| u64::from(f) == frame;
    match request {
        MemoryRequest::AllocFrames { .. } => match reply {
            Some(MemoryReply::Frames { runs }) if runs.iter().any(|run| (run.first..run.end().unwrap_or(u64::MAX)).contains(&frame)) => {
                vec![("AllocFrames: handed out".to_string(), Change::HandedOut)]
            }
            _ => Vec::new(),
        },
        MemoryRequest::RefBatch { ops } => {
            let of_frame: Vec<proto::RefOp> = ops.iter().copied().filter(|op| named(op.frame)).collect();
            proto::memory::commit_order(&of_frame)
                .map(|op| (format!("RefBatch ({} ops): {:+}", ops.len(), op.delta), Change::Delta(op.delta)))
                .collect()
        }
        MemoryRequest::FreeFrames { frames } if frames.iter().any(|&f| named(f)) => {
            vec![("FreeFrames".to_string(), Change::Freed)]
        }
        MemoryRequest::Materialize { frames } if frames.iter().any(|&f| named(f)) => vec![("Materialize".to_string(), Change::None)],
        MemoryRequest::TryRemoveUnique { frame: f } if named(*f) => {
            let answer = match reply {
                Some(MemoryReply::Unique(unique)) => format!(": unique={unique}"),
                _ => String::new(),
            };
            vec![(format!("TryRemoveUnique{answer}"), Change::None)]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use proto::{FrameRun, RefOp};

    use super::*;
    use crate::synth::Synth;

    fn batch(ops: &[RefOp]) -> MemoryRequest {
        MemoryRequest::RefBatch { ops: ops.iter().copied().collect() }
    }

    /// Frame 7 handed out, shared by a fork (+1 in the first batch), then
    /// dropped twice (second batch: +1 of another frame, -1, -1).
    fn capture(second: &[RefOp]) -> Trace {
        let mut s = Synth::named(1);
        let alloc = MemoryRequest::AllocFrames { count: 4 };
        let frames = MemoryReply::Frames { runs: [FrameRun::new(5, 4)].into_iter().collect() };
        s.memory_call(0, 1_000, &alloc, &frames);
        s.memory_call(0, 2_000, &batch(&[RefOp::inc(7), RefOp::inc(6)]), &MemoryReply::RefBatchDone { freed: 0 });
        s.memory_call(0, 3_000, &batch(second), &MemoryReply::RefBatchDone { freed: 1 });
        Trace::from_bytes(&s.bytes())
    }

    #[test]
    fn a_frame_is_followed_through_its_batches() {
        let t = capture(&[RefOp::dec(7), RefOp::inc(9), RefOp::dec(7)]);
        let h = History::of(&Requests::of(&t), 7);
        let counts: Vec<Option<i64>> = h.steps.iter().map(|s| s.count).collect();
        assert_eq!(counts, [Some(1), Some(2), Some(1), Some(0)]);
        assert_eq!(h.below_zero(), 0);
        let text = h.render(&t, 7, true);
        assert!(text.contains("AllocFrames: handed out -> count 1"), "{text}");
        assert!(text.ends_with("frame 7: 4 messages; the count never drops below zero: no decrement before its increment"), "{text}");
        assert!(History::of(&Requests::of(&t), 42).steps.is_empty());
        // Every frame at once: 5..=8 handed out, 6 and 9 named as well.
        let all = History::all(&Requests::of(&t));
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), [5, 6, 7, 8, 9]);
        assert_eq!(all[&7], h);
        assert_eq!(render_all(&t, &all, true), "5 frames followed through 9 steps; 0 decrements before their increment");
    }

    #[test]
    fn a_decrement_before_its_increment_is_found() {
        // Three decrements of a frame counted twice: the third came early.
        let t = capture(&[RefOp::dec(7), RefOp::dec(7), RefOp::dec(7)]);
        let h = History::of(&Requests::of(&t), 7);
        assert_eq!(h.below_zero(), 1);
        assert!(h.render(&t, 7, true).contains("-> count -1  <- decrement before its increment"));
        assert!(h.render(&t, 7, false).contains("-> count -1  <- below zero"));
        assert!(h.render(&t, 7, false).ends_with("--exact under a strategy that sends every change (atomic-ipc)"));
        let all = render_all(&t, &History::all(&Requests::of(&t)), true);
        assert!(all.starts_with("frame 7: below zero at 0 ms: RefBatch (3 ops): -1 by process-server/1\n"), "{all}");
        assert!(all.ends_with("; 1 decrements before their increment"), "{all}");
    }

    #[test]
    fn increments_of_a_batch_count_before_its_decrements() {
        // Sent as -1, +1: the server commits the +1 first, so the count
        // never drops below zero.
        let mut s = Synth::named(1);
        let alloc = MemoryRequest::AllocFrames { count: 1 };
        s.memory_call(0, 1_000, &alloc, &MemoryReply::Frames { runs: [FrameRun::new(7, 1)].into_iter().collect() });
        s.memory_call(0, 2_000, &batch(&[RefOp::dec(7), RefOp::dec(7), RefOp::inc(7)]), &MemoryReply::RefBatchDone { freed: 1 });
        let t = Trace::from_bytes(&s.bytes());
        let h = History::of(&Requests::of(&t), 7);
        assert_eq!(h.steps.iter().map(|s| s.count).collect::<Vec<_>>(), [Some(1), Some(2), Some(1), Some(0)]);
        assert_eq!(h.below_zero(), 0);
    }

    #[test]
    fn cut_payloads_are_counted() {
        let mut s = Synth::named(1);
        s.memory_call_cut(0, 1_000, &batch(&[RefOp::inc(7), RefOp::inc(8)]), 3);
        let t = Trace::from_bytes(&s.bytes());
        let h = History::of(&Requests::of(&t), 7);
        assert_eq!((h.steps.len(), h.cut_requests), (0, 1));
        assert!(h.render(&t, 7, true).contains("1 memory requests were cut short"));
    }
}
