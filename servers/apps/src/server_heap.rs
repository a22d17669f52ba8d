//! The process servers' heap runs out first: this process's page map is
//! large and sparse (one page touched in each 2 MiB, each a 4.3 KiB leaf
//! of the map in the servers' heap: 3.8 MiB, more than the heap the
//! servers start with, so it grows from the memory server's frames), and
//! it forks children that each keep a copy of it, until a fork is refused
//! with `NoMemory` because the heap, grown to its cap, cannot take another
//! copy: the process server answers, it does not fail an allocation (and
//! die). Then the children are killed, and a fork works again.
//!
//! Exit statuses: 40 the region could not be mapped, 41 a fork failed
//! otherwise, 42 the heap never ran out, 43 a child did not end killed,
//! 44 a fork after the kill failed.

use abi::process::STATUS_KILLED;
use proto::ProtoError;

use crate::outcome::{Failure, Outcome, check, expect_exit};
use crate::region::Region;

/// Pages of a leaf of the servers' page maps (2 MiB).
const LEAF_PAGES: u32 = 512;
/// Leaves touched: about 3.8 MiB of page map, and as many page tables,
/// under the kernel's 1,024 per address space.
const LEAVES: u32 = 900;
/// More children than the heap can hold copies of the map for, grown to
/// its cap (a sixteenth of the pool: about 7 copies at 512 MiB), and
/// fewer than a process may have.
const MOST_CHILDREN: usize = 12;

pub fn run() -> Outcome {
    let region = Region::map(LEAVES * LEAF_PAGES).map_err(|e| Failure::new(40, "the sparse region was not mapped").error(e))?;
    for leaf in 0..LEAVES {
        region.write_byte(leaf * LEAF_PAGES, 1);
    }
    let mut children = [0u32; MOST_CHILDREN];
    let mut forked = 0;
    let mut refused = Ok(false);
    while forked < MOST_CHILDREN {
        match rt::proc::fork() {
            // Keeps its copy of the map until it is killed.
            Ok(0) => loop {
                rt::sys::yield_now();
            },
            Ok(pid) => {
                children[forked] = pid;
                forked += 1;
            }
            Err(ProtoError::NoMemory) => {
                refused = Ok(true);
                break;
            }
            Err(error) => {
                refused = Err(Failure::new(41, "a fork failed otherwise than for memory").error(error));
                break;
            }
        }
    }
    for &pid in &children[..forked] {
        let _ = rt::proc::kill(pid);
    }
    for &pid in &children[..forked] {
        expect_exit(pid, STATUS_KILLED, 43, "a child holding a copy did not end killed")?;
    }
    check(refused? && forked > 0, 42, "the servers' heap never ran out")?;
    rt::println!("apps: the servers' heap held {forked} copies of a 900-leaf page map, and refused the next");
    let again = rt::proc::fork().map_err(|e| Failure::new(44, "a fork after the kill failed").error(e))?;
    if again == 0 {
        rt::proc::exit(0)
    }
    expect_exit(again, 0, 44, "the child after the kill failed")?;
    region.unmap().map_err(|e| Failure::new(40, "the sparse region was not unmapped").error(e))
}
