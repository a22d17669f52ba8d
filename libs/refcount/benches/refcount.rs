//! Criterion benchmarks of every strategy: an uncontended inc/dec pair, inc/dec pairs on one
//! hot object from 1..N threads (thread `t` is core `t`), and the latency from the last
//! decrement to the reported free, driving quiescent points round-robin.
//!
//! `cargo bench -p refcount`; `tools/refbench` gives the side-by-side table and JSON.

#![cfg(not(loom))]

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use refcount::{Atomic, Biased, Config, Deferred, Paygo, PercpuRef, RefCache, RefCount, Region, Sloppy, Snzi, Striped, build};

/// Each thread reports a quiescent point every this many pairs (as refbench does).
const QUIESCENT_EVERY: u64 = 1024;

fn threads() -> Vec<usize> {
    let max = thread::available_parallelism().map_or(1, |n| n.get());
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |t| Some(t * 2)).take_while(|&t| t < max).collect();
    v.push(max);
    v
}

/// `iters` pairs on each of `t` threads against object 0; the time until all are done.
fn hot<S: RefCount<Mem = Region>>(t: usize, iters: u64) -> Duration {
    let s: S = build(Config::new(1, t)).unwrap();
    s.create(0, 0);
    let barrier = Barrier::new(t + 1);
    let elapsed = thread::scope(|scope| {
        for core in 0..t {
            let (s, barrier) = (&s, &barrier);
            scope.spawn(move || {
                let mut never = |o: u32| panic!("object {o} freed while anchored");
                barrier.wait();
                for i in 1..=iters {
                    s.inc(core, black_box(0));
                    s.dec(core, 0, &mut never);
                    if i.is_multiple_of(QUIESCENT_EVERY) {
                        s.quiescent(core, &mut never);
                    }
                }
                barrier.wait();
                s.quiescent(core, &mut never);
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    });
    let mut n = 0;
    s.dec(0, 0, &mut |_| n += 1);
    for _ in 0..S::SETTLE_ROUNDS {
        (0..t).for_each(|c| s.quiescent(c, &mut |_| n += 1));
    }
    assert_eq!(n, 1);
    elapsed
}

/// Time from the last decrement until the free is reported, summed over `iters` lives.
fn zero_latency<S: RefCount<Mem = Region>>(cores: usize, iters: u64) -> Duration {
    let s: S = build(Config::new(1, cores)).unwrap();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        s.create(0, 0);
        s.inc(1 % cores, 0);
        let mut freed = false;
        s.dec(1 % cores, 0, &mut |_| freed = true);
        let start = Instant::now();
        s.dec(0, 0, &mut |_| freed = true);
        let mut core = 1 % cores;
        while !freed {
            s.quiescent(core, &mut |_| freed = true);
            core = (core + 1) % cores;
        }
        total += start.elapsed();
    }
    total
}

fn strategy<S: RefCount<Mem = Region>>(c: &mut Criterion) {
    let mut g = c.benchmark_group(S::NAME);
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    g.bench_function("pair_uncontended", |b| {
        let s: S = build(Config::new(1, 1)).unwrap();
        s.create(0, 0);
        let mut never = |o: u32| panic!("object {o} freed while anchored");
        let mut i = 0u64;
        b.iter(|| {
            s.inc(0, black_box(0));
            s.dec(0, 0, &mut never);
            i += 1;
            if i.is_multiple_of(QUIESCENT_EVERY) {
                s.quiescent(0, &mut never);
            }
        });
    });
    for t in threads() {
        g.throughput(Throughput::Elements(t as u64));
        g.bench_with_input(BenchmarkId::new("pair_hot", t), &t, |b, &t| b.iter_custom(|iters| hot::<S>(t, iters)));
    }
    g.throughput(Throughput::Elements(1));
    let cores = *threads().last().unwrap();
    g.bench_function(BenchmarkId::new("zero_latency", cores), |b| b.iter_custom(|iters| zero_latency::<S>(cores.max(2), iters)));
    g.finish();
}

fn all(c: &mut Criterion) {
    strategy::<Atomic<Region>>(c);
    strategy::<Deferred<Region>>(c);
    strategy::<PercpuRef<Region>>(c);
    strategy::<RefCache<Region>>(c);
    strategy::<Paygo<Region>>(c);
    strategy::<Sloppy<Region>>(c);
    strategy::<Striped<Region>>(c);
    strategy::<Snzi<Region>>(c);
    strategy::<Biased<Region>>(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
