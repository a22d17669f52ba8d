//! Escalations the kernel refuses: page rights above those of the PhysRange
//! that authorised the mapping, priorities above the caller's maximum
//! controlled priority, capabilities placed by a reply the caller did not
//! allow; and ends that must not leave anyone waiting: a `ThreadExit`
//! reported to the thread's handler, a dead server's caller answered.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, Rights, ThreadState, boot_slot};
use abi::msg::kernel_label;
use abi::syscall::{SysError, Sysnum, TRACE_MODE_DROP, TRACE_SET_MASK, TRACE_SET_MODE};
use rt::ipc::{self, Message};
use rt::sys;
use rt::thread::spawn;

use super::ipc::wait_dead;
use super::threads::spec;
use super::{TestResult, check, expect_err, wait_for};
use crate::env::{Env, INIT_PRIORITY};

/// Error code of a result, 0 for success.
fn code<T>(result: Result<T, SysError>) -> u64 {
    result.map_or_else(SysError::code, |_| 0)
}

/// `Protect` may not make a page writable unless the PhysRange it was
/// mapped from carries the write right: the boot image, a read-only mint
/// of RAM; a page of writable RAM may go read-only and back.
pub fn protect_bounded(env: &Env) -> TestResult {
    let space = boot_slot::ADDRESS_SPACE;
    let rw = Rights::READ.union(Rights::WRITE);
    let window = env.pages.window(1);
    sys::map_batch(space, boot_slot::BOOT_IMAGE, 0, window, 1, Rights::READ).map_err(|_| "map the boot image")?;
    let image = sys::protect(space, window, 1, rw);
    let still_read_only = sys::query(space, window).map(|(_, rights)| !rights.contains(Rights::WRITE));
    sys::unmap(space, window, 1).map_err(|_| "unmap the boot image")?;
    expect_err(image, SysError::NoRight, "Protect made the read-only boot image writable")?;
    check(still_read_only == Ok(true), "the refused Protect changed the mapping")?;

    let (frame, read_only) = (env.slots.alloc(), env.slots.alloc());
    sys::phys_range_carve(boot_slot::FIRST_RAM, env.pages.frames(1), 1, frame).map_err(|_| "carve")?;
    sys::cap_mint(frame, read_only, Rights::READ, 0).map_err(|_| "mint read-only")?;
    sys::map_batch(space, read_only, 0, window, 1, Rights::READ).map_err(|_| "map read-only")?;
    let escalated = sys::protect(space, window, 1, rw);
    sys::unmap(space, window, 1).map_err(|_| "unmap")?;
    expect_err(escalated, SysError::NoRight, "Protect made a read-only frame writable")?;

    sys::map_batch(space, frame, 0, window, 1, rw).map_err(|_| "map writable")?;
    let down = sys::protect(space, window, 1, Rights::READ);
    let up = sys::protect(space, window, 1, rw);
    sys::unmap(space, window, 1).map_err(|_| "unmap")?;
    check(down.is_ok() && up.is_ok(), "a writable frame could not go read-only and back")?;
    env.slots.release(read_only);
    env.slots.release(frame);
    Ok(())
}

/// Slots and results of [`ceiling_probe`]: its own thread, a thread it
/// configures, and the error codes of what it tried.
static PROBE_SELF: AtomicU64 = AtomicU64::new(0);
static PROBE_OTHER: AtomicU64 = AtomicU64::new(0);
static PROBE_RESULTS: [AtomicU64; 5] = [const { AtomicU64::new(u64::MAX) }; 5];

/// A thread at init's priority (so its MCP is that priority) tries to go
/// above it, for itself and for a thread it configures.
extern "C" fn ceiling_probe(_: u64) -> ! {
    let (me, other) = (PROBE_SELF.load(Ordering::Acquire), PROBE_OTHER.load(Ordering::Acquire));
    let above = u64::from(INIT_PRIORITY) + 1;
    let configure = |placement: u64| {
        sys::raw_syscall(Sysnum::ThreadConfigure as u64, [other, boot_slot::ADDRESS_SPACE, boot_slot::CSPACE, 0, u64::MAX, placement])
    };
    let results = [
        code(sys::thread_set_priority(me, above)),
        code(sys::thread_set_priority(me, u64::from(INIT_PRIORITY))),
        code(configure(above)),
        code(configure(u64::from(INIT_PRIORITY) | above << 16)),
        code(configure(u64::from(INIT_PRIORITY))),
    ];
    for (slot, result) in PROBE_RESULTS.iter().zip(results) {
        slot.store(result, Ordering::Release);
    }
    sys::thread_exit()
}

/// A thread cannot give itself or another thread a priority (or MCP) above
/// its own maximum controlled priority.
pub fn priority_ceiling(env: &Env) -> TestResult {
    let (probe, other) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Thread, other).map_err(|_| "create")?;
    PROBE_SELF.store(probe, Ordering::Release);
    PROBE_OTHER.store(other, Ordering::Release);
    spawn(&env.pages, probe, spec(ceiling_probe, 0, INIT_PRIORITY, env.other_cpu())).map_err(|_| "spawn")?;
    check(wait_dead(probe), "the probe did not finish")?;
    let results: [u64; 5] = core::array::from_fn(|i| PROBE_RESULTS[i].load(Ordering::Acquire));
    env.slots.release(probe);
    env.slots.release(other);
    let no_right = SysError::NoRight.code();
    check(results[0] == no_right, "a thread raised its own priority above its MCP")?;
    check(results[1] == 0, "a thread could not keep its own priority")?;
    check(results[2] == no_right, "a thread configured another above its MCP")?;
    check(results[3] == no_right, "a thread gave another an MCP above its own")?;
    check(results[4] == 0, "a thread could not configure another at its own priority")
}

static GRANT_BUFFER: AtomicU64 = AtomicU64::new(0);
static GRANT_GIFT: AtomicU64 = AtomicU64::new(0);

/// Answers two calls on `ep`, each reply offering the capability in
/// `GRANT_GIFT`.
extern "C" fn gift_server(ep: u64) -> ! {
    // SAFETY: the spawner gave this thread the buffer it published.
    let buffer = unsafe { ipc::buffer_at(GRANT_BUFFER.load(Ordering::Acquire)) };
    buffer.send_cap = GRANT_GIFT.load(Ordering::Acquire);
    for _ in 0..2 {
        if ipc::recv(ep).is_err() {
            break;
        }
        let _ = ipc::reply(Message::with_payload(0, [0; 4], 0, true));
    }
    sys::thread_exit()
}

/// A reply carries a capability only when the caller called through a
/// capability with the grant right.
pub fn reply_grant(env: &Env) -> TestResult {
    let (ep, no_grant, gift, server, landing) =
        (env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create endpoint")?;
    sys::create(ObjectKind::Notification, gift).map_err(|_| "create notification")?;
    sys::cap_mint(ep, no_grant, Rights::WRITE, 0).map_err(|_| "mint")?;
    let server_buffer = env.pages.alloc(1).map_err(|_| "buffer")?;
    GRANT_BUFFER.store(server_buffer, Ordering::Release);
    GRANT_GIFT.store(gift, Ordering::Release);
    let mut server_spec = spec(gift_server, ep, INIT_PRIORITY + 1, 0);
    server_spec.ipc_buffer = Some(server_buffer);
    spawn(&env.pages, server, server_spec).map_err(|_| "spawn")?;

    // SAFETY: init's own buffer, used only here.
    let buffer = unsafe { ipc::buffer_at(env.ipc_buffer) };
    let recv_slot = core::mem::replace(&mut buffer.recv_slot, landing);
    let refused = ipc::call(no_grant, Message::default());
    let placed = sys::cap_identify(landing).is_ok();
    let granted = ipc::call(ep, Message::default());
    let received = sys::cap_identify(landing).map(|(kind, _, _)| kind);
    buffer.recv_slot = recv_slot;
    let (refused, granted) = (refused.map_err(|_| "call without grant")?, granted.map_err(|_| "call with grant")?);
    for slot in [server, landing, gift, no_grant, ep] {
        env.slots.release(slot);
    }
    check(!refused.info().with_cap() && !placed, "a reply placed a capability through a call without grant")?;
    check(granted.info().with_cap() && received == Ok(ObjectKind::Notification as u64), "a reply to a call with grant lost its capability")
}

/// Ends at once with `ThreadExit`.
extern "C" fn exit_now(_: u64) -> ! {
    sys::thread_exit()
}

/// A thread with a fault endpoint reports its `ThreadExit` there, and dies
/// at the reply even when the reply says resume.
pub fn exit_reported(env: &Env) -> TestResult {
    let (ep, leaver) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    let mut leaving = spec(exit_now, 0, INIT_PRIORITY, env.other_cpu());
    leaving.fault_endpoint = Some(ep);
    spawn(&env.pages, leaver, leaving).map_err(|_| "spawn")?;
    let mut report = None;
    wait_for(|| {
        report = ipc::nb_recv(ep).ok();
        report.is_some()
    });
    let resumed = report.is_some() && ipc::reply(Message::new(kernel_label::RESUME, [0; 4])).is_ok();
    let dead = wait_dead(leaver);
    env.slots.release(leaver);
    env.slots.release(ep);
    let report = report.ok_or("ThreadExit was not reported to the fault endpoint")?;
    check(
        report.msg.label() == kernel_label::FAULT && report.msg.mrs[0] == kernel_label::EXIT_VECTOR,
        "the exit report names the wrong event",
    )?;
    check(resumed && dead, "an exited thread was resumed by its handler")
}

static CALLER_RESULT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Calls `ep` once and records the error code (0 for an answer).
extern "C" fn call_and_record(ep: u64) -> ! {
    CALLER_RESULT.store(code(ipc::call(ep, Message::default())), Ordering::Release);
    sys::thread_exit()
}

/// Receives one call and ends without answering it.
extern "C" fn receive_and_exit(ep: u64) -> ! {
    let _ = ipc::recv(ep);
    sys::thread_exit()
}

/// A server that dies owing a reply: its caller is answered with `NoReply`.
pub fn dead_server_releases_caller(env: &Env) -> TestResult {
    let (ep, server, caller) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    spawn(&env.pages, server, spec(receive_and_exit, ep, INIT_PRIORITY, env.other_cpu())).map_err(|_| "spawn server")?;
    spawn(&env.pages, caller, spec(call_and_record, ep, INIT_PRIORITY, env.other_cpu())).map_err(|_| "spawn caller")?;
    let server_dead = wait_dead(server);
    let caller_dead = wait_dead(caller);
    let state = sys::thread_state(caller);
    for slot in [caller, server, ep] {
        env.slots.release(slot);
    }
    check(server_dead, "the server did not end")?;
    check(caller_dead || state != Ok(ThreadState::Blocked), "the caller of a dead server still waits")?;
    check(CALLER_RESULT.load(Ordering::Acquire) == SysError::NoReply.code(), "the caller of a dead server was not told NoReply")
}

/// Trace records the writer emits (each a refused non-blocking send).
const TRACED_SENDS: u64 = 3000;
static WRITER_DONE: AtomicU64 = AtomicU64::new(0);
/// Set by the drainer once it has drained what is left: the writer may end.
static WRITER_RELEASED: AtomicU64 = AtomicU64::new(0);

/// Emits trace records on its CPU: non-blocking sends nobody receives.
/// Then it keeps its CPU busy until released: an idle CPU drains the rings
/// itself, and one that went idle before the drainer's last flush could
/// take every record left (a full ring is a whole number of its batches),
/// leaving the drainer nothing to count.
extern "C" fn trace_writer(ep: u64) -> ! {
    for _ in 0..TRACED_SENDS {
        let _ = ipc::nb_send(ep, Message::default());
    }
    WRITER_DONE.store(1, Ordering::Release);
    while WRITER_RELEASED.load(Ordering::Acquire) == 0 {
        sys::yield_now();
    }
    sys::thread_exit()
}

/// With tracing on, one CPU writes records while this one drains them and
/// idle CPUs count what waits (`pending`): no count underflows (a debug
/// kernel would panic), and records come out.
pub fn trace_drain_race(env: &Env) -> TestResult {
    let console = boot_slot::CONSOLE_PORTS;
    let set_mask = |mask: u64| sys::raw_syscall(Sysnum::TraceControl as u64, [console, TRACE_SET_MASK, mask, 0, 0, 0]);
    let (ep, writer) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    sys::trace_flush(console).map_err(|_| "flush")?;
    WRITER_DONE.store(0, Ordering::Release);
    WRITER_RELEASED.store(0, Ordering::Release);
    // Dropping, not streaming: in stream mode a full ring is sent by its own
    // CPU, which would leave this one's drains nothing to race with.
    let set_mode = |mode: u64| sys::raw_syscall(Sysnum::TraceControl as u64, [console, TRACE_SET_MODE, mode, 0, 0, 0]);
    let previous_mode = set_mode(TRACE_MODE_DROP).map_err(|_| "drop mode")?;
    set_mask(1).map_err(|_| "trace on")?;
    let spawned = spawn(&env.pages, writer, spec(trace_writer, ep, INIT_PRIORITY, env.other_cpu()));
    let mut drained = 0;
    // Every record goes out through the serial port (the writer's CPU sends
    // its own ring when it fills), which a loaded host runs slowly: wait
    // longer than for a thread that only computes.
    let finished = spawned.is_ok()
        && super::wait_longer(
            || {
                drained += sys::trace_flush(console).unwrap_or(0);
                WRITER_DONE.load(Ordering::Acquire) == 1
            },
            4 * super::PATIENCE,
        );
    set_mask(0).map_err(|_| "trace off")?;
    set_mode(previous_mode).map_err(|_| "restore the trace mode")?;
    drained += sys::trace_flush(console).unwrap_or(0);
    WRITER_RELEASED.store(1, Ordering::Release);
    env.slots.release(writer);
    env.slots.release(ep);
    check(finished, "the trace writer did not finish")?;
    check(drained > 0, "no record came out of the rings")
}

static UNPRIVILEGED: [AtomicU64; 3] = [const { AtomicU64::new(u64::MAX) }; 3];

/// Runs in a table with no privileges: tries the console, kernel
/// information and a trace name (for the endpoint in its slot 1).
extern "C" fn unprivileged(_: u64) -> ! {
    let results = [
        code(sys::debug_write(b"unprivileged write\n")),
        code(sys::kernel_info(abi::syscall::KERNEL_INFO_CPUS)),
        code(sys::trace_name(1, "unprivileged")),
    ];
    for (slot, result) in UNPRIVILEGED.iter().zip(results) {
        slot.store(result, Ordering::Release);
    }
    sys::thread_exit()
}

/// The console, kernel information and trace names need the table's
/// privileges, which can be taken away and never given back; a trace name
/// also needs the write right on the object.
pub fn privileges(env: &Env) -> TestResult {
    let restrict = |table, keep| sys::raw_syscall(Sysnum::TableRestrict as u64, [table, keep, 0, 0, 0, 0]);
    let (table, thread, ep, weak) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::CSpace, table).map_err(|_| "create a table")?;
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create an endpoint")?;
    sys::cap_mint(ep, weak, Rights::READ, 0).map_err(|_| "mint")?;
    let unnamed = sys::trace_name(weak, "weak");
    let built = sys::cap_mint_to(ep, table, 1, Rights::ALL, 0)
        .and_then(|()| restrict(table, 0))
        .and_then(|_| restrict(table, u64::from(abi::cap::privilege::ALL)));
    let ran = built.map_err(|_| "restrict the table").and_then(|kept| {
        check(kept == 0, "a restricted table got its privileges back")?;
        let mut running = spec(unprivileged, 0, INIT_PRIORITY, env.other_cpu());
        running.cspace = table;
        spawn(&env.pages, thread, running).map_err(|_| "spawn")?;
        check(wait_dead(thread), "the unprivileged thread did not finish")
    });
    for slot in [thread, table, weak, ep] {
        env.slots.release(slot);
    }
    expect_err(unnamed, SysError::NoRight, "a trace name through a capability without write")?;
    ran?;
    let results: [u64; 3] = core::array::from_fn(|i| UNPRIVILEGED[i].load(Ordering::Acquire));
    let no_right = SysError::NoRight.code();
    check(results[0] == no_right, "a table without the console privilege wrote to the console")?;
    check(results[1] == no_right, "a table without the information privilege read kernel information")?;
    check(results[2] == no_right, "a table without the trace privilege named an object")
}
