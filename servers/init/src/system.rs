//! The whole system, as init starts it: the memory server with the RAM
//! left to init, then the process servers (one thread per CPU), each
//! reachable through an endpoint init holds badged with its own pid. Then
//! init is a client like any process: it spawns programs and waits for them.

use core::cell::Cell;

use abi::cap::{ObjectKind, Rights, ThreadState, boot_slot};
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

pub struct System<'e> {
    env: &'e Env,
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
    /// Each CPU's process server endpoint, unbadged (init creates them
    /// for each start of the process servers).
    endpoints: Cell<[Slot; MAX_SERVERS]>,
    /// init's endpoint to each CPU's process server.
    servers: Cell<[Slot; MAX_SERVERS]>,
    /// The process servers' program: its space, table and first thread.
    process: Cell<Slots>,
    /// The capability the process servers' one to the memory server is
    /// derived from (revoked when they are torn down).
    process_memory: Cell<Slot>,
    /// Threads, address spaces and tables in the kernel before the process
    /// servers first started: what a teardown must come back to.
    objects_before: [u64; 3],
    /// The frames of the process servers' own heap, stacks and buffers.
    process_frames: Slot,
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
const START_PATIENCE: u64 = 4 * crate::tests::PATIENCE;

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

/// Threads, address spaces and tables the kernel holds now.
fn kernel_objects() -> Result<[u64; 3], &'static str> {
    let mut counts = [0; 3];
    for (count, kind) in counts.iter_mut().zip([ObjectKind::Thread, ObjectKind::AddressSpace, ObjectKind::CSpace]) {
        *count = sys::pool_usage(kind).map_err(|_| "no kernel pool usage")?.0;
    }
    Ok(counts)
}

impl<'e> System<'e> {
    pub fn start(env: &'e Env, strategy: Strategy) -> Result<Self, &'static str> {
        let image = BootImage::map(env)?;
        let cpus = env.cpus.min(MAX_SERVERS as u64) as u16;

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
        await_ready(slots.thread, memory_original, "the memory server did not start")?;

        let pool_frames = u32::try_from(pool_frames).map_err(|_| "a pool too large for frame numbers")?;
        let spare_slots = [env.slots.alloc(), env.slots.alloc()];
        let system = Self {
            env,
            strategy,
            memory_original,
            memory,
            pool_frames,
            spare_slots,
            endpoints: Cell::new([0; MAX_SERVERS]),
            servers: Cell::new([0; MAX_SERVERS]),
            process: Cell::new(Slots { space: 0, cspace: 0, thread: 0 }),
            process_memory: Cell::new(0),
            objects_before: kernel_objects()?,
            process_frames,
            cpus,
            ipc_buffer: env.ipc_buffer,
        };
        system.launch_process_servers(&image)?;
        Ok(system)
    }

    /// Loads the process servers' program from the boot image, gives it
    /// its capabilities and starts it; returns once it serves.
    fn launch_process_servers(&self, image: &BootImage) -> Result<(), &'static str> {
        let env = self.env;
        let mut servers = [0; MAX_SERVERS];
        let endpoints: [Slot; MAX_SERVERS] = core::array::from_fn(|_| env.slots.alloc());
        for k in 0..usize::from(self.cpus) {
            sys::create(ObjectKind::Endpoint, endpoints[k]).map_err(|_| "create a process server endpoint")?;
            servers[k] = env.slots.alloc();
            sys::cap_mint(endpoints[k], servers[k], Rights::WRITE, u64::from(INIT_PID)).map_err(|_| "mint init's endpoint")?;
        }
        self.endpoints.set(endpoints);
        self.servers.set(servers);
        let process_memory = env.slots.alloc();
        sys::cap_mint(
            self.memory_original,
            process_memory,
            Rights::WRITE.union(Rights::GRANT).union(Rights::DERIVE),
            client::PROCESS_SERVERS,
        )
        .map_err(|_| "mint the process servers' memory capability")?;
        self.process_memory.set(process_memory);
        let slots = Slots { space: env.slots.alloc(), cspace: env.slots.alloc(), thread: env.slots.alloc() };
        self.process.set(slots);
        let server = prepare(image.program("process")?, &env.pages, slots, PROCESS_PRIORITY, 0).map_err(|_| "load the process server")?;
        let give_badged = |source: Slot, at: u64, rights: Rights, badge: u64| {
            sys::cap_mint_to(source, slots.cspace, at, rights, badge).map_err(|_| "give the process server its capabilities")
        };
        let give = |source: Slot, at: u64, rights: Rights| give_badged(source, at, rights, 0);
        give(slots.space, 1, Rights::ALL)?;
        give(self.process_frames, 2, Rights::READ.union(Rights::WRITE))?;
        // Grant: the memory server's replies carry capabilities (the
        // attached table), which the kernel delivers only to a caller whose
        // capability has the grant right. The badge names the process
        // servers to the memory server: a trusted client, which may map
        // the pool and the table.
        give_badged(process_memory, 3, Rights::WRITE.union(Rights::GRANT), client::PROCESS_SERVERS)?;
        give(boot_slot::BOOT_IMAGE, 4, Rights::READ)?;
        give(slots.cspace, 5, Rights::ALL)?;
        for (k, &endpoint) in endpoints.iter().enumerate().take(usize::from(self.cpus)) {
            give(endpoint, 8 + k as u64, Rights::ALL)?;
        }
        give_allowance(slots.cspace, PROCESS_ALLOWANCE)?;
        server.start_with([self.strategy as u64, u64::from(self.cpus), 0]).map_err(|_| "start the process server")?;
        await_ready(slots.thread, endpoints[0], "the process server did not start")?;
        // Every server thread answers once it is up.
        for cpu in 0..self.cpus {
            self.call(cpu, &ProcessRequest::Stats).map_err(|_| "a process server does not answer")?;
        }
        Ok(())
    }

    /// Tears the process servers down and starts them afresh from the boot
    /// image, as a supervisor does with a server that died. init revokes
    /// every capability derived from what it gave them (their endpoints,
    /// and with them every process's; their memory server capability;
    /// their own table, space and frames): their threads end at their next
    /// message (`server::end_if_retired`), their table then goes and takes
    /// every process and kernel object they made with it. Once the kernel
    /// holds no more threads, spaces or tables than before they first
    /// started, the memory server takes back every frame they held, and
    /// the program starts again on fresh endpoints. Returns the frames
    /// taken back.
    pub fn restart_process_servers(&self) -> Result<u64, &'static str> {
        let env = self.env;
        let old = self.process.get();
        let endpoints = self.endpoints.get();
        let program = [old.cspace, old.space, self.process_frames, self.process_memory.get()];
        for &slot in endpoints.iter().take(usize::from(self.cpus)).chain(&program) {
            let _ = sys::cap_revoke(slot);
        }
        // Each server thread takes one retire message and ends; one that
        // died already takes none.
        let retire = rt::ipc::Message::new(proto::process::RETIRE_LABEL, [0; 4]);
        for &endpoint in endpoints.iter().take(usize::from(self.cpus)) {
            crate::tests::wait_for(|| rt::ipc::nb_send(endpoint, retire).is_ok());
        }
        let servers = self.servers.get();
        let owned = [old.thread, old.cspace, old.space, self.process_memory.get()];
        for &slot in endpoints.iter().chain(&servers).chain(&owned).filter(|&&slot| slot != 0) {
            env.slots.release(slot);
        }
        let gone = crate::tests::wait_longer(|| kernel_objects().is_ok_and(|now| now == self.objects_before), START_PATIENCE);
        if !gone {
            rt::println!(
                "init: kernel objects before the process servers {:?}, after their teardown {:?}",
                self.objects_before,
                kernel_objects()
            );
            return Err("the process servers' threads and objects did not all end");
        }
        let reclaimed = match rt::client::call::<MemoryProtocol>(
            self.memory,
            self.buffer(),
            &MemoryRequest::Reclaim { record: client::PROCESS_SERVERS_RECORD },
        ) {
            Ok(MemoryReply::RefBatchDone { freed }) => u64::from(freed),
            _ => return Err("the memory server did not take back the process servers' frames"),
        };
        let image = BootImage::map(env)?;
        self.launch_process_servers(&image)?;
        Ok(reclaimed)
    }

    /// init's endpoint to `cpu`'s process server.
    pub fn server(&self, cpu: u16) -> Slot {
        self.servers.get()[usize::from(cpu % self.cpus)]
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
