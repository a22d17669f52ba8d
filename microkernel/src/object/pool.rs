//! Bounded, accounted storage for one kind of kernel object: a fixed array
//! of slots, each with a generation (so a stale reference never reaches a
//! new object), a reference count (capabilities and threads that name it),
//! and the capability table whose allowance paid for it, if any.
//!
//! Running out is an error the caller returns to user space, never a panic.

use abi::syscall::SysError;

use super::ObjRef;

struct Slot<T> {
    generation: u32,
    refs: u32,
    payer: Option<ObjRef>,
    value: Option<T>,
}

pub struct Pool<T, const N: usize> {
    slots: [Slot<T>; N],
    used: usize,
}

impl<T, const N: usize> Pool<T, N> {
    pub const fn new() -> Self {
        Self { slots: [const { Slot { generation: 0, refs: 0, payer: None, value: None } }; N], used: 0 }
    }

    /// Stores `value` with no references yet; `(index, generation)` name it.
    pub fn insert(&mut self, value: T) -> Result<(u16, u32), SysError> {
        let index = self.slots.iter().position(|slot| slot.value.is_none()).ok_or(SysError::OutOfKernelMemory)?;
        let slot = &mut self.slots[index];
        slot.value = Some(value);
        slot.refs = 0;
        slot.payer = None;
        self.used += 1;
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
    /// mutably at once.
    pub fn pair_mut(&mut self, a: u16, b: u16) -> Option<(&mut T, &mut T)> {
        let [first, second] = self.slots.get_disjoint_mut([usize::from(a), usize::from(b)]).ok()?;
        Some((first.value.as_mut()?, second.value.as_mut()?))
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
        self.used -= 1;
        value
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    /// References held on the object at `index`, whatever its generation.
    pub fn refs_at(&self, index: u16) -> u32 {
        self.slots.get(usize::from(index)).map_or(0, |slot| slot.refs)
    }

    /// Live objects with their indices, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u16, &mut T)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, slot)| Some((i as u16, slot.value.as_mut()?)))
    }

    /// Live objects with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, slot)| Some((i as u16, slot.value.as_ref()?)))
    }
}
