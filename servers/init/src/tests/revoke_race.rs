//! A revoke split over kernel entries misses nothing another thread
//! derives meanwhile: while init revokes a fan of 512 capabilities and a
//! chain of copies, a thread on another CPU keeps copying the chain's
//! newest copy into slots of its own. Every copy it made must be gone
//! when the revoke returns, and the revoke must count exactly what it
//! deleted.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, Rights};
use abi::syscall::SysError;
use rt::sys;
use rt::thread::spawn;

use super::ipc::wait_dead;
use super::threads::spec;
use super::{TestResult, check};
use crate::env::{Env, INIT_PRIORITY};

/// Slots the copier fills, in turn.
const COPIES: usize = 32;
/// Depth of the chain the copier copies from (its last link).
const CHAIN: usize = 8;
/// Tables of 256 mints each that make the revoke long.
const TABLES: usize = 2;

/// The slot the copier copies from, its own slots, and how it stands:
/// 0 copying, 1 asked to stop, 2 stopped.
static SOURCE: AtomicU64 = AtomicU64::new(0);
static TARGETS: [AtomicU64; COPIES] = [const { AtomicU64::new(0) }; COPIES];
static STATE: AtomicU64 = AtomicU64::new(0);
/// Copies the copier made, and how many of them while the revoke ran.
static MADE: AtomicU64 = AtomicU64::new(0);
static REVOKING: AtomicU64 = AtomicU64::new(0);
static DURING: AtomicU64 = AtomicU64::new(0);

/// Copies [`SOURCE`] into each empty target in turn until asked to stop.
extern "C" fn copier(_: u64) -> ! {
    let mut at = 0;
    while STATE.load(Ordering::Acquire) == 0 {
        let target = TARGETS[at % COPIES].load(Ordering::Relaxed);
        if sys::cap_copy(SOURCE.load(Ordering::Relaxed), target).is_ok() {
            MADE.fetch_add(1, Ordering::Relaxed);
            DURING.fetch_add(REVOKING.load(Ordering::Acquire), Ordering::Relaxed);
        }
        at += 1;
    }
    STATE.store(2, Ordering::Release);
    sys::thread_exit()
}

pub fn copies_during_revoke(env: &Env) -> TestResult {
    let root = env.slots.alloc();
    sys::create(ObjectKind::Endpoint, root).map_err(|_| "create")?;
    let tables: [u64; TABLES] = core::array::from_fn(|_| env.slots.alloc());
    let chain: [u64; CHAIN] = core::array::from_fn(|_| env.slots.alloc());
    for (target, slot) in TARGETS.iter().zip(core::iter::repeat_with(|| env.slots.alloc())) {
        target.store(slot, Ordering::Relaxed);
    }
    let mut built = Ok(());
    for &table in &tables {
        built = built.and_then(|()| sys::create(ObjectKind::CSpace, table));
        for slot in 0..abi::cap::CSPACE_SLOTS as u64 {
            built = built.and_then(|()| sys::cap_mint_to(root, table, slot, Rights::ALL, slot));
        }
    }
    let mut parent = root;
    for &link in &chain {
        built = built.and_then(|()| sys::cap_copy(parent, link));
        parent = link;
    }
    SOURCE.store(parent, Ordering::Relaxed);
    (STATE.store(0, Ordering::Release), MADE.store(0, Ordering::Relaxed), DURING.store(0, Ordering::Relaxed));
    let thread = env.slots.alloc();
    let started = built.is_ok() && spawn(&env.pages, thread, spec(copier, 0, INIT_PRIORITY, env.other_cpu())).is_ok();
    // Let the copier fill its slots first, then revoke while it goes on.
    super::wait_for(|| !started || MADE.load(Ordering::Relaxed) >= COPIES as u64);
    let made_before = MADE.load(Ordering::Relaxed);
    REVOKING.store(1, Ordering::Release);
    let revoked = sys::cap_revoke(root);
    REVOKING.store(0, Ordering::Release);
    STATE.store(1, Ordering::Release);
    let stopped = started && super::wait_for(|| STATE.load(Ordering::Acquire) == 2) && wait_dead(thread);
    let made = MADE.load(Ordering::Relaxed);
    let survivors = TARGETS.iter().filter(|t| sys::cap_identify(t.load(Ordering::Relaxed)) != Err(SysError::EmptySlot)).count();
    let chain_gone = chain.iter().all(|&slot| sys::cap_identify(slot) == Err(SysError::EmptySlot));
    for slot in TARGETS.iter().map(|t| t.load(Ordering::Relaxed)).chain(chain).chain(tables).chain([root, thread]) {
        env.slots.release(slot);
    }
    built.map_err(|_| "derive the capabilities")?;
    check(stopped, "the copier did not stop")?;
    rt::println!(
        "revoke_race: {} copies made while the revoke ran ({made} in all), {survivors} survived, revoke returned {revoked:?}",
        DURING.load(Ordering::Relaxed)
    );
    check(survivors == 0 && chain_gone, "a capability copied from a descendant during the revoke survived it")?;
    // Each copy made before the revoke returned was a descendant it deleted
    // (those made before it began are in `made_before`); none after it.
    let fixed = (TABLES * abi::cap::CSPACE_SLOTS + CHAIN) as u64;
    check(revoked.is_ok_and(|n| n >= fixed + made_before.min(COPIES as u64) && n <= fixed + made), "the revoke's count is off")
}
