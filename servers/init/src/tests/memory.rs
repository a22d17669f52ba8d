//! The memory system calls: map a batch from a PhysRange, query, protect,
//! unmap, share copy-on-write into another address space, and every refusal.

use abi::cap::{ObjectKind, Rights, ThreadState, boot_slot};
use abi::syscall::{KERNEL_INFO_FREE_FRAMES, SysError, USER_END};
use rt::mem::PAGE_SIZE;
use rt::sys;

use super::{TestResult, check, expect_err};
use crate::env::Env;

pub fn map(env: &Env) -> TestResult {
    let (space, ram) = (boot_slot::ADDRESS_SPACE, boot_slot::FIRST_RAM);
    let rw = Rights::READ.union(Rights::WRITE);
    let vaddr = env.pages.window(4);
    let frame = env.pages.frames(4);
    check(sys::map_batch(space, ram, frame, vaddr, 4, rw) == Ok(4), "map a batch of 4")?;
    // SAFETY: the four pages were just mapped writable for this test.
    unsafe { (vaddr as *mut u64).add(512 * 3).write_volatile(0xfeed) };
    let (paddr, rights) = sys::query(space, vaddr + 3 * PAGE_SIZE).map_err(|_| "query")?;
    let (first, _) = sys::query(space, vaddr).map_err(|_| "query")?;
    check(paddr == first + 3 * PAGE_SIZE && rights == rw, "query disagrees with the mapping")?;
    check(sys::protect(space, vaddr, 4, Rights::READ) == Ok(4), "protect")?;
    check(sys::query(space, vaddr).map(|q| q.1) == Ok(Rights::READ), "protect did not remove write")?;
    // SAFETY: still mapped, now read-only; reading is allowed.
    check(unsafe { (vaddr as *const u64).add(512 * 3).read_volatile() } == 0xfeed, "contents changed")?;

    expect_err(sys::map_batch(space, ram, frame, vaddr, 1, rw), SysError::AlreadyMapped, "double map")?;
    expect_err(sys::map_batch(space, ram, frame, vaddr + 1, 1, rw), SysError::BadArgument, "misaligned map")?;
    expect_err(sys::map_batch(space, ram, u64::MAX - 1, vaddr, 4, rw), SysError::BadArgument, "frames past the range")?;
    expect_err(sys::map_batch(space, ram, frame, USER_END - PAGE_SIZE, 4, rw), SysError::BadAddress, "map past the user half")?;
    expect_err(sys::map_batch(space, ram, frame, 0xFFFF_8000_0000_0000, 1, rw), SysError::BadAddress, "map into the kernel half")?;
    expect_err(sys::map_batch(space, ram, frame, vaddr, 0, rw), SysError::BadArgument, "map of zero pages")?;
    expect_err(sys::map_batch(space, boot_slot::THREAD, frame, vaddr, 1, rw), SysError::WrongType, "map from a thread")?;

    // Share into a new space: both sides read-only, same frames.
    let free_before = sys::kernel_info(KERNEL_INFO_FREE_FRAMES).map_err(|_| "info")?;
    let other = env.slots.alloc();
    sys::create(ObjectKind::AddressSpace, other).map_err(|_| "create space")?;
    sys::protect(space, vaddr, 4, rw).map_err(|_| "protect back")?;
    // init's code is in frames the kernel loaded (kernel-owned): never shared.
    let code = remap as *const () as u64 & !(PAGE_SIZE - 1);
    expect_err(sys::share_cow(space, other, code, 1), SysError::BadArgument, "share of a kernel-owned page")?;
    check(sys::share_cow(space, other, vaddr, 4) == Ok(4), "share 4 pages")?;
    // An address space's size is the page-table pages it holds: every kernel
    // frame it took (its root, and the tables the share needed).
    let tables = sys::identify(other).map_err(|_| "identify the space")?.size;
    let free = sys::kernel_info(KERNEL_INFO_FREE_FRAMES).map_err(|_| "info")?;
    check(tables > 1 && free + tables == free_before, "a space's size is not the kernel frames its page tables took")?;
    let mine = sys::query(space, vaddr + PAGE_SIZE).map_err(|_| "query mine")?;
    let theirs = sys::query(other, vaddr + PAGE_SIZE).map_err(|_| "query theirs")?;
    check(mine.0 == theirs.0 && mine.1 == Rights::READ && theirs.1 == Rights::READ, "sharing is not read-only on both sides")?;
    expect_err(sys::share_cow(space, other, vaddr, 4), SysError::AlreadyMapped, "share onto mapped pages")?;
    check(sys::unmap(other, vaddr, 4) == Ok(4), "unmap in the other space")?;
    expect_err(sys::query(other, vaddr), SysError::NotMapped, "query after unmap")?;
    expect_err(sys::unmap(other, vaddr, 1), SysError::NotMapped, "unmap of nothing")?;
    env.slots.release(other);
    check(sys::kernel_info(KERNEL_INFO_FREE_FRAMES) == Ok(free_before), "a deleted space kept kernel frames")?;

    check(sys::unmap(space, vaddr, 4) == Ok(4), "unmap")?;
    expect_err(sys::query(space, vaddr), SysError::NotMapped, "query after unmap")?;
    Ok(())
}

/// `Remap`: a mapped page maps another frame in one call, with the rights
/// asked for (bounded by the range's), and only a mapped page can be.
pub fn remap(env: &Env) -> TestResult {
    let (space, ram) = (boot_slot::ADDRESS_SPACE, boot_slot::FIRST_RAM);
    let rw = Rights::READ.union(Rights::WRITE);
    let vaddr = env.pages.window(2);
    let frame = env.pages.frames(2);
    let weak = env.slots.alloc();
    sys::map_batch(space, ram, frame, vaddr, 1, rw).map_err(|_| "map")?;
    // SAFETY: the page was just mapped writable for this test.
    unsafe { (vaddr as *mut u64).write_volatile(0x1111) };
    sys::map_batch(space, ram, frame + 1, vaddr + PAGE_SIZE, 1, rw).map_err(|_| "map the second")?;
    // SAFETY: as above.
    unsafe { ((vaddr + PAGE_SIZE) as *mut u64).write_volatile(0x2222) };
    let (second, _) = sys::query(space, vaddr + PAGE_SIZE).map_err(|_| "query")?;
    check(sys::remap(space, ram, frame + 1, vaddr, Rights::READ).is_ok(), "remap")?;
    // A stale TLB entry would still show the first frame's word.
    // SAFETY: mapped (read-only now) to the second frame.
    let seen = unsafe { (vaddr as *const u64).read_volatile() };
    check(seen == 0x2222 && sys::query(space, vaddr) == Ok((second, Rights::READ)), "remap did not take effect at once")?;
    expect_err(sys::remap(space, ram, frame, vaddr + 2 * PAGE_SIZE, rw), SysError::NotMapped, "remap of an unmapped page")?;
    expect_err(sys::remap(space, ram, frame, vaddr + 1, rw), SysError::BadArgument, "remap of a misaligned address")?;
    expect_err(sys::remap(space, ram, u64::MAX, vaddr, rw), SysError::BadArgument, "remap to a frame past the range")?;
    sys::cap_mint(ram, weak, Rights::READ.union(Rights::DERIVE), 0).map_err(|_| "mint")?;
    expect_err(sys::remap(space, weak, frame, vaddr, rw), SysError::NoRight, "a writable remap from a read-only range")?;
    check(sys::remap(space, weak, frame, vaddr, Rights::READ).is_ok(), "a read-only remap from a read-only range")?;
    expect_err(sys::protect(space, vaddr, 1, rw), SysError::NoRight, "protect above the range the page was remapped from")?;
    env.slots.release(weak);
    check(sys::unmap(space, vaddr, 2) == Ok(2), "unmap")?;
    Ok(())
}

static READS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Reads the page at `addr` forever, counting reads.
extern "C" fn read_forever(addr: u64) -> ! {
    loop {
        // SAFETY: the page is mapped until the test unmaps it; the read
        // after that faults, which is what the test waits for.
        let _ = unsafe { (addr as *const u64).read_volatile() };
        READS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
}

/// A thread on another CPU reads a page in a loop, so that CPU's TLB holds
/// it; once init unmaps the page, the reader's next access must fault.
pub fn shootdown(env: &Env) -> TestResult {
    use core::sync::atomic::Ordering;
    use rt::ipc;
    let (ep, reader) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Endpoint, ep).map_err(|_| "create")?;
    let page = env.pages.alloc(1).map_err(|_| "page")?;
    let mut spec = super::threads::spec(read_forever, page, crate::env::INIT_PRIORITY, env.other_cpu());
    spec.fault_endpoint = Some(ep);
    rt::thread::spawn(&env.pages, reader, spec).map_err(|_| "spawn")?;
    check(super::wait_for(|| READS.load(Ordering::Relaxed) > 1000), "the reader never ran")?;
    sys::unmap(boot_slot::ADDRESS_SPACE, page, 1).map_err(|_| "unmap")?;
    let fault = super::wait_for(|| matches!(ipc::nb_recv(ep), Ok(r) if r.msg.mrs[1] == page));
    env.slots.release(reader);
    env.slots.release(ep);
    check(fault, "the reader kept reading an unmapped page: stale TLB on its CPU")
}

static WOKEN_READS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static WOKEN_ROUNDS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// The page the woken reader reads and the notification it waits on.
static WOKEN_PAGE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Reads the page's word, publishes it, and waits on notification `ntfn`;
/// forever.
extern "C" fn read_when_woken(ntfn: u64) -> ! {
    use core::sync::atomic::Ordering;
    let page = WOKEN_PAGE.load(Ordering::Acquire);
    loop {
        // SAFETY: the page stays mapped (to one frame or another) while
        // the reader lives.
        let word = unsafe { (page as *const u64).read_volatile() };
        WOKEN_READS.store(word, Ordering::Release);
        WOKEN_ROUNDS.fetch_add(1, Ordering::AcqRel);
        let _ = rt::ipc::wait(ntfn);
    }
}

/// A CPU that goes idle keeps the space it ran loaded; a page of that
/// space remapped meanwhile must not be read through the idle CPU's old
/// TLB entry when the reader is woken there.
pub fn idle_cpu_shootdown(env: &Env) -> TestResult {
    use core::sync::atomic::Ordering;
    let (space, ram) = (boot_slot::ADDRESS_SPACE, boot_slot::FIRST_RAM);
    let rw = Rights::READ.union(Rights::WRITE);
    let (ntfn, reader) = (env.slots.alloc(), env.slots.alloc());
    sys::create(ObjectKind::Notification, ntfn).map_err(|_| "create")?;
    let (vaddr, frame) = (env.pages.window(2), env.pages.frames(2));
    sys::map_batch(space, ram, frame, vaddr, 2, rw).map_err(|_| "map")?;
    // SAFETY: the two pages were just mapped writable for this test.
    unsafe {
        (vaddr as *mut u64).write_volatile(0x1111);
        ((vaddr + PAGE_SIZE) as *mut u64).write_volatile(0x2222);
    }
    WOKEN_PAGE.store(vaddr, Ordering::Release);
    WOKEN_ROUNDS.store(0, Ordering::Release);
    let spec = super::threads::spec(read_when_woken, ntfn, crate::env::INIT_PRIORITY, env.other_cpu());
    rt::thread::spawn(&env.pages, reader, spec).map_err(|_| "spawn")?;
    let blocked = |rounds| {
        super::wait_for(|| WOKEN_ROUNDS.load(Ordering::Acquire) == rounds && sys::thread_state(reader) == Ok(ThreadState::Blocked))
    };
    let outcome = (|| {
        check(blocked(1) && WOKEN_READS.load(Ordering::Acquire) == 0x1111, "the reader did not read the first frame")?;
        // The reader's CPU is idle now, its TLB holding the first frame.
        sys::remap(space, ram, frame + 1, vaddr, Rights::READ).map_err(|_| "remap")?;
        rt::ipc::signal(ntfn, 1).map_err(|_| "signal")?;
        check(blocked(2), "the reader was not woken")?;
        check(WOKEN_READS.load(Ordering::Acquire) == 0x2222, "the woken reader read the old frame: its idle CPU kept a stale TLB entry")
    })();
    env.slots.release(reader);
    env.slots.release(ntfn);
    sys::unmap(space, vaddr, 2).map_err(|_| "unmap")?;
    outcome
}

/// Carving a PhysRange: the part maps the same frames, refuses frames past
/// its end, needs the derive right, and goes away when its source is revoked.
pub fn carve(env: &Env) -> TestResult {
    let (ram, space) = (boot_slot::FIRST_RAM, boot_slot::ADDRESS_SPACE);
    let rw = Rights::READ.union(Rights::WRITE);
    let (part, piece, weak) = (env.slots.alloc(), env.slots.alloc(), env.slots.alloc());
    let first = env.pages.frames(4);
    sys::phys_range_carve(ram, first, 4, part).map_err(|_| "carve")?;
    check(sys::identify(part).map(|id| id.size) == Ok(4), "the carved range has the wrong size")?;
    let (whole_at, part_at) = (env.pages.window(1), env.pages.window(1));
    sys::map_batch(space, ram, first + 2, whole_at, 1, rw).map_err(|_| "map from the whole")?;
    sys::map_batch(space, part, 2, part_at, 1, rw).map_err(|_| "map from the part")?;
    let same = sys::query(space, whole_at).map(|q| q.0) == sys::query(space, part_at).map(|q| q.0);
    sys::unmap(space, whole_at, 1).map_err(|_| "unmap")?;
    sys::unmap(space, part_at, 1).map_err(|_| "unmap")?;
    check(same, "the part does not map the same frame as the whole")?;
    expect_err(sys::map_batch(space, part, 4, part_at, 1, rw), SysError::BadArgument, "a frame past the part's end")?;
    expect_err(sys::phys_range_carve(part, 3, 2, piece), SysError::BadArgument, "a carve past the end")?;
    expect_err(sys::phys_range_carve(part, 0, 0, piece), SysError::BadArgument, "a carve of no frames")?;
    sys::cap_mint(part, weak, Rights::READ, 0).map_err(|_| "mint")?;
    expect_err(sys::phys_range_carve(weak, 0, 1, piece), SysError::NoRight, "a carve without derive")?;
    sys::phys_range_carve(part, 1, 2, piece).map_err(|_| "carve of a carve")?;
    check(sys::cap_revoke(part) == Ok(2), "revoke did not take the piece and the mint")?;
    expect_err(sys::identify(piece), SysError::EmptySlot, "the piece survived its source's revoke")?;
    for slot in [part, piece, weak] {
        env.slots.release(slot);
    }
    Ok(())
}
