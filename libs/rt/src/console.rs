//! `print!` and `println!` for user programs, over the console system call.
//! Output is formatted into a bounded line buffer, so one `println!` is one
//! system call.

use core::fmt::Write;

use abi::syscall::DEBUG_WRITE_MAX;

struct LineBuffer {
    bytes: [u8; 512],
    len: usize,
}

impl LineBuffer {
    fn flush(&mut self) {
        let _ = crate::sys::debug_write(&self.bytes[..self.len]);
        self.len = 0;
    }
}

impl Write for LineBuffer {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        for chunk in text.as_bytes().chunks(self.bytes.len().min(DEBUG_WRITE_MAX)) {
            if self.len + chunk.len() > self.bytes.len() {
                self.flush();
            }
            self.bytes[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

pub fn print(args: core::fmt::Arguments) {
    let mut buffer = LineBuffer { bytes: [0; 512], len: 0 };
    let _ = buffer.write_fmt(args);
    buffer.flush();
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
