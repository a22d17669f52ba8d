//! COW: copy-on-write isolation across process servers. The parent fills
//! 64 pages with its pattern and forks one child on every CPU; each child
//! overwrites its own slot and the pages all children share (0..8), checks
//! that it sees its writes and the parent's pages elsewhere, and forks a
//! grandchild that must see the child's versions. The parent must see none
//! of it.
//!
//! Parent's exit statuses: 1 mmap failed, 2 fork_on failed, 3 a child did
//! not exit 0 (detail: its status), 4 a parent page changed, 5 a page did
//! not hold the parent's rewrite, 120 kernel_info. A child's statuses:
//! 10 its own pages, 11 the parent's pages, 12 grandchild fork failed,
//! 13 grandchild did not exit 0, 14 page 8 changed by the grandchild; a
//! grandchild's: 20 the child's pages, 21 its own page 8.

use crate::outcome::{Failure, Outcome, check, cpus, expect_exit, finish_child};
use crate::region::Region;

const PAGES: u32 = 64;
/// Pages every child writes, so that all of them share and copy them.
const SHARED: u32 = 8;
/// The page the grandchild writes.
const GRANDCHILD_PAGE: u32 = 8;
/// Children's slots: `SLOT_PAGES` pages each from `SLOTS_START`, wrapping
/// within `SLOTS_START..PAGES` when there are many CPUs.
const SLOTS_START: u32 = 16;
const SLOT_PAGES: u32 = 4;
const SLOTS: u32 = (PAGES - SLOTS_START) / SLOT_PAGES;
/// Most children (CPUs) tracked.
const MAX_CHILDREN: usize = 64;

const PARENT: u64 = 0x7061_7265_6E74;
const PARENT_AGAIN: u64 = 0x0070_6172_656E_7432;
const GRANDCHILD: u64 = 0x0067_7261_6E64;

fn child_tag(k: u32) -> u64 {
    0x6368_696C_6400_0000 | u64::from(k)
}

fn slot(k: u32) -> core::ops::Range<u32> {
    let start = SLOTS_START + (k % SLOTS) * SLOT_PAGES;
    start..start + SLOT_PAGES
}

fn written_by_child(k: u32, page: u32) -> bool {
    page < SHARED || slot(k).contains(&page)
}

pub fn run() -> Outcome {
    let cpus = usize::from(cpus()?).min(MAX_CHILDREN);
    let region = Region::map(PAGES).map_err(|e| Failure::new(1, "mmap failed").error(e))?;
    for page in 0..PAGES {
        region.fill(page, PARENT);
    }
    let mut children = [0u32; MAX_CHILDREN];
    let mut forked = 0;
    let mut failure = None;
    for (k, child) in children.iter_mut().enumerate().take(cpus) {
        // `k` < MAX_CHILDREN, so these conversions are exact.
        match rt::proc::fork_on(k as u16) {
            Ok(0) => finish_child("cow child", child_main(&region, k as u32)),
            Ok(pid) => {
                *child = pid;
                forked += 1;
            }
            Err(error) => {
                failure = Some(Failure::new(2, "fork_on failed").error(error));
                break;
            }
        }
    }
    // Wait for every child forked, even after a failure, so none outlives us.
    for &pid in &children[..forked] {
        if let Err(error) = expect_exit(pid, 0, 3, "a child failed") {
            failure.get_or_insert(error);
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    check((0..PAGES).all(|page| region.holds(page, PARENT)), 4, "a child's write reached the parent")?;
    // The children are gone: the pages are the parent's alone again.
    for page in 0..PAGES {
        region.fill(page, PARENT_AGAIN);
    }
    check((0..PAGES).all(|page| region.holds(page, PARENT_AGAIN)), 5, "a rewritten page lost its pattern")?;
    Ok(())
}

fn child_main(region: &Region, k: u32) -> Outcome {
    let tag = child_tag(k);
    for page in (0..SHARED).chain(slot(k)) {
        region.fill(page, tag);
    }
    check_child_view(region, k)?;
    match rt::proc::fork() {
        Ok(0) => finish_child("cow grandchild", grandchild_main(region, tag)),
        Ok(pid) => expect_exit(pid, 0, 13, "the grandchild failed")?,
        Err(error) => return Err(Failure::new(12, "grandchild fork failed").error(error)),
    }
    check(region.holds(GRANDCHILD_PAGE, PARENT), 14, "the grandchild's write reached the child")?;
    check_child_view(region, k)
}

fn check_child_view(region: &Region, k: u32) -> Outcome {
    let tag = child_tag(k);
    for page in 0..PAGES {
        if written_by_child(k, page) {
            check(region.holds(page, tag), 10, "a page the child wrote lost its pattern")?;
        } else {
            check(region.holds(page, PARENT), 11, "a page the child did not write lost the parent's pattern")?;
        }
    }
    Ok(())
}

fn grandchild_main(region: &Region, child: u64) -> Outcome {
    region.fill(GRANDCHILD_PAGE, GRANDCHILD);
    check((0..SHARED).all(|page| region.holds(page, child)), 20, "the grandchild does not see the child's pages")?;
    check(region.holds(GRANDCHILD_PAGE, GRANDCHILD), 21, "the grandchild's page lost its pattern")
}
