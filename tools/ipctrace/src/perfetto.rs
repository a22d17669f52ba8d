//! `export --perfetto`: the trace as Perfetto TrackEvent protobuf.
//!
//! Owns the mapping of the capture onto Perfetto's model: one process track,
//! a thread track per kernel thread carrying call slices (client side, call to
//! reply) and serve slices (server side, recv to reply) joined by a flow per
//! call id; a track per CPU with an instant per record; a counter track per CPU
//! counting records lost in its ring. Field numbers follow the upstream protos
//! (trace.proto, trace_packet.proto, track_event/track_event.proto,
//! track_event/track_descriptor.proto, thread_descriptor.proto,
//! process_descriptor.proto).

use std::collections::BTreeMap;

use trace::ThreadRef;

use crate::calls::Calls;
use crate::load::Trace;
use crate::protobuf::Msg;

// Trace
const TRACE_PACKET: u32 = 1;
// TracePacket
const PACKET_TIMESTAMP: u32 = 8;
const PACKET_SEQUENCE_ID: u32 = 10;
const PACKET_TRACK_EVENT: u32 = 11;
const PACKET_TRACK_DESCRIPTOR: u32 = 60;
// TrackDescriptor
const TRACK_UUID: u32 = 1;
const TRACK_NAME: u32 = 2;
const TRACK_PROCESS: u32 = 3;
const TRACK_THREAD: u32 = 4;
const TRACK_PARENT_UUID: u32 = 5;
const TRACK_COUNTER: u32 = 8;
// ProcessDescriptor / ThreadDescriptor
const PROCESS_PID: u32 = 1;
const PROCESS_NAME: u32 = 6;
const THREAD_PID: u32 = 1;
const THREAD_TID: u32 = 2;
const THREAD_NAME: u32 = 5;
// TrackEvent
const EVENT_DEBUG_ANNOTATIONS: u32 = 4;
const EVENT_TYPE: u32 = 9;
const EVENT_TRACK_UUID: u32 = 11;
const EVENT_CATEGORIES: u32 = 22;
const EVENT_NAME: u32 = 23;
const EVENT_COUNTER_VALUE: u32 = 30;
const EVENT_FLOW_IDS: u32 = 47;
const EVENT_TERMINATING_FLOW_IDS: u32 = 48;
// DebugAnnotation
const ANNOTATION_UINT: u32 = 3;
const ANNOTATION_STRING: u32 = 6;
const ANNOTATION_NAME: u32 = 10;
// TrackEvent.Type
pub const SLICE_BEGIN: u64 = 1;
pub const SLICE_END: u64 = 2;
pub const INSTANT: u64 = 3;
pub const COUNTER: u64 = 4;

/// The pid of the one process all kernel threads are shown under.
const PID: u64 = 1;
/// All packets come from one writer sequence.
const SEQUENCE: u64 = 1;
const PROCESS_UUID: u64 = 1;

fn thread_uuid(i: usize) -> u64 {
    0x1_0000 + i as u64
}
fn cpu_uuid(cpu: u16) -> u64 {
    0x2_0000 + u64::from(cpu)
}
fn lost_uuid(cpu: u16) -> u64 {
    0x3_0000 + u64::from(cpu)
}

fn descriptor(out: &mut Msg, track: Msg) {
    let mut p = Msg::new();
    p.message(PACKET_TRACK_DESCRIPTOR, &track);
    out.message(TRACE_PACKET, &p);
}

/// One event, kept for sorting before it is written.
struct Event {
    ns: u64,
    /// Ends sort before begins at the same time, so back-to-back slices on one
    /// track do not appear nested.
    order: u8,
    msg: Msg,
}

fn event(ns: u64, ty: u64, track: u64) -> Event {
    let mut msg = Msg::new();
    msg.uint(EVENT_TYPE, ty).uint(EVENT_TRACK_UUID, track);
    let order = match ty {
        SLICE_END => 0,
        COUNTER => 1,
        SLICE_BEGIN => 2,
        _ => 3,
    };
    Event { ns, order, msg }
}

/// An instant's arguments: what `dump` prints after the names, as
/// Perfetto debug annotations.
fn record_arguments(t: &Trace, r: &trace::Record) -> Vec<Msg> {
    let text = |name: &str, value: &str| {
        let mut m = Msg::new();
        m.string(ANNOTATION_NAME, name).string(ANNOTATION_STRING, value);
        m
    };
    let number = |name: &str, value: u64| {
        let mut m = Msg::new();
        m.string(ANNOTATION_NAME, name).uint(ANNOTATION_UINT, value);
        m
    };
    let mut args = vec![text("label", &t.names.label(r.label)), number("len_bytes", u64::from(r.len)), number("seq", r.seq)];
    if r.call_id != 0 {
        args.push(text("call", &crate::names::call_id(r.call_id)));
    }
    if r.items != 0 {
        args.push(number("items", u64::from(r.items)));
    }
    if r.status != 0 {
        args.push(number("status", u64::from(r.status)));
    }
    if let Some(m) = crate::message::decode(t, r).filter(|_| r.has_message()) {
        args.push(text("message", &m.name));
        args.push(text("content", &m.body));
    }
    args
}

/// The whole trace as a serialized `perfetto.protos.Trace`.
pub fn export(t: &Trace) -> Vec<u8> {
    let mut out = Msg::new();
    let names = &t.names;
    let mut process = Msg::new();
    process.uint(PROCESS_PID, PID).string(PROCESS_NAME, "ipc");
    let mut track = Msg::new();
    track.uint(TRACK_UUID, PROCESS_UUID).message(TRACK_PROCESS, &process);
    descriptor(&mut out, track);

    let threads: BTreeMap<ThreadRef, u64> = t.threads().into_iter().enumerate().map(|(i, th)| (th, thread_uuid(i))).collect();
    for (i, (&th, &uuid)) in threads.iter().enumerate() {
        let mut td = Msg::new();
        td.uint(THREAD_PID, PID).uint(THREAD_TID, i as u64 + 2).string(THREAD_NAME, &names.thread(th));
        let mut track = Msg::new();
        track.uint(TRACK_UUID, uuid).uint(TRACK_PARENT_UUID, PROCESS_UUID).message(TRACK_THREAD, &td);
        descriptor(&mut out, track);
    }
    for cpu in t.cpus() {
        let mut track = Msg::new();
        track.uint(TRACK_UUID, cpu_uuid(cpu)).string(TRACK_NAME, &format!("cpu{cpu}"));
        descriptor(&mut out, track);
        let mut track = Msg::new();
        track.uint(TRACK_UUID, lost_uuid(cpu)).string(TRACK_NAME, &format!("cpu{cpu} records lost")).message(TRACK_COUNTER, &Msg::new());
        descriptor(&mut out, track);
    }

    let mut events = Vec::new();
    for (i, r) in t.records.iter().enumerate() {
        let mut e = event(t.ns(r.tsc), INSTANT, cpu_uuid(r.cpu));
        e.msg.string(EVENT_NAME, &crate::dump::title(t, i)).string(EVENT_CATEGORIES, "record");
        for annotation in record_arguments(t, r) {
            e.msg.message(EVENT_DEBUG_ANNOTATIONS, &annotation);
        }
        events.push(e);
    }
    for span in &Calls::pair(t).spans {
        let call = span.call(t);
        let (Some(reply), Some(&client)) = (span.reply, threads.get(&call.src)) else {
            continue;
        };
        let end = t.ns(t.records[reply].tsc);
        // The message's name (`memory.v7 AllocFrames`), else the label's.
        let label = crate::message::decode(t, call).map_or_else(|| names.label(call.label), |m| m.name);
        let mut b = event(t.ns(call.tsc), SLICE_BEGIN, client);
        b.msg
            .string(
                EVENT_NAME,
                &format!("call {} {label} #{}", names.endpoint(call.endpoint, span.call), crate::names::call_id(span.call_id)),
            )
            .string(EVENT_CATEGORIES, "ipc")
            .fixed64(EVENT_FLOW_IDS, span.call_id);
        events.push(b);
        events.push(event(end, SLICE_END, client));
        let server = span.server(t).and_then(|s| threads.get(&s));
        if let (Some(recv), Some(&server)) = (span.recv, server) {
            let mut b = event(t.ns(t.records[recv].tsc), SLICE_BEGIN, server);
            b.msg
                .string(EVENT_NAME, &format!("serve {label} #{}", crate::names::call_id(span.call_id)))
                .string(EVENT_CATEGORIES, "ipc")
                .fixed64(EVENT_TERMINATING_FLOW_IDS, span.call_id);
            events.push(b);
            events.push(event(end, SLICE_END, server));
        }
    }
    let mut dropped: BTreeMap<u16, u64> = BTreeMap::new();
    for l in &t.lost {
        let total = dropped.entry(l.cpu).or_default();
        *total += l.count;
        let mut e = event(t.ns(l.tsc), COUNTER, lost_uuid(l.cpu));
        e.msg.int(EVENT_COUNTER_VALUE, i64::try_from(*total).unwrap_or(i64::MAX));
        events.push(e);
    }

    events.sort_by_key(|e| (e.ns, e.order));
    for e in events {
        let mut p = Msg::new();
        p.uint(PACKET_TIMESTAMP, e.ns).uint(PACKET_SEQUENCE_ID, SEQUENCE).message(PACKET_TRACK_EVENT, &e.msg);
        out.message(TRACE_PACKET, &p);
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::read::{Value, fields, get};
    use crate::synth;

    /// Each packet's fields.
    fn packets(bytes: &[u8]) -> Vec<Vec<(u32, Value<'_>)>> {
        fields(bytes)
            .expect("trace parses")
            .into_iter()
            .map(|(f, v)| {
                assert_eq!(f, TRACE_PACKET);
                fields(v.bytes()).expect("packet parses")
            })
            .collect()
    }

    #[test]
    fn nested_trace_decodes_structurally() {
        let t = Trace::from_bytes(&synth::nested());
        let bytes = export(&t);
        let pkts = packets(&bytes);
        let mut tracks = BTreeMap::new();
        let mut thread_names = Vec::new();
        for p in &pkts {
            if let Some(d) = get(p, PACKET_TRACK_DESCRIPTOR) {
                let d = fields(d.bytes()).unwrap();
                let uuid = get(&d, TRACK_UUID).unwrap().uint();
                if let Some(th) = get(&d, TRACK_THREAD) {
                    let th = fields(th.bytes()).unwrap();
                    thread_names.push(get(&th, THREAD_NAME).unwrap().str().to_string());
                    assert_eq!(get(&d, TRACK_PARENT_UUID).unwrap().uint(), PROCESS_UUID);
                }
                assert!(tracks.insert(uuid, ()).is_none(), "track uuid {uuid} twice");
            }
        }
        assert_eq!(thread_names, ["client", "process-server/1", "memory-server", "t4.0"]);
        // 1 process, 4 threads, 2 CPUs with a counter track each.
        assert_eq!(tracks.len(), 1 + 4 + 2 * 2);

        let mut begins = 0;
        let mut ends = 0;
        let mut flows_out = Vec::new();
        let mut flows_in = Vec::new();
        let mut last_ts = 0;
        for p in &pkts {
            let Some(e) = get(p, PACKET_TRACK_EVENT) else {
                continue;
            };
            let ts = get(p, PACKET_TIMESTAMP).unwrap().uint();
            assert!(ts >= last_ts, "packets in time order");
            last_ts = ts;
            assert_eq!(get(p, PACKET_SEQUENCE_ID).unwrap().uint(), SEQUENCE);
            let e = fields(e.bytes()).unwrap();
            assert!(tracks.contains_key(&get(&e, EVENT_TRACK_UUID).unwrap().uint()), "event on a declared track");
            match get(&e, EVENT_TYPE).unwrap().uint() {
                SLICE_BEGIN => begins += 1,
                SLICE_END => ends += 1,
                INSTANT | COUNTER => {}
                other => panic!("unexpected type {other}"),
            }
            if let Some(Value::Fixed64(id)) = get(&e, EVENT_FLOW_IDS) {
                flows_out.push(*id);
            }
            if let Some(Value::Fixed64(id)) = get(&e, EVENT_TERMINATING_FLOW_IDS) {
                flows_in.push(*id);
            }
        }
        // Five calls, each a client slice and a server slice.
        assert_eq!((begins, ends), (10, 10));
        flows_out.sort_unstable();
        flows_in.sort_unstable();
        assert_eq!(flows_out, [1, 2, 3, 4, 5]);
        assert_eq!(flows_in, flows_out);
    }

    #[test]
    fn lost_records_become_a_counter() {
        let t = Trace::from_bytes(&synth::damaged());
        let bytes = export(&t);
        let counters: Vec<u64> = packets(&bytes)
            .iter()
            .filter_map(|p| get(p, PACKET_TRACK_EVENT).map(|e| fields(e.bytes()).unwrap()))
            .filter(|e| get(e, EVENT_TYPE).unwrap().uint() == COUNTER)
            .map(|e| get(&e, EVENT_COUNTER_VALUE).unwrap().uint())
            .collect();
        assert_eq!(counters, [3]);
    }
}
