//! The user runtime every program links: the entry point ([`entry!`]),
//! typed system-call wrappers ([`sys`]), IPC clients and server loops
//! ([`ipc`]), memory and threads of its own ([`mem`], [`thread`]), a heap
//! ([`heap`]), console printing, and a panic handler that reports and exits.
#![no_std]

extern crate alloc;

pub mod client;
pub mod clock;
pub mod console;
mod fork;
pub mod heap;
pub mod ipc;
pub mod mem;
pub mod proc;
pub mod process;
pub mod sys;
pub mod thread;

/// Declares the program's `main`, run by the entry point with the three
/// start registers (`rdi`, `rsi`, `rdx`) its creator set.
///
/// ```ignore
/// rt::entry!(main);
/// fn main(args: rt::StartArgs) -> ! { rt::println!("hello"); rt::sys::thread_exit() }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn _start(arg0: u64, arg1: u64, arg2: u64) -> ! {
            let main: fn($crate::StartArgs) -> ! = $main;
            $crate::proc::note_start(arg1);
            main($crate::StartArgs([arg0, arg1, arg2]))
        }
    };
}

/// The start registers: for a process, its pid, `abi::process::START_MAGIC`
/// and the argument of Spawn or Exec; for init, the number of RAM PhysRanges, the flags
/// (`abi::selftest::INIT_FLAG_SELFTEST`), and its IPC buffer's address.
#[derive(Clone, Copy, Debug)]
pub struct StartArgs(pub [u64; 3]);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("user panic: {info}");
    proc::exit_after_panic();
    sys::thread_exit()
}
