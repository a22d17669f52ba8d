//! MISC: the small calls of the process API and their errors: getpid,
//! sbrk, mmap and munmap, and wait without children.
//!
//! Exit statuses: 1 getpid failed or differs from the start register,
//! 2 sbrk failed, 3 the two sbrk ranges are not consecutive, 4 a heap page
//! did not read back, 5 mmap failed, 6 a mapped page did not read back,
//! 7 munmap failed, 8 munmap of an unmapped range succeeded, 9 munmap of a
//! never-mapped range succeeded, 10 wait(None) did not fail with
//! NoChildren, 11 wait of a stranger did not fail with NotChild or
//! NoSuchProcess, 12 Swap or Quiesce from a process was not refused with
//! Denied, 13 an mmap past the quota was not refused with LimitReached,
//! 14 a kill of a stranger or of init was not refused, 15 a killed child
//! did not end with STATUS_KILLED, 16 a fork past the child limit was not
//! refused with LimitReached.

use proto::{ProcessRequest, ProtoError};

use crate::outcome::{Failure, Outcome, check, expect_exit};
use crate::region::{PAGE_SIZE, Region, WORDS_PER_PAGE};

/// The last word of a page, written with the first.
const LAST_WORD: u64 = WORDS_PER_PAGE - 1;
const SBRK_PAGES: u32 = 3;
const MMAP_PAGES: u32 = 8;
/// A page no process maps (programs are linked far above it).
const NEVER_MAPPED: u64 = 0x1000;
/// A pid that is no child of ours (and likely no process at all).
const STRANGER: u32 = 12345;

pub fn run(start_pid: u64) -> Outcome {
    match rt::proc::getpid() {
        Ok(pid) if u64::from(pid) == start_pid => {}
        Ok(pid) => return Err(Failure::new(1, "getpid differs from the start register").value(pid)),
        Err(error) => return Err(Failure::new(1, "getpid failed").error(error)),
    }
    heap()?;
    mapping()?;
    privileges()?;
    killing()?;
    check(rt::proc::munmap(NEVER_MAPPED, 1).is_err(), 9, "munmap of a never-mapped page succeeded")?;
    match rt::proc::wait(None) {
        Err(ProtoError::NoChildren) => {}
        Err(error) => return Err(Failure::new(10, "wait(None) without children").error(error)),
        Ok((pid, _)) => return Err(Failure::new(10, "wait(None) without children returned a pid").value(pid)),
    }
    match rt::proc::wait(Some(STRANGER)) {
        Err(ProtoError::NotChild | ProtoError::NoSuchProcess) => Ok(()),
        Err(error) => Err(Failure::new(11, "wait of a stranger").error(error)),
        Ok((pid, _)) => Err(Failure::new(11, "wait of a stranger returned a pid").value(pid)),
    }
}

/// What only init may ask (a swap, a quiesce) and what no process may
/// have (2^32 - 1 pages) are refused.
fn privileges() -> Outcome {
    for request in [ProcessRequest::Swap { strategy: 0 }, ProcessRequest::Quiesce] {
        check(rt::proc::request(&request) == Err(ProtoError::Denied), 12, "a process was let swap or quiesce")?;
    }
    match rt::proc::mmap(u32::MAX) {
        Err(ProtoError::LimitReached) => Ok(()),
        Err(error) => Err(Failure::new(13, "mmap of 2^32 - 1 pages").error(error)),
        Ok(addr) => Err(Failure::new(13, "mmap of 2^32 - 1 pages was accepted").value(addr as i64)),
    }
}

/// A kill of a stranger or of init is refused. As many children as the
/// limit allows spin; one more fork is refused; a kill of each ends it
/// with `STATUS_KILLED`.
fn killing() -> Outcome {
    for pid in [STRANGER, abi::process::INIT_PID] {
        check(rt::proc::kill(pid) == Err(ProtoError::NoSuchProcess), 14, "a kill of a stranger or of init")?;
    }
    let mut children = [0u32; CHILD_LIMIT];
    for child in children.iter_mut() {
        *child = spinning_child()?;
    }
    let past_the_limit = rt::proc::fork();
    if past_the_limit == Ok(0) {
        rt::proc::exit(0);
    }
    for &child in &children {
        rt::proc::kill(child).map_err(|e| Failure::new(15, "kill of a child").error(e))?;
        expect_exit(child, abi::process::STATUS_KILLED, 15, "the killed child")?;
    }
    match past_the_limit {
        Err(ProtoError::LimitReached) => Ok(()),
        Err(error) => Err(Failure::new(16, "a fork past the child limit").error(error)),
        Ok(pid) => {
            let _ = rt::proc::wait(Some(pid));
            Err(Failure::new(16, "a fork past the child limit succeeded").value(pid))
        }
    }
}

/// The children a process may have at once (the process server's limit).
const CHILD_LIMIT: usize = 16;

/// A child that spins until it is killed.
fn spinning_child() -> Result<u32, Failure> {
    let child = rt::proc::fork().map_err(|e| Failure::new(15, "fork failed").error(e))?;
    if child == 0 {
        loop {
            rt::sys::yield_now();
        }
    }
    Ok(child)
}

/// Two `sbrk`s of three pages: consecutive, writable, readable.
fn heap() -> Outcome {
    let bytes = u64::from(SBRK_PAGES) * PAGE_SIZE;
    let first = rt::proc::sbrk(bytes).map_err(|e| Failure::new(2, "sbrk failed").error(e))?;
    let second = rt::proc::sbrk(bytes).map_err(|e| Failure::new(2, "second sbrk failed").error(e))?;
    check(second == first + bytes, 3, "the sbrk ranges are not consecutive")?;
    // The break starts page-aligned, so both ranges are whole pages.
    check(first % PAGE_SIZE == 0, 3, "sbrk returned an unaligned address")?;
    // SAFETY: the two sbrk calls gave this process these pages, which
    // nothing else uses.
    let heap = unsafe { Region::from_raw(first, 2 * SBRK_PAGES) };
    check(read_back(&heap), 4, "a heap page did not read back")
}

/// mmap, use, munmap, and munmap again (which must fail).
fn mapping() -> Outcome {
    let region = Region::map(MMAP_PAGES).map_err(|e| Failure::new(5, "mmap failed").error(e))?;
    check(read_back(&region), 6, "a mapped page did not read back")?;
    let (base, pages) = (region.base(), region.pages());
    region.unmap().map_err(|e| Failure::new(7, "munmap failed").error(e))?;
    check(rt::proc::munmap(base, pages).is_err(), 8, "munmap of an unmapped range succeeded")
}

/// Writes a distinct value into every page of `region`, then reads them.
fn read_back(region: &Region) -> bool {
    let value = |page: u32| 0xA5A5_0000_0000_0000 | u64::from(page);
    for page in 0..region.pages() {
        region.write_word(page, 0, value(page));
        region.write_word(page, LAST_WORD, !value(page));
    }
    (0..region.pages()).all(|page| region.read_word(page, 0) == value(page) && region.read_word(page, LAST_WORD) == !value(page))
}
