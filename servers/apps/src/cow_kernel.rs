//! COW_KERNEL: copy-on-write faults the kernel resolves for the pager
//! (`CowArm`), and the ones it must leave to the pager's uniqueness check.
//! With `kernel` (a = 1: the process servers arm the kernel), the numbers
//! below are exact; without (a = 0, booted with `cow=pager`), the kernel
//! copies nothing.
//!
//! 1. The parent fills `PAGES` pages and forks; the child writes every page
//!    (the parent still holds each: a copy), sees its own writes and the
//!    parent's pattern elsewhere. More pages than the kernel's reserve
//!    holds, so some copies are the kernel's and at least one goes to the
//!    pager when the reserve runs dry, and all of them are copies.
//! 2. The parent sees none of the child's writes, and then writes every
//!    page itself: the child's copies and its exit left each page the
//!    parent's alone and took its shared hint, so the kernel copies none
//!    of them. With `sole` (deferred, whose release shows the one
//!    reference left) their hints say so, and the kernel takes pages in
//!    place until its log is full; the pager's uniqueness check decides
//!    the rest. Without, the pager decides every one. (The counts are at
//!    least the pages: the stack may add one.)
//! 3. The parent forks a child that exits at once, and writes again: the
//!    child's exit took what its fork had set, so again the kernel copies
//!    nothing, and takes pages in place with `sole`.
//!
//! Exit statuses: 1 mmap failed, 2 fork failed, 3 the child failed (detail:
//! its status), 4 a child's write reached the parent, 5 the parent's
//! rewrite did not hold, 6 a kernel copy in step 2 or 3 (detail: how many),
//! 7 not every write was resolved (detail: how many were), 8 stats
//! failed, 9 the kernel took no page in place with `sole`, or some
//! without (detail: how many it took);
//! the child's: 10 its writes, 11 the parent's pages, 12 not every write
//! copied (detail: copies), 13 the kernel copied none or all (detail: its
//! copies), 14 the kernel copied when it was not armed (detail: copies).

use crate::measure::{Delta, stats};
use crate::outcome::{Failure, Outcome, check, expect_exit, finish_child};
use crate::region::Region;

/// More than the kernel's reserve (`abi::cow::COW_RESERVE`).
const PAGES: u32 = abi::cow::COW_RESERVE as u32 + 64;

const PARENT: u64 = 0x636F_7770_6172;
const CHILD: u64 = 0x636F_7763_6869;
const PARENT_AGAIN: u64 = 0x636F_7761_6761;

pub fn run(kernel: bool, sole: bool) -> Outcome {
    let region = Region::map(PAGES).map_err(|e| Failure::new(1, "mmap failed").error(e))?;
    (0..PAGES).for_each(|page| region.fill(page, PARENT));
    match rt::proc::fork() {
        Ok(0) => finish_child("cow_kernel child", child(&region, kernel)),
        Ok(pid) => expect_exit(pid, 0, 3, "the child failed")?,
        Err(error) => return Err(Failure::new(2, "fork failed").error(error)),
    }
    check((0..PAGES).all(|page| region.holds(page, PARENT)), 4, "a child's write reached the parent")?;
    rewrite_in_place(&region, sole)?;
    match rt::proc::fork() {
        Ok(0) => rt::proc::exit(0),
        Ok(pid) => expect_exit(pid, 0, 3, "the child failed")?,
        Err(error) => return Err(Failure::new(2, "fork failed").error(error)),
    }
    rewrite_in_place(&region, sole)?;
    region.unmap().map_err(|e| Failure::new(1, "munmap failed").error(e))
}

/// Writes every page, each of which is the parent's alone: the kernel
/// copies none of them, and takes some in place with `sole` (none
/// without); the pager's uniqueness check decides the others (an exact
/// strategy claims every one in place; one that settles its counts later,
/// such as percpu, may still see another reference and copy).
fn rewrite_in_place(region: &Region, sole: bool) -> Outcome {
    let before = stats(8)?;
    (0..PAGES).for_each(|page| region.fill(page, PARENT_AGAIN));
    let delta = Delta::between(&before, &stats(8)?);
    check((0..PAGES).all(|page| region.holds(page, PARENT_AGAIN)), 5, "the parent's rewrite did not hold")?;
    check(delta.kernel_copies == 0, 6, "the kernel copied a page of the parent's alone")
        .map_err(|f| f.value(delta.kernel_copies as i64))?;
    // Our stack may add a page of its own (a deeper call in a debug build).
    let resolved = delta.cow_reused + delta.cow_copies;
    check(resolved >= u64::from(PAGES), 7, "not every write was resolved").map_err(|f| f.value(resolved as i64))?;
    let in_place = delta.kernel_reuses;
    let expected = if sole { in_place > 0 } else { in_place == 0 };
    check(expected, 9, "the kernel took pages in place where the hints did not say sole, or none where they did")
        .map_err(|f| f.value(in_place as i64))
}

fn child(region: &Region, kernel: bool) -> Outcome {
    let before = stats(8)?;
    (0..PAGES).for_each(|page| region.fill(page, CHILD));
    let delta = Delta::between(&before, &stats(8)?);
    check((0..PAGES).all(|page| region.holds(page, CHILD)), 10, "the child's writes did not hold")?;
    // Our stack may add a page of its own (a deeper call in a debug build).
    check(delta.cow_copies >= u64::from(PAGES), 12, "not every write was copied").map_err(|f| f.value(delta.cow_copies as i64))?;
    let by_kernel = delta.kernel_copies;
    if kernel {
        check(by_kernel > 0 && by_kernel < delta.cow_copies, 13, "the kernel copied none, or all past its reserve")
            .map_err(|f| f.value(by_kernel as i64))
    } else {
        check(by_kernel == 0, 14, "the kernel copied, not armed").map_err(|f| f.value(by_kernel as i64))
    }
}
