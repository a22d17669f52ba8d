//! Kernel resources are paid for and come back: creation is charged to the
//! creator's table's allowance (a table can spend only what init gave it),
//! and tables and threads that keep each other alive are reclaimed once
//! nothing outside names them.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, Rights, boot_slot};
use abi::syscall::{KERNEL_INFO_LOCK_HOLD_MAX, SysError, Sysnum};
use rt::sys::{self, ThreadConfig};
use rt::thread::spawn;

use super::ipc::wait_dead;
use super::threads::spec;
use super::{TestResult, check};
use crate::env::{Env, INIT_PRIORITY};
use crate::system::give_allowance;

/// Objects the test gives its table to spend.
const GIVEN: u64 = 3;
/// Error codes of the spender's creations (0 = created).
static CREATED: [AtomicU64; GIVEN as usize + 2] = [const { AtomicU64::new(u64::MAX) }; GIVEN as usize + 2];

/// Runs in a table of its own: tries `tries` notifications, then deletes
/// the first and tries once more.
extern "C" fn spender(tries: u64) -> ! {
    let create = |slot| sys::create(ObjectKind::Notification, slot).map_or_else(SysError::code, |()| 0);
    for slot in 0..tries {
        CREATED[slot as usize].store(create(slot + 1), Ordering::Release);
    }
    let _ = sys::cap_delete(1);
    CREATED[tries as usize].store(create(1), Ordering::Release);
    sys::thread_exit()
}

/// Runs [`spender`] making `tries` attempts in a new table given
/// `allowance` objects; the error codes of its attempts.
fn spend(env: &Env, allowance: u64, tries: u64) -> Result<[u64; GIVEN as usize + 2], &'static str> {
    let (table, thread) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::CSpace, table).map_err(|_| "create a table")?;
    let given = if allowance > 0 { give_allowance(table, allowance) } else { Ok(()) };
    let spent = given.and_then(|()| {
        let mut spending = spec(spender, tries, INIT_PRIORITY, env.other_cpu());
        spending.cspace = table;
        spawn(&env.pages, thread, spending).map_err(|_| "spawn")?;
        check(wait_dead(thread), "the spender did not finish")
    });
    env.slots.release(thread);
    env.slots.release(table);
    spent?;
    Ok(core::array::from_fn(|i| CREATED[i].swap(u64::MAX, Ordering::AcqRel)))
}

/// A table creates nothing unless given an allowance, and no more than it
/// was given; what its objects cost comes back when they go.
pub fn allowance(env: &Env) -> TestResult {
    let (notifications, _) = sys::pool_usage(ObjectKind::Notification).map_err(|_| "usage")?;
    let oom = SysError::OutOfKernelMemory.code();
    let unpaid = spend(env, 0, 1)?;
    check(unpaid[0] == oom, "a table with no allowance created an object")?;
    let codes = spend(env, GIVEN, GIVEN + 1)?;
    check(codes[..GIVEN as usize].iter().all(|&c| c == 0), "a table could not spend its allowance")?;
    check(codes[GIVEN as usize] == oom, "a table created beyond its allowance")?;
    check(codes[GIVEN as usize + 1] == 0, "a deleted object did not give its allowance back")?;
    check(sys::pool_usage(ObjectKind::Notification).map(|u| u.0) == Ok(notifications), "the table's objects outlived it")?;
    // Nobody gives allowance to itself.
    let own = sys::raw_syscall(Sysnum::Allowance as u64, [abi::syscall::OWN_CSPACE, 1, 0, 0, 0, 0]);
    check(own == Err(SysError::BadArgument), "a table gave allowance to itself")
}

/// A table holding a capability to itself and to a never-started thread
/// configured to run in it: once init deletes its own capabilities, both
/// are gone.
pub fn cycle_reclaimed(env: &Env) -> TestResult {
    let usage = || {
        Ok::<_, &'static str>((
            sys::pool_usage(ObjectKind::CSpace).map_err(|_| "usage")?.0,
            sys::pool_usage(ObjectKind::Thread).map_err(|_| "usage")?.0,
        ))
    };
    let before = usage()?;
    let (table, thread) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::CSpace, table).map_err(|_| "create a table")?;
    sys::create(ObjectKind::Thread, thread).map_err(|_| "create a thread")?;
    let config = ThreadConfig {
        space: boot_slot::ADDRESS_SPACE,
        cspace: table,
        ipc_buffer: 0,
        fault_endpoint: None,
        priority: INIT_PRIORITY,
        cpu: 0,
    };
    let built = sys::cap_mint_to(table, table, 5, Rights::ALL, 0)
        .and_then(|()| sys::cap_mint_to(thread, table, 6, Rights::ALL, 0))
        .and_then(|()| sys::thread_configure(thread, &config));
    let held = usage()?;
    env.slots.release(thread);
    env.slots.release(table);
    built.map_err(|_| "build the cycle")?;
    check(held == (before.0 + 1, before.1 + 1), "the cycle's objects were not created")?;
    check(usage()? == before, "a table and thread that name each other outlived every outside capability")
}

/// Tables [`revoke_bound`] fills with derived capabilities.
const REVOKE_TABLES: usize = 6;
/// Depth of the chain of copies it derives in init's own table.
const REVOKE_CHAIN: usize = 64;

/// Revoking thousands of capabilities (a fan over several tables and a
/// chain in init's) removes exactly them; prints what it cost against a
/// `Yield` measured in the same run (TSC cycles).
pub fn revoke_bound(env: &Env) -> TestResult {
    let usage = || sys::pool_usage(ObjectKind::Endpoint).map(|u| u.0);
    let before = usage();
    let root = env.slots.alloc();
    sys::create(ObjectKind::Endpoint, root).map_err(|_| "create")?;
    let tables: [u64; REVOKE_TABLES] = core::array::from_fn(|_| env.slots.alloc());
    let chain: [u64; REVOKE_CHAIN] = core::array::from_fn(|_| env.slots.alloc());
    let mut derived = 0u64;
    let mut built = Ok(());
    for &table in &tables {
        built = built.and_then(|()| sys::create(ObjectKind::CSpace, table));
        for slot in 0..abi::cap::CSPACE_SLOTS as u64 {
            built = built.and_then(|()| sys::cap_mint_to(root, table, slot, Rights::ALL, slot));
            derived += u64::from(built.is_ok());
        }
    }
    let mut parent = root;
    for &link in &chain {
        built = built.and_then(|()| sys::cap_copy(parent, link));
        derived += u64::from(built.is_ok());
        parent = link;
    }
    let _ = sys::kernel_info(KERNEL_INFO_LOCK_HOLD_MAX);
    let start = super::tsc();
    let revoked = sys::cap_revoke(root);
    let cycles = super::tsc() - start;
    let longest_entry = sys::kernel_info(KERNEL_INFO_LOCK_HOLD_MAX).unwrap_or(0);
    const YIELDS: u64 = 1000;
    let start = super::tsc();
    for _ in 0..YIELDS {
        sys::yield_now();
    }
    let yield_cycles = (super::tsc() - start) / YIELDS;
    let chain_gone = chain.iter().all(|&slot| sys::cap_identify(slot) == Err(SysError::EmptySlot));
    for slot in chain.into_iter().chain(tables).chain([root]) {
        env.slots.release(slot);
    }
    built.map_err(|_| "derive the capabilities")?;
    rt::println!(
        "revoke_bound: {derived} capabilities revoked in {cycles} TSC cycles ({} per capability); a Yield takes {yield_cycles}, ratio {}; \
         longest kernel entry meanwhile {longest_entry} (0 without lockstat)",
        cycles / derived.max(1),
        cycles / yield_cycles.max(1)
    );
    check(revoked == Ok(derived), "revoke did not delete exactly the derived capabilities")?;
    check(chain_gone, "a copy in the chain survived revoke")?;
    check(usage() == before, "the endpoint outlived its capabilities")
}
