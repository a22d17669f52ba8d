//! Faults: delivered as a call to the thread's fault endpoint; the pager's
//! reply resumes the thread (after fixing the mapping) or kills it; with no
//! fault endpoint the thread is killed and the kernel carries on.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, Rights, ThreadState, boot_slot};
use abi::msg::kernel_label;
use abi::syscall::KERNEL_INFO_KILLS;
use rt::ipc::{self, Message};
use rt::sys;
use rt::thread::spawn;

use super::ipc::wait_dead;
use super::threads::spec;
use super::{TestResult, check, wait_for};
use crate::env::{Env, INIT_PRIORITY};

const PAGE_FAULT: u64 = 14;
static LOADED: AtomicU64 = AtomicU64::new(0);

/// Reads the word at `addr` and records it.
extern "C" fn read_and_record(addr: u64) -> ! {
    // SAFETY: none needed by the test's logic; the read is meant to fault
    // first and succeed once the pager maps the page.
    let value = unsafe { (addr as *const u64).read_volatile() };
    LOADED.store(value, Ordering::Release);
    sys::thread_exit()
}

pub fn delivery(env: &Env) -> TestResult {
    let (ep, faulter) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    let hole = env.pages.window(1);
    let mut faulting = spec(read_and_record, hole + 24, INIT_PRIORITY, env.other_cpu());
    faulting.fault_endpoint = Some(ep);
    spawn(&env.pages, faulter, faulting).map_err(|_| "spawn")?;

    let fault = ipc::recv(ep).map_err(|_| "no fault message")?;
    check(fault.msg.label() == kernel_label::FAULT, "fault message label")?;
    check(fault.msg.mrs[0] == PAGE_FAULT && fault.msg.mrs[1] == hole + 24, "fault message names the wrong fault")?;
    check(sys::thread_state(faulter) == Ok(ThreadState::Blocked), "the faulting thread is not waiting")?;
    let frame = env.pages.frames(1);
    sys::map_batch(boot_slot::ADDRESS_SPACE, boot_slot::FIRST_RAM, frame, hole, 1, Rights::READ.union(Rights::WRITE))
        .map_err(|_| "map the missing page")?;
    // SAFETY: just mapped.
    unsafe { ((hole + 24) as *mut u64).write_volatile(42) };
    ipc::reply(Message::new(kernel_label::RESUME, [0; 4])).map_err(|_| "reply")?;
    // Its ThreadExit comes here too (`exit_reported` checks that); answer it.
    if wait_for(|| ipc::nb_recv(ep).is_ok()) {
        ipc::reply(Message::default()).map_err(|_| "answer the exit report")?;
    }
    check(wait_dead(faulter), "the resumed thread did not finish")?;
    check(LOADED.load(Ordering::Acquire) == 42, "the resumed thread did not read the mapped page")?;
    env.slots.release(faulter);
    env.slots.release(ep);
    Ok(())
}

pub fn kill(env: &Env) -> TestResult {
    let (ep, by_pager, unhandled) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    let mut faulting = spec(read_and_record, env.pages.window(1), INIT_PRIORITY, 0);
    faulting.fault_endpoint = Some(ep);
    spawn(&env.pages, by_pager, faulting).map_err(|_| "spawn")?;
    ipc::recv(ep).map_err(|_| "no fault message")?;
    ipc::reply(Message::new(1, [0; 4])).map_err(|_| "reply")?;
    check(sys::thread_state(by_pager) == Ok(ThreadState::Dead), "the pager's kill did not end the thread")?;

    let kills = sys::kernel_info(KERNEL_INFO_KILLS).map_err(|_| "info")?;
    spawn(&env.pages, unhandled, spec(read_and_record, env.pages.window(1), INIT_PRIORITY, env.other_cpu())).map_err(|_| "spawn")?;
    check(wait_dead(unhandled), "a fault with no handler did not end the thread")?;
    check(sys::kernel_info(KERNEL_INFO_KILLS) == Ok(kills + 1), "the kill was not counted")?;
    for slot in [by_pager, unhandled, ep] {
        env.slots.release(slot);
    }
    Ok(())
}
