//! Every strategy against a sequential reference model: random operations from simulated
//! cores, one at a time, must give the model's counts at every step, report each object free
//! exactly once and only at zero, and leave nothing unreported after settling. References
//! move between cores: any core may drop any reference, and a hand-off takes one on a core
//! while another drops its own, so a reference can be taken on one core, dropped on a
//! second and taken again on a third.

#![cfg(not(loom))]

use proptest::prelude::*;
use refcount::{Atomic, Biased, Config, Deferred, Paygo, PercpuRef, RefCache, RefCount, Region, Sloppy, Snzi, Striped, build};

const OBJECTS: usize = 3;
const CORES: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Free,
    Live(u64),
    /// Count zero, not reported yet.
    Zero,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    CreateOrInc,
    Dec,
    IncBatch,
    DecBatch,
    Unique,
    Quiescent,
    /// A reference held on another core moves here: an increment on this core, then a
    /// decrement on the core `skip + 1` places on (a process server hands a frame to a
    /// child on another CPU and the parent exits).
    Hand {
        skip: usize,
    },
}

fn op() -> impl Strategy<Value = (Op, usize, u32)> {
    let kind = prop_oneof![
        3 => Just(Op::CreateOrInc),
        3 => Just(Op::Dec),
        1 => Just(Op::IncBatch),
        1 => Just(Op::DecBatch),
        1 => Just(Op::Unique),
        3 => Just(Op::Quiescent),
        3 => (0..CORES - 1).prop_map(|skip| Op::Hand { skip }),
    ];
    (kind, 0..CORES, 0..OBJECTS as u32)
}

fn config() -> Config {
    // Tiny tunables so evictions, threshold flushes and spare returns all happen.
    Config { cache_slots: 2, batch: 2, spares: 2, ..Config::new(OBJECTS, CORES) }
}

/// When `try_remove_unique` must succeed on a count of 1.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Unique {
    /// Always.
    Exact,
    /// Once every core has settled (percpu refuses while a switch to atomic mode is in
    /// flight, sloppy while another core holds spares, refcache while another core caches
    /// a delta).
    Settled,
    /// Never required (deferred: buffered decrements may hide a unique frame).
    Maybe,
}

struct Model<S> {
    s: S,
    state: Vec<State>,
    unique: Unique,
}

impl<S: RefCount<Mem = Region>> Model<S> {
    fn new(unique: Unique) -> Self {
        Model { s: build(config()).unwrap(), state: vec![State::Free; OBJECTS], unique }
    }

    fn reported(&mut self, freed: Vec<u32>) {
        for o in freed {
            assert_eq!(self.state[o as usize], State::Zero, "{}: object {o} reported free", S::NAME);
            self.state[o as usize] = State::Free;
        }
    }

    fn drop_one(&mut self, obj: u32) {
        if let State::Live(n) = &mut self.state[obj as usize] {
            *n -= 1;
            if *n == 0 {
                self.state[obj as usize] = State::Zero;
            }
        }
    }

    fn apply(&mut self, (op, core, obj): (Op, usize, u32)) {
        let mut freed = Vec::new();
        let st = self.state[obj as usize];
        match (op, st) {
            (Op::CreateOrInc, State::Free) => {
                self.s.create(core, obj);
                self.state[obj as usize] = State::Live(1);
            }
            (Op::CreateOrInc, State::Live(n)) => {
                self.s.inc(core, obj);
                self.state[obj as usize] = State::Live(n + 1);
            }
            (Op::IncBatch, State::Live(n)) => {
                self.s.inc_batch(core, &[obj, obj]);
                self.state[obj as usize] = State::Live(n + 2);
            }
            (Op::Dec, State::Live(_)) => {
                self.s.dec(core, obj, &mut |o| freed.push(o));
                self.drop_one(obj);
            }
            (Op::DecBatch, State::Live(n)) if n >= 2 => {
                self.s.dec_batch(core, &[obj, obj], &mut |o| freed.push(o));
                self.drop_one(obj);
                self.drop_one(obj);
            }
            (Op::Unique, State::Live(n)) => {
                let unique = self.s.try_remove_unique(core, obj);
                assert!(!unique || n == 1, "{}: unique with {n} references", S::NAME);
                if !unique && n == 1 && self.unique == Unique::Settled {
                    self.settle();
                    assert!(self.s.try_remove_unique(core, obj), "{}: missed a unique reference after settling", S::NAME);
                }
                assert!(unique || n != 1 || self.unique != Unique::Exact, "{}: missed a unique reference", S::NAME);
            }
            (Op::Hand { skip }, State::Live(_)) => {
                let from = (core + skip + 1) % CORES;
                self.s.inc(core, obj);
                self.s.dec(from, obj, &mut |o| freed.push(o));
            }
            (Op::Quiescent, _) => self.s.quiescent(core, &mut |o| freed.push(o)),
            _ => {}
        }
        self.reported(freed);
        self.check_counts();
    }

    fn check_counts(&self) {
        for (o, st) in self.state.iter().enumerate() {
            let want = match st {
                State::Live(n) => *n,
                _ => 0,
            };
            assert_eq!(self.s.read_exact(o as u32), want, "{}: count of object {o}", S::NAME);
        }
    }

    fn settle(&mut self) {
        let mut freed = Vec::new();
        for _ in 0..S::SETTLE_ROUNDS {
            for c in 0..CORES {
                self.s.quiescent(c, &mut |o| freed.push(o));
            }
        }
        self.reported(freed);
        assert!(!self.state.contains(&State::Zero), "{}: zero not reported after settling: {:?}", S::NAME, self.state);
    }

    /// Settles, then drops every remaining reference from rotating cores, and settles again:
    /// everything must come back.
    fn finish(mut self) {
        self.settle();
        let mut core = 0;
        for o in 0..OBJECTS as u32 {
            while let State::Live(_) = self.state[o as usize] {
                let mut freed = Vec::new();
                self.s.dec(core, o, &mut |x| freed.push(x));
                self.drop_one(o);
                self.reported(freed);
                core = (core + 1) % CORES;
            }
        }
        self.settle();
        assert!(self.state.iter().all(|s| *s == State::Free), "{}: leaked {:?}", S::NAME, self.state);
        self.check_counts();
    }
}

fn run<S: RefCount<Mem = Region>>(ops: &[(Op, usize, u32)], unique: Unique) {
    let mut m = Model::<S>::new(unique);
    for &o in ops {
        m.apply(o);
    }
    m.finish();
}

/// Cases per strategy: `REFCOUNT_MODEL_CASES` if set (100000 and more for a long run), else
/// 10 000 in an optimised build (what `cargo xtask test` runs: a few seconds per strategy,
/// and enough to find histories a dozen operations deep, such as a reference handed between
/// three cores across a review) and 1000 in a debug one, where proptest is thirty times
/// slower.
fn cases() -> u32 {
    match std::env::var("REFCOUNT_MODEL_CASES") {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("REFCOUNT_MODEL_CASES={v}: not a case count")),
        Err(_) if cfg!(debug_assertions) => 1_000,
        Err(_) => 10_000,
    }
}

macro_rules! model_tests {
    ($($name:ident: $ty:ty, $exact:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(cases()))]
            $(
                #[test]
                fn $name(ops in proptest::collection::vec(op(), 1..64)) {
                    run::<$ty>(&ops, $exact);
                }
            )*
        }
    };
}

model_tests! {
    atomic: Atomic<Region>, Unique::Exact;
    deferred: Deferred<Region>, Unique::Maybe;
    percpu: PercpuRef<Region>, Unique::Settled;
    refcache: RefCache<Region>, Unique::Settled;
    paygo: Paygo<Region>, Unique::Exact;
    sloppy: Sloppy<Region>, Unique::Settled;
    striped: Striped<Region>, Unique::Exact;
    snzi: Snzi<Region>, Unique::Exact;
    biased: Biased<Region>, Unique::Exact;
}
