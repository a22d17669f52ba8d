//! Typed wrappers over the kernel's system calls (numbers and errors from
//! `abi::syscall`), plus the raw entry for tests that pass bad arguments.

use abi::cap::{ObjectKind, Rights, ThreadState};
use abi::syscall::{OWN_CSPACE, SysError, SysResult, Sysnum, decode};

/// A capability slot of the caller's table.
pub type Slot = u64;

/// Makes system call `number` with six arguments, unchecked.
pub fn raw_syscall(number: u64, args: [u64; 6]) -> SysResult {
    let (rax, rdx): (u64, u64);
    // SAFETY: `syscall` enters the kernel, which checks every argument. The
    // kernel preserves every register but rax and rdx (results) and rcx and
    // r11 (clobbered by the instruction).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number => rax,
            in("rdi") args[0],
            in("rsi") args[1],
            inlateout("rdx") args[2] => rdx,
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    decode(rax, rdx)
}

fn call(sysnum: Sysnum, args: [u64; 6]) -> SysResult {
    raw_syscall(sysnum as u64, args)
}

fn unit(result: SysResult) -> Result<(), SysError> {
    result.map(|_| ())
}

/// Writes `bytes` to the kernel console.
pub fn debug_write(bytes: &[u8]) -> SysResult {
    call(Sysnum::DebugWrite, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0])
}

/// Ends the calling thread.
pub fn thread_exit() -> ! {
    let _ = call(Sysnum::ThreadExit, [0; 6]);
    unreachable!("ThreadExit returned")
}

pub fn yield_now() {
    let _ = call(Sysnum::Yield, [0; 6]);
}

/// Kernel accounting (see `Sysnum::KernelInfo`).
pub fn kernel_info(what: u64) -> SysResult {
    call(Sysnum::KernelInfo, [what, 0, 0, 0, 0, 0])
}

/// Objects of `kind` in use, and the pool's capacity.
pub fn pool_usage(kind: ObjectKind) -> Result<(u64, u64), SysError> {
    kernel_info(kind as u64).map(|word| (word & 0xFFFF_FFFF, word >> 32))
}

pub fn cap_copy(src: Slot, dst: Slot) -> Result<(), SysError> {
    unit(call(Sysnum::CapCopy, [src, OWN_CSPACE, dst, 0, 0, 0]))
}

/// Copies into another table, named by a CSpace capability.
pub fn cap_copy_to(src: Slot, cspace: Slot, dst: Slot) -> Result<(), SysError> {
    unit(call(Sysnum::CapCopy, [src, cspace, dst, 0, 0, 0]))
}

pub fn cap_mint(src: Slot, dst: Slot, rights: Rights, badge: u64) -> Result<(), SysError> {
    unit(call(Sysnum::CapMint, [src, OWN_CSPACE, dst, u64::from(rights.0), badge, 0]))
}

pub fn cap_mint_to(src: Slot, cspace: Slot, dst: Slot, rights: Rights, badge: u64) -> Result<(), SysError> {
    unit(call(Sysnum::CapMint, [src, cspace, dst, u64::from(rights.0), badge, 0]))
}

pub fn cap_move(src: Slot, dst: Slot) -> Result<(), SysError> {
    unit(call(Sysnum::CapMove, [src, dst, 0, 0, 0, 0]))
}

pub fn cap_delete(slot: Slot) -> Result<(), SysError> {
    unit(call(Sysnum::CapDelete, [slot, 0, 0, 0, 0, 0]))
}

/// Deletes every capability derived from `slot`; returns how many.
pub fn cap_revoke(slot: Slot) -> SysResult {
    call(Sysnum::CapRevoke, [slot, 0, 0, 0, 0, 0])
}

/// What `CapIdentify` says about a capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub kind: u64,
    pub rights: Rights,
    pub badge: u64,
    /// Frames of a PhysRange, ports of an I/O range, page-table pages (kernel
    /// frames) of an address space, 0 otherwise.
    pub size: u64,
}

/// The kind, rights, badge and size of the capability in `slot`.
pub fn identify(slot: Slot) -> Result<Identity, SysError> {
    let (rax, rdx, rsi, r10): (u64, u64, u64, u64);
    // SAFETY: as in `raw_syscall`; the kernel returns the badge in rsi and
    // the size in r10.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") Sysnum::CapIdentify as u64 => rax,
            in("rdi") slot,
            inlateout("rsi") 0u64 => rsi,
            inlateout("rdx") 0u64 => rdx,
            inlateout("r10") 0u64 => r10,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    let word = decode(rax, rdx)?;
    Ok(Identity { kind: word & 0xFF, rights: Rights((word >> 8) as u8), badge: rsi, size: r10 })
}

/// The kind and rights of the capability in `slot`, and its badge.
pub fn cap_identify(slot: Slot) -> Result<(u64, Rights, u64), SysError> {
    identify(slot).map(|id| (id.kind, id.rights, id.badge))
}

pub fn create(kind: ObjectKind, dst: Slot) -> Result<(), SysError> {
    unit(call(Sysnum::Create, [kind as u64, dst, 0, 0, 0, 0]))
}

/// Where and how a thread runs.
pub struct ThreadConfig {
    pub space: Slot,
    pub cspace: Slot,
    pub ipc_buffer: u64,
    pub fault_endpoint: Option<Slot>,
    pub priority: u8,
    pub cpu: u16,
}

pub fn thread_configure(thread: Slot, config: &ThreadConfig) -> Result<(), SysError> {
    let placement = u64::from(config.priority) | u64::from(config.cpu) << 8;
    let fault = config.fault_endpoint.unwrap_or(u64::MAX);
    unit(call(Sysnum::ThreadConfigure, [thread, config.space, config.cspace, config.ipc_buffer, fault, placement]))
}

pub fn thread_start(thread: Slot, rip: u64, rsp: u64, arg: u64) -> Result<(), SysError> {
    thread_start_with(thread, rip, rsp, [arg, 0, 0])
}

/// Starts a thread with three start registers (`rdi`, `rsi`, `rdx`).
pub fn thread_start_with(thread: Slot, rip: u64, rsp: u64, args: [u64; 3]) -> Result<(), SysError> {
    unit(call(Sysnum::ThreadStart, [thread, rip, rsp, args[0], args[1], args[2]]))
}

pub fn thread_suspend(thread: Slot) -> Result<(), SysError> {
    unit(call(Sysnum::ThreadSuspend, [thread, 0, 0, 0, 0, 0]))
}

pub fn thread_resume(thread: Slot) -> Result<(), SysError> {
    unit(call(Sysnum::ThreadResume, [thread, 0, 0, 0, 0, 0]))
}

pub fn thread_set_affinity(thread: Slot, cpu: u64) -> Result<(), SysError> {
    unit(call(Sysnum::ThreadSetAffinity, [thread, cpu, 0, 0, 0, 0]))
}

pub fn thread_set_priority(thread: Slot, priority: u64) -> Result<(), SysError> {
    unit(call(Sysnum::ThreadSetPriority, [thread, priority, 0, 0, 0, 0]))
}

pub fn thread_state(thread: Slot) -> Result<ThreadState, SysError> {
    let raw = call(Sysnum::ThreadState, [thread, 0, 0, 0, 0, 0])?;
    ThreadState::from_raw(raw).ok_or(SysError::BadState)
}

pub fn map_batch(space: Slot, range: Slot, first_frame: u64, vaddr: u64, count: u64, rights: Rights) -> SysResult {
    call(Sysnum::MapBatch, [space, range, first_frame, vaddr, count, u64::from(rights.0)])
}

/// Points the mapped page at `vaddr` at frame `frame` of `range`, with
/// `rights`, in one call (a copy-on-write fault's unmap and map).
pub fn remap(space: Slot, range: Slot, frame: u64, vaddr: u64, rights: Rights) -> Result<(), SysError> {
    unit(call(Sysnum::Remap, [space, range, frame, vaddr, u64::from(rights.0), 0]))
}

pub fn unmap(space: Slot, vaddr: u64, count: u64) -> SysResult {
    call(Sysnum::Unmap, [space, vaddr, count, 0, 0, 0])
}

pub fn protect(space: Slot, vaddr: u64, count: u64, rights: Rights) -> SysResult {
    call(Sysnum::Protect, [space, vaddr, count, u64::from(rights.0), 0, 0])
}

/// The physical address mapped at `vaddr` and the mapping's rights.
pub fn query(space: Slot, vaddr: u64) -> Result<(u64, Rights), SysError> {
    let word = call(Sysnum::Query, [space, vaddr, 0, 0, 0, 0])?;
    Ok((word & !0xFFF, Rights((word & 0xFF) as u8)))
}

/// A PhysRange capability in `dst` over `frames` frames of `range` from `first_frame`.
pub fn phys_range_carve(range: Slot, first_frame: u64, frames: u64, dst: Slot) -> Result<(), SysError> {
    unit(call(Sysnum::PhysRangeCarve, [range, first_frame, frames, dst, 0, 0]))
}

/// Has the kernel resolve `space`'s copy-on-write faults where the hint
/// bits allow, into reserve frames of `pool`, from the control page at frame
/// `control_frame` of `meta` (an `abi::cow::CowControl`), logging each copy
/// with `tag`.
pub fn cow_arm(space: Slot, pool: Slot, meta: Slot, control_frame: u64, tag: u32) -> Result<(), SysError> {
    unit(call(Sysnum::CowArm, [space, pool, meta, control_frame, u64::from(tag), 0]))
}

pub fn share_cow(src: Slot, dst: Slot, vaddr: u64, count: u64) -> SysResult {
    call(Sysnum::ShareCow, [src, dst, vaddr, count, 0, 0])
}

pub fn port_in(ports: Slot, port: u16, width: u8) -> SysResult {
    call(Sysnum::PortIn, [ports, u64::from(port), u64::from(width), 0, 0, 0])
}

/// Delivers the interrupt line's interrupts as `bits` on `notification`.
pub fn irq_bind(line: Slot, notification: Slot, bits: u64) -> Result<(), SysError> {
    unit(call(Sysnum::IrqBind, [line, notification, bits, 0, 0, 0]))
}

/// Unmasks a line whose interrupt was handled.
pub fn irq_ack(line: Slot) -> Result<(), SysError> {
    unit(call(Sysnum::IrqAck, [line, 0, 0, 0, 0, 0]))
}

/// Names the thread or endpoint in `slot` in the IPC trace.
pub fn trace_name(slot: Slot, name: &str) -> Result<(), SysError> {
    unit(call(Sysnum::TraceName, [slot, name.as_ptr() as u64, name.len() as u64, 0, 0, 0]))
}

/// Sends every captured trace record now; returns how many.
pub fn trace_flush(console: Slot) -> SysResult {
    call(Sysnum::TraceControl, [console, abi::syscall::TRACE_FLUSH, 0, 0, 0, 0])
}

pub fn port_out(ports: Slot, port: u16, width: u8, value: u64) -> Result<(), SysError> {
    unit(call(Sysnum::PortOut, [ports, u64::from(port), u64::from(width), value, 0, 0]))
}
