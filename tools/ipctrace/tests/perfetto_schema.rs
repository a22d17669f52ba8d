//! `export --perfetto` checked against Perfetto's own schema: the merged
//! `perfetto_trace.proto` vendored in `third_party/perfetto` (with its
//! licence), compiled at test time by protox and decoded by prost-reflect.
//! Every packet must decode with no field the schema does not know, every
//! event must sit on a declared track, slices must begin and end in pairs on
//! each track, and instants must carry a readable name and arguments.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use trace::{Frame, Kind, MAX_FRAME_LEN, NameEntry, NameKind, Record, ThreadRef};

fn schema() -> MessageDescriptor {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../third_party/perfetto");
    let files = protox::compile(["perfetto_trace.proto"], [root]).expect("Perfetto's schema compiles");
    let pool = DescriptorPool::from_file_descriptor_set(files).expect("descriptor pool");
    pool.get_message_by_name("perfetto.protos.Trace").expect("the schema defines Trace")
}

/// A capture as the kernel writes it: names, nested calls on two CPUs, a
/// fault, a notification and a lost-records report.
fn capture() -> Vec<u8> {
    let (client, server, memory) = (ThreadRef::new(1, 0), ThreadRef::new(2, 0), ThreadRef::new(3, 1));
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_FRAME_LEN];
    let mut put = |frame: &Frame| {
        let n = trace::encode(frame, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    };
    put(&Frame::hello(1_000_000_000, 2));
    let names = [
        NameEntry::new(NameKind::Thread, 1, 0, "init"),
        NameEntry::new(NameKind::Thread, 3, 1, "memory-server"),
        NameEntry::new(NameKind::Endpoint, 10, 0, "process-server"),
        NameEntry::new(NameKind::Endpoint, 11, 0, "memory-server"),
    ];
    put(&Frame::Names { entries: trace::heapless::Vec::from_slice(&names).unwrap() });
    let record = |kind, tsc, src, dst, endpoint, call_id, label: u64| Record {
        tsc,
        src,
        dst,
        endpoint,
        call_id,
        label,
        len: 32,
        ..Record::empty(kind)
    };
    let process = proto::PROCESS_PROTOCOL;
    let mut cpu0 = [
        record(Kind::Call, 100, client, ThreadRef::NONE, 10, 1, process),
        record(Kind::Recv, 110, client, server, 10, 1, process),
        record(Kind::Call, 120, server, ThreadRef::NONE, 11, 2, proto::MEMORY_PROTOCOL),
        record(Kind::Reply, 400, server, client, 10, 1, process),
        record(Kind::FaultDelivery, 500, client, server, 10, 3, abi::msg::kernel_label::FAULT),
        record(Kind::Recv, 510, client, server, 10, 3, abi::msg::kernel_label::FAULT),
        record(Kind::FaultReply, 600, server, client, 10, 3, 0),
        record(Kind::NotifySignal, 700, server, ThreadRef::NONE, 12, 0, 0),
    ];
    cpu0[2].items = 160;
    // The first call carries its message: a whole process-protocol Fork.
    let mut fork = [0u8; 64];
    let fork_len = proto::encode(&proto::ProcessRequest::Fork { resume: 0x1000, stack: 0x2000, cpu: Some(1) }, &mut fork).unwrap();
    (cpu0[0].len, cpu0[0].flags) = (32 + fork_len as u32, Record::FLAG_MESSAGE);
    let cpu1 =
        [record(Kind::Recv, 200, server, memory, 11, 2, proto::MEMORY_PROTOCOL), record(Kind::ReplyRecv, 300, memory, server, 11, 2, 0)];
    for (cpu, records) in [(0u16, &cpu0[..]), (1, &cpu1[..])] {
        let mut records = records.to_vec();
        for (seq, r) in records.iter_mut().enumerate() {
            (r.cpu, r.seq) = (cpu, seq as u64);
        }
        put(&Frame::Batch { cpu, records: trace::heapless::Vec::from_slice(&records).unwrap() });
    }
    put(&Frame::Message { cpu: 0, seq: 0, mrs: [0; 4], payload: trace::heapless::Vec::from_slice(&fork[..fork_len]).unwrap() });
    put(&Frame::Lost { cpu: 1, count: 4 });
    out
}

fn export(capture: &[u8]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("ipctrace-perfetto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output): (PathBuf, PathBuf) = (dir.join("in.trace"), dir.join("out.pftrace"));
    std::fs::write(&input, capture).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_ipctrace")).arg(&input).args(["export", "--perfetto"]).arg(&output).status().unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&output).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    bytes
}

/// Every field of `message` and of the messages inside it that the schema
/// does not define, as `path.field_number`.
fn unknown_fields(message: &DynamicMessage, path: &str, found: &mut Vec<String>) {
    for field in message.unknown_fields() {
        found.push(format!("{path}.{}", field.number()));
    }
    for (field, value) in message.fields() {
        let path = format!("{path}.{}", field.name());
        let mut visit = |value: &Value| {
            if let Value::Message(inner) = value {
                unknown_fields(inner, &path, found);
            }
        };
        match value {
            Value::List(values) => values.iter().for_each(&mut visit),
            Value::Map(entries) => entries.values().for_each(&mut visit),
            value => visit(value),
        }
    }
}

fn uint(message: &DynamicMessage, name: &str) -> Option<u64> {
    message.has_field_by_name(name).then(|| message.get_field_by_name(name)?.as_u64()).flatten()
}

fn sub(message: &DynamicMessage, name: &str) -> Option<DynamicMessage> {
    message.has_field_by_name(name).then(|| message.get_field_by_name(name)?.as_message().cloned()).flatten()
}

#[test]
fn the_export_is_what_perfettos_schema_says() {
    let trace = DynamicMessage::decode(schema(), export(&capture()).as_slice()).expect("decodes as perfetto.protos.Trace");
    let mut unknown = Vec::new();
    unknown_fields(&trace, "Trace", &mut unknown);
    assert!(unknown.is_empty(), "fields Perfetto's schema does not know: {unknown:?}");

    let packets = trace.get_field_by_name("packet").unwrap().as_list().unwrap().to_vec();
    let mut tracks = HashSet::new();
    let mut depth: HashMap<u64, i64> = HashMap::new();
    let mut instants = 0;
    let mut messages = Vec::new();
    for packet in packets.iter().map(|p| p.as_message().unwrap().clone()) {
        if let Some(track) = sub(&packet, "track_descriptor") {
            assert!(tracks.insert(uint(&track, "uuid").unwrap()), "a track declared twice");
            continue;
        }
        let event = sub(&packet, "track_event").expect("a packet is a track or an event");
        let track = uint(&event, "track_uuid").unwrap();
        assert!(tracks.contains(&track), "event on undeclared track {track}");
        let kind = event.get_field_by_name("type").unwrap().as_enum_number().unwrap();
        let name = event.get_field_by_name("name").map(|v| v.as_str().unwrap_or_default().to_string()).unwrap_or_default();
        match kind {
            1 => {
                *depth.entry(track).or_default() += 1;
                if name.contains(&format!("{} Fork", process_label())) {
                    messages.push(name.clone());
                }
            }
            2 => {
                let d = depth.entry(track).or_default();
                *d -= 1;
                assert!(*d >= 0, "a slice ends before it begins on track {track}");
            }
            3 => {
                instants += 1;
                assert!(name.contains(": ") && !name.starts_with(' ') && !name.contains(" ms "), "instant named {name:?}");
                let args = event.get_field_by_name("debug_annotations").unwrap().as_list().unwrap().to_vec();
                assert!(args.len() >= 3, "instant {name:?} has {} arguments", args.len());
                for arg in args.iter().map(|a| a.as_message().unwrap().clone()) {
                    let text = |field: &str| arg.get_field_by_name(field).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                    if text("name") == "message" {
                        messages.push(text("string_value"));
                    }
                }
            }
            4 => {}
            other => panic!("event type {other}"),
        }
    }
    assert!(depth.values().all(|&d| d == 0), "unbalanced slices: {depth:?}");
    assert_eq!(instants, 10, "one instant per record");
    let fork = format!("{} Fork", process_label());
    let want = [format!("call process-server {fork} #0/1"), fork.clone(), format!("serve {fork} #0/1")];
    assert_eq!(messages, want, "the call's slices and instant name its message");
    assert!(tracks.len() >= 1 + 3 + 2 * 2, "process, threads, CPUs and their lost counters: {}", tracks.len());
}

/// The checker itself catches a field the schema lacks.
#[test]
fn an_unknown_field_is_caught() {
    // Trace { packet { 999: 1 } }: field 999 of TracePacket is not defined.
    let bytes = [0x0A, 0x03, 0xB8, 0x3E, 0x01];
    let trace = DynamicMessage::decode(schema(), bytes.as_slice()).unwrap();
    let mut unknown = Vec::new();
    unknown_fields(&trace, "Trace", &mut unknown);
    assert_eq!(unknown, ["Trace.packet.999"]);
}

/// How ipctrace names the process protocol's label (`process.vN`).
fn process_label() -> String {
    format!("process.v{}", proto::version_of(proto::PROCESS_PROTOCOL))
}
