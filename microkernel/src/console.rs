//! `print!` and `println!` for the kernel, over the architecture's console.

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::arch::console_write(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::arch::console_write(format_args!("{}\n", format_args!($($arg)*))) };
}
