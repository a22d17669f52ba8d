//! The system-call fuzzer: a thread in a sandbox (its own capability table
//! holding a few objects, a table capability to itself, an address space
//! of its own and frames it may map there; no capability to init's space
//! or threads) makes random system calls (drawn by `fuzz_calls`), while a
//! partner thread answers its calls and sends, replies with a capability,
//! and kills the threads it starts when they fault. Afterwards the sandbox
//! is deleted, and every kernel pool and the kernel's free frames must be
//! back where they were: the kernel stayed up and consistent.
//!
//! The self-test runs one seed of 100,000 calls; `cargo xtask fuzz` boots
//! into a campaign of several seeds (`abi::selftest::FuzzPlan`) and reads
//! its `[fuzz]` lines: per seed the calls refused, and which system calls
//! succeeded at least once.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, Rights, ThreadState, boot_slot};
use abi::msg::kernel_label;
use abi::selftest::{FUZZ_MARKER, FuzzPlan};
use abi::syscall::{KERNEL_INFO_FREE_FRAMES, Sysnum};
use rt::ipc::{self, Message};
use rt::mem::PAGE_SIZE;
use rt::sys::{self, Slot, ThreadConfig};
use rt::thread::{STACK_PAGES, spawn};

use super::fuzz_calls::{Random, slot};
use super::threads::spec;
use super::{PATIENCE, TestResult, check, wait_for, wait_longer};
use crate::env::{Env, INIT_PRIORITY};

/// Calls of the self-test's one seed.
const CALLS: u64 = 100_000;
/// Kernel objects the sandbox may create.
const SANDBOX_ALLOWANCE: u64 = 48;
const FUZZER_PRIORITY: u8 = INIT_PRIORITY - 1;
/// Init waits at this priority: below the fuzzer (which must run, even on
/// one CPU) and above every thread the fuzzer can start.
const WAITING_PRIORITY: u64 = super::fuzz_calls::THREAD_PRIORITY_LIMIT;

static DONE: AtomicU64 = AtomicU64::new(0);
static CALLS_TO_MAKE: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);
/// Bit n: system call n succeeded at least once.
static SUCCEEDED: AtomicU64 = AtomicU64::new(0);
/// The fuzzer's IPC buffer, whose capability fields it draws too.
static FUZZER_BUFFER: AtomicU64 = AtomicU64::new(0);

/// What one seed did.
struct Outcome {
    errors: u64,
    succeeded: u64,
    cycles: u64,
}

extern "C" fn fuzzer(seed: u64) -> ! {
    let mut random = Random(seed | 1);
    // SAFETY: the spawner gave this thread the buffer it published.
    let buffer = unsafe { ipc::buffer_at(FUZZER_BUFFER.load(Ordering::Acquire)) };
    let (mut errors, mut succeeded) = (0, 0u64);
    for _ in 0..CALLS_TO_MAKE.load(Ordering::Acquire) {
        buffer.send_cap = random.next() % (slot::FIRST_FREE + 8);
        buffer.recv_slot = slot::FIRST_FREE + random.next() % 8;
        let (number, args) = random.call();
        match sys::raw_syscall(number, args) {
            Ok(_) => succeeded |= 1u64.checked_shl(number as u32).unwrap_or(0),
            Err(_) => errors += 1,
        }
    }
    ERRORS.store(errors, Ordering::Relaxed);
    SUCCEEDED.store(succeeded, Ordering::Relaxed);
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
    for free in slot::FIRST_FREE..slot::FIRST_FREE + 8 {
        let _ = sys::cap_delete(free);
    }
    let _ = sys::thread_suspend(slot::THREAD);
}

/// The partner's landing slot for capabilities the fuzzer sends, and the
/// capability it offers in replies.
static PARTNER_LANDING: AtomicU64 = AtomicU64::new(0);
static PARTNER_GIFT: AtomicU64 = AtomicU64::new(0);
static PARTNER_BUFFER: AtomicU64 = AtomicU64::new(0);

/// Serves the partnered endpoint: answers calls (with a capability every
/// other time), drops what it was sent, kills faulting threads.
extern "C" fn serve_sandbox(ep: u64) -> ! {
    // SAFETY: the spawner gave this thread the buffer it published.
    let buffer = unsafe { ipc::buffer_at(PARTNER_BUFFER.load(Ordering::Acquire)) };
    let landing = PARTNER_LANDING.load(Ordering::Acquire);
    buffer.recv_slot = landing;
    buffer.send_cap = PARTNER_GIFT.load(Ordering::Acquire);
    let mut count = 0u64;
    let mut received = ipc::recv(ep);
    loop {
        let _ = sys::cap_delete(landing);
        count += 1;
        let answer = match received {
            Ok(r) if r.msg.label() == kernel_label::FAULT => Message::new(1, [0; 4]),
            Ok(r) => Message::with_payload(r.msg.label(), r.msg.mrs, 0, count.is_multiple_of(2)),
            Err(_) => Message::default(),
        };
        received = ipc::reply_recv(ep, answer);
    }
}

/// What the sandbox holds (slots in `fuzz_calls::slot`), and the init-side
/// objects that serve it.
struct Sandbox {
    table: Slot,
    partnered: Slot,
    partner: Slot,
    landing: Slot,
    gift: Slot,
}

impl Sandbox {
    fn build(env: &Env) -> Result<Self, &'static str> {
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
        fresh(ObjectKind::Notification, slot::NOTIFICATION)?;
        fresh(ObjectKind::AddressSpace, slot::SPACE)?;
        fresh(ObjectKind::Thread, slot::THREAD)?;
        fresh(ObjectKind::Endpoint, slot::LONELY)?;
        give(boot_slot::BOOT_IMAGE, slot::BOOT_IMAGE, Rights::READ.union(Rights::DERIVE))?;
        let frames = env.slots.alloc();
        let carved = sys::phys_range_carve(boot_slot::FIRST_RAM, env.pages.frames(slot::FRAME_COUNT), slot::FRAME_COUNT, frames)
            .map_err(|_| "carve the sandbox's frames")
            .and_then(|()| give(frames, slot::FRAMES, Rights::ALL));
        env.slots.release(frames);
        carved?;
        give(table, slot::TABLE, Rights::ALL)?;
        let (partnered, partner, landing, gift) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
        sys::create(ObjectKind::Endpoint, partnered).map_err(|_| "create the partnered endpoint")?;
        sys::create(ObjectKind::Notification, gift).map_err(|_| "create the gift")?;
        give(partnered, slot::PARTNERED, Rights::ALL)?;
        let sandbox = Self { table, partnered, partner, landing, gift };
        PARTNER_LANDING.store(landing, Ordering::Release);
        PARTNER_GIFT.store(gift, Ordering::Release);
        let mut serving = spec(serve_sandbox, partnered, FUZZER_PRIORITY, env.other_cpu());
        serving.ipc_buffer = Some(PARTNER_BUFFER.load(Ordering::Acquire));
        spawn(&env.pages, sandbox.partner, serving).map_err(|_| "spawn the partner")?;
        Ok(sandbox)
    }

    /// Deletes the sandbox, then what served it.
    fn release(self, env: &Env) {
        env.slots.release(self.table);
        for slot in [self.partner, self.partnered, self.landing, self.gift] {
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
    counts[9] = sys::kernel_info(KERNEL_INFO_FREE_FRAMES).unwrap_or(u64::MAX);
    counts
}

/// Runs `calls` calls from `seed` in a fresh sandbox; checks that pools
/// and frames are back at the baseline afterwards.
fn fuzz_one(env: &Env, seed: u64, calls: u64) -> Result<Outcome, &'static str> {
    // The threads' stacks and IPC buffers come from init's memory, mapped
    // before the baseline, so only the sandbox is measured.
    let stack = env.pages.alloc(STACK_PAGES).map_err(|_| "stack")?;
    let ipc_buffer = env.pages.alloc(1).map_err(|_| "buffer")?;
    PARTNER_BUFFER.store(env.pages.alloc(1).map_err(|_| "buffer")?, Ordering::Release);
    FUZZER_BUFFER.store(ipc_buffer, Ordering::Release);
    let baseline = accounting();
    let sandbox = Sandbox::build(env)?;
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
    CALLS_TO_MAKE.store(calls, Ordering::Release);
    let stack_top = stack + STACK_PAGES * PAGE_SIZE - 8;
    sys::thread_start(fuzz, fuzzer as *const () as u64, stack_top, seed).map_err(|_| "start fuzzer")?;
    // Block-free waiting at a priority under the fuzzer's lets it run even
    // on one CPU; a yield alone never gives way to a lower priority.
    let start = super::tsc();
    sys::thread_set_priority(boot_slot::THREAD, WAITING_PRIORITY).map_err(|_| "lower priority")?;
    let patience = 20 * PATIENCE * calls.div_ceil(CALLS);
    let finished = wait_longer(|| DONE.load(Ordering::Acquire) == 1 && sys::thread_state(fuzz) == Ok(ThreadState::Dead), patience);
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
    Ok(Outcome { errors: ERRORS.load(Ordering::Relaxed), succeeded: SUCCEEDED.load(Ordering::Relaxed), cycles })
}

/// The self-test: one seed.
pub fn run(env: &Env) -> TestResult {
    let outcome = fuzz_one(env, 0x9E37_79B9_7F4A_7C15, CALLS)?;
    rt::println!(
        "syscall_fuzz: {CALLS} random system calls in {} M TSC cycles, {} refused with an error, {} kinds succeeded",
        outcome.cycles / 1_000_000,
        outcome.errors,
        outcome.succeeded.count_ones()
    );
    // About 62% are refused now (96% before the calls were drawn well
    // formed); the goal of under half is not reached yet. This guards
    // against the drawing decaying.
    check(outcome.errors < CALLS * 3 / 4, "more than three calls in four were refused")
}

/// `cargo xtask fuzz`: every seed of `plan`, with a `[fuzz]` line each and
/// the system calls that succeeded at least once; true if every seed left
/// the pools at their baseline.
pub fn campaign(env: &Env, plan: FuzzPlan) -> bool {
    let mut succeeded = 0u64;
    let mut passed = true;
    for seed in (0..u64::from(plan.seeds)).map(|k| u64::from(plan.seed) + k) {
        match fuzz_one(env, seed, plan.calls) {
            Ok(outcome) => {
                succeeded |= outcome.succeeded;
                rt::println!("{FUZZ_MARKER} seed {seed} calls {} refused {} pools at baseline", plan.calls, outcome.errors);
            }
            Err(reason) => {
                passed = false;
                rt::println!("{FUZZ_MARKER} seed {seed} failed: {reason}");
            }
        }
    }
    rt::print!("{FUZZ_MARKER} succeeded");
    for number in (0..64).filter(|n| succeeded & 1 << n != 0) {
        if let Ok(sysnum) = Sysnum::try_from(number) {
            rt::print!(" {sysnum:?}");
        }
    }
    rt::println!();
    rt::println!("{FUZZ_MARKER} {}", if passed { "done" } else { "FAILED" });
    passed
}
