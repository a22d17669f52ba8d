//! A process's page map, laid out as the kernel lays out its own tables:
//! leaves of 512 pages (the span of one last-level page table), found by
//! the page number's upper bits, each with a bitmap of the pages present.
//! So a fork's walk, the child's copy and an exit's drop cost per leaf and
//! per present page, with no per-page allocation or tree node.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, btree_map};

use crate::space::Page;

const LEAF_PAGES: u64 = 512;
const WORDS: usize = (LEAF_PAGES / 64) as usize;
/// Heap bytes around a leaf: its box header and its share of the tree.
const LEAF_OVERHEAD: usize = 128;

#[derive(Clone)]
struct Leaf {
    present: [u64; WORDS],
    pages: [Page; LEAF_PAGES as usize],
}

impl Leaf {
    fn empty() -> Box<Self> {
        Box::new(Self { present: [0; WORDS], pages: [Page { frame: 0, flags: 0 }; LEAF_PAGES as usize] })
    }

    fn has(&self, slot: usize) -> bool {
        self.present[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn is_empty(&self) -> bool {
        self.present.iter().all(|&word| word == 0)
    }

    /// The present slots, in order.
    fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.present.iter().enumerate().flat_map(|(i, &word)| Bits(word).map(move |bit| i * 64 + bit))
    }
}

/// The set bits of a word, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

fn split(vpn: u64) -> (u64, usize) {
    (vpn / LEAF_PAGES, (vpn % LEAF_PAGES) as usize)
}

/// The pages of a [`PageMap`], in order: a cursor over leaves, bitmap
/// words and bits.
pub struct Iter<'a> {
    leaves: btree_map::Iter<'a, u64, Box<Leaf>>,
    leaf: Option<(u64, &'a Leaf)>,
    word: usize,
    bits: u64,
}

impl Iterator for Iter<'_> {
    type Item = (u64, Page);

    /// Inlined into every loop over a page map (an exit's release is one
    /// per page).
    #[inline(always)]
    fn next(&mut self) -> Option<(u64, Page)> {
        loop {
            if let Some((index, leaf)) = self.leaf {
                if self.bits != 0 {
                    let slot = self.word * 64 + self.bits.trailing_zeros() as usize;
                    self.bits &= self.bits - 1;
                    return Some((index * LEAF_PAGES + slot as u64, leaf.pages[slot]));
                }
                if self.word + 1 < WORDS {
                    self.word += 1;
                    self.bits = leaf.present[self.word];
                    continue;
                }
            }
            let (&index, leaf) = self.leaves.next()?;
            self.leaf = Some((index, &**leaf));
            self.word = 0;
            self.bits = leaf.present[0];
        }
    }
}

/// Page number (address / 4096) to page.
#[derive(Clone, Default)]
pub struct PageMap {
    leaves: BTreeMap<u64, Box<Leaf>>,
}

impl PageMap {
    /// Bytes of our heap a copy of this map takes (a fork's child), at
    /// most.
    pub fn footprint(&self) -> usize {
        self.leaves.len() * (core::mem::size_of::<Leaf>() + LEAF_OVERHEAD)
    }

    /// Bytes of our heap one more page may take (a new leaf).
    pub const PAGE_FOOTPRINT: usize = core::mem::size_of::<Leaf>() + LEAF_OVERHEAD;

    pub fn get(&self, vpn: u64) -> Option<Page> {
        let (leaf, slot) = split(vpn);
        self.leaves.get(&leaf).filter(|l| l.has(slot)).map(|l| l.pages[slot])
    }

    /// Maps `vpn` to `page`; the page it replaces, if any.
    pub fn insert(&mut self, vpn: u64, page: Page) -> Option<Page> {
        let (leaf, slot) = split(vpn);
        let leaf = self.leaves.entry(leaf).or_insert_with(Leaf::empty);
        let old = leaf.has(slot).then(|| leaf.pages[slot]);
        leaf.present[slot / 64] |= 1 << (slot % 64);
        leaf.pages[slot] = page;
        old
    }

    pub fn remove(&mut self, vpn: u64) -> Option<Page> {
        let (index, slot) = split(vpn);
        let leaf = self.leaves.get_mut(&index).filter(|l| l.has(slot))?;
        leaf.present[slot / 64] &= !(1 << (slot % 64));
        let page = leaf.pages[slot];
        if leaf.is_empty() {
            self.leaves.remove(&index);
        }
        Some(page)
    }

    /// Every page, by page number.
    pub fn iter(&self) -> Iter<'_> {
        Iter { leaves: self.leaves.iter(), leaf: None, word: 0, bits: 0 }
    }

    /// For each leaf with pages, the first and last page number present, in
    /// order: the spans a fork shares (holes between are skipped by the
    /// kernel), found without visiting the pages.
    pub fn spans(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.leaves.iter().filter_map(|(&index, leaf)| {
            let first = leaf.present.iter().enumerate().find(|(_, w)| **w != 0).map(|(i, w)| i * 64 + w.trailing_zeros() as usize)?;
            let last =
                leaf.present.iter().enumerate().rev().find(|(_, w)| **w != 0).map(|(i, w)| i * 64 + 63 - w.leading_zeros() as usize)?;
            Some((index * LEAF_PAGES + first as u64, index * LEAF_PAGES + last as u64))
        })
    }

    /// Every page, by page number, to change in place.
    pub fn for_each_mut(&mut self, mut change: impl FnMut(u64, &mut Page)) {
        for (&index, leaf) in self.leaves.iter_mut() {
            for word in 0..WORDS {
                for bit in Bits(leaf.present[word]) {
                    let slot = word * 64 + bit;
                    change(index * LEAF_PAGES + slot as u64, &mut leaf.pages[slot]);
                }
            }
        }
    }

    /// Takes out the pages numbered `start..end`.
    pub fn take_range(&mut self, start: u64, end: u64) -> PageMap {
        let mut taken = PageMap::default();
        if start >= end {
            return taken;
        }
        let leaves: alloc::vec::Vec<u64> =
            self.leaves.range(start / LEAF_PAGES..=(end - 1) / LEAF_PAGES).map(|(&index, _)| index).collect();
        for index in leaves {
            let Some(leaf) = self.leaves.get_mut(&index) else { continue };
            let first = index * LEAF_PAGES;
            let inside: alloc::vec::Vec<usize> = leaf.slots().filter(|&slot| (start..end).contains(&(first + slot as u64))).collect();
            for slot in inside {
                leaf.present[slot / 64] &= !(1 << (slot % 64));
                taken.insert(first + slot as u64, leaf.pages[slot]);
            }
            if leaf.is_empty() {
                self.leaves.remove(&index);
            }
        }
        taken
    }
}
