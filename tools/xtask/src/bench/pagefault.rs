//! The page-fault latencies that `bench fork` reports beside forkbench
//! (servers/apps/src/pagefault.rs): one line per kind of fault and boot,
//! folded into a row per strategy and kind (instructions from the icount
//! boot, wall-clock median and spread from the others), printed as a table
//! and written into `fork.json`.

use abi::process::Strategy;
use anyhow::{Context, Result, bail};

use super::fields::{Fields, TlbPer};
use super::median;

/// The guest starts each fault line with this.
const FAULT_PREFIX: &str = "pagefault kind=";

/// One kind's line of one boot.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(super) struct FaultLine {
    pub(super) kind: String,
    pub(super) faults: u64,
    pub(super) mean_ns: u64,
    pub(super) min_ns: u64,
    /// `None` where the guest printed `-` (no icount).
    pub(super) mean_instructions: Option<u64>,
    pub(super) copies_per_fault: f64,
    pub(super) reused_per_fault: f64,
    pub(super) tlb: TlbPer,
}

/// Parses a fault line; `Ok(None)` for any other line.
pub(super) fn parse_fault_line(line: &str) -> Result<Option<FaultLine>> {
    let Some(fields) = Fields::of(line, FAULT_PREFIX)? else { return Ok(None) };
    Ok(Some(FaultLine {
        kind: fields.text("kind")?.to_string(),
        faults: fields.int("faults")?,
        mean_ns: fields.int("mean_ns")?,
        min_ns: fields.int("min_ns")?,
        mean_instructions: fields.counted("mean_instructions")?,
        copies_per_fault: fields.real("copies_per_fault")?,
        reused_per_fault: fields.real("reused_per_fault")?,
        tlb: TlbPer::read(&fields, "fault")?,
    }))
}

/// The fault lines of one boot, each kind once.
pub(super) fn read_boot(lines: &[String]) -> Result<Vec<FaultLine>> {
    let mut faults: Vec<FaultLine> = Vec::new();
    for line in lines {
        if let Some(fault) = parse_fault_line(line)? {
            if faults.iter().any(|f| f.kind == fault.kind) {
                bail!("the guest reported page faults of kind {} twice", fault.kind);
            }
            faults.push(fault);
        }
    }
    if faults.is_empty() {
        bail!("the guest printed no `{FAULT_PREFIX}...` lines");
    }
    Ok(faults)
}

/// One strategy and kind, all boots folded in.
#[derive(Clone, Debug)]
pub(super) struct FaultRow {
    strategy: Strategy,
    exact: FaultLine,
    instructions: u64,
    mean_ns: u64,
    mean_ns_lowest: u64,
    mean_ns_highest: u64,
    /// The fastest single fault of every wall-clock run.
    best_ns: u64,
}

impl FaultRow {
    pub(super) fn fold(strategy: Strategy, exact: &[FaultLine], wall: &[Vec<FaultLine>]) -> Result<Vec<FaultRow>> {
        exact
            .iter()
            .map(|line| {
                let kind = &line.kind;
                let instructions = line
                    .mean_instructions
                    .with_context(|| format!("the icount boot printed `mean_instructions=-` for faults of kind {kind}"))?;
                let timed = wall
                    .iter()
                    .enumerate()
                    .map(|(run, lines)| {
                        let found = lines.iter().find(|l| l.kind == line.kind);
                        found.with_context(|| format!("wall-clock run {} has no faults of kind {kind}", run + 1))
                    })
                    .collect::<Result<Vec<&FaultLine>>>()?;
                if timed.is_empty() {
                    bail!("no wall-clock run for faults of kind {kind}");
                }
                let means: Vec<u64> = timed.iter().map(|l| l.mean_ns).collect();
                Ok(FaultRow {
                    strategy,
                    exact: line.clone(),
                    instructions,
                    mean_ns: median(means.iter().map(|&ns| ns as f64).collect()) as u64,
                    mean_ns_lowest: means.iter().copied().min().unwrap_or(0),
                    mean_ns_highest: means.iter().copied().max().unwrap_or(0),
                    best_ns: timed.iter().map(|l| l.min_ns).min().unwrap_or(0),
                })
            })
            .collect()
    }

    pub(super) fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub(super) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.exact.kind,
            "faults": self.exact.faults,
            "mean_instructions": self.instructions,
            "mean_ns": self.mean_ns,
            "mean_ns_spread": [self.mean_ns_lowest, self.mean_ns_highest],
            "best_ns": self.best_ns,
            "copies_per_fault": self.exact.copies_per_fault,
            "reused_per_fault": self.exact.reused_per_fault,
            "tlb_per_fault": self.exact.tlb,
        })
    }
}

/// The table, kinds in the guest's order, strategies in the order given.
pub(super) fn print_table(rows: &[FaultRow], strategies: &[Strategy], runs: usize) {
    let mut kinds: Vec<&str> = Vec::new();
    for row in rows {
        if !kinds.contains(&row.exact.kind.as_str()) {
            kinds.push(&row.exact.kind);
        }
    }
    println!("one page fault, resolved, timed alone (lat_pagefault; TCG, 2 CPUs, release build)");
    println!(
        "{:<10} {:<16} {:>7} {:>13} {:>10} {:>19} {:>8} {:>7} {:>7} {:>9} {:>9} {:>9} {:>6}",
        "kind",
        "strategy",
        "faults",
        "instructions",
        "wall ns",
        "wall spread",
        "best ns",
        "copies",
        "reused",
        "switches",
        "flushes",
        "invlpg",
        "IPIs"
    );
    for kind in kinds {
        for &strategy in strategies {
            let Some(row) = rows.iter().find(|r| r.strategy == strategy && r.exact.kind == kind) else { continue };
            let line = &row.exact;
            println!(
                "{:<10} {:<16} {:>7} {:>13} {:>10} {:>19} {:>8} {:>7.2} {:>7.2} {:>9.2} {:>9.2} {:>9.2} {:>6.2}",
                kind,
                strategy.name(),
                line.faults,
                row.instructions,
                row.mean_ns,
                format!("{}-{}", row.mean_ns_lowest, row.mean_ns_highest),
                row.best_ns,
                line.copies_per_fault,
                line.reused_per_fault,
                line.tlb.switches,
                line.tlb.flushes,
                line.tlb.page_flushes,
                line.tlb.ipis
            );
        }
    }
    println!(
        "(instructions: --icount, mean per fault; wall ns: TCG without icount, median of {runs} run(s)' means, with their spread; best ns: the fastest single fault of all runs; \
         copies, reused: copy-on-write copies made and pages claimed in place per fault; switches, flushes, invlpg, IPIs: \
         the kernel's address-space switches, full and single-page TLB flushes and shootdown IPIs per fault, every CPU's)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "pagefault kind=cow_copy faults=128 mean_ns=21000 min_ns=15000 mean_instructions=- copies_per_fault=1.00 \
                        reused_per_fault=0.00 switches_per_fault=2.00 flushes_per_fault=0.00 page_flushes_per_fault=0.00 ipis_per_fault=0.00";

    fn real() -> FaultLine {
        FaultLine {
            kind: "cow_copy".into(),
            faults: 128,
            mean_ns: 21_000,
            min_ns: 15_000,
            mean_instructions: None,
            copies_per_fault: 1.0,
            reused_per_fault: 0.0,
            tlb: TlbPer { switches: 2.0, ..TlbPer::default() },
        }
    }

    #[test]
    fn parses_fault_lines_and_refuses_broken_ones() {
        assert_eq!(parse_fault_line(REAL).unwrap(), Some(real()));
        assert_eq!(parse_fault_line("fork pages=0").unwrap(), None);
        let error = parse_fault_line(&REAL.replace(" switches_per_fault=2.00", "")).unwrap_err().to_string();
        assert!(error.contains("no `switches_per_fault=`"), "{error}");
        let lines: Vec<String> = [REAL, REAL].map(String::from).into();
        assert!(read_boot(&lines).unwrap_err().to_string().contains("twice"));
        assert!(read_boot(&[]).is_err());
    }

    #[test]
    fn folds_the_wall_clock_runs() {
        let exact = FaultLine { mean_instructions: Some(3_000), ..real() };
        let wall = |ns| vec![FaultLine { mean_ns: ns, min_ns: ns / 2, ..real() }];
        let rows = FaultRow::fold(Strategy::Deferred, &[exact], &[wall(30), wall(10), wall(20)]).unwrap();
        let row = &rows[0];
        assert_eq!((row.instructions, row.mean_ns, row.mean_ns_lowest, row.mean_ns_highest, row.best_ns), (3_000, 20, 10, 30, 5));
        assert!(FaultRow::fold(Strategy::Deferred, &[real()], &[wall(1)]).is_err());
        assert!(FaultRow::fold(Strategy::Deferred, &[FaultLine { mean_instructions: Some(1), ..real() }], &[]).is_err());
    }
}
