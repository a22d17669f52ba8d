//! IPC tracing: per-CPU rings of fixed-size records (format in `libs/trace`),
//! written where IPC, notifications and faults happen, and drained as
//! COBS-framed batches to the second serial port.
//!
//! Off, a trace point costs one load and one predictable branch ([`emit`]).
//! On, it fills a 72-byte record in the CPU's own ring: no formatting, no
//! lock (each CPU writes only its ring, with interrupts off). A record that
//! stands for a message ([`emit_message`]) also copies the message's
//! registers and the first bytes of its payload (at most
//! `trace_payload=N`, a whole IPC buffer by default) into the CPU's content
//! ring, sent as a `Message` frame after the record's batch. Draining
//! (idle CPUs, an explicit flush, or a panic for the flight recorder)
//! encodes and sends; only one drain runs at a time.
//!
//! Modes for a full ring: `Stream` applies back-pressure (the writing CPU
//! sends its own ring before it goes on, so nothing is lost and a busy CPU
//! slows down instead), `Drop` drops the new record, `StopWhenFull` drops
//! it and stops tracing, `Flight` overwrites the oldest. Dropped records
//! keep their sequence numbers, so readers see the gap, and a `Lost` frame
//! says how many.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

use trace::{BATCH_MAX, Frame, MAX_FRAME_LEN, MESSAGE_MAX, MESSAGE_REGISTERS, NameEntry, Record};

use crate::arch::{self, MAX_CPUS};

/// Categories of trace points, set in the mask.
pub mod category {
    pub const IPC: u32 = 1;
    pub const NOTIFY: u32 = 2;
    pub const FAULT: u32 = 4;
    pub const ALL: u32 = IPC | NOTIFY | FAULT;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Stream = 0,
    StopWhenFull = 1,
    Flight = 2,
    Drop = 3,
}

const _: () = assert!(Mode::Drop as u64 == abi::syscall::TRACE_MODE_DROP);

impl Mode {
    pub fn from_raw(raw: u64) -> Option<Self> {
        [Self::Stream, Self::StopWhenFull, Self::Flight, Self::Drop].into_iter().find(|m| *m as u64 == raw)
    }
}

/// Records per CPU ring.
const RING: u64 = 1024;
/// Bytes of message content (registers and payload) per CPU ring: room for
/// 31 whole IPC buffers, or 1,024 register-only messages (as many as the
/// record ring holds records).
const CONTENT_RING: u64 = 32 * 1024;
/// Bytes of a message's registers in the content ring.
const MRS_BYTES: u64 = (MESSAGE_REGISTERS * 8) as u64;
/// The content ring in words: entries start on a word, so registers are
/// stored and loaded whole.
const CONTENT_WORDS: u64 = CONTENT_RING / 8;

/// Bytes an entry of `payload` bytes takes in the content ring.
const fn entry_size(payload: usize) -> u64 {
    MRS_BYTES + payload.next_multiple_of(8) as u64
}
const _: () = assert!(abi::msg::IPC_BUFFER_DATA <= MESSAGE_MAX && abi::msg::MESSAGE_REGISTERS == MESSAGE_REGISTERS);

/// What a trace point keeps of a message besides its record.
#[derive(Clone, Copy)]
pub struct Content<'a> {
    pub mrs: [u64; MESSAGE_REGISTERS],
    /// The IPC-buffer payload sent (cut to the capture limit when copied).
    pub payload: &'a [u8],
}

struct Ring {
    records: UnsafeCell<[Record; RING as usize]>,
    /// Per record slot with `FLAG_MESSAGE`: where its content starts in
    /// `content` (a count of bytes ever written, above 16 bits) and how many
    /// payload bytes follow its registers (low 16 bits).
    content_of: UnsafeCell<[u64; RING as usize]>,
    /// The content ring: each message's registers, then its payload bytes
    /// padded to a word, wrapping around.
    content: UnsafeCell<[u64; CONTENT_WORDS as usize]>,
    /// Content bytes written, counted from the start; the writer moves it
    /// before it copies, so a flight-mode drain can tell overwritten bytes.
    content_written: AtomicU64,
    /// Content bytes the drain has sent (stream, drop and stop modes never
    /// overwrite unsent content).
    content_sent: AtomicU64,
    /// Records written (the next slot is `written % RING`).
    written: AtomicU64,
    /// Records taken by the drain.
    drained: AtomicU64,
    /// Next sequence number (every trace point takes one, dropped or not).
    seq: AtomicU64,
    lost: AtomicU64,
    lost_reported: AtomicU64,
    next_call: AtomicU64,
}

// SAFETY: a ring's slots between `drained` and `written` are only read (by
// the one drain at a time, under DRAIN), the others only written (by the
// ring's own CPU with interrupts off); the indices are atomics with
// release/acquire order. The content bytes between `content_sent` and
// `content_written` are likewise only read. Flight mode overwrites without
// a drain running; a drain that races it checks what it read afterwards.
unsafe impl Sync for Ring {}

static MASK: AtomicU32 = AtomicU32::new(0);
static MODE: AtomicU8 = AtomicU8::new(Mode::Stream as u8);
/// Payload bytes a message record keeps at most (`trace_payload=N`), or
/// [`NO_MESSAGES`] (`trace_payload=none`).
static PAYLOAD_LIMIT: AtomicU32 = AtomicU32::new(MESSAGE_MAX as u32);
/// No message is kept, records only (as in format version 1).
const NO_MESSAGES: u32 = u32::MAX;
static RINGS: [Ring; MAX_CPUS] = [const {
    Ring {
        records: UnsafeCell::new([Record::empty(trace::Kind::Send); RING as usize]),
        content_of: UnsafeCell::new([0; RING as usize]),
        content: UnsafeCell::new([0; CONTENT_WORDS as usize]),
        content_written: AtomicU64::new(0),
        content_sent: AtomicU64::new(0),
        written: AtomicU64::new(0),
        drained: AtomicU64::new(0),
        seq: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        lost_reported: AtomicU64::new(0),
        next_call: AtomicU64::new(1),
    }
}; MAX_CPUS];
static DRAIN: spin::Mutex<()> = spin::Mutex::new(());

/// Whether any trace point is on: the one branch a trace point costs when
/// tracing is off.
#[inline(always)]
pub fn active() -> bool {
    cfg!(feature = "trace") && MASK.load(Ordering::Relaxed) != 0
}

/// Whether trace points of `category` are on.
#[inline(always)]
pub fn on(category: u32) -> bool {
    cfg!(feature = "trace") && MASK.load(Ordering::Relaxed) & category != 0
}

/// Records the event `make` builds, if its category is on.
#[inline(always)]
pub fn emit(category: u32, make: impl FnOnce() -> Record) {
    if on(category) {
        push(make(), None);
    }
}

/// Records the message event `make` builds, with the message's content
/// `content` gives (unless messages are off), if its category is on.
#[inline(always)]
pub fn emit_message<'a>(category: u32, make: impl FnOnce() -> Record, content: impl FnOnce() -> Content<'a>) {
    if on(category) {
        let content = (PAYLOAD_LIMIT.load(Ordering::Relaxed) != NO_MESSAGES).then(content);
        push(make(), content);
    }
}

/// A call id unique across CPUs: the CPU in the top 16 bits.
pub fn new_call_id() -> u64 {
    let cpu = arch::cpu_index();
    (cpu as u64) << 48 | RINGS[cpu].next_call.fetch_add(1, Ordering::Relaxed)
}

#[inline(never)]
fn push(mut record: Record, content: Option<Content>) {
    let cpu = arch::cpu_index();
    let ring = &RINGS[cpu];
    record.cpu = cpu as u16;
    record.tsc = arch::time::tsc();
    record.seq = ring.seq.fetch_add(1, Ordering::Relaxed);
    let written = ring.written.load(Ordering::Relaxed);
    let captured = content.map(|c| c.payload.len().min(PAYLOAD_LIMIT.load(Ordering::Relaxed) as usize));
    let records_full = written - ring.drained.load(Ordering::Acquire) >= RING;
    let content_full = captured.is_some_and(|n| ring.content_room() < entry_size(n));
    if records_full || content_full {
        match Mode::from_raw(u64::from(MODE.load(Ordering::Relaxed))) {
            Some(Mode::Stream) => make_room(cpu),
            // Old content is overwritten as it comes; the drain notices.
            Some(Mode::Flight) if !records_full => {}
            Some(Mode::Flight) => ring.drained.store(written + 1 - RING, Ordering::Release),
            Some(Mode::StopWhenFull) => {
                MASK.store(0, Ordering::Relaxed);
                ring.lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ => {
                ring.lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
    if let (Some(content), Some(captured)) = (content, captured) {
        record.flags |= Record::FLAG_MESSAGE;
        let at = ring.put_content(&content.mrs, &content.payload[..captured]);
        // SAFETY: as for the record below.
        unsafe { (*ring.content_of.get())[(written % RING) as usize] = at << 16 | captured as u64 };
    }
    // SAFETY: slot `written % RING` is outside the drained..written window,
    // and only this CPU writes this ring.
    unsafe { (*ring.records.get())[(written % RING) as usize] = record };
    ring.written.store(written + 1, Ordering::Release);
}

/// The categories traced now.
pub fn mask() -> u32 {
    MASK.load(Ordering::Relaxed)
}

/// The full-ring mode now.
pub fn mode() -> Mode {
    Mode::from_raw(u64::from(MODE.load(Ordering::Relaxed))).unwrap_or(Mode::Stream)
}

/// Sets the categories traced (0 = off) and the full-ring mode. Turning
/// tracing on announces the stream with a `Hello` frame.
pub fn configure(mask: u32, mode: Mode) {
    MODE.store(mode as u8, Ordering::Relaxed);
    let was = MASK.swap(mask & category::ALL, Ordering::Relaxed);
    if was == 0 && mask != 0 {
        send(&Frame::hello(arch::time::tsc_hz(), arch::cpu_count() as u16));
    }
}

/// Parses `trace=ipc,notify,fault|all`, `trace_mode=stream|drop|stop|flight`
/// and `trace_payload=N|none` (payload bytes kept per message, 0 to 1024;
/// `none` keeps no message, records only).
pub fn configure_from_cmdline(cmdline: &str) {
    let mut mask = 0;
    let mut mode = Mode::Stream;
    for word in cmdline.split_ascii_whitespace() {
        if let Some(list) = word.strip_prefix("trace=") {
            for name in list.split(',') {
                mask |= match name {
                    "ipc" => category::IPC,
                    "notify" => category::NOTIFY,
                    "fault" => category::FAULT,
                    "all" => category::ALL,
                    _ => 0,
                };
            }
        }
        match word.strip_prefix("trace_payload=") {
            Some("none") => PAYLOAD_LIMIT.store(NO_MESSAGES, Ordering::Relaxed),
            Some(n) => {
                if let Ok(bytes) = n.parse::<usize>() {
                    PAYLOAD_LIMIT.store(bytes.min(MESSAGE_MAX) as u32, Ordering::Relaxed);
                }
            }
            None => {}
        }
        if let Some(name) = word.strip_prefix("trace_mode=") {
            mode = match name {
                "stop" => Mode::StopWhenFull,
                "flight" => Mode::Flight,
                "drop" => Mode::Drop,
                _ => Mode::Stream,
            };
        }
    }
    if mask != 0 {
        configure(mask, mode);
        match PAYLOAD_LIMIT.load(Ordering::Relaxed) {
            NO_MESSAGES => crate::println!("trace: on (mask {mask:#x}, {mode:?}, records only) on the second serial port"),
            bytes => {
                crate::println!("trace: on (mask {mask:#x}, {mode:?}, messages with up to {bytes} payload bytes) on the second serial port")
            }
        }
    }
}

/// Sends one frame to COM2.
fn send(frame: &Frame) {
    let mut scratch = SCRATCH.lock();
    if let Ok(len) = trace::encode(frame, &mut scratch.frame) {
        arch::trace_port_write(&scratch.frame[..len]);
    }
}

/// The buffers frames are encoded in: static, so that sending a frame does
/// not clear one on the stack each time (a small frame costs less than
/// clearing its buffer would).
struct Scratch {
    frame: [u8; MAX_FRAME_LEN],
    payload: [u8; MESSAGE_MAX],
}

static SCRATCH: spin::Mutex<Scratch> = spin::Mutex::new(Scratch { frame: [0; MAX_FRAME_LEN], payload: [0; MESSAGE_MAX] });

/// Sends a name for a thread or endpoint, while tracing is on. Every record
/// written before it goes out first (except in the flight recorder, which
/// keeps its records): records name an endpoint by its id alone, so a reader
/// gives a reused id the name announced last before each record.
pub fn name(entry: NameEntry) {
    if MASK.load(Ordering::Relaxed) == 0 {
        return;
    }
    let _guard = DRAIN.lock();
    if mode() != Mode::Flight {
        for (cpu, ring) in RINGS.iter().enumerate().take(arch::cpu_count()) {
            send_ring(cpu, ring, u64::MAX);
        }
    }
    let mut entries = heapless::Vec::new();
    let _ = entries.push(entry);
    send(&Frame::Names { entries });
}

/// Back-pressure: sends the whole ring of `cpu`, this CPU's own, before
/// its next record goes in. Waits for a drain running elsewhere to end; a
/// drain never waits for anything, so this ends.
fn make_room(cpu: usize) {
    let _guard = DRAIN.lock();
    send_ring(cpu, &RINGS[cpu], RING);
}

/// Sends at most `budget` records waiting in the rings, and the counts of
/// lost ones; returns the records sent. Gives up at once if another drain
/// runs.
pub fn drain(budget: u64) -> u64 {
    let Some(_guard) = DRAIN.try_lock() else { return 0 };
    send_rings(budget)
}

/// Sends at most `budget` records of the rings, in CPU order; returns the
/// records sent. The caller holds `DRAIN`.
fn send_rings(budget: u64) -> u64 {
    let mut sent = 0;
    for (cpu, ring) in RINGS.iter().enumerate().take(arch::cpu_count()) {
        sent += send_ring(cpu, ring, budget.saturating_sub(sent));
    }
    sent
}

/// Sends at most `budget` records of `ring` (the ring of `cpu`), then the
/// count of records it lost since the last report; returns the records
/// sent. The caller holds `DRAIN`.
fn send_ring(cpu: usize, ring: &Ring, budget: u64) -> u64 {
    let mut sent = 0;
    while sent < budget {
        let drained = ring.drained.load(Ordering::Acquire);
        let available = ring.written.load(Ordering::Acquire) - drained;
        if available == 0 {
            break;
        }
        let mut records = heapless::Vec::<Record, BATCH_MAX>::new();
        let mut content_of = [0u64; BATCH_MAX];
        for (index, content_at) in (drained..drained + available.min(BATCH_MAX as u64)).zip(&mut content_of) {
            // SAFETY: slots in the drained..written window are complete
            // (written published them with release) and not rewritten
            // until `drained` moves past them.
            let record = unsafe { (*ring.records.get())[(index % RING) as usize] };
            // SAFETY: as for the record.
            *content_at = unsafe { (*ring.content_of.get())[(index % RING) as usize] };
            let _ = records.push(record);
        }
        let taken = records.len() as u64;
        if ring.drained.compare_exchange(drained, drained + taken, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            continue; // Flight mode moved the window; read again.
        }
        let batch = Frame::Batch { cpu: cpu as u16, records };
        send(&batch);
        if let Frame::Batch { records, .. } = &batch {
            for (record, &content_at) in records.iter().zip(&content_of).filter(|(r, _)| r.has_message()) {
                ring.send_content(record, content_at);
            }
        }
        sent += taken;
    }
    let lost = ring.lost.load(Ordering::Relaxed);
    let reported = ring.lost_reported.swap(lost, Ordering::Relaxed);
    if lost > reported {
        send(&Frame::Lost { cpu: cpu as u16, count: lost - reported });
    }
    sent
}

/// Drains a little from the idle loop (interrupts off, so bounded); true
/// if a full batch still waits, so the idle loop should come back at once
/// (after letting interrupts in) instead of halting.
pub extern "C" fn idle_work() -> bool {
    // One full batch per call: the drain runs with interrupts off, so it
    // delays a wake-up by at most one frame's worth of serial output, and
    // waiting for a full batch keeps the per-frame cost rare.
    const IDLE_BUDGET: u64 = BATCH_MAX as u64;
    // The flight recorder keeps the latest records until a flush or a panic.
    if MASK.load(Ordering::Relaxed) == 0 || mode() == Mode::Flight || pending() < IDLE_BUDGET {
        return false;
    }
    drain(IDLE_BUDGET);
    pending() >= IDLE_BUDGET
}

/// Records waiting in the rings of the CPUs online.
fn pending() -> u64 {
    RINGS.iter().take(arch::cpu_count()).map(Ring::pending).sum()
}

impl Ring {
    /// Content bytes that may be written without overwriting unsent ones.
    fn content_room(&self) -> u64 {
        let sent = self.content_sent.load(Ordering::Acquire);
        // Saturating: the flight recorder writes past what was sent.
        CONTENT_RING.saturating_sub(self.content_written.load(Ordering::Relaxed) - sent)
    }

    /// Appends a message's registers and payload to the content ring (its
    /// own CPU, interrupts off); returns where they start.
    fn put_content(&self, mrs: &[u64; MESSAGE_REGISTERS], payload: &[u8]) -> u64 {
        let at = self.content_written.load(Ordering::Relaxed);
        // Claimed before the bytes change, so a drain that read them can
        // tell from this count that they changed under it.
        self.content_written.store(at + entry_size(payload.len()), Ordering::Relaxed);
        fence(Ordering::Release);
        let words = self.content.get().cast::<u64>();
        for (i, &mr) in mrs.iter().enumerate() {
            // SAFETY: the index is within the ring; only this CPU writes it,
            // at words the drain does not read until `content_written`
            // covers them.
            unsafe { words.add(((at / 8 + i as u64) % CONTENT_WORDS) as usize).write(mr) };
        }
        if !payload.is_empty() {
            self.copy_in(at + MRS_BYTES, payload);
        }
        at
    }

    /// The registers of the entry at `at`.
    fn registers_at(&self, at: u64) -> [u64; MESSAGE_REGISTERS] {
        let words = self.content.get().cast::<u64>().cast_const();
        // SAFETY: as in `put_content`; a plain read, checked afterwards
        // (`send_content`).
        core::array::from_fn(|i| unsafe { words.add(((at / 8 + i as u64) % CONTENT_WORDS) as usize).read() })
    }

    /// The ring's two pieces from offset `at` on: up to the end of the
    /// ring, then from its start, `len` bytes in all.
    fn pieces(at: u64, len: usize) -> [(usize, usize); 2] {
        let start = (at % CONTENT_RING) as usize;
        let first = len.min(CONTENT_RING as usize - start);
        [(start, first), (0, len - first)]
    }

    fn copy_in(&self, at: u64, bytes: &[u8]) {
        let base = self.content.get().cast::<u8>();
        let mut from = 0;
        for (start, len) in Self::pieces(at, bytes.len()) {
            // SAFETY: `pieces` keeps `start + len` within the ring, and
            // `from + len` within `bytes`. Only this ring's CPU writes its
            // content, at offsets the drain does not read until
            // `content_written` covers them (raw pointers: the drain may
            // read other parts of the ring meanwhile).
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr().add(from), base.add(start), len) };
            from += len;
        }
    }

    fn copy_out(&self, at: u64, bytes: &mut [u8]) {
        let base = self.content.get().cast::<u8>().cast_const();
        let mut to = 0;
        for (start, len) in Self::pieces(at, bytes.len()) {
            // SAFETY: bounds as in `copy_in`; a plain read of this ring's
            // bytes, whether they were overwritten meanwhile is checked
            // after (`send_content`).
            unsafe { core::ptr::copy_nonoverlapping(base.add(start), bytes.as_mut_ptr().add(to), len) };
            to += len;
        }
    }

    /// Sends the `Message` frame of `record`, whose content is at
    /// `content_at` (as kept in `content_of`). Content the flight recorder
    /// overwrote is not sent: the reader sees a record without its message.
    fn send_content(&self, record: &Record, content_at: u64) {
        let (at, captured) = (content_at >> 16, (content_at & 0xFFFF) as usize);
        let captured = captured.min(MESSAGE_MAX);
        let mrs = self.registers_at(at);
        let scratch = &mut *SCRATCH.lock();
        if captured > 0 {
            self.copy_out(at + MRS_BYTES, &mut scratch.payload[..captured]);
        }
        fence(Ordering::Acquire);
        let end = at + entry_size(captured);
        if self.content_written.load(Ordering::Relaxed) - at > CONTENT_RING {
            return;
        }
        if let Ok(len) = trace::encode_message(record.cpu, record.seq, &mrs, &scratch.payload[..captured], &mut scratch.frame) {
            arch::trace_port_write(&scratch.frame[..len]);
        }
        self.content_sent.fetch_max(end, Ordering::Release);
    }

    /// Records written and not yet drained. `drained` is read first: it
    /// only ever moves up to a `written` already published, and `written`
    /// only grows, so the later load is never behind the earlier one. (Read
    /// the other way round, a drain on another CPU between the loads could
    /// move `drained` past the `written` read and the count would underflow.)
    fn pending(&self) -> u64 {
        let drained = self.drained.load(Ordering::Acquire);
        self.written.load(Ordering::Acquire) - drained
    }
}

/// Runs `f` (the machine's exit) once every record captured so far has
/// been sent and while no CPU is sending a frame (the drain lock held).
/// Without the sending, what a CPU wrote after its last drain would be
/// lost without a count: a CPU that stays busy, or whose server parks in a
/// thread of its own, may never drain at idle again.
pub fn with_port_idle<R>(f: impl FnOnce() -> R) -> R {
    let _guard = DRAIN.lock();
    send_rings(u64::MAX);
    f()
}

/// Sends everything waiting (a flush, or the flight recorder at a panic).
pub fn drain_all() {
    drain(u64::MAX);
}
