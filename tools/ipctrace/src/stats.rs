//! `stats`: message counts, bytes, errors, batching (items per message) and
//! call latencies, per endpoint and label, per endpoint and message (when
//! the capture holds messages: `memory.v7 AllocFrames`), and per client
//! thread.
//!
//! Owns the grouping and the percentile arithmetic; latencies come from the
//! spans of `calls`, split into queueing (call to the server's recv) and
//! service (recv to reply).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use trace::{Kind, ThreadRef};

use crate::calls::Calls;
use crate::load::{Trace, fmt_ns};

/// p50, p99 and max of a set of durations, in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Latency {
    /// Nearest-rank percentiles of `ns` (sorted in place).
    pub fn of(ns: &mut [u64]) -> Latency {
        ns.sort_unstable();
        let rank = |p: u64| {
            let n = ns.len() as u64;
            let r = (p * n).div_ceil(100).max(1);
            ns[(r - 1) as usize]
        };
        match ns.last() {
            None => Latency::default(),
            Some(&max) => Latency { samples: ns.len() as u64, p50: rank(50), p99: rank(99), max },
        }
    }

    fn cell(&self) -> String {
        if self.samples == 0 {
            return "-".into();
        }
        format!("{}/{}/{}", fmt_ns(self.p50), fmt_ns(self.p99), fmt_ns(self.max))
    }
}

/// The figures of one group.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Row {
    /// What the table prints: `endpoint label`, or the client's name.
    pub name: String,
    /// The endpoint of an endpoint-and-label row, as `dump` names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The label of an endpoint-and-label row, by name and as a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_value: Option<u64>,
    /// The message of an endpoint-and-message row (`memory.v7 RefBatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The sending thread of a client row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Messages sent: sends, calls, fault deliveries and signals.
    pub count: u64,
    pub bytes: u64,
    /// Messages or replies with a non-zero status.
    pub errors: u64,
    /// Messages whose sender said how many items they carry (`items` > 0).
    pub batched: u64,
    /// The items those messages carried, in all.
    pub items: u64,
    /// `items / batched`; `None` (JSON `null`, "-" in the table) when no
    /// message said.
    pub items_per_msg: Option<f64>,
    pub queue: Latency,
    pub service: Latency,
    pub total: Latency,
}

#[derive(Default)]
struct Acc {
    count: u64,
    bytes: u64,
    errors: u64,
    batched: u64,
    items: u64,
    queue: Vec<u64>,
    service: Vec<u64>,
    total: Vec<u64>,
}

impl Acc {
    fn row(mut self, name: String) -> Row {
        Row {
            name,
            endpoint: None,
            label: None,
            label_value: None,
            message: None,
            client: None,
            count: self.count,
            bytes: self.bytes,
            errors: self.errors,
            batched: self.batched,
            items: self.items,
            items_per_msg: (self.batched > 0).then(|| self.items as f64 / self.batched as f64),
            queue: Latency::of(&mut self.queue),
            service: Latency::of(&mut self.service),
            total: Latency::of(&mut self.total),
        }
    }
}

/// The tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub by_endpoint_label: Vec<Row>,
    /// Empty when the capture holds no messages (format 1, `trace_payload=none`).
    pub by_endpoint_message: Vec<Row>,
    pub by_client: Vec<Row>,
}

/// The name of the message record `r` carries, when the capture holds it.
fn message_name(t: &Trace, r: &trace::Record) -> Option<String> {
    t.message(r)?;
    crate::message::decode(t, r).map(|m| m.name)
}

fn is_message(k: Kind) -> bool {
    matches!(k, Kind::Send | Kind::Call | Kind::FaultDelivery | Kind::NotifySignal)
}

impl Stats {
    pub fn of(t: &Trace) -> Stats {
        let n = &t.names;
        // Endpoints by the name they had at the record: a reused id is
        // another endpoint.
        let mut by_ep: BTreeMap<(u32, String, u64), Acc> = BTreeMap::new();
        let mut by_client: BTreeMap<ThreadRef, Acc> = BTreeMap::new();
        let mut by_msg: BTreeMap<(String, String), Acc> = BTreeMap::new();
        let mut none = Acc::default();
        for (i, r) in t.records.iter().enumerate().filter(|(_, r)| is_message(r.kind)) {
            let msg = match message_name(t, r) {
                Some(m) => by_msg.entry((n.endpoint(r.endpoint, i), m)).or_default(),
                None => &mut none,
            };
            for acc in
                [by_ep.entry((r.endpoint, n.endpoint(r.endpoint, i), r.label)).or_default(), by_client.entry(r.src).or_default(), msg]
            {
                acc.count += 1;
                acc.bytes += u64::from(r.len);
                // A failed call is counted once, with its span below.
                acc.errors += u64::from(r.status != 0 && !r.kind.opens_call());
                acc.batched += u64::from(r.items != 0);
                acc.items += u64::from(r.items);
            }
        }
        for span in &Calls::pair(t).spans {
            let call = span.call(t);
            let queue = span.queue_ticks(t).map(|x| t.ticks_ns(x));
            let service = span.service_ticks(t).map(|x| t.ticks_ns(x));
            let total = span.total_ticks(t).map(|x| t.ticks_ns(x));
            let failed = span.status(t) != 0;
            let msg = match message_name(t, call) {
                Some(m) => by_msg.entry((n.endpoint(call.endpoint, span.call), m)).or_default(),
                None => &mut none,
            };
            for acc in [
                by_ep.entry((call.endpoint, n.endpoint(call.endpoint, span.call), call.label)).or_default(),
                by_client.entry(call.src).or_default(),
                msg,
            ] {
                acc.errors += u64::from(failed);
                acc.queue.extend(queue);
                acc.service.extend(service);
                acc.total.extend(total);
            }
        }
        Stats {
            by_endpoint_label: by_ep
                .into_iter()
                .map(|((_, endpoint, l), acc)| {
                    let row = acc.row(format!("{endpoint} {}", n.label(l)));
                    Row { endpoint: Some(endpoint), label: Some(n.label(l)), label_value: Some(l), ..row }
                })
                .collect(),
            by_endpoint_message: by_msg
                .into_iter()
                .map(|((endpoint, message), acc)| Row {
                    endpoint: Some(endpoint.clone()),
                    message: Some(message.clone()),
                    ..acc.row(format!("{endpoint} {message}"))
                })
                .collect(),
            by_client: by_client.into_iter().map(|(th, acc)| Row { client: Some(n.thread(th)), ..acc.row(n.thread(th)) }).collect(),
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        table(&mut s, "endpoint label", &self.by_endpoint_label);
        s.push('\n');
        if !self.by_endpoint_message.is_empty() {
            table(&mut s, "endpoint message", &self.by_endpoint_message);
            s.push('\n');
        }
        table(&mut s, "client", &self.by_client);
        s
    }
}

fn table(s: &mut String, what: &str, rows: &[Row]) {
    let w = rows.iter().map(|r| r.name.len()).chain([what.len()]).max().unwrap_or(0);
    let mut line = |name: &str, figures: [&str; 4], lat: [&str; 3]| {
        let [count, bytes, errors, items] = figures;
        let l = format!("{name:<w$} {count:>8} {bytes:>10} {errors:>6} {items:>9}  {:<26} {:<26} {}", lat[0], lat[1], lat[2]);
        let _ = writeln!(s, "{}", l.trim_end());
    };
    line(what, ["count", "bytes", "errors", "items/msg"], ["queue p50/p99/max", "service p50/p99/max", "total p50/p99/max"]);
    for r in rows {
        let lat = [r.queue.cell(), r.service.cell(), r.total.cell()];
        let figures =
            [r.count.to_string(), r.bytes.to_string(), r.errors.to_string(), r.items_per_msg.map_or("-".into(), |m| format!("{m:.1}"))];
        line(&r.name, figures.each_ref().map(|x| x.as_str()), lat.each_ref().map(|x| x.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(Latency::of(&mut v), Latency { samples: 100, p50: 50, p99: 99, max: 100 });
        assert_eq!(Latency::of(&mut [7]), Latency { samples: 1, p50: 7, p99: 7, max: 7 });
        assert_eq!(Latency::of(&mut []), Latency::default());
    }

    #[test]
    fn ping_pong_figures() {
        let t = Trace::from_bytes(&synth::ping_pong());
        let st = Stats::of(&t);
        assert_eq!(st.by_endpoint_label.len(), 1);
        let row = &st.by_endpoint_label[0];
        assert_eq!(row.name, "process 1");
        assert_eq!((row.count, row.bytes, row.errors), (10, 640, 1));
        // queue 100..=109, service 1000..=1090 step 10.
        assert_eq!(row.queue, Latency { samples: 10, p50: 104, p99: 109, max: 109 });
        assert_eq!(row.service, Latency { samples: 10, p50: 1040, p99: 1090, max: 1090 });
        assert_eq!(row.total.max, 1199);
        assert_eq!(st.by_client.len(), 1);
        assert_eq!(st.by_client[0].name, "client");
        assert_eq!(st.by_client[0].count, 10);
    }

    #[test]
    fn groups_split_by_label_and_client() {
        let t = Trace::from_bytes(&synth::nested());
        let st = Stats::of(&t);
        let names: Vec<&str> = st.by_endpoint_label.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["process 1", "memory 2", "memory RefBatch", "ep12 9"]);
        let refbatch = &st.by_endpoint_label[2];
        assert_eq!((refbatch.count, refbatch.bytes), (2, 192));
        assert_eq!(refbatch.service.max, 400);
        let clients: Vec<(&str, u64)> = st.by_client.iter().map(|r| (r.name.as_str(), r.count)).collect();
        assert_eq!(clients, [("client", 2), ("process-server/1", 2), ("memory-server", 1)]);
        let text = st.render();
        assert!(text.lines().any(|l| l.starts_with("memory RefBatch") && l.contains("150ns/400ns/400ns")), "{text}");
        assert!(text.lines().all(|l| l == l.trim_end()), "no trailing blanks");
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["by_client"][0]["count"], 2);
    }

    #[test]
    fn items_per_message_counts_only_messages_that_say() {
        let t = Trace::from_bytes(&synth::batches());
        let st = Stats::of(&t);
        let row = |name: &str| st.by_endpoint_label.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no row {name}"));
        // 16 + 16 + 5 + 255 items in four messages; the call that said 0 and
        // the recv that repeated a count are not in the mean.
        let refbatch = row("memory RefBatch");
        assert_eq!(refbatch.count, 5);
        assert_eq!((refbatch.batched, refbatch.items), (4, 292));
        assert_eq!(refbatch.items_per_msg, Some(73.0));
        let process = row("process 1");
        assert_eq!((process.count, process.batched, process.items), (4, 0, 0));
        assert_eq!(process.items_per_msg, None);
        let server = &st.by_client.iter().find(|r| r.name == "process-server/1");
        assert_eq!(server.map(|r| (r.batched, r.items)), Some((4, 292)));

        let text = st.render();
        let header = text.lines().next().unwrap();
        let column = header.split_whitespace().position(|w| w == "items/msg");
        assert_eq!(column, Some(5), "{header}");
        let cell = |prefix: &str| {
            let l = text.lines().find(|l| l.starts_with(prefix)).unwrap();
            // The fourth figure after the name: count, bytes, errors, items/msg.
            l[prefix.len()..].split_whitespace().nth(3).unwrap().to_owned()
        };
        assert_eq!(cell("memory RefBatch"), "73.0", "{text}");
        assert_eq!(cell("process 1"), "-", "{text}");

        let json = serde_json::to_value(&st).unwrap();
        let rows = json["by_endpoint_label"].as_array().unwrap();
        let refbatch = rows.iter().find(|r| r["name"] == "memory RefBatch").unwrap();
        assert_eq!(refbatch["batched"], 4);
        assert_eq!(refbatch["items"], 292);
        assert_eq!(refbatch["items_per_msg"], 73.0);
        let process = rows.iter().find(|r| r["name"] == "process 1").unwrap();
        assert!(process["items_per_msg"].is_null());
    }

    #[test]
    fn items_per_message_is_a_mean() {
        let mut s = synth::Synth::named(1);
        for (i, items) in [1u8, 2, 2].into_iter().enumerate() {
            s.call_items(0, 100 * i as u64, (synth::SERVER, synth::EP_MEMORY), 5, 8, items);
        }
        let st = Stats::of(&Trace::from_bytes(&s.bytes()));
        assert_eq!(st.by_endpoint_label[0].items_per_msg, Some(5.0 / 3.0));
        assert!(st.render().lines().any(|l| l.starts_with("memory 5") && l.contains(" 1.7 ")), "{}", st.render());
        assert!(st.by_endpoint_message.is_empty() && !st.render().contains("endpoint message"), "no messages, no table");
    }

    #[test]
    fn messages_group_by_name() {
        use proto::{FrameRun, MemoryReply, MemoryRequest, RefOp};
        let mut s = synth::Synth::named(1);
        let frames = MemoryReply::Frames { runs: [FrameRun::new(5, 1)].into_iter().collect() };
        let done = MemoryReply::RefBatchDone { freed: 0 };
        s.memory_call(0, 1_000, &MemoryRequest::AllocFrames { count: 1 }, &frames);
        s.memory_call(0, 2_000, &MemoryRequest::RefBatch { ops: [RefOp::dec(5)].into_iter().collect() }, &done);
        s.memory_call(0, 3_000, &MemoryRequest::AllocFrames { count: 1 }, &frames);
        let st = Stats::of(&Trace::from_bytes(&s.bytes()));
        let rows: Vec<(&str, u64, u64)> = st.by_endpoint_message.iter().map(|r| (r.name.as_str(), r.count, r.total.samples)).collect();
        assert_eq!(rows, [("memory memory.v7 AllocFrames", 2, 2), ("memory memory.v7 RefBatch", 1, 1)]);
        assert_eq!(st.by_endpoint_message[0].message.as_deref(), Some("memory.v7 AllocFrames"));
        assert!(st.render().contains("endpoint message"));
    }
}
