//! The system-call fuzzer: a thread in a sandbox (its own capability table
//! holding a few objects, no capability to init's address space or threads)
//! makes 100,000 random system calls with random arguments. Afterwards the
//! sandbox is deleted, and every kernel pool and the kernel's free frames
//! must be back where they were: the kernel stayed up and consistent.
//!
//! Calls that would block forever are turned into their non-blocking forms,
//! console writes into `KernelInfo` (random bytes would flood the console),
//! `ThreadExit` into `Yield`, and priorities are kept below the fuzzer's, so
//! a thread the fuzzer starts can never starve it. The sandbox has an
//! allowance of [`SANDBOX_ALLOWANCE`] objects, tables included (cycles of
//! tables are reclaimed with the sandbox).

use core::sync::atomic::{AtomicU64, Ordering};

use abi::cap::{ObjectKind, Rights, ThreadState, boot_slot};
use abi::syscall::{KERNEL_INFO_FREE_FRAMES, OWN_CSPACE, Sysnum};
use rt::mem::PAGE_SIZE;
use rt::sys::{self, ThreadConfig};
use rt::thread::STACK_PAGES;

use super::{PATIENCE, TestResult, check, wait_for, wait_longer};
use crate::env::{Env, INIT_PRIORITY};

const CALLS: u64 = 100_000;
/// Kernel objects the sandbox may create.
const SANDBOX_ALLOWANCE: u64 = 48;
const FUZZER_PRIORITY: u8 = INIT_PRIORITY - 1;
/// Init waits at this priority: below the fuzzer (which must run, even on
/// one CPU) and above every thread the fuzzer can start.
const WAITING_PRIORITY: u64 = 4;
static DONE: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// A small xorshift generator.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A slot, an address, a small number, or any word.
    fn argument(&mut self) -> u64 {
        match self.next() % 6 {
            0 | 1 => self.next() % 12,
            2 => 0x1000_0000 + (self.next() % 4096) * 4096,
            3 => self.next() % 256,
            4 => [0, u64::MAX, OWN_CSPACE, 0xFFFF_8000_0000_0000, 0x7FFF_FFFF_F000][self.next() as usize % 5],
            _ => self.next(),
        }
    }
}

fn tame(number: u64, args: &mut [u64; 6]) -> u64 {
    let Ok(sysnum) = Sysnum::try_from(number) else { return number };
    match sysnum {
        Sysnum::DebugWrite => Sysnum::KernelInfo as u64,
        Sysnum::ThreadExit => Sysnum::Yield as u64,
        Sysnum::Send | Sysnum::Call => Sysnum::NbSend as u64,
        Sysnum::Recv | Sysnum::ReplyRecv => Sysnum::NbRecv as u64,
        Sysnum::Wait => Sysnum::Poll as u64,
        Sysnum::ThreadSetPriority => {
            args[1] %= WAITING_PRIORITY;
            number
        }
        Sysnum::ThreadConfigure => {
            args[5] = (args[5] & !0xFF) | ((args[5] & 0xFF) % WAITING_PRIORITY);
            number
        }
        _ => number,
    }
}

extern "C" fn fuzzer(seed: u64) -> ! {
    let mut random = Random(seed | 1);
    let mut errors = 0;
    for _ in 0..CALLS {
        let number = match random.next() % 10 {
            0 => random.next(),
            _ => random.next() % 64,
        };
        let mut args = [0; 6];
        for arg in &mut args {
            *arg = random.argument();
        }
        let number = tame(number, &mut args);
        if sys::raw_syscall(number, args).is_err() {
            errors += 1;
        }
    }
    ERRORS.store(errors, Ordering::Relaxed);
    DONE.store(1, Ordering::Release);
    sys::thread_exit()
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

pub fn run(env: &Env) -> TestResult {
    // The fuzzer's stack and IPC buffer come from init's memory, mapped
    // before the baseline, so only the sandbox is measured.
    let stack = env.pages.alloc(STACK_PAGES).map_err(|_| "stack")?;
    let ipc_buffer = env.pages.alloc(1).map_err(|_| "buffer")?;
    let baseline = accounting();

    let sandbox = env.slots.alloc();
    sys::create(ObjectKind::CSpace, sandbox).map_err(|_| "create sandbox")?;
    crate::system::give_allowance(sandbox, SANDBOX_ALLOWANCE)?;
    let contents = [
        (ObjectKind::Endpoint, Rights::GRANT.union(Rights::DERIVE)),
        (ObjectKind::Notification, Rights::WRITE.union(Rights::DERIVE)),
        (ObjectKind::AddressSpace, Rights::ALL),
        (ObjectKind::Thread, Rights::ALL),
    ];
    for (index, (kind, rights)) in contents.into_iter().enumerate() {
        let slot = env.slots.alloc();
        sys::create(kind, slot).map_err(|_| "create sandbox object")?;
        sys::cap_mint_to(slot, sandbox, index as u64, rights, 0).map_err(|_| "fill sandbox")?;
        env.slots.release(slot);
    }
    sys::cap_mint_to(boot_slot::BOOT_IMAGE, sandbox, 4, Rights::READ.union(Rights::DERIVE), 0).map_err(|_| "image")?;

    let fuzz = env.slots.alloc();
    sys::create(ObjectKind::Thread, fuzz).map_err(|_| "create fuzzer")?;
    let config = ThreadConfig {
        space: boot_slot::ADDRESS_SPACE,
        cspace: sandbox,
        ipc_buffer,
        fault_endpoint: None,
        priority: FUZZER_PRIORITY,
        cpu: env.other_cpu(),
    };
    sys::thread_configure(fuzz, &config).map_err(|_| "configure fuzzer")?;
    let stack_top = stack + STACK_PAGES * PAGE_SIZE - 8;
    sys::thread_start(fuzz, fuzzer as *const () as u64, stack_top, 0x9E37_79B9_7F4A_7C15).map_err(|_| "start fuzzer")?;
    // Block-free waiting at a priority under the fuzzer's lets it run even
    // on one CPU; a yield alone never gives way to a lower priority.
    let start = super::tsc();
    sys::thread_set_priority(boot_slot::THREAD, WAITING_PRIORITY).map_err(|_| "lower priority")?;
    let finished = wait_longer(|| DONE.load(Ordering::Acquire) == 1 && sys::thread_state(fuzz) == Ok(ThreadState::Dead), 20 * PATIENCE);
    let cycles = super::tsc() - start;
    sys::thread_set_priority(boot_slot::THREAD, u64::from(INIT_PRIORITY)).map_err(|_| "restore priority")?;
    env.slots.release(fuzz);
    env.slots.release(sandbox);
    check(finished, "the fuzzer did not finish")?;
    rt::println!(
        "syscall_fuzz: {CALLS} random system calls in {} M TSC cycles, {} refused with an error",
        cycles / 1_000_000,
        ERRORS.load(Ordering::Relaxed)
    );
    // Threads of the sandbox that were running on another CPU are reaped
    // at that CPU's next switch.
    wait_for(|| accounting() == baseline);
    let after = accounting();
    if after != baseline {
        rt::println!("syscall_fuzz: pools and free frames before {baseline:?}, after {after:?}");
    }
    check(after == baseline, "kernel pools or frames differ after the sandbox was deleted")
}
