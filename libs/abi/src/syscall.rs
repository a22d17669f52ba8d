//! System calls: their numbers, their error codes, and the register
//! convention.
//!
//! Convention (x86_64 `syscall`): number in `rax`; arguments in `rdi`, `rsi`,
//! `rdx`, `r10`, `r8`, `r9`; the kernel returns an error code in `rax` (0 for
//! success) and a value in `rdx`. IPC calls use more result registers (see
//! [`crate::msg`]). `rcx` and `r11` are clobbered by the instruction itself.

/// Every system call the kernel knows. Numbers never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Sysnum {
    /// Write bytes to the kernel console: `(ptr, len)`, at most
    /// [`DEBUG_WRITE_MAX`]; needs the table's console privilege.
    DebugWrite = 1,
    /// End the calling thread. Does not return.
    ThreadExit = 2,
    /// Give up the rest of the time slice.
    Yield = 3,
    /// `(what)`: kernel accounting. `what` = an object kind → objects in use
    /// | capacity << 32; [`KERNEL_INFO_FREE_FRAMES`] → free kernel frames.
    /// Needs the table's kernel-information privilege.
    KernelInfo = 4,

    /// `(src, dst_cspace, dst)`: copy a capability into a table ([`OWN_CSPACE`]
    /// or the slot of a CSpace capability with the write right).
    CapCopy = 10,
    /// `(src, dst_cspace, dst, rights, badge)`: derive a capability with
    /// fewer rights and a badge.
    CapMint = 11,
    /// `(src, dst)`: move a capability to another slot.
    CapMove = 12,
    /// `(slot)`: delete a capability.
    CapDelete = 13,
    /// `(slot)`: delete every capability derived from this one.
    CapRevoke = 14,
    /// `(slot)` → `kind | rights << 8`; the badge comes back in `rsi` and the
    /// object's size (frames of a PhysRange, ports of an I/O range, the
    /// kernel's page-table pages of an address space) in `r10`.
    CapIdentify = 15,
    /// `(kind, dst)`: create a kernel object and put its capability in `dst`,
    /// charged to the caller's table's allowance (`OutOfKernelMemory` once
    /// it is spent; the object gives it back when destroyed).
    Create = 16,
    /// `(cspace, amount)`: move `amount` of the caller's table's allowance
    /// (kernel objects it may still create) to the table of a CSpace
    /// capability with the write right; → what the caller's table has left.
    /// `(OWN_CSPACE, 0)` only reports it.
    Allowance = 17,
    /// `(cspace, keep)`: the table of a CSpace capability with the write
    /// right keeps only the privileges in `keep` (see
    /// [`crate::cap::privilege`]); a new table has its creator's.
    TableRestrict = 18,

    /// `(thread, space, cspace, ipc_buffer, fault_ep, priority | cpu << 8)`.
    ThreadConfigure = 20,
    /// `(thread, rip, rsp, rdi, rsi, rdx)`: start a configured thread with
    /// three start registers.
    ThreadStart = 21,
    ThreadSuspend = 22,
    ThreadResume = 23,
    /// `(thread, cpu)`: move a thread to another CPU.
    ThreadSetAffinity = 24,
    /// `(thread, priority)`.
    ThreadSetPriority = 25,
    /// `(thread)` → the thread's state (see [`crate::cap::ThreadState`]).
    ThreadState = 26,

    /// IPC on an endpoint (registers in [`crate::msg`]).
    Send = 30,
    NbSend = 31,
    Recv = 32,
    NbRecv = 33,
    Call = 34,
    /// `(reply)`: answers the caller named by a Reply capability (consumed),
    /// or with [`IMPLICIT_REPLY`] the last caller received from.
    Reply = 35,
    ReplyRecv = 36,
    /// `(dst)`: moves the pending reply into a Reply capability, so the
    /// server can receive other calls and answer this one later.
    ReplySave = 37,

    /// `(notification, bits)`.
    Signal = 40,
    /// `(notification)` → the bits, cleared; blocks while none are set.
    Wait = 41,
    /// `(notification)` → the bits, cleared; never blocks.
    Poll = 42,

    /// `(space, phys_range, first_frame, vaddr, count, rights)`.
    MapBatch = 50,
    /// `(space, vaddr, count)`.
    Unmap = 51,
    /// `(space, vaddr, count, rights)`.
    Protect = 52,
    /// `(space, vaddr)` → physical address | rights bits.
    Query = 53,
    /// `(src_space, dst_space, vaddr, count)`: map the same frames read-only in both.
    ShareCow = 54,
    /// `(range, first_frame, frames, dst)`: a PhysRange over part of another,
    /// derived from it (revoking the source removes it), with its rights.
    PhysRangeCarve = 55,
    /// `(space, phys_range, frame, vaddr, rights)`: the mapped page at
    /// `vaddr` maps frame `frame` of the range from now on (a copy-on-write
    /// fault's unmap and map in one call).
    Remap = 56,
    /// `(space, pool, meta, control_frame, tag)`: write faults on the
    /// space's copy-on-write pages are resolved by the kernel where the
    /// pager's hint bit allows, by a copy into a frame of the reserve in the
    /// control page (frame `control_frame` of PhysRange `meta`, an
    /// `abi::cow::CowControl`, whose hint frames are `meta`'s too), logged
    /// there with `tag`; pages and reserve frames are frames of PhysRange
    /// `pool`. Every other fault still goes to the pager.
    CowArm = 57,

    /// `(io_ports, port, width)` → value.
    PortIn = 60,
    /// `(io_ports, port, width, value)`.
    PortOut = 61,
    /// `(irq_line, notification, bits)`: deliver the line's interrupts as
    /// `bits` on the notification, and unmask it.
    IrqBind = 62,
    /// `(irq_line)`: the handler is done; unmask the line again.
    IrqAck = 63,
    /// `(console_ports, op, arg)`: IPC tracing, with authority over the
    /// console: [`TRACE_SET_MASK`], [`TRACE_SET_MODE`], [`TRACE_FLUSH`].
    TraceControl = 64,
    /// `(slot, ptr, len)`: names the thread or endpoint in `slot` (with the
    /// write right) in the trace; needs the table's trace privilege.
    TraceName = 65,
}

impl TryFrom<u64> for Sysnum {
    type Error = SysError;

    /// A `match`, so the kernel decodes a number with one jump table.
    fn try_from(number: u64) -> Result<Self, SysError> {
        use Sysnum::*;
        Ok(match number {
            1 => DebugWrite,
            2 => ThreadExit,
            3 => Yield,
            4 => KernelInfo,
            10 => CapCopy,
            11 => CapMint,
            12 => CapMove,
            13 => CapDelete,
            14 => CapRevoke,
            15 => CapIdentify,
            16 => Create,
            17 => Allowance,
            18 => TableRestrict,
            20 => ThreadConfigure,
            21 => ThreadStart,
            22 => ThreadSuspend,
            23 => ThreadResume,
            24 => ThreadSetAffinity,
            25 => ThreadSetPriority,
            26 => ThreadState,
            30 => Send,
            31 => NbSend,
            32 => Recv,
            33 => NbRecv,
            34 => Call,
            35 => Reply,
            36 => ReplyRecv,
            37 => ReplySave,
            40 => Signal,
            41 => Wait,
            42 => Poll,
            50 => MapBatch,
            51 => Unmap,
            52 => Protect,
            53 => Query,
            54 => ShareCow,
            55 => PhysRangeCarve,
            56 => Remap,
            57 => CowArm,
            60 => PortIn,
            61 => PortOut,
            62 => IrqBind,
            63 => IrqAck,
            64 => TraceControl,
            65 => TraceName,
            _ => return Err(SysError::UnknownSyscall),
        })
    }
}

/// Most pages one `MapBatch`, `Unmap`, `Protect` or `ShareCow` covers.
pub const MAP_BATCH_MAX: u64 = 1024;

/// `KernelInfo` selector for the kernel's free frames, counting those of
/// [`KERNEL_INFO_ORPHANED_ROOTS`].
pub const KERNEL_INFO_FREE_FRAMES: u64 = 100;
/// `KernelInfo` selector for the usable RAM the boot loader reported, in
/// frames (what the pools are sized from: [`crate::cap::PoolSize`]).
pub const KERNEL_INFO_USABLE_FRAMES: u64 = 109;
/// `KernelInfo` selector for the number of CPUs online.
pub const KERNEL_INFO_CPUS: u64 = 101;
/// `KernelInfo` selector for user threads killed by a fault with no handler.
pub const KERNEL_INFO_KILLS: u64 = 102;
/// `KernelInfo` selector for the TSC frequency in Hz, as the kernel calibrated it.
pub const KERNEL_INFO_TSC_HZ: u64 = 103;
/// `KernelInfo` selectors for the kernel lock, summed over every CPU: TSC
/// cycles spent waiting for it and the contended acquisitions (always
/// counted), TSC cycles it was held and the acquisitions timed (counted
/// only with `lockstat` on the kernel command line).
pub const KERNEL_INFO_LOCK_WAIT: u64 = 104;
pub const KERNEL_INFO_LOCK_WAITS: u64 = 105;
pub const KERNEL_INFO_LOCK_HOLD: u64 = 106;
pub const KERNEL_INFO_LOCK_HOLDS: u64 = 107;
/// `KernelInfo` selector for the longest the kernel lock was held (with
/// interrupts off) in one kernel entry since this was last read, TSC
/// cycles, on any CPU; 0 without `lockstat`. Reading starts it again.
pub const KERNEL_INFO_LOCK_HOLD_MAX: u64 = 108;
/// `KernelInfo` selectors for address-space switches and TLB flushes,
/// summed over every CPU since boot: CR3 loads of another space, full
/// flushes without a switch, single-page flushes, shootdown IPIs sent.
pub const KERNEL_INFO_SPACE_SWITCHES: u64 = 120;
pub const KERNEL_INFO_TLB_FLUSHES: u64 = 121;
pub const KERNEL_INFO_PAGE_FLUSHES: u64 = 122;
pub const KERNEL_INFO_SHOOTDOWN_IPIS: u64 = 123;
/// `KernelInfo` selector for the roots of released address spaces that a
/// CPU still has loaded (idle since it ran them); each is freed once no CPU
/// has it loaded, and [`KERNEL_INFO_FREE_FRAMES`] counts them as free.
pub const KERNEL_INFO_ORPHANED_ROOTS: u64 = 124;
/// `KernelInfo(KERNEL_INFO_IPC_PATH + path)`: how many `Call` and
/// `ReplyRecv` system calls took the IPC fast path ([`IpcPath::Fast`]) or
/// fell back to the slow path for that reason.
pub const KERNEL_INFO_IPC_PATH: u64 = 110;

/// Which way the kernel ran a `Call` or `ReplyRecv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum IpcPath {
    Fast = 0,
    /// The message carries a capability.
    CapTransfer = 1,
    /// The message has a payload in the IPC buffer.
    LongMessage = 2,
    /// Call: no receiver waits on the endpoint; ReplyRecv: no caller waits
    /// for the reply.
    NotWaiting = 3,
    /// The partner would not run next: a Call's receiver below the caller's
    /// priority, or either partner not above every ready thread.
    Priority = 4,
    /// The partner runs on another CPU.
    OtherCpu = 5,
    /// Anything else: a bad capability, a fault reply, a sender already
    /// queued for the receive half of ReplyRecv.
    Other = 6,
}

impl IpcPath {
    pub const ALL: [IpcPath; 7] =
        [Self::Fast, Self::CapTransfer, Self::LongMessage, Self::NotWaiting, Self::Priority, Self::OtherCpu, Self::Other];
}

/// `TraceControl` operations: the category mask (1 IPC, 2 notifications,
/// 4 faults; 0 = off), the full-ring mode (0 stream, 1 stop when full,
/// 2 flight recorder, 3 drop; the mode it replaces comes back), and
/// sending everything captured now.
pub const TRACE_SET_MASK: u64 = 0;
pub const TRACE_SET_MODE: u64 = 1;
pub const TRACE_FLUSH: u64 = 2;
/// The full-ring mode that drops new records (`TRACE_SET_MODE`).
pub const TRACE_MODE_DROP: u64 = 3;
/// Longest name `TraceName` takes.
pub const TRACE_NAME_MAX: usize = 32;

/// `Reply` argument meaning "the caller I last received from".
pub const IMPLICIT_REPLY: u64 = u64::MAX;

/// `CapCopy`/`CapMint` destination table meaning "the caller's own".
pub const OWN_CSPACE: u64 = u64::MAX;

/// Longest single console write, in bytes.
pub const DEBUG_WRITE_MAX: usize = 4096;

/// Why a system call failed. `0` is success and never an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum SysError {
    /// No system call has this number.
    UnknownSyscall = 1,
    /// A pointer argument names memory the caller may not read or write.
    BadAddress = 2,
    /// A length or count is out of range.
    BadLength = 3,
    /// A slot number is outside the capability table.
    BadSlot = 4,
    /// The slot holds no capability.
    EmptySlot = 5,
    /// The destination slot is occupied.
    SlotOccupied = 6,
    /// The capability names the wrong kind of object.
    WrongType = 7,
    /// The capability lacks a right the operation needs.
    NoRight = 8,
    /// Some other argument is invalid (a kind, a CPU, a priority, a port).
    BadArgument = 9,
    /// Kernel metadata for this kind of object is exhausted.
    OutOfKernelMemory = 10,
    /// A non-blocking operation found no partner.
    WouldBlock = 11,
    /// Nothing is mapped there.
    NotMapped = 12,
    /// Something is mapped there already.
    AlreadyMapped = 13,
    /// The thread is in the wrong state for this (not configured, not started, already running).
    BadState = 14,
    /// The object was deleted while the caller waited on it.
    ObjectDeleted = 15,
    /// There is no caller to reply to.
    NoReply = 16,
}

const ALL_ERRORS: [SysError; 16] = [
    SysError::UnknownSyscall,
    SysError::BadAddress,
    SysError::BadLength,
    SysError::BadSlot,
    SysError::EmptySlot,
    SysError::SlotOccupied,
    SysError::WrongType,
    SysError::NoRight,
    SysError::BadArgument,
    SysError::OutOfKernelMemory,
    SysError::WouldBlock,
    SysError::NotMapped,
    SysError::AlreadyMapped,
    SysError::BadState,
    SysError::ObjectDeleted,
    SysError::NoReply,
];

impl SysError {
    pub const fn code(self) -> u64 {
        self as u64
    }

    pub fn from_code(code: u64) -> Option<Self> {
        ALL_ERRORS.into_iter().find(|e| e.code() == code)
    }
}

/// What the kernel puts in `rax`: success, or an error code.
pub type SysResult = Result<u64, SysError>;

/// Encodes a result as the `(rax, rdx)` pair the kernel returns.
pub const fn encode(result: SysResult) -> (u64, u64) {
    match result {
        Ok(value) => (0, value),
        Err(error) => (error.code(), 0),
    }
}

/// Decodes the `(rax, rdx)` pair; an unknown error code reads as `UnknownSyscall`.
pub fn decode(rax: u64, rdx: u64) -> SysResult {
    match rax {
        0 => Ok(rdx),
        code => Err(SysError::from_code(code).unwrap_or(SysError::UnknownSyscall)),
    }
}

/// Highest user address, exclusive. The last page of the lower half stays
/// unmapped so a `syscall` can never return to a non-canonical address.
pub const USER_END: u64 = 0x0000_7FFF_FFFF_F000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_codes_round_trip() {
        for number in 0..100 {
            if let Ok(sysnum) = Sysnum::try_from(number) {
                assert_eq!(sysnum as u64, number);
            }
        }
        assert_eq!(Sysnum::try_from(34), Ok(Sysnum::Call));
        assert_eq!(Sysnum::try_from(61), Ok(Sysnum::PortOut));
        assert_eq!(Sysnum::try_from(0), Err(SysError::UnknownSyscall));
        assert_eq!(Sysnum::try_from(u64::MAX), Err(SysError::UnknownSyscall));
        for error in ALL_ERRORS {
            let (rax, rdx) = encode(Err(error));
            assert_eq!(decode(rax, rdx), Err(error));
        }
        assert_eq!(decode(0, 42), Ok(42));
    }
}
