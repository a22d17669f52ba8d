//! OOM: a process that touches more memory than the machine has is killed
//! with `STATUS_NO_MEMORY`, and the system goes on: a fresh child can still
//! map and touch pages. Then the process servers' own heap runs out
//! (`server_heap`), and the system goes on again.
//!
//! Exit statuses: 1 fork failed, 2 the hog did not die of no memory
//! (detail: its status; it exits 30 if mmap failed, 31 if it touched every
//! page), 3 the child after it did not exit 0 (32: its mmap failed, 33: its pages
//! did not read back).

use abi::process::STATUS_NO_MEMORY;

use crate::outcome::{Failure, Outcome, expect_exit};
use crate::region::Region;

/// 4 GiB of demand-zero pages, more than the machine has.
const HOG_PAGES: u32 = 1 << 20;
const AFTER_PAGES: u32 = 16;

pub fn run() -> Outcome {
    let hog = fork()?;
    if hog == 0 {
        let Ok(region) = Region::map(HOG_PAGES) else { rt::proc::exit(30) };
        region.touch(HOG_PAGES, 1);
        rt::proc::exit(31)
    }
    expect_exit(hog, STATUS_NO_MEMORY, 2, "the hog was not killed for lack of memory")?;
    let after = fork()?;
    if after == 0 {
        let Ok(region) = Region::map(AFTER_PAGES) else { rt::proc::exit(32) };
        region.touch(AFTER_PAGES, 1);
        let intact = (0..AFTER_PAGES).all(|page| region.read_byte(page) == 1);
        rt::proc::exit(if intact { 0 } else { 33 })
    }
    expect_exit(after, 0, 3, "a child after the hog failed")?;
    crate::server_heap::run()
}

fn fork() -> Result<u32, Failure> {
    rt::proc::fork().map_err(|e| Failure::new(1, "fork failed").error(e))
}
