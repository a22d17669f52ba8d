//! Cycles the first reclaim walk cannot take, found by the fuzzer's
//! tables: a cycle whose last outside capability goes while one of its
//! threads still runs (reclaimed once that thread blocks), and a cycle
//! holding the fault endpoint of its own stopped thread (the thread's
//! hold on it comes from inside), and a dead table holding a capability to
//! a live one.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, Rights, ThreadState};
use rt::sys::{self, Slot};
use rt::thread::spawn;

use super::threads::spec;
use super::{TestResult, check, wait_for};
use crate::env::{Env, INIT_PRIORITY};

/// Where the cycle's table holds itself, its endpoint and its thread.
const SELF: u64 = 0;
const ENDPOINT: u64 = 1;
const THREAD: u64 = 2;

static GO: AtomicU64 = AtomicU64::new(0);

/// Runs until told to, then waits on its table's endpoint for ever.
extern "C" fn run_then_wait(_: u64) -> ! {
    while GO.load(Ordering::Acquire) == 0 {
        sys::yield_now();
    }
    loop {
        let _ = rt::ipc::recv(ENDPOINT);
    }
}

/// Traps at once (invalid opcode).
extern "C" fn trap(_: u64) -> ! {
    loop {
        // SAFETY: ud2 only raises the fault the test wants delivered.
        unsafe { core::arch::asm!("ud2") };
    }
}

fn usage() -> Result<[u64; 3], &'static str> {
    let used = |kind| sys::pool_usage(kind).map(|usage| usage.0).map_err(|_| "pool usage");
    Ok([used(ObjectKind::CSpace)?, used(ObjectKind::Thread)?, used(ObjectKind::Endpoint)?])
}

/// A table, an endpoint and a thread running in the table, each named
/// from the table; `fault` makes the endpoint the thread's fault endpoint.
struct Cycle {
    table: Slot,
    endpoint: Slot,
    thread: Slot,
}

impl Cycle {
    fn build(env: &Env, entry: extern "C" fn(u64) -> !, fault: bool) -> Result<Self, &'static str> {
        let cycle = Self { table: env.slots.alloc(), endpoint: env.slots.alloc(), thread: env.slots.alloc() };
        sys::create(ObjectKind::CSpace, cycle.table).map_err(|_| "create a table")?;
        sys::create(ObjectKind::Endpoint, cycle.endpoint).map_err(|_| "create an endpoint")?;
        let mut running = spec(entry, 0, INIT_PRIORITY, 0);
        running.cspace = cycle.table;
        running.fault_endpoint = fault.then_some(cycle.endpoint);
        spawn(&env.pages, cycle.thread, running).map_err(|_| "spawn")?;
        for (slot, at) in [(cycle.table, SELF), (cycle.endpoint, ENDPOINT), (cycle.thread, THREAD)] {
            sys::cap_mint_to(slot, cycle.table, at, Rights::ALL, 0).map_err(|_| "fill the table")?;
        }
        Ok(cycle)
    }

    /// Deletes init's capabilities, the table's last.
    fn let_go(self, env: &Env) {
        for slot in [self.thread, self.endpoint, self.table] {
            env.slots.release(slot);
        }
    }
}

/// The last outside capability goes while the cycle's thread runs; once
/// the thread blocks on the cycle's endpoint, all three are reclaimed.
pub fn reclaimed_when_member_stops(env: &Env) -> TestResult {
    GO.store(0, Ordering::Release);
    let before = usage()?;
    let cycle = Cycle::build(env, run_then_wait, false)?;
    cycle.let_go(env);
    let running = usage()?;
    GO.store(1, Ordering::Release);
    check(running.iter().zip(before).all(|(now, then)| *now == then + 1), "a cycle was reclaimed while its thread ran")?;
    check(wait_for(|| usage() == Ok(before)), "a cycle whose thread blocked after its last outside capability went was kept")
}

/// The cycle's thread has faulted and waits to deliver the fault on the
/// cycle's own endpoint; once the outside capabilities go, all three
/// are reclaimed.
pub fn fault_endpoint_inside(env: &Env) -> TestResult {
    let before = usage()?;
    let cycle = Cycle::build(env, trap, true)?;
    let faulted = wait_for(|| sys::thread_state(cycle.thread) == Ok(ThreadState::Blocked));
    cycle.let_go(env);
    check(faulted, "the thread did not fault")?;
    check(wait_for(|| usage() == Ok(before)), "a cycle holding its stopped thread's fault endpoint was kept")
}

/// A table that holds itself and a capability to a second table, which
/// init still names when it lets go of the first: the first is garbage
/// beside a live table, and goes at once; the second goes with init's
/// capability.
pub fn dead_beside_live(env: &Env) -> TestResult {
    let before = usage()?;
    let (dead, live) = (env.slots.alloc(), env.slots.alloc());
    for table in [dead, live] {
        sys::create(ObjectKind::CSpace, table).map_err(|_| "create a table")?;
        sys::cap_mint_to(table, table, SELF, Rights::ALL, 0).map_err(|_| "fill a table")?;
    }
    sys::cap_mint_to(live, dead, ENDPOINT, Rights::ALL, 0).map_err(|_| "fill a table")?;
    env.slots.release(dead);
    let first_gone = usage()?[0] == before[0] + 1;
    env.slots.release(live);
    check(first_gone, "a table named only by itself was kept because it names a live table")?;
    check(usage()? == before, "two tables, one naming the other, outlived every outside capability")
}
