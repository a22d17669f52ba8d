//! Model-checked protocols (loom): every interleaving of a few operations on two or three
//! threads, each thread one core. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p refcount --release --test loom`.
//!
//! Each model checks that the object is reported free exactly once, and that the report
//! happens after every reference was dropped: a thread counts its logical references down in
//! `outstanding` *before* each decrement, and the free callback must see zero there. That
//! read is only guaranteed if the strategy's zero detection happens-after every decrement,
//! which is what a caller reusing the frame needs.

#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::AtomicUsize;
use loom::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use loom::thread;

use refcount::deferred::{Client, Manager};
use refcount::{Atomic, Biased, Config, Paygo, PercpuRef, RefCache, RefCount, Region, Sloppy, Snzi, Striped, build};

/// Counts logical references and reported frees for one model execution.
struct Witness {
    outstanding: AtomicUsize,
    frees: AtomicUsize,
}

impl Witness {
    fn new(refs: usize) -> Arc<Self> {
        Arc::new(Witness { outstanding: AtomicUsize::new(refs), frees: AtomicUsize::new(0) })
    }

    /// Call before dropping a reference.
    fn drop_one(&self) {
        self.outstanding.fetch_sub(1, AcqRel);
    }

    /// Call after taking one.
    fn take_one(&self) {
        self.outstanding.fetch_add(1, AcqRel);
    }

    fn freed(&self, _obj: u32) {
        assert_eq!(self.outstanding.load(Acquire), 0, "freed while referenced");
        assert_eq!(self.frees.fetch_add(1, AcqRel), 0, "freed twice");
    }

    fn check_once(&self) {
        assert_eq!(self.frees.load(Acquire), 1, "never freed");
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    bounded_model(3, f);
}

/// Explores every interleaving with at most `preemptions` forced thread switches.
fn bounded_model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    // Three threads that each flush, review and spin on a per-object lock take more branches
    // per execution than loom's default allows.
    b.max_branches = 20_000;
    b.check(f);
}

/// One object on two cores, one reference taken on each.
fn held_on_two_cores<S: RefCount<Mem = Region>>() -> (Arc<S>, Arc<Witness>) {
    let s = Arc::new(build::<S>(Config::new(1, 2)).unwrap());
    s.create(0, 0);
    s.inc(1, 0);
    (s, Witness::new(2))
}

fn settle<S: RefCount>(s: &S, w: &Witness) {
    for _ in 0..S::SETTLE_ROUNDS {
        for c in 0..s.config().n_cores {
            s.quiescent(c, &mut |o| w.freed(o));
        }
    }
}

/// Two cores each drop one of two references; a generic shape for the simpler strategies.
fn two_drops<S: RefCount<Mem = Region> + Send + 'static>(cfg: Config, quiescent_after: bool) {
    model(move || {
        let s = Arc::new(build::<S>(cfg).unwrap());
        let w = Witness::new(2);
        s.create(0, 0);
        s.inc(0, 0);
        let hs: Vec<_> = (0..2)
            .map(|core| {
                let (s, w) = (s.clone(), w.clone());
                thread::spawn(move || {
                    w.drop_one();
                    s.dec(core, 0, &mut |o| w.freed(o));
                    if quiescent_after {
                        s.quiescent(core, &mut |o| w.freed(o));
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        settle(&*s, &w);
        w.check_once();
    });
}

#[test]
fn atomic_last_drop_frees_once() {
    two_drops::<Atomic<Region>>(Config::new(1, 2), false);
}

#[test]
fn deferred_decrement_never_precedes_its_increment() {
    model(|| {
        let m = Arc::new(Manager::new_in(Region::zeroed(Manager::<Region>::words_needed(1)), 1).unwrap());
        let w = Witness::new(2);
        m.create(0);
        let c0 = Client::new_in(Region::zeroed(Client::<Region>::words_needed(4)), 4).unwrap();
        c0.share(&m, 0); // owned → shared by two: references A (thread 0) and B (thread 1)
        let t0 = {
            let (m, w) = (m.clone(), w.clone());
            thread::spawn(move || {
                c0.share(&m, 0); // reference C, its increment only queued
                w.take_one();
                w.drop_one();
                c0.dec(&m, 0, &mut |o| w.freed(o)); // drop A, buffered behind the increment
                c0.flush(&m, &mut |o| w.freed(o));
                w.drop_one();
                c0.dec(&m, 0, &mut |o| w.freed(o)); // drop C
                c0.flush(&m, &mut |o| w.freed(o));
            })
        };
        let t1 = {
            let (m, w) = (m.clone(), w.clone());
            thread::spawn(move || {
                let c1 = Client::new_in(Region::zeroed(Client::<Region>::words_needed(4)), 4).unwrap();
                w.drop_one();
                c1.dec(&m, 0, &mut |o| w.freed(o));
                while !c1.try_flush(&m, &mut |o| w.freed(o)) {
                    thread::yield_now();
                }
            })
        };
        t0.join().unwrap();
        t1.join().unwrap();
        w.check_once();
    });
}

#[test]
fn deferred_unique_races_a_flush() {
    model(|| {
        let s = Arc::new(build::<refcount::Deferred<Region>>(Config::new(1, 2)).unwrap());
        let w = Witness::new(2);
        s.create(0, 0);
        s.inc(0, 0);
        let t1 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec(1, 0, &mut |o| w.freed(o));
                s.quiescent(1, &mut |o| w.freed(o));
            })
        };
        // Thread 0 faults on the page: unique only once thread 1's decrement is applied.
        if s.try_remove_unique(0, 0) {
            assert_eq!(w.outstanding.load(Acquire), 1, "unique while another reference exists");
        }
        t1.join().unwrap();
        w.drop_one();
        s.dec(0, 0, &mut |o| w.freed(o));
        settle(&*s, &w);
        w.check_once();
    });
}

#[test]
fn percpu_zero_check_switches_to_atomic_and_back() {
    model(|| {
        let (s, w) = held_on_two_cores::<PercpuRef<Region>>();
        let t0 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec(0, 0, &mut |o| w.freed(o));
                s.quiescent(0, &mut |o| w.freed(o)); // suspect: switch to atomic
                s.quiescent(0, &mut |o| w.freed(o)); // confirmed if core 1 reported
            })
        };
        let t1 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                s.quiescent(1, &mut |o| w.freed(o));
                w.drop_one();
                s.dec(1, 0, &mut |o| w.freed(o)); // percpu, or atomic if the switch is seen
            })
        };
        t0.join().unwrap();
        t1.join().unwrap();
        settle(&*s, &w);
        settle(&*s, &w);
        w.check_once();
    });
}

#[test]
fn percpu_kill_then_last_put_releases() {
    model(|| {
        let s = Arc::new(build::<PercpuRef<Region>>(Config::new(1, 2)).unwrap());
        let w = Witness::new(2);
        let confirmed = Arc::new(AtomicUsize::new(0));
        s.create(0, 0);
        s.inc(0, 0);
        let t0 = {
            let (s, w, confirmed) = (s.clone(), w.clone(), confirmed.clone());
            thread::spawn(move || {
                assert!(s.kill(0, 0, &mut |o| w.freed(o)));
                s.quiescent_confirm(0, &mut |o| w.freed(o), &mut |_| {
                    confirmed.fetch_add(1, AcqRel);
                });
                w.drop_one();
                s.dec(0, 0, &mut |o| w.freed(o));
            })
        };
        let t1 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                let live = s.tryget_live(1, 0);
                if live {
                    w.take_one();
                }
                s.quiescent(1, &mut |o| w.freed(o));
                if live {
                    w.drop_one();
                    s.dec(1, 0, &mut |o| w.freed(o));
                }
                w.drop_one();
                s.dec(1, 0, &mut |o| w.freed(o));
            })
        };
        t0.join().unwrap();
        t1.join().unwrap();
        for c in [0, 1, 0] {
            s.quiescent_confirm(c, &mut |o| w.freed(o), &mut |_| {
                confirmed.fetch_add(1, AcqRel);
            });
        }
        assert_eq!(confirmed.load(Acquire), 1, "confirm-kill runs once");
        w.check_once();
    });
}

/// Core 0 switches synchronously while core 1 drops its reference and keeps reporting: the
/// switch returns confirmed, and the count it leaves is exact.
#[test]
fn percpu_sync_switch_waits_for_the_grace_period() {
    model(|| {
        let s = Arc::new(build::<PercpuRef<Region>>(Config::new(1, 2)).unwrap());
        let w = Witness::new(2);
        let done = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        s.create(0, 0);
        s.inc(1, 0);
        let t1 = {
            let (s, w, done) = (s.clone(), w.clone(), done.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec(1, 0, &mut |o| w.freed(o));
                while !done.load(Acquire) {
                    s.quiescent(1, &mut |o| w.freed(o));
                    thread::yield_now();
                }
            })
        };
        s.switch_to_atomic_sync(0, 0, &mut |o| w.freed(o));
        done.store(true, Release);
        t1.join().unwrap();
        assert!(s.try_remove_unique(0, 0), "atomic mode after the sync switch: exact, and alone");
        w.drop_one();
        s.dec(0, 0, &mut |o| w.freed(o));
        settle(&*s, &w);
        w.check_once();
    });
}

#[test]
fn refcache_eviction_and_review() {
    model(|| {
        // One slot per core: touching object 1 evicts object 0's delta.
        let cfg = Config { cache_slots: 1, ..Config::new(2, 2) };
        let s = Arc::new(build::<RefCache<Region>>(cfg).unwrap());
        let w = Witness::new(2);
        s.create(0, 0);
        s.create(0, 1);
        s.inc(1, 0);
        let t0 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec(0, 0, &mut |o| w.freed(o));
                s.inc(0, 1); // evicts object 0's -1 to the global count
                s.quiescent(0, &mut |o| w.freed(o));
            })
        };
        let t1 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                s.quiescent(1, &mut |o| w.freed(o));
                w.drop_one();
                s.dec(1, 0, &mut |o| w.freed(o));
                s.quiescent(1, &mut |o| w.freed(o));
            })
        };
        t0.join().unwrap();
        t1.join().unwrap();
        settle(&*s, &w);
        w.check_once();
        assert_eq!(s.read_exact(1), 2);
    });
}

#[test]
fn refcache_weak_upgrade_races_the_review() {
    model(|| {
        let s = Arc::new(build::<RefCache<Region>>(Config { cache_slots: 1, ..Config::new(1, 2) }).unwrap());
        let w = Witness::new(1);
        s.create(0, 0);
        let weak = s.weak(0);
        w.drop_one();
        s.dec(0, 0, &mut |o| w.freed(o));
        s.quiescent(0, &mut |o| w.freed(o)); // global 0: queued for review on core 0
        let t0 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                s.quiescent(0, &mut |o| w.freed(o));
                s.quiescent(0, &mut |o| w.freed(o));
            })
        };
        let t1 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                if s.tryget(1, weak) {
                    w.take_one();
                    s.quiescent(1, &mut |o| w.freed(o));
                    w.drop_one();
                    s.dec(1, 0, &mut |o| w.freed(o));
                }
                s.quiescent(1, &mut |o| w.freed(o));
            })
        };
        t0.join().unwrap();
        t1.join().unwrap();
        settle(&*s, &w);
        w.check_once();
    });
}

#[test]
fn paygo_anchor_path() {
    model(|| {
        let s = Arc::new(build::<Paygo<Region>>(Config::new(1, 2)).unwrap());
        let w = Witness::new(2);
        s.create(0, 0);
        s.inc(0, 0); // homed on core 0, handed to core 1
        let t0 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec_from(0, 0, 0); // homeland: local
                s.quiescent(0, &mut |o| w.freed(o));
            })
        };
        let t1 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec_from(1, 0, 0); // foreign: the anchor of core 0
                s.quiescent(1, &mut |o| w.freed(o));
            })
        };
        t0.join().unwrap();
        t1.join().unwrap();
        settle(&*s, &w);
        w.check_once();
    });
}

#[test]
fn sloppy_spares_return_once() {
    model(|| {
        let s = Arc::new(build::<Sloppy<Region>>(Config { spares: 2, ..Config::new(1, 2) }).unwrap());
        let w = Witness::new(2);
        s.create(0, 0);
        s.inc(0, 0);
        let hs: Vec<_> = (0..2)
            .map(|core| {
                let (s, w) = (s.clone(), w.clone());
                thread::spawn(move || {
                    s.inc(core, 0);
                    s.dec(core, 0, &mut |o| w.freed(o)); // a spare
                    w.drop_one();
                    s.dec(core, 0, &mut |o| w.freed(o));
                    s.quiescent(core, &mut |o| w.freed(o));
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        settle(&*s, &w);
        w.check_once();
    });
}

#[test]
fn striped_contention_grows_cells() {
    // Retry loops on the base and the cells multiply the interleavings: two preemptions.
    bounded_model(2, || {
        let s = Arc::new(build::<Striped<Region>>(Config::new(1, 2)).unwrap());
        let w = Witness::new(2);
        s.create(0, 0);
        s.inc(0, 0);
        let hs: Vec<_> = (0..2)
            .map(|core| {
                let (s, w) = (s.clone(), w.clone());
                thread::spawn(move || {
                    s.inc(core, 0); // racing CASes on the base: the loser grows cells
                    w.take_one();
                    for _ in 0..2 {
                        w.drop_one();
                        s.dec(core, 0, &mut |o| w.freed(o));
                    }
                    s.quiescent(core, &mut |o| w.freed(o));
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        settle(&*s, &w);
        w.check_once();
    });
}

#[test]
fn snzi_half_increments_under_a_shared_parent() {
    model(|| {
        // Four leaves: cores 0 and 1 share an inner node below the root.
        let s = Arc::new(build::<Snzi<Region>>(Config::new(1, 4)).unwrap());
        let w = Witness::new(1);
        s.create(3, 0);
        let hs: Vec<_> = (0..2)
            .map(|core| {
                let (s, w) = (s.clone(), w.clone());
                thread::spawn(move || {
                    s.inc(core, 0);
                    assert!(s.query(0));
                    s.dec(core, 0, &mut |o| w.freed(o));
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(s.read_exact(0), 1);
        w.drop_one();
        s.dec(3, 0, &mut |o| w.freed(o));
        w.check_once();
        assert!(!s.query(0));
    });
}

/// The indicator (`query`) is set while anyone holds a reference, cleared by the last
/// departure, and set again by the next life's arrival.
#[test]
fn snzi_query_follows_the_count() {
    model(|| {
        let (s, w) = held_on_two_cores::<Snzi<Region>>();
        let t1 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                assert!(s.query(0), "core 1 holds a reference");
                w.drop_one();
                s.dec(1, 0, &mut |o| w.freed(o));
            })
        };
        assert!(s.query(0), "core 0 holds a reference");
        w.drop_one();
        s.dec(0, 0, &mut |o| w.freed(o));
        t1.join().unwrap();
        w.check_once();
        assert!(!s.query(0), "no reference left");
        s.create(1, 0);
        assert!(s.query(0), "a new life");
    });
}

#[test]
fn snzi_concurrent_last_departs() {
    two_drops::<Snzi<Region>>(Config::new(1, 2), false);
}

#[test]
fn biased_queue_and_merge() {
    model(|| {
        let s = Arc::new(build::<Biased<Region>>(Config::new(1, 2)).unwrap());
        let w = Witness::new(3);
        s.create(0, 0); // A: owner's local
        s.inc(0, 0); // B: owner's local, handed to core 1
        s.inc(1, 0); // C: shared, held by core 1
        let t0 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec(0, 0, &mut |o| w.freed(o));
                s.quiescent(0, &mut |o| w.freed(o)); // merges if core 1 queued it
            })
        };
        let t1 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec(1, 0, &mut |o| w.freed(o));
                w.drop_one();
                s.dec(1, 0, &mut |o| w.freed(o)); // shared at zero: queued to the owner
            })
        };
        t0.join().unwrap();
        t1.join().unwrap();
        settle(&*s, &w);
        w.check_once();
    });
}

#[test]
fn biased_owner_merge_races_shared_drop() {
    two_drops::<Biased<Region>>(Config::new(1, 2), true);
}

/// Core 0 holds a reference and asks whether it is the only one while core 1 drops the
/// other: a true answer must come after that drop (it happened-before, so `outstanding`
/// shows it), never before.
fn unique_after_a_concurrent_drop<S: RefCount<Mem = Region> + Send + 'static>() {
    model(|| {
        // One cache slot: RefCache's flush loops stay short enough to explore.
        let s = Arc::new(build::<S>(Config { cache_slots: 1, ..Config::new(1, 2) }).unwrap());
        let w = Witness::new(2);
        s.create(0, 0);
        s.inc(1, 0);
        let t1 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec(1, 0, &mut |o| w.freed(o));
                s.quiescent(1, &mut |o| w.freed(o));
            })
        };
        if s.try_remove_unique(0, 0) {
            assert_eq!(w.outstanding.load(Acquire), 1, "{}: unique while shared", S::NAME);
        }
        t1.join().unwrap();
        settle(&*s, &w);
        assert!(s.try_remove_unique(0, 0), "{}: settled and alone, yet not unique", S::NAME);
        w.drop_one();
        s.dec(0, 0, &mut |o| w.freed(o));
        settle(&*s, &w);
        w.check_once();
    });
}

/// Core 0 asks, on a thread of its own, whether its reference is the only one, while core 1
/// takes a second reference and hands it to core 2, which drops it. A true answer must come
/// after that drop. The reader is spawned before the hand-off, so loom interleaves each of
/// its reads with the take and with the drop. With the reader on the thread that spawns the
/// others, and the receiver spawned by the taker (an earlier shape of this model), loom
/// explored a handful of executions and PAYGO reading ups before downs passed; it fails here.
fn unique_while_a_reference_hops<S: RefCount<Mem = Region> + Send + Sync + 'static>() {
    model(|| {
        let (s, w) = held_on_0_and::<S>(1, 3);
        let reader = spawn_reader(&s, &w, "unique while a handed reference lives");
        s.inc(1, 0);
        w.take_one();
        let receiver = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                w.drop_one();
                s.dec(2, 0, &mut |o| w.freed(o));
            })
        };
        receiver.join().unwrap();
        reader.join().unwrap();
        drop_and_settle(&*s, &w, &[1, 0]);
    });
}

/// Object 0 on `n_cores` cores with one cache slot, one reference taken on core 0 and one
/// on `other`.
fn held_on_0_and<S: RefCount<Mem = Region>>(other: usize, n_cores: usize) -> (Arc<S>, Arc<Witness>) {
    let s = Arc::new(build::<S>(Config { cache_slots: 1, ..Config::new(1, n_cores) }).unwrap());
    s.create(0, 0);
    s.inc(other, 0);
    (s, Witness::new(2))
}

/// Core 0 asks, on a thread of its own, whether its reference to object 0 is the only one;
/// a true answer must find `outstanding` at 1 (`what` says what it would have missed).
fn spawn_reader<S: RefCount + Send + Sync + 'static>(s: &Arc<S>, w: &Arc<Witness>, what: &'static str) -> thread::JoinHandle<()> {
    let (s, w) = (s.clone(), w.clone());
    thread::spawn(move || {
        if s.try_remove_unique(0, 0) {
            assert_eq!(w.outstanding.load(Acquire), 1, "{}: {what}", S::NAME);
        }
    })
}

/// Drops one reference to object 0 on each of `cores`, the last ones, and checks the free.
fn drop_and_settle<S: RefCount>(s: &S, w: &Witness, cores: &[usize]) {
    for &core in cores {
        w.drop_one();
        s.dec(core, 0, &mut |o| w.freed(o));
    }
    settle(s, w);
    w.check_once();
}

/// Core 0 asks, on a thread of its own, whether its reference is the only one, while core 1,
/// which holds the other, reaches a quiescent point and only then drops it. A true answer
/// must come after the drop: a reader that takes a count read before the flush together
/// with the empty cache after it (RefCache without its eviction counts) sees one reference.
fn unique_while_a_holder_flushes<S: RefCount<Mem = Region> + Send + Sync + 'static>() {
    model(|| {
        let (s, w) = held_on_0_and::<S>(1, 2);
        let reader = spawn_reader(&s, &w, "unique while a flushed reference lives");
        s.quiescent(1, &mut |o| w.freed(o));
        w.drop_one();
        s.dec(1, 0, &mut |o| w.freed(o));
        s.quiescent(1, &mut |o| w.freed(o));
        reader.join().unwrap();
        drop_and_settle(&*s, &w, &[0]);
    });
}

/// Core 0 asks, on a thread of its own, whether its reference is the only one, while the
/// other moves against the order the reader scans cores in: core 1 takes one through core
/// 2's, and core 2 then drops its own. A true answer must come after both are gone: a
/// reader that looks at each core once (SNZI with a single collect) can see core 1 before
/// the take and core 2 after the drop.
fn unique_while_a_reference_runs_ahead<S: RefCount<Mem = Region> + Send + Sync + 'static>() {
    model(|| {
        let (s, w) = held_on_0_and::<S>(2, 3);
        let reader = spawn_reader(&s, &w, "unique while a moved reference lives");
        let taker = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                s.inc(1, 0);
                w.take_one();
            })
        };
        taker.join().unwrap();
        w.drop_one();
        s.dec(2, 0, &mut |o| w.freed(o));
        reader.join().unwrap();
        drop_and_settle(&*s, &w, &[1, 0]);
    });
}

/// Core 0 holds a reference it did not take itself (the object was created on core 2) and
/// asks whether it is the only one while core 1 drops the other: SNZI first gathers a unit
/// onto core 0's leaf, racing core 1's departure for the same units. A true answer must
/// come after the drop, and once all is settled the answer must be true.
fn unique_of_a_reference_taken_elsewhere<S: RefCount<Mem = Region> + Send + Sync + 'static>() {
    model(|| {
        let s = Arc::new(build::<S>(Config { cache_slots: 1, ..Config::new(1, 3) }).unwrap());
        let w = Witness::new(2);
        s.create(2, 0);
        s.inc(1, 0);
        let reader = spawn_reader(&s, &w, "unique while another core holds a reference");
        w.drop_one();
        s.dec(1, 0, &mut |o| w.freed(o));
        reader.join().unwrap();
        settle(&*s, &w);
        assert!(s.try_remove_unique(0, 0), "{}: settled and alone, yet not unique", S::NAME);
        drop_and_settle(&*s, &w, &[0]);
    });
}

/// One `#[test]` per strategy, each running the generic model `$model` on it.
macro_rules! models_per_strategy {
    ($model:ident { $($name:ident: $ty:ty;)* }) => {
        $(
            #[test]
            fn $name() {
                $model::<$ty>();
            }
        )*
    };
}

models_per_strategy! { unique_while_a_holder_flushes {
    flushing_unique_percpu: PercpuRef<Region>;
    flushing_unique_refcache: RefCache<Region>;
    flushing_unique_paygo: Paygo<Region>;
    flushing_unique_sloppy: Sloppy<Region>;
    flushing_unique_striped: Striped<Region>;
    flushing_unique_snzi: Snzi<Region>;
    flushing_unique_biased: Biased<Region>;
}}

models_per_strategy! { unique_while_a_reference_runs_ahead {
    running_unique_percpu: PercpuRef<Region>;
    running_unique_refcache: RefCache<Region>;
    running_unique_paygo: Paygo<Region>;
    running_unique_sloppy: Sloppy<Region>;
    running_unique_striped: Striped<Region>;
    running_unique_snzi: Snzi<Region>;
    running_unique_biased: Biased<Region>;
}}

models_per_strategy! { unique_of_a_reference_taken_elsewhere {
    elsewhere_unique_percpu: PercpuRef<Region>;
    elsewhere_unique_refcache: RefCache<Region>;
    elsewhere_unique_paygo: Paygo<Region>;
    elsewhere_unique_sloppy: Sloppy<Region>;
    elsewhere_unique_striped: Striped<Region>;
    elsewhere_unique_snzi: Snzi<Region>;
    elsewhere_unique_biased: Biased<Region>;
}}

models_per_strategy! { unique_while_a_reference_hops {
    hopping_unique_percpu: PercpuRef<Region>;
    hopping_unique_refcache: RefCache<Region>;
    hopping_unique_paygo: Paygo<Region>;
    hopping_unique_sloppy: Sloppy<Region>;
    hopping_unique_striped: Striped<Region>;
    hopping_unique_snzi: Snzi<Region>;
    hopping_unique_biased: Biased<Region>;
}}

#[test]
fn unique_percpu() {
    unique_after_a_concurrent_drop::<PercpuRef<Region>>();
}

#[test]
fn unique_refcache() {
    unique_after_a_concurrent_drop::<RefCache<Region>>();
}

#[test]
fn unique_paygo() {
    unique_after_a_concurrent_drop::<Paygo<Region>>();
}

#[test]
fn unique_sloppy() {
    unique_after_a_concurrent_drop::<Sloppy<Region>>();
}

#[test]
fn unique_striped() {
    unique_after_a_concurrent_drop::<Striped<Region>>();
}

#[test]
fn unique_snzi() {
    unique_after_a_concurrent_drop::<Snzi<Region>>();
}

#[test]
fn unique_biased() {
    unique_after_a_concurrent_drop::<Biased<Region>>();
}

#[test]
fn deferred_busy_lock_keeps_buffering() {
    model(|| {
        let m = Arc::new(Manager::new_in(Region::zeroed(Manager::<Region>::words_needed(2)), 2).unwrap());
        let ws = Arc::new([Witness::new(2), Witness::new(2)]);
        let c0 = Client::new_in(Region::zeroed(Client::<Region>::words_needed(1)), 1).unwrap();
        let c1 = Client::new_in(Region::zeroed(Client::<Region>::words_needed(1)), 1).unwrap();
        for o in 0..2 {
            m.create(o);
            c0.share(&m, o); // owned → shared by two: one reference for each client
        }
        let hs: Vec<_> = [c0, c1]
            .into_iter()
            .map(|c| {
                let (m, ws) = (m.clone(), ws.clone());
                thread::spawn(move || {
                    for o in 0..2 {
                        ws[o as usize].drop_one();
                        // At the threshold: a busy lock leaves the decrement buffered.
                        c.dec(&m, o, &mut |x| ws[x as usize].freed(x));
                    }
                    c.flush(&m, &mut |x| ws[x as usize].freed(x));
                    assert_eq!(c.pending(), (0, 0));
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        ws.iter().for_each(|w| w.check_once());
    });
}

/// A reference taken on core 0 is handed to core 1 (the thread that acts as core 1 is
/// spawned with it), which takes another and hands it to core 2; each core drops the one it
/// had: taken on one core, dropped on another, taken again on a third, with quiescent points
/// on all three in every order.
fn hand_off_three_cores<S: RefCount<Mem = Region> + Send + Sync + 'static>() {
    bounded_model(2, || {
        let s = Arc::new(build::<S>(Config { cache_slots: 1, ..Config::new(1, 3) }).unwrap());
        let w = Witness::new(1);
        s.create(0, 0);
        let t0 = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || holder(s, w, 0))
        };
        t0.join().unwrap();
        settle(&*s, &w);
        w.check_once();
    });
}

/// Core `core` of the hand-off: takes a reference for the next core and hands it over (the
/// last core takes none), then drops its own.
fn holder<S: RefCount + Send + Sync + 'static>(s: Arc<S>, w: Arc<Witness>, core: usize) {
    let next = (core < 2).then(|| {
        s.inc(core, 0);
        w.take_one();
        let (s, w) = (s.clone(), w.clone());
        thread::spawn(move || holder(s, w, core + 1))
    });
    s.quiescent(core, &mut |o| w.freed(o));
    w.drop_one();
    s.dec(core, 0, &mut |o| w.freed(o));
    s.quiescent(core, &mut |o| w.freed(o));
    if let Some(h) = next {
        h.join().unwrap();
    }
}

models_per_strategy! { hand_off_three_cores {
    hand_off_atomic: Atomic<Region>;
    hand_off_deferred: refcount::Deferred<Region>;
    hand_off_percpu: PercpuRef<Region>;
    hand_off_refcache: RefCache<Region>;
    hand_off_paygo: Paygo<Region>;
    hand_off_sloppy: Sloppy<Region>;
    hand_off_striped: Striped<Region>;
    hand_off_snzi: Snzi<Region>;
    hand_off_biased: Biased<Region>;
}}

/// The interleaving behind RefCache's zero-delta rule, left to loom: cores A = 0, B = 1,
/// C = 2. The object is queued on C while B holds a reference; B hands it to A, which takes
/// one after its flush, and B drops its own, so B's slot nets to zero; C's review must not
/// free it while A holds it.
#[test]
fn refcache_reference_moves_under_review() {
    model(|| {
        let s = Arc::new(build::<RefCache<Region>>(Config { cache_slots: 1, ..Config::new(1, 3) }).unwrap());
        let w = Witness::new(1);
        s.create(2, 0);
        s.inc(1, 0);
        s.dec(2, 0, &mut |o| w.freed(o));
        s.quiescent(2, &mut |o| w.freed(o)); // global 0: queued on C while B holds +1
        let c = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                s.quiescent(2, &mut |o| w.freed(o));
                s.quiescent(2, &mut |o| w.freed(o));
            })
        };
        let a = {
            let (s, w) = (s.clone(), w.clone());
            thread::spawn(move || {
                s.quiescent(0, &mut |o| w.freed(o));
                s.inc(0, 0); // A takes a reference through B's ...
                w.take_one();
                let b = {
                    let (s, w) = (s.clone(), w.clone());
                    thread::spawn(move || {
                        w.drop_one(); // ... and B, handed A's word for it, drops its own
                        s.dec(1, 0, &mut |o| w.freed(o));
                        s.quiescent(1, &mut |o| w.freed(o));
                    })
                };
                s.quiescent(0, &mut |o| w.freed(o));
                w.drop_one();
                s.dec(0, 0, &mut |o| w.freed(o));
                s.quiescent(0, &mut |o| w.freed(o));
                b.join().unwrap();
            })
        };
        a.join().unwrap();
        c.join().unwrap();
        settle(&*s, &w);
        w.check_once();
    });
}
