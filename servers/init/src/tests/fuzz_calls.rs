//! What the fuzzer calls: a system call and its arguments, drawn so that
//! most calls are well formed (a number the kernel knows, capabilities of
//! the kind each argument wants, addresses in the window the sandbox's
//! own space maps, small counts) and some are anything at all. What the
//! free slots hold is followed from the calls' results ([`Shadow`]), so a
//! thread argument names a thread the fuzzer made, a deletion names a
//! slot that holds something and a creation an empty one. Blocking calls
//! go where a partner answers (the partnered endpoint for sends and calls,
//! the served endpoint for receives, the signalled notification for
//! waits); the fuzzer's watchdog ends any wait that lasts anyway.

use abi::cap::{ObjectKind, Rights, privilege};
use abi::syscall::{IMPLICIT_REPLY, KERNEL_INFO_FREE_FRAMES, OWN_CSPACE, SysError, SysResult, Sysnum};

/// The sandbox's fixed slots (see `fuzz::Sandbox`).
pub mod slot {
    /// An endpoint a partner thread serves: calls and sends complete.
    pub const PARTNERED: u64 = 0;
    /// A notification the client partner signals before every call.
    pub const NOTIFICATION: u64 = 1;
    /// The sandbox's own address space (nothing runs in it at first).
    pub const SPACE: u64 = 2;
    pub const THREAD: u64 = 3;
    pub const BOOT_IMAGE: u64 = 4;
    /// Frames the sandbox owns, writable.
    pub const FRAMES: u64 = 5;
    /// An endpoint nobody serves.
    pub const LONELY: u64 = 6;
    /// The sandbox's table itself (a cycle, reclaimed with the sandbox).
    pub const TABLE: u64 = 7;
    /// An endpoint the client partner calls: the fuzzer receives and replies.
    pub const SERVED: u64 = 8;
    /// One read-only frame holding [`super::CHILD_CODE`].
    pub const CODE: u64 = 9;
    /// Slots from here are free for what the fuzzer creates.
    pub const FIRST_FREE: u64 = 10;
    /// Free slots.
    pub const FREE: u64 = 8;
    /// Frames in [`FRAMES`].
    pub const FRAME_COUNT: u64 = 16;
}

/// Priority the fuzzer's own threads stay under.
pub const THREAD_PRIORITY_LIMIT: u64 = 4;
/// Where the sandbox's space is mapped: 64 pages.
const WINDOW: u64 = 0x1000_0000;
/// Where the fuzzer maps [`slot::CODE`] in the sandbox's space, just past
/// the window, and where the threads it starts begin.
pub const CODE_ADDR: u64 = WINDOW + 64 * 4096;
/// What the fuzzer's threads run: (start argument & 7) + 1 rounds of
/// Yield, NbSend on slot 0 (the partnered endpoint) and Wait on slot 1
/// (the notification the client signals); then ThreadExit (reported to a
/// fault endpoint, whose partner answers with death), and a jump to itself
/// should the exit return.
pub const CHILD_CODE: [u8; 47] = [
    0x89, 0xFB, // mov ebx, edi
    0x83, 0xE3, 0x07, // and ebx, 7
    0xB8, 0x03, 0x00, 0x00, 0x00, 0x0F, 0x05, // top: mov eax, Yield; syscall
    0xB8, 0x1F, 0x00, 0x00, 0x00, 0x31, 0xFF, 0x0F, 0x05, // mov eax, NbSend; xor edi, edi; syscall
    0xB8, 0x29, 0x00, 0x00, 0x00, 0xBF, 0x01, 0x00, 0x00, 0x00, 0x0F, 0x05, // mov eax, Wait; mov edi, 1; syscall
    0x83, 0xEB, 0x01, 0x79, 0xDF, // sub ebx, 1; jns top
    0xB8, 0x02, 0x00, 0x00, 0x00, 0x0F, 0x05, // mov eax, ThreadExit; syscall
    0xEB, 0xFE, // jmp $
];
/// A name for `TraceName`, in the fuzzer's own memory.
static NAME: &[u8] = b"fuzzed";

/// What a free slot holds, as far as the fuzzer knows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    Empty,
    /// Something, of a kind not known (a received capability).
    Unknown,
    Kind(u8),
    /// A copy of the sandbox's own table capability.
    OwnTable,
}

/// The free slots' contents, followed from results.
pub struct Shadow([Held; slot::FREE as usize]);

impl Shadow {
    pub const fn new() -> Self {
        Self([Held::Empty; slot::FREE as usize])
    }

    fn at(&self, s: u64) -> Option<Held> {
        s.checked_sub(slot::FIRST_FREE).and_then(|i| self.0.get(i as usize)).copied()
    }

    fn set(&mut self, s: u64, held: Held) {
        if let Some(entry) = s.checked_sub(slot::FIRST_FREE).and_then(|i| self.0.get_mut(i as usize)) {
            *entry = held;
        }
    }

    /// What slot `s` holds: the fixed slots' kinds are known.
    fn kind_of(&self, s: u64) -> Held {
        let fixed = match s {
            slot::PARTNERED | slot::LONELY | slot::SERVED => ObjectKind::Endpoint,
            slot::NOTIFICATION => ObjectKind::Notification,
            slot::SPACE => ObjectKind::AddressSpace,
            slot::THREAD => ObjectKind::Thread,
            slot::BOOT_IMAGE | slot::FRAMES | slot::CODE => ObjectKind::PhysRange,
            slot::TABLE => return Held::OwnTable,
            _ => return self.at(s).unwrap_or(Held::Unknown),
        };
        Held::Kind(fixed as u8)
    }

    /// Free slots holding `kind` (tables: those the fuzzer made).
    fn holding(&self, kind: ObjectKind) -> impl Iterator<Item = u64> + Clone + '_ {
        (slot::FIRST_FREE..).zip(self.0).filter(move |(_, held)| *held == Held::Kind(kind as u8)).map(|(s, _)| s)
    }

    /// Whether `s` may name the sandbox's own table.
    fn may_be_own_table(&self, s: u64) -> bool {
        matches!(s, slot::TABLE | OWN_CSPACE) || matches!(self.at(s), Some(Held::OwnTable | Held::Unknown))
    }

    fn has_empty(&self) -> bool {
        self.0.contains(&Held::Empty)
    }

    /// Where a received capability lands: an empty free slot, mostly.
    pub fn landing(&self, random: &mut Random) -> u64 {
        random.free_where(self, true)
    }

    /// Learns from the result of `number(args)`, with `recv_slot` the
    /// slot a received capability lands in.
    pub fn observe(&mut self, number: u64, args: [u64; 6], recv_slot: u64, result: SysResult) {
        let Ok(sysnum) = Sysnum::try_from(number) else { return };
        match (sysnum, result) {
            (Sysnum::CapDelete | Sysnum::CapMove | Sysnum::CapIdentify, Err(SysError::EmptySlot)) => self.set(args[0], Held::Empty),
            (Sysnum::Create, Ok(_)) => self.set(args[1], Held::Kind(args[0] as u8)),
            (Sysnum::CapCopy | Sysnum::CapMint, Ok(_)) if matches!(args[1], OWN_CSPACE | slot::TABLE) => {
                self.set(args[2], self.kind_of(args[0]))
            }
            (Sysnum::CapMove, Ok(_)) => {
                let held = self.kind_of(args[0]);
                self.set(args[0], Held::Empty);
                self.set(args[1], held);
            }
            (Sysnum::CapDelete, Ok(_)) => self.set(args[0], Held::Empty),
            (Sysnum::Reply, Ok(_)) if args[0] != IMPLICIT_REPLY => self.set(args[0], Held::Empty),
            (Sysnum::ReplySave, Ok(_)) => self.set(args[0], Held::Kind(ObjectKind::Reply as u8)),
            (Sysnum::PhysRangeCarve, Ok(_)) => self.set(args[3], Held::Kind(ObjectKind::PhysRange as u8)),
            // A table identified is one of the fuzzer's only if it was known
            // as one; else it may be the sandbox's own.
            (Sysnum::CapIdentify, Ok(value)) => {
                let known = self.at(args[0]) == Some(Held::Kind(value as u8));
                let own = value as u8 == ObjectKind::CSpace as u8 && !known;
                self.set(args[0], if own { Held::OwnTable } else { Held::Kind(value as u8) })
            }
            // A revoke may empty any free slot; what they hold is unknown.
            (Sysnum::CapRevoke, Ok(_)) => self.0.iter_mut().filter(|h| **h != Held::Empty).for_each(|h| *h = Held::Unknown),
            (Sysnum::Recv | Sysnum::NbRecv | Sysnum::Call | Sysnum::ReplyRecv, Ok(_)) if self.at(recv_slot) == Some(Held::Empty) => {
                self.set(recv_slot, Held::Unknown)
            }
            (_, Err(SysError::SlotOccupied)) => {
                for s in [args[1], args[2], args[3]] {
                    if self.at(s) == Some(Held::Empty) {
                        self.set(s, Held::Unknown);
                    }
                }
            }
            _ => {}
        }
    }
}

/// What an argument should be.
#[derive(Clone, Copy)]
enum Arg {
    Slot(u64),
    /// The fixed thread or one the fuzzer created.
    Thread,
    /// A slot holding something: fixed, or a free one in use.
    AnySlot,
    /// A free slot that holds something.
    Held,
    /// A free slot that holds nothing.
    Empty,
    /// A Reply capability, or the implicit reply.
    Reply,
    Table,
    /// A table's slot: the sandbox's own, or one the fuzzer made.
    TableSlot,
    /// A table in a free slot (never the sandbox's own).
    OtherTable,
    Addr,
    Entry,
    Name,
    Count,
    Frame,
    RightBits,
    Kind,
    Placement,
    Priority,
    Cpu,
    Word,
}

use Arg::*;

/// The argument shapes of the call `sysnum`.
fn shape(sysnum: Sysnum) -> [Arg; 6] {
    let to = Slot(slot::PARTNERED);
    let from = Slot(slot::SERVED);
    match sysnum {
        Sysnum::DebugWrite => [Name, Word, Word, Word, Word, Word],
        Sysnum::KernelInfo | Sysnum::ThreadExit | Sysnum::Yield => [Word; 6],
        Sysnum::CapCopy => [AnySlot, Table, Empty, Word, Word, Word],
        Sysnum::CapMint => [AnySlot, Table, Empty, RightBits, Word, Word],
        Sysnum::CapMove => [Held, Empty, Word, Word, Word, Word],
        Sysnum::CapDelete => [Held, Word, Word, Word, Word, Word],
        Sysnum::Reply => [Reply, Word, Word, Word, Word, Word],
        Sysnum::ReplySave => [Empty, Word, Word, Word, Word, Word],
        Sysnum::CapRevoke | Sysnum::CapIdentify => [AnySlot, Word, Word, Word, Word, Word],
        Sysnum::TraceName => [AnySlot, Name, Count, Word, Word, Word],
        Sysnum::Create => [Kind, Empty, Word, Word, Word, Word],
        Sysnum::Allowance => [Table, Count, Word, Word, Word, Word],
        // Restricting the sandbox's own table would end its kernel information.
        Sysnum::TableRestrict => [OtherTable, RightBits, Word, Word, Word, Word],
        Sysnum::ThreadConfigure => [Thread, Slot(slot::SPACE), TableSlot, Addr, to, Placement],
        Sysnum::ThreadStart => [Thread, Entry, Addr, Word, Word, Word],
        Sysnum::ThreadSuspend | Sysnum::ThreadResume | Sysnum::ThreadState => [Thread, Word, Word, Word, Word, Word],
        Sysnum::ThreadSetAffinity => [Thread, Cpu, Word, Word, Word, Word],
        Sysnum::ThreadSetPriority => [Thread, Priority, Word, Word, Word, Word],
        Sysnum::Send | Sysnum::NbSend | Sysnum::Call => [to, Word, Word, Word, Word, Word],
        Sysnum::Recv | Sysnum::NbRecv | Sysnum::ReplyRecv => [from, Word, Word, Word, Word, Word],
        Sysnum::Signal | Sysnum::Wait | Sysnum::Poll => [Slot(slot::NOTIFICATION), Word, Word, Word, Word, Word],
        Sysnum::MapBatch => [Slot(slot::SPACE), Slot(slot::FRAMES), Frame, Addr, Count, RightBits],
        Sysnum::Unmap | Sysnum::Query => [Slot(slot::SPACE), Addr, Count, Word, Word, Word],
        Sysnum::Protect => [Slot(slot::SPACE), Addr, Count, RightBits, Word, Word],
        Sysnum::ShareCow => [Slot(slot::SPACE), Slot(slot::SPACE), Addr, Count, Word, Word],
        Sysnum::PhysRangeCarve => [Slot(slot::FRAMES), Frame, Count, Empty, Word, Word],
        Sysnum::Remap => [Slot(slot::SPACE), Slot(slot::FRAMES), Frame, Addr, RightBits, Word],
        // The control page is whatever the frame holds: the kernel trusts none of it.
        Sysnum::CowArm => [Slot(slot::SPACE), Slot(slot::FRAMES), Slot(slot::FRAMES), Frame, Word, Word],
        Sysnum::PortIn | Sysnum::PortOut | Sysnum::IrqBind | Sysnum::IrqAck | Sysnum::TraceControl => {
            [AnySlot, Word, Count, Word, Word, Word]
        }
    }
}

/// The system calls drawn well formed: all but those of I/O ports, IRQ
/// lines and trace control, which the sandbox holds no capability for
/// (the calls drawn as anything at all reach them).
const SYSNUMS: [u64; 40] = [
    1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 25, 26, 30, 31, 32, 33, 34, 35, 36, 37, 40, 41, 42, 50, 51, 52, 53,
    54, 55, 56, 57, 65,
];

/// The kinds `Create` is drawn with (threads twice: they are what runs).
const KINDS: [ObjectKind; 6] =
    [ObjectKind::Endpoint, ObjectKind::Notification, ObjectKind::Thread, ObjectKind::Thread, ObjectKind::AddressSpace, ObjectKind::CSpace];

/// A small xorshift generator.
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One of `choices`, or `otherwise` when there are none.
    fn pick(&mut self, choices: impl Iterator<Item = u64> + Clone, otherwise: u64) -> u64 {
        match choices.clone().count() as u64 {
            0 => otherwise,
            n => choices.clone().nth(self.below(n) as usize).unwrap_or(otherwise),
        }
    }

    /// Anything: a small number, a special value, or any word.
    fn word(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(16),
            1 => [0, u64::MAX, OWN_CSPACE, 0xFFFF_8000_0000_0000, 0x7FFF_FFFF_F000][self.below(5) as usize],
            _ => self.next(),
        }
    }

    fn free(&mut self) -> u64 {
        slot::FIRST_FREE + self.below(slot::FREE)
    }

    /// A free slot whose contents are (or are not) `Held::Empty`, often.
    fn free_where(&mut self, shadow: &Shadow, empty: bool) -> u64 {
        if self.below(8) == 0 {
            return self.free();
        }
        let matching = (slot::FIRST_FREE..).zip(shadow.0).filter(|(_, held)| (*held == Held::Empty) == empty).map(|(s, _)| s);
        let otherwise = self.free();
        self.pick(matching, otherwise)
    }

    /// A slot of a kind: a free one holding it when there is one, half the time.
    fn of_kind(&mut self, shadow: &Shadow, kind: ObjectKind, fixed: u64) -> u64 {
        if self.below(2) == 0 { fixed } else { self.pick(shadow.holding(kind), fixed) }
    }

    fn argument(&mut self, arg: Arg, shadow: &Shadow) -> u64 {
        // One argument in 32 is anything, so every check meets junk.
        if self.below(32) == 0 {
            return self.word();
        }
        match arg {
            Slot(slot) => {
                if self.below(8) == 0 {
                    self.below(slot::FIRST_FREE + slot::FREE)
                } else {
                    slot
                }
            }
            Thread => self.of_kind(shadow, ObjectKind::Thread, slot::THREAD),
            AnySlot => {
                if self.below(2) == 0 {
                    self.below(slot::FIRST_FREE)
                } else {
                    self.free_where(shadow, false)
                }
            }
            Held => self.free_where(shadow, false),
            Empty => self.free_where(shadow, true),
            Reply => self.of_kind(shadow, ObjectKind::Reply, IMPLICIT_REPLY),
            Table => match self.below(4) {
                0 => OWN_CSPACE,
                1 => slot::TABLE,
                _ => self.pick(shadow.holding(ObjectKind::CSpace), OWN_CSPACE),
            },
            TableSlot => self.of_kind(shadow, ObjectKind::CSpace, slot::TABLE),
            OtherTable => {
                let otherwise = self.free();
                self.pick(shadow.holding(ObjectKind::CSpace), otherwise)
            }
            Addr => WINDOW + self.below(64) * 4096,
            Entry => {
                if self.below(4) == 0 {
                    WINDOW + self.below(64) * 4096
                } else {
                    CODE_ADDR
                }
            }
            Name => NAME.as_ptr() as u64,
            Count => 1 + self.below(4),
            Frame => self.below(slot::FRAME_COUNT),
            RightBits => self.below(16),
            Kind => KINDS[self.below(KINDS.len() as u64) as usize] as u64,
            Placement => self.below(THREAD_PRIORITY_LIMIT) | self.below(2) << 8,
            Priority => self.below(THREAD_PRIORITY_LIMIT),
            Cpu => self.below(2),
            Word => self.word(),
        }
    }

    /// The next call: its number and arguments, tamed.
    pub fn call(&mut self, shadow: &Shadow) -> (u64, [u64; 6]) {
        if self.below(32) == 0 {
            let number = if self.below(2) == 0 { self.next() } else { self.below(70) };
            let mut args = [0; 6];
            for arg in &mut args {
                *arg = self.word();
            }
            return tame(number, args);
        }
        let mut number = SYSNUMS[self.below(SYSNUMS.len() as u64) as usize];
        let Ok(mut sysnum) = Sysnum::try_from(number) else { return (number, [0; 6]) };
        // With every free slot in use, a call that needs an empty one
        // makes room instead.
        if !shadow.has_empty() && shape(sysnum).iter().any(|arg| matches!(arg, Empty)) && self.below(8) != 0 {
            (number, sysnum) = (Sysnum::CapDelete as u64, Sysnum::CapDelete);
        }
        let mut args = [0; 6];
        for (arg, shape) in args.iter_mut().zip(shape(sysnum)) {
            *arg = self.argument(shape, shadow);
        }
        match sysnum {
            Sysnum::KernelInfo => args[0] = [KERNEL_INFO_FREE_FRAMES, 101, 102, 103, 1 + self.below(9)][self.below(5) as usize],
            // The sandbox's own table keeps its privileges (kernel
            // information, console, trace names), or most calls after one
            // restriction would be refused for the rest of the seed.
            Sysnum::TableRestrict if shadow.may_be_own_table(args[0]) => args[1] = privilege::ALL.into(),
            // The caller's own allowance can only be read.
            Sysnum::Allowance if matches!(args[0], OWN_CSPACE | slot::TABLE) => args[1] = 0,
            // One mapping in eight is of the code the fuzzer's threads run.
            Sysnum::MapBatch if self.below(8) == 0 => {
                args = [slot::SPACE, slot::CODE, 0, CODE_ADDR, 1, Rights::READ.union(Rights::GRANT).0.into()];
            }
            _ => {}
        }
        tame(number, args)
    }
}

/// Keeps the fuzzer alive and the console quiet: no console writes of
/// random bytes (only empty ones), no exit, no blocking call where no
/// partner answers (the fixed endpoints and notification stay in their
/// slots), no priority at or above the fuzzer's, no privilege taken from
/// its own table.
fn tame(number: u64, mut args: [u64; 6]) -> (u64, [u64; 6]) {
    let Ok(sysnum) = Sysnum::try_from(number) else { return (number, args) };
    let number = match sysnum {
        Sysnum::ThreadExit => Sysnum::Yield as u64,
        Sysnum::Send | Sysnum::Call if args[0] != slot::PARTNERED => Sysnum::NbSend as u64,
        Sysnum::Recv | Sysnum::ReplyRecv if args[0] != slot::SERVED => Sysnum::NbRecv as u64,
        Sysnum::Wait if args[0] != slot::NOTIFICATION => Sysnum::Poll as u64,
        // The fixed slots stay; copies of them come and go.
        Sysnum::CapMove | Sysnum::CapDelete if args[0] < slot::FIRST_FREE => Sysnum::Yield as u64,
        _ => number,
    };
    match sysnum {
        Sysnum::DebugWrite => args[1] = 0,
        // The sandbox's own table keeps its privileges, whatever was drawn.
        Sysnum::TableRestrict if matches!(args[0], slot::TABLE | OWN_CSPACE) => args[1] = privilege::ALL.into(),
        Sysnum::ThreadSetPriority => args[1] %= THREAD_PRIORITY_LIMIT,
        Sysnum::ThreadConfigure => args[5] = (args[5] & 0xFF00) | ((args[5] & 0xFF) % THREAD_PRIORITY_LIMIT),
        _ => {}
    }
    (number, args)
}
