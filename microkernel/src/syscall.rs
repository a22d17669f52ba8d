//! The portable system-call dispatcher: decodes the number, checks every
//! argument, and never trusts a user pointer or length.

use abi::syscall::{DEBUG_WRITE_MAX, SysError, SysResult, Sysnum};

use crate::arch::{self, UserExit};
use crate::uaccess;

/// Handles system call `number` with its six argument registers.
pub fn dispatch(number: u64, args: [u64; 6]) -> SysResult {
    match Sysnum::try_from(number)? {
        Sysnum::DebugWrite => debug_write(args[0], args[1]),
        Sysnum::Exit => arch::leave_user(UserExit::Exited(args[0] as u32 as i32)),
    }
}

fn debug_write(ptr: u64, len: u64) -> SysResult {
    if len > DEBUG_WRITE_MAX as u64 {
        return Err(SysError::BadLength);
    }
    let mut buffer = [0u8; DEBUG_WRITE_MAX];
    let bytes = &mut buffer[..len as usize];
    uaccess::copy_from_user(ptr, bytes)?;
    for chunk in bytes.utf8_chunks() {
        crate::print!("{}", chunk.valid());
        if !chunk.invalid().is_empty() {
            crate::print!("\u{FFFD}");
        }
    }
    Ok(len)
}
