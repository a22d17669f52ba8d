//! FORKTREE_BENCH: the TREE workload (`tree.rs`) timed. After one warm-up
//! tree it grows `rounds` trees of `depth` and `width`, each across every
//! CPU's process server and checked as TREE checks it. One line, which the
//! host parses (keep the format):
//!
//! `fork_tree depth=D width=W nodes=N rounds=R instructions=.. mean_ns=..`
//!
//! `instructions` is the mean TSC delta of one tree, from the root's first
//! fork to its last wait, printed only when `c` has
//! `abi::workload::BENCH_ICOUNT` (under icount every CPU's instructions
//! advance the one clock, so it counts the whole machine's work).
//!
//! Exit statuses: TREE's (1 to 7, 120), and 8 no TSC frequency.

use crate::measure::{self, OrDash, nanos, tsc};
use crate::outcome::{Failure, Outcome};
use crate::tree;

pub fn run(depth: u16, width: u16, rounds: u16, icount: bool) -> Outcome {
    let rounds = u64::from(rounds.max(1));
    let tsc_hz = measure::tsc_hz(8)?;
    let nodes = tree::nodes(depth, width).ok_or(Failure::new(6, "the tree is too large to count"))?;
    tree::run(depth, width)?;
    let start = tsc();
    for _ in 0..rounds {
        tree::run(depth, width)?;
    }
    let mean = (tsc() - start) / rounds;
    rt::println!(
        "fork_tree depth={depth} width={width} nodes={nodes} rounds={rounds} instructions={} mean_ns={}",
        OrDash(icount.then_some(mean)),
        nanos(mean, tsc_hz)
    );
    Ok(())
}
