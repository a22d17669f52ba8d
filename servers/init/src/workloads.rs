//! The system's tests, run by init once the memory and process servers are
//! up: each workload of `apps` runs to its end as init's child and must
//! exit with 0, and afterwards the memory server must count exactly the
//! free frames it counted before (the leak check), with no process left.

use abi::process::{Placement, Strategy};
use abi::workload::{self, encode};
use proto::{MemoryStats, ProcessProtocol, ProcessRequest, ProtoError};
use rt::ipc::{self, Message};

use crate::system::{START_PATIENCE, System, same_frames};
use crate::tests::hostile_memory::{self, Target};
use crate::tests::process::BootImage;
use crate::tests::{TestResult, check, crash, pause_for, wait_longer};

pub type Workload = (&'static str, fn(&System) -> TestResult);

/// The system tests, in the order of `abi::selftest::SYSTEM_TESTS`.
pub const WORKLOADS: [Workload; 15] = [
    ("process_protocol_errors", protocol_errors),
    ("memory_hostile", memory_hostile),
    ("apps_misc", |s| leak_checked(s, 0, workload::MISC, 0, 0)),
    ("fork_cow", |s| leak_checked(s, 1, workload::COW, 0, 0)),
    ("cow_kernel", |s| {
        // Deferred shows a count of 1 as a reference goes: sole hints.
        let sole_hints = !s.env.cow_by_pager && s.strategy == Strategy::Deferred;
        leak_checked(s, 0, workload::COW_KERNEL, u64::from(!s.env.cow_by_pager), u64::from(sole_hints))
    }),
    ("fork_exec", |s| leak_checked(s, 0, workload::EXEC, 0, 0)),
    ("fork_tree", |s| leak_checked(s, 1, workload::TREE, 2, 3)),
    ("fork_crash", |s| leak_checked(s, 0, workload::CRASH, 0, 0)),
    ("fork_oom", fork_oom),
    ("forkbench_quick", |s| leak_checked(s, 0, workload::FORKBENCH, 2, 0)),
    ("live_swap", live_swap),
    ("fork_bomb", |s| leak_checked(s, 0, workload::FORKBOMB, 0, 0)),
    ("kill_tree", kill_tree),
    ("process_restart", process_restart),
    ("memory_restart", memory_restart),
];

/// Runs `apps` in `mode` on `cpu`'s server and checks its status and that
/// every frame came back.
fn leak_checked(system: &System, cpu: u16, mode: u64, a: u64, b: u64) -> TestResult {
    let before = system.settled_memory().map_err(|_| "no memory stats")?;
    let status = system.run(cpu, "apps", encode(mode, a, b, 0)).map_err(|_| "the workload could not run")?;
    if status != 0 {
        rt::println!("init: workload {mode} exited with {status}");
        return Err("the workload failed");
    }
    frames_back(system, &before, "frames leaked")?;
    check(system.process_stats().map_err(|_| "no process stats")?.processes == 0, "processes are left over")
}

/// The memory server counts the free, owned and shared frames it counted
/// `before`; else `leak`. Frames the servers took as their heap meanwhile
/// count as free: they are counted apart, and never come back.
fn frames_back(system: &System, before: &MemoryStats, leak: &'static str) -> TestResult {
    let after = system.settled_memory().map_err(|_| "no memory stats")?;
    if !same_frames(before, &after) {
        rt::println!("init: frames before {before:?}, after {after:?}");
        return Err(leak);
    }
    Ok(())
}

/// The OOM workload (`apps::oom`), whose last part fills the process
/// servers' heap with copies of a sparse page map (`apps::server_heap`):
/// the heap must grow from the memory server's frames up to the cap the
/// memory server keeps for it, the fork past that is refused with
/// `NoMemory` (the workload checks), the servers go on serving, and every
/// frame but the heap's comes back.
fn fork_oom(system: &System) -> TestResult {
    let before = system.settled_memory().map_err(|_| "no memory stats")?;
    leak_checked(system, 1, workload::OOM, 0, 0)?;
    let after = system.settled_memory().map_err(|_| "no memory stats")?;
    let cap = proto::memory::client::heap_cap(u64::from(system.pool_frames));
    rt::println!(
        "init: the process servers' heap grew from {} to {} frames of the memory server's (its cap: {cap})",
        before.heap,
        after.heap
    );
    check(before.heap < cap && after.heap == cap, "the servers' heap did not grow to its cap from the memory server's frames")
}

/// Swaps the strategy live across both placements (deferred → atomic →
/// percpu → deferred-shared → atomic-ipc → deferred, less the one booted
/// with, then back to it) while a fork storm (forkbench) and the
/// copy-on-write test run on other CPUs: both must pass, and every frame
/// must come back.
fn live_swap(system: &System) -> TestResult {
    const BETWEEN_SWAPS: u64 = 300_000_000;
    let before = system.settled_memory().map_err(|_| "no memory stats")?;
    let storm = system.spawn(1, "apps", encode(workload::FORKBENCH, 2, 0, 0)).map_err(|_| "start the fork storm")?;
    let cow = system.spawn(2, "apps", encode(workload::COW, 0, 0, 0)).map_err(|_| "start the COW test")?;
    let path = [Strategy::Deferred, Strategy::Atomic, Strategy::Percpu, Strategy::DeferredShared, Strategy::AtomicIpc, Strategy::Deferred];
    let others = path.into_iter().filter(|&s| s != system.strategy);
    for strategy in others.chain([system.strategy]) {
        pause_for(BETWEEN_SWAPS);
        if system.swap(strategy).is_err() {
            rt::println!("init: the swap to {} failed", strategy.name());
            return Err("a swap failed");
        }
        rt::println!("init: swapped to {} live", strategy.name());
    }
    let statuses = (system.wait(1, storm), system.wait(2, cow));
    check(statuses == (Ok(0), Ok(0)), "a workload failed across the swaps")?;
    frames_back(system, &before, "frames leaked across the swaps")
}

/// Two untrusted clients of the live memory server attack each other and
/// every frame of the pool, the process servers' among them
/// (`tests::hostile_memory`); then a normal workload must run and leave
/// no frame behind.
fn memory_hostile(system: &System) -> TestResult {
    let before = system.settled_memory().map_err(|_| "no memory stats")?;
    let slots = system.spare_slots;
    let rights = abi::cap::Rights::WRITE;
    for (slot, badge) in slots.into_iter().zip([3, 4]) {
        rt::sys::cap_mint(system.memory_original(), slot, rights, badge).map_err(|_| "mint a memory client")?;
    }
    let target = Target {
        original: system.memory_original(),
        victim: slots[0],
        attacker: slots[1],
        pool_frames: system.pool_frames,
        shared_placement: system.strategy.placement() == Placement::Shared,
        sweep: true,
    };
    let outcome = hostile_memory::attack(&target, system.buffer());
    for slot in slots {
        let _ = rt::sys::cap_delete(slot);
    }
    outcome?;
    frames_back(system, &before, "the attacks changed the memory server's counts")?;
    leak_checked(system, 1, workload::FORKBENCH, 2, 0)
}

/// An endless fork bomb over every CPU, killed by init once it has filled
/// the system: its root's wait answers `STATUS_KILLED`, and every process,
/// kernel object and frame comes back.
fn kill_tree(system: &System) -> TestResult {
    let before = system.settled_memory().map_err(|_| "no memory stats")?;
    let root = system.spawn(0, "apps", encode(workload::FORKBOMB, 1, 0, 0)).map_err(|_| "start the bomb")?;
    // init outranks the processes: it lets the bomb spread while it waits
    // for another workload, whose status does not matter (the bomb may
    // take every kernel object it would fork with).
    let _ = system.run(0, "apps", encode(workload::FORKBENCH, 1, 0, 0));
    let alive = system.process_stats().map_err(|_| "no process stats")?.processes;
    let killed = system.call(0, &ProcessRequest::Kill { pid: root });
    check(killed == Ok(proto::ProcessReply::Killed), "the kill was refused")?;
    check(system.wait(0, root) == Ok(abi::process::STATUS_KILLED), "the bomb's root did not end killed")?;
    rt::println!("init: killed a fork bomb of {alive} processes");
    check(alive > 2, "the bomb did not spread")?;
    frames_back(system, &before, "frames leaked by the killed bomb")?;
    check(system.process_stats().map_err(|_| "no process stats")?.processes == 0, "processes are left over after the kill")
}

/// The process servers crash in the middle of a workload (a thread of
/// init unmaps their code while init waits for the workload), and init's
/// supervisor, told only by the kernel's fault report, restarts them from
/// the boot image: init's wait hears that the server died, the workload's
/// processes are gone, every frame they and the servers held is back in
/// the pool, and the next workload runs and leaves no frame behind.
fn process_restart(system: &System) -> TestResult {
    const BEFORE_THE_CRASH: u64 = 300_000_000;
    let before = system.settled_memory().map_err(|_| "no memory stats")?;
    let restarts = system.restarts();
    let pid = system.spawn(1, "apps", encode(workload::FORKBENCH, 3, 0, 0)).map_err(|_| "start the workload")?;
    let image = BootImage::map(system.env)?;
    crash::crash_later(system.env, system.process_space(), image.program("process")?, BEFORE_THE_CRASH)?;
    let status = system.wait(1, pid);
    check(status != Ok(0), "the workload ended before the crash")?;
    check(status == Err(ProtoError::ServerDied), "init's wait did not hear that its server died")?;
    let restarted = wait_longer(|| system.restarts() > restarts, START_PATIENCE);
    check(restarted, "the supervisor did not restart the process servers")?;
    rt::println!("init: the process servers crashed in the middle of a workload and were restarted by the supervisor");
    check(system.process_stats().map_err(|_| "no process stats")?.processes == 0, "the new servers have processes")?;
    frames_back(system, &before, "frames were lost with the process servers")?;
    leak_checked(system, 1, workload::COW, 0, 0)
}

/// The memory server crashes in the middle of a workload (a thread of
/// init unmaps its code), and init's supervisor, told only by the
/// kernel's fault report at the server's next request, restarts it and
/// the process servers from the boot image. The workload ends by itself
/// (it did not need the memory server after the crash) or with its
/// servers (init's wait hears `ServerDied`); a client that asks the dead
/// server hears `ServerDied`; afterwards the new memory server counts
/// exactly the free frames the old one counted, and the next workload
/// runs and leaves no frame behind.
fn memory_restart(system: &System) -> TestResult {
    const BEFORE_THE_CRASH: u64 = 300_000_000;
    let before = system.settled_memory().map_err(|_| "no memory stats")?;
    let restarts = system.restarts();
    let generation = system.memory_server.report_badge();
    let pid = system.spawn(1, "apps", encode(workload::FORKBENCH, 3, 0, 0)).map_err(|_| "start the workload")?;
    let image = BootImage::map(system.env)?;
    crash::crash_later(system.env, system.memory_server.space(), image.program("memory")?, BEFORE_THE_CRASH)?;
    let status = system.wait(1, pid);
    check(matches!(status, Ok(0) | Err(ProtoError::ServerDied)), "the workload failed otherwise than with its servers")?;
    check(wait_longer(crash::done, START_PATIENCE), "the crasher did not run")?;
    // Unless a process server found it dead already (and the answer
    // comes from the next one), init's own request is the one that finds
    // it so.
    let asked = system.memory_stats();
    let told = asked == Err(ProtoError::ServerDied) || system.memory_server.report_badge() != generation;
    check(told, "a client of the dead memory server was not told")?;
    let restarted = wait_longer(|| system.restarts() > restarts, START_PATIENCE);
    check(restarted, "the supervisor did not restart the memory server")?;
    let heard = if asked.is_err() { "init's request found it dead" } else { "a process server's request found it dead" };
    rt::println!(
        "init: the memory server crashed in the middle of a workload ({heard}; the workload ended with {status:?}) and was restarted"
    );
    check(system.process_stats().map_err(|_| "no process stats")?.processes == 0, "the new servers have processes")?;
    let after = system.settled_memory().map_err(|_| "no memory stats")?;
    if after.free + after.heap != before.free + before.heap || (after.owned, after.shared) != (0, 0) {
        rt::println!("init: frames before {before:?}, after {after:?}");
        return Err("frames were lost with the memory server");
    }
    leak_checked(system, 1, workload::COW, 0, 0)
}

/// Bad requests to a process server get error replies, and it keeps
/// serving.
fn protocol_errors(system: &System) -> TestResult {
    let expect =
        |request: &ProcessRequest, error: ProtoError| check(system.call(0, request) == Err(error), "a bad request was not refused");
    expect(&ProcessRequest::Wait { pid: None }, ProtoError::NoChildren)?;
    expect(&ProcessRequest::Wait { pid: Some(4242) }, ProtoError::NotChild)?;
    let program = proto::ProgramName::try_from("no-such-program").map_err(|_| "name")?;
    expect(&ProcessRequest::Spawn { program, arg: 0 }, ProtoError::NoSuchProgram)?;
    for server in proto::process::SERVER_PROGRAMS {
        let program = proto::ProgramName::try_from(server).map_err(|_| "name")?;
        expect(&ProcessRequest::Spawn { program, arg: 0 }, ProtoError::Denied)?;
    }
    expect(&ProcessRequest::Fork { resume: 0, stack: 0, cpu: None }, ProtoError::InvalidArgument)?;
    expect(&ProcessRequest::Mmap { pages: 0 }, ProtoError::InvalidArgument)?;
    expect(&ProcessRequest::Kill { pid: 4242 }, ProtoError::NoSuchProcess)?;
    expect(&ProcessRequest::Kill { pid: abi::process::INIT_PID }, ProtoError::NoSuchProcess)?;
    // Garbage and a wrong label, straight through IPC.
    let server = system.server(0);
    let buffer = system.buffer();
    buffer.data[..8].fill(0xFF);
    let garbage = ipc::call(server, Message::with_payload(proto::PROCESS_PROTOCOL, [0; 4], 8, false));
    let wrong = ipc::call(server, Message::with_payload(proto::MEMORY_PROTOCOL, [0; 4], 0, false));
    for reply in [garbage, wrong] {
        let reply = reply.map_err(|_| "the server did not answer garbage")?;
        let payload = proto::payload(&buffer.data, reply.info().length()).map_err(|_| "bad reply")?;
        check(proto::read_reply::<ProcessProtocol>(reply.label(), payload).is_err(), "garbage was accepted")?;
    }
    check(system.process_stats().is_ok(), "the server stopped serving")
}
