//! The kernel's two IPC paths: register-only round trips between threads
//! on one CPU take the fast path, and each fall-back (a capability
//! transfer, a long message, a receiver not waiting, a lower-priority
//! receiver, a ready thread the receiver does not outrank, a partner on
//! another CPU) gives the slow path's result. The kernel counts every Call
//! and ReplyRecv by the path it took (`KERNEL_INFO_IPC_PATH`), which is how
//! a test tells them apart.

use core::sync::atomic::{AtomicBool, Ordering};

use abi::cap::{ObjectKind, Rights};
use abi::syscall::{IpcPath, KERNEL_INFO_IPC_PATH};
use rt::ipc::{self, Message};
use rt::sys::{self, Slot};
use rt::thread::spawn;

use super::ipc::echo_server;
use super::threads::spec;
use super::{TestResult, check};
use crate::env::{Env, INIT_PRIORITY};

type Counts = [u64; IpcPath::ALL.len()];

fn counts() -> Result<Counts, &'static str> {
    let mut counts = [0; IpcPath::ALL.len()];
    for (count, path) in counts.iter_mut().zip(IpcPath::ALL) {
        *count = sys::kernel_info(KERNEL_INFO_IPC_PATH + path as u64).map_err(|_| "KernelInfo has no IPC path counts")?;
    }
    Ok(counts)
}

/// What `f` adds to each path's count.
fn paths_of(f: impl FnOnce() -> TestResult) -> Result<Counts, &'static str> {
    let before = counts()?;
    f()?;
    let after = counts()?;
    let mut delta = [0; IpcPath::ALL.len()];
    for (d, (a, b)) in delta.iter_mut().zip(after.iter().zip(before)) {
        *d = a - b;
    }
    Ok(delta)
}

/// Runs `f` and checks that a Call in it fell back for `path`.
fn expect_fallback(path: IpcPath, what: &'static str, f: impl FnOnce() -> TestResult) -> TestResult {
    check(paths_of(f)?[path as usize] > 0, what)
}

/// One call through `ep` (badge `badge`), answered by an echo server.
fn echo_call(ep: Slot, msg: Message, badge: u64) -> TestResult {
    let reply = ipc::call(ep, msg).map_err(|_| "call failed")?;
    check(reply.label() == msg.label(), "the reply's label differs")?;
    check(reply.mrs == [msg.mrs[0] + 1, badge, msg.mrs[2], 0], "the reply's registers differ from the echo")
}

/// An echo server on `cpu` at `priority`, behind endpoint capability
/// `badged` (badge `badge`); the slots are `[endpoint, badged, server]`.
fn echo(env: &Env, cpu: u16, priority: u8, badge: u64) -> Result<[Slot; 3], &'static str> {
    let slots = [env.slots.alloc(), env.slots.alloc(), env.slots.alloc()];
    sys::create(ObjectKind::Endpoint, slots[0]).map_err(|_| "create endpoint")?;
    sys::cap_mint(slots[0], slots[1], Rights::ALL, badge).map_err(|_| "mint")?;
    spawn(&env.pages, slots[2], spec(echo_server, slots[0], priority, cpu)).map_err(|_| "spawn")?;
    Ok(slots)
}

fn release(env: &Env, slots: [Slot; 3]) {
    for slot in slots.into_iter().rev() {
        env.slots.release(slot);
    }
}

/// Round trips with a higher-priority server on this CPU: every Call and
/// every ReplyRecv takes the fast path, with the right answers.
pub fn fast_path(env: &Env) -> TestResult {
    const ROUNDS: u64 = 50;
    let slots = echo(env, 0, INIT_PRIORITY + 1, 0x5A)?;
    let delta = paths_of(|| (0..ROUNDS).try_for_each(|round| echo_call(slots[1], Message::new(9, [round, 7, round * 3, 1]), 0x5A)));
    release(env, slots);
    let delta = delta?;
    check(delta[IpcPath::Fast as usize] >= 2 * ROUNDS, "register-only round trips on one CPU missed the fast path")?;
    check(delta[1..].iter().all(|&n| n == 0), "a register-only round trip on one CPU fell back")?;
    rt::println!("ipc_fast_path: {ROUNDS} round trips, {} fast Calls and ReplyRecvs", delta[IpcPath::Fast as usize]);
    Ok(())
}

static SPIN: AtomicBool = AtomicBool::new(false);

/// Stays ready at its priority (yielding) until told to stop.
extern "C" fn spinner(_: u64) -> ! {
    while SPIN.load(Ordering::Acquire) {
        sys::yield_now();
    }
    sys::thread_exit()
}

/// Every fall-back condition, each checked by its count and by the answer.
pub fn fallbacks(env: &Env) -> TestResult {
    let high = echo(env, 0, INIT_PRIORITY + 1, 0x11)?;
    let outcome = (|| {
        let ep = high[1];
        // SAFETY: init's own buffer, used only here.
        let buffer = unsafe { ipc::buffer_at(env.ipc_buffer) };
        buffer.send_cap = high[0];
        expect_fallback(IpcPath::CapTransfer, "a capability transfer took the fast path", || {
            echo_call(ep, Message::with_payload(3, [1, 0, 2, 0], 0, true), 0x11)
        })?;
        buffer.data[..16].fill(0xA5);
        expect_fallback(IpcPath::LongMessage, "a long message took the fast path", || {
            echo_call(ep, Message::with_payload(3, [2, 0, 3, 0], 16, false), 0x11)
        })?;
        echo_call(ep, Message::new(3, [3, 0, 4, 0]), 0x11)
    })();
    release(env, high);
    outcome?;

    // Below init's priority, the server has not run when the first call
    // comes: nobody waits. Once it waits, it is still below the caller.
    let low = echo(env, 0, INIT_PRIORITY - 1, 0x22)?;
    let outcome = expect_fallback(IpcPath::NotWaiting, "a call with no receiver waiting took the fast path", || {
        echo_call(low[1], Message::new(4, [10, 0, 11, 0]), 0x22)
    })
    .and_then(|()| {
        expect_fallback(IpcPath::Priority, "a call to a lower-priority receiver took the fast path", || {
            echo_call(low[1], Message::new(4, [12, 0, 13, 0]), 0x22)
        })
    });
    release(env, low);
    outcome?;

    // A ready thread at the receiver's priority runs before it on the slow
    // path, so the fast path must not jump it.
    let equal = echo(env, 0, INIT_PRIORITY, 0x33)?;
    let worker = env.slots.alloc();
    let outcome = (|| {
        echo_call(equal[1], Message::new(5, [20, 0, 21, 0]), 0x33)?;
        SPIN.store(true, Ordering::Release);
        spawn(&env.pages, worker, spec(spinner, 0, INIT_PRIORITY, 0)).map_err(|_| "spawn spinner")?;
        expect_fallback(IpcPath::Priority, "a call jumped a ready thread of the receiver's priority", || {
            echo_call(equal[1], Message::new(5, [22, 0, 23, 0]), 0x33)
        })
    })();
    SPIN.store(false, Ordering::Release);
    check(super::ipc::wait_dead(worker), "the spinner did not stop")?;
    env.slots.release(worker);
    release(env, equal);
    outcome?;

    if env.cpus < 2 {
        rt::println!("ipc_fallbacks: one CPU, no cross-CPU case");
        return Ok(());
    }
    // The first call finds the new server waiting or not; by the second it
    // waits (its ReplyRecv blocked before the reply woke the caller).
    let remote = echo(env, env.other_cpu(), INIT_PRIORITY + 1, 0x44)?;
    let outcome = echo_call(remote[1], Message::new(6, [30, 0, 31, 0]), 0x44).and_then(|()| {
        expect_fallback(IpcPath::OtherCpu, "a call to another CPU took the fast path", || {
            echo_call(remote[1], Message::new(6, [32, 0, 33, 0]), 0x44)
        })
    });
    release(env, remote);
    outcome
}
