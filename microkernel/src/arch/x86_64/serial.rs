//! The serial ports: COM1, the kernel console, and COM2, where the IPC trace
//! leaves the machine. Writers hold a spin lock with interrupts off, so an
//! interrupt handler that prints cannot deadlock against its own CPU.

use core::fmt::Write;

use uart_16550::SerialPort;
use x86_64::instructions::interrupts::without_interrupts;

const COM1: u16 = 0x3F8;
const COM2: u16 = 0x2F8;

// SAFETY: COM1 is the standard first serial port; nothing else drives it.
static PORT: spin::Mutex<SerialPort> = spin::Mutex::new(unsafe { SerialPort::new(COM1) });

// SAFETY: COM2 is the standard second serial port; only the trace drain drives it.
static TRACE_PORT: spin::Mutex<SerialPort> = spin::Mutex::new(unsafe { SerialPort::new(COM2) });

pub fn init() {
    PORT.lock().init();
    TRACE_PORT.lock().init();
}

/// Writes raw bytes to COM2.
pub fn write_trace(bytes: &[u8]) {
    without_interrupts(|| {
        let mut port = TRACE_PORT.lock();
        for &byte in bytes {
            port.send_raw(byte);
        }
    });
}

pub fn write_fmt(args: core::fmt::Arguments) {
    without_interrupts(|| {
        // Serial output cannot fail; a formatting error only truncates the line.
        let _ = PORT.lock().write_fmt(args);
    });
}

/// Writes even if another CPU died holding the lock (for panic reports).
pub fn write_fmt_forced(args: core::fmt::Arguments) {
    without_interrupts(|| {
        for _ in 0..1_000_000 {
            if let Some(mut port) = PORT.try_lock() {
                let _ = port.write_fmt(args);
                return;
            }
            core::hint::spin_loop();
        }
        // SAFETY: the lock holder is stuck; a second handle to the same UART
        // may interleave bytes but cannot do worse.
        let mut port = unsafe { SerialPort::new(COM1) };
        let _ = port.write_fmt(args);
    });
}
