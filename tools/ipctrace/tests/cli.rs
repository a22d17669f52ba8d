//! The binary end to end: a capture written with the `trace` encoder, read by
//! `ipctrace` as a user would run it.

use std::path::PathBuf;
use std::process::Command;

use trace::{Frame, Kind, MAX_FRAME_LEN, Record, ThreadRef};

fn capture(records: &[Record], lost: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_FRAME_LEN];
    let mut put = |f: &Frame| {
        let n = trace::encode(f, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    };
    put(&Frame::hello(1_000_000_000, 1));
    put(&Frame::Batch { cpu: 0, records: trace::heapless::Vec::from_slice(records).unwrap() });
    if lost > 0 {
        put(&Frame::Lost { cpu: 0, count: lost });
    }
    out
}

fn round_trip() -> Vec<Record> {
    let (a, b) = (ThreadRef::new(1, 0), ThreadRef::new(2, 0));
    let mut v = Vec::new();
    for (seq, kind, src, dst) in [(0, Kind::Call, a, ThreadRef::NONE), (1, Kind::Recv, a, b), (2, Kind::Reply, b, a)] {
        let mut r = Record::empty(kind);
        (r.seq, r.tsc, r.src, r.dst, r.endpoint, r.call_id, r.label) = (seq, 100 * seq, src, dst, 5, 42, 7);
        v.push(r);
    }
    v
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ipctrace-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn ipctrace(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ipctrace")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn clean_capture() {
    let path = write("clean.bin", &capture(&round_trip(), 0));
    let p = path.to_str().unwrap();
    let (code, out) = ipctrace(&[p, "check"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["cpu0: 3 records", "check: ok, 3 records on 1 CPUs"]);
    let (code, out) = ipctrace(&[p, "dump", "--kind", "call"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "0.000000 ms cpu0 #0 t1.0 -> ep5: call label=7 call=0/42");
    // By name too: the thread as dump prints it, the endpoint as `ep5`.
    let (_, by_name) = ipctrace(&[p, "dump", "--kind", "call", "--thread", "t1.0", "--endpoint", "ep5"]);
    assert_eq!(by_name, out);
    for id in ["42", "0/42"] {
        let (code, out) = ipctrace(&[p, "chain", id]);
        assert_eq!(code, 0);
        assert!(out.starts_with("#0/42 t1.0 -> ep5 (t2.0): call label=7 len=0 total=200ns"), "{out}");
    }
    let (code, out) = ipctrace(&[p, "stats", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = &v["by_endpoint_label"][0];
    assert_eq!(row["total"]["max"], 200);
    assert_eq!((row["endpoint"].as_str(), row["label"].as_str(), row["label_value"].as_u64()), (Some("ep5"), Some("7"), Some(7)));
    assert_eq!(v["by_client"][0]["client"], "t1.0");
    let pf = write("clean.pftrace", b"");
    let js = write("clean.json", b"");
    let (code, _) = ipctrace(&[p, "export", "--perfetto", pf.to_str().unwrap(), "--json", js.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!std::fs::read(&pf).unwrap().is_empty());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&js).unwrap()).unwrap();
    assert!(v["traceEvents"].as_array().unwrap().len() > 3);
    for f in [path, pf, js] {
        std::fs::remove_file(f).unwrap();
    }
}

/// `ipctrace FILE dump | head`: the reader goes away after a few lines.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let records: Vec<Record> = (0..16 * 400)
        .map(|i| {
            let mut r = Record::empty(Kind::Send);
            (r.seq, r.tsc, r.src, r.endpoint, r.label) = (i, 10 * i, ThreadRef::new(1, 0), 5, 7);
            r
        })
        .collect();
    let mut bytes = capture(&records[..16], 0);
    let mut buf = [0u8; MAX_FRAME_LEN];
    for chunk in records[16..].chunks(16) {
        let n = trace::encode(&Frame::Batch { cpu: 0, records: trace::heapless::Vec::from_slice(chunk).unwrap() }, &mut buf).unwrap();
        bytes.extend_from_slice(&buf[..n]);
    }
    let path = write("long.bin", &bytes);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipctrace"))
        .args([path.to_str().unwrap(), "dump"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{:?} {stderr}", out.status);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn damaged_capture_fails_check_without_crashing() {
    let mut bytes = capture(&round_trip(), 2);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    bytes.extend_from_slice(&[0x13, 0x37]);
    let path = write("damaged.bin", &bytes);
    let p = path.to_str().unwrap();
    let (code, out) = ipctrace(&[p, "check"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().last().unwrap().starts_with("check: "), "{out}");
    assert!(out.contains("truncated at end"), "{out}");
    for args in [vec![p, "dump"], vec![p, "stats"]] {
        assert_eq!(ipctrace(&args).0, 0);
    }
    // Unknown call id and a missing file are errors, not panics.
    assert_eq!(ipctrace(&[p, "chain", "999"]).0, 2);
    assert_eq!(ipctrace(&["/nonexistent/capture", "check"]).0, 2);
    std::fs::remove_file(path).unwrap();
}

/// `capture` with a Hello of format `version` in place of this crate's.
fn capture_of_format(version: u16) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let n = trace::encode(&Frame::Hello { format_version: version, tsc_hz: 1_000_000_000, cpus: 1 }, &mut buf).unwrap();
    let mut out = buf[..n].to_vec();
    // Everything after the Hello, as `capture` writes it.
    let rest = capture(&round_trip(), 0);
    let first_end = rest.iter().position(|&b| b == 0).unwrap();
    out.extend_from_slice(&rest[first_end + 1..]);
    out
}

#[test]
fn format_versions_are_read_or_refused_by_name() {
    // Version 1 had no Message frames and the same records: it reads.
    let old = write("v1.bin", &capture_of_format(1));
    let (code, out) = ipctrace(&[old.to_str().unwrap(), "check"]);
    assert_eq!((code, out.lines().last()), (0, Some("check: ok, 3 records on 1 CPUs")));
    // A later version is refused, saying which versions this one reads.
    let new = write("v9.bin", &capture_of_format(9));
    let out = Command::new(env!("CARGO_BIN_EXE_ipctrace")).args([new.to_str().unwrap(), "dump"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("is in trace format 9; this ipctrace reads formats 1 to 2"), "{stderr}");
}
