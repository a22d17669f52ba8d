//! The fixed-size trace record the kernel writes on every IPC and fault.
//!
//! Owns the layout and the meaning of each field. It must stay plain data: the
//! kernel fills it in the IPC path with stores only, no formatting, no branches
//! beyond the one that says whether tracing is on.

use serde::{Deserialize, Serialize};

/// What happened. The discriminants are part of the wire format (postcard
/// encodes the variant index), so new kinds go at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Kind {
    /// `src` sent to `endpoint`; `dst` is the receiver when one was waiting.
    Send = 0,
    /// A message reached receiver `dst` from sender `src`. Written for every
    /// delivered message, fast path included; `call_id` is the call's id when
    /// the message was a call or a fault, 0 for a plain send.
    Recv = 1,
    /// `src` called `endpoint`; `call_id` is fresh and comes back on the reply.
    Call = 2,
    /// Server `src` answered caller `dst`; `call_id` is the call answered.
    Reply = 3,
    /// The reply half of a reply-recv: as `Reply`. The receive half, when a
    /// message arrives, is its own `Recv` record.
    ReplyRecv = 4,
    /// `src` signalled notification `endpoint` with the bits in `badge`.
    NotifySignal = 5,
    /// `dst` waited on notification `endpoint` and woke with the bits in `badge`.
    NotifyWait = 6,
    /// Thread `src` faulted; the fault went to pager `dst` on fault endpoint
    /// `endpoint` as a call with a fresh `call_id`; `label` is the fault kind.
    FaultDelivery = 7,
    /// Pager `src` answered the fault of `dst`; `call_id` pairs it.
    FaultReply = 8,
    /// Thread `dst` was killed (by `src`, or by the kernel when `src` is none).
    Kill = 9,
    /// Thread `src`'s write fault at address `badge` was resolved by the
    /// kernel with no call to the pager: the page was copied into frame
    /// `label` of the pager's reserve, as the pager armed it (`CowArm`).
    CowCopy = 10,
    /// Thread `src`'s write fault at address `badge` was resolved by the
    /// kernel with no call to the pager: the page, frame `label` of the
    /// pool, got its write right back in place, the pager's hint saying the
    /// faulting mapping held its only reference.
    CowReuse = 11,
}

impl Kind {
    /// Every kind, in discriminant order.
    pub const ALL: [Kind; 12] = [
        Kind::Send,
        Kind::Recv,
        Kind::Call,
        Kind::Reply,
        Kind::ReplyRecv,
        Kind::NotifySignal,
        Kind::NotifyWait,
        Kind::FaultDelivery,
        Kind::FaultReply,
        Kind::Kill,
        Kind::CowCopy,
        Kind::CowReuse,
    ];

    /// The lower-case name tools print and accept.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Send => "send",
            Kind::Recv => "recv",
            Kind::Call => "call",
            Kind::Reply => "reply",
            Kind::ReplyRecv => "reply-recv",
            Kind::NotifySignal => "notify-signal",
            Kind::NotifyWait => "notify-wait",
            Kind::FaultDelivery => "fault",
            Kind::FaultReply => "fault-reply",
            Kind::Kill => "kill",
            Kind::CowCopy => "cow-copy",
            Kind::CowReuse => "cow-reuse",
        }
    }

    /// The kind named `name` (as printed by [`Kind::name`]), if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Opens a request that a reply closes: a call or a fault delivery.
    pub const fn opens_call(self) -> bool {
        matches!(self, Kind::Call | Kind::FaultDelivery)
    }

    /// Closes a request opened by [`Kind::opens_call`].
    pub const fn closes_call(self) -> bool {
        matches!(self, Kind::Reply | Kind::ReplyRecv | Kind::FaultReply)
    }
}

/// A thread as the kernel names it: a slot index and the generation of that
/// slot, so a reused slot is not confused with its previous occupant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(C)]
pub struct ThreadRef {
    pub id: u32,
    pub generation: u32,
}

impl ThreadRef {
    /// No thread (a send nobody was waiting for, a kill by the kernel).
    pub const NONE: ThreadRef = ThreadRef { id: u32::MAX, generation: u32::MAX };

    pub const fn new(id: u32, generation: u32) -> Self {
        ThreadRef { id, generation }
    }

    pub const fn is_none(self) -> bool {
        self.id == u32::MAX && self.generation == u32::MAX
    }
}

/// One traced event: 72 bytes, a multiple of 8, so rings of records stay
/// naturally aligned. The 64-bit fields come first so `repr(C)` adds no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C)]
pub struct Record {
    /// The CPU's time stamp counter when the event happened.
    pub tsc: u64,
    /// Per-CPU sequence number. Every traced event takes the next number,
    /// including events dropped because the ring was full, so a gap in the
    /// numbers a reader sees equals the records lost on the way.
    pub seq: u64,
    /// Pairs a call (or fault delivery) with its recv and its reply; 0 = none.
    /// The kernel makes ids unique across CPUs (for example CPU in the top
    /// 16 bits and a per-CPU counter below); readers treat them as opaque.
    pub call_id: u64,
    /// The badge of the capability used (the notification bits for
    /// notifications).
    pub badge: u64,
    /// The message label (the fault kind for faults).
    pub label: u64,
    /// The thread that acted (sender, caller, replier, signaller).
    pub src: ThreadRef,
    /// The other thread (receiver, callee, caller being replied to, waiter).
    pub dst: ThreadRef,
    /// Endpoint or notification object id; [`Record::NO_ENDPOINT`] = none.
    pub endpoint: u32,
    /// Message length in bytes (registers plus IPC buffer).
    pub len: u32,
    /// The CPU that wrote the record.
    pub cpu: u16,
    /// 0 = ok, otherwise the kernel's error code for the operation.
    pub status: u16,
    pub kind: Kind,
    /// Capabilities transferred with the message.
    pub caps: u8,
    /// Bit set of `FLAG_*`.
    pub flags: u8,
    /// How many items the sender says the message carries: message register 0
    /// of a send or call, capped at 255 (so a larger count reads as 255, not
    /// as its low byte); 0 = not said. Senders that batch (the process
    /// servers' reference-count batches to the memory server) put their item
    /// count there, so a trace shows batching without the payload. The byte
    /// was `reserved` (always zero) before; its place on the wire is unchanged.
    pub items: u8,
}

/// The size of a [`Record`] in memory.
pub const RECORD_SIZE: usize = 72;
const _: () = assert!(core::mem::size_of::<Record>() == RECORD_SIZE);
const _: () = assert!(RECORD_SIZE.is_multiple_of(8));
const _: () = assert!(core::mem::align_of::<Record>() == 8);

/// The most bytes one [`Record`] takes postcard-encoded: varints of 10 bytes
/// for the five u64, 5 for each of the six u32, 3 for each u16, and one byte
/// each for the kind and the three u8.
pub const RECORD_MAX_ENCODED: usize = 5 * 10 + 6 * 5 + 2 * 3 + 4;

impl Record {
    /// The IPC took the kernel's fast path.
    pub const FLAG_FAST_PATH: u8 = 1 << 0;
    /// A [`crate::Frame::Message`] carries this record's message (format
    /// version 2): sends, calls, replies and fault deliveries.
    pub const FLAG_MESSAGE: u8 = 1 << 1;
    /// `endpoint` value meaning no endpoint.
    pub const NO_ENDPOINT: u32 = u32::MAX;

    /// A record of `kind` with every other field empty, for the writer to fill.
    pub const fn empty(kind: Kind) -> Record {
        Record {
            tsc: 0,
            seq: 0,
            call_id: 0,
            badge: 0,
            label: 0,
            src: ThreadRef::NONE,
            dst: ThreadRef::NONE,
            endpoint: Record::NO_ENDPOINT,
            len: 0,
            cpu: 0,
            status: 0,
            kind,
            caps: 0,
            flags: 0,
            items: 0,
        }
    }

    pub const fn fast_path(&self) -> bool {
        self.flags & Record::FLAG_FAST_PATH != 0
    }

    /// Whether a `Message` frame carries this record's message.
    pub const fn has_message(&self) -> bool {
        self.flags & Record::FLAG_MESSAGE != 0
    }

    /// Bytes of IPC-buffer payload the message had (`len` less the registers).
    pub const fn payload_len(&self) -> u32 {
        self.len.saturating_sub((crate::MESSAGE_REGISTERS * 8) as u32)
    }
}
