//! IPC tracing: per-CPU rings of fixed-size records (format in `libs/trace`),
//! written where IPC, notifications and faults happen, and drained as
//! COBS-framed batches to the second serial port.
//!
//! Off, a trace point costs one load and one predictable branch ([`emit`]).
//! On, it fills a 72-byte record in the CPU's own ring: no formatting, no
//! lock (each CPU writes only its ring, with interrupts off). Draining
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
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use trace::{BATCH_MAX, Frame, MAX_FRAME_LEN, NameEntry, Record};

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

impl Mode {
    pub fn from_raw(raw: u64) -> Option<Self> {
        [Self::Stream, Self::StopWhenFull, Self::Flight, Self::Drop].into_iter().find(|m| *m as u64 == raw)
    }
}

/// Records per CPU ring.
const RING: u64 = 1024;

struct Ring {
    records: UnsafeCell<[Record; RING as usize]>,
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
// release/acquire order. Flight mode overwrites without a drain running.
unsafe impl Sync for Ring {}

static MASK: AtomicU32 = AtomicU32::new(0);
static MODE: AtomicU8 = AtomicU8::new(Mode::Stream as u8);
static RINGS: [Ring; MAX_CPUS] = [const {
    Ring {
        records: UnsafeCell::new([Record::empty(trace::Kind::Send); RING as usize]),
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
        push(make());
    }
}

/// A call id unique across CPUs: the CPU in the top 16 bits.
pub fn new_call_id() -> u64 {
    let cpu = arch::cpu_index();
    (cpu as u64) << 48 | RINGS[cpu].next_call.fetch_add(1, Ordering::Relaxed)
}

#[inline(never)]
fn push(mut record: Record) {
    let cpu = arch::cpu_index();
    let ring = &RINGS[cpu];
    record.cpu = cpu as u16;
    record.tsc = arch::time::tsc();
    record.seq = ring.seq.fetch_add(1, Ordering::Relaxed);
    let written = ring.written.load(Ordering::Relaxed);
    if written - ring.drained.load(Ordering::Acquire) >= RING {
        match Mode::from_raw(u64::from(MODE.load(Ordering::Relaxed))) {
            Some(Mode::Stream) => make_room(cpu),
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

/// Parses `trace=ipc,notify,fault|all` and `trace_mode=stream|drop|stop|flight`.
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
        crate::println!("trace: on (mask {mask:#x}, {mode:?}) on the second serial port");
    }
}

/// Sends one frame to COM2.
fn send(frame: &Frame) {
    let mut buffer = [0u8; MAX_FRAME_LEN];
    if let Ok(len) = trace::encode(frame, &mut buffer) {
        arch::trace_port_write(&buffer[..len]);
    }
}

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
        for index in drained..drained + available.min(BATCH_MAX as u64) {
            // SAFETY: slots in the drained..written window are complete
            // (written published them with release) and not rewritten
            // until `drained` moves past them.
            let record = unsafe { (*ring.records.get())[(index % RING) as usize] };
            let _ = records.push(record);
        }
        let taken = records.len() as u64;
        if ring.drained.compare_exchange(drained, drained + taken, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            continue; // Flight mode moved the window; read again.
        }
        send(&Frame::Batch { cpu: cpu as u16, records });
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

/// Runs `f` while no CPU is sending a trace frame (the drain lock held).
pub fn with_port_idle<R>(f: impl FnOnce() -> R) -> R {
    let _guard = DRAIN.lock();
    f()
}

/// Sends everything waiting (a flush, or the flight recorder at a panic).
pub fn drain_all() {
    drain(u64::MAX);
}
