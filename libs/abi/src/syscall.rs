//! System calls: their numbers, their error codes, and the register
//! convention.
//!
//! Convention (x86_64 `syscall`): number in `rax`; arguments in `rdi`, `rsi`,
//! `rdx`, `r10`, `r8`, `r9`; the kernel returns a [`SysResult`] word in `rax`
//! (0 for success, else an [`SysError`] code) and a value in `rdx`. `rcx` and
//! `r11` are clobbered by the instruction itself.

/// Every system call the kernel knows. Numbers never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Sysnum {
    /// Write bytes to the kernel console: `(ptr, len)`, at most [`DEBUG_WRITE_MAX`].
    DebugWrite = 1,
    /// End the calling thread's address space with `(status)`. Does not return.
    Exit = 2,
}

impl TryFrom<u64> for Sysnum {
    type Error = SysError;

    fn try_from(number: u64) -> Result<Self, SysError> {
        match number {
            1 => Ok(Self::DebugWrite),
            2 => Ok(Self::Exit),
            _ => Err(SysError::UnknownSyscall),
        }
    }
}

/// Longest single console write, in bytes.
pub const DEBUG_WRITE_MAX: usize = 4096;

/// Why a system call failed. `0` is success and never an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum SysError {
    /// No system call has this number.
    UnknownSyscall = 1,
    /// A pointer argument names memory the caller may not read or write.
    BadAddress = 2,
    /// A length or count is out of range.
    BadLength = 3,
}

impl SysError {
    pub const fn code(self) -> u64 {
        self as u64
    }

    pub fn from_code(code: u64) -> Option<Self> {
        [Self::UnknownSyscall, Self::BadAddress, Self::BadLength].into_iter().find(|e| e.code() == code)
    }
}

/// What the kernel puts in `rax`: success, or an error code.
pub type SysResult = Result<u64, SysError>;

/// Encodes a result as the `(rax, rdx)` pair the kernel returns.
pub const fn encode(result: SysResult) -> (u64, u64) {
    match result {
        Ok(value) => (0, value),
        Err(error) => (error.code(), 0),
    }
}

/// Decodes the `(rax, rdx)` pair; an unknown error code reads as `UnknownSyscall`.
pub fn decode(rax: u64, rdx: u64) -> SysResult {
    match rax {
        0 => Ok(rdx),
        code => Err(SysError::from_code(code).unwrap_or(SysError::UnknownSyscall)),
    }
}

/// Highest user address, exclusive. The last page of the lower half stays
/// unmapped so a `syscall` can never return to a non-canonical address.
pub const USER_END: u64 = 0x0000_7FFF_FFFF_F000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_codes_round_trip() {
        for sysnum in [Sysnum::DebugWrite, Sysnum::Exit] {
            assert_eq!(Sysnum::try_from(sysnum as u64), Ok(sysnum));
        }
        assert_eq!(Sysnum::try_from(0), Err(SysError::UnknownSyscall));
        assert_eq!(Sysnum::try_from(u64::MAX), Err(SysError::UnknownSyscall));
        for error in [SysError::UnknownSyscall, SysError::BadAddress, SysError::BadLength] {
            let (rax, rdx) = encode(Err(error));
            assert_eq!(decode(rax, rdx), Err(error));
        }
        assert_eq!(decode(0, 42), Ok(42));
    }
}
