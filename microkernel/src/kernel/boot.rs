//! Creating init: its address space (loaded from the boot image), its
//! capability table filled with every boot capability, and its thread, ready
//! on the boot CPU. Everything the kernel does not keep for its own metadata
//! goes to init as PhysRanges.

use abi::cap::{ObjectKind, Rights, boot_slot};

use crate::arch::paging::{PAGE_SIZE, Root};
use crate::arch::{self, UserContext};
use crate::bootinfo::PhysBlob;
use crate::mm::frame;
use crate::object::thread::Thread;
use crate::object::{CSpace, IoPorts, IrqLine, ObjRef, PhysRange, Space};
use crate::program::{self, LoadError};

use super::{Kernel, STARTED, lock};

const COM1: IoPorts = IoPorts { first: 0x3F8, count: 8 };
const PIT: IoPorts = IoPorts { first: 0x40, count: 4 };
/// ISA interrupt lines handed to init: the PIT's and COM1's.
const ISA_LINES: [(u8, u64); 2] = [(0, boot_slot::PIT_IRQ), (4, boot_slot::SERIAL_IRQ)];
const INIT_PRIORITY: u8 = 10;
/// Frames the kernel keeps for its own metadata: an eighth of RAM, at least 32 MiB.
const MIN_KERNEL_RESERVE: usize = 32 << 20 >> 12;

/// Why init could not be created.
#[derive(Debug)]
#[allow(dead_code, reason = "the cause is shown through Debug")]
pub enum InitError {
    Load(LoadError),
    OutOfKernelMemory,
}

/// Creates init from `elf`, hands it the boot capabilities, and marks the
/// scheduler started. `flags` reaches init in `rsi` (bit 0: self-test mode).
pub fn start_init(elf: &[u8], boot_image: PhysBlob, flags: u64) -> Result<(), InitError> {
    let mut kernel = lock();
    let kernel = &mut *kernel;
    let oom = |_| InitError::OutOfKernelMemory;
    let (_, usable) = frame::counts();
    let pool_frames = kernel.size_pools(usable).ok_or(InitError::OutOfKernelMemory)?;
    let root = Root::new_user(arch::kernel_space(), &mut frame::alloc_zeroed).map_err(|_| InitError::OutOfKernelMemory)?;
    let loaded = program::load(root, elf).map_err(InitError::Load)?;
    let (si, sg) = kernel.spaces.insert(Space { root, table_pages: loaded.table_pages, cow: None }).map_err(oom)?;
    // init decides who may create how many kernel objects: its own
    // allowance has no bound, and it hands parts of it out. It has every
    // privilege, which the tables it creates inherit.
    let (ci, cg) = kernel.cspaces.insert(CSpace::new(u64::MAX, abi::cap::privilege::ALL)).map_err(oom)?;
    let (ti, tg) = kernel.threads.insert(Thread::new()).map_err(oom)?;
    let space = ObjRef { kind: ObjectKind::AddressSpace, index: si, generation: sg };
    let cspace = ObjRef { kind: ObjectKind::CSpace, index: ci, generation: cg };
    let thread = ObjRef { kind: ObjectKind::Thread, index: ti, generation: tg };

    let grant = |kernel: &mut Kernel, slot, obj, rights| {
        kernel.insert_cap(cspace, slot, obj, rights, 0, 0).map_err(|_| InitError::OutOfKernelMemory)
    };
    grant(kernel, boot_slot::THREAD, thread, Rights::ALL)?;
    grant(kernel, boot_slot::ADDRESS_SPACE, space, Rights::ALL)?;
    grant(kernel, boot_slot::CSPACE, cspace, Rights::ALL)?;
    let console = kernel.io_ports.insert(COM1).map_err(oom)?;
    grant(kernel, boot_slot::CONSOLE_PORTS, ObjRef { kind: ObjectKind::IoPorts, index: console.0, generation: console.1 }, Rights::ALL)?;
    let exit = kernel.io_ports.insert(IoPorts { first: abi::exit::DEBUG_EXIT_PORT, count: 4 }).map_err(oom)?;
    grant(kernel, boot_slot::EXIT_PORT, ObjRef { kind: ObjectKind::IoPorts, index: exit.0, generation: exit.1 }, Rights::ALL)?;
    let pit = kernel.io_ports.insert(PIT).map_err(oom)?;
    grant(kernel, boot_slot::PIT_PORTS, ObjRef { kind: ObjectKind::IoPorts, index: pit.0, generation: pit.1 }, Rights::ALL)?;
    for (irq, slot) in ISA_LINES {
        if let Some((pin, mode)) = arch::irq_pin(irq) {
            let line = kernel.irq_lines.insert(IrqLine { pin, mode, target: None }).map_err(oom)?;
            grant(kernel, slot, ObjRef { kind: ObjectKind::IrqLine, index: line.0, generation: line.1 }, Rights::ALL)?;
        }
    }
    let image = PhysRange { base: boot_image.start, frames: boot_image.len.div_ceil(PAGE_SIZE) };
    let image = kernel.phys_ranges.insert(image).map_err(oom)?;
    let read_only = Rights::READ.union(Rights::DERIVE);
    grant(kernel, boot_slot::BOOT_IMAGE, ObjRef { kind: ObjectKind::PhysRange, index: image.0, generation: image.1 }, read_only)?;

    // The pools' frames count as part of the reserve.
    let reserve = (usable / 8).max(MIN_KERNEL_RESERVE);
    // Largest run first, so init's first RAM slot is the most useful one.
    const MAX_RAM_RANGES: usize = (boot_slot::FIRST_FREE - boot_slot::FIRST_RAM) as usize;
    let mut runs = [(0u64, 0u64); MAX_RAM_RANGES];
    let mut count = 0;
    frame::carve_for_user(reserve.saturating_sub(pool_frames), MAX_RAM_RANGES as u64, &mut |base, frames| {
        runs[count] = (base, frames);
        count += 1;
    });
    runs[..count].sort_unstable_by_key(|run| core::cmp::Reverse(run.1));
    let mut ranges = 0;
    for &(base, frames) in &runs[..count] {
        let (index, generation) = kernel.phys_ranges.insert(PhysRange { base, frames }).map_err(oom)?;
        let obj = ObjRef { kind: ObjectKind::PhysRange, index, generation };
        grant(kernel, boot_slot::FIRST_RAM + ranges, obj, Rights::ALL)?;
        ranges += 1;
    }

    for held in [space, cspace] {
        kernel.hold(held);
    }
    let init = kernel.threads.get_mut(ti, tg).ok_or(InitError::OutOfKernelMemory)?;
    init.set_space(Some((space, root)));
    init.cspace = Some(cspace);
    init.ipc_buffer = loaded.ipc_buffer;
    init.priority = INIT_PRIORITY;
    // init is where authority starts: it may hand out any priority.
    init.mcp = (super::PRIORITIES - 1) as u8;
    init.cpu = 0;
    // The ABI wants rsp + 8 aligned to 16 at function entry.
    init.ctx = UserContext::new_user(loaded.entry, loaded.stack_top - 8, ranges);
    init.ctx.rsi = flags;
    init.ctx.rdx = loaded.ipc_buffer;
    kernel.init = Some(ti);
    kernel.make_ready(ti);
    STARTED.store(true, core::sync::atomic::Ordering::Release);
    crate::println!("init: started with {ranges} RAM ranges, {} MiB kept for the kernel", reserve >> 8);
    Ok(())
}
