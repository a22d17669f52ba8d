//! The rights matrix: for every object type, each operation through a
//! capability that lacks exactly the right it needs is refused with
//! `NoRight` (and nothing else). The capability is a mint of a full one
//! with every right but that one. (Reply capabilities are checked by
//! `reply_object`: one exists only while a caller waits.)

use abi::cap::{ObjectKind, Rights, boot_slot};
use abi::syscall::{SysError, Sysnum};
use rt::ipc::{self, Message};
use rt::sys::{self, Slot};

use super::TestResult;
use crate::env::Env;

/// One row: what is tried, the right taken away, and the operation tried
/// through the weakened capability.
type Row = (&'static str, Right, fn(Slot) -> Result<u64, SysError>);

#[derive(Clone, Copy)]
enum Right {
    Read,
    Write,
    Derive,
}

impl Right {
    fn rights(self) -> Rights {
        match self {
            Self::Read => Rights::READ,
            Self::Write => Rights::WRITE,
            Self::Derive => Rights::DERIVE,
        }
    }
}

fn raw(number: Sysnum, args: [u64; 6]) -> Result<u64, SysError> {
    sys::raw_syscall(number as u64, args)
}

const SCRATCH: u64 = 0x0000_0F00_0000_0000;

const ENDPOINT: [Row; 3] = [
    ("endpoint send", Right::Write, |c| ipc::nb_send(c, Message::default()).map(|()| 0)),
    ("endpoint receive", Right::Read, |c| ipc::nb_recv(c).map(|_| 0)),
    ("endpoint copy", Right::Derive, |c| raw(Sysnum::CapCopy, [c, u64::MAX, 250, 0, 0, 0])),
];
const NOTIFICATION: [Row; 3] = [
    ("notification signal", Right::Write, |c| ipc::signal(c, 1).map(|()| 0)),
    ("notification poll", Right::Read, |c| ipc::poll(c)),
    ("notification revoke", Right::Derive, |c| sys::cap_revoke(c)),
];
const THREAD: [Row; 3] = [
    ("thread suspend", Right::Write, |c| sys::thread_suspend(c).map(|()| 0)),
    ("thread priority", Right::Write, |c| sys::thread_set_priority(c, 1).map(|()| 0)),
    ("thread state", Right::Read, |c| sys::thread_state(c).map(|s| s as u64)),
];
const SPACE: [Row; 5] = [
    ("space unmap", Right::Write, |c| sys::unmap(c, SCRATCH, 1)),
    ("space remap", Right::Write, |c| sys::remap(c, boot_slot::BOOT_IMAGE, 0, SCRATCH, Rights::READ).map(|()| 0)),
    ("space protect", Right::Write, |c| sys::protect(c, SCRATCH, 1, Rights::READ)),
    ("space map", Right::Write, |c| sys::map_batch(c, boot_slot::BOOT_IMAGE, 0, SCRATCH, 1, Rights::READ)),
    ("space query", Right::Read, |c| sys::query(c, SCRATCH).map(|(a, _)| a)),
];
const TABLE: [Row; 3] = [
    ("table as copy target", Right::Write, |c| raw(Sysnum::CapCopy, [boot_slot::BOOT_IMAGE, c, 1, 0, 0, 0])),
    ("table allowance", Right::Write, |c| raw(Sysnum::Allowance, [c, 0, 0, 0, 0, 0])),
    ("table restrict", Right::Write, |c| raw(Sysnum::TableRestrict, [c, 0, 0, 0, 0, 0])),
];
const RANGE: [Row; 5] = [
    ("range remap", Right::Read, |c| sys::remap(boot_slot::ADDRESS_SPACE, c, 0, SCRATCH, Rights::READ).map(|()| 0)),
    ("range remap writable", Right::Write, |c| {
        sys::remap(boot_slot::ADDRESS_SPACE, c, 0, SCRATCH, Rights::READ.union(Rights::WRITE)).map(|()| 0)
    }),
    ("range map", Right::Read, |c| sys::map_batch(boot_slot::ADDRESS_SPACE, c, 0, SCRATCH, 1, Rights::READ)),
    ("range map writable", Right::Write, |c| sys::map_batch(boot_slot::ADDRESS_SPACE, c, 0, SCRATCH, 1, Rights::READ.union(Rights::WRITE))),
    ("range carve", Right::Derive, |c| raw(Sysnum::PhysRangeCarve, [c, 0, 1, 250, 0, 0])),
];
const PORTS: [Row; 2] = [
    ("ports in", Right::Read, |c| sys::port_in(c, 0x3F8 + 5, 1)),
    ("ports out", Right::Write, |c| sys::port_out(c, 0x3F8 + 7, 1, 0).map(|()| 0)),
];
const IRQ: [Row; 2] = [
    ("irq bind", Right::Write, |c| sys::irq_bind(c, boot_slot::CSPACE, 1).map(|()| 0)),
    ("irq ack", Right::Write, |c| sys::irq_ack(c).map(|()| 0)),
];

/// Checks every row against a weakened mint of `full`.
fn rows(env: &Env, full: Slot, rows: &[Row]) -> TestResult {
    for &(what, right, operation) in rows {
        let weak = env.slots.alloc();
        let keep = Rights(Rights::ALL.0 & !right.rights().0);
        let result = sys::cap_mint(full, weak, keep, 0).map_err(|_| what).map(|()| operation(weak));
        env.slots.release(weak);
        if result? != Err(SysError::NoRight) {
            rt::println!("cap_rights_matrix: {what} without its right was not refused with NoRight");
            return Err(what);
        }
    }
    Ok(())
}

pub fn matrix(env: &Env) -> TestResult {
    let (ep, ntfn, thread, table, range) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    let made = sys::create(ObjectKind::Endpoint, ep)
        .and_then(|()| sys::create(ObjectKind::Notification, ntfn))
        .and_then(|()| sys::create(ObjectKind::Thread, thread))
        .and_then(|()| sys::create(ObjectKind::CSpace, table))
        .and_then(|()| sys::phys_range_carve(boot_slot::FIRST_RAM, env.pages.frames(1), 1, range));
    let outcome = made.map_err(|_| "create the objects").and_then(|()| {
        rows(env, ep, &ENDPOINT)?;
        rows(env, ntfn, &NOTIFICATION)?;
        rows(env, thread, &THREAD)?;
        rows(env, boot_slot::ADDRESS_SPACE, &SPACE)?;
        rows(env, table, &TABLE)?;
        rows(env, range, &RANGE)?;
        rows(env, boot_slot::CONSOLE_PORTS, &PORTS)?;
        rows(env, boot_slot::PIT_IRQ, &IRQ)
    });
    for slot in [ep, ntfn, thread, table, range] {
        env.slots.release(slot);
    }
    outcome
}
