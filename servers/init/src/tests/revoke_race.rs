//! A revoke split over kernel entries misses nothing another thread
//! derives meanwhile: while init revokes a chain of copies and a fan of
//! 1,536 mints, a thread on another CPU keeps copying the revoke's oldest
//! descendant (the last it deletes) into whichever of its slots is empty. Every copy it made must be gone when the revoke returns, and
//! the revoke must count exactly what it deleted.

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
const TABLES: usize = 6;

/// The slot the copier copies from, its own slots, and how it stands:
/// 0 copying, 1 asked to stop, 2 stopped.
static SOURCE: AtomicU64 = AtomicU64::new(0);
static TARGETS: [AtomicU64; COPIES] = [const { AtomicU64::new(0) }; COPIES];
static STATE: AtomicU64 = AtomicU64::new(0);
/// Copies the copier made, and how many of them while the revoke ran.
static MADE: AtomicU64 = AtomicU64::new(0);
static REVOKING: AtomicU64 = AtomicU64::new(0);
static DURING: AtomicU64 = AtomicU64::new(0);
/// The copier runs (and waits for the revoke).
static READY: AtomicU64 = AtomicU64::new(0);

/// Once the revoke began, copies [`SOURCE`] into whichever target is
/// empty, round and round, until asked to stop.
extern "C" fn copier(_: u64) -> ! {
    READY.store(1, Ordering::Release);
    while REVOKING.load(Ordering::Acquire) == 0 && STATE.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    for target in TARGETS.iter().cycle() {
        if STATE.load(Ordering::Acquire) != 0 {
            break;
        }
        if sys::cap_copy(SOURCE.load(Ordering::Relaxed), target.load(Ordering::Relaxed)).is_ok() {
            MADE.fetch_add(1, Ordering::Relaxed);
            DURING.fetch_add(REVOKING.load(Ordering::Acquire), Ordering::Relaxed);
        }
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
    // The chain first: its first link is the oldest descendant.
    let mut built = Ok(());
    let mut parent = root;
    for &link in &chain {
        built = built.and_then(|()| sys::cap_copy(parent, link));
        parent = link;
    }
    for &table in &tables {
        built = built.and_then(|()| sys::create(ObjectKind::CSpace, table));
        for slot in 0..abi::cap::CSPACE_SLOTS as u64 {
            built = built.and_then(|()| sys::cap_mint_to(root, table, slot, Rights::ALL, slot));
        }
    }
    SOURCE.store(chain[0], Ordering::Relaxed);
    for flag in [&STATE, &REVOKING, &READY, &MADE, &DURING] {
        flag.store(0, Ordering::Release);
    }
    let thread = env.slots.alloc();
    let started = built.is_ok() && spawn(&env.pages, thread, spec(copier, 0, INIT_PRIORITY, env.other_cpu())).is_ok();
    // The revoke begins once the copier runs, so that they overlap.
    let ready = started && super::wait_for(|| READY.load(Ordering::Acquire) == 1);
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
    check(ready && stopped, "the copier did not run or did not stop")?;
    rt::println!(
        "revoke_race: {} copies made while the revoke ran ({made} in all), {survivors} survived, revoke returned {revoked:?}",
        DURING.load(Ordering::Relaxed)
    );
    check(survivors == 0 && chain_gone, "a capability copied from a descendant during the revoke survived it")?;
    // Every copy was made while its source lived, so before the revoke
    // returned, and is a descendant it deleted.
    let fixed = (TABLES * abi::cap::CSPACE_SLOTS + CHAIN) as u64;
    check(revoked == Ok(fixed + made), "the revoke's count is not what it deleted")
}
