//! Programs of their own: init maps the boot image, finds `hello`, and
//! starts it in a new address space with a new capability table holding
//! only a notification; hello answers on it and exits. Deleting its
//! capabilities returns every kernel object and page-table frame (its root
//! once no CPU has it loaded).

use abi::cap::{ObjectKind, Rights, ThreadState, boot_slot};
use abi::syscall::{KERNEL_INFO_FREE_FRAMES, KERNEL_INFO_ORPHANED_ROOTS};
use rt::ipc;
use rt::mem::PAGE_SIZE;
use rt::process::{Slots, prepare};
use rt::sys;

use super::{TestResult, check, wait_for};
use crate::env::{Env, INIT_PRIORITY};

const ANSWER_BITS: u64 = 0x42;

/// The boot image, mapped read-only into init for as long as it lives.
pub struct BootImage {
    at: u64,
    frames: u64,
}

impl BootImage {
    pub fn map(env: &Env) -> Result<Self, &'static str> {
        let frames = sys::identify(boot_slot::BOOT_IMAGE).map_err(|_| "identify the boot image")?.size;
        let at = env.pages.window(frames);
        // The kernel maps at most MAX_BATCH pages a call.
        for first in (0..frames).step_by(BATCH as usize) {
            let count = BATCH.min(frames - first);
            sys::map_batch(boot_slot::ADDRESS_SPACE, boot_slot::BOOT_IMAGE, first, at + first * PAGE_SIZE, count, Rights::READ)
                .map_err(|_| "map the boot image")?;
        }
        Ok(Self { at, frames })
    }

    /// The program called `name`.
    pub fn program(&self, name: &str) -> Result<&[u8], &'static str> {
        // SAFETY: the boot image stays mapped read-only until `self` drops.
        let bytes = unsafe { core::slice::from_raw_parts(self.at as *const u8, (self.frames * PAGE_SIZE) as usize) };
        let image = bootimage::Image::parse(bytes).map_err(|_| "the boot image is unreadable")?;
        image.find(name).map(|file| file.data).ok_or("program not in the boot image")
    }
}

impl Drop for BootImage {
    fn drop(&mut self) {
        for first in (0..self.frames).step_by(BATCH as usize) {
            let _ = sys::unmap(boot_slot::ADDRESS_SPACE, self.at + first * PAGE_SIZE, BATCH.min(self.frames - first));
        }
    }
}

/// Loading maps through windows in init's own space, whose page tables stay
/// with init's space. Maps and unmaps one page in each 2 MiB of the next
/// `span` bytes of windows, so that those tables exist already and only the
/// new program's own count.
fn warm_windows(env: &Env, span: u64) -> Result<(), &'static str> {
    const TABLE_SPAN: u64 = 2 << 20;
    let next = env.pages.next_window();
    let scratch = env.pages.frames(1);
    let boundaries = (next.next_multiple_of(TABLE_SPAN)..next + span).step_by(TABLE_SPAN as usize);
    for at in core::iter::once(next).chain(boundaries) {
        sys::map_batch(boot_slot::ADDRESS_SPACE, boot_slot::FIRST_RAM, scratch, at, 1, Rights::READ).map_err(|_| "warm a window")?;
        sys::unmap(boot_slot::ADDRESS_SPACE, at, 1).map_err(|_| "warm a window")?;
    }
    Ok(())
}

/// Pages per map or unmap call.
const BATCH: u64 = abi::syscall::MAP_BATCH_MAX;

pub fn spawn_program(env: &Env) -> TestResult {
    let image = BootImage::map(env)?;
    let elf = image.program("hello")?;

    warm_windows(env, 4 << 20)?;
    let pools = [ObjectKind::Thread, ObjectKind::AddressSpace, ObjectKind::CSpace].map(|k| sys::pool_usage(k).map(|u| u.0));
    let free_before = sys::kernel_info(KERNEL_INFO_FREE_FRAMES);
    let slots = Slots { space: env.slots.alloc(), cspace: env.slots.alloc(), thread: env.slots.alloc() };
    let answer = env.slots.alloc();
    sys::create(ObjectKind::Notification, answer).map_err(|_| "create")?;
    // hello's table gets its one capability before its thread starts.
    let mut outcome = prepare(elf, &env.pages, slots, INIT_PRIORITY, env.other_cpu(), None).map_err(|_| "load hello").and_then(|program| {
        sys::cap_mint_to(answer, slots.cspace, 1, Rights::WRITE, 0).map_err(|_| "give hello its notification")?;
        program.start(ANSWER_BITS).map_err(|_| "start hello")
    });
    if outcome.is_ok() {
        outcome = match ipc::wait(answer) {
            Ok(ANSWER_BITS) => Ok(()),
            _ => Err("hello did not answer"),
        };
    }
    let exited = wait_for(|| sys::thread_state(slots.thread) == Ok(ThreadState::Dead));
    for slot in [slots.thread, slots.cspace, slots.space, answer] {
        env.slots.release(slot);
    }
    outcome?;
    check(exited, "hello did not exit")?;
    let pools_after = [ObjectKind::Thread, ObjectKind::AddressSpace, ObjectKind::CSpace].map(|k| sys::pool_usage(k).map(|u| u.0));
    check(pools_after == pools, "hello's kernel objects were not all freed")?;
    check(sys::kernel_info(KERNEL_INFO_FREE_FRAMES) == free_before, "hello's page tables did not return")?;
    // hello's CPU may have stayed idle with hello's root loaded (an
    // orphan); once it has run a thread of init's space, nothing waits.
    let worker = env.slots.alloc();
    rt::thread::spawn(&env.pages, worker, super::threads::spec(exit_at_once, 0, INIT_PRIORITY, env.other_cpu()))
        .map_err(|_| "spawn a worker")?;
    let worked = wait_for(|| sys::thread_state(worker) == Ok(ThreadState::Dead));
    env.slots.release(worker);
    check(worked, "the worker did not run")?;
    check(sys::kernel_info(KERNEL_INFO_ORPHANED_ROOTS) == Ok(0), "a released root stayed allocated after its CPU loaded another space")
}

extern "C" fn exit_at_once(_: u64) -> ! {
    sys::thread_exit()
}
