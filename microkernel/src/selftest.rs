//! The kernel's own unit tests, run in the guest when the command line says
//! `selftest`, before init starts. Each prints a `[selftest] pass|fail NAME`
//! marker (protocol in `abi::selftest`); init runs the user-mode tests after
//! them and prints `done`. The host checks that every expected name passed.

use core::sync::atomic::Ordering;

use abi::selftest::{KERNEL_TESTS, MARKER};

use crate::arch::paging::{MapError, PAGE_SIZE, PageTableFlags, Root, phys_to_virt};
use crate::arch::{self, Fault, Probe, time};
use crate::bootinfo::BootInfo;
use crate::mm::frame::{self, FrameError};
use crate::println;

type TestResult = Result<(), &'static str>;

/// A named kernel test.
type Test = (&'static str, fn(&BootInfo) -> TestResult);

const TESTS: [Test; 7] = [
    ("boot_info", boot_info),
    ("frame_alloc", frame_alloc),
    ("map_unmap", map_unmap),
    ("exception", exception),
    ("timer_ticks", timer_ticks),
    ("ipi_pingpong", ipi_pingpong),
    ("smep_smap", smep_smap),
];

/// Runs every test; true when all passed.
pub fn run(info: &BootInfo) -> bool {
    let mut failed = 0;
    for (index, (name, test)) in TESTS.iter().enumerate() {
        if KERNEL_TESTS.get(index) != Some(name) {
            println!("{MARKER} fail {name}: not in abi::selftest::KERNEL_TESTS at position {index}");
            failed += 1;
            continue;
        }
        match test(info) {
            Ok(()) => println!("{MARKER} pass {name}"),
            Err(reason) => {
                println!("{MARKER} fail {name}: {reason}");
                failed += 1;
            }
        }
    }
    failed == 0
}

fn check(condition: bool, reason: &'static str) -> TestResult {
    if condition { Ok(()) } else { Err(reason) }
}

fn boot_info(info: &BootInfo) -> TestResult {
    check(info.usable().count() > 0, "no usable memory in the map")?;
    check(info.regions_dropped == 0, "memory-map entries were dropped")?;
    check(info.has_flag(abi::selftest::CMDLINE_FLAG), "command line lost")?;
    let image = crate::boot_image(info).map_err(|_| "boot image missing or unreadable")?;
    check(image.find(bootimage::MANIFEST).is_some(), "boot image has no manifest")?;
    println!("boot_info: {} regions, boot image with {} files", info.regions().len(), image.len());
    Ok(())
}

fn frame_alloc(info: &BootInfo) -> TestResult {
    const COUNT: usize = 512;
    let (free_before, usable) = frame::counts();
    check(free_before > COUNT && usable >= free_before, "frame counts inconsistent")?;
    let mut frames = [0u64; COUNT];
    for (i, slot) in frames.iter_mut().enumerate() {
        let paddr = frame::alloc_zeroed().ok_or("allocation failed with memory free")?;
        check(paddr % PAGE_SIZE == 0, "frame not page aligned")?;
        check(paddr >= 0x10_0000, "frame in reserved low memory")?;
        check(info.usable().any(|r| r.start <= paddr && paddr + PAGE_SIZE <= r.end()), "frame outside usable RAM")?;
        let kernel = arch::reserved_memory()[1].clone();
        check(!kernel.contains(&paddr), "frame inside the kernel image")?;
        check(info.initrd.is_none_or(|b| paddr + PAGE_SIZE <= b.start || paddr >= b.start + b.len), "frame inside the boot image")?;
        // Tag each frame; a frame handed out twice would lose its tag.
        // SAFETY: the frame was just allocated to this test.
        unsafe { phys_to_virt(paddr).cast::<u64>().write(i as u64) };
        *slot = paddr;
    }
    check(frame::counts().0 == free_before - COUNT, "free count did not drop by the frames taken")?;
    for (i, &paddr) in frames.iter().enumerate() {
        // SAFETY: still allocated to this test.
        let tag = unsafe { phys_to_virt(paddr).cast::<u64>().read() };
        check(tag == i as u64, "a frame was handed out twice")?;
    }
    for &paddr in &frames {
        frame::free(paddr).map_err(|_| "free of an allocated frame refused")?;
    }
    check(frame::counts().0 == free_before, "frees did not restore the free count")?;
    check(frame::free(frames[0]) == Err(FrameError::NotAllocated), "double free accepted")?;
    check(frame::free(frames[0] + 1) == Err(FrameError::Misaligned), "misaligned free accepted")?;
    check(frame::free(!0xfff) == Err(FrameError::OutOfRange), "out-of-range free accepted")?;
    check(frame::counts().0 == free_before, "refused frees changed the free count")?;
    Ok(())
}

/// A kernel-half address nothing else uses.
const SCRATCH: u64 = 0xFFFF_FD00_0000_0000;

fn map_unmap(_: &BootInfo) -> TestResult {
    let space = arch::kernel_space();
    let flags = PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    let first = frame::alloc_zeroed().ok_or("no frame")?;
    let second = frame::alloc_zeroed().ok_or("no frame")?;
    let mut tables = frame::alloc_zeroed;
    space.map(SCRATCH, first, flags, &mut tables).map_err(|_| "map failed")?;
    check(space.translate(SCRATCH).map(|t| t.0) == Some(first), "translate disagrees with map")?;
    // SAFETY: SCRATCH now maps `first`, owned by this test.
    unsafe { (SCRATCH as *mut u64).write_volatile(0x5eed) };
    // SAFETY: `first` is direct-mapped and owned by this test.
    check(unsafe { phys_to_virt(first).cast::<u64>().read() } == 0x5eed, "write through the mapping missed the frame")?;
    check(arch::probe(Probe::Read(SCRATCH)) == Ok(0xed), "mapped page not readable")?;
    check(space.map(SCRATCH, second, flags, &mut tables) == Err(MapError::AlreadyMapped), "double map accepted")?;
    check(space.map(SCRATCH + 1, second, flags, &mut tables) == Err(MapError::Misaligned), "misaligned map accepted")?;

    check(space.unmap(SCRATCH) == Ok(first), "unmap returned the wrong frame")?;
    check(space.translate(SCRATCH).is_none(), "translate still finds the unmapped page")?;
    let fault = arch::probe(Probe::Read(SCRATCH));
    check(fault == Err(Fault { vector: 14, addr: SCRATCH }), "read after unmap did not page-fault (stale TLB?)")?;
    check(space.unmap(SCRATCH) == Err(MapError::NotMapped), "unmap of nothing accepted")?;

    // Remap to another frame: a stale TLB entry would still show `first`.
    // SAFETY: `second` is direct-mapped and owned by this test.
    unsafe { phys_to_virt(second).cast::<u64>().write(0x7e57) };
    space.map(SCRATCH, second, flags, &mut tables).map_err(|_| "remap failed")?;
    // SAFETY: SCRATCH maps `second` now.
    check(unsafe { (SCRATCH as *const u64).read_volatile() } == 0x7e57, "remapped page shows the old frame")?;
    check(space.unmap(SCRATCH) == Ok(second), "second unmap returned the wrong frame")?;
    frame::free(first).and(frame::free(second)).map_err(|_| "frames not returned")?;
    Ok(())
}

fn exception(_: &BootInfo) -> TestResult {
    let expect = |probe, vector, reason| match arch::probe(probe) {
        Err(fault) if fault.vector == vector => Ok(()),
        _ => Err(reason),
    };
    expect(Probe::InvalidOpcode, 6, "ud2 did not raise #UD")?;
    expect(Probe::Breakpoint, 3, "int3 did not raise #BP")?;
    expect(Probe::Read(0x8000_0000_0000_0000), 13, "non-canonical read did not raise #GP")?;
    expect(Probe::Read(SCRATCH + 0x10_0000), 14, "unmapped read did not raise #PF")?;
    // After all that, the kernel still runs and still takes interrupts.
    let ticks = arch::current_cpu().ticks.load(Ordering::Relaxed);
    wait_until(|| arch::current_cpu().ticks.load(Ordering::Relaxed) > ticks, 1_000_000).ok_or("no timer tick after the faults")?;
    Ok(())
}

fn timer_ticks(_: &BootInfo) -> TestResult {
    const TICKS: u64 = 5;
    let cpus = arch::cpu_count();
    let all_ticked = || (0..cpus).all(|i| arch::cpu(i).is_some_and(|c| c.ticks.load(Ordering::Relaxed) >= TICKS));
    let waited = wait_until(all_ticked, 2_000_000);
    for i in 0..cpus {
        let ticks = arch::cpu(i).map_or(0, |c| c.ticks.load(Ordering::Relaxed));
        println!("timer_ticks: cpu {i}: {ticks} ticks");
    }
    waited.map(|_| ()).ok_or("a CPU did not tick 5 times within 2 s")
}

fn ipi_pingpong(_: &BootInfo) -> TestResult {
    const ROUNDS: u64 = 100;
    let me = arch::current_cpu();
    let cpus = arch::cpu_count();
    // On one CPU, the boot CPU plays both sides with self-IPIs.
    let targets = if cpus == 1 { 0..1 } else { 1..cpus };
    for target in targets.clone() {
        let peer = arch::cpu(target).ok_or("cpu missing")?;
        let pings_before = peer.pings.load(Ordering::Relaxed);
        let start = time::tsc();
        for _ in 0..ROUNDS {
            let pongs = me.pongs.load(Ordering::Acquire);
            arch::send_test_ping(peer);
            wait_until(|| me.pongs.load(Ordering::Acquire) > pongs, 100_000).ok_or("no answer to a ping within 100 ms")?;
        }
        let mean_ns = time::tsc_to_ns(time::tsc() - start) / ROUNDS;
        check(peer.pings.load(Ordering::Relaxed) - pings_before == ROUNDS, "target counted the wrong number of pings")?;
        println!("ipi_pingpong: cpu 0 <-> cpu {target}: {ROUNDS} round trips, mean {mean_ns} ns");
    }
    Ok(())
}

/// Polls `done` until it holds or `timeout_us` passes; `Some` with the
/// microseconds waited.
fn wait_until(done: impl Fn() -> bool, timeout_us: u64) -> Option<u64> {
    let start = time::tsc();
    let deadline = start + time::tsc_hz() * timeout_us / 1_000_000;
    loop {
        if done() {
            return Some(time::tsc_to_ns(time::tsc() - start) / 1000);
        }
        if time::tsc() > deadline {
            return None;
        }
        time::relax();
    }
}

/// A user-half address for `smep_smap`'s page.
const USER_PROBE: u64 = 0x0000_7000_0000_0000;

/// With SMEP and SMAP on, the kernel can neither execute nor read a user
/// page directly; the checked copy helper still reads it.
fn smep_smap(_: &BootInfo) -> TestResult {
    let (smep, smap) = arch::supervisor_protection();
    println!("smep_smap: SMEP {}, SMAP {}", if smep { "on" } else { "off" }, if smap { "on" } else { "off" });
    check(smep && smap, "the CPU model offers no SMEP or SMAP (QEMU's `max` has both)")?;
    let root = Root::new_user(arch::kernel_space(), &mut frame::alloc_zeroed).map_err(|_| "no root")?;
    let page = frame::alloc_zeroed().ok_or("no frame")?;
    // SAFETY: `page` is direct-mapped and owned by this test: `ret`, then a marker byte.
    unsafe { phys_to_virt(page).cast::<[u8; 2]>().write([0xC3, 0x5A]) };
    let mapped = root.map(USER_PROBE, page, PageTableFlags::USER_ACCESSIBLE, &mut frame::alloc_zeroed);
    let previous = Root::current();
    // SAFETY: every address space shares the kernel half; the test runs on
    // this CPU alone and switches back below.
    unsafe { root.activate() };
    let outcome = mapped.map_err(|_| "map failed").and_then(|()| {
        let read = arch::probe(Probe::Read(USER_PROBE + 1));
        let mut copied = [0u8; 1];
        let helper = crate::uaccess::copy_from_user(USER_PROBE + 1, &mut copied);
        let executed = arch::probe(Probe::Execute(USER_PROBE));
        check(read == Err(Fault { vector: 14, addr: USER_PROBE + 1 }), "a kernel read of a user page did not fault (SMAP)")?;
        check(helper.is_ok() && copied[0] == 0x5A, "the checked copy helper could not read the user page")?;
        check(executed == Err(Fault { vector: 14, addr: USER_PROBE }), "the kernel executed a user page (SMEP)")
    });
    // SAFETY: back to the space this CPU ran on.
    unsafe { previous.activate() };
    root.release_user_half(crate::kernel::KERNEL_OWNED, |paddr, flags| {
        if flags.is_none() {
            let _ = frame::free(paddr);
        }
    });
    frame::free(page).and(frame::free(root.0)).map_err(|_| "frames not returned")?;
    outcome
}
