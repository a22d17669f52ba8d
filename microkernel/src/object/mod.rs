//! Kernel objects: what capabilities name. Each kind lives in a bounded
//! [`pool::Pool`], sized from RAM at boot; a reference to one is an [`ObjRef`] (kind, index,
//! generation), so a stale reference never reaches a newer object.

pub mod pool;
pub mod storage;
pub mod thread;

use abi::cap::{CSPACE_SLOTS, ObjectKind, Rights};

use crate::arch::paging::{PAGE_SIZE, Root};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjRef {
    pub kind: ObjectKind,
    pub index: u16,
    pub generation: u32,
}

/// A capability: an object, the rights over it, and a badge the receiver of
/// a message sent through it sees. `id` names this capability for revoke;
/// `parent` is the id of the capability it was derived from (0 at the root).
#[derive(Clone, Copy, Debug)]
pub struct Cap {
    pub obj: ObjRef,
    pub rights: Rights,
    pub badge: u64,
    pub id: u64,
    pub parent: u64,
    /// Something was derived from this capability once (its children, if
    /// any are left, name its id). A capability never derived from has no
    /// children, so deleting it needs no search for them.
    pub derived: bool,
}

/// An address space: its page tables, and how many table pages it holds
/// (accounted against [`Space::TABLE_PAGE_LIMIT`]).
pub struct Space {
    pub root: Root,
    pub table_pages: usize,
    /// The pager's arming of copy-on-write faults (`CowArm`), if any.
    pub cow: Option<CowArm>,
}

/// Where a pager lets the kernel resolve a space's copy-on-write faults:
/// the PhysRange its pages' frames are numbered in (the pool), the one its
/// control page and hint frames are numbered in (the pager's own memory),
/// both checked for life at every fault; the control page (an
/// `abi::cow::CowControl`, by physical address); and the tag the log's
/// records carry.
#[derive(Clone, Copy)]
pub struct CowArm {
    pub pool: ObjRef,
    pub meta: ObjRef,
    pub control: u64,
    pub tag: u32,
}

impl Space {
    /// Page-table pages one address space may take from the kernel.
    pub const TABLE_PAGE_LIMIT: usize = 1024;
}

/// A capability table; its allowance: how many more kernel objects the
/// threads running in it may create (each returns when destroyed); and its
/// privileges (`abi::cap::privilege`).
pub struct CSpace {
    pub slots: [Option<Cap>; CSPACE_SLOTS],
    pub allowance: u64,
    pub privileges: u8,
}

impl CSpace {
    pub const fn new(allowance: u64, privileges: u8) -> Self {
        Self { slots: [None; CSPACE_SLOTS], allowance, privileges }
    }
}

/// A FIFO of threads linked through their `next` field.
#[derive(Clone, Copy, Debug, Default)]
pub struct Queue {
    pub head: Option<u16>,
    pub tail: Option<u16>,
}

/// A synchronous IPC rendezvous point.
#[derive(Default)]
pub struct Endpoint {
    /// Threads blocked sending or calling.
    pub senders: Queue,
    /// Threads blocked receiving.
    pub receivers: Queue,
}

/// A word of bits for asynchronous signals, and the one thread waiting.
#[derive(Default)]
pub struct Notification {
    pub bits: u64,
    pub waiter: Option<u16>,
}

/// The right to answer one waiting caller; `None` once used.
pub struct Reply {
    pub caller: Option<ObjRef>,
}

/// Authority over `frames` physical frames starting at `base`.
#[derive(Clone, Copy)]
pub struct PhysRange {
    pub base: u64,
    pub frames: u64,
}

impl PhysRange {
    /// The index of the frame at `paddr`, if it is one of the range's.
    pub fn frame_of(self, paddr: u64) -> Option<u64> {
        paddr.checked_sub(self.base).map(|offset| offset / PAGE_SIZE).filter(|&frame| frame < self.frames)
    }

    /// The physical address of frame `frame`, if the range has it.
    pub fn paddr(self, frame: u64) -> Option<u64> {
        (frame < self.frames).then(|| self.base + frame * PAGE_SIZE)
    }
}

/// An interrupt line: the I/O APIC pin it arrives on, its mode, and the
/// notification (with bits) it is delivered to. The kernel masks the line
/// when it fires; the handler's `IrqAck` unmasks it.
pub struct IrqLine {
    pub pin: u32,
    pub mode: u32,
    pub target: Option<(ObjRef, u64)>,
}

/// Authority over I/O ports `first .. first + count`.
pub struct IoPorts {
    pub first: u16,
    pub count: u16,
}
