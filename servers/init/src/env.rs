//! What init's tests share: where memory comes from, a slot allocator for
//! its capability table, and facts about the machine.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{CSPACE_SLOTS, boot_slot};
use abi::syscall::KERNEL_INFO_CPUS;
use rt::mem::PageSource;
use rt::sys::{self, Slot};

/// Where init maps the memory it allocates for itself.
const HEAP_WINDOW: u64 = 0x0000_1000_0000_0000;
/// Priority of init's main thread (set by the kernel).
pub const INIT_PRIORITY: u8 = 10;

pub struct Env {
    pub pages: PageSource,
    pub slots: Slots,
    pub cpus: u64,
    /// init's own IPC buffer.
    pub ipc_buffer: u64,
    /// Booted with `cow=pager`: the process servers resolve every
    /// copy-on-write fault themselves, with no copy by the kernel.
    pub cow_by_pager: bool,
}

impl Env {
    pub fn new(ram_ranges: u64, ipc_buffer: u64, flags: u64) -> Self {
        assert!(ram_ranges > 0, "init got no RAM");
        Self {
            pages: PageSource::new(boot_slot::ADDRESS_SPACE, boot_slot::FIRST_RAM, HEAP_WINDOW),
            slots: Slots::new(),
            cpus: sys::kernel_info(KERNEL_INFO_CPUS).unwrap_or(1),
            ipc_buffer,
            cow_by_pager: flags & abi::selftest::INIT_FLAG_COW_PAGER != 0,
        }
    }

    /// The CPU "other than init's", or init's own on one CPU.
    pub fn other_cpu(&self) -> u16 {
        if self.cpus > 1 { 1 } else { 0 }
    }
}

/// Free slots of init's table, from `FIRST_FREE` up.
pub struct Slots {
    used: [AtomicU64; CSPACE_SLOTS / 64],
}

impl Slots {
    fn new() -> Self {
        let slots = Self { used: [const { AtomicU64::new(0) }; CSPACE_SLOTS / 64] };
        for slot in 0..boot_slot::FIRST_FREE {
            slots.used[slot as usize / 64].fetch_or(1 << (slot % 64), Ordering::Relaxed);
        }
        slots
    }

    /// A free slot; init's threads (the main one and the supervisor) may
    /// take slots at the same time, and never get the same one.
    pub fn alloc(&self) -> Slot {
        for (word_index, word) in self.used.iter().enumerate() {
            let mut bits = word.load(Ordering::Relaxed);
            while bits != u64::MAX {
                let bit = bits.trailing_ones() as u64;
                let before = word.fetch_or(1 << bit, Ordering::Relaxed);
                if before & 1 << bit == 0 {
                    return word_index as u64 * 64 + bit;
                }
                bits = before | 1 << bit;
            }
        }
        panic!("init's capability table is full");
    }

    /// Deletes the capability in `slot` (if any) and frees the slot.
    pub fn release(&self, slot: Slot) {
        let _ = sys::cap_delete(slot);
        self.used[slot as usize / 64].fetch_and(!(1 << (slot % 64)), Ordering::Relaxed);
    }
}
