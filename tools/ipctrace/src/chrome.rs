//! `export --json`: the trace as Chrome trace-event JSON.
//!
//! Owns the mapping onto that format: process 1 holds a thread per kernel
//! thread with complete (`X`) events for calls (client side) and service
//! (server side) linked by flow events (`s`/`f`) per call id; process 2 holds a
//! thread per CPU with an instant per record and a counter of lost records.
//! Times are microseconds since the first record.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use trace::ThreadRef;

use crate::calls::Calls;
use crate::load::Trace;

const THREADS_PID: u64 = 1;
const CPUS_PID: u64 = 2;

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// `{"traceEvents": [...], "displayTimeUnit": "ns"}`.
pub fn export(t: &Trace) -> Value {
    let names = &t.names;
    let mut ev = vec![
        json!({"ph": "M", "name": "process_name", "pid": THREADS_PID, "args": {"name": "threads"}}),
        json!({"ph": "M", "name": "process_name", "pid": CPUS_PID, "args": {"name": "cpus"}}),
    ];
    let tids: BTreeMap<ThreadRef, u64> = t.threads().into_iter().enumerate().map(|(i, th)| (th, i as u64 + 1)).collect();
    for (&th, &tid) in &tids {
        ev.push(json!({"ph": "M", "name": "thread_name", "pid": THREADS_PID, "tid": tid,
                       "args": {"name": names.thread(th)}}));
    }
    for cpu in t.cpus() {
        ev.push(json!({"ph": "M", "name": "thread_name", "pid": CPUS_PID, "tid": cpu,
                       "args": {"name": format!("cpu{cpu}")}}));
    }
    for (i, r) in t.records.iter().enumerate() {
        ev.push(json!({"ph": "i", "s": "t", "cat": "record", "name": r.kind.name(), "ts": us(t.ns(r.tsc)),
                       "pid": CPUS_PID, "tid": r.cpu,
                       "args": {"line": crate::dump::line(t, i), "seq": r.seq}}));
    }
    for span in &Calls::pair(t).spans {
        let call = span.call(t);
        let (Some(reply), Some(&client)) = (span.reply, tids.get(&call.src)) else {
            continue;
        };
        let (start, end) = (t.ns(call.tsc), t.ns(t.records[reply].tsc));
        let label = names.label(call.label);
        let args = json!({
            "call_id": span.call_id, "endpoint": names.endpoint(call.endpoint, span.call), "label": label,
            "len": call.len, "status": span.status(t),
            "queue_ns": span.queue_ticks(t).map(|x| t.ticks_ns(x)),
            "service_ns": span.service_ticks(t).map(|x| t.ticks_ns(x)),
        });
        ev.push(json!({"ph": "X", "cat": "ipc", "name": format!("call {} {label}", names.endpoint(call.endpoint, span.call)),
                       "ts": us(start), "dur": us(end - start.min(end)), "pid": THREADS_PID, "tid": client,
                       "args": args}));
        let server = span.server(t).and_then(|s| tids.get(&s));
        if let (Some(recv), Some(&server)) = (span.recv, server) {
            let begin = t.ns(t.records[recv].tsc);
            ev.push(json!({"ph": "X", "cat": "ipc", "name": format!("serve {label}"), "ts": us(begin),
                           "dur": us(end.saturating_sub(begin)), "pid": THREADS_PID, "tid": server,
                           "args": {"call_id": span.call_id}}));
            ev.push(json!({"ph": "s", "cat": "ipc", "name": "call", "id": span.call_id, "ts": us(start),
                           "pid": THREADS_PID, "tid": client}));
            ev.push(json!({"ph": "f", "bp": "e", "cat": "ipc", "name": "call", "id": span.call_id,
                           "ts": us(begin), "pid": THREADS_PID, "tid": server}));
        }
    }
    let mut dropped: BTreeMap<u16, u64> = BTreeMap::new();
    for l in &t.lost {
        let total = dropped.entry(l.cpu).or_default();
        *total += l.count;
        ev.push(json!({"ph": "C", "name": format!("cpu{} records lost", l.cpu), "ts": us(t.ns(l.tsc)),
                       "pid": CPUS_PID, "args": {"lost": *total}}));
    }
    json!({"traceEvents": ev, "displayTimeUnit": "ns"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    fn of_phase<'a>(v: &'a Value, ph: &str) -> Vec<&'a Value> {
        v["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == ph).collect()
    }

    #[test]
    fn nested_trace_events() {
        let t = Trace::from_bytes(&synth::nested());
        let v = export(&t);
        // Round trip through text, as a viewer would read it.
        let v: Value = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        let meta = of_phase(&v, "M");
        assert!(meta.iter().any(|m| m["args"]["name"] == "process-server/1"));
        assert_eq!(meta.len(), 2 + 4 + 2);
        let x = of_phase(&v, "X");
        assert_eq!(x.len(), 10);
        let root = x.iter().find(|e| e["args"]["call_id"] == 1 && e["name"] == "call process 1").unwrap();
        assert_eq!(root["ts"], 0.0);
        assert_eq!(root["dur"], 1.1);
        assert_eq!(root["args"]["queue_ns"], 100);
        let (s, f) = (of_phase(&v, "s"), of_phase(&v, "f"));
        assert_eq!(s.len(), 5);
        assert_eq!(f.len(), 5);
        for start in s {
            let end = f.iter().find(|e| e["id"] == start["id"]).expect("flow has an end");
            assert!(end["ts"].as_f64() >= start["ts"].as_f64());
        }
        assert_eq!(of_phase(&v, "i").len(), t.records.len());
    }

    #[test]
    fn lost_counter_and_unreplied_calls() {
        let t = Trace::from_bytes(&synth::damaged());
        let v = export(&t);
        let c = of_phase(&v, "C");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["args"]["lost"], 3);
        // Two complete round trips; the unanswered call gets no slice.
        assert_eq!(of_phase(&v, "X").len(), 4);
    }
}
