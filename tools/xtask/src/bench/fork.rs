//! `cargo xtask bench fork`: forkbench (servers/apps/src/forkbench.rs) under
//! each refcount strategy, in one xtask run so the ratios compare like with
//! like. Per strategy, one boot under `--icount` gives exact instruction
//! counts and the deterministic per-fork counters; wall-clock boots give
//! nanoseconds. Reads the guest's lines, prints a table, writes
//! `target/bench/fork.json`.

use abi::process::Strategy;
use anyhow::{Context, Result, bail};

use std::path::Path;

use super::fields::{Fields, TlbPer};
use super::linux::{Linux, LinuxLine};
use super::pagefault::{self, FaultLine, FaultRow};
use super::{median, write_json};
use crate::build::{self, target_dir};
use crate::cmdline;
use crate::qemu::{self, Echo, MachineArgs};
use crate::{BuildArgs, prereq};

/// The strategy every other one is compared with.
pub(super) const BASELINE: Strategy = Strategy::Atomic;
/// The shapes (resident pages, pages the child writes) the closing verdict
/// is about: a large parent, without and with child writes.
const HEADLINE_SHAPES: [(u32, u32); 2] = [(4096, 0), (4096, 256)];
/// The instruction ratio against the baseline the headline shapes should meet.
const HEADLINE_RATIO: f64 = 0.8;
/// Kill a boot after this many seconds (one takes seconds to a minute under TCG).
const BOOT_TIMEOUT_S: u64 = 300;
/// The guest starts each shape line with this (after it, `key=value` words).
const SHAPE_PREFIX: &str = "fork pages=";

/// One shape line of forkbench.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(super) struct ShapeLine {
    pub(super) pages: u32,
    pub(super) child_writes: u32,
    pub(super) rounds: u64,
    pub(super) mean_ns: u64,
    pub(super) min_ns: u64,
    /// `None` where the guest printed `-` (no icount).
    pub(super) mean_instructions: Option<u64>,
    pub(super) mem_ipc_per_fork: f64,
    pub(super) ref_ops_per_ipc: f64,
    pub(super) cow_copies_per_fork: f64,
    pub(super) copies_avoided_per_fork: f64,
    pub(super) ref_ops_per_fork: f64,
    pub(super) direct_per_fork: f64,
    pub(super) cancelled_per_fork: f64,
    pub(super) tlb: TlbPer,
    /// `phase_NAME=`: the process servers' cycles per fork in each phase
    /// (`proto::Phase`), in the line's order.
    pub(super) phases: Vec<(String, u64)>,
}

impl ShapeLine {
    pub(super) fn shape(&self) -> (u32, u32) {
        (self.pages, self.child_writes)
    }
}

/// Parses a forkbench shape line; `Ok(None)` for any other line, an error
/// naming the line for one that starts like a shape line but does not parse.
pub(super) fn parse_shape_line(line: &str) -> Result<Option<ShapeLine>> {
    let Some(fields) = Fields::of(line, SHAPE_PREFIX)? else { return Ok(None) };
    // Fields in the line's order, so the first problem is the one reported.
    Ok(Some(ShapeLine {
        pages: fields.small("pages")?,
        child_writes: fields.small("child_writes")?,
        rounds: fields.int("rounds")?,
        mean_ns: fields.int("mean_ns")?,
        min_ns: fields.int("min_ns")?,
        mean_instructions: fields.counted("mean_instructions")?,
        mem_ipc_per_fork: fields.real("mem_ipc_per_fork")?,
        ref_ops_per_ipc: fields.real("ref_ops_per_ipc")?,
        cow_copies_per_fork: fields.real("cow_copies_per_fork")?,
        copies_avoided_per_fork: fields.real("copies_avoided_per_fork")?,
        ref_ops_per_fork: fields.real("ref_ops_per_fork")?,
        direct_per_fork: fields.real("direct_per_fork")?,
        cancelled_per_fork: fields.real("cancelled_per_fork")?,
        tlb: TlbPer::read(&fields, "fork")?,
        phases: fields.prefixed("phase_")?,
    }))
}

/// The shape lines of one boot's serial output: those after the guest's
/// `[bench] fork strategy=NAME` header, which must name `strategy`.
fn read_boot(lines: &[String], strategy: Strategy) -> Result<Vec<ShapeLine>> {
    let header = format!("{} fork ", abi::selftest::BENCH_MARKER);
    let (start, named) = lines
        .iter()
        .enumerate()
        .find_map(|(i, line)| Some((i, line.split_once(&header)?.1)))
        .with_context(|| format!("the guest never printed `{header}{}...`", abi::process::STRATEGY_FLAG))?;
    let said = named.split_whitespace().find_map(|w| w.strip_prefix(abi::process::STRATEGY_FLAG));
    if said != Some(strategy.name()) {
        bail!("booted with {} but the guest says `{}`", cmdline::strategy_word(strategy), named.trim());
    }
    let mut shapes: Vec<ShapeLine> = Vec::new();
    for line in &lines[start + 1..] {
        if let Some(shape) = parse_shape_line(line)? {
            if shapes.iter().any(|s| s.shape() == shape.shape()) {
                bail!("the guest reported shape pages={} child_writes={} twice", shape.pages, shape.child_writes);
            }
            shapes.push(shape);
        }
    }
    if shapes.is_empty() {
        bail!("the guest printed no `{SHAPE_PREFIX}...` lines");
    }
    Ok(shapes)
}

/// What one boot reported: forkbench's shape lines and the page-fault lines.
struct Boot {
    shapes: Vec<ShapeLine>,
    faults: Vec<FaultLine>,
}

/// Boots forkbench once under `strategy` (with the `icount` word when the
/// machine counts instructions, and `cow=pager` when asked) and returns its
/// lines.
fn boot(artifacts: &build::Artifacts, machine: &MachineArgs, strategy: Strategy, cow_pager: bool) -> Result<Boot> {
    let strategy_word = cmdline::strategy_word(strategy);
    let icount = if machine.icount { abi::selftest::ICOUNT_FLAG } else { "" };
    let by_pager = if cow_pager { abi::selftest::COW_PAGER_FLAG } else { "" };
    let line = cmdline::join([abi::selftest::BENCH_FORK_FLAG, strategy_word.as_str(), icount, by_pager]);
    let outcome = qemu::boot(artifacts, machine, &line, Echo::Indented)?;
    if outcome.exit != Some(abi::exit::GuestExit::Success) {
        outcome.report();
        bail!("the guest did not report success");
    }
    Ok(Boot { shapes: read_boot(&outcome.lines, strategy)?, faults: pagefault::read_boot(&outcome.lines)? })
}

/// One strategy at one shape, all boots folded in.
#[derive(Clone, Debug)]
struct Row {
    strategy: Strategy,
    /// The icount boot's line (exact and deterministic counters).
    exact: ShapeLine,
    instructions: u64,
    /// Medians over the wall-clock boots.
    mean_ns: u64,
    min_ns: u64,
    /// The spread of the wall-clock boots' means.
    mean_ns_lowest: u64,
    mean_ns_highest: u64,
}

/// A row against the baseline strategy's row of the same shape.
struct Versus {
    instructions_ratio: f64,
    ns_ratio: f64,
    copies_difference: f64,
}

impl Row {
    fn fold(strategy: Strategy, exact: &[ShapeLine], wall: &[Vec<ShapeLine>]) -> Result<Vec<Row>> {
        exact
            .iter()
            .map(|line| {
                let (pages, writes) = line.shape();
                let instructions = line
                    .mean_instructions
                    .with_context(|| format!("the icount boot printed `mean_instructions=-` for pages={pages} child_writes={writes}"))?;
                let timed = wall
                    .iter()
                    .enumerate()
                    .map(|(run, lines)| {
                        lines
                            .iter()
                            .find(|l| l.shape() == line.shape())
                            .with_context(|| format!("wall-clock run {} has no pages={pages} child_writes={writes}", run + 1))
                    })
                    .collect::<Result<Vec<_>>>()?;
                if timed.is_empty() {
                    bail!("no wall-clock run for pages={pages} child_writes={writes}");
                }
                let median_of = |f: fn(&ShapeLine) -> u64| median(timed.iter().map(|l| f(l) as f64).collect()) as u64;
                let means = timed.iter().map(|l| l.mean_ns);
                Ok(Row {
                    strategy,
                    exact: line.clone(),
                    instructions,
                    mean_ns: median_of(|l| l.mean_ns),
                    min_ns: median_of(|l| l.min_ns),
                    mean_ns_lowest: means.clone().min().unwrap_or(0),
                    mean_ns_highest: means.max().unwrap_or(0),
                })
            })
            .collect()
    }

    fn versus(&self, rows: &[Row]) -> Option<Versus> {
        if self.strategy == BASELINE {
            return None;
        }
        let base = rows.iter().find(|r| r.strategy == BASELINE && r.exact.shape() == self.exact.shape())?;
        Some(Versus {
            instructions_ratio: self.instructions as f64 / base.instructions.max(1) as f64,
            ns_ratio: self.mean_ns as f64 / base.mean_ns.max(1) as f64,
            copies_difference: self.exact.cow_copies_per_fork - base.exact.cow_copies_per_fork,
        })
    }

    fn json(&self, rows: &[Row]) -> serde_json::Value {
        let line = &self.exact;
        let mut value = serde_json::json!({
            "strategy": self.strategy.name(),
            "placement": format!("{:?}", self.strategy.placement()).to_lowercase(),
            "pages": line.pages,
            "child_writes": line.child_writes,
            "rounds": line.rounds,
            "mean_instructions": self.instructions,
            "mean_ns": self.mean_ns,
            "min_ns": self.min_ns,
            "mean_ns_spread": [self.mean_ns_lowest, self.mean_ns_highest],
            "mem_ipc_per_fork": line.mem_ipc_per_fork,
            "ref_ops_per_fork": line.ref_ops_per_fork,
            "direct_stores_per_fork": line.direct_per_fork,
            "cancelled_per_fork": line.cancelled_per_fork,
            "tlb_per_fork": line.tlb,
            "phases_per_fork": line.phases.iter().map(|(name, cycles)| (name.clone(), serde_json::json!(cycles))).collect::<serde_json::Map<_, _>>(),
            "ref_ops_per_ipc": line.ref_ops_per_ipc,
            "cow_copies_per_fork": line.cow_copies_per_fork,
            "copies_avoided_per_fork": line.copies_avoided_per_fork,
        });
        if let Some(vs) = self.versus(rows) {
            value[format!("vs_{}", BASELINE.name())] = serde_json::json!({
                "instructions_ratio": vs.instructions_ratio,
                "ns_ratio": vs.ns_ratio,
                "cow_copies_difference": vs.copies_difference,
            });
        }
        value
    }
}

/// `strategies` in the order given, each once; all of them if none given.
pub(super) fn chosen(strategies: &[Strategy]) -> Vec<Strategy> {
    let given = if strategies.is_empty() { &Strategy::ALL[..] } else { strategies };
    let mut chosen = Vec::new();
    for &strategy in given {
        if !chosen.contains(&strategy) {
            chosen.push(strategy);
        }
    }
    chosen
}

/// `cow_pager`: boot with `cow=pager` (no copy by the kernel).
pub fn run(strategies: &[Strategy], quick: bool, cow_pager: bool, linux: Option<&Path>) -> Result<()> {
    prereq::ensure_target()?;
    prereq::ensure_qemu()?;
    let strategies = chosen(strategies);
    let linux = linux.map(Linux::prepare).transpose()?;
    let artifacts = build::build(&BuildArgs { release: true })?;
    let machine = MachineArgs::tcg(2, BOOT_TIMEOUT_S);
    let exact_machine = MachineArgs { icount: true, ..machine.clone() };
    let runs = if quick { 1 } else { 3 };
    let boots = (strategies.len() + usize::from(linux.is_some())) * (1 + runs);
    let mut done = 0;
    let mut progress = |what: String| {
        done += 1;
        eprintln!("xtask: fork benchmark [{done}/{boots}]: {what}");
    };

    let mut exact = Vec::new();
    for &strategy in &strategies {
        let name = strategy.name();
        progress(format!("strategy {name}, --icount (instructions)"));
        exact.push(
            boot(&artifacts, &exact_machine, strategy, cow_pager)
                .with_context(|| format!("fork benchmark, strategy {name}, icount boot"))?,
        );
    }
    // The table groups strategies by shape, in the guest's order of shapes.
    let mut shapes: Vec<(u32, u32)> = Vec::new();
    for line in exact.iter().flat_map(|b| &b.shapes) {
        if !shapes.contains(&line.shape()) {
            shapes.push(line.shape());
        }
    }
    let rounds = exact.first().and_then(|b| b.shapes.first()).map_or(1, |l| l.rounds);
    let linux_exact = match &linux {
        Some(linux) => {
            progress("Linux, --icount (instructions), 1 CPU".into());
            // Under -icount QEMU 7.2 never brings Linux's second CPU up; the
            // benchmark runs on CPU 0 alone either way.
            let one_cpu = exact_machine.with_smp(1);
            Some(linux.boot(&one_cpu, &shapes, rounds).context("fork benchmark, Linux icount boot")?)
        }
        None => None,
    };
    // Wall-clock runs interleave the strategies and Linux, so that a host
    // that slows down for a while slows every one of them alike.
    let mut wall: Vec<Vec<Boot>> = strategies.iter().map(|_| Vec::new()).collect();
    let mut linux_wall = Vec::new();
    for run in 1..=runs {
        for (i, &strategy) in strategies.iter().enumerate() {
            let name = strategy.name();
            progress(format!("strategy {name}, wall clock, run {run} of {runs}"));
            wall[i].push(
                boot(&artifacts, &machine, strategy, cow_pager)
                    .with_context(|| format!("fork benchmark, strategy {name}, wall-clock run {run}"))?,
            );
        }
        if let Some(linux) = &linux {
            progress(format!("Linux, wall clock, run {run} of {runs}"));
            linux_wall.push(linux.boot(&machine, &shapes, rounds).with_context(|| format!("fork benchmark, Linux wall-clock run {run}"))?);
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut fault_rows: Vec<FaultRow> = Vec::new();
    for ((&strategy, exact), wall) in strategies.iter().zip(&exact).zip(&wall) {
        let wall_shapes: Vec<Vec<ShapeLine>> = wall.iter().map(|b| b.shapes.clone()).collect();
        let wall_faults: Vec<Vec<FaultLine>> = wall.iter().map(|b| b.faults.clone()).collect();
        rows.extend(Row::fold(strategy, &exact.shapes, &wall_shapes)?);
        fault_rows.extend(FaultRow::fold(strategy, &exact.faults, &wall_faults)?);
    }
    let linux_rows = match (&linux_exact, &linux) {
        (Some(exact), Some(_)) => Some(LinuxRow::fold(&shapes, exact, &linux_wall)?),
        _ => None,
    };

    if cow_pager {
        println!("(booted with `cow=pager`: every copy-on-write fault went to the pager)");
    }
    print_table(&rows, &shapes, &strategies, runs);
    if let (Some(linux_rows), Some(linux)) = (&linux_rows, &linux) {
        print_linux(linux_rows, &rows, &strategies, linux.kernel(), runs);
    }
    pagefault::print_table(&fault_rows, &strategies, runs);
    let headline = headline(&rows);
    if let Some(verdict) = &headline {
        println!("{}", verdict.sentence);
    }

    let mut by_strategy = serde_json::Map::new();
    let mut page_faults = serde_json::Map::new();
    for &strategy in &strategies {
        let mine: Vec<serde_json::Value> = rows.iter().filter(|r| r.strategy == strategy).map(|r| r.json(&rows)).collect();
        by_strategy.insert(strategy.name().into(), mine.into());
        let faults: Vec<serde_json::Value> = fault_rows.iter().filter(|r| r.strategy() == strategy).map(FaultRow::json).collect();
        page_faults.insert(strategy.name().into(), faults.into());
    }
    let json = serde_json::json!({
        "accel": "tcg",
        "qemu": qemu::version(),
        "host_cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "smp": machine.smp,
        "build": "release",
        "wall_clock_runs": runs,
        "copy_on_write": if cow_pager { "pager" } else { "kernel copies where the pager's hints allow" },
        "baseline": BASELINE.name(),
        "strategies": by_strategy,
        "page_faults": page_faults,
        "headline": headline.map(|h| h.json),
        "linux": linux_rows.as_ref().zip(linux.as_ref()).map(|(linux_rows, linux)| serde_json::json!({
            "kernel": linux.kernel().file_name().map(|name| name.to_string_lossy().into_owned()),
            "shapes": linux_rows.iter().map(LinuxRow::json).collect::<Vec<_>>(),
        })),
    });
    write_json(&target_dir().join("bench").join("fork.json"), &json)
}

/// Linux at one shape: the icount boot's instructions, the wall-clock
/// boots' medians and spread.
struct LinuxRow {
    shape: (u32, u32),
    instructions: u64,
    mean_ns: u64,
    mean_ns_lowest: u64,
    mean_ns_highest: u64,
}

impl LinuxRow {
    fn fold(shapes: &[(u32, u32)], exact: &[LinuxLine], wall: &[Vec<LinuxLine>]) -> Result<Vec<LinuxRow>> {
        shapes
            .iter()
            .map(|&shape| {
                let find = |lines: &[LinuxLine]| {
                    lines
                        .iter()
                        .find(|l| l.shape() == shape)
                        .map(|l| l.mean_ns)
                        .with_context(|| format!("Linux has no pages={} child_writes={}", shape.0, shape.1))
                };
                let means = wall.iter().map(|lines| find(lines)).collect::<Result<Vec<u64>>>()?;
                Ok(LinuxRow {
                    shape,
                    instructions: find(exact)?,
                    mean_ns: median(means.iter().map(|&m| m as f64).collect()) as u64,
                    mean_ns_lowest: means.iter().copied().min().unwrap_or(0),
                    mean_ns_highest: means.iter().copied().max().unwrap_or(0),
                })
            })
            .collect()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "pages": self.shape.0,
            "child_writes": self.shape.1,
            "mean_instructions": self.instructions,
            "mean_ns": self.mean_ns,
            "mean_ns_spread": [self.mean_ns_lowest, self.mean_ns_highest],
        })
    }
}

/// Each strategy against Linux, shape by shape: instructions and wall time
/// as ratios (below 1: faster than Linux).
fn print_linux(linux: &[LinuxRow], rows: &[Row], strategies: &[Strategy], kernel: &Path, runs: usize) {
    let name = kernel.file_name().map_or_else(|| kernel.display().to_string(), |n| n.to_string_lossy().into_owned());
    println!("against Linux ({name}), the same loop in the same QEMU, in the same run");
    print!("{:>6} {:>6} {:>14} {:>12} {:>21}", "pages", "writes", "Linux instr", "Linux ns", "Linux ns spread");
    for strategy in strategies {
        print!(" {:>18}", format!("{}: instr, ns", strategy.name()));
    }
    println!();
    for row in linux {
        let spread = format!("{}-{}", row.mean_ns_lowest, row.mean_ns_highest);
        print!("{:>6} {:>6} {:>14} {:>12} {:>21}", row.shape.0, row.shape.1, row.instructions, row.mean_ns, spread);
        for &strategy in strategies {
            match rows.iter().find(|r| r.strategy == strategy && r.exact.shape() == row.shape) {
                Some(ours) => {
                    let instr = ours.instructions as f64 / row.instructions.max(1) as f64;
                    let ns = ours.mean_ns as f64 / row.mean_ns.max(1) as f64;
                    print!(" {:>18}", format!("{instr:.2}x, {ns:.2}x"));
                }
                None => print!(" {:>18}", "-"),
            }
        }
        println!();
    }
    println!(
        "(Linux instr: its icount boot, on 1 CPU (QEMU 7.2 never brings up a second one for Linux under icount), where CLOCK_MONOTONIC counts one ns per guest instruction; Linux ns: the median of {runs} wall-clock boots' means, interleaved with the strategies' boots; the ratios divide a strategy's figure by Linux's, below 1 is faster; Linux pins the benchmark to CPU 0, so its children run on the parent's CPU, as the guest's do)"
    );
}

fn print_table(rows: &[Row], shapes: &[(u32, u32)], strategies: &[Strategy], runs: usize) {
    let rounds = rows.first().map_or(0, |r| r.exact.rounds);
    println!("fork + exit + wait, per fork (TCG, 2 CPUs, release build, {rounds} rounds per shape)");
    let versus = format!("vs {}", BASELINE.name());
    println!(
        "{:>6} {:>6} {:<16} {:<7} {:>13} {:>9} {:>13} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>9} {:>8}",
        "pages",
        "writes",
        "strategy",
        "placed",
        "instructions",
        versus,
        "wall ns",
        versus,
        "IPC/fork",
        "ops/IPC",
        "ops/fork",
        "copies",
        "avoided",
        "switches",
        "flushes"
    );
    for &shape in shapes {
        for &strategy in strategies {
            let Some(row) = rows.iter().find(|r| r.strategy == strategy && r.exact.shape() == shape) else { continue };
            let (instr_vs, ns_vs) = match row.versus(rows) {
                Some(vs) => (format!("{:.2}x", vs.instructions_ratio), format!("{:.2}x", vs.ns_ratio)),
                None if strategy == BASELINE => ("1.00x".into(), "1.00x".into()),
                None => ("-".into(), "-".into()),
            };
            let line = &row.exact;
            println!(
                "{:>6} {:>6} {:<16} {:<7} {:>13} {:>9} {:>13} {:>9} {:>9.2} {:>8.2} {:>9.2} {:>8.2} {:>8.2} {:>9.2} {:>8.2}",
                shape.0,
                shape.1,
                strategy.name(),
                format!("{:?}", strategy.placement()).to_lowercase(),
                row.instructions,
                instr_vs,
                row.mean_ns,
                ns_vs,
                line.mem_ipc_per_fork,
                line.ref_ops_per_ipc,
                line.ref_ops_per_fork,
                line.cow_copies_per_fork,
                line.copies_avoided_per_fork,
                line.tlb.switches,
                line.tlb.flushes + line.tlb.page_flushes
            );
        }
    }
    print_phases(rows, shapes, strategies);
    println!(
        "(instructions: --icount, mean per fork; wall ns: TCG without icount, median of {runs} run(s)' means; \
         IPC/fork: messages to the memory server; ops/IPC, ops/fork: reference operations sent, per reference message and per fork; \
         copies, avoided: copy-on-write copies made and avoided per fork; switches, flushes: the kernel's address-space switches \
         and TLB flushes (full and single-page) per fork, every CPU's; fork.json adds the deferred shortcuts and each kind of flush)"
    );
}

/// The phases that do not overlap (the others are parts of `fork` and
/// `exit`): what a fork's instructions less these leave is spent elsewhere.
const WHOLE_PHASES: [&str; 4] = ["fork", "exit", "wait", "fault"];

/// Where a fork goes: the process servers' instructions per fork in each
/// phase (system calls included), from the icount boots' timed forks, and
/// what is left: the kernel's scheduling and IPC, and the processes' own
/// work (the child's run outside its faults, the parent's calls).
fn print_phases(rows: &[Row], shapes: &[(u32, u32)], strategies: &[Strategy]) {
    let Some(names) = rows.first().map(|r| r.exact.phases.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>()) else { return };
    println!("where a fork goes: process-server instructions per fork, by phase (--icount; timed in separate forks)");
    print!("{:>6} {:>6} {:<16} {:>13}", "pages", "writes", "strategy", "instructions");
    names.iter().for_each(|name| print!(" {name:>12}"));
    println!(" {:>12}", "elsewhere");
    for &shape in shapes {
        for &strategy in strategies {
            let Some(row) = rows.iter().find(|r| r.strategy == strategy && r.exact.shape() == shape) else { continue };
            print!("{:>6} {:>6} {:<16} {:>13}", shape.0, shape.1, strategy.name(), row.instructions);
            row.exact.phases.iter().for_each(|(_, cycles)| print!(" {cycles:>12}"));
            let whole: u64 = row.exact.phases.iter().filter(|(name, _)| WHOLE_PHASES.contains(&name.as_str())).map(|(_, c)| c).sum();
            println!(" {:>12}", row.instructions.saturating_sub(whole));
        }
    }
}

/// The closing verdict, for a table and a script.
struct Headline {
    sentence: String,
    json: serde_json::Value,
}

/// Whether deferred meets its targets against the baseline at the headline
/// shapes; `None` unless both strategies ran.
fn headline(rows: &[Row]) -> Option<Headline> {
    let candidate = Strategy::Deferred;
    if !rows.iter().any(|r| r.strategy == candidate) || !rows.iter().any(|r| r.strategy == BASELINE) {
        return None;
    }
    let yes_no = |b: bool| if b { "yes" } else { "NO" };
    let mut parts = Vec::new();
    let mut json = Vec::new();
    for (pages, writes) in HEADLINE_SHAPES {
        let find = |s: Strategy| rows.iter().find(|r| r.strategy == s && r.exact.shape() == (pages, writes));
        let (Some(mine), Some(base)) = (find(candidate), find(BASELINE)) else {
            parts.push(format!("pages={pages} writes={writes}: not measured"));
            continue;
        };
        let ratio = mine.instructions as f64 / base.instructions.max(1) as f64;
        let (fast, frugal) = (ratio <= HEADLINE_RATIO, mine.exact.cow_copies_per_fork <= base.exact.cow_copies_per_fork);
        parts.push(format!(
            "pages={pages} writes={writes}: {ratio:.2}x the instructions (<= {HEADLINE_RATIO}x: {}), {:.2} vs {:.2} copies (no more: {})",
            yes_no(fast),
            mine.exact.cow_copies_per_fork,
            base.exact.cow_copies_per_fork,
            yes_no(frugal)
        ));
        json.push(serde_json::json!({
            "pages": pages,
            "child_writes": writes,
            "instructions_ratio": ratio,
            "instructions_at_most": HEADLINE_RATIO,
            "meets_instructions": fast,
            "no_more_copies": frugal,
        }));
    }
    Some(Headline {
        sentence: format!("{} vs {}: {}", candidate.name(), BASELINE.name(), parts.join("; ")),
        json: serde_json::json!({ "strategy": candidate.name(), "against": BASELINE.name(), "shapes": json }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "fork pages=4096 child_writes=256 rounds=20 mean_ns=155067375 min_ns=149435578 mean_instructions=- \
                        mem_ipc_per_fork=52.00 ref_ops_per_ipc=159.11 cow_copies_per_fork=258.00 copies_avoided_per_fork=1.00 \
                        ref_ops_per_fork=8273.72 direct_per_fork=0.00 cancelled_per_fork=0.00 switches_per_fork=530.00 \
                        flushes_per_fork=1.00 page_flushes_per_fork=256.50 ipis_per_fork=0.25 phase_fork=1200 phase_exit=900";

    fn real(mean_instructions: Option<u64>) -> ShapeLine {
        ShapeLine {
            pages: 4096,
            child_writes: 256,
            rounds: 20,
            mean_ns: 155_067_375,
            min_ns: 149_435_578,
            mean_instructions,
            mem_ipc_per_fork: 52.0,
            ref_ops_per_ipc: 159.11,
            cow_copies_per_fork: 258.0,
            copies_avoided_per_fork: 1.0,
            ref_ops_per_fork: 8273.72,
            direct_per_fork: 0.0,
            cancelled_per_fork: 0.0,
            tlb: TlbPer { switches: 530.0, flushes: 1.0, page_flushes: 256.5, ipis: 0.25 },
            phases: vec![("fork".into(), 1200), ("exit".into(), 900)],
        }
    }

    #[test]
    fn parses_shape_lines() {
        assert_eq!(parse_shape_line(REAL).unwrap(), Some(real(None)));
        let counted = REAL.replace("mean_instructions=-", "mean_instructions=48213977");
        assert_eq!(parse_shape_line(&format!("{counted}\r")).unwrap(), Some(real(Some(48_213_977))));
        assert_eq!(parse_shape_line("init: hello from user mode").unwrap(), None);
        assert_eq!(parse_shape_line("[bench] fork strategy=deferred cpus=2").unwrap(), None);
    }

    #[test]
    fn malformed_shape_lines_are_named() {
        for (line, why) in [
            ("fork pages=16 child_writes=0 rounds=20", "no `mean_ns=`"),
            (&*REAL.replace("mean_ns=155067375", "mean_ns=fast"), "`mean_ns=fast` is not a whole number"),
            (&*REAL.replace("ref_ops_per_ipc=159.11", "ref_ops_per_ipc=NaN"), "`ref_ops_per_ipc=NaN` is not a number"),
            (&*REAL.replace(" rounds=20", " rounds=20 garbage"), "`garbage` is not key=value"),
            (&*format!("{REAL} pages=1"), "`pages` appears twice"),
        ] {
            let error = parse_shape_line(line).unwrap_err().to_string();
            assert!(error.contains(why) && error.contains(line.trim_end()), "{error}");
        }
    }

    #[test]
    fn reads_a_boot_and_checks_its_strategy() {
        let lines: Vec<String> = ["init: hello", "fork pages=1 junk", "[bench] fork strategy=atomic cpus=2", REAL].map(String::from).into();
        assert_eq!(read_boot(&lines, Strategy::Atomic).unwrap(), vec![real(None)]);
        assert!(read_boot(&lines, Strategy::Deferred).unwrap_err().to_string().contains("strategy=deferred"));
        assert!(read_boot(&lines[..3], Strategy::Atomic).is_err());
    }

    #[test]
    fn folds_boots_into_rows_with_ratios() {
        let exact = |instructions, copies| ShapeLine { mean_instructions: Some(instructions), cow_copies_per_fork: copies, ..real(None) };
        let wall = |ns| vec![ShapeLine { mean_ns: ns, ..real(None) }];
        let mut rows = Row::fold(Strategy::Deferred, &[exact(600, 256.0)], &[wall(30), wall(10), wall(20)]).unwrap();
        rows.extend(Row::fold(Strategy::Atomic, &[exact(1000, 258.0)], &[wall(40)]).unwrap());
        assert_eq!(rows[0].mean_ns, 20);
        let vs = rows[0].versus(&rows).unwrap();
        assert_eq!((vs.instructions_ratio, vs.ns_ratio, vs.copies_difference), (0.6, 0.5, -2.0));
        assert!(rows[1].versus(&rows).is_none());
        let verdict = headline(&rows).unwrap();
        assert!(
            verdict.sentence.contains("0.60x") && verdict.sentence.contains("pages=4096 writes=0: not measured"),
            "{}",
            verdict.sentence
        );
        assert!(Row::fold(Strategy::Atomic, &[real(None)], &[]).is_err());
    }

    #[test]
    fn strategies_default_to_all_and_deduplicate() {
        assert_eq!(chosen(&[]), Strategy::ALL.to_vec());
        assert_eq!(chosen(&[Strategy::Atomic, Strategy::Atomic]), vec![Strategy::Atomic]);
    }
}
