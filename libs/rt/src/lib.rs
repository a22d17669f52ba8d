//! The user runtime every program links: the entry point ([`entry!`]),
//! typed system-call wrappers ([`sys`]), console printing, and a panic
//! handler that reports and exits.
#![no_std]

pub mod console;
pub mod sys;

/// Declares the program's `main`, run by the entry point; its return value
/// is the exit status.
///
/// ```ignore
/// rt::entry!(main);
/// fn main() -> i32 { rt::println!("hello"); 0 }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn _start() -> ! {
            let main: fn() -> i32 = $main;
            $crate::sys::exit(main())
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("user panic: {info}");
    sys::exit(101)
}
