//! The thread control block: saved user registers, scheduling parameters,
//! IPC state, and the objects the thread runs in.

use abi::msg::MsgInfo;

use super::ObjRef;
use crate::arch::UserContext;
use crate::arch::paging::Root;

/// Why a blocked thread waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// On an endpoint's send queue; `call` waits for a reply afterwards.
    Send { ep: ObjRef, badge: u64, call: bool, grant: bool },
    /// On an endpoint's receive queue.
    Recv { ep: ObjRef },
    /// Its call was received; it waits for the reply.
    Reply,
    /// On a notification.
    Notification { ntfn: ObjRef },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, not yet started.
    Inactive,
    /// On its CPU's ready queue.
    Ready,
    /// The current thread of its CPU.
    Running,
    Blocked(Blocked),
    Suspended,
    Dead,
}

/// A message waiting in a blocked sender: from its registers, or made by the
/// kernel for a fault.
#[derive(Clone, Copy, Debug, Default)]
pub struct Message {
    pub info: u64,
    pub mrs: [u64; abi::msg::MESSAGE_REGISTERS],
    /// Made by the kernel (a fault), so no IPC buffer or capability goes with it.
    pub from_kernel: bool,
}

impl Message {
    pub fn info(&self) -> MsgInfo {
        MsgInfo(self.info)
    }
}

/// A `CapRevoke` under way: the revoked capability's id, how many it
/// deleted so far, and how many of its rounds went stale (another thread
/// changed capabilities, or took revoke's scratch, between its entries).
#[derive(Clone, Copy, Debug)]
pub struct Revoking {
    pub id: u64,
    pub deleted: u64,
    pub stale: u8,
}

pub struct Thread {
    pub ctx: UserContext,
    pub state: State,
    /// The address space, and its root (which never moves): kept together
    /// by [`Thread::set_space`], so that a switch to the thread needs no
    /// look-up of the space (the IPC fast path).
    space: Option<(ObjRef, Root)>,
    pub cspace: Option<ObjRef>,
    /// User address of the IPC buffer (page aligned), 0 for none.
    pub ipc_buffer: u64,
    /// Where faults are sent, with the badge of the capability given.
    pub fault_ep: Option<(ObjRef, u64)>,
    pub priority: u8,
    /// Maximum controlled priority (seL4's MCP): the highest priority, and
    /// MCP, this thread may give any thread it configures.
    pub mcp: u8,
    pub cpu: u16,
    /// Link in whichever queue the thread is on (ready or endpoint).
    pub next: Option<u16>,
    pub outgoing: Message,
    /// The caller waiting for this thread's reply.
    pub reply_to: Option<ObjRef>,
    /// Trace id of this thread's outstanding call (0 = none).
    pub call_id: u64,
    /// Its outstanding call went through a capability with the grant
    /// right, so the reply may carry a capability.
    pub reply_grant: bool,
    /// A `CapRevoke` that restarted to go on (`kernel/revoke.rs`).
    pub revoking: Option<Revoking>,
}

impl Thread {
    pub fn new() -> Self {
        Self {
            ctx: UserContext::default(),
            state: State::Inactive,
            space: None,
            cspace: None,
            ipc_buffer: 0,
            fault_ep: None,
            priority: 0,
            mcp: 0,
            cpu: 0,
            next: None,
            outgoing: Message::default(),
            reply_to: None,
            call_id: 0,
            reply_grant: false,
            revoking: None,
        }
    }

    /// The address space the thread runs in.
    pub fn space(&self) -> Option<ObjRef> {
        self.space.map(|(space, _)| space)
    }

    /// The root of the thread's address space.
    pub fn root(&self) -> Option<Root> {
        self.space.map(|(_, root)| root)
    }

    /// Sets the address space (`space`, whose root is `root`), or none;
    /// returns the one it had.
    pub fn set_space(&mut self, space: Option<(ObjRef, Root)>) -> Option<ObjRef> {
        core::mem::replace(&mut self.space, space).map(|(old, _)| old)
    }
}
