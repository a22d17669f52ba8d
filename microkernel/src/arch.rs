//! The architecture facade: the portable kernel names only what this module
//! exports. Each architecture module defines the same names.

#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;
