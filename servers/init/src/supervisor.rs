//! init's supervisor: a thread of init above every server, which the
//! kernel tells of every fault and every exit of a server thread (their
//! fault endpoint is its endpoint, badged with the server and its
//! generation). A thread of the process servers' running generation that
//! dies takes the whole program with it: the supervisor tears it down and
//! starts the next generation from the boot image, as MINIX 3's
//! reincarnation server and Hubris's supervisor restart a task that
//! failed. A dead memory server is restarted the same way, and the process
//! servers with it. Reports from an older generation, whose threads are
//! already gone, are only answered.

use abi::msg::kernel_label;
use rt::ipc::{self, Message};

use crate::system::System;

/// The server a report's badge names (its low byte).
pub const PROCESS_SERVERS: u64 = 1;
pub const MEMORY_SERVER: u64 = 2;
const GENERATION_SHIFT: u32 = 8;

/// The badge of the reports of `server`'s generation `number`.
pub fn report_badge(server: u64, number: u64) -> u64 {
    server | number << GENERATION_SHIFT
}

/// Above every server, so that it runs even while a server thread spins
/// on a lock a dead thread held.
const PRIORITY: u8 = 14;

/// Starts the supervisor thread of `system`, which must stay where it is
/// until it is dropped (it is boxed, and its drop deletes the thread).
pub fn start(system: &System) -> Result<(), &'static str> {
    let spec = rt::thread::Spec {
        entry: run,
        arg: system as *const System as u64,
        cspace: abi::cap::boot_slot::CSPACE,
        priority: PRIORITY,
        cpu: 0,
        fault_endpoint: None,
        ipc_buffer: Some(system.supervisor_buffer),
    };
    rt::thread::start_in(&system.env.pages, system.supervisor, spec).map(|_| ()).map_err(|_| "start the supervisor")
}

extern "C" fn run(system: u64) -> ! {
    // SAFETY: `start` passed the address of a boxed System, which deletes
    // this thread before it is dropped or moved (`System::drop`).
    let system = unsafe { &*(system as *const System<'static>) };
    // SAFETY: the IPC buffer mapped for this thread alone.
    let buffer = unsafe { ipc::buffer_at(system.supervisor_buffer) };
    loop {
        // A restart ran at init's priority (`tear_down_process_servers`).
        let _ = rt::sys::thread_set_priority(system.supervisor, u64::from(PRIORITY));
        let Ok(report) = ipc::recv(system.supervisor_endpoint) else { continue };
        // Anything but RESUME: a thread that faulted dies, as one that
        // exited does.
        let _ = ipc::reply(Message::new(0, [0; 4]));
        if report.msg.label() != kernel_label::FAULT {
            continue;
        }
        let [vector, address, rip, _] = report.msg.mrs;
        let fault = |what: &str| rt::println!("init: supervisor: {what} died (vector {vector}, address {address:#x}, rip {rip:#x})");
        if report.badge == system.process.report_badge() {
            fault("a process server thread");
            match system.restart_process_servers(buffer) {
                Ok(taken) => rt::println!("init: supervisor: restarted the process servers from the boot image, {taken} frames taken back"),
                Err(reason) => rt::println!("init: supervisor: the process servers were not restarted: {reason}"),
            }
        } else if report.badge == system.memory_server.report_badge() {
            fault("the memory server");
            match system.restart_memory_server(buffer) {
                Ok(()) => rt::println!("init: supervisor: restarted the memory server and the process servers from the boot image"),
                Err(reason) => rt::println!("init: supervisor: the memory server was not restarted: {reason}"),
            }
        }
    }
}
