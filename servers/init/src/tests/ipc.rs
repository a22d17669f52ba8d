//! Endpoints and notifications: call/reply round trips on one CPU and
//! across CPUs, payload and capability transfer, and notification bits.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, Rights};
use abi::msg::IPC_BUFFER_DATA;
use abi::syscall::SysError;
use rt::ipc::{self, Message};
use rt::sys::{self, Slot};
use rt::thread::spawn;

use super::threads::spec;
use super::{TestResult, check, expect_err, tsc, wait_for};
use crate::env::{Env, INIT_PRIORITY};

/// Answers every call on endpoint `ep` with `mr0 + 1` and the badge.
pub extern "C" fn echo_server(ep: u64) -> ! {
    ipc::serve(ep, |r| Message::new(r.msg.label(), [r.msg.mrs[0] + 1, r.badge, r.msg.mrs[2], 0]))
}

/// Runs `rounds` calls against an echo server on `cpu`; returns the mean
/// round trip in TSC cycles.
pub fn round_trips(env: &Env, cpu: u16, rounds: u64) -> Result<u64, &'static str> {
    run_round_trips(env, cpu, rounds, || {})
}

/// Like [`round_trips`], timing each round trip but the first (from the end
/// of one to the end of the next); returns the median and the least, in
/// TSC cycles.
pub fn round_trip_spread(env: &Env, cpu: u16, rounds: u64) -> Result<(u64, u64), &'static str> {
    let mut times = alloc::vec::Vec::with_capacity(rounds as usize);
    let mut last = None;
    run_round_trips(env, cpu, rounds, || {
        let now = tsc();
        if let Some(before) = last.replace(now) {
            times.push(now - before);
        }
    })?;
    times.sort_unstable();
    Ok((times.get(times.len() / 2).copied().unwrap_or(0), times.first().copied().unwrap_or(0)))
}

/// The round trips, calling `after_each` after each one (a no-op closure
/// costs nothing); returns the mean in TSC cycles.
fn run_round_trips(env: &Env, cpu: u16, rounds: u64, mut after_each: impl FnMut()) -> Result<u64, &'static str> {
    let ep = env.slots.alloc();
    let server = env.slots.alloc();
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create endpoint")?;
    spawn(&env.pages, server, spec(echo_server, ep, INIT_PRIORITY + 1, cpu)).map_err(|_| "spawn server")?;
    // Names for the IPC trace (ignored while tracing is off).
    let _ = sys::trace_name(ep, "echo");
    let _ = sys::trace_name(server, if cpu == 0 { "echo-server/0" } else { "echo-server/1" });
    let start = tsc();
    let mut outcome = Ok(());
    for round in 0..rounds {
        match ipc::call(ep, Message::new(7, [round, 0, 0, 0])) {
            Ok(reply) if reply.mrs[0] == round + 1 && reply.label() == 7 => {}
            Ok(_) => outcome = Err("wrong reply"),
            Err(_) => outcome = Err("call failed"),
        }
        if outcome.is_err() {
            break;
        }
        after_each();
    }
    let mean = (tsc() - start) / rounds.max(1);
    env.slots.release(server);
    env.slots.release(ep);
    outcome.map(|()| mean)
}

pub fn same_cpu(env: &Env) -> TestResult {
    let cycles = round_trips(env, 0, 1000)?;
    rt::println!("ipc_same_cpu: 1000 round trips, mean {cycles} TSC cycles");
    Ok(())
}

pub fn cross_cpu(env: &Env) -> TestResult {
    let cpu = env.other_cpu();
    let cycles = round_trips(env, cpu, 1000)?;
    rt::println!("ipc_cross_cpu: cpu 0 <-> cpu {cpu}, 1000 round trips, mean {cycles} TSC cycles");
    Ok(())
}

static SERVER_BUFFER: AtomicU64 = AtomicU64::new(0);
static SERVER_SUM: AtomicU64 = AtomicU64::new(0);
/// Slot where the payload server receives a capability.
static SERVER_RECV_SLOT: AtomicU64 = AtomicU64::new(0);

/// Receives one call with a payload and a notification capability, signals
/// the notification, and replies with the payload's byte sum.
extern "C" fn payload_server(ep: u64) -> ! {
    // SAFETY: the spawner gave this thread the buffer it published.
    let buffer = unsafe { ipc::buffer_at(SERVER_BUFFER.load(Ordering::Acquire)) };
    let recv_slot = SERVER_RECV_SLOT.load(Ordering::Acquire);
    buffer.recv_slot = recv_slot;
    if let Ok(received) = ipc::recv(ep) {
        let length = received.msg.info().length();
        let sum: u64 = buffer.data[..length].iter().map(|&b| u64::from(b)).sum();
        SERVER_SUM.store(sum, Ordering::Release);
        if received.msg.info().with_cap() && buffer.cap_received == 1 {
            let _ = ipc::signal(recv_slot, 0b100);
        }
        let _ = ipc::reply(Message::new(0, [sum, length as u64, 0, 0]));
    }
    sys::thread_exit()
}

pub fn payload_and_cap_transfer(env: &Env) -> TestResult {
    let (ep, server, ntfn, recv_slot) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create endpoint")?;
    sys::create(ObjectKind::Notification, ntfn).map_err(|_| "create notification")?;
    let server_buffer = env.pages.alloc(1).map_err(|_| "buffer")?;
    SERVER_BUFFER.store(server_buffer, Ordering::Release);
    SERVER_RECV_SLOT.store(recv_slot, Ordering::Release);
    let mut server_spec = spec(payload_server, ep, INIT_PRIORITY + 1, 0);
    server_spec.ipc_buffer = Some(server_buffer);
    spawn(&env.pages, server, server_spec).map_err(|_| "spawn")?;

    // SAFETY: init's own buffer, used only here.
    let buffer = unsafe { ipc::buffer_at(env.ipc_buffer) };
    for (i, byte) in buffer.data.iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    buffer.send_cap = ntfn;
    let expected: u64 = (0..IPC_BUFFER_DATA).map(|i| (i % 251) as u64).sum();
    let reply = ipc::call(ep, Message::with_payload(1, [0; 4], IPC_BUFFER_DATA, true)).map_err(|_| "call failed")?;
    check(reply.mrs[1] == IPC_BUFFER_DATA as u64, "payload length not delivered")?;
    check(reply.mrs[0] == expected && SERVER_SUM.load(Ordering::Acquire) == expected, "payload bytes differ")?;
    check(ipc::wait(ntfn) == Ok(0b100), "the transferred capability did not signal")?;
    env.slots.release(server);
    for slot in [ep, ntfn, recv_slot] {
        env.slots.release(slot);
    }
    Ok(())
}

/// Signals bit `1 << n` for n in 0..4 on the notification in `slot`, then exits.
extern "C" fn signaller(slot: u64) -> ! {
    for bit in 0..4 {
        let _ = ipc::signal(slot, 1 << bit);
        sys::yield_now();
    }
    sys::thread_exit()
}

pub fn notification(env: &Env) -> TestResult {
    let (ntfn, badged, read_only, worker) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Notification, ntfn).map_err(|_| "create")?;
    check(ipc::poll(ntfn) == Ok(0), "a new notification has bits")?;
    spawn(&env.pages, worker, spec(signaller, ntfn, INIT_PRIORITY, env.other_cpu())).map_err(|_| "spawn")?;
    let mut seen = 0;
    while seen != 0b1111 {
        seen |= ipc::wait(ntfn).map_err(|_| "wait failed")?;
    }
    sys::cap_mint(ntfn, badged, Rights::WRITE, 0x100).map_err(|_| "mint")?;
    ipc::signal(badged, 0).map_err(|_| "badged signal")?;
    check(ipc::poll(ntfn) == Ok(0x100), "a badged signal did not set the badge bits")?;
    sys::cap_mint(ntfn, read_only, Rights::READ, 0).map_err(|_| "mint")?;
    expect_err(ipc::signal(read_only, 1), SysError::NoRight, "signal without the write right")?;
    expect_err(ipc::wait(badged), SysError::NoRight, "wait without the read right")?;
    for slot in [worker, badged, read_only, ntfn] {
        env.slots.release(slot);
    }
    Ok(())
}

/// Calls the endpoint in `slot` once and records the answer's badge word.
pub extern "C" fn call_once(slot: u64) -> ! {
    let _ = ipc::call(slot, Message::new(3, [0; 4]));
    sys::thread_exit()
}

/// Receives on `ep` and replies, `count` times; returns the badges seen.
pub fn serve(ep: Slot, count: usize, badges: &mut [u64]) -> Result<(), SysError> {
    for badge in badges.iter_mut().take(count) {
        let received = ipc::recv(ep)?;
        *badge = received.badge;
        ipc::reply(Message::new(0, [received.badge, 0, 0, 0]))?;
    }
    Ok(())
}

/// Checks the result of a blocking call made by a thread that then exits.
pub fn wait_dead(slot: Slot) -> bool {
    wait_for(|| sys::thread_state(slot) == Ok(abi::cap::ThreadState::Dead))
}

static REPLY_EP: AtomicU64 = AtomicU64::new(0);
static ANSWERS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// Calls the shared endpoint with `100 + index`; records the answer (or
/// the error code with the top bit set).
extern "C" fn call_and_record(index: u64) -> ! {
    let answer = match ipc::call(REPLY_EP.load(Ordering::Acquire), Message::new(5, [100 + index, 0, 0, 0])) {
        Ok(reply) => reply.mrs[0],
        Err(error) => error.code() | 1 << 63,
    };
    ANSWERS[index as usize].store(answer, Ordering::Release);
    sys::thread_exit()
}

/// A server saves one caller's reply, serves another caller, then answers
/// the first through the saved Reply capability; an abandoned Reply
/// capability releases its caller with `NoReply`.
pub fn reply_object(env: &Env) -> TestResult {
    let (ep, saved, abandoned) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    let clients = [env.slots.alloc(), env.slots.alloc(), env.slots.alloc()];
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    REPLY_EP.store(ep, Ordering::Release);
    for (index, &slot) in clients.iter().enumerate().take(2) {
        spawn(&env.pages, slot, spec(call_and_record, index as u64, INIT_PRIORITY, 0)).map_err(|_| "spawn")?;
    }
    let first = ipc::recv(ep).map_err(|_| "first recv")?;
    ipc::reply_save(saved).map_err(|_| "save the reply")?;
    expect_err(ipc::reply(Message::default()), SysError::NoReply, "the saved reply is still implicit")?;
    let second = ipc::recv(ep).map_err(|_| "second recv")?;
    ipc::reply(Message::new(0, [second.msg.mrs[0] * 2, 0, 0, 0])).map_err(|_| "implicit reply")?;
    ipc::reply_with(saved, Message::new(0, [first.msg.mrs[0] * 2, 0, 0, 0])).map_err(|_| "saved reply")?;
    expect_err(ipc::reply_with(saved, Message::default()), SysError::EmptySlot, "a Reply capability worked twice")?;
    check(wait_dead(clients[0]) && wait_dead(clients[1]), "clients did not finish")?;
    check(ANSWERS[0].load(Ordering::Acquire) == 200 && ANSWERS[1].load(Ordering::Acquire) == 202, "wrong answers")?;

    spawn(&env.pages, clients[2], spec(call_and_record, 2, INIT_PRIORITY, env.other_cpu())).map_err(|_| "spawn")?;
    ipc::recv(ep).map_err(|_| "third recv")?;
    ipc::reply_save(abandoned).map_err(|_| "save")?;
    env.slots.release(abandoned);
    check(wait_dead(clients[2]), "the abandoned caller did not wake")?;
    check(ANSWERS[2].load(Ordering::Acquire) == SysError::NoReply.code() | 1 << 63, "the abandoned caller was not told NoReply")?;
    for slot in clients.into_iter().chain([saved, ep]) {
        env.slots.release(slot);
    }
    Ok(())
}

/// The PIT's interrupt, delivered to a notification: programmed to fire at
/// 1 kHz, waited for and acknowledged five times, then stopped.
pub fn irq_timer(env: &Env) -> TestResult {
    use abi::cap::boot_slot::{PIT_IRQ, PIT_PORTS, SERIAL_IRQ};
    const PIT_HZ: u64 = 1_193_182;
    let (ntfn, read_only) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Notification, ntfn).map_err(|_| "create")?;
    sys::cap_mint(ntfn, read_only, Rights::READ, 0).map_err(|_| "mint")?;
    expect_err(sys::irq_bind(PIT_IRQ, ntfn, 0), SysError::BadArgument, "bind with no bits")?;
    expect_err(sys::irq_bind(PIT_IRQ, read_only, 1), SysError::NoRight, "bind to a notification without write")?;
    expect_err(sys::irq_ack(SERIAL_IRQ), SysError::BadState, "ack of an unbound line")?;
    sys::irq_bind(PIT_IRQ, ntfn, 0b10).map_err(|_| "bind")?;
    let count = PIT_HZ / 1000;
    // Channel 0, low then high byte, mode 2 (rate generator).
    sys::port_out(PIT_PORTS, 0x43, 1, 0x34).map_err(|_| "pit command")?;
    sys::port_out(PIT_PORTS, 0x40, 1, count & 0xFF).map_err(|_| "pit count")?;
    sys::port_out(PIT_PORTS, 0x40, 1, count >> 8).map_err(|_| "pit count")?;
    let mut seen = 0;
    let mut outcome = Ok(());
    while seen < 5 {
        match ipc::wait(ntfn) {
            Ok(0b10) => seen += 1,
            _ => {
                outcome = Err("the interrupt arrived with the wrong bits");
                break;
            }
        }
        sys::irq_ack(PIT_IRQ).map_err(|_| "ack")?;
    }
    // Mode 0 with no count: one last edge, then silence.
    sys::port_out(PIT_PORTS, 0x43, 1, 0x30).map_err(|_| "pit stop")?;
    env.slots.release(read_only);
    outcome
}
