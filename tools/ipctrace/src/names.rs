//! How records speak: the names of threads, endpoints and labels, and the
//! form of call ids.
//!
//! - Threads are named by `(id, generation)`, so a reused thread slot is not
//!   taken for its previous occupant. An unnamed thread that receives on a
//!   named endpoint is called after it (`process-server/t2.0`).
//! - Endpoint records carry the endpoint's id only, so an endpoint name
//!   holds from the record where it was announced on: the kernel sends every
//!   record written before a name ahead of it.
//! - Labels are named by a `Names` frame, else by their protocol and version
//!   (`libs/proto`), else by the kernel's own labels (`libs/abi`), else
//!   printed as numbers.
//! - A call id is the CPU that gave it and that CPU's counter: `cpu/seq`.

use std::collections::HashMap;

use trace::{Kind, NameEntry, NameKind, Record, ThreadRef};

/// Bits of a call id below the CPU number (the kernel's `new_call_id`).
const CALL_SEQ_BITS: u32 = 48;

/// Every name a capture announced, and those derived from its records.
#[derive(Clone, Debug, Default)]
pub struct Names {
    threads: HashMap<ThreadRef, String>,
    /// Per endpoint id, the names it had, each with the index of the first
    /// record it applies to, in that order.
    endpoints: HashMap<u32, Vec<(usize, String)>>,
    labels: HashMap<u64, String>,
    /// Unnamed threads, called after the endpoint they receive on.
    served: HashMap<ThreadRef, String>,
}

impl Names {
    /// Takes `entry`, announced when `at` records had been read.
    pub fn add(&mut self, entry: &NameEntry, at: usize) {
        let name = entry.name.as_str().to_string();
        match entry.kind {
            NameKind::Thread => {
                self.threads.insert(ThreadRef::new(entry.id, entry.generation), name);
            }
            NameKind::Endpoint => self.endpoints.entry(entry.id).or_default().push((at, name)),
            NameKind::Label => {
                self.labels.insert(entry.label_value(), name);
            }
        }
    }

    /// Names the unnamed threads that receive on a named endpoint; call once
    /// every record is in.
    pub fn derive(&mut self, records: &[Record]) {
        for (i, r) in records.iter().enumerate() {
            if r.kind != Kind::Recv || r.dst.is_none() || self.threads.contains_key(&r.dst) || self.served.contains_key(&r.dst) {
                continue;
            }
            if let Some(endpoint) = self.endpoint_name(r.endpoint, i) {
                self.served.insert(r.dst, format!("{endpoint}/{}", thread_id(r.dst)));
            }
        }
    }

    /// A thread's name, or `t<id>.<generation>`.
    pub fn thread(&self, t: ThreadRef) -> String {
        if t.is_none() {
            return "-".into();
        }
        self.threads.get(&t).or_else(|| self.served.get(&t)).cloned().unwrap_or_else(|| thread_id(t))
    }

    /// Whether `text` names thread `t`: its name, `t<id>.<generation>`, or
    /// its id alone.
    pub fn thread_is(&self, t: ThreadRef, text: &str) -> bool {
        !t.is_none() && (self.thread(t) == text || thread_id(t) == text || t.id.to_string() == text)
    }

    fn endpoint_name(&self, e: u32, at: usize) -> Option<&str> {
        let names = self.endpoints.get(&e)?;
        names.iter().rev().find(|(from, _)| *from <= at).map(|(_, name)| name.as_str())
    }

    /// The name endpoint `e` had at record `at`, or `ep<id>`.
    pub fn endpoint(&self, e: u32, at: usize) -> String {
        if e == Record::NO_ENDPOINT {
            return "-".into();
        }
        self.endpoint_name(e, at).map_or_else(|| format!("ep{e}"), str::to_string)
    }

    /// Whether `text` names the endpoint of record `at`: its name then,
    /// `ep<id>`, or its id alone.
    pub fn endpoint_is(&self, e: u32, at: usize, text: &str) -> bool {
        e != Record::NO_ENDPOINT && (self.endpoint(e, at) == text || format!("ep{e}") == text || e.to_string() == text)
    }

    /// A label's name: announced, else `memory.v4`-style for the protocols
    /// of `libs/proto`, else `fault` for the kernel's fault label, else its
    /// number.
    pub fn label(&self, l: u64) -> String {
        if let Some(name) = self.labels.get(&l) {
            return name.clone();
        }
        let protocol = proto::protocol_of(l);
        for (known, name) in [(proto::MEMORY_PROTOCOL, "memory"), (proto::PROCESS_PROTOCOL, "process")] {
            if protocol == proto::protocol_of(known) {
                return format!("{name}.v{}", proto::version_of(l));
            }
        }
        if l == abi::msg::kernel_label::FAULT { "fault".into() } else { l.to_string() }
    }
}

/// `t<id>.<generation>`.
fn thread_id(t: ThreadRef) -> String {
    format!("t{}.{}", t.id, t.generation)
}

/// A call id as `cpu/seq`.
pub fn call_id(id: u64) -> String {
    format!("{}/{}", id >> CALL_SEQ_BITS, id & ((1 << CALL_SEQ_BITS) - 1))
}

/// Reads a call id written as `cpu/seq`, or as the raw number.
pub fn parse_call_id(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a call id; write it as CPU/SEQ (as dump prints it) or as a number");
    match text.split_once('/') {
        Some((cpu, seq)) => {
            let cpu: u64 = cpu.trim().parse().map_err(|_| bad())?;
            let seq: u64 = seq.trim().parse().map_err(|_| bad())?;
            if cpu >= 1 << (64 - CALL_SEQ_BITS) || seq >= 1 << CALL_SEQ_BITS {
                return Err(bad());
            }
            Ok(cpu << CALL_SEQ_BITS | seq)
        }
        None => text.trim().parse().map_err(|_| bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: u32, name: &str) -> NameEntry {
        NameEntry::new(NameKind::Endpoint, id, 0, name)
    }

    #[test]
    fn an_endpoint_name_holds_from_its_announcement() {
        let mut names = Names::default();
        names.add(&endpoint(5, "echo"), 0);
        names.add(&endpoint(5, "memory-server"), 10);
        assert_eq!(names.endpoint(5, 3), "echo");
        assert_eq!(names.endpoint(5, 10), "memory-server");
        assert_eq!(names.endpoint(6, 10), "ep6");
        let mut late = Names::default();
        late.add(&endpoint(5, "memory-server"), 10);
        assert_eq!(late.endpoint(5, 9), "ep5", "a record before the name is not given it");
        assert!(late.endpoint_is(5, 12, "memory-server") && late.endpoint_is(5, 1, "ep5") && late.endpoint_is(5, 1, "5"));
    }

    #[test]
    fn threads_are_named_by_generation_and_by_what_they_serve() {
        let mut names = Names::default();
        names.add(&NameEntry::new(NameKind::Thread, 3, 1, "init"), 0);
        names.add(&endpoint(9, "process-server"), 0);
        let server = ThreadRef::new(2, 0);
        let recv = Record { dst: server, src: ThreadRef::new(3, 1), endpoint: 9, ..Record::empty(Kind::Recv) };
        names.derive(&[recv]);
        assert_eq!(names.thread(ThreadRef::new(3, 1)), "init");
        assert_eq!(names.thread(ThreadRef::new(3, 2)), "t3.2", "a reused slot is not its old occupant");
        assert_eq!(names.thread(server), "process-server/t2.0");
        assert!(names.thread_is(server, "process-server/t2.0") && names.thread_is(server, "t2.0") && names.thread_is(server, "2"));
        assert!(!names.thread_is(ThreadRef::NONE, "-"));
    }

    #[test]
    fn labels_speak_protocols() {
        let names = Names::default();
        assert_eq!(names.label(proto::MEMORY_PROTOCOL), "memory.v7");
        assert_eq!(names.label(proto::PROCESS_PROTOCOL), "process.v8");
        assert_eq!(names.label(abi::msg::kernel_label::FAULT), "fault");
        assert_eq!(names.label(7), "7");
    }

    #[test]
    fn call_ids_are_cpu_slash_seq_both_ways() {
        assert_eq!(call_id(281474976710657), "1/1");
        assert_eq!(call_id(206), "0/206");
        assert_eq!(parse_call_id("1/1"), Ok(281474976710657));
        assert_eq!(parse_call_id("206"), Ok(206));
        assert!(parse_call_id("1/x").is_err() && parse_call_id("70000/1").is_err() && parse_call_id("").is_err());
    }
}
