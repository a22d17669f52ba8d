//! Every strategy under real threads, one thread per core: held objects are never reported,
//! counts are exact once the threads stop, when many cores drop the last references at
//! once each object is reported exactly once, and references handed from core to core (taken
//! on one, dropped on another, taken again on a third) are never freed under their holder.
//! Bounded in operations, well under a second each in a debug build.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;

use refcount::{Atomic, Biased, Config, Deferred, Paygo, PercpuRef, RefCache, RefCount, Region, Sloppy, Snzi, Striped, build};

const CORES: usize = 4;
const OBJECTS: usize = 64;

/// A tiny deterministic generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn settle<S: RefCount>(s: &S, freed: &mut Vec<u32>) {
    for _ in 0..S::SETTLE_ROUNDS {
        for c in 0..CORES {
            s.quiescent(c, &mut |o| freed.push(o));
        }
    }
}

/// Objects stay alive by an anchor reference while threads churn references on a hot object
/// and on random ones, including references taken on one core and dropped on another.
fn churn<S: RefCount<Mem = Region>>() {
    let s: S = build(Config { cache_slots: 16, batch: 8, spares: 4, ..Config::new(OBJECTS, CORES) }).unwrap();
    for o in 0..OBJECTS as u32 {
        s.create(0, o);
    }
    thread::scope(|scope| {
        for core in 0..CORES {
            let s = &s;
            scope.spawn(move || {
                let mut rng = Rng(0x9e37_79b9 + core as u64);
                let mut early = Vec::new();
                let mut held: Vec<u32> = Vec::new();
                for i in 0..6000 {
                    let o = if rng.next().is_multiple_of(2) { 0 } else { rng.below(OBJECTS) as u32 };
                    s.inc(core, o);
                    held.push(o);
                    if held.len() > 3 || rng.next().is_multiple_of(3) {
                        let k = rng.below(held.len());
                        s.dec(core, held.swap_remove(k), &mut |x| early.push(x));
                    }
                    if i % 64 == 0 {
                        s.quiescent(core, &mut |x| early.push(x));
                    }
                }
                for o in held {
                    s.dec(core, o, &mut |x| early.push(x));
                }
                s.quiescent(core, &mut |x| early.push(x));
                assert!(early.is_empty(), "{}: freed {early:?} while anchored", S::NAME);
            });
        }
    });
    let mut freed = Vec::new();
    settle(&s, &mut freed);
    assert!(freed.is_empty(), "{}: freed {freed:?} while anchored", S::NAME);
    for o in 0..OBJECTS as u32 {
        assert_eq!(s.read_exact(o), 1, "{}: count of {o} after the threads", S::NAME);
    }
    for o in 0..OBJECTS as u32 {
        s.dec(0, o, &mut |x| freed.push(x));
    }
    settle(&s, &mut freed);
    freed.sort_unstable();
    assert_eq!(freed, (0..OBJECTS as u32).collect::<Vec<_>>(), "{}: each freed once", S::NAME);
}

/// Every core holds one reference to every object and drops them all at once, in its own
/// order, reporting quiescent states as it goes; repeated so objects are created again.
fn last_reference_race<S: RefCount<Mem = Region>>() {
    let s: S = build(Config { cache_slots: 16, batch: 4, spares: 4, ..Config::new(OBJECTS, CORES) }).unwrap();
    for round in 0..12u64 {
        for o in 0..OBJECTS as u32 {
            s.create(0, o);
            (1..CORES).for_each(|_| s.inc(0, o));
        }
        let freed = Mutex::new(Vec::new());
        thread::scope(|scope| {
            for core in 0..CORES {
                let (s, freed) = (&s, &freed);
                scope.spawn(move || {
                    let mut rng = Rng(round * 31 + core as u64 + 1);
                    let mut order: Vec<u32> = (0..OBJECTS as u32).collect();
                    for i in (1..order.len()).rev() {
                        order.swap(i, rng.below(i + 1));
                    }
                    let mut mine = Vec::new();
                    for (i, o) in order.into_iter().enumerate() {
                        s.dec(core, o, &mut |x| mine.push(x));
                        if i % 8 == 0 {
                            s.quiescent(core, &mut |x| mine.push(x));
                        }
                    }
                    for _ in 0..3 {
                        s.quiescent(core, &mut |x| mine.push(x));
                    }
                    freed.lock().unwrap().extend(mine);
                });
            }
        });
        let mut freed = freed.into_inner().unwrap();
        settle(&s, &mut freed);
        freed.sort_unstable();
        assert_eq!(freed, (0..OBJECTS as u32).collect::<Vec<_>>(), "{}: round {round}", S::NAME);
        assert!((0..OBJECTS as u32).all(|o| s.read_exact(o) == 0));
    }
}

/// Objects in `hand_off`: few, so that references to one object meet on every core.
const HANDED: usize = 4;

/// Who holds what in `hand_off`: per object, the references held (decremented before each
/// `dec`, so a free must see zero) and the frees reported.
struct Holders {
    held: Vec<AtomicI64>,
    frees: Vec<AtomicUsize>,
}

impl Holders {
    fn freed(&self, obj: u32, name: &str) {
        let o = obj as usize;
        let held = self.held[o].load(Ordering::Acquire);
        assert_eq!(held, 0, "{name}: object {obj} freed with {held} references held");
        let before = self.frees[o].fetch_add(1, Ordering::AcqRel);
        assert_eq!(before, 0, "{name}: object {obj} freed twice");
    }
}

/// References travel between cores through mailboxes: a core that receives one drops it,
/// passes it on, or takes a second one and passes both on, so an object's count moves
/// between cores' caches and buffers with nothing anchoring it. Every object is freed
/// exactly once, and never while a reference is held.
fn hand_off<S: RefCount<Mem = Region>>() {
    let s: S = build(Config { cache_slots: 16, batch: 4, spares: 4, ..Config::new(HANDED, CORES) }).unwrap();
    let holders = Holders {
        held: (0..HANDED).map(|_| AtomicI64::new(CORES as i64)).collect(),
        frees: (0..HANDED).map(|_| AtomicUsize::new(0)).collect(),
    };
    let mailboxes: Vec<Mutex<Vec<u32>>> = (0..CORES).map(|_| Mutex::new(Vec::new())).collect();
    for o in 0..HANDED as u32 {
        s.create(0, o);
        (1..CORES).for_each(|core| s.inc(core, o));
        mailboxes.iter().for_each(|m| m.lock().unwrap().push(o));
    }
    let done = Barrier::new(CORES);
    // Mailbox visits, all cores together.
    let budget = AtomicI64::new(24_000);
    thread::scope(|scope| {
        for core in 0..CORES {
            let (s, holders, mailboxes, done, budget) = (&s, &holders, &mailboxes, &done, &budget);
            scope.spawn(move || {
                let freed = &mut |x| holders.freed(x, S::NAME);
                let mut rng = Rng(0x51_7cc1 + core as u64);
                let other = |rng: &mut Rng| (core + 1 + rng.below(CORES - 1)) % CORES;
                let mut handled = 0;
                while budget.fetch_sub(1, Ordering::Relaxed) > 0 {
                    let Some(o) = mailboxes[core].lock().unwrap().pop() else {
                        s.quiescent(core, freed);
                        thread::yield_now();
                        continue;
                    };
                    match rng.below(8) {
                        0..=2 => {
                            holders.held[o as usize].fetch_sub(1, Ordering::AcqRel);
                            s.dec(core, o, freed);
                        }
                        3..=4 => mailboxes[other(&mut rng)].lock().unwrap().push(o),
                        _ => {
                            s.inc(core, o);
                            holders.held[o as usize].fetch_add(1, Ordering::AcqRel);
                            mailboxes[other(&mut rng)].lock().unwrap().push(o);
                            mailboxes[other(&mut rng)].lock().unwrap().push(o);
                        }
                    }
                    handled += 1;
                    if handled % 8 == 0 {
                        s.quiescent(core, freed);
                    }
                }
                done.wait();
                let left = std::mem::take(&mut *mailboxes[core].lock().unwrap());
                for o in left {
                    holders.held[o as usize].fetch_sub(1, Ordering::AcqRel);
                    s.dec(core, o, freed);
                }
                s.quiescent(core, freed);
            });
        }
    });
    let mut freed = Vec::new();
    settle(&s, &mut freed);
    freed.into_iter().for_each(|o| holders.freed(o, S::NAME));
    for o in 0..HANDED {
        assert_eq!(holders.frees[o].load(Ordering::Relaxed), 1, "{}: object {o} not freed once", S::NAME);
        assert_eq!(s.read_exact(o as u32), 0, "{}: count of {o}", S::NAME);
    }
}

macro_rules! stress_tests {
    ($($name:ident: $ty:ty;)*) => {
        $(
            mod $name {
                use super::*;

                #[test]
                fn churn_keeps_anchored_objects() {
                    churn::<$ty>();
                }

                #[test]
                fn last_references_race() {
                    last_reference_race::<$ty>();
                }

                #[test]
                fn references_handed_between_cores() {
                    hand_off::<$ty>();
                }
            }
        )*
    };
}

stress_tests! {
    atomic: Atomic<Region>;
    deferred: Deferred<Region>;
    percpu: PercpuRef<Region>;
    refcache: RefCache<Region>;
    paygo: Paygo<Region>;
    sloppy: Sloppy<Region>;
    striped: Striped<Region>;
    snzi: Snzi<Region>;
    biased: Biased<Region>;
}
