//! `cargo xtask bench matrix`: the experiment matrix, refcount strategies ×
//! workloads × CPU counts. Each cell (a strategy at a CPU count) is one
//! boot under `--icount` that runs every workload one after the other
//! (`bench=matrix`, servers/init/src/bench.rs), so its instruction counts
//! are exact and repeatable, and the ratios compare strategies measured in
//! the same xtask run. A boot that fails is tried once more; a cell that
//! fails twice is reported and the matrix goes on.
//!
//! Tracing on changes the instruction counts, so the IPC trace of a cell
//! is a boot of its own (`--trace target/bench/traces/STRATEGY-smpN.trace`,
//! without icount), summarised by `ipctrace stats --json`. Only the full
//! run makes them; `--quick` (fewer rounds, no traces) is a smoke test.
//!
//! Writes target/bench/report.md, report.json and SVG plots under
//! target/bench/plots/.

mod lines;
mod plot;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use abi::process::Strategy;
use anyhow::{Context, Result, bail};

use super::write_json;
use crate::build::{self, target_dir, workspace_root};
use crate::machine_check::MAX_SMP;
use crate::qemu::{self, Echo, MachineArgs};
use crate::{BuildArgs, cmdline, prereq};

/// The CPU counts measured when `--smp` is not given.
pub const DEFAULT_SMP: [usize; 3] = [1, 2, 4];
/// Kill a boot after this many seconds (a full one takes about ten).
const BOOT_TIMEOUT_S: u64 = 240;
/// Guest lines shown when a boot fails.
const TAIL_LINES: usize = 25;

/// One cell of the matrix.
pub struct Cell {
    pub strategy: Strategy,
    pub smp: usize,
    /// What the last boot printed (partial if it failed).
    pub boot: Option<lines::Boot>,
    /// Why the last boot failed; `None` if it succeeded.
    pub error: Option<String>,
    pub attempts: u32,
    /// Wall time of the last boot.
    pub seconds: f64,
    pub trace: Option<Trace>,
}

/// A cell's traced boot.
pub struct Trace {
    pub path: PathBuf,
    pub summary: Result<TraceSummary, String>,
}

/// What `ipctrace` makes of a trace.
pub struct TraceSummary {
    /// `ipctrace stats --json`'s row for the memory server's protocol.
    pub memory_server: serde_json::Value,
    /// Records in the file, and records the guest's rings lost before they
    /// were sent (`ipctrace check --json`, summed over the CPUs).
    pub records: u64,
    pub lost: u64,
}

impl TraceSummary {
    /// The share of the records made that the file lacks.
    pub fn lost_share(&self) -> Option<f64> {
        let made = self.records + self.lost;
        (made > 0).then(|| self.lost as f64 / made as f64)
    }
}

/// The whole run.
pub struct Matrix {
    pub strategies: Vec<Strategy>,
    pub smps: Vec<usize>,
    pub quick: bool,
    pub traced: bool,
    pub cells: Vec<Cell>,
    pub elapsed: Duration,
}

impl Matrix {
    pub fn cell(&self, strategy: Strategy, smp: usize) -> Option<&Cell> {
        self.cells.iter().find(|c| c.strategy == strategy && c.smp == smp)
    }

    /// Every boot that printed anything.
    pub fn boots(&self) -> impl Iterator<Item = &lines::Boot> {
        self.cells.iter().filter_map(|c| c.boot.as_ref())
    }
}

/// `smp` in the order given, each once; [`DEFAULT_SMP`] if none given.
pub(super) fn chosen_smp(smp: &[usize]) -> Result<Vec<usize>> {
    let mut chosen: Vec<usize> = Vec::new();
    for &n in if smp.is_empty() { &DEFAULT_SMP[..] } else { smp } {
        if !(1..=MAX_SMP).contains(&n) {
            bail!("--smp {n}: the system runs on 1 to {MAX_SMP} CPUs");
        }
        if !chosen.contains(&n) {
            chosen.push(n);
        }
    }
    Ok(chosen)
}

/// The kernel command line of a cell's boot.
fn cmdline_of(strategy: Strategy, icount: bool, quick: bool) -> String {
    let strategy = cmdline::strategy_word(strategy);
    let icount = if icount { abi::selftest::ICOUNT_FLAG } else { "" };
    let quick = if quick { abi::selftest::BENCH_QUICK_FLAG } else { "" };
    cmdline::join([abi::selftest::BENCH_MATRIX_FLAG, strategy.as_str(), icount, quick])
}

/// One boot of a cell: what it printed (if its header came), and why it
/// failed (if it did).
fn boot_once(
    artifacts: &build::Artifacts,
    machine: &MachineArgs,
    strategy: Strategy,
    quick: bool,
) -> (Option<lines::Boot>, Option<String>) {
    let line = cmdline_of(strategy, machine.icount, quick);
    let outcome = match qemu::boot(artifacts, machine, &line, Echo::No) {
        Ok(outcome) => outcome,
        Err(error) => return (None, Some(format!("{error:#}"))),
    };
    let parsed = lines::read_boot(&outcome.lines, strategy, machine.smp);
    let mut problems = Vec::new();
    match (outcome.exit, outcome.timed_out) {
        (Some(abi::exit::GuestExit::Success), _) => {}
        (_, Some(limit)) => problems.push(format!("killed after the time limit of {} s", limit.as_secs())),
        (Some(abi::exit::GuestExit::Failure), _) => problems.push("the guest reported failure".to_string()),
        (None, None) => problems.push(format!("QEMU ended without a guest verdict (status {:?})", outcome.status)),
    }
    let boot = match parsed {
        Ok(boot) => {
            problems.extend(boot.failed.iter().map(|f| format!("workload failed: {f}")));
            if !boot.done && problems.is_empty() {
                problems.push("the guest never printed `[bench] matrix done`".into());
            }
            Some(boot)
        }
        Err(error) => {
            problems.push(format!("{error:#}"));
            None
        }
    };
    if problems.is_empty() {
        return (boot, None);
    }
    eprintln!("xtask: the guest's last lines:");
    for line in &outcome.lines[outcome.lines.len().saturating_sub(TAIL_LINES)..] {
        eprintln!("    | {line}");
    }
    (boot, Some(problems.join("; ")))
}

/// The memory server's row of `ipctrace stats --json` output: the
/// `memory-server` endpoint with the memory protocol's label.
fn memory_server_row(stats: &serde_json::Value) -> Option<serde_json::Value> {
    stats["by_endpoint_label"]
        .as_array()?
        .iter()
        .find(|row| row["endpoint"].as_str() == Some("memory-server") && row["label_value"].as_u64() == Some(proto::MEMORY_PROTOCOL))
        .cloned()
}

/// The ipctrace binary, built once (release: the traces are large).
fn build_ipctrace() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status =
        Command::new(cargo).current_dir(workspace_root()).args(["build", "--quiet", "--release", "--package", "ipctrace"]).status()?;
    if !status.success() {
        bail!("building ipctrace failed");
    }
    Ok(target_dir().join("release").join("ipctrace"))
}

/// The records kept and lost, summed over the CPUs of `ipctrace check
/// --json` output.
fn kept_and_lost(check: &serde_json::Value) -> (u64, u64) {
    let cpus = check["cpus"].as_object().into_iter().flat_map(|cpus| cpus.values());
    cpus.fold((0, 0), |(kept, lost), cpu| (kept + cpu["records"].as_u64().unwrap_or(0), lost + cpu["lost"].as_u64().unwrap_or(0)))
}

/// `ipctrace FILE COMMAND --json`, parsed. `check` exits with 1 when it
/// finds anything (lost records, for one); its JSON is still the answer.
fn ipctrace_json(ipctrace: &Path, file: &Path, command: &str) -> Result<serde_json::Value> {
    let output = Command::new(ipctrace).arg(file).args([command, "--json"]).output().context("running ipctrace")?;
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("ipctrace {command} printed no JSON: {}", String::from_utf8_lossy(&output.stderr).trim()))
}

/// A cell's traced boot and what ipctrace makes of it.
fn trace_cell(artifacts: &build::Artifacts, ipctrace: &Path, strategy: Strategy, smp: usize) -> Trace {
    let dir = target_dir().join("bench").join("traces");
    let path = dir.join(format!("{}-smp{smp}.trace", strategy.name()));
    let summary = (|| -> Result<TraceSummary> {
        std::fs::create_dir_all(&dir)?;
        let _ = std::fs::remove_file(&path);
        let machine = MachineArgs { trace: Some(path.clone()), ..MachineArgs::tcg(smp, BOOT_TIMEOUT_S) };
        if let (_, Some(error)) = boot_once(artifacts, &machine, strategy, false) {
            bail!("traced boot: {error}");
        }
        let stats = ipctrace_json(ipctrace, &path, "stats")?;
        let memory_server = memory_server_row(&stats).context("the trace has no message to the memory server")?;
        let (records, lost) = kept_and_lost(&ipctrace_json(ipctrace, &path, "check")?);
        Ok(TraceSummary { memory_server, records, lost })
    })();
    Trace { path, summary: summary.map_err(|e| format!("{e:#}")) }
}

/// One line on the progress of the run.
fn progress(done: usize, total: usize, started: Instant, what: &str) {
    let elapsed = started.elapsed().as_secs_f64();
    let left =
        if done > 0 { format!(", about {} left", report::minutes(elapsed / done as f64 * (total - done) as f64)) } else { String::new() };
    eprintln!("xtask: matrix [{done}/{total}] {what} ({} elapsed{left})", report::minutes(elapsed));
}

/// What a finished cell measured, in a few words.
fn summary(boot: &lines::Boot) -> String {
    let mut parts = Vec::new();
    if let Some(fork) = boot.shape(report::HEADLINE_SHAPE).and_then(|s| s.mean_instructions) {
        parts.push(format!("forkbench {} instr/fork", report::number(fork as f64, 0)));
    }
    if let Some(storm) = boot.cow_storm.as_ref().and_then(|s| s.per_fault_instructions) {
        parts.push(format!("cow_storm {}/fault", report::number(storm as f64, 0)));
    }
    if let Some(tree) = boot.fork_tree.as_ref().and_then(|t| t.per_fork()) {
        parts.push(format!("fork_tree {}/fork", report::number(tree, 0)));
    }
    if let Some(parallel) = boot.parallel_fork.as_ref().and_then(|p| p.mean_instructions_per_fork) {
        parts.push(format!("parallel_fork {}/fork", report::number(parallel as f64, 0)));
    }
    parts.join(", ")
}

pub fn run(strategies: &[Strategy], smp: &[usize], quick: bool) -> Result<()> {
    let strategies = super::fork::chosen(strategies);
    let smps = chosen_smp(smp)?;
    prereq::ensure_target()?;
    prereq::ensure_qemu()?;
    let artifacts = build::build(&BuildArgs { release: true })?;
    let traced = !quick;
    let ipctrace = if traced { Some(build_ipctrace()?) } else { None };
    let total = strategies.len() * smps.len() * if traced { 2 } else { 1 };
    eprintln!(
        "xtask: experiment matrix: {} strategies × CPUs {:?} ({}), {total} boots",
        strategies.len(),
        smps,
        if quick { "quick: fewer rounds, no traces" } else { "full, with a traced boot per cell" }
    );
    let started = Instant::now();
    let mut cells = Vec::new();
    let mut done = 0;
    for &smp in &smps {
        for &strategy in &strategies {
            let name = format!("{} at {smp} CPU{}", strategy.name(), if smp == 1 { "" } else { "s" });
            progress(done, total, started, &format!("{name}: booting under --icount"));
            let machine = MachineArgs { icount: true, ..MachineArgs::tcg(smp, BOOT_TIMEOUT_S) };
            let mut attempts = 0;
            let (boot, error, seconds) = loop {
                attempts += 1;
                let at = Instant::now();
                let (boot, error) = boot_once(&artifacts, &machine, strategy, quick);
                match error {
                    Some(why) if attempts < 2 => eprintln!("xtask: {name} failed ({why}); trying once more"),
                    _ => break (boot, error, at.elapsed().as_secs_f64()),
                }
            };
            done += 1;
            match (&boot, &error) {
                (_, Some(why)) => eprintln!("xtask: {name}: FAILED twice: {why}"),
                (Some(boot), None) => eprintln!("xtask: {name}: {} ({seconds:.1} s)", summary(boot)),
                (None, None) => {}
            }
            let trace = ipctrace.as_deref().map(|ipctrace| {
                progress(done, total, started, &format!("{name}: traced boot"));
                let trace = trace_cell(&artifacts, ipctrace, strategy, smp);
                done += 1;
                match &trace.summary {
                    Ok(summary) => eprintln!(
                        "xtask: {name}: trace: {} operations per memory-server message, {} records kept, {} lost",
                        summary.memory_server["items_per_msg"].as_f64().map_or("-".into(), |v| format!("{v:.1}")),
                        summary.records,
                        summary.lost
                    ),
                    Err(why) => eprintln!("xtask: {name}: no trace summary: {why}"),
                }
                trace
            });
            cells.push(Cell { strategy, smp, boot, error, attempts, seconds, trace });
        }
    }
    let matrix = Matrix { strategies, smps, quick, traced, cells, elapsed: started.elapsed() };
    eprintln!("xtask: matrix done in {}", report::minutes(matrix.elapsed.as_secs_f64()));
    write_report(&matrix)?;
    let failed: Vec<String> =
        matrix.cells.iter().filter(|c| c.error.is_some()).map(|c| format!("{} at --smp {}", c.strategy.name(), c.smp)).collect();
    if !failed.is_empty() {
        bail!("{} of {} cells failed: {}", failed.len(), matrix.cells.len(), failed.join(", "));
    }
    Ok(())
}

/// Plots, report.md and report.json under target/bench/.
fn write_report(matrix: &Matrix) -> Result<()> {
    let dir = target_dir().join("bench");
    let plot_dir = dir.join("plots");
    std::fs::create_dir_all(&plot_dir)?;
    let mut plots = Vec::new();
    for metric in report::scaling_metrics(matrix) {
        let series: Vec<plot::Series> = matrix
            .strategies
            .iter()
            .map(|&strategy| plot::Series {
                name: strategy.name().into(),
                points: matrix.smps.iter().filter_map(|&smp| Some((smp as f64, (metric.get)(matrix.cell(strategy, smp)?)?))).collect(),
            })
            .collect();
        if series.iter().all(|s| s.points.is_empty()) {
            continue;
        }
        let file = format!("scaling-{}.svg", metric.id);
        plot::scaling(&plot_dir.join(&file), &metric.title, metric.unit, &series)?;
        plots.push(report::PlotFile { title: metric.title, relative: format!("plots/{file}") });
    }
    // The per-fork counters at one CPU count: 2 if measured (the fork
    // benchmark's machine), else the first.
    let smp = if matrix.smps.contains(&2) { 2 } else { matrix.smps[0] };
    let counters = report::counter_metrics(matrix);
    let groups: Vec<(String, Vec<Option<f64>>)> = counters
        .iter()
        .map(|m| (m.unit.replace(" per fork", ""), matrix.strategies.iter().map(|&s| matrix.cell(s, smp).and_then(&m.get)).collect()))
        .collect();
    if groups.iter().any(|(_, values)| values.iter().any(Option::is_some)) {
        let (pages, writes) = report::headline_shape(matrix);
        let title = format!("forkbench ({pages}, {writes}) per fork, {smp} CPU{}", if smp == 1 { "" } else { "s" });
        let categories: Vec<String> = matrix.strategies.iter().map(|s| s.name().to_string()).collect();
        plot::bars(&plot_dir.join("forkbench-ipc-copies.svg"), &title, "per fork", &categories, &groups)?;
        plots.push(report::PlotFile { title, relative: "plots/forkbench-ipc-copies.svg".into() });
    }
    let tables = report::tables(matrix);
    let meta = serde_json::json!({
        "accel": "tcg",
        "icount": true,
        "qemu": qemu::version(),
        "host_cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "build": "release",
        "quick": matrix.quick,
        "traced": matrix.traced,
        "trace_note": if matrix.traced {
            "each cell booted once more with --trace (no icount); trace.memory_server is ipctrace stats' row for the memory server"
        } else {
            "no traces in a quick run: tracing perturbs the instruction counts, so it needs a boot of its own per cell"
        },
        "baseline": super::fork::BASELINE.name(),
        "strategies": matrix.strategies.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "smp": matrix.smps,
        "elapsed_s": matrix.elapsed.as_secs_f64(),
    });
    let markdown = report::markdown(matrix, &tables, &plots, &meta);
    let md_path = dir.join("report.md");
    std::fs::write(&md_path, &markdown).with_context(|| format!("writing {}", md_path.display()))?;
    println!("{markdown}");
    eprintln!("xtask: wrote {}", md_path.display());
    for plot in &plots {
        eprintln!("xtask: wrote {}", dir.join(&plot.relative).display());
    }
    write_json(&dir.join("report.json"), &report::json(matrix, &tables, &plots, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_counts_default_deduplicate_and_stay_in_range() {
        assert_eq!(chosen_smp(&[]).unwrap(), DEFAULT_SMP.to_vec());
        assert_eq!(chosen_smp(&[4, 1, 4]).unwrap(), vec![4, 1]);
        assert!(chosen_smp(&[0]).is_err());
        assert!(chosen_smp(&[MAX_SMP + 1]).unwrap_err().to_string().contains("1 to 8"));
    }

    #[test]
    fn command_lines() {
        assert_eq!(cmdline_of(Strategy::Snzi, true, true), "bench=matrix strategy=snzi icount quick");
        assert_eq!(cmdline_of(Strategy::Atomic, false, false), "bench=matrix strategy=atomic");
        let flags = abi::selftest::init_flags(cmdline_of(Strategy::Snzi, true, true).split(' '));
        assert_eq!(abi::selftest::strategy_of(flags), Strategy::Snzi);
        assert_ne!(flags & abi::selftest::INIT_FLAG_BENCH_QUICK, 0);
    }

    #[test]
    fn counts_kept_and_lost_records() {
        let check = serde_json::json!({ "cpus": {
            "0": { "records": 44855, "lost": 104817 },
            "1": { "records": 3842, "lost": 690 },
        }});
        assert_eq!(kept_and_lost(&check), (48697, 105507));
        assert_eq!(kept_and_lost(&serde_json::json!({})), (0, 0));
        let summary = TraceSummary { memory_server: serde_json::Value::Null, records: 3, lost: 1 };
        assert_eq!(summary.lost_share(), Some(0.25));
    }

    #[test]
    fn finds_the_memory_server_row() {
        let label = proto::MEMORY_PROTOCOL;
        let stats = serde_json::json!({ "by_endpoint_label": [
            { "endpoint": "process-server", "label_value": label, "items_per_msg": null },
            { "endpoint": "memory-server", "label_value": label + 1, "items_per_msg": 3.0 },
            { "endpoint": "memory-server", "label_value": label, "items_per_msg": 72.5 },
        ]});
        assert_eq!(memory_server_row(&stats).unwrap()["items_per_msg"], 72.5);
        assert!(memory_server_row(&serde_json::json!({ "by_endpoint_label": [] })).is_none());
        assert!(memory_server_row(&serde_json::json!({})).is_none());
    }

    fn cell(strategy: Strategy, smp: usize, instructions: u64) -> Cell {
        let tree = lines::ForkTree { depth: 2, width: 3, nodes: 13, rounds: 1, instructions: Some(instructions), mean_ns: 0 };
        let boot = lines::Boot { fork_tree: Some(tree), done: true, ..Default::default() };
        Cell { strategy, smp, boot: Some(boot), error: None, attempts: 1, seconds: 1.0, trace: None }
    }

    #[test]
    fn reports_tables_and_plots_from_cells() {
        let cells = vec![
            cell(Strategy::Deferred, 1, 1200),
            cell(Strategy::Atomic, 1, 2400),
            cell(Strategy::Deferred, 2, 1500),
            Cell { boot: None, error: Some("boom".into()), ..cell(Strategy::Atomic, 2, 0) },
        ];
        let matrix = Matrix {
            strategies: vec![Strategy::Deferred, Strategy::Atomic],
            smps: vec![1, 2],
            quick: true,
            traced: false,
            cells,
            elapsed: Duration::from_secs(75),
        };
        let tables = report::tables(&matrix);
        let ids: Vec<&str> = tables.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec!["fork_tree"], "tables without values are left out");
        let meta = serde_json::json!({ "qemu": "7.2", "host_cpus": 2 });
        let md = report::markdown(&matrix, &tables, &[], &meta);
        assert!(md.contains("| 1 | **100 (0.50×)** | 200 (1.00×) |"), "{md}");
        assert!(md.contains("| 2 | **125** | - |"), "{md}");
        assert!(md.contains("**FAILED** atomic at 2 CPUs: boom"), "{md}");
        assert!(md.contains("not recorded in a quick run"), "{md}");
        let json = report::json(&matrix, &tables, &[], meta);
        assert_eq!(json["runs"][3]["ok"], false);
        assert_eq!(json["runs"][0]["boot"]["fork_tree"]["nodes"], 13);
    }
}
