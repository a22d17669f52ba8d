//! Which address space each CPU has in CR3, and whether its TLB may still
//! hold stale entries of it. A CPU that goes idle keeps the space it last
//! ran, as Linux's lazy TLB mode does: the idle context touches only the
//! kernel half, which every space shares, so a thread that blocks and is
//! woken on an otherwise idle CPU costs no CR3 write either way (under TCG
//! each write empties the software TLB, several microseconds with the
//! refills). Two rules keep that safe:
//! - a shootdown does not interrupt an idle CPU that has the space loaded:
//!   it marks the CPU stale (bit 0 of its `loaded_root`), so its next load
//!   writes CR3 even for the same root, before any user address is touched;
//! - a released space's root frame, its user half emptied, stays allocated
//!   (an orphan) while any CPU still has it in CR3, and is freed once none
//!   has. After a sweep every orphan is loaded somewhere, so there are
//!   never more than one per CPU.

use crate::arch::paging::Root;
use crate::arch::{self, MAX_CPUS, TlbChange};
use crate::mm::frame;
use crate::object::Space;

use super::{Cpu, KERNEL_OWNED, Kernel};

/// Released roots still in some CPU's CR3.
pub type Orphans = heapless::Vec<u64, MAX_CPUS>;

/// Bit 0 of a `loaded_root`: the CPU must write CR3 at its next load.
const STALE: u64 = 1;

/// How many of the per-CPU states belong to online CPUs.
fn online_count() -> usize {
    arch::cpu_count().min(MAX_CPUS)
}

/// The root physically in `cpu`'s CR3.
fn in_cr3(cpu: &Cpu) -> u64 {
    cpu.loaded_root & !STALE
}

impl Kernel {
    /// Loads `root` on `cpu`, the running CPU, unless it is loaded there
    /// already and none of it went stale.
    pub fn load_space(&mut self, cpu: usize, root: Root) {
        if self.cpus[cpu].loaded_root != root.0 {
            // SAFETY: every address space shares the kernel half.
            unsafe { arch::switch_to(root) };
            self.cpus[cpu].loaded_root = root.0;
            if !self.orphans.is_empty() {
                self.sweep_orphans();
            }
        }
    }

    /// The online CPUs' states.
    fn online(&self) -> &[Cpu] {
        &self.cpus[..online_count()]
    }

    /// Whether a CPU other than `cpu` runs a thread with `root` loaded.
    pub fn running_elsewhere(&self, root: Root, cpu: usize) -> bool {
        self.online().iter().enumerate().any(|(i, other)| i != cpu && other.loaded_root == root.0 && other.current.is_some())
    }

    /// Makes every CPU that has `root` loaded drop its cached translations
    /// of `change`: this one and those running a thread at once, idle ones
    /// by their next load.
    pub fn shootdown(&mut self, root: Root, change: TlbChange) {
        let me = arch::cpu_index();
        let mut loaded = 0u64;
        for (i, other) in self.cpus[..online_count()].iter_mut().enumerate().filter(|(_, other)| other.loaded_root == root.0) {
            if i != me && other.current.is_none() {
                other.loaded_root |= STALE;
            } else {
                loaded |= 1 << i;
            }
        }
        arch::tlb_shootdown(loaded, change);
    }

    /// Frees what a dead address space owns: its page tables, the frames
    /// the kernel loaded into it (marked [`KERNEL_OWNED`]), and its root,
    /// at once or, while a CPU still has it loaded, once none has.
    pub fn release_space(&mut self, space: Space) {
        space.root.release_user_half(KERNEL_OWNED, |paddr, _| {
            let _ = frame::free(paddr);
        });
        self.sweep_orphans();
        if self.online().iter().any(|cpu| in_cr3(cpu) == space.root.0) {
            // Cannot fail: after the sweep each orphan is in the CR3 of a
            // CPU that holds no other, and this root, loaded too, is none
            // of them.
            let _ = self.orphans.push(space.root.0);
        } else {
            let _ = frame::free(space.root.0);
        }
    }

    /// How many released roots wait for a CPU to load another space.
    pub fn orphans(&self) -> usize {
        self.orphans.len()
    }

    /// Frees the orphaned roots no CPU has loaded any more.
    fn sweep_orphans(&mut self) {
        let cpus = &self.cpus[..online_count()];
        self.orphans.retain(|&root| {
            let loaded = cpus.iter().any(|cpu| in_cr3(cpu) == root);
            if !loaded {
                let _ = frame::free(root);
            }
            loaded
        });
    }
}
