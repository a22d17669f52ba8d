//! EXEC: exec and spawn of programs in the boot image. Exec of an unknown
//! program fails and returns; a forked child that execs `apps` as
//! EXEC_TARGET ends with the status it was given, and so does a spawned one.
//!
//! Exit statuses: 1 exec of an unknown program did not fail with
//! NoSuchProgram (detail: the error), 2 fork failed, 3 the exec'd child did
//! not exit 42 (it exits 99 if exec returned), 4 spawn failed, 5 the
//! spawned child did not exit 7.

use proto::ProtoError;

use crate::outcome::{Failure, Outcome, expect_exit};
use abi::workload::{EXEC_TARGET, encode};

const PROGRAM: &str = "apps";
const EXEC_STATUS: u16 = 42;
const SPAWN_STATUS: u16 = 7;
/// The status of a child whose exec returned.
const EXEC_RETURNED: i32 = 99;

pub fn run() -> Outcome {
    match rt::proc::exec("no-such-program", 0) {
        ProtoError::NoSuchProgram => {}
        error => return Err(Failure::new(1, "exec of an unknown program").error(error)),
    }
    match rt::proc::fork() {
        Ok(0) => {
            let error = rt::proc::exec(PROGRAM, encode(EXEC_TARGET, EXEC_STATUS.into(), 0, 0));
            rt::println!("apps: exec child FAILED: exec returned ({error})");
            rt::proc::exit(EXEC_RETURNED)
        }
        Ok(pid) => expect_exit(pid, i32::from(EXEC_STATUS), 3, "the exec'd child exited with another status")?,
        Err(error) => return Err(Failure::new(2, "fork failed").error(error)),
    }
    let pid =
        rt::proc::spawn(PROGRAM, encode(EXEC_TARGET, SPAWN_STATUS.into(), 0, 0)).map_err(|e| Failure::new(4, "spawn failed").error(e))?;
    expect_exit(pid, i32::from(SPAWN_STATUS), 5, "the spawned child exited with another status")
}
