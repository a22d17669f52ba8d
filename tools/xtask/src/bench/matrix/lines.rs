//! The guest's lines of one matrix boot (servers/init/src/bench.rs and the
//! `apps` workloads): the `[bench] matrix strategy=NAME cpus=N` header, the
//! workloads' result lines, the failures, the memory server's counts and
//! the closing `done`. A line that starts like a result line must parse
//! (the error names it); every other line is ignored.

use std::collections::HashMap;

use abi::process::Strategy;
use anyhow::{Context, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bench::fork::{ShapeLine, parse_shape_line};

/// `cow_storm pages=P rounds=R ...` (servers/apps/src/cow_storm.rs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CowStorm {
    pub pages: u32,
    pub rounds: u64,
    /// A storm round: fork, the child writes every page, exit, wait.
    pub mean_instructions: Option<u64>,
    pub per_fault_instructions: Option<u64>,
    pub mean_ns: u64,
    pub mem_ipc_per_fork: f64,
    pub cow_copies_per_fork: f64,
    pub copies_avoided_per_fork: f64,
}

/// `fork_tree depth=D width=W ...` (servers/apps/src/forktree_bench.rs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForkTree {
    pub depth: u32,
    pub width: u32,
    pub nodes: u64,
    pub rounds: u64,
    /// One whole tree, every CPU's instructions.
    pub instructions: Option<u64>,
    pub mean_ns: u64,
}

impl ForkTree {
    /// Instructions per process the tree created (its root already ran).
    pub fn per_fork(&self) -> Option<f64> {
        Some(self.instructions? as f64 / self.nodes.saturating_sub(1).max(1) as f64)
    }
}

/// `parallel_fork cpus=N rounds=R ...` (servers/apps/src/parallel_fork.rs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParallelFork {
    pub cpus: u32,
    pub rounds: u64,
    pub mean_instructions_per_fork: Option<u64>,
    pub mean_ns_per_fork: u64,
    pub mem_ipc_per_fork: f64,
    pub cow_copies_per_fork: f64,
}

/// `[bench] matrix memory ...`: the memory server's counts before the
/// workloads and after them (settled).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub free_before: u64,
    pub free_after: u64,
    pub owned: u64,
    pub shared: u64,
}

impl Memory {
    /// Whether every frame came back.
    pub fn clean(&self) -> bool {
        self.free_after == self.free_before && self.owned == 0 && self.shared == 0
    }
}

/// `[bench] matrix lock ...`: TSC cycles CPUs spent waiting for the kernel
/// lock (and how many waits) while the workloads ran, over their elapsed
/// TSC cycles on `cpus` CPUs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockWait {
    pub wait_tsc: u64,
    pub waits: u64,
    pub elapsed_tsc: u64,
    pub cpus: u64,
}

impl LockWait {
    /// The share of all CPUs' time spent waiting for the lock.
    pub fn share(&self) -> f64 {
        self.wait_tsc as f64 / (self.elapsed_tsc.max(1) * self.cpus.max(1)) as f64
    }
}

/// Everything one boot printed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Boot {
    pub forkbench: Vec<ShapeLine>,
    pub cow_storm: Option<CowStorm>,
    pub fork_tree: Option<ForkTree>,
    pub parallel_fork: Option<ParallelFork>,
    /// The workloads init reported failed, with what it said.
    pub failed: Vec<String>,
    pub memory: Option<Memory>,
    pub lock: Option<LockWait>,
    /// Whether init reached `[bench] matrix done`.
    pub done: bool,
}

impl Boot {
    /// The forkbench line of shape (`pages`, `writes`).
    pub fn shape(&self, shape: (u32, u32)) -> Option<&ShapeLine> {
        self.forkbench.iter().find(|s| s.shape() == shape)
    }
}

const COW_STORM: &str = "cow_storm pages=";
const FORK_TREE: &str = "fork_tree depth=";
const PARALLEL_FORK: &str = "parallel_fork cpus=";
const MEMORY: &str = "matrix memory free_before=";
const LOCK: &str = "matrix lock wait_tsc=";

/// The `key=value` words of a line that contains `prefix` (a name and the
/// first key: `cow_storm pages=`), as the struct `T`: `Ok(None)` if the
/// line does not contain `prefix`; an error naming the line if it does but
/// does not parse. `-` reads as "not measured" (an `Option` field's
/// `None`); every other value must be a finite number.
fn parse_line<T: DeserializeOwned>(line: &str, prefix: &str) -> Result<Option<T>> {
    let Some(at) = line.find(prefix) else { return Ok(None) };
    let name_end = prefix.rfind(' ').unwrap_or(0);
    let name = &prefix[..name_end];
    let rest = &line[at + name_end..];
    let malformed = |why: String| anyhow!("malformed `{name}` line `{}`: {why}", line.trim_end());
    let mut fields = serde_json::Map::new();
    for word in rest.split_whitespace() {
        let (key, value) = word.split_once('=').ok_or_else(|| malformed(format!("`{word}` is not key=value")))?;
        let number = if value == "-" {
            serde_json::Value::Null
        } else if let Ok(whole) = value.parse::<u64>() {
            whole.into()
        } else {
            let real = value.parse::<f64>().ok().filter(|v| v.is_finite());
            real.and_then(serde_json::Number::from_f64).ok_or_else(|| malformed(format!("`{key}={value}` is not a number")))?.into()
        };
        if fields.insert(key.to_string(), number).is_some() {
            return Err(malformed(format!("`{key}` appears twice")));
        }
    }
    serde_json::from_value(fields.into()).map(Some).map_err(|error| malformed(error.to_string()))
}

/// The words of a `[bench] matrix ...` line after `matrix`, if it is one.
fn matrix_words(line: &str) -> Option<&str> {
    let header = format!("{} matrix ", abi::selftest::BENCH_MARKER);
    line.find(&header).map(|at| line[at + header.len()..].trim_end())
}

/// Sets `slot` once; a second line of the same workload is an error.
fn once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<()> {
    if slot.replace(value).is_some() {
        bail!("the guest printed two `{name}` lines");
    }
    Ok(())
}

/// The lines of one boot's serial output after its header, which must name
/// `strategy` and `cpus` CPUs.
pub fn read_boot(lines: &[String], strategy: Strategy, cpus: usize) -> Result<Boot> {
    let (start, header) = lines
        .iter()
        .enumerate()
        .find_map(|(i, line)| Some((i, matrix_words(line)?)).filter(|(_, words)| words.starts_with(abi::process::STRATEGY_FLAG)))
        .with_context(|| format!("the guest never printed `{} matrix strategy=...`", abi::selftest::BENCH_MARKER))?;
    let said: HashMap<&str, &str> = header.split_whitespace().filter_map(|w| w.split_once('=')).collect();
    if said.get("strategy") != Some(&strategy.name()) {
        bail!("booted with strategy {} but the guest says `{header}`", strategy.name());
    }
    if said.get("cpus") != Some(&cpus.to_string().as_str()) {
        bail!("booted with {cpus} CPUs but the guest says `{header}`");
    }
    let mut boot = Boot::default();
    for line in &lines[start + 1..] {
        if let Some(shape) = parse_shape_line(line)? {
            if boot.shape(shape.shape()).is_some() {
                bail!("the guest reported forkbench shape pages={} child_writes={} twice", shape.pages, shape.child_writes);
            }
            boot.forkbench.push(shape);
        } else if let Some(storm) = parse_line(line, COW_STORM)? {
            once(&mut boot.cow_storm, storm, "cow_storm")?;
        } else if let Some(tree) = parse_line(line, FORK_TREE)? {
            once(&mut boot.fork_tree, tree, "fork_tree")?;
        } else if let Some(parallel) = parse_line(line, PARALLEL_FORK)? {
            once(&mut boot.parallel_fork, parallel, "parallel_fork")?;
        } else if let Some(words) = matrix_words(line) {
            if let Some(failed) = words.strip_prefix("failed ") {
                boot.failed.push(failed.trim().to_string());
            } else if let Some(memory) = parse_line(line, MEMORY)? {
                once(&mut boot.memory, memory, "[bench] matrix memory")?;
            } else if let Some(lock) = parse_line(line, LOCK)? {
                once(&mut boot.lock, lock, "[bench] matrix lock")?;
            } else if words.starts_with("done") {
                boot.done = true;
            }
        }
    }
    Ok(boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORM: &str = "cow_storm pages=1024 rounds=3 mean_instructions=11662121 per_fault_instructions=10565 mean_ns=11662718 \
                         mem_ipc_per_fork=1043.00 cow_copies_per_fork=1025.00 copies_avoided_per_fork=1.00";
    const TREE: &str = "fork_tree depth=2 width=3 nodes=13 rounds=2 instructions=3569544 mean_ns=3569726";
    const PARALLEL: &str = "parallel_fork cpus=4 rounds=5 mean_instructions_per_fork=588690 mean_ns_per_fork=588720 \
                            mem_ipc_per_fork=22.05 cow_copies_per_fork=17.20";
    const SHAPE: &str = "fork pages=4096 child_writes=256 rounds=5 mean_ns=5568991 min_ns=5568812 mean_instructions=5568706 \
                         mem_ipc_per_fork=310.00 ref_ops_per_ipc=27.43 cow_copies_per_fork=257.00 copies_avoided_per_fork=1.00 \
                         ref_ops_per_fork=8503.00 direct_per_fork=0.00 cancelled_per_fork=0.00 switches_per_fork=520.00 \
                         flushes_per_fork=0.00 page_flushes_per_fork=0.00 ipis_per_fork=0.00";

    fn storm() -> CowStorm {
        CowStorm {
            pages: 1024,
            rounds: 3,
            mean_instructions: Some(11_662_121),
            per_fault_instructions: Some(10_565),
            mean_ns: 11_662_718,
            mem_ipc_per_fork: 1043.0,
            cow_copies_per_fork: 1025.0,
            copies_avoided_per_fork: 1.0,
        }
    }

    fn boot_lines(strategy: &str, cpus: usize, body: &[&str]) -> Vec<String> {
        let mut lines = vec!["init: hello from user mode".to_string(), format!("[bench] matrix strategy={strategy} cpus={cpus} quick=1")];
        lines.extend(body.iter().map(|l| l.to_string()));
        lines
    }

    #[test]
    fn parses_result_lines() {
        assert_eq!(parse_line::<CowStorm>(STORM, COW_STORM).unwrap(), Some(storm()));
        let tree: ForkTree = parse_line(&format!("{TREE}\r"), FORK_TREE).unwrap().unwrap();
        assert_eq!((tree.nodes, tree.instructions), (13, Some(3_569_544)));
        assert_eq!(tree.per_fork(), Some(3_569_544.0 / 12.0));
        let parallel: ParallelFork = parse_line(PARALLEL, PARALLEL_FORK).unwrap().unwrap();
        assert_eq!((parallel.cpus, parallel.mean_instructions_per_fork, parallel.cow_copies_per_fork), (4, Some(588_690), 17.2));
        let dashed =
            STORM.replace("mean_instructions=11662121 per_fault_instructions=10565", "mean_instructions=- per_fault_instructions=-");
        let storm_dashed: CowStorm = parse_line(&dashed, COW_STORM).unwrap().unwrap();
        assert_eq!((storm_dashed.mean_instructions, storm_dashed.per_fault_instructions), (None, None));
        assert_eq!(parse_line::<CowStorm>("apps: cow_storm ok", COW_STORM).unwrap(), None);
        // A prefix in the middle of a line (serial output of two CPUs mixed).
        assert!(parse_line::<ForkTree>(&format!("xx{TREE}"), FORK_TREE).unwrap().is_some());
    }

    #[test]
    fn malformed_result_lines_are_named() {
        for (line, why) in [
            (STORM.replace(" rounds=3", ""), "missing field `rounds`"),
            (STORM.replace("mean_ns=11662718", "mean_ns=fast"), "`mean_ns=fast` is not a number"),
            (STORM.replace("mem_ipc_per_fork=1043.00", "mem_ipc_per_fork=inf"), "`mem_ipc_per_fork=inf` is not a number"),
            (STORM.replace(" rounds=3", " rounds=3 junk"), "`junk` is not key=value"),
            (format!("{STORM} pages=2"), "`pages` appears twice"),
            (STORM.replace("pages=1024", "pages=1.5"), "invalid type"),
            (STORM.replace("rounds=3", "rounds=-"), "invalid type: null"),
        ] {
            let error = parse_line::<CowStorm>(&line, COW_STORM).unwrap_err().to_string();
            assert!(error.contains(why) && error.contains(line.trim_end()), "{error}");
        }
    }

    #[test]
    fn reads_a_whole_boot() {
        let lines = boot_lines(
            "atomic",
            4,
            &[
                SHAPE,
                "apps: forkbench ok",
                STORM,
                TREE,
                PARALLEL,
                "[bench] matrix failed workload=oops status=3",
                "[bench] matrix memory free_before=102023 free_after=102023 owned=0 shared=0",
                "[bench] matrix lock wait_tsc=300 waits=7 elapsed_tsc=1000 cpus=4",
                "[bench] matrix done failed=1",
            ],
        );
        let boot = read_boot(&lines, Strategy::Atomic, 4).unwrap();
        assert_eq!(boot.forkbench.len(), 1);
        assert_eq!(boot.shape((4096, 256)).unwrap().mean_instructions, Some(5_568_706));
        assert_eq!(boot.cow_storm, Some(storm()));
        assert!(boot.fork_tree.is_some() && boot.parallel_fork.is_some() && boot.done);
        assert_eq!(boot.failed, vec!["workload=oops status=3".to_string()]);
        assert!(boot.memory.unwrap().clean());
        assert_eq!(boot.lock.map(|l| l.share()), Some(0.075));
    }

    #[test]
    fn a_boot_must_be_the_one_asked_for() {
        let lines = boot_lines("atomic", 2, &[TREE]);
        assert!(read_boot(&lines, Strategy::Deferred, 2).unwrap_err().to_string().contains("strategy deferred"));
        assert!(read_boot(&lines, Strategy::Atomic, 4).unwrap_err().to_string().contains("4 CPUs"));
        assert!(read_boot(&lines[..1], Strategy::Atomic, 2).unwrap_err().to_string().contains("never printed"));
        // Results before the header belong to no boot of ours.
        let mut early = vec![TREE.to_string()];
        early.extend(boot_lines("atomic", 2, &[]));
        assert_eq!(read_boot(&early, Strategy::Atomic, 2).unwrap().fork_tree, None);
    }

    #[test]
    fn a_workload_reported_twice_is_an_error() {
        let lines = boot_lines("atomic", 2, &[TREE, TREE]);
        assert!(read_boot(&lines, Strategy::Atomic, 2).unwrap_err().to_string().contains("two `fork_tree` lines"));
        let lines = boot_lines("atomic", 2, &[SHAPE, SHAPE]);
        assert!(read_boot(&lines, Strategy::Atomic, 2).unwrap_err().to_string().contains("twice"));
        let memory = "[bench] matrix memory free_before=1 free_after=0 owned=1 shared=0";
        let boot = read_boot(&boot_lines("atomic", 2, &[memory]), Strategy::Atomic, 2).unwrap();
        assert!(!boot.memory.unwrap().clean());
    }
}
