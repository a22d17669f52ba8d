//! `cargo xtask fuzz`: boots the kernel into init's fuzzing campaign
//! (`fuzz=SEED,THOUSANDS,SEEDS` on the command line), shows its `[fuzz]`
//! lines, and sums them up: the seeds, the share of calls refused, the
//! system calls that succeeded at least once, and whether every seed left
//! the kernel's pools and frames at their baseline. `cargo xtask test`
//! runs a short campaign ([`short_campaign`]).

use anyhow::{Result, bail};
use clap::Args;

use abi::selftest::FUZZ_MARKER;

use crate::{BuildArgs, build, cmdline, prereq, qemu};

#[derive(Args, Clone)]
pub struct FuzzArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// First seed (0..65535); the campaign uses SEEDS seeds from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u16,
    /// Calls in all, spread over the seeds (rounded to thousands per seed).
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Number of seeds.
    #[arg(long, default_value_t = 4)]
    pub seeds: u8,
    /// Number of CPUs.
    #[arg(long, default_value_t = 2)]
    pub smp: usize,
    /// Kill the guest after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// Calls of the campaign `cargo xtask test` runs: two seeds, about 10 s
/// of TCG on an idle host.
const SHORT_SEEDS: u8 = 2;
const SHORT_THOUSANDS: u64 = 10;

pub fn run(args: &FuzzArgs) -> Result<()> {
    prereq::ensure_target()?;
    prereq::ensure_qemu()?;
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let thousands = (args.count / u64::from(args.seeds)).div_ceil(1000).clamp(1, 0xFFFF);
    let artifacts = build::build(&args.build)?;
    campaign(&artifacts, args.seed, thousands, args.seeds, &qemu::MachineArgs::tcg(args.smp, args.timeout)).map(|_| ())
}

/// The short campaign of `cargo xtask test`: every seed at baseline, and
/// fewer than half the calls refused.
pub fn short_campaign(artifacts: &build::Artifacts) -> Result<()> {
    let summary = campaign(artifacts, 1, SHORT_THOUSANDS, SHORT_SEEDS, &qemu::MachineArgs::tcg(2, 300))?;
    if 2 * summary.refused >= summary.calls {
        bail!("{} of {} fuzzed calls were refused: half or more", summary.refused, summary.calls);
    }
    Ok(())
}

/// Boots a campaign of `seeds` seeds from `seed`, `thousands` thousand
/// calls each, and reads its lines.
fn campaign(artifacts: &build::Artifacts, seed: u16, thousands: u64, seeds: u8, machine: &qemu::MachineArgs) -> Result<Summary> {
    let word = format!("{}{seed},{thousands},{seeds}", abi::selftest::FUZZ_FLAG);
    let strategy = cmdline::strategy_word(artifacts.strategy);
    let cmdline = cmdline::join([word.as_str(), strategy.as_str()]);
    println!("xtask: fuzzing seeds {seed}..={} with {} calls each", u32::from(seed) + u32::from(seeds) - 1, thousands * 1000);
    let outcome = qemu::boot(artifacts, machine, &cmdline, qemu::Echo::Indented)?;
    outcome.report();
    let summary = Summary::read(&outcome.lines);
    summary.print();
    if !summary.done || summary.failed > 0 {
        bail!("the campaign failed: a seed did not finish or left the kernel's pools off their baseline");
    }
    outcome.into_result()?;
    Ok(summary)
}

/// What the `[fuzz]` lines say.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    seeds: Vec<u64>,
    calls: u64,
    refused: u64,
    failed: usize,
    succeeded: Vec<String>,
    done: bool,
}

impl Summary {
    fn read(lines: &[String]) -> Self {
        let mut summary = Self::default();
        for line in lines {
            let Some(rest) = line.trim().strip_prefix(FUZZ_MARKER).map(str::trim) else { continue };
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                ["seed", seed, "calls", calls, "refused", refused, ..] => {
                    summary.seeds.extend(seed.parse::<u64>().ok());
                    summary.calls += calls.parse::<u64>().unwrap_or(0);
                    summary.refused += refused.parse::<u64>().unwrap_or(0);
                }
                ["seed", _, "failed:", ..] => summary.failed += 1,
                ["succeeded", names @ ..] => summary.succeeded = names.iter().map(|n| n.to_string()).collect(),
                ["done"] => summary.done = true,
                _ => {}
            }
        }
        summary
    }

    fn print(&self) {
        let share = if self.calls == 0 { 0.0 } else { 100.0 * self.refused as f64 / self.calls as f64 };
        println!(
            "xtask: fuzz seeds {:?}: {} calls, {} refused ({share:.1}%), {} seeds failed",
            self.seeds, self.calls, self.refused, self.failed
        );
        println!("xtask: fuzz: {} system calls succeeded at least once: {}", self.succeeded.len(), self.succeeded.join(" "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_campaign_lines() {
        let lines: Vec<String> = [
            "  [fuzz] seed 1 calls 1000 refused 600 pools at baseline",
            "[fuzz] seed 2 calls 1000 refused 400 pools at baseline",
            "[fuzz] succeeded Yield CapCopy",
            "[fuzz] done",
        ]
        .map(String::from)
        .to_vec();
        let summary = Summary::read(&lines);
        assert_eq!(summary.seeds, [1, 2]);
        assert_eq!((summary.calls, summary.refused, summary.failed), (2000, 1000, 0));
        assert_eq!(summary.succeeded, ["Yield", "CapCopy"]);
        assert!(summary.done);
        let failed = Summary::read(&["[fuzz] seed 3 failed: the fuzzer did not finish".to_string()]);
        assert_eq!(failed.failed, 1);
        assert!(!failed.done);
    }
}
