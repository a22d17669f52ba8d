//! `chain`: the calls a request caused, as a tree.
//!
//! A call's children are the calls its server thread made between receiving
//! it and replying to it; their children likewise, recursively. Owns that rule
//! and the tree's text form; pairing comes from `calls`.

use std::fmt::Write;

use crate::calls::{Calls, Span};
use crate::load::{Trace, fmt_ns};

/// A call and the calls it caused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub call_id: u64,
    pub children: Vec<Node>,
}

/// Calls deeper than this are cut (ids are unique, so only a broken capture
/// could nest deeper than there are threads).
const MAX_DEPTH: usize = 64;

/// The tree under `call_id`, or `None` when no call has that id.
pub fn chain(t: &Trace, calls: &Calls, call_id: u64) -> Option<Node> {
    let span = calls.get(call_id)?;
    Some(node(t, calls, span, 0))
}

fn node(t: &Trace, calls: &Calls, span: &Span, depth: usize) -> Node {
    let mut children = Vec::new();
    if let (Some(server), true) = (span.server(t), depth < MAX_DEPTH) {
        let start = span.recv.map_or(span.call(t).tsc, |i| t.records[i].tsc);
        let end = span.reply.map_or(u64::MAX, |i| t.records[i].tsc);
        for child in &calls.spans {
            let c = child.call(t);
            if child.client(t) == server && c.tsc >= start && c.tsc <= end && child.call != span.call {
                children.push(node(t, calls, child, depth + 1));
            }
        }
    }
    Node { call_id: span.call_id, children }
}

/// One line per call, children indented under their parent.
pub fn render(t: &Trace, calls: &Calls, root: &Node) -> String {
    let mut s = String::new();
    line(&mut s, t, calls, root, 0);
    s
}

fn line(s: &mut String, t: &Trace, calls: &Calls, n: &Node, depth: usize) {
    let Some(span) = calls.get(n.call_id) else {
        return;
    };
    let call = span.call(t);
    let names = &t.names;
    let server = span.server(t).map_or_else(|| "?".to_string(), |th| names.thread(th));
    let ns = |x: Option<u64>| x.map_or_else(|| "?".to_string(), |x| fmt_ns(t.ticks_ns(x)));
    let _ = write!(
        s,
        "{:indent$}#{} {} -> {} ({}): {} label={} len={} total={} queue={} service={}",
        "",
        crate::names::call_id(n.call_id),
        names.thread(call.src),
        names.endpoint(call.endpoint, span.call),
        server,
        call.kind.name(),
        names.label(call.label),
        call.len,
        ns(span.total_ticks(t)),
        ns(span.queue_ticks(t)),
        ns(span.service_ticks(t)),
        indent = depth * 2,
    );
    let status = span.status(t);
    if status != 0 {
        let _ = write!(s, " status={status}");
    }
    if span.reply.is_none() {
        s.push_str(" (no reply)");
    }
    s.push('\n');
    for c in &n.children {
        line(s, t, calls, c, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    fn ids(n: &Node) -> Vec<(u64, Vec<u64>)> {
        let mut v = vec![(n.call_id, n.children.iter().map(|c| c.call_id).collect())];
        for c in &n.children {
            v.extend(ids(c));
        }
        v
    }

    #[test]
    fn nested_tree() {
        let t = Trace::from_bytes(&synth::nested());
        let calls = Calls::pair(&t);
        let root = chain(&t, &calls, 1).unwrap();
        // 1 caused 2 and 4; 2 caused 3; call 5 came later and is not part of it.
        assert_eq!(ids(&root), vec![(1, vec![2, 4]), (2, vec![3]), (3, vec![]), (4, vec![])]);
        let text = render(&t, &calls, &root);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "#0/1 client -> process (process-server/1): call label=1 len=16 total=1100ns queue=100ns service=1000ns");
        assert!(lines[1].starts_with("  #0/2 process-server/1 -> memory (memory-server): call label=RefBatch"), "{}", lines[1]);
        assert!(lines[2].starts_with("    #0/3 memory-server -> ep12 (t4.0)"), "{}", lines[2]);
        assert!(lines[3].starts_with("  #0/4 "), "{}", lines[3]);
    }

    #[test]
    fn leaf_and_unknown_ids() {
        let t = Trace::from_bytes(&synth::nested());
        let calls = Calls::pair(&t);
        assert_eq!(chain(&t, &calls, 5).unwrap().children, vec![]);
        assert_eq!(chain(&t, &calls, 42), None);
    }

    #[test]
    fn unanswered_call_is_marked() {
        let t = Trace::from_bytes(&synth::damaged());
        let calls = Calls::pair(&t);
        let root = chain(&t, &calls, 3).unwrap();
        assert!(render(&t, &calls, &root).contains("total=? queue=? service=? (no reply)"));
    }
}
