//! The system-call fuzzer: a thread in a sandbox (its own capability table
//! holding a few objects, a table capability to itself, an address space
//! of its own, frames it may map there and a frame of code its threads
//! run; no capability to init's space or threads) makes random system
//! calls (drawn by `fuzz_calls`), while partner threads (`fuzz_partners`)
//! answer its calls, call it, and kill the threads it starts when they
//! fault or exit. Init watches: a call that blocks with no progress for
//! [`STALL`] cycles is ended by suspending and resuming the fuzzer (the
//! call returns `BadState`), so every blocking call is bounded. Afterwards
//! the sandbox is deleted, and every kernel pool and the kernel's free
//! frames must be back where they were: the kernel stayed up and
//! consistent.
//!
//! The self-test runs one seed of 100,000 calls; `cargo xtask fuzz` boots
//! into a campaign of several seeds (`abi::selftest::FuzzPlan`) and reads
//! its `[fuzz]` lines: per seed the calls refused, per system call the
//! calls made and refused, and which succeeded at least once.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, Rights, ThreadState, boot_slot};
use abi::selftest::{FUZZ_MARKER, FuzzPlan};
use abi::syscall::{KERNEL_INFO_FREE_FRAMES, SysResult, Sysnum, decode};
use rt::ipc;
use rt::mem::PAGE_SIZE;
use rt::sys::{self, Slot, ThreadConfig};
use rt::thread::{STACK_PAGES, spawn};

use super::fuzz_calls::{CHILD_CODE, Random, Shadow, slot};
use super::fuzz_partners::{self as partners, call_sandbox, serve_sandbox};
use super::threads::spec;
use super::{PATIENCE, TestResult, check, wait_for, wait_longer};
use crate::env::{Env, INIT_PRIORITY};

/// Calls of the self-test's one seed.
const CALLS: u64 = 100_000;
/// Kernel objects the sandbox may create.
const SANDBOX_ALLOWANCE: u64 = 48;
/// TSC cycles (about a millisecond) a call may block without the fuzzer
/// making progress before init ends it.
const STALL: u64 = 3_000_000;
/// TSC cycles (about 10 s) without a call made before a seed is given up.
const STUCK: u64 = 3 * PATIENCE;
/// System call numbers counted one by one.
const NUMBERS: usize = 70;
const FUZZER_PRIORITY: u8 = INIT_PRIORITY - 1;
/// Init waits at this priority: below the fuzzer (which must run, even on
/// one CPU) and above every thread the fuzzer can start.
const WAITING_PRIORITY: u64 = super::fuzz_calls::THREAD_PRIORITY_LIMIT;

static DONE: AtomicU64 = AtomicU64::new(0);
static CALLS_TO_MAKE: AtomicU64 = AtomicU64::new(0);
/// Calls made so far by the running seed: init's watchdog reads it.
static PROGRESS: AtomicU64 = AtomicU64::new(0);
/// Per system call number (the last entry: any other number), the calls
/// made and the calls refused, summed over the seeds of a campaign.
static MADE: [AtomicU64; NUMBERS + 1] = [const { AtomicU64::new(0) }; NUMBERS + 1];
static REFUSED: [AtomicU64; NUMBERS + 1] = [const { AtomicU64::new(0) }; NUMBERS + 1];
/// Per system call number, the refusals by error code.
static REFUSED_WITH: [[AtomicU64; ERROR_CODES]; NUMBERS + 1] = [const { [const { AtomicU64::new(0) }; ERROR_CODES] }; NUMBERS + 1];
/// Error codes counted (`SysError` runs from 1).
const ERROR_CODES: usize = 17;
/// The fuzzer's IPC buffer, whose capability fields it draws too.
static FUZZER_BUFFER: AtomicU64 = AtomicU64::new(0);

/// What one seed did.
struct Outcome {
    errors: u64,
    /// Blocking calls init ended.
    stalls: u64,
    cycles: u64,
}

/// A system call with six arguments whose every argument register may
/// come back changed (a receive returns its message in them).
fn fuzz_syscall(number: u64, args: [u64; 6]) -> SysResult {
    let (rax, rdx): (u64, u64);
    // SAFETY: `syscall` enters the kernel, which checks every argument;
    // every register it may write is declared an output here.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number => rax,
            inlateout("rdi") args[0] => _,
            inlateout("rsi") args[1] => _,
            inlateout("rdx") args[2] => rdx,
            inlateout("r10") args[3] => _,
            inlateout("r8") args[4] => _,
            inlateout("r9") args[5] => _,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    decode(rax, rdx)
}

extern "C" fn fuzzer(seed: u64) -> ! {
    let mut random = Random(seed | 1);
    let mut shadow = Shadow::new();
    // SAFETY: the spawner gave this thread the buffer it published.
    let buffer = unsafe { ipc::buffer_at(FUZZER_BUFFER.load(Ordering::Acquire)) };
    for _ in 0..CALLS_TO_MAKE.load(Ordering::Acquire) {
        buffer.send_cap = random.next() % (slot::FIRST_FREE + slot::FREE);
        let (recv_slot, (number, args)) = (shadow.landing(&mut random), random.call(&shadow));
        buffer.recv_slot = recv_slot;
        let result = fuzz_syscall(number, args);
        shadow.observe(number, args, recv_slot, result);
        let counted = (number as usize).min(NUMBERS);
        MADE[counted].fetch_add(1, Ordering::Relaxed);
        if let Err(error) = result {
            REFUSED[counted].fetch_add(1, Ordering::Relaxed);
            REFUSED_WITH[counted][(error as usize).min(ERROR_CODES - 1)].fetch_add(1, Ordering::Relaxed);
        }
        PROGRESS.fetch_add(1, Ordering::Release);
    }
    settle();
    DONE.store(1, Ordering::Release);
    sys::thread_exit()
}

/// The fuzzer's last act: every capability it derived or created goes
/// (threads it created with them), and the sandbox's thread is stopped, so
/// that once init deletes the sandbox nothing in it can still run: a thread
/// that runs keeps its table alive, and reclaim looks again only when a
/// reference goes, not when a thread stops later.
fn settle() {
    for fixed in 0..slot::FIRST_FREE {
        let _ = sys::cap_revoke(fixed);
    }
    for free in slot::FIRST_FREE..slot::FIRST_FREE + slot::FREE {
        let _ = sys::cap_delete(free);
    }
    let _ = sys::thread_suspend(slot::THREAD);
}

/// What the sandbox holds (slots in `fuzz_calls::slot`), and the init-side
/// objects that serve it.
struct Sandbox {
    table: Slot,
    /// Init's slots: the endpoints and notification the partners use, the
    /// partners, their landing slots and the capability they hand out.
    partners: [Slot; 10],
}

impl Sandbox {
    /// `code_frame`: the frame of init's range holding [`CHILD_CODE`].
    fn build(env: &Env, code_frame: u64) -> Result<Self, &'static str> {
        let table = env.slots.alloc();
        sys::create(ObjectKind::CSpace, table).map_err(|_| "create sandbox")?;
        crate::system::give_allowance(table, SANDBOX_ALLOWANCE)?;
        let give = |source: Slot, at: u64, rights: Rights| sys::cap_mint_to(source, table, at, rights, 0).map_err(|_| "fill the sandbox");
        let fresh = |kind: ObjectKind, at: u64| {
            let slot = env.slots.alloc();
            let made = sys::create(kind, slot).map_err(|_| "create a sandbox object").and_then(|()| give(slot, at, Rights::ALL));
            env.slots.release(slot);
            made
        };
        fresh(ObjectKind::AddressSpace, slot::SPACE)?;
        fresh(ObjectKind::Thread, slot::THREAD)?;
        fresh(ObjectKind::Endpoint, slot::LONELY)?;
        give(boot_slot::BOOT_IMAGE, slot::BOOT_IMAGE, Rights::READ.union(Rights::DERIVE))?;
        let carve = |first: u64, count: u64, at: u64, rights: Rights| {
            let frames = env.slots.alloc();
            let carved = sys::phys_range_carve(boot_slot::FIRST_RAM, first, count, frames)
                .map_err(|_| "carve the sandbox's frames")
                .and_then(|()| give(frames, at, rights));
            env.slots.release(frames);
            carved
        };
        carve(env.pages.frames(slot::FRAME_COUNT), slot::FRAME_COUNT, slot::FRAMES, Rights::ALL)?;
        carve(code_frame, 1, slot::CODE, Rights::READ.union(Rights::DERIVE))?;
        give(table, slot::TABLE, Rights::ALL)?;
        let partners = [(); 10].map(|()| env.slots.alloc());
        let sandbox = Self { table, partners };
        let [partnered, served, notification, gift, server, server_landing, clients @ ..] = partners;
        for (kind, at) in [(ObjectKind::Endpoint, partnered), (ObjectKind::Endpoint, served), (ObjectKind::Notification, notification)] {
            sys::create(kind, at).map_err(|_| "create a partnered object")?;
        }
        sys::create(ObjectKind::Notification, gift).map_err(|_| "create the gift")?;
        give(partnered, slot::PARTNERED, Rights::ALL)?;
        give(served, slot::SERVED, Rights::ALL)?;
        give(notification, slot::NOTIFICATION, Rights::ALL)?;
        partners::SERVER_LANDING.store(server_landing, Ordering::Release);
        partners::CLIENT_ENDPOINT.store(served, Ordering::Release);
        partners::GIFT.store(gift, Ordering::Release);
        partners::CLIENT_NOTIFICATION.store(notification, Ordering::Release);
        let mut serving = spec(serve_sandbox, partnered, FUZZER_PRIORITY, env.other_cpu());
        serving.ipc_buffer = Some(partners::SERVER_BUFFER.load(Ordering::Acquire));
        spawn(&env.pages, server, serving).map_err(|_| "spawn the partner")?;
        // Two clients: while the fuzzer owes one a reply, the other can call.
        let [client_threads @ .., _, _] = clients;
        let [_, _, client_landings @ ..] = clients;
        for (which, (client, landing)) in client_threads.into_iter().zip(client_landings).enumerate() {
            partners::CLIENT_LANDINGS[which].store(landing, Ordering::Release);
            let mut calling = spec(call_sandbox, which as u64, FUZZER_PRIORITY, env.other_cpu());
            calling.ipc_buffer = Some(partners::CLIENT_BUFFERS[which].load(Ordering::Acquire));
            spawn(&env.pages, client, calling).map_err(|_| "spawn a client")?;
        }
        Ok(sandbox)
    }

    /// Deletes the sandbox, then what served it.
    fn release(self, env: &Env) {
        env.slots.release(self.table);
        for slot in self.partners {
            env.slots.release(slot);
        }
    }
}

const POOLS: [ObjectKind; 9] = [
    ObjectKind::Thread,
    ObjectKind::AddressSpace,
    ObjectKind::CSpace,
    ObjectKind::Endpoint,
    ObjectKind::Notification,
    ObjectKind::PhysRange,
    ObjectKind::IoPorts,
    ObjectKind::Reply,
    ObjectKind::IrqLine,
];

fn accounting() -> [u64; 10] {
    let mut counts = [0; 10];
    for (count, kind) in counts.iter_mut().zip(POOLS) {
        *count = sys::pool_usage(kind).map_or(u64::MAX, |usage| usage.0);
    }
    counts[9] = kernel_frames_outside_init();
    counts
}

/// The kernel's free frames plus the page-table pages of init's own space.
/// Init maps every thread's stack and IPC buffer at fresh addresses (its
/// page source never reuses one), so a spawn may take a new page table
/// there, which stays until init's space dies; that frame was not lost to
/// the sandbox.
fn kernel_frames_outside_init() -> u64 {
    let free = sys::kernel_info(KERNEL_INFO_FREE_FRAMES).unwrap_or(u64::MAX);
    let init_tables = sys::identify(boot_slot::ADDRESS_SPACE).map_or(u64::MAX, |id| id.size);
    free.saturating_add(init_tables)
}

fn refused_so_far() -> u64 {
    REFUSED.iter().map(|count| count.load(Ordering::Relaxed)).sum()
}

/// Init's watch over the fuzzer: the progress last seen, when it was seen
/// or last acted on, when the fuzzer last made progress, and the blocking
/// calls ended.
struct Watch {
    progress: u64,
    seen_at: u64,
    progressed_at: u64,
    stalls: u64,
}

impl Watch {
    /// Ends a call that has blocked for [`STALL`] cycles without the
    /// fuzzer making progress: suspending a blocked thread ends its call
    /// with `BadState`, and resuming lets it go on.
    fn look(&mut self, fuzz: Slot) {
        let (progress, now) = (PROGRESS.load(Ordering::Acquire), super::tsc());
        if progress != self.progress {
            (self.progress, self.seen_at, self.progressed_at) = (progress, now, now);
        } else if now - self.seen_at > STALL && sys::thread_state(fuzz) == Ok(ThreadState::Blocked) {
            let _ = sys::thread_suspend(fuzz);
            let _ = sys::thread_resume(fuzz);
            self.stalls += 1;
            self.seen_at = now;
        }
    }

    /// Whether the fuzzer made no progress for [`STUCK`] cycles.
    fn stuck(&self) -> bool {
        super::tsc() - self.progressed_at > STUCK
    }
}

/// Runs `calls` calls from `seed` in a fresh sandbox; checks that pools
/// and frames are back at the baseline afterwards.
fn fuzz_one(env: &Env, seed: u64, calls: u64) -> Result<Outcome, &'static str> {
    // The threads' stacks and IPC buffers, and the code the fuzzer's
    // threads run, come from init's memory, mapped before the baseline, so
    // only the sandbox is measured.
    let stack = env.pages.alloc(STACK_PAGES).map_err(|_| "stack")?;
    let ipc_buffer = env.pages.alloc(1).map_err(|_| "buffer")?;
    partners::SERVER_BUFFER.store(env.pages.alloc(1).map_err(|_| "buffer")?, Ordering::Release);
    for buffer in &partners::CLIENT_BUFFERS {
        buffer.store(env.pages.alloc(1).map_err(|_| "buffer")?, Ordering::Release);
    }
    FUZZER_BUFFER.store(ipc_buffer, Ordering::Release);
    let code_frame = env.pages.frames(0);
    let code = env.pages.alloc(1).map_err(|_| "code page")?;
    // SAFETY: `code` is a fresh page of init's, mapped writable, CHILD_CODE's length long at least.
    unsafe { core::ptr::copy_nonoverlapping(CHILD_CODE.as_ptr(), code as *mut u8, CHILD_CODE.len()) };
    let baseline = accounting();
    let refused_before = refused_so_far();
    let sandbox = Sandbox::build(env, code_frame)?;
    let fuzz = env.slots.alloc();
    sys::create(ObjectKind::Thread, fuzz).map_err(|_| "create fuzzer")?;
    let config = ThreadConfig {
        space: boot_slot::ADDRESS_SPACE,
        cspace: sandbox.table,
        ipc_buffer,
        fault_endpoint: None,
        priority: FUZZER_PRIORITY,
        cpu: env.other_cpu(),
    };
    sys::thread_configure(fuzz, &config).map_err(|_| "configure fuzzer")?;
    DONE.store(0, Ordering::Release);
    PROGRESS.store(0, Ordering::Release);
    CALLS_TO_MAKE.store(calls, Ordering::Release);
    let stack_top = stack + STACK_PAGES * PAGE_SIZE - 8;
    sys::thread_start(fuzz, fuzzer as *const () as u64, stack_top, seed).map_err(|_| "start fuzzer")?;
    // Block-free waiting at a priority under the fuzzer's lets it run even
    // on one CPU; a yield alone never gives way to a lower priority.
    let start = super::tsc();
    sys::thread_set_priority(boot_slot::THREAD, WAITING_PRIORITY).map_err(|_| "lower priority")?;
    // However slow the host, a run that makes progress is not cut short.
    let mut watch = Watch { progress: 0, seen_at: start, progressed_at: start, stalls: 0 };
    let finished = || DONE.load(Ordering::Acquire) == 1 && sys::thread_state(fuzz) == Ok(ThreadState::Dead);
    let ended = wait_longer(
        || {
            watch.look(fuzz);
            finished() || watch.stuck()
        },
        u64::MAX,
    );
    let finished = ended && finished();
    if !finished {
        rt::println!("syscall_fuzz: no progress after {} of {calls} calls; the fuzzer is {:?}", watch.progress, sys::thread_state(fuzz));
    }
    let stalls = watch.stalls;
    let cycles = super::tsc() - start;
    sys::thread_set_priority(boot_slot::THREAD, u64::from(INIT_PRIORITY)).map_err(|_| "restore priority")?;
    env.slots.release(fuzz);
    sandbox.release(env);
    check(finished, "the fuzzer did not finish")?;
    // Threads of the sandbox that were running on another CPU are reaped
    // at that CPU's next switch.
    wait_for(|| accounting() == baseline);
    let after = accounting();
    if after != baseline {
        rt::println!("syscall_fuzz: pools and free frames before {baseline:?}, after {after:?}");
    }
    check(after == baseline, "kernel pools or frames differ after the sandbox was deleted")?;
    Ok(Outcome { errors: refused_so_far() - refused_before, stalls, cycles })
}

/// System calls that succeeded at least once so far.
fn succeeded() -> impl Iterator<Item = usize> {
    (0..NUMBERS).filter(|&n| MADE[n].load(Ordering::Relaxed) > REFUSED[n].load(Ordering::Relaxed))
}

/// The self-test: one seed.
pub fn run(env: &Env) -> TestResult {
    let outcome = fuzz_one(env, 0x9E37_79B9_7F4A_7C15, CALLS)?;
    rt::println!(
        "syscall_fuzz: {CALLS} random system calls in {} M TSC cycles, {} refused with an error, {} blocking calls ended, {} kinds succeeded",
        outcome.cycles / 1_000_000,
        outcome.errors,
        outcome.stalls,
        succeeded().count()
    );
    // Under half are refused now (96% at first, 65% before the partners
    // and the shadow of the free slots); this guards against decay.
    check(outcome.errors < CALLS / 2, "half the calls or more were refused")
}

/// `cargo xtask fuzz`: every seed of `plan`, with a `[fuzz]` line each,
/// the calls made and refused per system call, and those that succeeded
/// at least once; true if every seed left the pools at their baseline.
pub fn campaign(env: &Env, plan: FuzzPlan) -> bool {
    let mut passed = true;
    for seed in (0..u64::from(plan.seeds)).map(|k| u64::from(plan.seed) + k) {
        match fuzz_one(env, seed, plan.calls) {
            Ok(outcome) => {
                rt::println!(
                    "{FUZZ_MARKER} seed {seed} calls {} refused {} stalls {} pools at baseline",
                    plan.calls,
                    outcome.errors,
                    outcome.stalls
                );
            }
            Err(reason) => {
                passed = false;
                rt::println!("{FUZZ_MARKER} seed {seed} failed: {reason}");
            }
        }
    }
    let (mut unknown_made, mut unknown_refused) = (0, 0);
    for number in 0..=NUMBERS {
        let (made, refused) = (MADE[number].load(Ordering::Relaxed), REFUSED[number].load(Ordering::Relaxed));
        let Ok(sysnum) = Sysnum::try_from(number as u64) else {
            (unknown_made, unknown_refused) = (unknown_made + made, unknown_refused + refused);
            continue;
        };
        if made > 0 {
            let counts = REFUSED_WITH[number].each_ref().map(|count| count.load(Ordering::Relaxed));
            let (code, most) = counts.iter().enumerate().max_by_key(|(_, count)| **count).unwrap_or((0, &0));
            match abi::syscall::SysError::from_code(code as u64).filter(|_| *most > 0) {
                Some(error) => rt::println!("{FUZZ_MARKER} call {sysnum:?} made {made} refused {refused} mostly {error:?} ({most})"),
                None => rt::println!("{FUZZ_MARKER} call {sysnum:?} made {made} refused {refused}"),
            }
        }
    }
    rt::println!("{FUZZ_MARKER} call unknown made {unknown_made} refused {unknown_refused}");
    rt::print!("{FUZZ_MARKER} succeeded");
    for number in succeeded() {
        if let Ok(sysnum) = Sysnum::try_from(number as u64) {
            rt::print!(" {sysnum:?}");
        }
    }
    rt::println!();
    rt::println!("{FUZZ_MARKER} {}", if passed { "done" } else { "FAILED" });
    passed
}
