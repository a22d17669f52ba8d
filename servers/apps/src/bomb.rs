//! FORKBOMB: every process forks, its children on every CPU in turn, and
//! every child does the same, until a fork is refused: by the child limit
//! (`LimitReached`) or the kernel's pools (`NoMemory`). A finite bomb then
//! stops forking, waits for its children and exits, so it ends by itself;
//! an endless one retries every refused fork until it is killed.
//!
//! Only the root prints its line; every process exits with its status.
//!
//! Exit statuses: 1 a fork failed with another error (detail: the error),
//! 3 a child exited with a status other than 0 (detail: the status), 4 a
//! wait failed, 120 kernel_info.

use proto::ProtoError;

use crate::outcome::{Failure, Outcome, cpus, finish, finish_child};

pub fn run(endless: bool) -> ! {
    let mut root = true;
    let outcome = bomb(endless, &mut root);
    if root { finish("forkbomb", outcome) } else { finish_child("forkbomb", outcome) }
}

/// Forks until refused (for ever, if `endless`), then waits for every
/// child. `root` turns false in the children.
fn bomb(endless: bool, root: &mut bool) -> Outcome {
    let cpus = cpus()?;
    let mut next_cpu: u16 = 0;
    loop {
        next_cpu = next_cpu.wrapping_add(1);
        match rt::proc::fork_on(next_cpu % cpus) {
            // The child forks on as its parent did.
            Ok(0) => *root = false,
            Ok(_) => {}
            Err(ProtoError::LimitReached | ProtoError::NoMemory) if endless => rt::sys::yield_now(),
            Err(ProtoError::LimitReached | ProtoError::NoMemory) => break,
            Err(error) => return Err(Failure::new(1, "a fork failed").error(error)),
        }
    }
    loop {
        match rt::proc::wait(None) {
            Ok((_, 0)) => {}
            Ok((_, status)) => return Err(Failure::new(3, "a child failed").value(status)),
            Err(ProtoError::NoChildren) => return Ok(()),
            Err(error) => return Err(Failure::new(4, "wait failed").error(error)),
        }
    }
}
