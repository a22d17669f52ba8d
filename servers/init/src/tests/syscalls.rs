//! The system-call boundary: unknown numbers, bad pointers and bad lengths
//! get their error codes.

use abi::syscall::{DEBUG_WRITE_MAX, SysError, Sysnum, USER_END};
use rt::sys::raw_syscall;

use super::{TestResult, check};
use crate::env::Env;

pub fn unknown_syscall(_: &Env) -> TestResult {
    let refused = [0, 5, 999, u64::MAX].into_iter().all(|n| raw_syscall(n, [0; 6]) == Err(SysError::UnknownSyscall));
    check(refused, "an unknown system call number was not refused")
}

pub fn bad_pointer(_: &Env) -> TestResult {
    let write = Sysnum::DebugWrite as u64;
    let refused = [
        (0xFFFF_FFFF_8010_0000, 16), // kernel text
        (0xFFFF_8000_0000_0000, 16), // direct map
        (0, 16),                     // never mapped
        (USER_END - 8, 16),          // runs past the user half
        (u64::MAX - 4, 16),          // wraps around
        (0x7000_0000_0000, 1),       // canonical, unmapped
    ]
    .into_iter()
    .all(|(ptr, len)| raw_syscall(write, [ptr, len, 0, 0, 0, 0]) == Err(SysError::BadAddress));
    check(refused, "a bad pointer was not refused with BadAddress")
}

/// The heap: vectors, boxes and strings, and memory that comes back.
pub fn heap(_: &Env) -> TestResult {
    extern crate alloc;
    use alloc::{boxed::Box, format, vec::Vec};
    let (used_before, _) = rt::heap::usage();
    {
        let squares: Vec<u64> = (0..10_000).map(|i| i * i).collect();
        let boxed = Box::new([7u8; 4096]);
        let text = format!("{} {}", squares[9_999], boxed.iter().map(|&b| u64::from(b)).sum::<u64>());
        check(text == "99980001 28672", "heap values are wrong")?;
    }
    check(rt::heap::usage().0 == used_before, "freed memory did not return to the heap")
}

pub fn bad_length(_: &Env) -> TestResult {
    let text = b"x";
    let write = Sysnum::DebugWrite as u64;
    let too_long = raw_syscall(write, [text.as_ptr() as u64, (DEBUG_WRITE_MAX + 1) as u64, 0, 0, 0, 0]);
    let empty = raw_syscall(write, [text.as_ptr() as u64, 0, 0, 0, 0, 0]);
    check(too_long == Err(SysError::BadLength) && empty == Ok(0), "lengths were not checked")
}
