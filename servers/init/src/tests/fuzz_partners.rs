//! The fuzzer's partners, init's threads outside the sandbox: a server on
//! the partnered endpoint (answers the fuzzer's calls and sends, replies
//! with a capability every other time, kills the threads the fuzzer
//! starts when they fault or exit), and a client of the served endpoint
//! (signals the sandbox's notification, then calls the fuzzer, sending a
//! capability every other time), so that receives, replies, saved replies
//! and waits have someone at the other end.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::msg::kernel_label;
use rt::ipc::{self, Message};
use rt::sys;

/// Slots of init's table the partners use, and their IPC buffers.
pub static SERVER_LANDING: AtomicU64 = AtomicU64::new(0);
pub static GIFT: AtomicU64 = AtomicU64::new(0);
pub static SERVER_BUFFER: AtomicU64 = AtomicU64::new(0);
pub static CLIENT_BUFFERS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
pub static CLIENT_NOTIFICATION: AtomicU64 = AtomicU64::new(0);
pub static CLIENT_ENDPOINT: AtomicU64 = AtomicU64::new(0);
/// The clients' landing slots, one each.
pub static CLIENT_LANDINGS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// Serves the partnered endpoint `ep`: answers calls (with a capability
/// every other time), drops what it was sent, kills faulting threads.
pub extern "C" fn serve_sandbox(ep: u64) -> ! {
    // SAFETY: the spawner gave this thread the buffer it published.
    let buffer = unsafe { ipc::buffer_at(SERVER_BUFFER.load(Ordering::Acquire)) };
    let landing = SERVER_LANDING.load(Ordering::Acquire);
    buffer.recv_slot = landing;
    buffer.send_cap = GIFT.load(Ordering::Acquire);
    let mut count = 0u64;
    let mut received = ipc::recv(ep);
    loop {
        let _ = sys::cap_delete(landing);
        count += 1;
        let answer = match received {
            Ok(r) if r.msg.label() == kernel_label::FAULT => Message::new(1, [0; 4]),
            Ok(r) => Message::with_payload(r.msg.label(), r.msg.mrs, 0, count.is_multiple_of(2)),
            Err(_) => Message::default(),
        };
        received = ipc::reply_recv(ep, answer);
    }
}

/// Client `which` (0 or 1): calls the served endpoint (in
/// [`CLIENT_ENDPOINT`]) for ever, each call preceded by a signal of the
/// sandbox's notification; every other call carries a capability. It
/// blocks in each call until the fuzzer receives it.
pub extern "C" fn call_sandbox(which: u64) -> ! {
    let which = which as usize % CLIENT_BUFFERS.len();
    let ep = CLIENT_ENDPOINT.load(Ordering::Acquire);
    // SAFETY: the spawner gave this thread the buffer it published.
    let buffer = unsafe { ipc::buffer_at(CLIENT_BUFFERS[which].load(Ordering::Acquire)) };
    let notification = CLIENT_NOTIFICATION.load(Ordering::Acquire);
    let landing = CLIENT_LANDINGS[which].load(Ordering::Acquire);
    buffer.send_cap = GIFT.load(Ordering::Acquire);
    buffer.recv_slot = landing;
    let mut count = 0u64;
    loop {
        count = count.wrapping_add(1);
        let _ = ipc::signal(notification, 1 << (count % 64));
        let _ = sys::cap_delete(landing);
        let _ = ipc::call(ep, Message::with_payload(count, [count; 4], 0, count.is_multiple_of(2)));
    }
}
