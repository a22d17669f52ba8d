//! Sizing the kernel's pools from RAM, once at boot: each kind gets the
//! capacity its rule (`abi::cap::PoolSize`) gives for the usable RAM the
//! boot loader reported, and its slots, with the working memory of the
//! walks the pools bound (revoke's scratch, the cycle walk's lists), are
//! taken from the kernel's frames and kept. The frames come out of the
//! kernel's reserve (an eighth of RAM), so init's share of RAM does not
//! change; allowances do not either (init still decides who may create
//! how many objects; a pool's capacity is only their ceiling).

use abi::cap::ObjectKind;

use crate::arch::paging::PAGE_SIZE;
use crate::mm::frame;

use super::{Kernel, reclaim, revoke};

/// The capacity of `kind`'s pool for `usable_frames` frames of RAM.
pub fn capacity(kind: ObjectKind, usable_frames: usize) -> usize {
    let rule = kind.pool_size();
    let mib = (usable_frames as u64 * PAGE_SIZE) >> 20;
    let by_ram = mib.checked_div(rule.mib_per_object).unwrap_or(0);
    by_ram.max(rule.floor).min(rule.ceiling) as usize
}

impl Kernel {
    /// Gives every pool, and the walks over them, their storage for
    /// `usable_frames` frames of RAM; the frames that took, or `None` when
    /// RAM has no room.
    pub fn size_pools(&mut self, usable_frames: usize) -> Option<usize> {
        let free_before = frame::counts().0;
        let size = |kind| capacity(kind, usable_frames);
        let (threads, tables) = (size(ObjectKind::Thread), size(ObjectKind::CSpace).min(reclaim::MAX_TABLES));
        let provided = self.threads.provide(threads)
            && self.spaces.provide(size(ObjectKind::AddressSpace))
            && self.cspaces.provide(tables)
            && self.endpoints.provide(size(ObjectKind::Endpoint))
            && self.notifications.provide(size(ObjectKind::Notification))
            && self.phys_ranges.provide(size(ObjectKind::PhysRange))
            && self.replies.provide(size(ObjectKind::Reply))
            && self.irq_lines.provide(size(ObjectKind::IrqLine))
            && self.io_ports.provide(size(ObjectKind::IoPorts));
        let tracked = threads + tables + self.endpoints.capacity() + self.notifications.capacity();
        if !(provided && self.walk_lists.provide(tracked) && revoke::provide(tables)) {
            return None;
        }
        let taken = free_before - frame::counts().0;
        crate::println!(
            "pools: {threads} threads, {} spaces, {tables} tables, {} endpoints, {} notifications, {} replies, {} ranges ({} KiB)",
            self.spaces.capacity(),
            self.endpoints.capacity(),
            self.notifications.capacity(),
            self.replies.capacity(),
            self.phys_ranges.capacity(),
            (taken * PAGE_SIZE as usize) >> 10,
        );
        Some(taken)
    }
}
