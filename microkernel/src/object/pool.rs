//! Bounded, accounted storage for one kind of kernel object: slots sized
//! from RAM at boot and laid in frames the kernel keeps ([`super::storage`]), each with a generation (so a stale reference never reaches a
//! new object), a reference count (capabilities and threads that name it),
//! and the capability table whose allowance paid for it, if any.
//!
//! Running out is an error the caller returns to user space, never a panic.

use core::cell::Cell;

use abi::syscall::SysError;

use super::{ObjRef, storage};

struct Slot<T> {
    generation: u32,
    refs: u32,
    payer: Option<ObjRef>,
    marks: Cell<Marks>,
    value: Option<T>,
}

/// What the cycle walk (`kernel/reclaim.rs`) notes on an object, kept in
/// its slot so that a walk needs no memory of its own sized by the pools
/// and nothing to clear first: the walk `stamp` that found it (the walk's
/// other marks are only meaningful under that stamp), the references it
/// gets from inside that walk, whether it is live, and whether a walk
/// found it garbage (cleared when the object goes).
#[derive(Clone, Copy, Default)]
pub struct Marks {
    pub stamp: u32,
    pub inside: u32,
    pub live: bool,
    pub doomed: bool,
}

/// An object of a pool, mutably, with its generation.
pub type Entry<'a, T> = (&'a mut T, u32);

pub struct Pool<T: 'static> {
    slots: &'static mut [Slot<T>],
    used: usize,
    /// One past the highest slot ever used: walks over the pool stop there,
    /// so a pool larger than its use costs them nothing.
    end: usize,
}

impl<T: 'static> Pool<T> {
    /// A pool with no slots, until [`Pool::provide`] gives it some.
    pub const fn new() -> Self {
        Self { slots: &mut [], used: 0, end: 0 }
    }

    /// Gives the pool `count` empty slots taken from the kernel's frames;
    /// false when RAM has no run for them (the pool stays as it was).
    pub fn provide(&mut self, count: usize) -> bool {
        if self.used != 0 {
            return false;
        }
        let count = count.min(usize::from(u16::MAX));
        let Some(slots) =
            storage::filled(count, |_| Slot { generation: 0, refs: 0, payer: None, marks: Cell::new(Marks::default()), value: None })
        else {
            return false;
        };
        (self.slots, self.end) = (slots, 0);
        true
    }

    /// Stores `value` with no references yet; `(index, generation)` name it.
    pub fn insert(&mut self, value: T) -> Result<(u16, u32), SysError> {
        let index = self.slots.iter().position(|slot| slot.value.is_none()).ok_or(SysError::OutOfKernelMemory)?;
        let slot = &mut self.slots[index];
        slot.value = Some(value);
        slot.refs = 0;
        slot.payer = None;
        self.used += 1;
        self.end = self.end.max(index + 1);
        Ok((index as u16, slot.generation))
    }

    fn slot(&self, index: u16, generation: u32) -> Option<&Slot<T>> {
        self.slots.get(usize::from(index)).filter(|slot| slot.generation == generation && slot.value.is_some())
    }

    fn slot_mut(&mut self, index: u16, generation: u32) -> Option<&mut Slot<T>> {
        self.slots.get_mut(usize::from(index)).filter(|slot| slot.generation == generation && slot.value.is_some())
    }

    pub fn get(&self, index: u16, generation: u32) -> Option<&T> {
        self.slot(index, generation)?.value.as_ref()
    }

    pub fn get_mut(&mut self, index: u16, generation: u32) -> Option<&mut T> {
        self.slot_mut(index, generation)?.value.as_mut()
    }

    /// The object at `index`, whatever its generation (for intrusive links,
    /// which always point at live objects).
    pub fn at(&self, index: u16) -> Option<&T> {
        self.slots.get(usize::from(index))?.value.as_ref()
    }

    pub fn at_mut(&mut self, index: u16) -> Option<&mut T> {
        self.slots.get_mut(usize::from(index))?.value.as_mut()
    }

    /// The two distinct objects at `a` and `b`, whatever their generations,
    /// mutably at once, each with its generation.
    #[inline(always)]
    pub fn pair_mut(&mut self, a: u16, b: u16) -> Option<(Entry<'_, T>, Entry<'_, T>)> {
        let [first, second] = self.slots.get_disjoint_mut([usize::from(a), usize::from(b)]).ok()?;
        Some(((first.value.as_mut()?, first.generation), (second.value.as_mut()?, second.generation)))
    }

    pub fn generation_of(&self, index: u16) -> Option<u32> {
        let slot = self.slots.get(usize::from(index))?;
        slot.value.is_some().then_some(slot.generation)
    }

    pub fn add_ref(&mut self, index: u16, generation: u32) {
        if let Some(slot) = self.slot_mut(index, generation) {
            slot.refs += 1;
        }
    }

    /// Drops one reference; true when none are left (the caller destroys it).
    pub fn drop_ref(&mut self, index: u16, generation: u32) -> bool {
        match self.slot_mut(index, generation) {
            Some(slot) => {
                slot.refs = slot.refs.saturating_sub(1);
                slot.refs == 0
            }
            None => false,
        }
    }

    /// Records the table whose allowance paid for the object.
    pub fn set_payer(&mut self, index: u16, generation: u32, payer: ObjRef) {
        if let Some(slot) = self.slot_mut(index, generation) {
            slot.payer = Some(payer);
        }
    }

    /// The table that paid for the object, if one did.
    pub fn payer(&self, index: u16, generation: u32) -> Option<ObjRef> {
        self.slot(index, generation)?.payer
    }

    /// Takes the object out; the slot's next object gets a new generation.
    pub fn remove(&mut self, index: u16, generation: u32) -> Option<T> {
        let slot = self.slot_mut(index, generation)?;
        let value = slot.value.take();
        slot.generation = slot.generation.wrapping_add(1);
        slot.refs = 0;
        slot.marks.set(Marks::default());
        self.used -= 1;
        value
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// References held on the object at `index`, whatever its generation.
    pub fn refs_at(&self, index: u16) -> u32 {
        self.slots.get(usize::from(index)).map_or(0, |slot| slot.refs)
    }

    /// The cycle walk's marks on the object at `index`, whatever its
    /// generation.
    pub fn marks(&self, index: u16) -> Option<&Cell<Marks>> {
        Some(&self.slots.get(usize::from(index))?.marks)
    }

    /// One past the highest slot ever used.
    pub fn end(&self) -> u16 {
        self.end as u16
    }

    /// Live objects with their indices, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u16, &mut T)> {
        self.slots[..self.end].iter_mut().enumerate().filter_map(|(i, slot)| Some((i as u16, slot.value.as_mut()?)))
    }

    /// Live objects with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &T)> {
        self.slots[..self.end].iter().enumerate().filter_map(|(i, slot)| Some((i as u16, slot.value.as_ref()?)))
    }
}
