//! The life of a process: spawn and exec from the boot image, exit (its
//! frames freed or decremented in batches before its parent hears of it),
//! kill (a process and its descendants, each ended by its own server),
//! wait, and the calls that change its memory (brk, mmap, munmap).
//! What a process may hold is bounded: children (`procs::MAX_CHILDREN`),
//! reserved pages and mappings (`space`), and every request that grows its
//! records in our heap is admitted only while the heap can take it
//! (`heap::allows`), which grows the heap when it must.

use alloc::sync::Arc;

use abi::cap::{ObjectKind, Rights};
use abi::process::{INIT_PID, SERVER_SLOT, START_MAGIC, STATUS_KILLED};
use abi::syscall::SysError;
use proto::{Phase, ProcessReply, ProtoError};
use rt::ipc;
use rt::mem::PAGE_SIZE;
use rt::process::{IPC_BUFFER, STACK_TOP};
use rt::sys::{self, Slot, ThreadConfig};

use crate::counts::MemClient;
use crate::loader;
use crate::pagemap::PageMap;
use crate::procs::{Objects, Process, State, Table};
use crate::server::{PROCESS_PRIORITY, Server, unknown};
use crate::space::{AddrSpace, HEAP_MAX};
use crate::system;

/// Creates the kernel objects of a new process.
pub fn create_objects() -> Result<Objects, ProtoError> {
    let sys = system::get();
    let space = sys.create(ObjectKind::AddressSpace).ok_or(ProtoError::NoMemory)?;
    let Some(cspace) = sys.create(ObjectKind::CSpace) else {
        sys.release_slot(space);
        return Err(ProtoError::NoMemory);
    };
    let Some(thread) = sys.create(ObjectKind::Thread) else {
        sys.release_slot(cspace);
        sys.release_slot(space);
        return Err(ProtoError::NoMemory);
    };
    Ok(Objects { space, cspace, thread })
}

/// Deletes a process's kernel objects: its thread stops, its mappings go.
pub fn destroy_objects(objects: Objects) {
    let sys = system::get();
    for slot in [objects.thread, objects.space, objects.cspace] {
        sys.release_slot(slot);
    }
}

/// Gives `pid`'s table its server endpoint (badged with the pid) and
/// configures its thread to run in `space` on server `server`'s CPU, with
/// that server as its pager.
pub fn configure(pid: u32, objects: Objects, server: u16) -> Result<(), ProtoError> {
    let sys = system::get();
    let endpoint = sys.endpoint(server);
    // An exec keeps the table, which has the endpoint already.
    match sys::cap_mint_to(endpoint, objects.cspace, SERVER_SLOT, Rights::WRITE, u64::from(pid)) {
        Ok(()) | Err(SysError::SlotOccupied) => {}
        Err(_) => return Err(ProtoError::NoMemory),
    }
    let pager = sys.alloc_slot().ok_or(ProtoError::NoMemory)?;
    let config = ThreadConfig {
        space: objects.space,
        cspace: objects.cspace,
        ipc_buffer: IPC_BUFFER,
        fault_endpoint: Some(pager),
        priority: PROCESS_PRIORITY,
        cpu: server,
    };
    let configured =
        sys::cap_mint(endpoint, pager, Rights::WRITE, u64::from(pid)).and_then(|()| sys::thread_configure(objects.thread, &config));
    sys.release_slot(pager);
    // The kernel copies the pages the hints say are shared, for the
    // server that will be the pager (`cow`).
    if let Some(memory) = &sys.cow {
        sys::cow_arm(objects.space, crate::slot::POOL, crate::slot::FRAMES, memory.control_frame(server), pid)
            .map_err(|_| ProtoError::NoMemory)?;
    }
    configured.map_err(|_| ProtoError::NoMemory)
}

/// Drops the references of `pages` (their mappings must be gone already).
pub fn release(mem: &mut MemClient, pages: PageMap) {
    mem.release(pages.iter().map(|(_, page)| page));
}

/// Removes the mappings of `pages` from `space`, in runs.
fn unmap(space: Slot, pages: &PageMap) {
    let mut run: Option<(u64, u64)> = None;
    for (vpn, _) in pages.iter() {
        run = match run {
            Some((start, count)) if start + count == vpn && count < abi::syscall::MAP_BATCH_MAX => Some((start, count + 1)),
            Some((start, count)) => {
                let _ = sys::unmap(space, start * PAGE_SIZE, count);
                Some((vpn, 1))
            }
            None => Some((vpn, 1)),
        };
    }
    if let Some((start, count)) = run {
        let _ = sys::unmap(space, start * PAGE_SIZE, count);
    }
}

/// Loads `program` into fresh objects for `pid`, served by `server`.
fn load(server: &mut Server, pid: u32, program: &str) -> Result<(Objects, AddrSpace, u64), ProtoError> {
    let elf = loader::program(program)?;
    let objects = create_objects()?;
    let mut memory = AddrSpace::default();
    let loaded = loader::load(elf, objects.space, &mut memory, &mut server.mem)
        .and_then(|entry| configure(pid, objects, server.index).map(|()| entry));
    match loaded {
        Ok(entry) => Ok((objects, memory, entry)),
        Err(error) => {
            destroy_objects(objects);
            release(&mut server.mem, memory.pages);
            Err(error)
        }
    }
}

fn start(objects: Objects, pid: u32, entry: u64, arg: u64) -> Result<(), ProtoError> {
    sys::thread_start_with(objects.thread, entry, STACK_TOP - 8, [u64::from(pid), START_MAGIC, arg]).map_err(|_| ProtoError::NoMemory)
}

/// Heap bytes a new program's records take at most (its page map: a few
/// leaves for the image, the stack and the IPC buffer).
const SPAWN_FOOTPRINT: usize = 8 * crate::pagemap::PageMap::PAGE_FOOTPRINT;

/// Enters the new child `pid` in the table. A child of a process that a
/// `Kill` named meanwhile is killed with it.
pub fn adopt(pid: u32, mut process: Process) {
    let sys = system::get();
    let mut table = sys.procs.lock();
    process.killed = process.parent.and_then(|parent| table.map.get(&parent)).is_some_and(|parent| parent.killed);
    let (killed, server) = (process.killed, process.server);
    table.map.insert(pid, process);
    drop(table);
    if killed {
        sys.queue_kill(server, pid);
    }
}

/// `Kill`: marks `target` and every running process descended from it,
/// and has each one's server end it. Only init or an ancestor may.
pub fn kill(caller: u32, target: u32) -> Result<(), ProtoError> {
    let sys = system::get();
    let mut table = sys.procs.lock();
    if target == INIT_PID || !table.map.contains_key(&target) {
        return Err(ProtoError::NoSuchProcess);
    }
    if caller != INIT_PID && !table.is_ancestor(caller, target) {
        return Err(ProtoError::Denied);
    }
    let mut victims = alloc::vec::Vec::new();
    for pid in table.running_subtree(target) {
        if let Some(process) = table.map.get_mut(&pid).filter(|p| !p.killed) {
            process.killed = true;
            victims.push((process.server, pid));
        }
    }
    drop(table);
    for (server, pid) in victims {
        sys.queue_kill(server, pid);
    }
    Ok(())
}

/// Ends the processes of this server that a `Kill` named.
pub fn end_killed(server: &mut Server) {
    let sys = system::get();
    for pid in sys.take_kills(server.index) {
        if sys.procs.lock().map.get(&pid).is_some_and(|p| p.state == State::Running) {
            exit(server, pid, STATUS_KILLED);
        }
    }
}

/// `Spawn`: a new child of `parent`, served by this server.
pub fn spawn(server: &mut Server, parent: u32, program: &str, arg: u64) -> Result<u32, ProtoError> {
    let sys = system::get();
    let pid = {
        let mut table = sys.procs.lock();
        if !table.map.contains_key(&parent) {
            return unknown();
        }
        if !table.may_have_child(parent) {
            return Err(ProtoError::LimitReached);
        }
        table.new_pid()
    };
    crate::heap::allows(server.mem.buffer(), SPAWN_FOOTPRINT)?;
    let (objects, memory, entry) = load(server, pid, program)?;
    let process = Process {
        parent: Some(parent),
        state: State::Running,
        server: server.index,
        killed: false,
        objects: Some(objects),
        memory: Arc::new(spin::Mutex::new(memory)),
        waiter: None,
    };
    adopt(pid, process);
    if let Err(error) = start(objects, pid, entry, arg) {
        exit(server, pid, abi::process::STATUS_FAULT);
        return Err(error);
    }
    Ok(pid)
}

/// `Exec`: `pid` goes on as `program`, with fresh objects and memory.
pub fn exec(server: &mut Server, pid: u32, program: &str, arg: u64) -> Result<(), ProtoError> {
    let sys = system::get();
    let Some(cspace) = sys.procs.lock().map.get(&pid).and_then(|p| p.objects).map(|o| o.cspace) else { return unknown() };
    let (fresh, memory, entry) = load(server, pid, program)?;
    // The new program keeps the process's table; its own fresh one goes.
    sys.release_slot(fresh.cspace);
    let fresh = Objects { cspace, ..fresh };
    if let Err(error) = configure(pid, fresh, server.index) {
        destroy_objects(fresh);
        release(&mut server.mem, memory.pages);
        return Err(error);
    }
    let (old, record) = {
        let mut table = sys.procs.lock();
        let process = table.map.get_mut(&pid).ok_or(ProtoError::NoSuchProcess)?;
        let old = process.objects.replace(fresh);
        (old, process.memory.clone())
    };
    let old_pages = core::mem::replace(&mut *record.lock(), memory).pages;
    if let Some(old) = old {
        sys.release_slot(old.thread);
        sys.release_slot(old.space);
    }
    release(&mut server.mem, old_pages);
    if let Err(error) = start(fresh, pid, entry, arg) {
        exit(server, pid, abi::process::STATUS_FAULT);
        return Err(error);
    }
    Ok(())
}

/// The end of `pid`, by `Exit` or by its pager: its objects go, its frames
/// are released, and its parent (if waiting) hears of it.
pub fn exit(server: &mut Server, pid: u32, status: i32) {
    let index = server.index;
    system::get().stats.phases.time(index, Phase::Exit, || end(server, pid, status));
}

fn end(server: &mut Server, pid: u32, status: i32) {
    let sys = system::get();
    let phases = &sys.stats.phases;
    let (objects, record, waiter) = {
        let mut table = sys.procs.lock();
        let Some(process) = table.map.get_mut(&pid) else { return };
        (process.objects.take(), process.memory.clone(), process.waiter.take())
    };
    if let Some(objects) = objects {
        phases.time(server.index, Phase::ExitObjects, || destroy_objects(objects));
    }
    if let Some(waiter) = waiter {
        sys.release_slot(waiter.reply);
    }
    // Its thread is gone: no copy of its pages is made after this one.
    server.settle_copies();
    let pages = core::mem::take(&mut record.lock().pages);
    phases.time(server.index, Phase::ExitCounts, || release(&mut server.mem, pages));

    let mut table = sys.procs.lock();
    // Children live on without a parent; zombie ones are gone.
    for child in table.children(pid, None) {
        if matches!(table.map.get(&child).map(|c| c.state), Some(State::Zombie(_))) {
            forget(&mut table, child);
        } else if let Some(c) = table.map.get_mut(&child) {
            c.parent = None;
        }
    }
    let parent = table.map.get(&pid).and_then(|p| p.parent).filter(|parent| table.map.contains_key(parent));
    let Some(parent) = parent else {
        forget(&mut table, pid);
        return;
    };
    let waiting = table.map.get(&parent).and_then(|p| p.waiter).filter(|w| w.pid.is_none_or(|want| want == pid));
    match waiting {
        Some(waiter) => {
            forget(&mut table, pid);
            if let Some(p) = table.map.get_mut(&parent) {
                p.waiter = None;
            }
            drop(table);
            let message = server.reply(&ProcessReply::Exited { pid, status });
            let _ = ipc::reply_with(waiter.reply, message);
            sys.release_slot(waiter.reply);
        }
        None => {
            if let Some(p) = table.map.get_mut(&pid) {
                p.state = State::Zombie(status);
            }
        }
    }
}

/// Takes `pid` out of the table. Once no process of ours is left (init is
/// not ours), no frame is shared across servers any more
/// (`Hints::sole_allowed`).
fn forget(table: &mut Table, pid: u32) {
    table.map.remove(&pid);
    if !table.has_processes()
        && let Some(memory) = &system::get().cow
    {
        memory.hints().no_processes_left();
    }
}

/// `Wait`: a zombie child's pid and status now, or `None` when the caller
/// must wait (its reply is saved for the child's exit).
pub fn wait(caller: u32, wanted: Option<u32>) -> Result<Option<(u32, i32)>, ProtoError> {
    let sys = system::get();
    let mut table = sys.procs.lock();
    if !table.map.contains_key(&caller) {
        return unknown();
    }
    let children = table.children(caller, wanted);
    if children.is_empty() {
        return Err(if wanted.is_some() { ProtoError::NotChild } else { ProtoError::NoChildren });
    }
    for child in children {
        if let Some(State::Zombie(status)) = table.map.get(&child).map(|c| c.state) {
            forget(&mut table, child);
            return Ok(Some((child, status)));
        }
    }
    let reply = sys.alloc_slot().ok_or(ProtoError::NoMemory)?;
    if ipc::reply_save(reply).is_err() {
        sys.release_slot(reply);
        return Err(ProtoError::NoMemory);
    }
    if let Some(process) = table.map.get_mut(&caller) {
        process.waiter = Some(crate::procs::Waiter { reply, pid: wanted });
    }
    Ok(None)
}

/// The memory record and address space of `pid`.
fn memory_of(pid: u32) -> Result<(Arc<spin::Mutex<AddrSpace>>, Slot), ProtoError> {
    let table = system::get().procs.lock();
    let process = table.map.get(&pid).ok_or(ProtoError::NoSuchProcess)?;
    let space = process.objects.map(|o| o.space).ok_or(ProtoError::InvalidArgument)?;
    Ok((process.memory.clone(), space))
}

/// Unmaps and releases `[start, end)` of a process.
fn drop_range(server: &mut Server, memory: &mut AddrSpace, space: Slot, start: u64, end: u64) {
    let pages = memory.take_range(start, end);
    unmap(space, &pages);
    release(&mut server.mem, pages);
}

/// `Brk`: the heap's end, moved to `new_end` (page-rounded) if allowed.
pub fn brk(server: &mut Server, pid: u32, new_end: u64) -> Result<u64, ProtoError> {
    let (record, space) = memory_of(pid)?;
    let mut memory = record.lock();
    let limit = memory.heap_start + HEAP_MAX;
    if new_end < memory.heap_start || new_end > limit {
        return Ok(memory.heap_end);
    }
    let new_end = new_end.next_multiple_of(PAGE_SIZE);
    if new_end < memory.heap_end {
        let old_end = memory.heap_end;
        drop_range(server, &mut memory, space, new_end, old_end);
    }
    memory.heap_end = new_end;
    Ok(new_end)
}

/// `Mmap`: a demand-zero region of `pages` pages.
pub fn mmap(server: &mut Server, pid: u32, pages: u32) -> Result<u64, ProtoError> {
    let (record, _) = memory_of(pid)?;
    crate::heap::allows(server.mem.buffer(), MAPPING_FOOTPRINT)?;
    record.lock().mmap(u64::from(pages))
}

/// Heap bytes one more anonymous mapping takes at most (its tree entry).
const MAPPING_FOOTPRINT: usize = 256;

/// `Munmap`: the range must lie in one anonymous mapping.
pub fn munmap(server: &mut Server, pid: u32, addr: u64, pages: u32) -> Result<(), ProtoError> {
    let (record, space) = memory_of(pid)?;
    let mut memory = record.lock();
    let end = addr + u64::from(pages) * PAGE_SIZE;
    if !memory.munmap(addr, end) {
        return Err(ProtoError::NotMapped);
    }
    drop_range(server, &mut memory, space, addr, end);
    Ok(())
}
