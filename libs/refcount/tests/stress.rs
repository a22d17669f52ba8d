//! Every strategy under real threads, one thread per core: held objects are never reported,
//! counts are exact once the threads stop, and when many cores drop the last references at
//! once each object is reported exactly once. Bounded in operations, well under a second
//! each in a debug build.

#![cfg(not(loom))]

use std::sync::Mutex;
use std::thread;

use refcount::{
    Atomic, Biased, Config, Deferred, Paygo, PercpuRef, RefCache, RefCount, Region, Sloppy, Snzi,
    Striped, build,
};

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
    let s: S = build(Config {
        cache_slots: 16,
        batch: 8,
        spares: 4,
        ..Config::new(OBJECTS, CORES)
    })
    .unwrap();
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
                    let o = if rng.next().is_multiple_of(2) {
                        0
                    } else {
                        rng.below(OBJECTS) as u32
                    };
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
                assert!(
                    early.is_empty(),
                    "{}: freed {early:?} while anchored",
                    S::NAME
                );
            });
        }
    });
    let mut freed = Vec::new();
    settle(&s, &mut freed);
    assert!(
        freed.is_empty(),
        "{}: freed {freed:?} while anchored",
        S::NAME
    );
    for o in 0..OBJECTS as u32 {
        assert_eq!(
            s.read_exact(o),
            1,
            "{}: count of {o} after the threads",
            S::NAME
        );
    }
    for o in 0..OBJECTS as u32 {
        s.dec(0, o, &mut |x| freed.push(x));
    }
    settle(&s, &mut freed);
    freed.sort_unstable();
    assert_eq!(
        freed,
        (0..OBJECTS as u32).collect::<Vec<_>>(),
        "{}: each freed once",
        S::NAME
    );
}

/// Every core holds one reference to every object and drops them all at once, in its own
/// order, reporting quiescent states as it goes; repeated so objects are created again.
fn last_reference_race<S: RefCount<Mem = Region>>() {
    let s: S = build(Config {
        cache_slots: 16,
        batch: 4,
        spares: 4,
        ..Config::new(OBJECTS, CORES)
    })
    .unwrap();
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
        assert_eq!(
            freed,
            (0..OBJECTS as u32).collect::<Vec<_>>(),
            "{}: round {round}",
            S::NAME
        );
        assert!((0..OBJECTS as u32).all(|o| s.read_exact(o) == 0));
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
