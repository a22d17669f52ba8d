//! Reading a capture file into memory: frames decoded, names collected, damage
//! kept for `check` to report.
//!
//! Owns the in-memory [`Trace`] and the conversion of TSC ticks to time. It
//! never fails on bad bytes: whatever cannot be read becomes a [`Damage`] entry.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use trace::{Damage, DecodeStats, Decoder, Frame, Item, MESSAGE_REGISTERS, Record, ThreadRef};

pub use crate::names::Names;

/// The TSC rate assumed when the capture has no Hello: ticks print as ns.
pub const DEFAULT_TSC_HZ: u64 = 1_000_000_000;

/// The capture's Hello frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub format_version: u16,
    pub tsc_hz: u64,
    pub cpus: u16,
}

/// A `Lost` frame, placed in time after the last record of its CPU read before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lost {
    pub cpu: u16,
    pub count: u64,
    pub tsc: u64,
}

/// What a `Message` frame kept of a record's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub mrs: [u64; MESSAGE_REGISTERS],
    /// The first bytes of the IPC-buffer payload (all of them when their
    /// count is the record's [`Record::payload_len`]).
    pub payload: Vec<u8>,
}

/// A whole capture.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The first Hello.
    pub hello: Option<Hello>,
    /// How many Hello frames there were (more than one: the writer restarted).
    pub hellos: usize,
    /// Every record, in file order.
    pub records: Vec<Record>,
    pub names: Names,
    pub lost: Vec<Lost>,
    pub damage: Vec<Damage>,
    pub decode: DecodeStats,
    /// The messages of records, by the record's CPU and sequence number.
    pub messages: HashMap<(u16, u64), Message>,
    /// Records whose `cpu` differs from the CPU of the batch carrying them.
    pub cpu_mismatch: u64,
    /// The earliest timestamp: time zero for every `*_ns` figure.
    pub t0: u64,
}

impl Trace {
    /// Reads the capture at `path`; a format this ipctrace does not read is
    /// an error (its frames would not decode, or decode as something else).
    pub fn load(path: &Path) -> anyhow::Result<Trace> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let t = Trace::from_bytes(&bytes);
        if let Some(h) = t.hello.filter(|h| !trace::reads_format(h.format_version)) {
            bail!(
                "{} is in trace format {}; this ipctrace reads formats {} to {}",
                path.display(),
                h.format_version,
                trace::OLDEST_FORMAT_VERSION,
                trace::FORMAT_VERSION
            );
        }
        Ok(t)
    }

    /// The message of record `r`, when the capture holds it.
    pub fn message(&self, r: &Record) -> Option<&Message> {
        self.messages.get(&(r.cpu, r.seq)).filter(|_| r.has_message())
    }

    pub fn from_bytes(bytes: &[u8]) -> Trace {
        let mut t = Trace::default();
        let mut decoder = Decoder::new();
        let mut last_tsc: HashMap<u16, u64> = HashMap::new();
        decoder.push_with(bytes, &mut |item| t.take(item, &mut last_tsc));
        if let Some(d) = decoder.finish() {
            t.damage.push(d);
        }
        t.decode = decoder.stats();
        t.t0 = t.records.iter().map(|r| r.tsc).min().unwrap_or(0);
        t.names.derive(&t.records);
        t
    }

    fn take(&mut self, item: Item, last_tsc: &mut HashMap<u16, u64>) {
        match item {
            Item::Damage(d) => self.damage.push(d),
            Item::Frame(Frame::Hello { format_version, tsc_hz, cpus }) => {
                self.hellos += 1;
                if self.hello.is_none() {
                    self.hello = Some(Hello { format_version, tsc_hz, cpus });
                }
            }
            Item::Frame(Frame::Names { entries }) => {
                for e in &entries {
                    self.names.add(e, self.records.len());
                }
            }
            Item::Frame(Frame::Batch { cpu, records }) => {
                for r in records {
                    if r.cpu != cpu {
                        self.cpu_mismatch += 1;
                    }
                    last_tsc.insert(r.cpu, r.tsc);
                    self.records.push(r);
                }
            }
            Item::Frame(Frame::Message { cpu, seq, mrs, payload }) => {
                self.messages.insert((cpu, seq), Message { mrs, payload: payload.to_vec() });
            }
            Item::Frame(Frame::Lost { cpu, count }) => {
                let tsc = last_tsc.get(&cpu).copied().unwrap_or(0);
                self.lost.push(Lost { cpu, count, tsc });
            }
        }
    }

    pub fn tsc_hz(&self) -> u64 {
        match self.hello {
            Some(h) if h.tsc_hz > 0 => h.tsc_hz,
            _ => DEFAULT_TSC_HZ,
        }
    }

    /// A span of `ticks` in nanoseconds.
    pub fn ticks_ns(&self, ticks: u64) -> u64 {
        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(self.tsc_hz());
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// A timestamp in nanoseconds since the earliest record.
    pub fn ns(&self, tsc: u64) -> u64 {
        self.ticks_ns(tsc.saturating_sub(self.t0))
    }

    /// Every thread that appears in a record, in id order.
    pub fn threads(&self) -> Vec<ThreadRef> {
        let mut v: Vec<ThreadRef> = self.records.iter().flat_map(|r| [r.src, r.dst]).filter(|t| !t.is_none()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Every CPU that wrote a record or lost one, in order.
    pub fn cpus(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.records.iter().map(|r| r.cpu).chain(self.lost.iter().map(|l| l.cpu)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Indices of the records in time order (file order among equal stamps).
    pub fn by_time(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.records.len()).collect();
        idx.sort_by_key(|&i| self.records[i].tsc);
        idx
    }
}

/// A duration in nanoseconds for people: ns, us or ms.
pub fn fmt_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{ns}ns")
    } else if ns < 10_000_000 {
        format!("{:.1}us", ns as f64 / 1e3)
    } else {
        format!("{:.1}ms", ns as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::synth;

    #[test]
    fn frames_become_a_trace() {
        let t = Trace::from_bytes(&synth::nested());
        assert_eq!(t.hello, Some(Hello { format_version: trace::FORMAT_VERSION, tsc_hz: 1_000_000_000, cpus: 2 }));
        assert_eq!(t.records.len(), 15);
        assert_eq!(t.names.thread(synth::SERVER), "process-server/1");
        assert_eq!(t.names.thread(ThreadRef::new(9, 1)), "t9.1");
        assert_eq!(t.names.thread(ThreadRef::NONE), "-");
        assert_eq!(t.names.endpoint(synth::EP_MEMORY, 0), "memory");
        assert_eq!(t.names.label(synth::LABEL_REF_BATCH), "RefBatch");
        assert_eq!(t.names.label(77), "77");
        assert_eq!(t.threads().len(), 4);
        assert_eq!(t.cpus(), [0, 1]);
        assert_eq!(t.t0, 1_000);
    }

    #[test]
    fn ticks_convert_with_the_hello_rate() {
        let mut t = Trace { hello: Some(Hello { format_version: 1, tsc_hz: 2_500_000_000, cpus: 1 }), ..Trace::default() };
        t.t0 = 1_000;
        assert_eq!(t.ns(1_000 + 2_500), 1_000);
        assert_eq!(t.ticks_ns(u64::MAX), u64::MAX / 5 * 2);
        // Without a Hello (or with a zero rate), ticks are taken as ns.
        t.hello = None;
        assert_eq!(t.ns(1_500), 500);
    }

    #[test]
    fn lost_is_placed_after_its_cpus_last_record() {
        let t = Trace::from_bytes(&synth::damaged());
        assert_eq!(t.lost, [Lost { cpu: 0, count: 3, tsc: 120 }]);
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(fmt_ns(999), "999ns");
        assert_eq!(fmt_ns(12_345), "12.3us");
        assert_eq!(fmt_ns(12_345_678), "12.3ms");
    }

    /// Every command over `bytes`: none may panic.
    fn every_command(bytes: &[u8]) {
        let t = Trace::from_bytes(bytes);
        let _ = crate::dump::dump(&t, &crate::dump::Filter::default());
        let _ = crate::stats::Stats::of(&t).render();
        let rep = crate::check::Report::of(&t);
        let _ = rep.render(&t);
        let calls = crate::calls::Calls::pair(&t);
        for s in &calls.spans {
            if let Some(n) = crate::chain::chain(&t, &calls, s.call_id) {
                let _ = crate::chain::render(&t, &calls, &n);
            }
        }
        let _ = crate::perfetto::export(&t);
        let _ = crate::chrome::export(&t);
    }

    #[test]
    fn damaged_captures_are_reported() {
        let good = synth::nested();
        for cut in [1, good.len() / 3, good.len() / 2, good.len() - 1] {
            let mut bytes = good.clone();
            bytes[cut] ^= 0x5A;
            every_command(&bytes);
            let t = Trace::from_bytes(&bytes);
            assert!(crate::check::Report::of(&t).problems() > 0, "flip at {cut} noticed");
            every_command(&good[..cut]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn noise_never_panics(noise in proptest::collection::vec(any::<u8>(), 0..512), at in 0usize..2000) {
            let mut bytes = synth::nested();
            let at = at.min(bytes.len());
            bytes.splice(at..at, noise);
            every_command(&bytes);
        }
    }
}
