//! init, the root task. For now it proves the user/kernel boundary: it
//! greets, checks that the kernel refuses bad system-call arguments with the
//! right error codes, and exits. It grows into the starter of the servers.
#![no_std]
#![no_main]

use abi::selftest::MARKER;
use abi::syscall::{DEBUG_WRITE_MAX, SysError, Sysnum, USER_END};
use rt::sys::raw_syscall;

rt::entry!(main);

fn main() -> i32 {
    rt::println!("init: hello from user mode");
    let checks: [(&str, fn() -> bool); 3] = [
        ("user_unknown_syscall", unknown_syscall_is_refused),
        ("user_bad_pointer", bad_pointers_are_refused),
        ("user_bad_length", bad_lengths_are_refused),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        if check() {
            rt::println!("{MARKER} pass {name}");
        } else {
            rt::println!("{MARKER} fail {name}: wrong answer from the kernel");
            failed += 1;
        }
    }
    failed
}

fn unknown_syscall_is_refused() -> bool {
    [0, 3, 999, u64::MAX].into_iter().all(|number| raw_syscall(number, 0, 0, 0) == Err(SysError::UnknownSyscall))
}

fn bad_pointers_are_refused() -> bool {
    let write = Sysnum::DebugWrite as u64;
    let kernel_text = 0xFFFF_FFFF_8010_0000;
    let direct_map = 0xFFFF_8000_0000_0000;
    [
        (kernel_text, 16),
        (direct_map, 16),
        (0, 16),                    // never mapped
        (USER_END - 8, 16),         // runs past the user half
        (u64::MAX - 4, 16),         // wraps around
        (0x7000_0000_0000, 1),      // unmapped, canonical
    ]
    .into_iter()
    .all(|(ptr, len)| raw_syscall(write, ptr, len, 0) == Err(SysError::BadAddress))
}

fn bad_lengths_are_refused() -> bool {
    let text = b"x";
    let write = Sysnum::DebugWrite as u64;
    let too_long = raw_syscall(write, text.as_ptr() as u64, (DEBUG_WRITE_MAX + 1) as u64, 0);
    let empty = raw_syscall(write, text.as_ptr() as u64, 0, 0);
    too_long == Err(SysError::BadLength) && empty == Ok(0)
}
