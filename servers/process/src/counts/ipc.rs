//! atomic-ipc: every frame counted from the moment it is handed out (at 1
//! in the memory server's table), and every change sent to the memory
//! server before the operation that made it returns: a fork's increments
//! and an exit's decrements in batches, a copy-on-write copy's decrement at
//! once. What isolating the counts in another address space costs.

use alloc::vec::Vec;

use proto::memory::{MAX_REF_OPS, RefOp, RefOps};

use crate::link::Link;
use crate::space::Page;

#[derive(Default)]
pub struct Ipc {
    incs: Vec<u32>,
}

impl Ipc {
    pub fn share(&mut self, frame: u32) {
        self.incs.push(frame);
    }

    pub fn commit(&mut self, link: &mut Link) {
        for chunk in self.incs.chunks(MAX_REF_OPS) {
            link.ref_batch(chunk.iter().copied().map(RefOp::inc).collect(), true);
        }
        self.incs.clear();
    }

    /// Decrements; the memory server frees a frame at zero into its pool.
    pub fn release(&mut self, link: &mut Link, pages: impl Iterator<Item = Page>) {
        let mut ops = RefOps::new();
        for page in pages {
            if ops.push(RefOp::dec(page.frame)).is_err() {
                link.ref_batch(core::mem::take(&mut ops), true);
                let _ = ops.push(RefOp::dec(page.frame));
            }
        }
        if !ops.is_empty() {
            link.ref_batch(ops, true);
        }
    }
}
