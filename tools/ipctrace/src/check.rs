//! `check`: is the capture complete and consistent?
//!
//! Owns the list of problems a capture can have — sequence gaps, time running
//! backwards, unpaired calls and replies, records lost in the kernel's rings,
//! damage on the wire — and the verdict. It reports; it repairs nothing.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use serde::Serialize;
use trace::{Kind, Record, ThreadRef};

use crate::calls::Calls;
use crate::load::Trace;

/// Per-CPU findings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuReport {
    pub records: u64,
    /// Places where the sequence jumped forward, and the numbers skipped.
    pub gaps: u64,
    pub missing: u64,
    /// Places where the sequence did not increase (repeat or step back).
    pub seq_backwards: u64,
    /// Places where the TSC decreased from one record to the next.
    pub time_backwards: u64,
    /// Records reported dropped by `Lost` frames.
    pub lost: u64,
}

/// The thread that acts in `r`: the one that sends, calls, replies, signals
/// or faults, or the one that receives or wakes.
fn actor(r: &Record) -> ThreadRef {
    match r.kind {
        Kind::Recv | Kind::NotifyWait => r.dst,
        _ => r.src,
    }
}

/// Everything `check` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub cpus: BTreeMap<u16, CpuReport>,
    pub no_hello: bool,
    pub hellos: usize,
    /// Calls without a reply whose caller acted again afterwards: a caller
    /// cannot act while its call waits, so their reply is missing.
    pub unreplied_calls: Vec<u64>,
    /// Calls without a reply whose caller never acts again: still waiting
    /// when the capture ends, or ended by their caller's exit (a process's
    /// `Exit` call is never answered). Not a problem.
    pub open_calls: Vec<u64>,
    pub orphan_replies: Vec<u64>,
    pub duplicate_calls: Vec<u64>,
    pub cpu_mismatch: u64,
    pub damaged_frames: u64,
    pub damaged_bytes: u64,
    /// Records marked as having a message whose `Message` frame never came
    /// (the flight recorder overwrote it, or it was lost on the way).
    pub missing_messages: u64,
}

impl Report {
    pub fn of(t: &Trace) -> Report {
        let mut rep = Report {
            no_hello: t.hello.is_none(),
            hellos: t.hellos,
            cpu_mismatch: t.cpu_mismatch,
            damaged_frames: t.decode.bad_frames,
            damaged_bytes: t.decode.bytes_skipped,
            ..Report::default()
        };
        // File order within a CPU is the order that CPU wrote its records.
        let mut last: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
        for r in &t.records {
            let cpu = rep.cpus.entry(r.cpu).or_default();
            cpu.records += 1;
            if let Some(&(seq, tsc)) = last.get(&r.cpu) {
                if r.seq > seq + 1 {
                    cpu.gaps += 1;
                    cpu.missing += r.seq - seq - 1;
                } else if r.seq <= seq {
                    cpu.seq_backwards += 1;
                }
                if r.tsc < tsc {
                    cpu.time_backwards += 1;
                }
            }
            last.insert(r.cpu, (r.seq, r.tsc));
            if r.has_message() && t.message(r).is_none() {
                rep.missing_messages += 1;
            }
        }
        for l in &t.lost {
            rep.cpus.entry(l.cpu).or_default().lost += l.count;
        }
        let calls = Calls::pair(t);
        let order = t.by_time();
        let mut last_act: HashMap<ThreadRef, usize> = HashMap::new();
        for (at, &i) in order.iter().enumerate() {
            last_act.insert(actor(&t.records[i]), at);
        }
        let position: HashMap<usize, usize> = order.iter().enumerate().map(|(at, &i)| (i, at)).collect();
        for span in calls.spans.iter().filter(|s| s.reply.is_none()) {
            let caller = span.call(t).src;
            let acted_again = last_act.get(&caller).is_some_and(|&at| at > position[&span.call]);
            if acted_again { &mut rep.unreplied_calls } else { &mut rep.open_calls }.push(span.call_id);
        }
        rep.orphan_replies = calls.orphan_replies.iter().map(|&i| t.records[i].call_id).collect();
        rep.duplicate_calls = calls.duplicate_calls.iter().map(|&i| t.records[i].call_id).collect();
        rep
    }

    /// How many distinct problems were found; 0 means the capture is clean.
    pub fn problems(&self) -> u64 {
        let cpu: u64 = self.cpus.values().map(|c| c.gaps + c.seq_backwards + c.time_backwards + u64::from(c.lost > 0)).sum();
        cpu + u64::from(self.no_hello)
            + u64::from(self.hellos > 1)
            + self.unreplied_calls.len() as u64
            + self.orphan_replies.len() as u64
            + self.duplicate_calls.len() as u64
            + self.cpu_mismatch
            + self.damaged_frames
            + u64::from(self.missing_messages > 0)
    }

    pub fn summary(&self) -> String {
        let sum = |f: fn(&CpuReport) -> u64| self.cpus.values().map(f).sum::<u64>();
        let records = sum(|c| c.records);
        let problems = self.problems();
        if problems == 0 {
            return format!("check: ok, {records} records on {} CPUs", self.cpus.len());
        }
        format!(
            "check: {problems} problems in {records} records: {} gaps ({} missing), {} lost, \
             {} time backwards, {} seq backwards, {} unreplied calls, {} orphan replies, \
             {} damaged frames ({} bytes)",
            sum(|c| c.gaps),
            sum(|c| c.missing),
            sum(|c| c.lost),
            sum(|c| c.time_backwards),
            sum(|c| c.seq_backwards),
            self.unreplied_calls.len(),
            self.orphan_replies.len(),
            self.damaged_frames,
            self.damaged_bytes,
        )
    }

    /// The details, one finding per line, then the summary.
    pub fn render(&self, t: &Trace) -> String {
        let mut s = String::new();
        if self.no_hello {
            s.push_str("no Hello frame: TSC rate unknown, times are raw ticks\n");
        }
        if self.hellos > 1 {
            let _ = writeln!(s, "{} Hello frames: the writer restarted during the capture", self.hellos);
        }
        for (cpu, c) in &self.cpus {
            let _ = write!(s, "cpu{cpu}: {} records", c.records);
            if c.gaps > 0 {
                let _ = write!(s, ", {} sequence gaps ({} missing)", c.gaps, c.missing);
            }
            if c.lost > 0 {
                let _ = write!(s, ", {} lost in the ring", c.lost);
            }
            if c.missing > c.lost {
                let _ = write!(s, ", {} missing not explained by Lost frames", c.missing - c.lost);
            }
            if c.seq_backwards > 0 {
                let _ = write!(s, ", sequence repeats or steps back {} times", c.seq_backwards);
            }
            if c.time_backwards > 0 {
                let _ = write!(s, ", time goes backwards {} times", c.time_backwards);
            }
            s.push('\n');
        }
        let list = |ids: &[u64]| ids.iter().map(|&id| crate::names::call_id(id)).collect::<Vec<_>>().join(" ");
        if !self.unreplied_calls.is_empty() {
            let _ = writeln!(s, "calls without reply, whose caller went on: {}", list(&self.unreplied_calls));
        }
        if !self.open_calls.is_empty() {
            let _ = writeln!(
                s,
                "{} calls still open at the end or ended by their caller's exit (not a problem): {}",
                self.open_calls.len(),
                list(&self.open_calls)
            );
        }
        if !self.orphan_replies.is_empty() {
            let _ = writeln!(s, "replies without call: {}", list(&self.orphan_replies));
        }
        if !self.duplicate_calls.is_empty() {
            let _ = writeln!(s, "call ids used twice: {}", list(&self.duplicate_calls));
        }
        if self.cpu_mismatch > 0 {
            let _ = writeln!(s, "{} records in a batch of another CPU", self.cpu_mismatch);
        }
        if self.missing_messages > 0 {
            let _ = writeln!(s, "{} records whose message never came", self.missing_messages);
        }
        for d in &t.damage {
            let _ = writeln!(s, "damage at byte {}: {} bytes skipped ({})", d.offset, d.bytes, d.reason.name());
        }
        s.push_str(&self.summary());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    #[test]
    fn clean_capture_passes() {
        let t = Trace::from_bytes(&synth::nested());
        let rep = Report::of(&t);
        assert_eq!(rep.problems(), 0, "{}", rep.render(&t));
        assert_eq!(rep.summary(), "check: ok, 15 records on 2 CPUs");
    }

    #[test]
    fn gaps_lost_and_unpaired_are_found() {
        let t = Trace::from_bytes(&synth::damaged());
        let rep = Report::of(&t);
        let cpu = &rep.cpus[&0];
        assert_eq!((cpu.records, cpu.gaps, cpu.missing, cpu.lost), (8, 1, 5, 3));
        // The client never acts after its last call: it is open, not lost.
        assert_eq!((rep.unreplied_calls.as_slice(), rep.open_calls.as_slice()), (&[][..], &[3][..]));
        assert_eq!(rep.orphan_replies, vec![999]);
        // A gap, a lost frame and an orphan reply.
        assert_eq!(rep.problems(), 3);
        let text = rep.render(&t);
        assert!(text.contains("2 missing not explained by Lost frames"), "{text}");
        assert!(text.ends_with("check: 3 problems in 8 records: 1 gaps (5 missing), 3 lost, 0 time backwards, 0 seq backwards, 0 unreplied calls, 1 orphan replies, 0 damaged frames (0 bytes)"), "{text}");
    }

    #[test]
    fn a_call_is_unreplied_only_if_its_caller_went_on() {
        let mut s = synth::Synth::new(1);
        let exit = s.call(0, 100, synth::CLIENT, synth::EP_SERVER, 1, 8);
        s.recv(0, 110, synth::SERVER, synth::CLIENT, synth::EP_SERVER, exit);
        let lost_reply = s.call(0, 200, synth::DISK, synth::EP_SERVER, 1, 8);
        s.call(0, 300, synth::DISK, synth::EP_MEMORY, 1, 8);
        let t = Trace::from_bytes(&s.bytes());
        let rep = Report::of(&t);
        assert_eq!(rep.unreplied_calls, vec![lost_reply]);
        assert_eq!(rep.open_calls.len(), 2, "the client's exit and the disk thread's last call");
        assert_eq!(rep.problems(), 1);
        assert!(rep.render(&t).contains("calls without reply, whose caller went on: 0/2"));
    }

    #[test]
    fn time_and_sequence_running_backwards() {
        let mut s = synth::Synth::new(1);
        s.round_trip(0, 500, (synth::CLIENT, synth::SERVER, synth::EP_SERVER), 1, 10, 10);
        let mut r = trace::Record::empty(trace::Kind::Send);
        r.tsc = 100;
        let r = s.record(r);
        // Replay the same record: its sequence number repeats.
        s.raw(&[]);
        let mut buf = [0u8; trace::MAX_FRAME_LEN];
        let n = trace::encode(&trace::Frame::Batch { cpu: 0, records: trace::heapless::Vec::from_slice(&[r]).unwrap() }, &mut buf).unwrap();
        s.raw(&buf[..n]);
        let t = Trace::from_bytes(&s.bytes());
        let rep = Report::of(&t);
        assert_eq!(rep.cpus[&0].time_backwards, 1);
        assert_eq!(rep.cpus[&0].seq_backwards, 1);
    }

    #[test]
    fn damage_and_missing_hello_are_problems() {
        let mut bytes = synth::ping_pong();
        // Garbage in the middle and a cut at the end.
        let mid = bytes.len() / 2;
        bytes.splice(mid..mid, [0x11, 0x22, 0x00]);
        bytes.truncate(bytes.len() - 7);
        let t = Trace::from_bytes(&bytes);
        let rep = Report::of(&t);
        assert!(rep.damaged_frames >= 2, "{}", rep.render(&t));
        assert!(rep.problems() >= 2);
        assert!(rep.render(&t).contains("truncated at end"));

        let t = Trace::from_bytes(&[]);
        let rep = Report::of(&t);
        assert!(rep.no_hello);
        assert_eq!(rep.problems(), 1);
    }
}
