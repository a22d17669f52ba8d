//! Per-CPU data, reached through the GS base: `gs:[0]` holds a pointer to the
//! running CPU's own [`PerCpu`].
//!
//! Each CPU writes its descriptor tables only during its own bring-up; the
//! counters are atomics any CPU may read.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use x86_64::registers::model_specific::GsBase;
use x86_64::structures::tss::TaskStateSegment;

/// Most CPUs the kernel brings up; the MADT may list more, which stay off.
pub const MAX_CPUS: usize = 64;

#[repr(C, align(64))]
pub struct PerCpu {
    /// Points at this structure; read with `mov rax, gs:[0]`.
    self_ptr: AtomicU64,
    /// Where a kernel fault resumes when the code that caused it expected it
    /// (see [`super::trap::probe`]); 0 when no fault is expected.
    pub(super) recover_rip: AtomicU64,
    pub(super) fault_vector: AtomicU64,
    /// Top of this CPU's kernel stack for entries from user mode (`syscall`
    /// and interrupts, through TSS.RSP0).
    pub(super) kernel_rsp: AtomicU64,
    /// The user stack pointer, parked by the `syscall` entry.
    pub(super) user_rsp: AtomicU64,
    /// Just past the saved context of the thread running here, in its TCB:
    /// the `syscall` entry pushes the user registers there (see
    /// `syscall.rs`). Written by this CPU only, when it changes threads.
    pub(super) syscall_frame: AtomicU64,
    /// The kernel stack pointer to resume when the user program running here
    /// leaves (see `user.rs`).
    pub(super) resume_rsp: AtomicU64,
    pub(super) fault_addr: AtomicU64,
    index: AtomicU32,
    pub(super) apic_id: AtomicU32,
    /// Timer interrupts taken on this CPU.
    pub ticks: AtomicU64,
    /// Test IPIs this CPU received, and the CPU to answer.
    pub pings: AtomicU64,
    pub ping_from: AtomicU32,
    /// Answers this CPU received to its test IPIs.
    pub pongs: AtomicU64,
    pub(super) tss: UnsafeCell<TaskStateSegment>,
    pub(super) gdt: UnsafeCell<[u64; super::gdt::ENTRIES]>,
}

// SAFETY: the `UnsafeCell` fields are written only by the CPU that owns them,
// before it loads them into its GDTR/TR, and never again.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new() -> Self {
        Self {
            self_ptr: AtomicU64::new(0),
            recover_rip: AtomicU64::new(0),
            fault_vector: AtomicU64::new(0),
            kernel_rsp: AtomicU64::new(0),
            user_rsp: AtomicU64::new(0),
            syscall_frame: AtomicU64::new(0),
            resume_rsp: AtomicU64::new(0),
            fault_addr: AtomicU64::new(0),
            index: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            ticks: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            ping_from: AtomicU32::new(0),
            pongs: AtomicU64::new(0),
            tss: UnsafeCell::new(TaskStateSegment::new()),
            gdt: UnsafeCell::new([0; super::gdt::ENTRIES]),
        }
    }

    /// Dense CPU number: 0 is the boot CPU. Below [`MAX_CPUS`] (`install`
    /// takes no larger one); the remainder says so to the compiler, one
    /// `and` in place of a bounds check at every per-CPU array.
    #[inline]
    pub fn index(&self) -> usize {
        self.index.load(Ordering::Relaxed) as usize % MAX_CPUS
    }

    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }

    /// Where the next `syscall` on this CPU saves the user registers: the
    /// context `ctx` of the thread about to run. Only the CPU that owns
    /// `self` may call this.
    #[inline]
    pub(super) fn set_syscall_frame(&self, ctx: *const super::trap::TrapFrame) {
        self.syscall_frame.store(ctx as u64 + size_of::<super::trap::TrapFrame>() as u64, Ordering::Relaxed);
    }

    /// Sets the stack used on entry from user mode (`syscall` and TSS.RSP0).
    /// Only the CPU that owns `self` may call this.
    pub(super) fn set_kernel_stack(&self, top: u64) {
        self.kernel_rsp.store(top, Ordering::Relaxed);
        // SAFETY: only the owning CPU writes its TSS, and the CPU reads RSP0
        // only on a privilege change, which cannot happen on this CPU now.
        unsafe { (*self.tss.get()).privilege_stack_table[0] = x86_64::VirtAddr::new(top) };
    }
}

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// The per-CPU data of CPU `index`, if the kernel supports that many.
pub fn cpu(index: usize) -> Option<&'static PerCpu> {
    CPUS.get(index)
}

/// Binds CPU `index` (with local APIC `apic_id`) to the running CPU.
pub fn install(index: usize, apic_id: u32) -> &'static PerCpu {
    let data = &CPUS[index];
    data.index.store(index as u32, Ordering::Relaxed);
    data.apic_id.store(apic_id, Ordering::Relaxed);
    data.self_ptr.store(data as *const PerCpu as u64, Ordering::Relaxed);
    GsBase::write(x86_64::VirtAddr::from_ptr(data));
    data
}

/// The running CPU's data, or `None` before [`install`] ran on this CPU.
pub fn try_current() -> Option<&'static PerCpu> {
    (GsBase::read().as_u64() != 0).then(current)
}

/// The running CPU's data. Valid once [`install`] ran on this CPU.
#[inline]
pub fn current() -> &'static PerCpu {
    let ptr: u64;
    // SAFETY: reads gs:[0], which `install` set to a `'static PerCpu`.
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags)) };
    // SAFETY: `ptr` came from `install`, which stores a `&'static PerCpu`.
    unsafe { &*(ptr as *const PerCpu) }
}
