//! What the fuzzer calls: a system call and its arguments, drawn so that
//! most calls are well formed (a number the kernel knows, capabilities of
//! the kind each argument wants from the sandbox's fixed slots, addresses
//! in the window the sandbox's own space maps, small counts) and some are
//! anything at all. Calls that would block with no partner become their
//! non-blocking forms; a call or send goes to the partnered endpoint.

use abi::cap::ObjectKind;
use abi::syscall::{KERNEL_INFO_FREE_FRAMES, OWN_CSPACE, Sysnum};

/// The sandbox's fixed slots (see `fuzz::Sandbox`).
pub mod slot {
    /// An endpoint a partner thread serves: calls and sends complete.
    pub const PARTNERED: u64 = 0;
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
    /// Slots from here are free for what the fuzzer creates.
    pub const FIRST_FREE: u64 = 8;
    /// Frames in [`FRAMES`].
    pub const FRAME_COUNT: u64 = 16;
}

/// Priority the fuzzer's own threads stay under.
pub const THREAD_PRIORITY_LIMIT: u64 = 4;
/// Where the sandbox's space is mapped: 64 pages.
const WINDOW: u64 = 0x1000_0000;

/// What an argument should be.
#[derive(Clone, Copy)]
enum Arg {
    Slot(u64),
    /// The fixed thread or one the fuzzer created.
    Thread,
    AnySlot,
    Free,
    Table,
    Addr,
    Count,
    Frame,
    Rights,
    Kind,
    Placement,
    Priority,
    Cpu,
    Word,
}

use Arg::*;

/// The argument shapes of the call `sysnum`.
fn shape(sysnum: Sysnum) -> [Arg; 6] {
    let ep = Slot(slot::PARTNERED);
    match sysnum {
        Sysnum::DebugWrite | Sysnum::KernelInfo => [Word, Word, Word, Word, Word, Word],
        Sysnum::ThreadExit | Sysnum::Yield => [Word; 6],
        Sysnum::CapCopy => [AnySlot, Table, Free, Word, Word, Word],
        Sysnum::CapMint => [AnySlot, Table, Free, Rights, Word, Word],
        Sysnum::CapMove => [Free, Free, Word, Word, Word, Word],
        Sysnum::CapDelete | Sysnum::Reply | Sysnum::ReplySave => [Free, Word, Word, Word, Word, Word],
        Sysnum::CapRevoke | Sysnum::CapIdentify | Sysnum::TraceName => [AnySlot, Addr, Count, Word, Word, Word],
        Sysnum::Create => [Kind, Free, Word, Word, Word, Word],
        Sysnum::Allowance => [Table, Count, Word, Word, Word, Word],
        // Restricting the sandbox's own table would end its kernel information.
        Sysnum::TableRestrict => [Free, Rights, Word, Word, Word, Word],
        Sysnum::ThreadConfigure => [Thread, Slot(slot::SPACE), Slot(slot::TABLE), Addr, ep, Placement],
        Sysnum::ThreadStart => [Thread, Addr, Addr, Word, Word, Word],
        Sysnum::ThreadSuspend | Sysnum::ThreadResume | Sysnum::ThreadState => [Thread, Word, Word, Word, Word, Word],
        Sysnum::ThreadSetAffinity => [Thread, Cpu, Word, Word, Word, Word],
        Sysnum::ThreadSetPriority => [Thread, Priority, Word, Word, Word, Word],
        Sysnum::Send | Sysnum::NbSend | Sysnum::Call | Sysnum::Recv | Sysnum::NbRecv | Sysnum::ReplyRecv => {
            [ep, Word, Word, Word, Word, Word]
        }
        Sysnum::Signal | Sysnum::Wait | Sysnum::Poll => [Slot(slot::NOTIFICATION), Word, Word, Word, Word, Word],
        Sysnum::MapBatch => [Slot(slot::SPACE), Slot(slot::FRAMES), Frame, Addr, Count, Rights],
        Sysnum::Unmap | Sysnum::Query => [Slot(slot::SPACE), Addr, Count, Word, Word, Word],
        Sysnum::Protect => [Slot(slot::SPACE), Addr, Count, Rights, Word, Word],
        Sysnum::ShareCow => [Slot(slot::SPACE), Slot(slot::SPACE), Addr, Count, Word, Word],
        Sysnum::PhysRangeCarve => [Slot(slot::FRAMES), Frame, Count, Free, Word, Word],
        Sysnum::Remap => [Slot(slot::SPACE), Slot(slot::FRAMES), Frame, Addr, Rights, Word],
        Sysnum::PortIn | Sysnum::PortOut | Sysnum::IrqBind | Sysnum::IrqAck | Sysnum::TraceControl => {
            [AnySlot, Word, Count, Word, Word, Word]
        }
    }
}

/// The system calls drawn well formed: all but those of I/O ports, IRQ
/// lines and trace control, which the sandbox holds no capability for
/// (the calls drawn as anything at all reach them).
const SYSNUMS: [u64; 39] = [
    1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 25, 26, 30, 31, 32, 33, 34, 35, 36, 37, 40, 41, 42, 50, 51, 52, 53,
    54, 55, 56, 65,
];

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

    /// Anything: a small number, a special value, or any word.
    fn word(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(16),
            1 => [0, u64::MAX, OWN_CSPACE, 0xFFFF_8000_0000_0000, 0x7FFF_FFFF_F000][self.below(5) as usize],
            _ => self.next(),
        }
    }

    fn argument(&mut self, arg: Arg) -> u64 {
        // One argument in 32 is anything, so every check meets junk.
        if self.below(32) == 0 {
            return self.word();
        }
        match arg {
            Slot(slot) => {
                if self.below(8) == 0 {
                    self.below(slot::FIRST_FREE + 8)
                } else {
                    slot
                }
            }
            Thread => {
                if self.below(2) == 0 {
                    slot::THREAD
                } else {
                    slot::FIRST_FREE + self.below(8)
                }
            }
            AnySlot => self.below(slot::FIRST_FREE + 8),
            Free => slot::FIRST_FREE + self.below(8),
            Table => {
                if self.below(2) == 0 {
                    OWN_CSPACE
                } else {
                    [slot::TABLE, slot::FIRST_FREE + self.below(8)][self.below(2) as usize]
                }
            }
            Addr => WINDOW + self.below(64) * 4096,
            Count => 1 + self.below(4),
            Frame => self.below(slot::FRAME_COUNT),
            Rights => self.below(16),
            // Tables only through the fixed self-capability: with tables the
            // fuzzer creates, some seeds leave one table unreclaimed (open,
            // docs/kernel.md).
            Kind => [ObjectKind::Endpoint, ObjectKind::Notification, ObjectKind::Thread, ObjectKind::Thread, ObjectKind::AddressSpace]
                [self.below(5) as usize] as u64,
            Placement => self.below(THREAD_PRIORITY_LIMIT),
            Priority => self.below(THREAD_PRIORITY_LIMIT),
            Cpu => self.below(2),
            Word => self.word(),
        }
    }

    /// The next call: its number and arguments, tamed.
    pub fn call(&mut self) -> (u64, [u64; 6]) {
        if self.below(32) == 0 {
            let number = if self.below(2) == 0 { self.next() } else { self.below(70) };
            let mut args = [0; 6];
            for arg in &mut args {
                *arg = self.word();
            }
            return tame(number, args);
        }
        let number = SYSNUMS[self.below(SYSNUMS.len() as u64) as usize];
        let Ok(sysnum) = Sysnum::try_from(number) else { return (number, [0; 6]) };
        let shape = shape(sysnum);
        let mut args = [0; 6];
        for (arg, shape) in args.iter_mut().zip(shape) {
            *arg = self.argument(shape);
        }
        if sysnum == Sysnum::KernelInfo {
            args[0] = [KERNEL_INFO_FREE_FRAMES, 101, 102, 103, 1 + self.below(9)][self.below(5) as usize];
        }
        tame(number, args)
    }
}

/// Keeps the fuzzer alive and the console quiet: no console writes of
/// random bytes, no exit, nothing that blocks with nobody to answer (the
/// partnered endpoint stays in its slot), no priority at or above the
/// fuzzer's.
fn tame(number: u64, mut args: [u64; 6]) -> (u64, [u64; 6]) {
    let Ok(sysnum) = Sysnum::try_from(number) else { return (number, args) };
    let number = match sysnum {
        Sysnum::DebugWrite => Sysnum::KernelInfo as u64,
        Sysnum::ThreadExit => Sysnum::Yield as u64,
        Sysnum::Send | Sysnum::Call if args[0] != slot::PARTNERED => Sysnum::NbSend as u64,
        // The fixed slots stay (blocking calls go to slot 0, which must keep
        // the partnered endpoint); copies of them come and go.
        Sysnum::CapMove | Sysnum::CapDelete if args[0] < slot::FIRST_FREE => Sysnum::Yield as u64,
        Sysnum::Recv | Sysnum::ReplyRecv => Sysnum::NbRecv as u64,
        Sysnum::Wait => Sysnum::Poll as u64,
        Sysnum::Create if args[0] == ObjectKind::CSpace as u64 => Sysnum::Yield as u64,
        _ => number,
    };
    match sysnum {
        Sysnum::ThreadSetPriority => args[1] %= THREAD_PRIORITY_LIMIT,
        Sysnum::ThreadConfigure => args[5] = (args[5] & 0xFF00) | ((args[5] & 0xFF) % THREAD_PRIORITY_LIMIT),
        _ => {}
    }
    (number, args)
}
