//! EXEC_TARGET: the program `exec` starts by exec and spawn; it exits with
//! the status it was given (parameter a), which its parent checks.

pub fn run(status: u16) -> ! {
    rt::println!("apps: exec_target ok (status {status})");
    rt::proc::exit(i32::from(status))
}
