//! Where the servers' time goes (`proto::Phase`): TSC cycles, or
//! instructions under icount, summed per server. Timing is off until a
//! `TimePhases` request turns it on (then off again), so the figures of a
//! benchmark that does not ask for the breakdown do not pay for it; off,
//! it costs a load and a branch per phase. Each server writes only its own
//! cache line, with plain stores, so measuring adds a few instructions per
//! request and no shared-line traffic; a `Stats` request sums them.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use proto::Phase;

use crate::slot;

/// One server's sums, on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Line([AtomicU64; Phase::COUNT]);

#[derive(Default)]
pub struct Phases {
    timed: AtomicBool,
    servers: [Line; slot::MAX_SERVERS as usize],
}

impl Phases {
    /// Turns timing on or off, for every server.
    pub fn set_timed(&self, on: bool) {
        self.timed.store(on, Relaxed);
    }

    /// Runs `work` as server `server`, adding its cycles to `phase` when
    /// timing is on.
    #[inline]
    pub fn time<T>(&self, server: u16, phase: Phase, work: impl FnOnce() -> T) -> T {
        if !self.timed.load(Relaxed) {
            return work();
        }
        let start = rt::clock::tsc();
        let result = work();
        if let Some(line) = self.servers.get(usize::from(server)) {
            let sum = &line.0[phase as usize];
            // Only server `server` writes its line.
            sum.store(sum.load(Relaxed) + (rt::clock::tsc() - start), Relaxed);
        }
        result
    }

    /// Every server's sums added up.
    pub fn total(&self) -> [u64; Phase::COUNT] {
        let mut total = [0; Phase::COUNT];
        for line in &self.servers {
            for (sum, word) in total.iter_mut().zip(&line.0) {
                *sum += word.load(Relaxed);
            }
        }
        total
    }
}
