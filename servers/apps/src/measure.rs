//! What the benchmark workloads share: the TSC (an instruction count when
//! the machine runs under icount), the process servers' counters around a
//! measured stretch, and the number formats of their result lines, which
//! the host parses (`-` for a count not measured, quotients with two
//! decimals).

use core::fmt;

use proto::{Phase, ProcessStats};

use crate::outcome::Failure;

pub use rt::clock::tsc;

/// The TSC's frequency; a failure with `status` if the kernel does not say.
pub fn tsc_hz(status: i32) -> Result<u64, Failure> {
    match rt::sys::kernel_info(abi::syscall::KERNEL_INFO_TSC_HZ) {
        Ok(hz) if hz > 0 => Ok(hz),
        _ => Err(Failure::new(status, "no TSC frequency")),
    }
}

pub fn nanos(cycles: u64, tsc_hz: u64) -> u64 {
    u64::try_from(u128::from(cycles) * 1_000_000_000 / u128::from(tsc_hz.max(1))).unwrap_or(u64::MAX)
}

/// The process servers' counters (summed over every server); a failure
/// with `status` if they do not answer.
pub fn stats(status: i32) -> Result<ProcessStats, Failure> {
    rt::proc::stats().map_err(|e| Failure::new(status, "stats failed").error(e))
}

/// What the process servers did between two [`stats`] snapshots.
#[derive(Clone, Copy, Debug)]
pub struct Delta {
    /// Every message to the memory server: reference batches and frame
    /// requests.
    pub mem_messages: u64,
    pub ref_messages: u64,
    pub ref_ops: u64,
    pub cow_copies: u64,
    /// Copy-on-write faults that found the page unique and wrote in place.
    pub cow_reused: u64,
    /// Of the copies, those the kernel made for the pager (`CowArm`).
    pub kernel_copies: u64,
    /// Of the pages written in place, those the kernel took for the pager.
    pub kernel_reuses: u64,
    /// Deferred: counter words written by a frame's only holder, and fork
    /// increments cancelled against buffered decrements (each a change that
    /// sent no message).
    pub direct_stores: u64,
    pub cancelled: u64,
    pub phases: [u64; Phase::COUNT],
}

impl Delta {
    pub fn between(before: &ProcessStats, after: &ProcessStats) -> Self {
        let ref_messages = after.ref_messages.wrapping_sub(before.ref_messages);
        let frame_messages = after.frame_messages.wrapping_sub(before.frame_messages);
        Self {
            mem_messages: ref_messages + frame_messages,
            ref_messages,
            ref_ops: after.ref_ops.wrapping_sub(before.ref_ops),
            cow_copies: after.cow_copies.wrapping_sub(before.cow_copies),
            cow_reused: after.cow_reused.wrapping_sub(before.cow_reused),
            kernel_copies: after.kernel_copies.wrapping_sub(before.kernel_copies),
            kernel_reuses: after.kernel_reuses.wrapping_sub(before.kernel_reuses),
            direct_stores: after.direct_stores.wrapping_sub(before.direct_stores),
            cancelled: after.cancelled.wrapping_sub(before.cancelled),
            phases: core::array::from_fn(|i| after.phases[i].wrapping_sub(before.phases[i])),
        }
    }
}

/// The kernel's address-space switches and TLB flushes so far, summed over
/// every CPU (so a figure per operation includes whatever else ran).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tlb {
    pub switches: u64,
    pub flushes: u64,
    pub page_flushes: u64,
    pub ipis: u64,
}

impl Tlb {
    /// Now; a failure with `status` if the kernel does not say.
    pub fn now(status: i32) -> Result<Self, Failure> {
        use abi::syscall::{KERNEL_INFO_PAGE_FLUSHES, KERNEL_INFO_SHOOTDOWN_IPIS, KERNEL_INFO_SPACE_SWITCHES, KERNEL_INFO_TLB_FLUSHES};
        let read = |what| rt::sys::kernel_info(what).map_err(|_| Failure::new(status, "no TLB counts"));
        Ok(Self {
            switches: read(KERNEL_INFO_SPACE_SWITCHES)?,
            flushes: read(KERNEL_INFO_TLB_FLUSHES)?,
            page_flushes: read(KERNEL_INFO_PAGE_FLUSHES)?,
            ipis: read(KERNEL_INFO_SHOOTDOWN_IPIS)?,
        })
    }

    pub fn since(&self, before: &Self) -> Self {
        Self {
            switches: self.switches.wrapping_sub(before.switches),
            flushes: self.flushes.wrapping_sub(before.flushes),
            page_flushes: self.page_flushes.wrapping_sub(before.page_flushes),
            ipis: self.ipis.wrapping_sub(before.ipis),
        }
    }
}

/// ` switches_per_X=.. flushes_per_X=.. page_flushes_per_X=.. ipis_per_X=..`
/// for counts over `operations`, X naming the operation.
pub struct TlbPer<'a>(pub &'a Tlb, pub u64, pub &'static str);

impl fmt::Display for TlbPer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(tlb, operations, per) = self;
        let ratio = |count| Ratio::of(count, *operations);
        write!(
            f,
            " switches_per_{per}={} flushes_per_{per}={} page_flushes_per_{per}={} ipis_per_{per}={}",
            ratio(tlb.switches),
            ratio(tlb.flushes),
            ratio(tlb.page_flushes),
            ratio(tlb.ipis)
        )
    }
}

/// A count, or `-` where it was not measured.
pub struct OrDash(pub Option<u64>);

impl fmt::Display for OrDash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value}"),
            None => f.write_str("-"),
        }
    }
}

/// A quotient in hundredths, printed with two decimals; 0 over 0 is 0.
pub struct Ratio(u64);

impl Ratio {
    pub fn of(numerator: u64, denominator: u64) -> Self {
        Self(numerator.saturating_mul(100).checked_div(denominator).unwrap_or(0))
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// ` phase_NAME=N` for every phase, N its cycles over `forks`.
pub struct PhasesPerFork<'a>(pub &'a [u64; Phase::COUNT], pub u64);

impl fmt::Display for PhasesPerFork<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (phase, cycles) in Phase::ALL.iter().zip(self.0) {
            write!(f, " phase_{}={}", phase.name(), cycles / self.1.max(1))?;
        }
        Ok(())
    }
}
