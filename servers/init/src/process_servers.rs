//! The process servers' program as init runs it: one generation at a
//! time, started from the boot image with fresh endpoints, and torn down
//! whole, whatever its threads are doing, before the next one starts.
//!
//! init creates every thread of the program itself (the first by loading
//! it, the others as bare objects the program configures and starts), and
//! keeps the original capability of each: revoking and deleting those ends
//! every thread at once, even one that spins on a lock a dead thread held
//! or waits for the answer to its fault. Every thread reports its faults
//! and its exit to init's supervisor endpoint, badged with the generation.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use abi::cap::{ObjectKind, Rights, boot_slot};
use abi::msg::IpcBuffer;
use abi::process::INIT_PID;
use proto::memory::{MemoryReply, MemoryRequest, client};
use proto::process::server_slot as slot;
use proto::{MemoryProtocol, ProcessRequest};
use rt::process::{Slots, prepare};
use rt::sys::{self, Slot};

use crate::supervisor::{self, PROCESS_SERVERS};
use crate::system::{self, MAX_SERVERS, System};
use crate::tests::process::BootImage;

const PROCESS_PRIORITY: u8 = 12;
/// Kernel objects the process servers may create: every process's space,
/// table and thread, saved replies, their own objects. The kernel's pools
/// bound it too; the processes themselves get no allowance.
const PROCESS_ALLOWANCE: u64 = 1 << 16;

/// The slots of init's that name the running generation. Written only by
/// whoever starts or tears it down (one at a time: `System::serving`);
/// read by any thread of init that calls a server.
#[derive(Default)]
pub struct Generation {
    /// How many generations have started.
    pub number: AtomicU64,
    /// Each CPU's endpoint, unbadged.
    pub endpoints: [AtomicU64; MAX_SERVERS],
    /// init's capability to each CPU's endpoint (badged with pid 1).
    pub servers: [AtomicU64; MAX_SERVERS],
    /// The program's space, table and first thread.
    program: [AtomicU64; 3],
    /// What the program's memory server capability is derived from.
    memory: AtomicU64,
    /// The supervisor endpoint badged with this generation.
    reports: AtomicU64,
    /// Every other thread of the program: server threads 1.., idle threads.
    threads: [AtomicU64; 2 * MAX_SERVERS],
}

impl Generation {
    /// The badge of the running generation's reports.
    pub fn report_badge(&self) -> u64 {
        supervisor::report_badge(PROCESS_SERVERS, self.number.load(Relaxed))
    }

    pub fn server(&self, cpu: usize) -> Slot {
        self.servers[cpu].load(Relaxed)
    }

    /// The program's address space.
    pub fn program_space(&self) -> Slot {
        self.program[0].load(Relaxed)
    }

    /// Takes the slots of `lists` out of the generation (those in use).
    fn take(lists: &[&[AtomicU64]]) -> alloc::vec::Vec<Slot> {
        lists.iter().flat_map(|list| list.iter()).map(|slot| slot.swap(0, Relaxed)).filter(|&slot| slot != 0).collect()
    }
}

impl System<'_> {
    /// Loads the process servers' program from the boot image as a new
    /// generation, gives it its capabilities and starts it; returns once
    /// every server thread answers (`buffer` is the calling thread's).
    pub(crate) fn launch_process_servers(&self, buffer: &mut IpcBuffer) -> Result<(), &'static str> {
        let env = self.env;
        let image = BootImage::map(env)?;
        let generation = &self.process;
        let number = generation.number.fetch_add(1, Relaxed) + 1;
        let alloc = |into: &AtomicU64| {
            let slot = env.slots.alloc();
            into.store(slot, Relaxed);
            slot
        };
        let cpus = usize::from(self.cpus);
        for k in 0..cpus {
            let endpoint = alloc(&generation.endpoints[k]);
            sys::create(ObjectKind::Endpoint, endpoint).map_err(|_| "create a process server endpoint")?;
            let server = alloc(&generation.servers[k]);
            sys::cap_mint(endpoint, server, Rights::WRITE, u64::from(INIT_PID)).map_err(|_| "mint init's endpoint")?;
        }
        let memory = alloc(&generation.memory);
        let memory_rights = Rights::WRITE.union(Rights::GRANT).union(Rights::DERIVE);
        sys::cap_mint(self.memory_server.original(), memory, memory_rights, client::PROCESS_SERVERS)
            .map_err(|_| "mint the process servers' memory capability")?;
        let reports = alloc(&generation.reports);
        let badge = supervisor::report_badge(PROCESS_SERVERS, number);
        sys::cap_mint(self.supervisor_endpoint, reports, Rights::WRITE.union(Rights::DERIVE), badge)
            .map_err(|_| "mint the process servers' supervisor capability")?;
        let [space, cspace, thread] = &generation.program;
        let slots = Slots { space: alloc(space), cspace: alloc(cspace), thread: alloc(thread) };
        let server = prepare(image.program("process")?, &env.pages, slots, PROCESS_PRIORITY, 0, Some(reports))
            .map_err(|_| "load the process server")?;
        let give = |source: Slot, at: u64, rights: Rights, badge: u64| {
            sys::cap_mint_to(source, slots.cspace, at, rights, badge).map_err(|_| "give the process server its capabilities")
        };
        give(slots.space, slot::SPACE, Rights::ALL, 0)?;
        give(self.process_frames, slot::FRAMES, Rights::READ.union(Rights::WRITE), 0)?;
        // Grant: the memory server's replies carry capabilities (the
        // attached table), which the kernel delivers only to a caller whose
        // capability has the grant right. The badge names the process
        // servers to the memory server: a trusted client, which may map
        // the pool and the table.
        give(memory, slot::MEMORY, Rights::WRITE.union(Rights::GRANT), client::PROCESS_SERVERS)?;
        give(boot_slot::BOOT_IMAGE, slot::BOOT_IMAGE, Rights::READ, 0)?;
        give(slots.cspace, slot::CSPACE, Rights::ALL, 0)?;
        give(reports, slot::SUPERVISOR, Rights::WRITE, badge)?;
        for k in 0..cpus {
            give(generation.endpoints[k].load(Relaxed), slot::FIRST_ENDPOINT + k as u64, Rights::ALL, 0)?;
            // The idle thread, and every server thread but the first.
            let theirs = [(k, slot::FIRST_IDLE_THREAD + k as u64), (MAX_SERVERS + k, slot::FIRST_THREAD + k as u64)];
            for (ours, at) in theirs.into_iter().take(if k == 0 { 1 } else { 2 }) {
                let thread = alloc(&generation.threads[ours]);
                sys::create(ObjectKind::Thread, thread).map_err(|_| "create a process server thread")?;
                sys::cap_copy_to(thread, slots.cspace, at).map_err(|_| "give the process server its threads")?;
            }
        }
        system::give_allowance(slots.cspace, PROCESS_ALLOWANCE)?;
        let options = u64::from(self.env.cow_by_pager) * proto::process::OPTION_COW_BY_PAGER;
        server.start_with([self.strategy as u64, u64::from(self.cpus), options]).map_err(|_| "start the process server")?;
        system::await_ready(slots.thread, generation.endpoints[0].load(Relaxed), "the process server did not start")?;
        // Every server thread answers once it is up.
        for cpu in 0..self.cpus {
            self.call_in(buffer, cpu, &ProcessRequest::Stats).map_err(|_| "a process server does not answer")?;
        }
        Ok(())
    }

    /// Ends every thread of the running generation at once, whatever it
    /// is doing (init deletes it): nothing of theirs runs from here on.
    pub(crate) fn end_process_threads(&self) {
        let generation = &self.process;
        for thread in Generation::take(&[&generation.threads, &generation.program[2..]]) {
            let _ = sys::cap_revoke(thread);
            self.env.slots.release(thread);
        }
    }

    /// Takes back the rest of a generation whose threads ended: its
    /// endpoints go (every process's capability to them, and every call
    /// queued on them, which fails), then its table, and with it every
    /// process and kernel object the servers made, and every saved reply
    /// (whose caller hears that the server died). Returns once the kernel
    /// holds no more threads, spaces or tables than before the servers
    /// first started.
    pub(crate) fn release_process_servers(&self) -> Result<(), &'static str> {
        let generation = &self.process;
        let singles = [&generation.memory, &generation.reports].map(core::slice::from_ref);
        let rest = Generation::take(&[&generation.endpoints, &generation.servers, &generation.program[..2], singles[0], singles[1]]);
        for &slot in rest.iter().chain([&self.process_frames]) {
            let _ = sys::cap_revoke(slot);
        }
        for slot in rest {
            self.env.slots.release(slot);
        }
        let gone =
            crate::tests::wait_longer(|| system::kernel_objects().is_ok_and(|now| now == self.objects_before), system::START_PATIENCE);
        if !gone {
            rt::println!(
                "init: kernel objects before the process servers {:?}, after their teardown {:?}",
                self.objects_before,
                system::kernel_objects()
            );
            return Err("the process servers' threads and objects did not all end");
        }
        Ok(())
    }

    /// Has the memory server take back every frame it handed to the
    /// process servers, whose generation is gone; returns how many.
    pub(crate) fn reclaim_process_frames(&self, buffer: &mut IpcBuffer) -> Result<u64, &'static str> {
        let reclaim = MemoryRequest::Reclaim { record: client::PROCESS_SERVERS_RECORD };
        match rt::client::call::<MemoryProtocol>(self.memory_server.init_cap(), buffer, &reclaim) {
            Ok(MemoryReply::RefBatchDone { freed }) => Ok(u64::from(freed)),
            _ => Err("the memory server did not take back the process servers' frames"),
        }
    }
}
