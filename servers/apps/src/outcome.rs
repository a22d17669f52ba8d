//! How a workload ends: a [`Failure`] names the check that failed (its exit
//! status, a small positive number) and why; [`finish`] prints the one line
//! of the workload and exits. Children of a workload end with
//! [`finish_child`], silent when they pass.

use core::fmt;

use proto::ProtoError;

/// What a failed check saw, printed after its reason.
#[derive(Clone, Copy, Debug)]
pub enum Detail {
    None,
    Value(i64),
    Error(ProtoError),
}

/// A failed check: the exit status that names it, and why.
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    pub status: i32,
    pub reason: &'static str,
    pub detail: Detail,
}

impl Failure {
    pub const fn new(status: i32, reason: &'static str) -> Self {
        Self { status, reason, detail: Detail::None }
    }

    pub fn value(self, value: impl Into<i64>) -> Self {
        Self { detail: Detail::Value(value.into()), ..self }
    }

    pub const fn error(self, error: ProtoError) -> Self {
        Self { detail: Detail::Error(error), ..self }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail {
            Detail::None => write!(f, "{}", self.reason),
            Detail::Value(value) => write!(f, "{} ({value})", self.reason),
            Detail::Error(error) => write!(f, "{} ({error})", self.reason),
        }
    }
}

pub type Outcome = Result<(), Failure>;

/// Fails with `status` and `reason` unless `condition` holds.
pub fn check(condition: bool, status: i32, reason: &'static str) -> Outcome {
    if condition { Ok(()) } else { Err(Failure::new(status, reason)) }
}

/// Prints `apps: WORKLOAD ok` or `apps: WORKLOAD FAILED: REASON` and exits
/// with 0 or the failure's status.
pub fn finish(workload: &str, outcome: Outcome) -> ! {
    match outcome {
        Ok(()) => {
            rt::println!("apps: {workload} ok");
            rt::proc::exit(0)
        }
        Err(failure) => {
            rt::println!("apps: {workload} FAILED: {failure}");
            rt::proc::exit(failure.status)
        }
    }
}

/// Ends a forked child: silently with 0, or with a `FAILED` line naming
/// `who` and the failure's status, which its parent reports.
pub fn finish_child(who: &str, outcome: Outcome) -> ! {
    match outcome {
        Ok(()) => rt::proc::exit(0),
        Err(failure) => {
            rt::println!("apps: {who} FAILED: {failure}");
            rt::proc::exit(failure.status)
        }
    }
}

/// Waits for child `pid` and requires exit status `expected`; a failed wait
/// or another status fails with `status` (the detail says which).
pub fn expect_exit(pid: u32, expected: i32, status: i32, reason: &'static str) -> Outcome {
    match rt::proc::wait(Some(pid)) {
        Ok((waited, got)) if waited == pid && got == expected => Ok(()),
        Ok((waited, _)) if waited != pid => Err(Failure::new(status, "wait returned another pid").value(waited)),
        Ok((_, got)) => Err(Failure::new(status, reason).value(got)),
        Err(error) => Err(Failure::new(status, "wait failed").error(error)),
    }
}

/// The number of CPUs (each with its process server).
pub fn cpus() -> Result<u16, Failure> {
    match rt::sys::kernel_info(abi::syscall::KERNEL_INFO_CPUS) {
        Ok(cpus) if cpus > 0 => Ok(u16::try_from(cpus).unwrap_or(u16::MAX)),
        _ => Err(Failure::new(120, "kernel_info(CPUS) failed")),
    }
}
