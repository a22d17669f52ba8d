//! Copy-on-write faults the kernel resolves for us (`CowArm`,
//! `microkernel/src/kernel/cow.rs`), with no round trip to this pager.
//!
//! - Hints ([`CowMemory`]): a byte per pool frame, shared by every server:
//!   `HINT_SHARED` when a fork shares a page's frame (`fork`), and when any
//!   reference to it goes (`MemClient::release`), `HINT_SOLE` if the
//!   strategy shows that one is left, else `HINT_NONE`. A shared hint
//!   means that a write must copy, a sole one that the last holder may
//!   write in place: the kernel does only that, and clears the hint as it
//!   does. No hint sends the fault to us, and the strategy's uniqueness
//!   check decides, as before.
//! - [`Copies`]: each server's control page with the kernel. We keep its
//!   reserve of frames filled from our stock (never with a message, so a
//!   quiesced server holds nothing), and apply its log to our page maps
//!   and counts before we act on a request (`Server::settle_copies`): a
//!   copy's page map names the copy and the old frame loses the
//!   reference; a page taken in place is claimed (`MemClient::
//!   claim_unique`).

use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64};

use abi::cow::{COW_HINT_FRAMES, COW_HINTS_PER_FRAME, COW_LOG, COW_RESERVE, CowControl, HINT_NONE, HINT_SHARED, HINT_SOLE};
use abi::syscall::SysError;
use alloc::vec::Vec;
use rt::mem::{PAGE_SIZE, PageSource};

use crate::counts::MemClient;
use crate::space::Page;
use crate::system::{self, Counters};

/// The frames of our own memory (`slot::FRAMES`) the kernel reads: the
/// hints (a byte per pool frame), then one control page per server.
pub struct CowMemory {
    hints: &'static [AtomicU8],
    /// Set by the first fork whose child another server serves: from then
    /// on a frame's holders may be served by two servers, and no release
    /// writes a sole hint (`Hints::release`).
    across_servers: AtomicBool,
    /// The first hint frame's index in `slot::FRAMES`; the control pages
    /// follow the hint frames.
    first_frame: u64,
    hint_frames: u64,
    at: u64,
}

impl CowMemory {
    /// Maps and zeroes the hints for a pool of `pool_frames` frames and
    /// `servers` control pages; `None` when the pool has more frames than
    /// a control page's hints can name (the kernel then copies nothing).
    pub fn new(pages: &PageSource, pool_frames: u64, servers: u16) -> Result<Option<Self>, SysError> {
        let hint_frames = pool_frames.div_ceil(COW_HINTS_PER_FRAME);
        if hint_frames > COW_HINT_FRAMES as u64 {
            return Ok(None);
        }
        let frames = hint_frames + u64::from(servers);
        let (at, first_frame) = pages.alloc_frames(frames)?;
        // SAFETY: just mapped writable for us alone, and aligned; from now
        // on only ever accessed with atomics (by us and by the kernel).
        let words = unsafe { core::slice::from_raw_parts(at as *const AtomicU64, (frames * PAGE_SIZE / 8) as usize) };
        words.iter().for_each(|word| word.store(0, Relaxed));
        // SAFETY: the first `hint_frames` of those pages, as bytes.
        let hints = unsafe { core::slice::from_raw_parts(at as *const AtomicU8, (hint_frames * PAGE_SIZE) as usize) };
        Ok(Some(Self { hints, across_servers: AtomicBool::new(false), first_frame, hint_frames, at }))
    }

    /// The hints, for a loop over pages.
    pub fn hints(&'static self) -> Hints {
        Hints { bytes: self.hints, across_servers: &self.across_servers }
    }

    /// Server `index`'s control page: its index in `slot::FRAMES`.
    pub fn control_frame(&self, index: u16) -> u64 {
        self.first_frame + self.hint_frames + u64::from(index)
    }

    fn control(&self, index: u16) -> &'static CowControl {
        let at = self.at + (self.hint_frames + u64::from(index)) * PAGE_SIZE;
        // SAFETY: a zeroed page of ours (mapped by `new`), accessed with
        // atomics only; `CowControl` fits in a page.
        unsafe { &*(at as *const CowControl) }
    }
}

/// The hints, a byte per pool frame (`abi::cow`): `HINT_SHARED` says that
/// another reference to the frame exists, `HINT_SOLE` that one reference
/// is left.
#[derive(Clone, Copy)]
pub struct Hints {
    bytes: &'static [AtomicU8],
    across_servers: &'static AtomicBool,
}

impl Hints {
    /// Another reference to `frame` exists now (a fork shared it).
    #[inline(always)]
    pub fn set(self, frame: u32) {
        if let Some(hint) = self.bytes.get(frame as usize) {
            hint.store(HINT_SHARED, Relaxed);
        }
    }

    /// A fork is about to share frames with a child another server
    /// serves (before its `ShareCow`).
    pub fn share_across_servers(self) {
        self.across_servers.store(true, SeqCst);
    }

    /// No process is left (its table lock held): no frame is shared, and
    /// no fork is in progress, so sole hints are safe again.
    pub fn no_processes_left(self) {
        self.across_servers.store(false, SeqCst);
    }

    /// A reference to `frame` went, leaving exactly one (`sole`) or an
    /// unknown number. A sole hint lets the kernel give the last holder
    /// its write right back in place. It stays true until a fork shares
    /// the frame again, and the fork sets its hint before the child runs
    /// or the parent resumes; a process has one thread, so nothing of it
    /// can fault in between. A sole hint on a frame that is freed later is
    /// harmless: a frame is copy-on-write in a space only after a fork set
    /// its hint.
    ///
    /// The caller passes `sole` only where [`Hints::sole_allowed`] said so.
    #[inline(always)]
    pub fn release(self, frame: u32, sole: bool) {
        if let Some(hint) = self.bytes.get(frame as usize) {
            hint.store(if sole { HINT_SOLE } else { HINT_NONE }, Relaxed);
        }
    }

    /// Whether a run of releases may write sole hints: while every holder
    /// of a frame is served by one server, whose requests run one at a
    /// time. Once a fork has put a child on another server, the last
    /// holder may be forked on its own server while another releases:
    /// that fork's increment is not in the word yet, so a release's `sole`
    /// may be wrong, and its shared hint may land before the release's
    /// store. From then on no sole hint is written, until no process is
    /// left (`no_processes_left`). (Read once per run: if no fork had
    /// crossed servers when it was read, the frames of the releasing
    /// process are held on its server alone, and a fork that crosses
    /// meanwhile shares none of them.)
    pub fn sole_allowed(self) -> bool {
        !self.across_servers.load(SeqCst)
    }
}

/// A server's control page with the kernel.
pub struct Copies {
    control: &'static CowControl,
}

impl Copies {
    /// Sets up server `index`'s control page, naming the hint frames.
    pub fn new(memory: &CowMemory, index: u16) -> Self {
        let control = memory.control(index);
        control.hint_first.store(memory.first_frame as u32, Relaxed);
        control.hint_frames.store(memory.hint_frames as u32, Release);
        Self { control }
    }

    /// Applies the kernel's copies to the page maps and counts, then tops
    /// the reserve up from the frames at hand. Out of line: it is called
    /// before every request and must not weigh on its callers' loops.
    #[inline(never)]
    pub fn settle(&self, mem: &mut MemClient) {
        self.apply_log(mem);
        let held = self.control.reserve_tail.load(Relaxed).wrapping_sub(self.control.reserve_head.load(Acquire));
        if (held as usize) < COW_RESERVE / 2 {
            self.refill(mem, held);
        }
    }

    /// Applies the kernel's copies to the page maps and counts.
    pub fn apply_log(&self, mem: &mut MemClient) {
        let control = self.control;
        let (head, tail) = (control.log_head.load(Relaxed), control.log_tail.load(Acquire));
        if head == tail {
            return;
        }
        let sys = system::get();
        let mut old = Vec::with_capacity(tail.wrapping_sub(head) as usize);
        let mut reused = 0;
        let mut at = head;
        while at != tail {
            let record = &control.log[at as usize % COW_LOG];
            let (vaddr, pid, frame) = (record.vaddr.load(Relaxed), record.tag.load(Relaxed), record.frame.load(Relaxed));
            let record = sys.procs.lock().map.get(&pid).map(|process| process.memory.clone());
            let vpn = vaddr / PAGE_SIZE;
            let replaced = record.and_then(|memory| {
                let mut memory = memory.lock();
                let mut page = memory.pages.get(vpn)?;
                if page.frame == frame {
                    // Taken in place: ours alone now, if the strategy can
                    // show it here; else the page stays counted as shared
                    // (its count reaches 1 when the decrement another
                    // server buffered arrives), writable all the same.
                    mem.claim_unique(&mut page);
                    memory.pages.insert(vpn, page);
                    return Some(None);
                }
                memory.pages.insert(vpn, Page { frame, flags: page.flags & !Page::SHARED });
                Some(Some(page))
            });
            match replaced {
                Some(Some(page)) => {
                    mem.adopt_copy(frame);
                    old.push(page);
                }
                Some(None) => reused += 1,
                None => {
                    // Every exit and unmap applies the log first, so this
                    // is a bug; the copy's frame at least is not lost.
                    rt::println!("process: the kernel copied page {vpn:#x} of pid {pid}, which has no such page");
                    mem.put_at_hand(frame);
                }
            }
            at = at.wrapping_add(1);
        }
        control.log_head.store(tail, Release);
        let copies = old.len() as u64;
        Counters::add(&sys.stats.cow_faults, copies + reused);
        Counters::add(&sys.stats.cow_copies, copies);
        Counters::add(&sys.stats.kernel_copies, copies);
        Counters::add(&sys.stats.cow_reused, reused);
        Counters::add(&sys.stats.kernel_reuses, reused);
        mem.release(old.into_iter());
    }

    fn refill(&self, mem: &mut MemClient, held: u32) {
        let mut tail = self.control.reserve_tail.load(Relaxed);
        for _ in held as usize..COW_RESERVE {
            let Some(frame) = mem.take_at_hand() else { break };
            self.control.reserve[tail as usize % COW_RESERVE].store(frame, Relaxed);
            tail = tail.wrapping_add(1);
            self.control.reserve_tail.store(tail, Release);
        }
    }

    /// Takes every reserve frame back into the stock (the kernel may be
    /// taking one at the same time: each is claimed with a compare-and-swap).
    pub fn take_back(&self, mem: &mut MemClient) {
        let control = self.control;
        loop {
            let head = control.reserve_head.load(Acquire);
            if head == control.reserve_tail.load(Relaxed) {
                return;
            }
            let frame = control.reserve[head as usize % COW_RESERVE].load(Relaxed);
            if control.reserve_head.compare_exchange(head, head.wrapping_add(1), AcqRel, Relaxed).is_ok() {
                mem.put_at_hand(frame);
            }
        }
    }
}
