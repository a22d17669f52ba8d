//! TREE: a tree of processes across every CPU's process server. A node
//! above depth 0 forks `width` children (child i on CPU i mod cpus); each
//! child checks it inherited its parent's tag in a region the root mapped
//! before the first fork, writes its own (copy-on-write), recurses, and
//! exits with the number of nodes in its subtree. A node that sees a
//! failure exits with 0, which no subtree can count, so the failure climbs
//! to the root.
//!
//! Root's exit statuses: 1 mmap failed, 2 fork failed, 3 a subtree failed,
//! 4 a node lost its tag, 5 the total is wrong (detail: the total), 6 the
//! tree is too large to count, 7 a wait failed, 120 kernel_info.

use crate::outcome::{Failure, check, cpus};
use crate::region::Region;

/// Pages of the region the root maps; every node writes its tag into each.
const REGION_PAGES: u32 = 4;
/// The word of a page that holds the tag.
const TAG_WORD: u64 = 0;
const ROOT_TAG: u64 = 1;

pub fn run(depth: u16, width: u16) -> Result<(), Failure> {
    let expected = nodes(depth, width).ok_or(Failure::new(6, "the tree is too large to count"))?;
    let cpus = cpus()?;
    let region = Region::map(REGION_PAGES).map_err(|e| Failure::new(1, "mmap failed").error(e))?;
    write_tag(&region, ROOT_TAG);
    let total = node(&region, depth, width, cpus, ROOT_TAG)?;
    check(total == expected, 5, "wrong number of nodes").map_err(|f| f.value(total as i64))
}

/// The nodes of a tree of `depth` and `width`; `None` if a node's exit
/// status could not count them.
pub fn nodes(depth: u16, width: u16) -> Option<u64> {
    (0..=u32::from(depth))
        .try_fold(0u64, |sum, level| u64::from(width).checked_pow(level).and_then(|n| sum.checked_add(n)))
        .filter(|&total| total <= i32::MAX as u64)
}

/// Forks and waits this node's children; the number of nodes in its
/// subtree, itself included.
fn node(region: &Region, depth: u16, width: u16, cpus: u16, tag: u64) -> Result<u64, Failure> {
    let mut forked = 0;
    let mut failure = None;
    if depth > 0 {
        for i in 0..width {
            match rt::proc::fork_on(i % cpus) {
                Ok(0) => child(region, depth - 1, width, cpus, tag, i),
                Ok(_) => forked += 1,
                Err(error) => {
                    failure = Some(Failure::new(2, "fork failed").error(error));
                    break;
                }
            }
        }
    }
    let mut count = 1u64;
    for _ in 0..forked {
        match rt::proc::wait(None) {
            Ok((_, status)) if status > 0 => count += status as u64,
            Ok((_, status)) => {
                failure.get_or_insert(Failure::new(3, "a subtree failed").value(status));
            }
            Err(error) => {
                failure.get_or_insert(Failure::new(7, "wait failed").error(error));
            }
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    check(holds_tag(region, tag), 4, "a child's write reached its parent")?;
    Ok(count)
}

/// Child `index` of the node tagged `parent`: exits with its subtree's
/// size, or 0 after printing why it failed (a killed node's status, such as
/// `STATUS_FAULT`, is counted and makes the root's total wrong).
fn child(region: &Region, depth: u16, width: u16, cpus: u16, parent: u64, index: u16) -> ! {
    let tag = parent.wrapping_mul(31).wrapping_add(u64::from(index) + 1);
    let outcome = check(holds_tag(region, parent), 4, "a child did not inherit its parent's tag").and_then(|()| {
        write_tag(region, tag);
        node(region, depth, width, cpus, tag)
    });
    match outcome {
        Ok(count) => rt::proc::exit(i32::try_from(count).unwrap_or(0)),
        Err(failure) => {
            // Report here, where the detail is known; the parent sees 0.
            rt::println!("apps: tree node FAILED: {failure}");
            rt::proc::exit(0)
        }
    }
}

fn write_tag(region: &Region, tag: u64) {
    for page in 0..REGION_PAGES {
        region.write_word(page, TAG_WORD, tag);
    }
}

fn holds_tag(region: &Region, tag: u64) -> bool {
    (0..REGION_PAGES).all(|page| region.read_word(page, TAG_WORD) == tag)
}
