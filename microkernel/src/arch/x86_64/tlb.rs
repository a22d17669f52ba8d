//! TLB shootdown: after page tables change, every other CPU reloads CR3
//! before the change is reported done. Requests are per-CPU counters, so a
//! CPU spinning for the kernel lock (interrupts off) can serve them too.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::Cr3;

use super::percpu::{self, MAX_CPUS};
use super::{apic, cpu_count, time, trap::SHOOTDOWN_VECTOR};

static REQUESTED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SERVED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Serves a pending request on the running CPU: a full flush of non-global
/// entries (user mappings are never global).
pub fn serve() {
    let me = percpu::current().index();
    let requested = REQUESTED[me].load(Ordering::Acquire);
    if SERVED[me].load(Ordering::Relaxed) != requested {
        let (frame, flags) = Cr3::read();
        // SAFETY: reloading the same CR3 only flushes the TLB.
        unsafe { Cr3::write(frame, flags) };
        SERVED[me].store(requested, Ordering::Release);
    }
}

/// Flushes this CPU's TLB and those of the CPUs marked in `cpus`, and
/// waits until all did.
pub fn shootdown(cpus: &[bool; MAX_CPUS]) {
    x86_64::instructions::tlb::flush_all();
    let me = percpu::current().index();
    let online = cpu_count();
    let mut targets = [0u64; MAX_CPUS];
    let remote = |c: &usize| *c != me && cpus[*c];
    for cpu in (0..online).filter(remote) {
        targets[cpu] = REQUESTED[cpu].fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(data) = percpu::cpu(cpu) {
            apic::send_ipi(data.apic_id(), SHOOTDOWN_VECTOR as u8);
        }
    }
    for cpu in (0..online).filter(remote) {
        while SERVED[cpu].load(Ordering::Acquire) < targets[cpu] {
            time::relax();
        }
    }
}
