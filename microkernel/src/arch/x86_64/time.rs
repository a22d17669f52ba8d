//! Time: the TSC as the clock, calibrated once against the PIT, and the local
//! APIC timer's period derived from the same measurement.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

use super::apic;

const PIT_HZ: u64 = 1_193_182;
const CALIBRATION_MS: u64 = 10;
/// Timer interrupts per second on every CPU.
pub const TICK_HZ: u64 = 100;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static APIC_TICKS_PER_PERIOD: AtomicU64 = AtomicU64::new(0);

pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds between two TSC readings.
pub fn tsc_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(tsc_hz().max(1))) as u64
}

/// Busy-waits `us` microseconds.
pub fn delay_us(us: u64) {
    let end = tsc() + tsc_hz() * us / 1_000_000;
    while tsc() < end {
        relax();
    }
}

/// A short pause between polls of a clock or a flag: one `pause`, then a few
/// hundred plain instructions. Under TCG each `pause` leaves translated code
/// and each `rdtsc` is exact-counted under `--icount`, so polling at full rate
/// costs seconds of wall time; this keeps both rare.
pub fn relax() {
    core::hint::spin_loop();
    for i in 0..128u32 {
        core::hint::black_box(i);
    }
}

/// Measures the TSC and the local APIC timer against PIT channel 2 (one-shot,
/// speaker gated off), on the boot CPU, with interrupts off.
pub fn calibrate() {
    let count = (PIT_HZ * CALIBRATION_MS / 1000) as u16;
    let mut gate = Port::<u8>::new(0x61);
    let mut command = Port::<u8>::new(0x43);
    let mut channel2 = Port::<u8>::new(0x42);
    // SAFETY: ports 0x42/0x43/0x61 are the PIT and its gate; channel 2 only
    // drives the speaker, which stays disconnected.
    let (tsc_ticks, apic_ticks) = unsafe {
        let state = gate.read();
        gate.write((state & !0x02) | 0x01);
        command.write(0b1011_0000); // channel 2, lo/hi byte, mode 0
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        let start = tsc();
        apic::start_calibration();
        while gate.read() & 0x20 == 0 {
            relax();
        }
        let elapsed = (tsc() - start, apic::calibration_elapsed());
        gate.write(state);
        elapsed
    };
    TSC_HZ.store(tsc_ticks * 1000 / CALIBRATION_MS, Ordering::Relaxed);
    let apic_hz = u64::from(apic_ticks) * 1000 / CALIBRATION_MS;
    APIC_TICKS_PER_PERIOD.store(apic_hz / TICK_HZ, Ordering::Relaxed);
}

/// Starts this CPU's periodic tick at [`TICK_HZ`].
pub fn start_tick() {
    apic::start_periodic(APIC_TICKS_PER_PERIOD.load(Ordering::Relaxed) as u32);
}
