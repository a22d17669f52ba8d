//! `dump`: one line per record, in time order, with names resolved and filters
//! applied.
//!
//! Owns the filter and the line format; reads a loaded [`Trace`] and nothing else.

use std::fmt::Write;

use trace::{Kind, Record};

use crate::load::Trace;

/// Which records to print. Every set field must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// A thread as source or destination: its name, `t<id>.<generation>` or
    /// its id.
    pub thread: Option<String>,
    /// An endpoint: its name, `ep<id>` or its id.
    pub endpoint: Option<String>,
    pub cpu: Option<u16>,
    pub kind: Option<Kind>,
    /// Time window in ns since the first record, both ends inclusive.
    pub from_ns: Option<u64>,
    pub to_ns: Option<u64>,
}

impl Filter {
    /// Whether record `i` of `t` passes.
    pub fn matches(&self, t: &Trace, i: usize) -> bool {
        let r = &t.records[i];
        let ns = t.ns(r.tsc);
        self.thread.as_deref().is_none_or(|th| t.names.thread_is(r.src, th) || t.names.thread_is(r.dst, th))
            && self.endpoint.as_deref().is_none_or(|e| t.names.endpoint_is(r.endpoint, i, e))
            && self.cpu.is_none_or(|c| r.cpu == c)
            && self.kind.is_none_or(|k| r.kind == k)
            && self.from_ns.is_none_or(|f| ns >= f)
            && self.to_ns.is_none_or(|to| ns <= to)
    }
}

/// The matching records, one line each.
pub fn dump(t: &Trace, filter: &Filter) -> Vec<String> {
    t.by_time().into_iter().filter(|&i| filter.matches(t, i)).map(|i| line(t, i)).collect()
}

/// `<who> <arrow> <whom>: <kind>`: what record `i` says, without its time
/// and fields (the name of an instant event in the exports).
pub fn title(t: &Trace, i: usize) -> String {
    let (r, n) = (&t.records[i], &t.names);
    let (who, arrow, whom) = match r.kind {
        Kind::Send | Kind::Call | Kind::FaultDelivery | Kind::NotifySignal => (n.thread(r.src), "->", n.endpoint(r.endpoint, i)),
        Kind::Recv => (n.thread(r.dst), "<-", n.thread(r.src)),
        Kind::NotifyWait => (n.thread(r.dst), "<-", n.endpoint(r.endpoint, i)),
        Kind::Reply | Kind::ReplyRecv | Kind::FaultReply | Kind::Kill => (n.thread(r.src), "->", n.thread(r.dst)),
        Kind::CowCopy | Kind::CowReuse => (n.thread(r.src), "->", "kernel".to_string()),
    };
    format!("{who} {arrow} {whom}: {}", r.kind.name())
}

/// `<ms> ms cpu<N> #<seq> <who> <arrow> <whom>: <kind> label=<label> ...`,
/// the time in milliseconds since the first record.
pub fn line(t: &Trace, i: usize) -> String {
    let (r, n) = (&t.records[i], &t.names);
    let ns = t.ns(r.tsc);
    let mut s = format!("{:>8}.{:06} ms cpu{} #{} {}", ns / 1_000_000, ns % 1_000_000, r.cpu, r.seq, title(t, i));
    // Fields that carry nothing for this kind are left out.
    let sends = matches!(r.kind, Kind::Send | Kind::Call | Kind::Recv | Kind::FaultDelivery);
    if sends || r.label != 0 {
        let _ = write!(s, " label={}", n.label(r.label));
    }
    if r.len != 0 {
        let _ = write!(s, " len={}B", r.len);
    }
    if r.caps != 0 {
        let _ = write!(s, " caps={}", r.caps);
    }
    if r.items != 0 {
        let _ = write!(s, " items={}", r.items);
    }
    if r.badge != 0 {
        let _ = write!(s, " badge={:#x}", r.badge);
    }
    if r.kind == Kind::Recv && r.endpoint != Record::NO_ENDPOINT {
        let _ = write!(s, " via={}", n.endpoint(r.endpoint, i));
    }
    if r.call_id != 0 {
        let _ = write!(s, " call={}", crate::names::call_id(r.call_id));
    }
    if r.status != 0 {
        let _ = write!(s, " status={}", r.status);
    }
    if r.fast_path() {
        s.push_str(" fast");
    }
    if let Some(m) = crate::message::decode(t, r).filter(|_| r.has_message()) {
        let _ = write!(s, " | {}: {}", m.name, m.body);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    #[test]
    fn lines_resolve_names() {
        let t = Trace::from_bytes(&synth::nested());
        let lines = dump(&t, &Filter::default());
        assert_eq!(lines.len(), t.records.len());
        assert_eq!(lines[0], "       0.000000 ms cpu0 #0 client -> process: call label=1 len=16B call=0/1");
        assert!(lines[2].ends_with("process-server/1 -> memory: call label=RefBatch len=128B call=0/2"), "{}", lines[2]);
        assert!(lines[3].ends_with("memory-server <- process-server/1: recv label=0 via=memory call=0/2"), "{}", lines[3]);
        // Unnamed thread and endpoint print as numbers.
        assert!(lines[4].ends_with("memory-server -> ep12: call label=9 len=8B call=0/3"), "{}", lines[4]);
        assert!(lines[6].contains("t4.0 -> memory-server: reply-recv call=0/3 fast"), "{}", lines[6]);
    }

    #[test]
    fn lines_show_items_when_said() {
        let t = Trace::from_bytes(&synth::batches());
        let lines = dump(&t, &Filter::default());
        assert!(lines[0].ends_with("process-server/1 -> memory: call label=RefBatch len=96B items=16 call=0/1"), "{}", lines[0]);
        let zero = lines.iter().filter(|l| l.contains(": call label=RefBatch"));
        assert_eq!(zero.filter(|l| !l.contains(" items=")).count(), 1);
        assert!(lines.last().unwrap().ends_with(": send label=RefBatch items=255"));
        assert!(lines.iter().all(|l| !l.contains(": reply") || !l.contains("items=")));
    }

    #[test]
    fn lines_show_the_message() {
        let mut s = synth::Synth::named(1);
        let request = proto::MemoryRequest::AllocFrames { count: 8 };
        let reply = proto::MemoryReply::Frames { runs: [proto::FrameRun::new(40, 8)].into_iter().collect() };
        s.memory_call(0, 1_000, &request, &reply);
        let lines = dump(&Trace::from_bytes(&s.bytes()), &Filter::default());
        assert!(lines[0].ends_with("| memory.v7 AllocFrames: AllocFrames { count: 8 }"), "{}", lines[0]);
        assert!(lines[2].ends_with("| memory.v7 Frames: Frames { runs: [FrameRun { first: 40, count: 8 }] }"), "{}", lines[2]);
    }

    #[test]
    fn lines_are_in_time_order_across_cpus() {
        let t = Trace::from_bytes(&synth::nested());
        let ns: Vec<u64> =
            dump(&t, &Filter::default()).iter().map(|l| l.split_whitespace().next().unwrap().replace('.', "").parse().unwrap()).collect();
        assert!(ns.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn filters_select() {
        let t = Trace::from_bytes(&synth::nested());
        let count = |f: Filter| dump(&t, &f).len();
        assert_eq!(count(Filter { cpu: Some(1), ..Filter::default() }), 5);
        assert_eq!(count(Filter { kind: Some(Kind::Call), ..Filter::default() }), 5);
        assert_eq!(count(Filter { endpoint: Some(format!("ep{}", synth::EP_DISK)), ..Filter::default() }), 2);
        // The disk thread: its recv and its reply, by id, by id and
        // generation.
        for name in [synth::DISK.id.to_string(), "t4.0".into()] {
            assert_eq!(count(Filter { thread: Some(name.clone()), ..Filter::default() }), 2, "{name}");
        }
        assert_eq!(count(Filter { thread: Some("memory-server".into()), ..Filter::default() }), 9);
        assert_eq!(count(Filter { endpoint: Some("memory".into()), ..Filter::default() }), 6);
        assert_eq!(count(Filter { thread: Some("nobody".into()), ..Filter::default() }), 0);
        // 1000..1300 ticks at 1 GHz after t0 = 1000: calls 1, 2, recvs of 1, 2.
        let window = Filter { from_ns: Some(0), to_ns: Some(300), ..Filter::default() };
        assert_eq!(count(window), 4);
        let both = Filter { kind: Some(Kind::Recv), cpu: Some(0), ..Filter::default() };
        assert!(dump(&t, &both).iter().all(|l| l.contains(" cpu0 ") && l.contains(": recv ")));
    }
}
