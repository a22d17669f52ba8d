//! The whole system, as init starts it: the memory server with the RAM
//! left to init, then the process servers (one thread per CPU), each
//! reachable through an endpoint init holds badged with its own pid. Then
//! init is a client like any process: it spawns programs and waits for them.

use abi::cap::{ObjectKind, Rights, boot_slot};
use abi::msg::IpcBuffer;
use abi::process::{INIT_PID, Strategy};
use proto::memory::{MemoryReply, MemoryRequest, MemoryStats, client};
use proto::{MemoryProtocol, ProcessProtocol, ProcessReply, ProcessRequest, ProcessStats, ProgramName, ProtoError};
use rt::process::{Slots, prepare};
use rt::sys::{self, Slot};

use crate::env::Env;
use crate::tests::process::BootImage;

/// Frames init keeps for itself after starting the servers.
const INIT_RESERVE: u64 = 4096;
/// Frames of the process servers' own memory: a 16 MiB heap, stacks, IPC buffers.
const PROCESS_SERVER_FRAMES: u64 = 4096 + 256;
/// Most process servers (the process server's `slot::MAX_SERVERS`).
const MAX_SERVERS: usize = 8;

const MEMORY_PRIORITY: u8 = 13;
const PROCESS_PRIORITY: u8 = 12;
/// Kernel objects the memory server may create (it carves its table).
pub const MEMORY_ALLOWANCE: u64 = 16;
/// Kernel objects the process servers may create: every process's space,
/// table and thread, saved replies, their own threads. The kernel's pools
/// bound it too; the processes themselves get no allowance.
const PROCESS_ALLOWANCE: u64 = 1 << 16;

/// Gives the table in `cspace` an allowance of `amount` kernel objects,
/// taken from init's.
pub fn give_allowance(cspace: Slot, amount: u64) -> Result<(), &'static str> {
    sys::raw_syscall(abi::syscall::Sysnum::Allowance as u64, [cspace, amount, 0, 0, 0, 0])
        .map(|_| ())
        .map_err(|_| "give a server its allowance")
}

pub struct System {
    /// The strategy booted with.
    pub strategy: Strategy,
    /// The memory server's endpoint, unbadged: init mints each client's
    /// capability from it (the server refuses requests through it).
    memory_original: Slot,
    /// init's own capability to the memory server (badge `client::INIT`).
    memory: Slot,
    /// Frames of the memory server's range (its frame numbers).
    pub pool_frames: u32,
    /// Two empty slots of init's, for the capabilities of test clients.
    pub spare_slots: [Slot; 2],
    /// init's endpoint to each CPU's process server.
    servers: [Slot; MAX_SERVERS],
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

impl System {
    pub fn start(env: &Env, strategy: Strategy) -> Result<Self, &'static str> {
        let image = BootImage::map(env)?;
        let cpus = env.cpus.min(MAX_SERVERS as u64) as u16;
        let rw = Rights::READ.union(Rights::WRITE);

        let memory_original = env.slots.alloc();
        sys::create(ObjectKind::Endpoint, memory_original).map_err(|_| "create the memory endpoint")?;
        let _ = sys::trace_name(memory_original, "memory-server");
        let memory = env.slots.alloc();
        sys::cap_mint(memory_original, memory, Rights::WRITE, client::INIT).map_err(|_| "mint init's memory capability")?;
        let process_frames = carve(env, PROCESS_SERVER_FRAMES)?;
        let total = sys::identify(boot_slot::FIRST_RAM).map_err(|_| "identify RAM")?.size;
        let pool_frames = total.saturating_sub(env.pages.frames(0) + INIT_RESERVE + 64);
        let pool = carve(env, pool_frames)?;
        let slots = Slots { space: env.slots.alloc(), cspace: env.slots.alloc(), thread: env.slots.alloc() };
        let server = prepare(image.program("memory")?, &env.pages, slots, MEMORY_PRIORITY, 0).map_err(|_| "load the memory server")?;
        for (source, at) in [(memory_original, 1), (slots.space, 2), (pool, 3)] {
            sys::cap_mint_to(source, slots.cspace, at, Rights::ALL, 0).map_err(|_| "give the memory server its capabilities")?;
        }
        give_allowance(slots.cspace, MEMORY_ALLOWANCE)?;
        server.start_with([strategy as u64, u64::from(cpus), 0]).map_err(|_| "start the memory server")?;

        let mut servers = [0; MAX_SERVERS];
        let endpoints: [Slot; MAX_SERVERS] = core::array::from_fn(|_| env.slots.alloc());
        for k in 0..usize::from(cpus) {
            sys::create(ObjectKind::Endpoint, endpoints[k]).map_err(|_| "create a process server endpoint")?;
            servers[k] = env.slots.alloc();
            sys::cap_mint(endpoints[k], servers[k], Rights::WRITE, u64::from(INIT_PID)).map_err(|_| "mint init's endpoint")?;
        }
        let slots = Slots { space: env.slots.alloc(), cspace: env.slots.alloc(), thread: env.slots.alloc() };
        let server = prepare(image.program("process")?, &env.pages, slots, PROCESS_PRIORITY, 0).map_err(|_| "load the process server")?;
        let give_badged = |source: Slot, at: u64, rights: Rights, badge: u64| {
            sys::cap_mint_to(source, slots.cspace, at, rights, badge).map_err(|_| "give the process server its capabilities")
        };
        let give = |source: Slot, at: u64, rights: Rights| give_badged(source, at, rights, 0);
        give(slots.space, 1, Rights::ALL)?;
        give(process_frames, 2, rw)?;
        // Grant: the memory server's replies carry capabilities (the
        // attached table), which the kernel delivers only to a caller whose
        // capability has the grant right.
        // The badge names the process servers to the memory server: a
        // trusted client, which may map the pool and the table.
        give_badged(memory_original, 3, Rights::WRITE.union(Rights::GRANT), client::PROCESS_SERVERS)?;
        give(boot_slot::BOOT_IMAGE, 4, Rights::READ)?;
        give(slots.cspace, 5, Rights::ALL)?;
        for (k, &endpoint) in endpoints.iter().enumerate().take(usize::from(cpus)) {
            give(endpoint, 8 + k as u64, Rights::ALL)?;
        }
        give_allowance(slots.cspace, PROCESS_ALLOWANCE)?;
        server.start_with([strategy as u64, u64::from(cpus), 0]).map_err(|_| "start the process server")?;
        let pool_frames = u32::try_from(pool_frames).map_err(|_| "a pool too large for frame numbers")?;
        let spare_slots = [env.slots.alloc(), env.slots.alloc()];
        let system = Self { strategy, memory_original, memory, pool_frames, spare_slots, servers, cpus, ipc_buffer: env.ipc_buffer };
        // The servers answer once they are up.
        system.process_stats().map_err(|_| "the process server does not answer")?;
        Ok(system)
    }

    /// init's endpoint to `cpu`'s process server.
    pub fn server(&self, cpu: u16) -> Slot {
        self.servers[usize::from(cpu % self.cpus)]
    }

    /// The memory server's endpoint without a badge (which it refuses).
    pub fn memory_original(&self) -> Slot {
        self.memory_original
    }

    /// init's IPC buffer (tests send raw messages through it too).
    pub fn buffer(&self) -> &'static mut IpcBuffer {
        // SAFETY: init's main thread's IPC buffer; init calls servers from
        // that thread only, one call at a time, and holds no other
        // reference to it across these calls.
        unsafe { rt::ipc::buffer_at(self.ipc_buffer) }
    }

    /// A request to `cpu`'s process server.
    pub fn call(&self, cpu: u16, request: &ProcessRequest) -> Result<ProcessReply, ProtoError> {
        rt::client::call::<ProcessProtocol>(self.server(cpu), self.buffer(), request)
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
        rt::client::call::<MemoryProtocol>(self.memory, self.buffer(), &MemoryRequest::Settle)?;
        match rt::client::call::<MemoryProtocol>(self.memory, self.buffer(), &MemoryRequest::Stats)? {
            MemoryReply::Stats(stats) => Ok(stats),
            _ => Err(ProtoError::Malformed),
        }
    }
}
