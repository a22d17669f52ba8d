//! The frame pool: one bit per frame of the server's PhysRange, handed out
//! as runs found from a rotating cursor, and taken back frame by frame;
//! and the record of which client each frame was handed to, and how many
//! frames each client holds, apart from the frames it holds as its heap
//! (one run each, taken back only with the whole client).

use alloc::vec;
use alloc::vec::Vec;

use proto::memory::{FrameRun, MAX_RUNS, Runs, client};

/// The owner of frames no client holds: the server's own, and the frames
/// of a strategy's region.
pub const SERVER: u8 = 0;
/// The mark, in a frame's owner, of a frame held as its client's heap: no
/// client record has this bit, so no request of the client names it.
const HEAP: u8 = 0x80;

const _: () = assert!(client::RECORDS <= HEAP as u64);

pub struct Pool {
    /// Bit set: frame in use (or the server's own).
    used: Vec<u64>,
    /// The client record each frame in use was handed to.
    owner: Vec<u8>,
    /// Frames each client record holds (its heap apart).
    held: [u64; client::RECORDS as usize],
    /// Frames each client record holds as its heap.
    heap: [u64; client::RECORDS as usize],
    frames: u64,
    /// Frames below are the server's own.
    first: u64,
    free: u64,
    /// Where the next search starts.
    cursor: u64,
}

impl Pool {
    /// Frames `[first, frames)` of the range are free; below `first` are the
    /// server's own.
    pub fn new(first: u64, frames: u64) -> Self {
        let mut pool = Self {
            used: vec![0u64; frames.div_ceil(64) as usize],
            owner: vec![SERVER; frames as usize],
            held: [0; client::RECORDS as usize],
            heap: [0; client::RECORDS as usize],
            frames,
            first,
            free: frames,
            cursor: first,
        };
        for frame in 0..first {
            pool.take(frame);
        }
        pool
    }

    pub fn free_frames(&self) -> u64 {
        self.free
    }

    pub fn is_used(&self, frame: u64) -> bool {
        frame >= self.frames || self.used[(frame / 64) as usize] & (1 << (frame % 64)) != 0
    }

    /// Whether `frame` is one of the pool's, handed out (to a client, or to
    /// a strategy's region): what a client may name.
    pub fn handed_out(&self, frame: u64) -> bool {
        (self.first..self.frames).contains(&frame) && self.is_used(frame)
    }

    /// Whether `frame` is one of the pool's, handed out to client record
    /// `record`.
    pub fn held_by(&self, frame: u64, record: u8) -> bool {
        self.handed_out(frame) && self.owner[frame as usize] == record && record != SERVER
    }

    /// Frames client record `record` holds.
    pub fn held(&self, record: u8) -> u64 {
        self.held[usize::from(record)]
    }

    /// Frames client record `record` holds as its heap.
    pub fn heap_of(&self, record: u8) -> u64 {
        self.heap[usize::from(record)]
    }

    /// Frames every client holds as its heap.
    pub fn heap_frames(&self) -> u64 {
        self.heap.iter().sum()
    }

    fn take(&mut self, frame: u64) {
        self.used[(frame / 64) as usize] |= 1 << (frame % 64);
        self.free -= 1;
    }

    /// Up to `count` free frames for client record `owner`, in at most
    /// `MAX_RUNS` runs; empty when none is free.
    pub fn alloc(&mut self, count: u16, owner: u8) -> Runs {
        let mut runs = Runs::new();
        let mut wanted = u64::from(count).min(self.free);
        let mut frame = self.cursor;
        let mut scanned = 0;
        while wanted > 0 && scanned < self.frames && runs.len() < MAX_RUNS {
            if frame >= self.frames {
                frame = 0;
            }
            // Skip whole words in use.
            if frame.is_multiple_of(64) && self.used[(frame / 64) as usize] == u64::MAX {
                frame += 64;
                scanned += 64;
                continue;
            }
            if self.is_used(frame) {
                frame += 1;
                scanned += 1;
                continue;
            }
            let first = frame;
            while frame < self.frames && wanted > 0 && !self.is_used(frame) && frame - first < u64::from(u16::MAX) {
                self.take(frame);
                self.owner[frame as usize] = owner;
                self.held[usize::from(owner)] += 1;
                frame += 1;
                scanned += 1;
                wanted -= 1;
            }
            let _ = runs.push(FrameRun::new(first, (frame - first) as u16));
        }
        self.cursor = frame;
        runs
    }

    /// `count` (1 to `u16::MAX`) consecutive free frames for client record
    /// `owner`'s heap, the first such run from the cursor on, else from
    /// the pool's start; `None` (and nothing taken) if there is none.
    pub fn alloc_heap(&mut self, count: u16, owner: u8) -> Option<FrameRun> {
        let wanted = u64::from(count);
        if wanted == 0 || wanted > self.free || owner == SERVER {
            return None;
        }
        let first = self.free_run(self.cursor.max(self.first), wanted).or_else(|| self.free_run(self.first, wanted))?;
        for frame in first..first + wanted {
            self.take(frame);
            self.owner[frame as usize] = owner | HEAP;
        }
        self.heap[usize::from(owner)] += wanted;
        self.cursor = first + wanted;
        Some(FrameRun::new(first, count))
    }

    /// The first frame of the first `count` free frames in a row at or
    /// after `from`.
    fn free_run(&self, from: u64, count: u64) -> Option<u64> {
        let (mut start, mut frame) = (from, from);
        while frame < self.frames {
            if frame.is_multiple_of(64) && self.used[(frame / 64) as usize] == u64::MAX {
                frame += 64;
                start = frame;
            } else if self.is_used(frame) {
                frame += 1;
                start = frame;
            } else {
                frame += 1;
                if frame - start == count {
                    return Some(start);
                }
            }
        }
        None
    }

    /// Puts back every frame client record `record` holds as its heap (its
    /// supervisor tore it down); how many.
    pub fn release_heap(&mut self, record: u8) -> u64 {
        let mark = record | HEAP;
        for frame in self.first..self.frames {
            if self.owner[frame as usize] == mark && self.is_used(frame) {
                self.owner[frame as usize] = SERVER;
                self.used[(frame / 64) as usize] &= !(1 << (frame % 64));
                self.free += 1;
            }
        }
        core::mem::take(&mut self.heap[usize::from(record)])
    }

    /// The server's own frames `first .. first + count`, just below the
    /// pool (the first strategy's region, given up by a swap), become the
    /// pool's.
    pub fn grow_down(&mut self, first: u64, count: u64) {
        if first.checked_add(count) != Some(self.first) {
            return;
        }
        for frame in first..self.first {
            self.used[(frame / 64) as usize] &= !(1 << (frame % 64));
        }
        self.free += count;
        self.first = first;
    }

    /// Puts a frame back (a frame already free stays free, and a heap
    /// frame stays its client's: the callers checked it was handed out
    /// and counted, so neither happens).
    pub fn release(&mut self, frame: u64) {
        if !self.handed_out(frame) || self.owner[frame as usize] & HEAP != 0 {
            return;
        }
        let owner = core::mem::replace(&mut self.owner[frame as usize], SERVER);
        self.held[usize::from(owner)] -= 1;
        self.used[(frame / 64) as usize] &= !(1 << (frame % 64));
        self.free += 1;
    }
}
