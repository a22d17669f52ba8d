//! CRASH: a process that touches an address it has no memory at is killed
//! with `STATUS_FAULT`: a write to the null page, and a read of a page it
//! unmapped. Holds the crate's deliberate bad accesses.
//!
//! Exit statuses: 1 fork failed, 2 the null-page writer did not die of a
//! fault, 3 the unmapped-page reader did not die of a fault (detail: its
//! status; it exits 30 if mmap failed, 31 if munmap failed, 32 if the read
//! returned).

use abi::process::STATUS_FAULT;

use crate::outcome::{Failure, Outcome, expect_exit};
use crate::region::Region;

/// In the null page, which no process has mapped.
const NULL_PAGE_ADDRESS: u64 = 0x10;
const PAGES: u32 = 4;

pub fn run() -> Outcome {
    let writer = fork()?;
    if writer == 0 {
        // SAFETY: the null page is never mapped: the write faults and the
        // process server kills this process; no memory of ours changes.
        unsafe { (NULL_PAGE_ADDRESS as *mut u8).write_volatile(1) };
        rt::proc::exit(0)
    }
    expect_exit(writer, STATUS_FAULT, 2, "a null-page write did not kill with STATUS_FAULT")?;
    let reader = fork()?;
    if reader == 0 {
        let Ok(region) = Region::map(PAGES) else { rt::proc::exit(30) };
        region.touch(PAGES, 1);
        let base = region.base();
        if region.unmap().is_err() {
            rt::proc::exit(31)
        }
        // SAFETY: the page was unmapped and nothing else lies there: the
        // read faults and the process server kills this process.
        let _ = unsafe { (base as *const u8).read_volatile() };
        rt::proc::exit(32)
    }
    expect_exit(reader, STATUS_FAULT, 3, "a read of an unmapped page did not kill with STATUS_FAULT")
}

fn fork() -> Result<u32, Failure> {
    rt::proc::fork().map_err(|e| Failure::new(1, "fork failed").error(e))
}
