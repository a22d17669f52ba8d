//! refbench: measures every `libs/refcount` strategy on the host, side by side, and writes
//! a readable table plus a JSON file a script can compare.
//!
//! For each strategy: nanoseconds per inc/dec pair on one thread; throughput of inc/dec
//! pairs from 1..N threads on one hot object and on many objects, with the ratio to the
//! atomic baseline measured in the same run; the latency from the last decrement until the
//! object is reported free (driving quiescent points as the strategy needs); and table bytes
//! per object. Threads are not pinned; thread `t` acts as core `t`.

mod measure;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use refcount::{Atomic, Biased, Deferred, Paygo, PercpuRef, RefCache, Region, Sloppy, Snzi, Striped};

use crate::measure::Plan;
use crate::report::Report;

/// Benchmark every reference-counting strategy of libs/refcount.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Most threads to run (default: the machine's available parallelism).
    #[arg(long)]
    threads: Option<usize>,
    /// Short measurements: the whole run stays under about 30 seconds.
    #[arg(long)]
    quick: bool,
    /// Objects in the many-objects workload.
    #[arg(long, default_value_t = 4096)]
    objects: usize,
    /// Each thread reports a quiescent point every this many inc/dec pairs (a server would
    /// report between batches of requests).
    #[arg(long, default_value_t = 1024)]
    quiescent_every: u64,
    /// Write the results as JSON to this path (folders are created).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run only the strategies whose name contains this (atomic always runs: it is the
    /// baseline of every ratio).
    #[arg(long)]
    only: Option<String>,
}

fn thread_counts(max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |t| Some(t * 2)).take_while(|&t| t < max).collect();
    v.push(max);
    v
}

fn main() {
    let args = Args::parse();
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = args.threads.unwrap_or(available).max(1);
    let plan = Plan {
        threads: thread_counts(max),
        quiescent_every: args.quiescent_every.max(1),
        objects: args.objects.max(1),
        run: if args.quick { Duration::from_millis(60) } else { Duration::from_millis(300) },
        reps: if args.quick { 1 } else { 3 },
        latency_reps: if args.quick { 200 } else { 2000 },
    };
    let wanted = |name: &str| name == "atomic" || args.only.as_deref().is_none_or(|o| name.contains(o));
    let mut results = Vec::new();
    macro_rules! run {
        ($($ty:ty),*) => {$(
            if wanted(<$ty as refcount::RefCount>::NAME) {
                eprintln!("refbench: {}", <$ty as refcount::RefCount>::NAME);
                results.push(measure::strategy::<$ty>(&plan));
            }
        )*};
    }
    run!(
        Atomic<Region>,
        Deferred<Region>,
        PercpuRef<Region>,
        RefCache<Region>,
        Paygo<Region>,
        Sloppy<Region>,
        Striped<Region>,
        Snzi<Region>,
        Biased<Region>
    );
    let report = Report::new(&plan, available, args.quick, results);
    print!("{}", report.table());
    if let Some(path) = args.json {
        if let Err(e) = report.write_json(&path) {
            eprintln!("refbench: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        eprintln!("refbench: wrote {}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_double_up_to_the_maximum() {
        assert_eq!(thread_counts(1), vec![1]);
        assert_eq!(thread_counts(4), vec![1, 2, 4]);
        assert_eq!(thread_counts(6), vec![1, 2, 4, 6]);
    }

    #[test]
    fn a_tiny_run_measures_and_compares_to_atomic() {
        let plan = Plan { threads: vec![1, 2], quiescent_every: 16, objects: 32, run: Duration::from_millis(5), reps: 3, latency_reps: 5 };
        let results = vec![measure::strategy::<Atomic<Region>>(&plan), measure::strategy::<RefCache<Region>>(&plan)];
        let report = Report::new(&plan, 2, true, results);
        let json: serde_json::Value = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        let strategies = json["strategies"].as_array().unwrap();
        assert_eq!(strategies[0]["hot"][1]["vs_atomic"], 1.0);
        let refcache = &strategies[1];
        assert_eq!(refcache["name"], "refcache");
        assert!(refcache["many"][0]["pairs"].as_u64().unwrap() > 0);
        assert!(refcache["zero_latency_quiescent_calls"].as_f64().unwrap() >= 2.0, "a review needs an epoch");
        assert!(report.table().contains("refcache"));
    }
}
