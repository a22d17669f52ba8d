//! Synthetic captures for the tests, written with the `trace` crate's encoder
//! exactly as the kernel will write them.
//!
//! Owns the builder and a few canonical scenarios (a ping-pong, a nested chain,
//! reference-count batches, a capture with a gap and a lost frame). Test-only: nothing here ships.

use std::collections::BTreeMap;

use trace::{BATCH_MAX, Frame, Kind, MAX_FRAME_LEN, NameEntry, NameKind, Record, ThreadRef};

/// Builds a capture record by record.
pub struct Synth {
    bytes: Vec<u8>,
    pending: BTreeMap<u16, Vec<Record>>,
    /// `Message` frames of pending records, sent after their batches.
    messages: Vec<Frame>,
    seq: BTreeMap<u16, u64>,
    next_call: u64,
}

pub const CLIENT: ThreadRef = ThreadRef::new(1, 0);
pub const SERVER: ThreadRef = ThreadRef::new(2, 0);
pub const MEMORY: ThreadRef = ThreadRef::new(3, 0);
pub const DISK: ThreadRef = ThreadRef::new(4, 0);
pub const EP_SERVER: u32 = 10;
pub const EP_MEMORY: u32 = 11;
pub const EP_DISK: u32 = 12;
pub const LABEL_REF_BATCH: u64 = 0x0001_0000_0007;

impl Synth {
    /// A capture whose TSC runs at 1 GHz (ticks are ns) on `cpus` CPUs.
    pub fn new(cpus: u16) -> Synth {
        let mut s = Synth { bytes: Vec::new(), pending: BTreeMap::new(), messages: Vec::new(), seq: BTreeMap::new(), next_call: 1 };
        s.frame(&Frame::hello(1_000_000_000, cpus));
        s
    }

    /// A capture with the standard names for the constants above.
    pub fn named(cpus: u16) -> Synth {
        let mut s = Synth::new(cpus);
        let mut entries = trace::heapless::Vec::new();
        for e in [
            NameEntry::new(NameKind::Thread, 1, 0, "client"),
            NameEntry::new(NameKind::Thread, 2, 0, "process-server/1"),
            NameEntry::new(NameKind::Thread, 3, 0, "memory-server"),
            NameEntry::new(NameKind::Endpoint, EP_SERVER, 0, "process"),
            NameEntry::new(NameKind::Endpoint, EP_MEMORY, 0, "memory"),
            NameEntry::label(LABEL_REF_BATCH, "RefBatch"),
        ] {
            entries.push(e).expect("fits");
        }
        s.frame(&Frame::Names { entries });
        s
    }

    fn frame(&mut self, f: &Frame) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let n = trace::encode(f, &mut buf).expect("frame fits");
        self.bytes.extend_from_slice(&buf[..n]);
    }

    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for (cpu, records) in pending {
            for chunk in records.chunks(BATCH_MAX) {
                let records = trace::heapless::Vec::from_slice(chunk).expect("chunk fits");
                self.frame(&Frame::Batch { cpu, records });
            }
        }
        for message in std::mem::take(&mut self.messages) {
            self.frame(&message);
        }
    }

    /// Appends `r` with its message: `payload`, of which the capture keeps
    /// the first `keep` bytes.
    pub fn record_message(&mut self, mut r: Record, payload: &[u8], keep: usize) -> Record {
        r.len = (32 + payload.len()) as u32;
        r.flags |= Record::FLAG_MESSAGE;
        let r = self.record(r);
        let payload = trace::heapless::Vec::from_slice(&payload[..keep.min(payload.len())]).expect("payload fits");
        self.messages.push(Frame::Message { cpu: r.cpu, seq: r.seq, mrs: [0; 4], payload });
        r
    }

    /// The process server calls the memory server with `request`, which
    /// answers `reply` (both encoded as the servers do).
    pub fn memory_call<Q: serde::Serialize, A: serde::Serialize>(&mut self, cpu: u16, tsc: u64, request: &Q, reply: &A) -> u64 {
        let id = self.memory_call_cut(cpu, tsc, request, usize::MAX);
        let mut r = Record::empty(Kind::ReplyRecv);
        (r.cpu, r.tsc, r.src, r.dst, r.call_id, r.label) = (cpu, tsc + 20, MEMORY, SERVER, id, proto::MEMORY_PROTOCOL);
        self.record_message(r, &encoded(reply), usize::MAX);
        id
    }

    /// The call and receive of [`Synth::memory_call`], the capture keeping
    /// `keep` bytes of the request; no reply.
    pub fn memory_call_cut<Q: serde::Serialize>(&mut self, cpu: u16, tsc: u64, request: &Q, keep: usize) -> u64 {
        let id = self.next_call;
        self.next_call += 1;
        let mut r = Record::empty(Kind::Call);
        (r.cpu, r.tsc, r.src, r.endpoint, r.label, r.call_id) = (cpu, tsc, SERVER, EP_MEMORY, proto::MEMORY_PROTOCOL, id);
        self.record_message(r, &encoded(request), keep);
        self.recv(cpu, tsc + 10, MEMORY, SERVER, EP_MEMORY, id);
        id
    }

    /// Appends a record, giving it the CPU's next sequence number.
    pub fn record(&mut self, mut r: Record) -> Record {
        let seq = self.seq.entry(r.cpu).or_insert(0);
        r.seq = *seq;
        *seq += 1;
        self.pending.entry(r.cpu).or_default().push(r);
        r
    }

    /// Burns `n` sequence numbers on `cpu` without writing their records.
    pub fn skip(&mut self, cpu: u16, n: u64) {
        *self.seq.entry(cpu).or_insert(0) += n;
    }

    pub fn lost(&mut self, cpu: u16, count: u64) {
        self.flush();
        self.frame(&Frame::Lost { cpu, count });
    }

    /// `client` calls `ep`; returns the new call id.
    pub fn call(&mut self, cpu: u16, tsc: u64, client: ThreadRef, ep: u32, label: u64, len: u32) -> u64 {
        self.call_items(cpu, tsc, (client, ep), label, len, 0)
    }

    /// As [`Synth::call`], the sender saying the message carries `items`.
    pub fn call_items(&mut self, cpu: u16, tsc: u64, who: (ThreadRef, u32), label: u64, len: u32, items: u8) -> u64 {
        let (client, ep) = who;
        let id = self.next_call;
        self.next_call += 1;
        let mut r = Record::empty(Kind::Call);
        (r.cpu, r.tsc, r.src, r.endpoint, r.label, r.len, r.call_id) = (cpu, tsc, client, ep, label, len, id);
        r.items = items;
        self.record(r);
        id
    }

    /// `server` receives call `id` (or a send when `id` is 0) from `client`.
    pub fn recv(&mut self, cpu: u16, tsc: u64, server: ThreadRef, client: ThreadRef, ep: u32, id: u64) {
        let mut r = Record::empty(Kind::Recv);
        (r.cpu, r.tsc, r.src, r.dst, r.endpoint, r.call_id) = (cpu, tsc, client, server, ep, id);
        self.record(r);
    }

    /// `server` answers call `id` of `client` with `status`.
    pub fn reply(&mut self, cpu: u16, tsc: u64, server: ThreadRef, client: ThreadRef, id: u64, status: u16) {
        let mut r = Record::empty(Kind::ReplyRecv);
        (r.cpu, r.tsc, r.src, r.dst, r.call_id, r.status) = (cpu, tsc, server, client, id, status);
        r.flags = Record::FLAG_FAST_PATH;
        self.record(r);
    }

    /// A whole round trip: call at `tsc`, recv `queue` later, reply `service` after that.
    pub fn round_trip(&mut self, cpu: u16, tsc: u64, who: (ThreadRef, ThreadRef, u32), label: u64, queue: u64, service: u64) -> u64 {
        let (client, server, ep) = who;
        let id = self.call(cpu, tsc, client, ep, label, 64);
        self.recv(cpu, tsc + queue, server, client, ep, id);
        self.reply(cpu, tsc + queue + service, server, client, id, 0);
        id
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.flush();
        self.bytes.extend_from_slice(bytes);
    }

    pub fn bytes(mut self) -> Vec<u8> {
        self.flush();
        self.bytes
    }
}

/// `message` as a server puts it in its IPC buffer.
pub fn encoded<T: serde::Serialize>(message: &T) -> Vec<u8> {
    let mut buf = [0u8; abi::msg::IPC_BUFFER_DATA];
    let n = proto::encode(message, &mut buf).expect("fits");
    buf[..n].to_vec()
}

/// Ten round trips from the client to the process server on CPU 0: queueing
/// 100 + i ticks, service 1000 + 10 i ticks; the last one fails with status 3.
pub fn ping_pong() -> Vec<u8> {
    let mut s = Synth::named(1);
    let mut tsc = 1_000;
    for i in 0..10u64 {
        let id = s.call(0, tsc, CLIENT, EP_SERVER, 1, 64);
        s.recv(0, tsc + 100 + i, SERVER, CLIENT, EP_SERVER, id);
        let status = if i == 9 { 3 } else { 0 };
        s.reply(0, tsc + 100 + i + 1000 + 10 * i, SERVER, CLIENT, id, status);
        tsc += 5_000;
    }
    s.bytes()
}

/// Client calls the process server (call 1), which calls memory twice
/// (calls 2 and 4), and memory's first service calls the disk (call 3).
/// Afterwards an unrelated memory call by the client (call 5).
pub fn nested() -> Vec<u8> {
    let mut s = Synth::named(2);
    let c1 = s.call(0, 1_000, CLIENT, EP_SERVER, 1, 16);
    s.recv(0, 1_100, SERVER, CLIENT, EP_SERVER, c1);
    let c2 = s.call(0, 1_200, SERVER, EP_MEMORY, LABEL_REF_BATCH, 128);
    s.recv(1, 1_300, MEMORY, SERVER, EP_MEMORY, c2);
    let c3 = s.call(1, 1_400, MEMORY, EP_DISK, 9, 8);
    s.recv(1, 1_450, DISK, MEMORY, EP_DISK, c3);
    s.reply(1, 1_600, DISK, MEMORY, c3, 0);
    s.reply(1, 1_700, MEMORY, SERVER, c2, 0);
    s.round_trip(0, 1_800, (SERVER, MEMORY, EP_MEMORY), LABEL_REF_BATCH, 50, 150);
    s.reply(0, 2_100, SERVER, CLIENT, c1, 0);
    s.round_trip(0, 3_000, (CLIENT, MEMORY, EP_MEMORY), 2, 10, 20);
    s.bytes()
}

/// The process server's reference-count batches to memory: calls carrying
/// 16, 16 and 5 items and one that says nothing (0), then a plain send of 255
/// items (the most a record can say); the client's calls to the process
/// server carry no count. Every call is answered; the memory server's recv
/// of the first batch repeats its count, which `stats` must not add twice.
pub fn batches() -> Vec<u8> {
    let mut s = Synth::named(1);
    let mut tsc = 1_000;
    for items in [16, 16, 5, 0] {
        let id = s.call_items(0, tsc, (SERVER, EP_MEMORY), LABEL_REF_BATCH, 96, items);
        let mut recv = Record::empty(Kind::Recv);
        (recv.tsc, recv.src, recv.dst, recv.endpoint, recv.call_id) = (tsc + 10, SERVER, MEMORY, EP_MEMORY, id);
        recv.items = items;
        s.record(recv);
        s.reply(0, tsc + 50, MEMORY, SERVER, id, 0);
        s.round_trip(0, tsc + 100, (CLIENT, SERVER, EP_SERVER), 1, 10, 20);
        tsc += 1_000;
    }
    let mut send = Record::empty(Kind::Send);
    (send.tsc, send.src, send.endpoint, send.label, send.items) = (tsc, SERVER, EP_MEMORY, LABEL_REF_BATCH, u8::MAX);
    s.record(send);
    s.bytes()
}

/// One CPU with a sequence gap of 5 of which 3 are explained by a Lost frame,
/// a call never answered, and a reply to a call never seen.
pub fn damaged() -> Vec<u8> {
    let mut s = Synth::new(1);
    s.round_trip(0, 100, (CLIENT, SERVER, EP_SERVER), 1, 10, 10);
    s.skip(0, 5);
    s.lost(0, 3);
    s.round_trip(0, 200, (CLIENT, SERVER, EP_SERVER), 1, 10, 10);
    s.call(0, 300, CLIENT, EP_SERVER, 1, 8);
    s.reply(0, 400, SERVER, CLIENT, 999, 0);
    s.bytes()
}
