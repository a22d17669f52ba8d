//! Capabilities: every denied operation, badges, revoke, and the bounded
//! kernel pools.

use abi::cap::{ObjectKind, Rights, boot_slot};
use abi::syscall::SysError;
use rt::ipc::{self, Message};
use rt::sys;
use rt::thread::spawn;

use super::ipc::{call_once, serve, wait_dead};
use super::threads::spec;
use super::{TestResult, check, expect_err, wait_for};
use crate::env::{Env, INIT_PRIORITY};

pub fn rights(env: &Env) -> TestResult {
    let ep = env.slots.alloc();
    let ntfn = env.slots.alloc();
    let weak = env.slots.alloc();
    let scratch = env.slots.alloc();
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create endpoint")?;
    sys::create(ObjectKind::Notification, ntfn).map_err(|_| "create notification")?;

    // An endpoint capability with only the read right: no sending, no deriving.
    sys::cap_mint(ep, weak, Rights::READ, 0).map_err(|_| "mint")?;
    check(sys::cap_identify(weak).map(|(_, r, _)| r) == Ok(Rights::READ), "mint did not reduce rights")?;
    expect_err(ipc::nb_send(weak, Message::default()), SysError::NoRight, "send without write")?;
    expect_err(ipc::call(weak, Message::default()), SysError::NoRight, "call without write")?;
    expect_err(sys::cap_copy(weak, scratch), SysError::NoRight, "copy without derive")?;
    expect_err(sys::cap_revoke(weak), SysError::NoRight, "revoke without derive")?;
    sys::cap_delete(weak).map_err(|_| "delete")?;
    // Minting can never add rights.
    sys::cap_mint(ep, weak, Rights::WRITE.union(Rights::DERIVE), 0).map_err(|_| "mint")?;
    sys::cap_mint(weak, scratch, Rights::ALL, 0).map_err(|_| "mint of mint")?;
    check(sys::cap_identify(scratch).map(|(_, r, _)| r) == Ok(Rights::WRITE.union(Rights::DERIVE)), "mint added rights")?;
    expect_err(ipc::nb_recv(scratch), SysError::NoRight, "receive without read")?;
    env.slots.release(scratch);
    env.slots.release(weak);

    // Wrong kinds, empty and bad slots, occupied destinations.
    expect_err(ipc::nb_send(ntfn, Message::default()), SysError::WrongType, "send on a notification")?;
    expect_err(ipc::signal(ep, 1), SysError::WrongType, "signal on an endpoint")?;
    expect_err(sys::thread_suspend(ep), SysError::WrongType, "suspend an endpoint")?;
    let empty = env.slots.alloc();
    expect_err(ipc::nb_send(empty, Message::default()), SysError::EmptySlot, "send on an empty slot")?;
    env.slots.release(empty);
    expect_err(ipc::nb_send(100_000, Message::default()), SysError::BadSlot, "send on a slot past the table")?;
    expect_err(sys::cap_copy(ep, ntfn), SysError::SlotOccupied, "copy onto an occupied slot")?;
    expect_err(sys::create(ObjectKind::Endpoint, ep), SysError::SlotOccupied, "create onto an occupied slot")?;
    expect_err(
        sys::raw_syscall(abi::syscall::Sysnum::Create as u64, [99, scratch, 0, 0, 0, 0]),
        SysError::BadArgument,
        "create of an unknown kind",
    )?;

    // Threads, memory and ports need their rights too.
    let thread_read = env.slots.alloc();
    sys::cap_mint(boot_slot::THREAD, thread_read, Rights::READ, 0).map_err(|_| "mint thread")?;
    expect_err(sys::thread_suspend(thread_read), SysError::NoRight, "suspend without write")?;
    env.slots.release(thread_read);
    let space_read = env.slots.alloc();
    sys::cap_mint(boot_slot::ADDRESS_SPACE, space_read, Rights::READ, 0).map_err(|_| "mint space")?;
    expect_err(sys::unmap(space_read, 0x1000_0000, 1), SysError::NoRight, "unmap without write")?;
    env.slots.release(space_read);
    let window = env.pages.window(1);
    let writable = Rights::READ.union(Rights::WRITE);
    expect_err(
        sys::map_batch(boot_slot::ADDRESS_SPACE, boot_slot::BOOT_IMAGE, 0, window, 1, writable),
        SysError::NoRight,
        "writable map of a read-only range",
    )?;
    let console_read = env.slots.alloc();
    sys::cap_mint(boot_slot::CONSOLE_PORTS, console_read, Rights::READ, 0).map_err(|_| "mint ports")?;
    expect_err(sys::port_out(console_read, 0x3F8, 1, b'!' as u64), SysError::NoRight, "port write without write")?;
    expect_err(sys::port_in(boot_slot::CONSOLE_PORTS, 0x60, 1), SysError::BadArgument, "a port outside the range")?;
    expect_err(sys::port_in(boot_slot::CONSOLE_PORTS, 0x3F8, 3), SysError::BadArgument, "a port width of 3")?;
    env.slots.release(console_read);
    env.slots.release(ntfn);
    env.slots.release(ep);
    Ok(())
}

pub fn badge(env: &Env) -> TestResult {
    let (ep, seven, nine, a, b) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    sys::cap_mint(ep, seven, Rights::WRITE, 7).map_err(|_| "mint 7")?;
    sys::cap_mint(ep, nine, Rights::WRITE, 9).map_err(|_| "mint 9")?;
    check(sys::cap_identify(nine).map(|(_, _, badge)| badge) == Ok(9), "identify shows the wrong badge")?;
    spawn(&env.pages, a, spec(call_once, seven, INIT_PRIORITY, 0)).map_err(|_| "spawn")?;
    spawn(&env.pages, b, spec(call_once, nine, INIT_PRIORITY, env.other_cpu())).map_err(|_| "spawn")?;
    let mut badges = [0; 2];
    serve(ep, 2, &mut badges).map_err(|_| "serve")?;
    badges.sort_unstable();
    check(badges == [7, 9], "the server did not see each client's badge")?;
    check(wait_dead(a) && wait_dead(b), "clients did not finish")?;
    for slot in [a, b, seven, nine, ep] {
        env.slots.release(slot);
    }
    Ok(())
}

static RECEIVER_RESULT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Receives once on the endpoint in `slot`; records the error code (0 = a message).
extern "C" fn receive_once(slot: u64) -> ! {
    let code = match ipc::recv(slot) {
        Ok(_) => 0,
        Err(error) => error.code(),
    };
    RECEIVER_RESULT.store(code, core::sync::atomic::Ordering::Release);
    sys::thread_exit()
}

pub fn revoke(env: &Env) -> TestResult {
    let (ep, child, grandchild, other) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    sys::cap_copy(ep, child).map_err(|_| "copy")?;
    sys::cap_mint(child, grandchild, Rights::WRITE, 5).map_err(|_| "mint")?;
    sys::create(ObjectKind::Endpoint, other).map_err(|_| "create other")?;
    check(sys::cap_revoke(ep) == Ok(2), "revoke did not delete exactly the two derived capabilities")?;
    expect_err(sys::cap_identify(child), SysError::EmptySlot, "child survived revoke")?;
    expect_err(sys::cap_identify(grandchild), SysError::EmptySlot, "grandchild survived revoke")?;
    check(sys::cap_identify(ep).is_ok() && sys::cap_identify(other).is_ok(), "revoke took too much")?;

    // A deleted middle capability hands its children to its parent (the
    // kernel searches for them only under a capability something was
    // derived from, so each way of deriving must say so).
    sys::cap_copy(ep, child).map_err(|_| "copy again")?;
    sys::cap_mint(child, grandchild, Rights::WRITE, 6).map_err(|_| "mint again")?;
    sys::cap_delete(child).map_err(|_| "delete the middle")?;
    check(sys::cap_revoke(ep) == Ok(1), "revoke missed the child of a deleted capability")?;
    expect_err(sys::cap_identify(grandchild), SysError::EmptySlot, "the child of a deleted capability survived revoke")?;

    // Deleting the last capability ends the object: a waiting receiver is told.
    let receiver = env.slots.alloc();
    spawn(&env.pages, receiver, spec(receive_once, ep, INIT_PRIORITY, env.other_cpu())).map_err(|_| "spawn")?;
    check(wait_for(|| sys::thread_state(receiver) == Ok(abi::cap::ThreadState::Blocked)), "receiver never blocked")?;
    let (used, _) = sys::pool_usage(ObjectKind::Endpoint).map_err(|_| "usage")?;
    env.slots.release(ep);
    check(wait_dead(receiver), "receiver did not wake")?;
    check(
        RECEIVER_RESULT.load(core::sync::atomic::Ordering::Acquire) == SysError::ObjectDeleted.code(),
        "receiver not told the endpoint died",
    )?;
    check(sys::pool_usage(ObjectKind::Endpoint).map(|u| u.0) == Ok(used - 1), "the endpoint was not freed")?;
    for slot in [receiver, child, grandchild, other] {
        env.slots.release(slot);
    }
    Ok(())
}

pub fn pool_exhaustion(env: &Env) -> TestResult {
    let (before, capacity) = sys::pool_usage(ObjectKind::Notification).map_err(|_| "usage")?;
    let mut created = [0u64; 192];
    let mut count = 0;
    let outcome = loop {
        let slot = env.slots.alloc();
        match sys::create(ObjectKind::Notification, slot) {
            Ok(()) => {
                created[count] = slot;
                count += 1;
            }
            Err(error) => {
                env.slots.release(slot);
                break error;
            }
        }
        if count == created.len() {
            break SysError::BadState;
        }
    };
    let full = sys::pool_usage(ObjectKind::Notification).map(|u| u.0);
    for &slot in &created[..count] {
        env.slots.release(slot);
    }
    check(outcome == SysError::OutOfKernelMemory, "exhaustion did not report OutOfKernelMemory")?;
    check(count as u64 == capacity - before && full == Ok(capacity), "the pool did not fill to its capacity")?;
    check(sys::pool_usage(ObjectKind::Notification).map(|u| u.0) == Ok(before), "deleted objects did not return to the pool")
}
