//! The whole system, as init starts it: the memory server with the RAM
//! left to init, then the process servers (one thread per CPU), each
//! reachable through an endpoint init holds badged with its own pid. Then
//! init is a client like any process: it spawns programs and waits for them.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::cap::{ObjectKind, ThreadState, boot_slot};
use abi::msg::IpcBuffer;
use abi::process::Strategy;
use proto::memory::{MemoryReply, MemoryRequest, MemoryStats};
use proto::{MemoryProtocol, ProcessProtocol, ProcessReply, ProcessRequest, ProcessStats, ProgramName, ProtoError};
use rt::sys::{self, Slot};

use crate::env::Env;
use crate::memory_server::MemoryServer;
use crate::process_servers::Generation;

/// Frames init keeps for itself after starting the servers.
const INIT_RESERVE: u64 = 4096;
/// Frames of the process servers' own memory: the 4 MiB heap they start
/// with (they grow it from the memory server's frames), stacks, IPC
/// buffers (and the pages the kernel reads for them: `cow_frames`).
const PROCESS_SERVER_FRAMES: u64 = 1024 + 256;

/// Frames the process servers keep for the kernel to read when it copies
/// for them: a byte of hints per frame of RAM (the pool is less), and a
/// control page per server.
fn cow_frames(ram_frames: u64) -> u64 {
    ram_frames.div_ceil(abi::cow::COW_HINTS_PER_FRAME).min(abi::cow::COW_HINT_FRAMES as u64) + MAX_SERVERS as u64
}
/// Most process servers.
pub const MAX_SERVERS: usize = proto::process::server_slot::MAX_SERVERS as usize;

/// Kernel objects the memory server may create (it carves its table).
pub const MEMORY_ALLOWANCE: u64 = 16;

/// Gives the table in `cspace` an allowance of `amount` kernel objects,
/// taken from init's.
pub fn give_allowance(cspace: Slot, amount: u64) -> Result<(), &'static str> {
    sys::raw_syscall(abi::syscall::Sysnum::Allowance as u64, [cspace, amount, 0, 0, 0, 0])
        .map(|_| ())
        .map_err(|_| "give a server its allowance")
}

/// The running system. Two threads of init use it: the main one, which
/// runs the tests and workloads, and the supervisor, which restarts a
/// server that died (`supervisor`).
pub struct System<'e> {
    pub(crate) env: &'e Env,
    /// The strategy booted with.
    pub strategy: Strategy,
    /// The memory server's running generation.
    pub(crate) memory_server: MemoryServer,
    /// Frames of the memory server's range (its frame numbers).
    pub pool_frames: u32,
    /// Two empty slots of init's, for the capabilities of test clients.
    pub spare_slots: [Slot; 2],
    /// The process servers' running generation.
    pub(crate) process: Generation,
    /// The running generation serves: cleared by whoever begins to tear
    /// it down, so that one restart runs at a time.
    serving: AtomicBool,
    /// Restarts of the process servers so far.
    restarts: AtomicU64,
    /// Where every server thread reports its faults and its exit.
    pub(crate) supervisor_endpoint: Slot,
    /// The supervisor thread, and its IPC buffer.
    pub(crate) supervisor: Slot,
    pub(crate) supervisor_buffer: u64,
    /// Threads, address spaces and tables in the kernel before the process
    /// servers first started: what a teardown must come back to.
    pub(crate) objects_before: [u64; 3],
    /// The frames of the process servers' own heap, stacks and buffers.
    pub(crate) process_frames: Slot,
    pub cpus: u16,
    ipc_buffer: u64,
}

/// A carved range for a server, taken from init's frames.
fn carve(env: &Env, frames: u64) -> Result<Slot, &'static str> {
    let slot = env.slots.alloc();
    sys::phys_range_carve(boot_slot::FIRST_RAM, env.pages.frames(frames), frames, slot).map_err(|_| "carve frames for a server")?;
    Ok(slot)
}

/// Rounds of every process server's quiescent point after which every
/// strategy has freed every frame whose count is zero (RefCache, the
/// slowest, needs 3).
const SETTLE_ROUNDS: usize = 4;

/// TSC cycles a server may take to start (mapping the pool whole, under
/// TCG) before init gives up on it.
pub const START_PATIENCE: u64 = 4 * crate::tests::PATIENCE;

/// Waits until the server whose first thread is `thread` receives on
/// `endpoint` (init's unbadged original): a non-blocking send that only a
/// waiting receiver takes, and which the server answers as a bad request
/// to no one. An error if the thread died, or never got there: so init
/// never calls, and waits for ever on, a server that failed to start.
pub fn await_ready(thread: Slot, endpoint: Slot, what: &'static str) -> Result<(), &'static str> {
    let mut dead = false;
    let ready = crate::tests::wait_longer(
        || {
            dead = sys::thread_state(thread) == Ok(ThreadState::Dead);
            !dead && rt::ipc::nb_send(endpoint, rt::ipc::Message::new(0, [0; 4])).is_ok()
        },
        START_PATIENCE,
    );
    if ready && !dead { Ok(()) } else { Err(what) }
}

/// Whether the memory server counts `after` the frames it counted
/// `before`: as many free, owned and shared, the frames taken as the
/// servers' heap meanwhile counted as free (they are counted apart, and
/// come back only with the servers).
pub fn same_frames(before: &MemoryStats, after: &MemoryStats) -> bool {
    (after.free + after.heap, after.owned, after.shared) == (before.free + before.heap, before.owned, before.shared)
}

/// Threads, address spaces and tables the kernel holds now.
pub fn kernel_objects() -> Result<[u64; 3], &'static str> {
    let mut counts = [0; 3];
    for (count, kind) in counts.iter_mut().zip([ObjectKind::Thread, ObjectKind::AddressSpace, ObjectKind::CSpace]) {
        *count = sys::pool_usage(kind).map_err(|_| "no kernel pool usage")?.0;
    }
    Ok(counts)
}

impl<'e> System<'e> {
    pub fn start(env: &'e Env, strategy: Strategy) -> Result<alloc::boxed::Box<Self>, &'static str> {
        let cpus = env.cpus.min(MAX_SERVERS as u64) as u16;
        let (supervisor_endpoint, supervisor) = (env.slots.alloc(), env.slots.alloc());
        sys::create(ObjectKind::Endpoint, supervisor_endpoint).map_err(|_| "create the supervisor's endpoint")?;
        sys::create(ObjectKind::Thread, supervisor).map_err(|_| "create the supervisor")?;
        let supervisor_buffer = env.pages.alloc(1).map_err(|_| "no IPC buffer for the supervisor")?;
        let total = sys::identify(boot_slot::FIRST_RAM).map_err(|_| "identify RAM")?.size;
        let process_frames = carve(env, PROCESS_SERVER_FRAMES + cow_frames(total))?;
        let pool_frames = total.saturating_sub(env.pages.frames(0) + INIT_RESERVE + 64);
        let memory_server = MemoryServer::new(carve(env, pool_frames)?);
        memory_server.launch(env, supervisor_endpoint, strategy, cpus)?;

        let pool_frames = u32::try_from(pool_frames).map_err(|_| "a pool too large for frame numbers")?;
        let spare_slots = [env.slots.alloc(), env.slots.alloc()];
        let system = alloc::boxed::Box::new(Self {
            env,
            strategy,
            memory_server,
            pool_frames,
            spare_slots,
            process: Generation::default(),
            serving: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            supervisor_endpoint,
            supervisor,
            supervisor_buffer,
            objects_before: kernel_objects()?,
            process_frames,
            cpus,
            ipc_buffer: env.ipc_buffer,
        });
        crate::supervisor::start(&system)?;
        system.launch_process_servers(system.buffer())?;
        system.serving.store(true, Ordering::Release);
        Ok(system)
    }

    /// Tears the process servers down and starts them afresh from the boot
    /// image (`process_servers`), as a supervisor does with a server that
    /// died; `buffer` is the calling thread's IPC buffer. Refused while
    /// they do not serve (a restart under way, or a start that failed).
    /// Returns the frames the memory server took back.
    pub(crate) fn restart_process_servers(&self, buffer: &mut IpcBuffer) -> Result<u64, &'static str> {
        self.begin_restart()?;
        self.end_process_threads();
        self.step_down();
        self.release_process_servers()?;
        let taken = self.reclaim_process_frames(buffer)?;
        self.launch_process_servers(buffer)?;
        self.end_restart();
        Ok(taken)
    }

    /// Tears the memory server down and starts it afresh from the boot
    /// image over the same pool, and the process servers with it: their
    /// frames, counts and mappings of the pool were the dead server's,
    /// and a new one starts with every frame free (docs/processes.md says
    /// why, and what keeping their processes alive would take).
    pub(crate) fn restart_memory_server(&self, buffer: &mut IpcBuffer) -> Result<(), &'static str> {
        self.begin_restart()?;
        self.end_process_threads();
        self.memory_server.end_thread(self.env);
        self.step_down();
        self.memory_server.release(self.env);
        self.memory_server.launch(self.env, self.supervisor_endpoint, self.strategy, self.cpus)?;
        self.release_process_servers()?;
        self.launch_process_servers(buffer)?;
        self.end_restart();
        Ok(())
    }

    /// One restart at a time, and only of a system that served.
    fn begin_restart(&self) -> Result<(), &'static str> {
        match self.serving.compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => Ok(()),
            Err(_) => Err("the servers are not serving"),
        }
    }

    fn end_restart(&self) {
        self.serving.store(true, Ordering::Release);
        self.restarts.fetch_add(1, Ordering::Release);
    }

    /// The supervisor outranks every server so that it can end them even
    /// while they spin; once their threads are gone, what follows waits
    /// for the servers' own work (the memory server's, the new servers'
    /// start), so it runs at init's priority.
    fn step_down(&self) {
        let _ = sys::thread_set_priority(self.supervisor, u64::from(crate::env::INIT_PRIORITY));
    }

    /// How many times the servers were restarted.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Acquire)
    }

    /// The process servers' address space (a fault-injection test breaks
    /// it).
    pub fn process_space(&self) -> Slot {
        self.process.program_space()
    }

    /// init's endpoint to `cpu`'s process server.
    pub fn server(&self, cpu: u16) -> Slot {
        self.process.server(usize::from(cpu % self.cpus))
    }

    /// The memory server's endpoint without a badge (which it refuses).
    pub fn memory_original(&self) -> Slot {
        self.memory_server.original()
    }

    /// init's main thread's IPC buffer (tests send raw messages through
    /// it too); only that thread may use it.
    pub fn buffer(&self) -> &'static mut IpcBuffer {
        // SAFETY: init's main thread's IPC buffer; the main thread calls
        // servers one call at a time and holds no other reference to it
        // across these calls (the supervisor has a buffer of its own).
        unsafe { rt::ipc::buffer_at(self.ipc_buffer) }
    }

    /// A request to `cpu`'s process server, from init's main thread.
    pub fn call(&self, cpu: u16, request: &ProcessRequest) -> Result<ProcessReply, ProtoError> {
        self.call_in(self.buffer(), cpu, request)
    }

    /// A request to `cpu`'s process server through `buffer`, the calling
    /// thread's IPC buffer.
    pub(crate) fn call_in(&self, buffer: &mut IpcBuffer, cpu: u16, request: &ProcessRequest) -> Result<ProcessReply, ProtoError> {
        rt::client::call::<ProcessProtocol>(self.server(cpu), buffer, request)
    }

    /// Starts `apps` with `arg` on `cpu`'s server; returns its pid.
    pub fn spawn(&self, cpu: u16, program: &str, arg: u64) -> Result<u32, ProtoError> {
        let program = ProgramName::try_from(program).map_err(|_| ProtoError::InvalidArgument)?;
        match self.call(cpu, &ProcessRequest::Spawn { program, arg })? {
            ProcessReply::Spawned { pid } => Ok(pid),
            _ => Err(ProtoError::Malformed),
        }
    }

    /// Waits for init's child `pid`; its exit status.
    pub fn wait(&self, cpu: u16, pid: u32) -> Result<i32, ProtoError> {
        match self.call(cpu, &ProcessRequest::Wait { pid: Some(pid) })? {
            ProcessReply::Exited { status, .. } => Ok(status),
            _ => Err(ProtoError::Malformed),
        }
    }

    /// Runs `program` with `arg` on `cpu`'s server to its end; its status.
    pub fn run(&self, cpu: u16, program: &str, arg: u64) -> Result<i32, ProtoError> {
        let pid = self.spawn(cpu, program, arg)?;
        self.wait(cpu, pid)
    }

    /// Swaps the reference-count strategy of every server, live.
    pub fn swap(&self, strategy: Strategy) -> Result<(), ProtoError> {
        match self.call(0, &ProcessRequest::Swap { strategy: strategy as u8 })? {
            ProcessReply::Swapped => Ok(()),
            _ => Err(ProtoError::Malformed),
        }
    }

    pub fn process_stats(&self) -> Result<ProcessStats, ProtoError> {
        match self.call(0, &ProcessRequest::Stats)? {
            ProcessReply::Stats(stats) => Ok(stats),
            _ => Err(ProtoError::Malformed),
        }
    }

    /// The memory server's counts once every process server has flushed
    /// its buffers and returned the frames it keeps at hand, and the
    /// strategy has freed every frame whose count reached zero.
    pub fn settled_memory(&self) -> Result<MemoryStats, ProtoError> {
        // Strategies placed in the process servers settle at their cores'
        // quiescent points: enough rounds of every core's for any of them.
        for _ in 0..SETTLE_ROUNDS {
            for cpu in 0..self.cpus {
                self.call(cpu, &ProcessRequest::Quiesce)?;
            }
        }
        rt::client::call::<MemoryProtocol>(self.memory_server.init_cap(), self.buffer(), &MemoryRequest::Settle)?;
        match self.memory_stats()? {
            MemoryReply::Stats(stats) => Ok(stats),
            _ => Err(ProtoError::Malformed),
        }
    }

    /// The memory server's counts as they are (nothing settled first).
    pub fn memory_stats(&self) -> Result<MemoryReply, ProtoError> {
        rt::client::call::<MemoryProtocol>(self.memory_server.init_cap(), self.buffer(), &MemoryRequest::Stats)
    }
}

impl Drop for System<'_> {
    /// The supervisor goes first: it must not outlive what it supervises.
    fn drop(&mut self) {
        self.env.slots.release(self.supervisor);
    }
}
