//! The matrix's report: tables with one row per shape and CPU count and one
//! column per strategy, each value with its ratio against the baseline
//! measured in the same run and the row's best value in bold (the lowest,
//! or the highest where more is better);
//! rendered as Markdown for people (`report.md`) and as JSON for scripts
//! (`report.json`, which also keeps every boot's parsed lines). It reads
//! the measurements and decides nothing about how they were taken.

use std::fmt::Write;

use abi::process::Strategy;
use serde_json::json;

use super::{Cell, Matrix};
use crate::bench::fork::BASELINE;

/// The forkbench shape the per-fork counters and the bar chart are about:
/// a large parent whose child writes 256 pages.
pub const HEADLINE_SHAPE: (u32, u32) = (4096, 256);

/// Reads one quantity from a cell; `None` where it was not measured.
pub type Getter = Box<dyn Fn(&Cell) -> Option<f64>>;

/// One measured quantity of a cell.
pub struct Metric {
    pub id: &'static str,
    pub title: String,
    /// What one value is (a plot's y axis).
    pub unit: &'static str,
    pub note: String,
    pub decimals: usize,
    /// Whether the best value is the highest (operations per message)
    /// rather than the lowest (instructions, messages, copies).
    pub higher_is_better: bool,
    pub get: Getter,
}

/// The quantity each workload's scaling plot shows: instructions per
/// operation.
pub fn scaling_metrics(matrix: &Matrix) -> Vec<Metric> {
    let (pages, writes) = headline_shape(matrix);
    let storm_pages = matrix.boots().find_map(|b| b.cow_storm.as_ref()).map_or(0, |s| s.pages);
    let tree = matrix.boots().find_map(|b| b.fork_tree.as_ref()).map_or((0, 0, 0), |t| (t.depth, t.width, t.nodes));
    vec![
        Metric {
            id: "forkbench",
            title: format!("forkbench ({pages} pages, child writes {writes}): instructions per fork"),
            unit: "instructions per fork",
            note: "fork + the child writes + exit + wait, from the parent; every CPU's instructions".into(),
            decimals: 0,
            higher_is_better: false,
            get: Box::new(move |c| c.boot.as_ref()?.shape((pages, writes))?.mean_instructions.map(|v| v as f64)),
        },
        Metric {
            id: "cow_storm",
            title: format!("cow_storm ({storm_pages} pages): instructions per copy-on-write fault"),
            unit: "instructions per fault",
            note: "(round whose child writes every page - round whose child writes none) / pages: the fault, the copy, \
                   its reference updates and its free at exit"
                .into(),
            decimals: 0,
            higher_is_better: false,
            get: Box::new(|c| c.boot.as_ref()?.cow_storm.as_ref()?.per_fault_instructions.map(|v| v as f64)),
        },
        Metric {
            id: "fork_tree",
            title: format!("fork_tree (depth {}, width {}: {} processes): instructions per fork", tree.0, tree.1, tree.2),
            unit: "instructions per fork",
            note: "a whole tree, children forked on every CPU in turn, divided by the processes it creates".into(),
            decimals: 0,
            higher_is_better: false,
            get: Box::new(|c| c.boot.as_ref()?.fork_tree.as_ref()?.per_fork()),
        },
        Metric {
            id: "parallel_fork",
            title: "parallel_fork: instructions per fork, one forking worker per CPU".into(),
            unit: "instructions per fork",
            note: "every CPU forks at once (256 resident pages, the child writes 16); the whole machine's instructions per \
                   fork, so a flat line is perfect scaling"
                .into(),
            decimals: 0,
            higher_is_better: false,
            get: Box::new(|c| c.boot.as_ref()?.parallel_fork.as_ref()?.mean_instructions_per_fork.map(|v| v as f64)),
        },
    ]
}

/// The per-fork counters of the headline shape (the bar chart's groups).
pub fn counter_metrics(matrix: &Matrix) -> Vec<Metric> {
    let (pages, writes) = headline_shape(matrix);
    vec![
        Metric {
            id: "forkbench_mem_ipc",
            title: format!("forkbench ({pages}, {writes}): messages to the memory server per fork"),
            unit: "memory-server messages per fork",
            note: "reference batches, frame requests and TryRemoveUnique questions (process-server counters)".into(),
            decimals: 2,
            higher_is_better: false,
            get: Box::new(move |c| Some(c.boot.as_ref()?.shape((pages, writes))?.mem_ipc_per_fork)),
        },
        Metric {
            id: "forkbench_cow_copies",
            title: format!("forkbench ({pages}, {writes}): copy-on-write copies per fork"),
            unit: "COW copies per fork",
            note: "pages copied at a write fault; the rest were found unique and written in place".into(),
            decimals: 2,
            higher_is_better: false,
            get: Box::new(move |c| Some(c.boot.as_ref()?.shape((pages, writes))?.cow_copies_per_fork)),
        },
    ]
}

/// More tables, without plots.
fn other_metrics() -> Vec<Metric> {
    vec![
        Metric {
            id: "cow_storm_mem_ipc",
            title: "cow_storm: messages to the memory server per storm round".into(),
            unit: "messages per round",
            note: "one fork whose child writes every page".into(),
            decimals: 2,
            higher_is_better: false,
            get: Box::new(|c| Some(c.boot.as_ref()?.cow_storm.as_ref()?.mem_ipc_per_fork)),
        },
        Metric {
            id: "parallel_fork_mem_ipc",
            title: "parallel_fork: messages to the memory server per fork".into(),
            unit: "messages per fork",
            note: "workers' start and setup included".into(),
            decimals: 2,
            higher_is_better: false,
            get: Box::new(|c| Some(c.boot.as_ref()?.parallel_fork.as_ref()?.mem_ipc_per_fork)),
        },
        Metric {
            id: "kernel_lock_wait",
            title: "kernel lock: share of the CPUs' time spent waiting for it".into(),
            unit: "wait / (elapsed × CPUs)",
            note: "TSC cycles every CPU spun for the kernel lock while the workloads ran, over their elapsed TSC \
                   cycles times the CPUs (`KernelInfo`; under --icount, instructions). Under --icount QEMU runs the vCPUs \
                   one at a time, so a wait is rare and counts the holder's whole turn (up to 100 million \
                   instructions): QEMU's scheduling, not the lock's work (docs/kernel.md)"
                .into(),
            decimals: 4,
            higher_is_better: false,
            get: Box::new(|c| Some(c.boot.as_ref()?.lock.as_ref()?.share())),
        },
        Metric {
            id: "trace_items_per_msg",
            title: "IPC trace: operations per message to the memory server".into(),
            unit: "items per message",
            note: "`ipctrace stats`, the memory server's row (items_per_msg), from the traced boot of the same cell; \
                   more is better (fewer, fuller batches)"
                .into(),
            decimals: 1,
            higher_is_better: true,
            get: Box::new(|c| c.trace.as_ref()?.summary.as_ref().ok()?.memory_server["items_per_msg"].as_f64()),
        },
        Metric {
            id: "trace_lost",
            title: "IPC trace: share of the records lost".into(),
            unit: "lost / made",
            note: "records the guest's per-CPU rings overwrote before an idle CPU sent them (`ipctrace check`); the \
                   operations per message above come from the records kept. At 1 CPU nothing is idle while the \
                   workloads run, so the file holds little more than the last ring-full, flushed at the end"
                .into(),
            decimals: 2,
            higher_is_better: false,
            get: Box::new(|c| c.trace.as_ref()?.summary.as_ref().ok()?.lost_share()),
        },
    ]
}

/// The headline shape if any boot measured it, else the last shape seen.
pub fn headline_shape(matrix: &Matrix) -> (u32, u32) {
    let shapes = shapes(matrix);
    if shapes.contains(&HEADLINE_SHAPE) { HEADLINE_SHAPE } else { shapes.last().copied().unwrap_or(HEADLINE_SHAPE) }
}

/// The forkbench shapes, in the guest's order.
fn shapes(matrix: &Matrix) -> Vec<(u32, u32)> {
    let mut shapes = Vec::new();
    for line in matrix.boots().flat_map(|b| &b.forkbench) {
        if !shapes.contains(&line.shape()) {
            shapes.push(line.shape());
        }
    }
    shapes
}

/// One table of the report.
pub struct Table {
    pub id: &'static str,
    pub title: String,
    pub note: String,
    /// The names of the columns that say what a row is.
    pub keys: Vec<&'static str>,
    pub rows: Vec<Row>,
    pub decimals: usize,
    pub higher_is_better: bool,
}

pub struct Row {
    pub key: Vec<String>,
    /// One value per strategy, in the matrix's order.
    pub values: Vec<Option<f64>>,
}

impl Row {
    fn of(matrix: &Matrix, key: Vec<String>, smp: usize, get: &dyn Fn(&Cell) -> Option<f64>) -> Self {
        Self { key, values: matrix.strategies.iter().map(|&s| matrix.cell(s, smp).and_then(get)).collect() }
    }

    /// Whether each value is the row's best: the lowest, or the highest
    /// when `higher_is_better` (ties are all best).
    fn best(&self, higher_is_better: bool) -> Vec<bool> {
        let present = self.values.iter().flatten().copied();
        let best = if higher_is_better { present.max_by(f64::total_cmp) } else { present.min_by(f64::total_cmp) };
        self.values.iter().map(|v| v.is_some() && *v == best).collect()
    }

    /// Each value over the baseline's in this row.
    fn ratios(&self, strategies: &[Strategy]) -> Vec<Option<f64>> {
        let base = strategies.iter().position(|&s| s == BASELINE).and_then(|i| self.values[i]).filter(|&b| b > 0.0);
        self.values.iter().map(|v| Some(v.as_ref()? / base?)).collect()
    }
}

impl Table {
    fn by_smp(matrix: &Matrix, metric: &Metric) -> Self {
        let rows = matrix.smps.iter().map(|&smp| Row::of(matrix, vec![smp.to_string()], smp, &metric.get)).collect();
        Self {
            id: metric.id,
            title: metric.title.clone(),
            note: metric.note.clone(),
            keys: vec!["CPUs"],
            rows,
            decimals: metric.decimals,
            higher_is_better: metric.higher_is_better,
        }
    }

    fn is_empty(&self) -> bool {
        self.rows.iter().all(|r| r.values.iter().all(Option::is_none))
    }
}

/// Every table of the report, in its order; tables without a single value
/// (traces not taken) are left out.
pub fn tables(matrix: &Matrix) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut rows = Vec::new();
    for shape in shapes(matrix) {
        for &smp in &matrix.smps {
            let get = move |c: &Cell| c.boot.as_ref()?.shape(shape)?.mean_instructions.map(|v| v as f64);
            rows.push(Row::of(matrix, vec![shape.0.to_string(), shape.1.to_string(), smp.to_string()], smp, &get));
        }
    }
    tables.push(Table {
        id: "forkbench_instructions",
        title: "forkbench: instructions per fork, by shape".into(),
        note: "fork + exit + wait while the parent has `pages` resident and the child writes `writes` of them".into(),
        keys: vec!["pages", "writes", "CPUs"],
        rows,
        decimals: 0,
        higher_is_better: false,
    });
    let metrics = scaling_metrics(matrix).into_iter().skip(1).chain(counter_metrics(matrix)).chain(other_metrics());
    tables.extend(metrics.map(|m| Table::by_smp(matrix, &m)));
    tables.retain(|t| !t.is_empty());
    tables
}

/// `value` with `decimals` decimals and thousands separators.
pub fn number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let (sign, digits) = whole.strip_prefix('-').map_or(("", whole), |d| ("-", d));
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

impl Table {
    fn markdown(&self, strategies: &[Strategy], out: &mut String) {
        let _ = writeln!(out, "### {}\n\n{}.\n", self.title, self.note);
        let names: Vec<&str> = strategies.iter().map(|s| s.name()).collect();
        let _ = writeln!(out, "| {} | {} |", self.keys.join(" | "), names.join(" | "));
        let _ = writeln!(out, "|{}", "---:|".repeat(self.keys.len() + names.len()));
        for row in &self.rows {
            let marked = row.values.iter().zip(row.ratios(strategies)).zip(row.best(self.higher_is_better));
            let cells = marked.map(|((value, ratio), best)| {
                let Some(value) = value else { return "-".to_string() };
                let mut text = number(*value, self.decimals);
                if let Some(ratio) = ratio {
                    let _ = write!(text, " ({ratio:.2}×)");
                }
                if best { format!("**{text}**") } else { text }
            });
            let _ = writeln!(out, "| {} | {} |", row.key.join(" | "), cells.collect::<Vec<_>>().join(" | "));
        }
        out.push('\n');
    }

    fn json(&self, strategies: &[Strategy]) -> serde_json::Value {
        let by_name = |values: Vec<Option<f64>>| -> serde_json::Map<String, serde_json::Value> {
            strategies.iter().zip(values).map(|(s, v)| (s.name().to_string(), json!(v))).collect()
        };
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|row| {
                let key: serde_json::Map<String, serde_json::Value> =
                    self.keys.iter().zip(&row.key).map(|(k, v)| (k.to_string(), json!(v.parse::<u64>().ok()))).collect();
                let best: Vec<&str> =
                    strategies.iter().zip(row.best(self.higher_is_better)).filter(|(_, b)| *b).map(|(s, _)| s.name()).collect();
                json!({
                    "key": key,
                    "values": by_name(row.values.clone()),
                    format!("vs_{}", BASELINE.name()): by_name(row.ratios(strategies)),
                    "best": best,
                })
            })
            .collect();
        json!({ "id": self.id, "title": self.title, "note": self.note, "rows": rows })
    }
}

/// A plot written next to the report (path relative to it).
pub struct PlotFile {
    pub title: String,
    pub relative: String,
}

/// The whole report in Markdown.
pub fn markdown(matrix: &Matrix, tables: &[Table], plots: &[PlotFile], meta: &serde_json::Value) -> String {
    let mut out = String::new();
    let names: Vec<&str> = matrix.strategies.iter().map(|s| s.name()).collect();
    let smps: Vec<String> = matrix.smps.iter().map(usize::to_string).collect();
    let _ = writeln!(out, "# Experiment matrix: refcount strategies × workloads × CPUs\n");
    let _ = writeln!(
        out,
        "{} run of `cargo xtask bench matrix`: {} strategies ({}) × CPUs {} = {} boots, each running every workload \
         (forkbench, cow_storm, fork_tree, parallel_fork) under one strategy. TCG with `--icount` (QEMU {}), release \
         build, {} host CPUs; it took {}.\n",
        if matrix.quick { "A quick (`--quick`)" } else { "A full" },
        names.len(),
        names.join(", "),
        smps.join(", "),
        matrix.cells.len(),
        meta["qemu"].as_str().unwrap_or("?"),
        meta["host_cpus"].as_u64().map_or("?".into(), |n| n.to_string()),
        minutes(matrix.elapsed.as_secs_f64()),
    );
    let _ = writeln!(
        out,
        "Instructions are exact: under `--icount` the TSC advances by one for each guest instruction on any CPU, so \
         a workload's TSC delta is what the whole machine executed (servers included) and repeats from run to run. \
         In parentheses: the ratio against `{}` measured in this run. **Bold**: the row's best value, the lowest \
         (fewer instructions, messages, copies) except where a table says that more is better.\n",
        BASELINE.name()
    );
    if matrix.traced {
        let _ = writeln!(
            out,
            "IPC traces: every cell was booted once more with `--trace` (tracing on changes the instruction counts, so \
             the figures above come from the untraced boot); the files are under `traces/`, and `report.json` has \
             each one's `ipctrace stats` row for the memory server.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "IPC traces: not recorded{}. Tracing on perturbs the instruction counts, so traces need a boot of their own \
             per cell; the full run (without `--quick`) makes them.\n",
            if matrix.quick { " in a quick run" } else { "" }
        );
    }
    let failed: Vec<&Cell> = matrix.cells.iter().filter(|c| c.error.is_some()).collect();
    let leaked: Vec<&Cell> =
        matrix.cells.iter().filter(|c| c.boot.as_ref().and_then(|b| b.memory.as_ref()).is_some_and(|m| !m.clean())).collect();
    if failed.is_empty() && leaked.is_empty() {
        let _ = writeln!(out, "Every boot succeeded, and every frame was back in the memory server's pool at its end.\n");
    }
    for cell in failed {
        let _ = writeln!(out, "- **FAILED** {} at {} CPUs: {}", cell.strategy.name(), cell.smp, cell.error.as_deref().unwrap_or_default());
    }
    for cell in leaked {
        let memory = cell.boot.as_ref().and_then(|b| b.memory.as_ref()).expect("filtered");
        let _ = writeln!(out, "- **LEAK** {} at {} CPUs: {memory:?}", cell.strategy.name(), cell.smp);
    }
    out.push('\n');
    for (section, ids) in [
        ("forkbench", &["forkbench_instructions", "forkbench_mem_ipc", "forkbench_cow_copies"][..]),
        ("cow_storm", &["cow_storm", "cow_storm_mem_ipc"]),
        ("fork_tree", &["fork_tree"]),
        ("parallel_fork", &["parallel_fork", "parallel_fork_mem_ipc"]),
        ("IPC traces", &["trace_items_per_msg", "trace_lost"]),
        ("kernel lock", &["kernel_lock_wait"]),
    ] {
        let mine: Vec<&Table> = ids.iter().filter_map(|id| tables.iter().find(|t| t.id == *id)).collect();
        if mine.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {section}\n");
        for table in mine {
            table.markdown(&matrix.strategies, &mut out);
        }
    }
    if !plots.is_empty() {
        let _ = writeln!(out, "## Plots\n");
        for plot in plots {
            let _ = writeln!(out, "![{}]({})\n", plot.title, plot.relative);
        }
    }
    out
}

/// The whole report as JSON: `meta`, the tables, the plots and every
/// cell's parsed lines.
pub fn json(matrix: &Matrix, tables: &[Table], plots: &[PlotFile], meta: serde_json::Value) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = matrix
        .cells
        .iter()
        .map(|cell| {
            let trace = cell.trace.as_ref().map(|t| {
                let summary = t.summary.as_ref().ok();
                json!({
                    "path": t.path.display().to_string(),
                    "memory_server": summary.map(|s| &s.memory_server),
                    "records": summary.map(|s| s.records),
                    "lost": summary.map(|s| s.lost),
                    "error": t.summary.as_ref().err(),
                })
            });
            json!({
                "strategy": cell.strategy.name(),
                "smp": cell.smp,
                "ok": cell.error.is_none(),
                "error": cell.error,
                "attempts": cell.attempts,
                "seconds": cell.seconds,
                "boot": cell.boot,
                "trace": trace,
            })
        })
        .collect();
    json!({
        "meta": meta,
        "tables": tables.iter().map(|t| t.json(&matrix.strategies)).collect::<Vec<_>>(),
        "plots": plots.iter().map(|p| json!({ "title": p.title, "path": p.relative })).collect::<Vec<_>>(),
        "runs": runs,
    })
}

/// `seconds` as `1m05s` (or `12.3 s` under a minute).
pub fn minutes(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    format!("{}m{:02}s", whole / 60, whole % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(number(5_568_706.0, 0), "5,568,706");
        assert_eq!(number(310.0, 2), "310.00");
        assert_eq!(number(1234.5, 1), "1,234.5");
        assert_eq!(number(-1000.0, 0), "-1,000");
        assert_eq!(number(12.0, 0), "12");
        assert_eq!(minutes(75.2), "1m15s");
        assert_eq!(minutes(9.04), "9.0 s");
    }

    #[test]
    fn rows_mark_the_best_and_compare_with_the_baseline() {
        let strategies = [Strategy::Deferred, Strategy::Atomic, Strategy::Percpu];
        let row = Row { key: vec!["2".into()], values: vec![Some(80.0), Some(100.0), None] };
        assert_eq!(row.best(false), vec![true, false, false]);
        assert_eq!(row.best(true), vec![false, true, false]);
        assert_eq!(row.ratios(&strategies), vec![Some(0.8), Some(1.0), None]);
        let tie = Row { key: vec![], values: vec![Some(5.0), Some(5.0), Some(6.0)] };
        assert_eq!(tie.best(false), vec![true, true, false]);
        // No baseline in the run: no ratios.
        assert_eq!(row.ratios(&[Strategy::Deferred, Strategy::Percpu, Strategy::Snzi]), vec![None, None, None]);
        let table = Table {
            id: "t",
            title: "T".into(),
            note: "n".into(),
            keys: vec!["CPUs"],
            rows: vec![row],
            decimals: 0,
            higher_is_better: false,
        };
        let mut out = String::new();
        table.markdown(&strategies, &mut out);
        assert!(out.contains("| CPUs | deferred | atomic | percpu |"), "{out}");
        assert!(out.contains("| 2 | **80 (0.80×)** | 100 (1.00×) | - |"), "{out}");
        let json = table.json(&strategies);
        assert_eq!(json["rows"][0]["vs_atomic"]["deferred"], 0.8);
        assert_eq!(json["rows"][0]["best"], json!(["deferred"]));
        assert_eq!(json["rows"][0]["key"]["CPUs"], 2);
    }
}
