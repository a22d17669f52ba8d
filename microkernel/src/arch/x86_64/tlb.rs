//! Address-space switches and TLB flushes: loading another space's root,
//! and the shootdown after page tables change, in which every CPU that has
//! the space loaded flushes before the change is reported done. Requests
//! are per-CPU counters, so a CPU spinning for the kernel lock (interrupts
//! off) can serve them too. A CPU that does not have the space loaded holds
//! none of its entries (a switch flushes them), so it is left alone.
//!
//! Each CPU counts its own switches and flushes (under TCG every one of
//! them empties the software TLB, so they are a large share of wall time).

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::control::Cr3;

use super::paging::Root;
use super::percpu::{self, MAX_CPUS};
use super::{apic, cpu_count, time, trap::SHOOTDOWN_VECTOR};

static REQUESTED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SERVED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// What changed in the page tables of a space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// One 4 KiB page: where the space is loaded here, one `invlpg`.
    Page(u64),
    /// Anything more: a full flush.
    Many,
}

/// Switch and flush counts, per CPU, each written by its own CPU only.
struct Counts {
    switches: AtomicU64,
    flushes: AtomicU64,
    page_flushes: AtomicU64,
    ipis: AtomicU64,
}

static COUNTS: [Counts; MAX_CPUS] = [const {
    Counts { switches: AtomicU64::new(0), flushes: AtomicU64::new(0), page_flushes: AtomicU64::new(0), ipis: AtomicU64::new(0) }
}; MAX_CPUS];

fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn mine() -> &'static Counts {
    &COUNTS[percpu::current().index()]
}

/// Totals over every CPU since boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// CR3 loads of another space (each a full flush of user entries).
    pub switches: u64,
    /// Full flushes without a switch (local shootdowns and served IPIs).
    pub flushes: u64,
    /// Single-page flushes (`invlpg`).
    pub page_flushes: u64,
    /// Shootdown IPIs sent.
    pub ipis: u64,
}

pub fn totals() -> Totals {
    let sum = |field: fn(&Counts) -> &AtomicU64| COUNTS.iter().map(|c| field(c).load(Ordering::Relaxed)).sum();
    Totals { switches: sum(|c| &c.switches), flushes: sum(|c| &c.flushes), page_flushes: sum(|c| &c.page_flushes), ipis: sum(|c| &c.ipis) }
}

/// Loads `root` on the running CPU, counted.
///
/// # Safety
/// As [`Root::activate`]: the table must map the running code, stack and
/// per-CPU data.
pub unsafe fn switch_to(root: Root) {
    // SAFETY: forwarded to the caller.
    unsafe { root.activate() };
    bump(&mine().switches);
}

fn flush_all() {
    x86_64::instructions::tlb::flush_all();
    bump(&mine().flushes);
}

/// Serves a pending request on the running CPU: a full flush of non-global
/// entries (user mappings are never global).
pub fn serve() {
    let me = percpu::current().index();
    let requested = REQUESTED[me].load(Ordering::Acquire);
    if SERVED[me].load(Ordering::Relaxed) != requested {
        let (frame, flags) = Cr3::read();
        // SAFETY: reloading the same CR3 only flushes the TLB.
        unsafe { Cr3::write(frame, flags) };
        bump(&mine().flushes);
        SERVED[me].store(requested, Ordering::Release);
    }
}

/// Flushes `change` on the CPUs whose bits are set in `loaded` (those that
/// have the space loaded): here by itself, elsewhere by IPI, and waits
/// until all did. With no bit set it does nothing at all.
pub fn shootdown(loaded: u64, change: Change) {
    if loaded == 0 {
        return;
    }
    let me = percpu::current().index();
    if loaded & 1 << me != 0 {
        match change {
            Change::Page(vaddr) => {
                x86_64::instructions::tlb::flush(VirtAddr::new(vaddr));
                bump(&mine().page_flushes);
            }
            Change::Many => flush_all(),
        }
    }
    let remote = loaded & !(1 << me) & online_mask();
    if remote == 0 {
        return;
    }
    let mut targets = [0u64; MAX_CPUS];
    for cpu in cpus_in(remote) {
        targets[cpu] = REQUESTED[cpu].fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(data) = percpu::cpu(cpu) {
            apic::send_ipi(data.apic_id(), SHOOTDOWN_VECTOR as u8);
            bump(&mine().ipis);
        }
    }
    for cpu in cpus_in(remote) {
        while SERVED[cpu].load(Ordering::Acquire) < targets[cpu] {
            time::relax();
        }
    }
}

/// The bits of the CPUs online.
fn online_mask() -> u64 {
    match cpu_count() {
        count if count >= 64 => u64::MAX,
        count => (1 << count) - 1,
    }
}

/// The CPU numbers whose bits are set in `mask`, lowest first.
fn cpus_in(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let cpu = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(cpu)
    })
}
