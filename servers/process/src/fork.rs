//! Fork with copy-on-write. The kernel maps every page of the parent
//! read-only into the child (`ShareCow`); every page gains a reference,
//! counted as the strategy in force counts it (`counts`), and the counts
//! are committed before the fork returns. The IPC buffer page is never
//! shared: the child gets a fresh one.

use alloc::sync::Arc;

use proto::{Phase, ProtoError};
use rt::mem::PAGE_SIZE;
use rt::sys::{self, Slot};

use crate::lifecycle::{configure, create_objects, destroy_objects};
use crate::loader::map_zeroed;
use crate::pagemap::PageMap;
use crate::procs::{Process, State};
use crate::server::{Server, unknown};
use crate::space::{IPC_PAGE, Page};
use crate::system::{self, Counters};

/// Forks `parent`; the child resumes at `resume` with its stack at `stack`
/// and is served by `cpu`'s server (ours when `None`).
pub fn fork(server: &mut Server, parent: u32, resume: u64, stack: u64, cpu: Option<u16>) -> Result<u32, ProtoError> {
    let sys = system::get();
    let target = cpu.map_or(server.index, |cpu| cpu % sys.cpus);
    let (record, parent_space) = {
        let table = sys.procs.lock();
        let Some(process) = table.map.get(&parent) else { return unknown() };
        let space = process.objects.map(|o| o.space).ok_or(ProtoError::InvalidArgument)?;
        if !table.may_have_child(parent) {
            return Err(ProtoError::LimitReached);
        }
        (process.memory.clone(), space)
    };
    // The child's page map is a copy of the parent's.
    let footprint = record.lock().pages.footprint();
    crate::heap::allows(server.mem.buffer(), footprint)?;
    let objects = create_objects()?;
    let phases = &sys.stats.phases;
    let hints = server.mem.hints();
    if let Some(hints) = hints.filter(|_| target != server.index) {
        hints.share_across_servers();
    }
    let mut memory = record.lock();
    if let Err(error) = phases.time(server.index, Phase::ForkMap, || share_pages(&memory.pages, parent_space, objects.space)) {
        destroy_objects(objects);
        return Err(error);
    }
    phases.time(server.index, Phase::ForkCounts, || {
        memory.pages.for_each_mut(|vpn, page| {
            if vpn != IPC_PAGE {
                server.mem.share(page);
                // Another reference exists now: a write may copy (`cow`).
                if let Some(hints) = hints {
                    hints.set(page.frame);
                }
            }
        });
        server.mem.commit();
    });
    let mut child = phases.time(server.index, Phase::ForkMap, || {
        let mut child = memory.clone_layout();
        child.pages = memory.pages.clone();
        child.pages.remove(IPC_PAGE);
        child
    });
    drop(memory);
    let pid = sys.procs.lock().new_pid();
    let ready = map_zeroed(objects.space, IPC_PAGE * PAGE_SIZE, Page::WRITABLE, &mut child, &mut server.mem)
        .and_then(|_| configure(pid, objects, target));
    let process = Process {
        parent: Some(parent),
        state: State::Running,
        server: target,
        killed: false,
        objects: Some(objects),
        memory: Arc::new(spin::Mutex::new(child)),
        waiter: None,
    };
    crate::lifecycle::adopt(pid, process);
    let started = ready.and_then(|()| sys::thread_start_with(objects.thread, resume, stack, [0; 3]).map_err(|_| ProtoError::NoMemory));
    if let Err(error) = started {
        crate::lifecycle::exit(server, pid, abi::process::STATUS_FAULT);
        let _ = crate::lifecycle::wait(parent, Some(pid));
        return Err(error);
    }
    Counters::add(&sys.stats.forks, 1);
    Ok(pid)
}

/// Maps every page of `pages` copy-on-write into `child`, in windows of
/// at most `MAP_BATCH_MAX` pages, made of whole leaves, that leave out the
/// IPC buffer page.
fn share_pages(pages: &PageMap, parent: Slot, child: Slot) -> Result<(), ProtoError> {
    let share = |(first, last): (u64, u64)| {
        sys::share_cow(parent, child, first * PAGE_SIZE, last - first + 1).map(|_| ()).map_err(|_| ProtoError::NoMemory)
    };
    let mut window: Option<(u64, u64)> = None;
    let spans = pages.spans().flat_map(|(first, last)| {
        // The IPC page splits the span it falls in.
        let before = (first < IPC_PAGE && IPC_PAGE <= last).then_some((first, IPC_PAGE - 1));
        let after = (first <= IPC_PAGE && IPC_PAGE < last).then_some((IPC_PAGE + 1, last));
        let whole = (!(first..=last).contains(&IPC_PAGE)).then_some((first, last));
        [before, after, whole].into_iter().flatten()
    });
    for (first, last) in spans {
        window = match window {
            Some((start, _)) if last - start < abi::syscall::MAP_BATCH_MAX => Some((start, last)),
            Some(done) => {
                share(done)?;
                Some((first, last))
            }
            None => Some((first, last)),
        };
    }
    window.map_or(Ok(()), share)
}
