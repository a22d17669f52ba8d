//! The page a pager shares with the kernel to have copy-on-write faults
//! resolved without a round trip (`Sysnum::CowArm`): a reserve of frames
//! the pager gives, a log of the copies the kernel made, and where the
//! pager's hints live. The kernel decides nothing about counts: a frame's
//! hint (a byte, [`HINT_NONE`], [`HINT_SHARED`] or [`HINT_SOLE`]), written
//! by the pager, says what the pager's uniqueness check would decide; the
//! kernel only carries that out and swaps the hint to [`HINT_NONE`].
//!
//! Every field is written by one side and read by the other, so each is
//! an atomic; the kernel trusts none of the values (each frame number is
//! checked against the PhysRange it names frames of).

use core::sync::atomic::{AtomicU32, AtomicU64};

/// Frames the reserve holds at most.
pub const COW_RESERVE: usize = 192;
/// Copies the log holds at most.
pub const COW_LOG: usize = 192;
/// Frames of hints at most: one byte per pool frame, so 256 frames cover a
/// pool of 2^20 frames (4 GiB). A pool frame past the hints is never
/// copied by the kernel.
pub const COW_HINT_FRAMES: usize = 256;
/// Hints per frame of hints.
pub const COW_HINTS_PER_FRAME: u64 = 4096;

/// No hint: a write fault on a copy-on-write page of the frame goes to the
/// pager.
pub const HINT_NONE: u8 = 0;
/// Another reference to the frame exists (a fork shared it): a write
/// copies it.
pub const HINT_SHARED: u8 = 1;
/// The frame's only reference is the mapping that faults (the others went
/// since it was shared): a write may take it in place.
pub const HINT_SOLE: u8 = 2;

/// One copy-on-write fault the kernel resolved: the page at `vaddr` of the
/// space armed with `tag` now maps pool frame `frame`, writable. A frame
/// other than the one it mapped is a reserve frame the page was copied
/// into (the old frame lost that reference); the same frame was taken in
/// place, on a [`HINT_SOLE`].
#[repr(C)]
pub struct CowRecord {
    pub vaddr: AtomicU64,
    pub tag: AtomicU32,
    pub frame: AtomicU32,
}

/// The control page: one frame of the pager's own memory (the `meta`
/// range of `CowArm`), as are its hint frames; reserve frames are frames
/// of the pool.
///
/// Rings count up without wrapping (u32 indices, taken modulo the size):
/// the reserve holds `reserve_tail - reserve_head` frames, the log
/// `log_tail - log_head` records.
#[repr(C)]
pub struct CowControl {
    /// Next reserve frame to take: advanced by the kernel (and by the pager
    /// taking its frames back), with a compare-and-swap.
    pub reserve_head: AtomicU32,
    /// Next reserve slot to fill: advanced by the pager only.
    pub reserve_tail: AtomicU32,
    /// Next record to read: advanced by the pager only.
    pub log_head: AtomicU32,
    /// Next record to write: advanced by the kernel only.
    pub log_tail: AtomicU32,
    /// The hints: `hint_frames` consecutive frames (of the `meta` range)
    /// from `hint_first`; pool frame `i`'s hint is byte `i` of them.
    pub hint_first: AtomicU32,
    pub hint_frames: AtomicU32,
    _pad: [u32; 10],
    pub reserve: [AtomicU32; COW_RESERVE],
    pub log: [CowRecord; COW_LOG],
}

const _: () = assert!(core::mem::size_of::<CowControl>() <= 4096);
const _: () = assert!(core::mem::offset_of!(CowControl, reserve) % 64 == 0);
