//! The results: a table for people and JSON for scripts. Ratios are against the atomic
//! baseline of the same run.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::measure::Plan;

#[derive(Serialize, Clone)]
pub struct Contended {
    pub threads: usize,
    pub pairs: u64,
    pub seconds: f64,
    /// Million inc/dec pairs per second, all threads together.
    pub mpairs_per_s: f64,
    /// Wall time per pair on one thread.
    pub ns_per_pair: f64,
    /// Throughput over atomic's at the same thread count.
    pub vs_atomic: f64,
}

impl Contended {
    pub fn new(threads: usize, pairs: u64, seconds: f64) -> Self {
        Contended {
            threads,
            pairs,
            seconds,
            mpairs_per_s: pairs as f64 / seconds / 1e6,
            ns_per_pair: seconds * 1e9 * threads as f64 / pairs as f64,
            vs_atomic: 1.0,
        }
    }
}

#[derive(Serialize)]
pub struct StrategyResult {
    pub name: String,
    pub bytes_per_object: f64,
    pub uncontended_ns_per_pair: f64,
    pub hot: Vec<Contended>,
    pub many: Vec<Contended>,
    pub zero_latency_ns: f64,
    pub zero_latency_quiescent_calls: f64,
}

#[derive(Serialize)]
struct Host {
    available_parallelism: usize,
    threads: Vec<usize>,
    quiescent_every: u64,
    objects: usize,
    run_ms: u128,
    reps: usize,
    latency_reps: usize,
    quick: bool,
}

#[derive(Serialize)]
pub struct Report {
    host: Host,
    strategies: Vec<StrategyResult>,
}

impl Report {
    /// Fills in every ratio against the atomic entry (the first one).
    pub fn new(plan: &Plan, available: usize, quick: bool, mut strategies: Vec<StrategyResult>) -> Self {
        let base = strategies.iter().find(|s| s.name == "atomic").map(|a| (a.hot.clone(), a.many.clone()));
        if let Some((hot, many)) = base {
            for s in &mut strategies {
                for (r, b) in s.hot.iter_mut().zip(&hot).chain(s.many.iter_mut().zip(&many)) {
                    r.vs_atomic = r.mpairs_per_s / b.mpairs_per_s;
                }
            }
        }
        let host = Host {
            available_parallelism: available,
            threads: plan.threads.clone(),
            quiescent_every: plan.quiescent_every,
            objects: plan.objects,
            run_ms: plan.run.as_millis(),
            reps: plan.reps,
            latency_reps: plan.latency_reps,
            quick,
        };
        Report { host, strategies }
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let cores = self.host.threads.last().copied().unwrap_or(1);
        let _ = writeln!(
            t,
            "refcount strategies on the host ({} hardware threads; threads not pinned; a quiescent \
             point every {} pairs; median of {} runs of {} ms)\n",
            self.host.available_parallelism, self.host.quiescent_every, self.host.reps, self.host.run_ms
        );
        let _ = writeln!(
            t,
            "{:<10} {:>14} {:>16} {:>18} {:>10}",
            "strategy",
            format!("B/obj@{cores}c"),
            "1 thread ns/pair",
            "zero latency ns",
            "quiescent"
        );
        for s in &self.strategies {
            let _ = writeln!(
                t,
                "{:<10} {:>14.1} {:>16.2} {:>18.0} {:>10.1}",
                s.name, s.bytes_per_object, s.uncontended_ns_per_pair, s.zero_latency_ns, s.zero_latency_quiescent_calls
            );
        }
        for (title, pick) in [
            ("one hot object", (|s: &StrategyResult| &s.hot) as fn(&StrategyResult) -> &Vec<Contended>),
            ("many objects", |s: &StrategyResult| &s.many),
        ] {
            let _ = writeln!(t, "\n{title} ({} objects for many): M pairs/s (x atomic)", self.host.objects);
            let _ = write!(t, "{:<10}", "strategy");
            for n in &self.host.threads {
                let _ = write!(t, " {:>20}", format!("{n} thread{}", if *n == 1 { "" } else { "s" }));
            }
            let _ = writeln!(t);
            for s in &self.strategies {
                let _ = write!(t, "{:<10}", s.name);
                for r in pick(s) {
                    let _ = write!(t, " {:>20}", format!("{:.1} ({:.2}x)", r.mpairs_per_s, r.vs_atomic));
                }
                let _ = writeln!(t);
            }
        }
        t
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")
    }
}
