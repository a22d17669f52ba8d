//! The kernel's ABI: the one place where numbers shared across the user/kernel
//! boundary, or between the guest and the host tools, are defined.
//!
//! Kernel, user programs and host tools all depend on this crate; nothing else
//! defines these numbers. It is `no_std`, has no dependencies and no logic
//! beyond conversions.
#![no_std]

pub mod cap;
pub mod cow;
pub mod exit;
pub mod msg;
pub mod process;
pub mod selftest;
pub mod syscall;
pub mod workload;
