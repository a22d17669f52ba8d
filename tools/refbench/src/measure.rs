//! The measurement loops: uncontended pairs, contended pairs on a hot object and on many
//! objects, and zero-detection latency. Each run builds fresh tables with `n_cores` equal to
//! the threads it runs (a core that never reports would stall the grace-period strategies),
//! and checks at the end that every object comes back exactly once.

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use refcount::{Config, RefCount, Region, build};

use crate::report::{Contended, StrategyResult};

/// The clock is read every this many pairs.
const CHECK_EVERY: u64 = 64;

#[derive(Clone)]
pub struct Plan {
    pub threads: Vec<usize>,
    /// Each thread reports a quiescent point every this many pairs.
    pub quiescent_every: u64,
    pub objects: usize,
    pub run: Duration,
    /// Each contended measurement runs this many times; the median counts (the host is
    /// shared and noisy).
    pub reps: usize,
    pub latency_reps: usize,
}

#[derive(Clone, Copy)]
enum Target {
    Hot,
    Many,
}

/// xorshift: picks objects without a shared generator.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn settle<S: RefCount>(s: &S, freed: &mut impl FnMut(u32)) {
    for _ in 0..S::SETTLE_ROUNDS {
        for c in 0..s.config().n_cores {
            s.quiescent(c, freed);
        }
    }
}

/// Runs `threads` threads of inc/dec pairs for the plan's time. Returns (pairs, seconds).
fn contended<S: RefCount<Mem = Region>>(plan: &Plan, threads: usize, target: Target) -> (u64, f64) {
    let s: S = build(Config::new(plan.objects, threads)).expect("config");
    for o in 0..plan.objects as u32 {
        s.create(0, o);
    }
    let barrier = Barrier::new(threads);
    let (pairs, secs) = thread::scope(|scope| {
        let hs: Vec<_> = (0..threads)
            .map(|core| {
                let (s, barrier) = (&s, &barrier);
                scope.spawn(move || {
                    let mut rng = 0x2545_f491_4f6c_dd1d ^ (core as u64 + 1);
                    let mut freed = |o: u32| panic!("{}: object {o} freed while anchored", S::NAME);
                    barrier.wait();
                    let start = Instant::now();
                    let mut n = 0u64;
                    loop {
                        for _ in 0..CHECK_EVERY {
                            let o = match target {
                                Target::Hot => 0,
                                Target::Many => (next(&mut rng) % plan.objects as u64) as u32,
                            };
                            s.inc(core, black_box(o));
                            s.dec(core, o, &mut freed);
                            n += 1;
                            if n.is_multiple_of(plan.quiescent_every) {
                                s.quiescent(core, &mut freed);
                            }
                        }
                        if start.elapsed() >= plan.run {
                            break;
                        }
                    }
                    let secs = start.elapsed().as_secs_f64();
                    // Keep reporting until every thread is done, so grace periods can end.
                    barrier.wait();
                    s.quiescent(core, &mut freed);
                    (n, secs)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).fold((0, 0f64), |(n, t), (m, u)| (n + m, t.max(u)))
    });
    let mut back = 0usize;
    settle(&s, &mut |o| panic!("{}: object {o} freed while anchored", S::NAME));
    for o in 0..plan.objects as u32 {
        s.dec(0, o, &mut |_| back += 1);
    }
    settle(&s, &mut |_| back += 1);
    assert_eq!(back, plan.objects, "{}: objects lost or freed twice", S::NAME);
    (pairs, secs)
}

fn uncontended<S: RefCount<Mem = Region>>(plan: &Plan) -> f64 {
    let (pairs, secs) = contended::<S>(&Plan { objects: 1, ..plan.clone() }, 1, Target::Hot);
    secs * 1e9 / pairs as f64
}

/// Mean time from the last decrement until the free is reported, and mean quiescent calls
/// that took, with references dropped on two cores (the last one on core 0) and quiescent
/// points driven round-robin over all cores from core 1 on.
fn zero_latency<S: RefCount<Mem = Region>>(plan: &Plan) -> (f64, f64) {
    let cores = *plan.threads.last().unwrap();
    let s: S = build(Config::new(1, cores)).expect("config");
    let (mut total, mut calls) = (Duration::ZERO, 0u64);
    for _ in 0..plan.latency_reps {
        s.create(0, 0);
        s.inc(1 % cores, 0);
        let mut freed = false;
        s.dec(1 % cores, 0, &mut |_| freed = true);
        assert!(!freed, "{}: freed early", S::NAME);
        let start = Instant::now();
        s.dec(0, 0, &mut |_| freed = true);
        let mut core = 1 % cores;
        while !freed {
            s.quiescent(core, &mut |_| freed = true);
            calls += 1;
            core = (core + 1) % cores;
            assert!(calls < (plan.latency_reps as u64 + 1) * 64, "{}: never freed", S::NAME);
        }
        total += start.elapsed();
    }
    let reps = plan.latency_reps as f64;
    (total.as_nanos() as f64 / reps, calls as f64 / reps)
}

pub fn strategy<S: RefCount<Mem = Region>>(plan: &Plan) -> StrategyResult {
    let cores = *plan.threads.last().unwrap();
    let run = |target| {
        plan.threads
            .iter()
            .map(|&t| {
                let mut runs: Vec<_> = (0..plan.reps)
                    .map(|_| {
                        let (pairs, secs) = contended::<S>(plan, t, target);
                        Contended::new(t, pairs, secs)
                    })
                    .collect();
                runs.sort_by(|a, b| a.mpairs_per_s.total_cmp(&b.mpairs_per_s));
                runs.swap_remove(runs.len() / 2)
            })
            .collect()
    };
    let (latency_ns, latency_calls) = zero_latency::<S>(plan);
    StrategyResult {
        name: S::NAME.to_string(),
        bytes_per_object: S::bytes_needed(&Config::new(plan.objects, cores)) as f64 / plan.objects as f64,
        uncontended_ns_per_pair: uncontended::<S>(plan),
        hot: run(Target::Hot),
        many: run(Target::Many),
        zero_latency_ns: latency_ns,
        zero_latency_quiescent_calls: latency_calls,
    }
}
