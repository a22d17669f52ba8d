//! The kernel's pools are sized from RAM: each reports the capacity its
//! rule (`abi::cap::PoolSize`) gives for the usable RAM the kernel saw,
//! and that capacity is real (the address-space pool fills to it, past
//! the 32 spaces of the fixed pools of before, and empties again).

use alloc::vec::Vec;

use abi::cap::ObjectKind;
use abi::syscall::{KERNEL_INFO_USABLE_FRAMES, SysError};
use rt::sys;

use super::{TestResult, check};
use crate::env::Env;

/// The kinds whose pools the kernel sizes, in the order printed.
const KINDS: [(ObjectKind, &str); 9] = [
    (ObjectKind::Thread, "threads"),
    (ObjectKind::AddressSpace, "spaces"),
    (ObjectKind::CSpace, "tables"),
    (ObjectKind::Endpoint, "endpoints"),
    (ObjectKind::Notification, "notifications"),
    (ObjectKind::Reply, "replies"),
    (ObjectKind::PhysRange, "ranges"),
    (ObjectKind::IrqLine, "irq lines"),
    (ObjectKind::IoPorts, "port ranges"),
];

/// The capacity the rule gives `kind` for `mib` MiB of usable RAM.
fn expected(kind: ObjectKind, mib: u64) -> u64 {
    let rule = kind.pool_size();
    mib.checked_div(rule.mib_per_object).unwrap_or(0).max(rule.floor).min(rule.ceiling)
}

pub fn sized_from_ram(env: &Env) -> TestResult {
    let frames = sys::kernel_info(KERNEL_INFO_USABLE_FRAMES).map_err(|_| "KernelInfo has no usable RAM figure")?;
    let mib = frames >> 8;
    rt::print!("[pools] {mib} MiB usable:");
    let mut all_match = true;
    for (kind, name) in KINDS {
        let (_, capacity) = sys::pool_usage(kind).map_err(|_| "usage")?;
        rt::print!(" {capacity} {name}");
        all_match &= capacity == expected(kind, mib);
    }
    rt::println!();
    check(all_match, "a pool's capacity is not what its rule gives for this RAM")?;
    fill_spaces(env)
}

/// Creates address spaces until the pool is full; all must fit, then go.
fn fill_spaces(env: &Env) -> TestResult {
    let (before, capacity) = sys::pool_usage(ObjectKind::AddressSpace).map_err(|_| "usage")?;
    let mut created = Vec::new();
    let outcome = loop {
        let slot = env.slots.alloc();
        match sys::create(ObjectKind::AddressSpace, slot) {
            Ok(()) => created.push(slot),
            Err(error) => {
                env.slots.release(slot);
                break error;
            }
        }
    };
    let full = sys::pool_usage(ObjectKind::AddressSpace).map(|u| u.0);
    for &slot in &created {
        env.slots.release(slot);
    }
    check(outcome == SysError::OutOfKernelMemory, "filling the space pool did not end with OutOfKernelMemory")?;
    check(created.len() as u64 == capacity - before && full == Ok(capacity), "the space pool did not fill to its capacity")?;
    check(sys::pool_usage(ObjectKind::AddressSpace).map(|u| u.0) == Ok(before), "deleted spaces did not return to the pool")
}
