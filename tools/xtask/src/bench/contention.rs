//! `cargo xtask bench contention`: every CPU counting the same frames at
//! once (`bench=contention`, servers/init/src/bench.rs: SHARED_FORK and
//! SHARED_COW of servers/apps), under each strategy at each CPU count.
//!
//! Contention is a wall-clock effect: under TCG each vCPU is a host thread
//! and a guest atomic is a host atomic, so cache lines really move between
//! host cores, but only while there are at least as many host cores as
//! vCPUs. So each cell is several boots without icount (median and spread
//! of the per-operation wall time) plus one boot under `--icount` (exact
//! instructions, where an atomic costs what any instruction does and
//! contention is invisible). Cells with more vCPUs than host cores are
//! marked: their wall time mostly measures the host's time slicing.
//! Ratios are against `atomic` at the same CPU count, in the same run.
//! Writes target/bench/contention.json, one record per cell.

use abi::process::Strategy;
use anyhow::{Context, Result, bail};

use super::{median, write_json};
use crate::build::{self, target_dir};
use crate::qemu::{self, Echo, MachineArgs};
use crate::{BuildArgs, cmdline, prereq};

const BOOT_TIMEOUT_S: u64 = 300;
const WORKLOADS: [&str; 2] = ["shared_fork", "shared_cow"];
const BASELINE: Strategy = Strategy::Atomic;

/// One `shared_fork ...` or `shared_cow ...` line.
#[derive(Clone, Debug, PartialEq)]
struct Line {
    workload: String,
    cpus: usize,
    instructions: Option<u64>,
    ns: u64,
    mem_ipc: f64,
    copies: f64,
}

fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim();
    let workload = WORKLOADS.iter().find(|w| line.starts_with(&format!("{w} cpus=")))?;
    let field = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='));
    Some(Line {
        workload: workload.to_string(),
        cpus: field("cpus")?.parse().ok()?,
        instructions: field("mean_instructions_per_op")?.parse().ok(),
        ns: field("mean_ns_per_op")?.parse().ok()?,
        mem_ipc: field("mem_ipc_per_op")?.parse().ok()?,
        copies: field("cow_copies_per_op")?.parse().ok()?,
    })
}

/// Boots the contention suite once; its two lines.
fn boot(artifacts: &build::Artifacts, machine: &MachineArgs, strategy: Strategy, quick: bool) -> Result<Vec<Line>> {
    let strategy_word = cmdline::strategy_word(strategy);
    let icount = if machine.icount { abi::selftest::ICOUNT_FLAG } else { "" };
    let quick = if quick { abi::selftest::BENCH_QUICK_FLAG } else { "" };
    let words = cmdline::join([abi::selftest::BENCH_CONTENTION_FLAG, strategy_word.as_str(), icount, quick]);
    let outcome = qemu::boot(artifacts, machine, &words, Echo::No)?;
    let lines: Vec<Line> = outcome.lines.iter().filter_map(|l| parse_line(l)).collect();
    if outcome.exit != Some(abi::exit::GuestExit::Success) {
        outcome.report();
        bail!("the guest did not report success");
    }
    if lines.len() != WORKLOADS.len() {
        bail!("the guest printed {} contention lines, expected {}", lines.len(), WORKLOADS.len());
    }
    Ok(lines)
}

/// A strategy at a CPU count on one workload, every boot folded in.
struct Cell {
    strategy: Strategy,
    smp: usize,
    workload: String,
    instructions: Option<u64>,
    ns_median: f64,
    ns_min: u64,
    ns_max: u64,
    mem_ipc: f64,
    copies: f64,
}

fn fold(strategy: Strategy, smp: usize, exact: Option<&[Line]>, wall: &[Vec<Line>]) -> Result<Vec<Cell>> {
    WORKLOADS
        .iter()
        .map(|&workload| {
            let of = |lines: &[Line]| lines.iter().find(|l| l.workload == workload).cloned();
            let runs: Vec<Line> = wall.iter().filter_map(|lines| of(lines)).collect();
            let first = runs.first().with_context(|| format!("no {workload} line"))?;
            Ok(Cell {
                strategy,
                smp,
                workload: workload.to_string(),
                instructions: exact.and_then(of).and_then(|l| l.instructions),
                ns_median: median(runs.iter().map(|l| l.ns as f64).collect()),
                ns_min: runs.iter().map(|l| l.ns).min().unwrap_or(0),
                ns_max: runs.iter().map(|l| l.ns).max().unwrap_or(0),
                mem_ipc: first.mem_ipc,
                copies: first.copies,
            })
        })
        .collect()
}

fn ratio(mine: f64, base: Option<f64>) -> Option<f64> {
    base.filter(|&b| b > 0.0).map(|b| mine / b)
}

pub fn run(strategies: &[Strategy], smp: &[usize], quick: bool) -> Result<()> {
    prereq::ensure_target()?;
    prereq::ensure_qemu()?;
    let strategies = super::fork::chosen(strategies);
    let smps = super::matrix::chosen_smp(smp)?;
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let artifacts = build::build(&BuildArgs { release: true })?;
    let runs = if quick { 1 } else { 3 };
    let mut cells = Vec::new();
    for &smp in &smps {
        for &strategy in &strategies {
            let machine = MachineArgs::tcg(smp, BOOT_TIMEOUT_S);
            let icount = if quick { "" } else { " and one under --icount" };
            eprintln!("xtask: contention: {} at {smp} CPUs, {runs} wall-clock boot(s){icount}", strategy.name());
            let wall = (0..runs).map(|_| boot(&artifacts, &machine, strategy, quick)).collect::<Result<Vec<_>>>()?;
            let exact =
                if quick { None } else { Some(boot(&artifacts, &MachineArgs { icount: true, ..machine.clone() }, strategy, quick)?) };
            cells.extend(fold(strategy, smp, exact.as_deref(), &wall)?);
        }
    }
    let base = |cell: &Cell| cells.iter().find(|c| c.strategy == BASELINE && c.smp == cell.smp && c.workload == cell.workload);
    println!("contention: every CPU counting the same frames (TCG, release build, {host_cpus} host cores; wall: median of {runs} boot(s))");
    println!(
        "{:<12} {:>4} {:<16} {:<7} {:>12} {:>9} {:>21} {:>9} {:>8} {:>7}",
        "workload", "cpus", "strategy", "placed", "instr/op", "vs atomic", "wall ns/op (min-max)", "vs atomic", "IPC/op", "copies"
    );
    let mut records = Vec::new();
    for cell in &cells {
        let base = base(cell);
        let instructions_ratio =
            cell.instructions.zip(base.and_then(|b| b.instructions)).and_then(|(m, b)| ratio(m as f64, Some(b as f64)));
        let ns_ratio = ratio(cell.ns_median, base.map(|b| b.ns_median));
        let oversubscribed = cell.smp > host_cpus;
        println!(
            "{:<12} {:>4} {:<16} {:<7} {:>12} {:>9} {:>21} {:>9} {:>8.2} {:>7.2}{}",
            cell.workload,
            cell.smp,
            cell.strategy.name(),
            format!("{:?}", cell.strategy.placement()).to_lowercase(),
            cell.instructions.map_or("-".into(), |i| i.to_string()),
            instructions_ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            format!("{:.0} ({}-{})", cell.ns_median, cell.ns_min, cell.ns_max),
            ns_ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            cell.mem_ipc,
            cell.copies,
            if oversubscribed { "  (more vCPUs than host cores)" } else { "" }
        );
        records.push(serde_json::json!({
            "strategy": cell.strategy.name(),
            "placement": format!("{:?}", cell.strategy.placement()).to_lowercase(),
            "workload": cell.workload,
            "cpus": cell.smp,
            "instructions_per_op": cell.instructions,
            "instructions_vs_atomic": instructions_ratio,
            "wall_ns_per_op_median": cell.ns_median,
            "wall_ns_per_op_min": cell.ns_min,
            "wall_ns_per_op_max": cell.ns_max,
            "wall_vs_atomic": ns_ratio,
            "wall_clock_runs": runs,
            "mem_ipc_per_op": cell.mem_ipc,
            "cow_copies_per_op": cell.copies,
            "more_vcpus_than_host_cores": oversubscribed,
        }));
    }
    let json = serde_json::json!({
        "accel": "tcg",
        "qemu": qemu::version(),
        "host_cpus": host_cpus,
        "build": "release",
        "baseline": BASELINE.name(),
        "cells": records,
    });
    write_json(&target_dir().join("bench").join("contention.json"), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_workloads_lines() {
        let fork = "shared_fork cpus=2 pages=256 rounds=10 mean_instructions_per_op=- mean_ns_per_op=7042522 mem_ipc_per_op=0.05 cow_copies_per_op=17.10";
        let parsed = parse_line(fork).unwrap();
        assert_eq!((parsed.workload.as_str(), parsed.cpus, parsed.instructions, parsed.ns), ("shared_fork", 2, None, 7_042_522));
        let cow = "  shared_cow cpus=4 pages=256 rounds=4 mean_instructions_per_op=5000 mean_ns_per_op=143741 mem_ipc_per_op=0.00 cow_copies_per_op=1.00";
        assert_eq!(parse_line(cow).unwrap().instructions, Some(5000));
        assert_eq!(parse_line("shared_fork cpus=x"), None);
        assert_eq!(parse_line("fork pages=0"), None);
    }
}
