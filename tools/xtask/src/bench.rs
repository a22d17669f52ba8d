//! `cargo xtask bench`: runs a benchmark suite, prints a table, and leaves
//! its JSON under `target/bench/`.

mod contention;
mod fields;
mod fork;
mod linux;
mod matrix;
mod pagefault;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::build::{self, target_dir, workspace_root};
use crate::qemu::{self, Echo, MachineArgs};
use crate::{BuildArgs, prereq};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Suite {
    /// The refcount strategies on the host (libs/refcount, tools/refbench).
    Refcount,
    /// IPC call/reply round trips in the guest, same CPU and across CPUs.
    Ipc,
    /// fork + exit + wait in the guest under each refcount strategy, by shape.
    Fork,
    /// The experiment matrix: strategies × workloads × CPUs, under --icount;
    /// target/bench/report.{md,json} and SVG plots.
    Matrix,
    /// Every CPU counting the same frames at once, wall clock and --icount,
    /// under each strategy at each CPU count; target/bench/contention.json.
    Contention,
}

#[derive(Args)]
pub struct BenchArgs {
    pub suite: Suite,
    /// A short run (seconds, not minutes), for smoke testing.
    #[arg(long)]
    pub quick: bool,
    /// `fork`, `matrix` and `contention`: the refcount strategies to compare, comma-separated
    /// (default: all of them; ratios are against `atomic` when it runs too).
    #[arg(long, value_name = "NAMES", value_delimiter = ',', value_parser = crate::cmdline::parse_strategy)]
    pub strategy: Vec<abi::process::Strategy>,
    /// `matrix` and `contention`: the CPU counts, comma-separated (default: 1,2,4).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub smp: Vec<usize>,
    /// `fork`: boot with `cow=pager`, every copy-on-write fault a round trip
    /// to the pager (the kernel copies nothing for it), to compare with the
    /// default.
    #[arg(long)]
    pub cow_pager: bool,
    /// `fork`: also boot the same loop on this Linux kernel image (a
    /// bzImage, such as a `vmlinuz` of Debian's linux-image package), in
    /// the same QEMU and run, and compare every strategy with it. Needs a C
    /// compiler with static libc (`cc`, or `CC`).
    #[arg(long, value_name = "KERNEL")]
    pub linux: Option<std::path::PathBuf>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if !args.strategy.is_empty() && !matches!(args.suite, Suite::Fork | Suite::Matrix | Suite::Contention) {
        bail!("--strategy applies to `bench fork`, `bench matrix` and `bench contention` only");
    }
    if !args.smp.is_empty() && !matches!(args.suite, Suite::Matrix | Suite::Contention) {
        bail!("--smp applies to `bench matrix` and `bench contention` only");
    }
    if args.cow_pager && !matches!(args.suite, Suite::Fork) {
        bail!("--cow-pager applies to `bench fork` only");
    }
    if args.linux.is_some() && !matches!(args.suite, Suite::Fork) {
        bail!("--linux applies to `bench fork` only");
    }
    std::fs::create_dir_all(target_dir().join("bench"))?;
    match args.suite {
        Suite::Refcount => refcount(args.quick),
        Suite::Ipc => ipc(args.quick),
        Suite::Fork => fork::run(&args.strategy, args.quick, args.cow_pager, args.linux.as_deref()),
        Suite::Matrix => matrix::run(&args.strategy, &args.smp, args.quick),
        Suite::Contention => contention::run(&args.strategy, &args.smp, args.quick),
    }
}

fn refcount(quick: bool) -> Result<()> {
    let json = target_dir().join("bench").join("refcount.json");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root()).args(["run", "--release", "--package", "refbench", "--", "--json"]).arg(&json);
    if quick {
        command.arg("--quick");
    }
    if !command.status()?.success() {
        bail!("refbench failed");
    }
    eprintln!("xtask: wrote {}", json.display());
    Ok(())
}

/// One `[bench] ipc` line: the mean round trip, and over the measured
/// rounds the fast-path IPCs and the kernel lock's hold and wait cycles.
#[derive(Debug, PartialEq)]
struct IpcLine {
    name: String,
    mean_tsc: u64,
    /// The median and least round trip, each timed alone (0 if not said).
    median_tsc: u64,
    min_tsc: u64,
    tsc_hz: u64,
    rounds: u64,
    fast: u64,
    lock_hold_tsc: u64,
    lock_wait_tsc: u64,
}

fn parse_ipc_line(line: &str) -> Option<IpcLine> {
    let rest = line.trim().strip_prefix(abi::selftest::BENCH_MARKER)?.trim().strip_prefix("ipc ")?;
    let mut words = rest.split_whitespace();
    let name = words.next()?.to_string();
    let field = |key: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok());
    Some(IpcLine {
        name,
        mean_tsc: field("mean_tsc")?,
        median_tsc: field("median_tsc").unwrap_or(0),
        min_tsc: field("min_tsc").unwrap_or(0),
        tsc_hz: field("tsc_hz")?,
        rounds: field("rounds")?,
        fast: field("fast").unwrap_or(0),
        lock_hold_tsc: field("lock_hold_tsc").unwrap_or(0),
        lock_wait_tsc: field("lock_wait_tsc").unwrap_or(0),
    })
}

/// Boots the IPC benchmark once (`extra` on the command line); returns the
/// mean round trip of each case.
/// Under `--icount` the kernel is told so, which turns halt polling off.
fn boot_ipc(artifacts: &build::Artifacts, machine: &MachineArgs, extra: &str) -> Result<Vec<IpcLine>> {
    let icount = if machine.icount { abi::selftest::ICOUNT_FLAG } else { "" };
    let cmdline = format!("{} {icount} {extra}", abi::selftest::BENCH_IPC_FLAG);
    let outcome = qemu::boot(artifacts, machine, cmdline.trim(), Echo::Indented)?;
    let lines: Vec<IpcLine> = outcome.lines.iter().filter_map(|l| parse_ipc_line(l)).collect();
    outcome.into_result()?;
    if lines.len() != 2 {
        bail!("the guest printed {} IPC results, expected 2", lines.len());
    }
    Ok(lines)
}

fn mean_of<'a>(lines: &'a [IpcLine], name: &str) -> Result<&'a IpcLine> {
    lines.iter().find(|l| l.name == name).with_context(|| format!("no `{name}` result"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ipc(quick: bool) -> Result<()> {
    prereq::ensure_target()?;
    prereq::ensure_qemu()?;
    let release = BuildArgs { release: true };
    let artifacts = build::build(&release)?;
    let untraced = build::build_flavour(&release, build::Flavour::NoTrace)?;
    let machine = MachineArgs::tcg(2, 300);
    let exact_machine = MachineArgs { icount: true, ..machine.clone() };

    eprintln!("xtask: IPC benchmark, --icount (instructions), kernel without trace points");
    let baseline = boot_ipc(&untraced, &exact_machine, "")?;
    eprintln!("xtask: IPC benchmark, --icount, tracing off");
    let exact = boot_ipc(&artifacts, &exact_machine, "")?;
    eprintln!("xtask: IPC benchmark, --icount, tracing on (all categories, stream mode)");
    let traced = boot_ipc(&artifacts, &exact_machine, "trace=all")?;
    eprintln!("xtask: IPC benchmark, --icount, tracing on (all categories, flight recorder: capture without the drain)");
    let captured = boot_ipc(&artifacts, &exact_machine, "trace=all trace_mode=flight")?;
    eprintln!("xtask: IPC benchmark, --icount, tracing on, records only (trace_payload=none), stream mode");
    let traced_records = boot_ipc(&artifacts, &exact_machine, "trace=all trace_payload=none")?;
    eprintln!("xtask: IPC benchmark, --icount, tracing on, records only, flight recorder");
    let captured_records = boot_ipc(&artifacts, &exact_machine, "trace=all trace_payload=none trace_mode=flight")?;
    eprintln!("xtask: IPC benchmark, --icount, kernel lock hold times (lockstat)");
    let lockstat = boot_ipc(&artifacts, &exact_machine, "lockstat")?;
    let runs = if quick { 1 } else { 3 };
    let mut wall: Vec<Vec<IpcLine>> = Vec::new();
    let mut wall_unpolled: Vec<Vec<IpcLine>> = Vec::new();
    for run in 1..=runs {
        eprintln!("xtask: IPC benchmark, wall clock, run {run} of {runs}");
        wall.push(boot_ipc(&artifacts, &machine, "")?);
        eprintln!("xtask: IPC benchmark, wall clock without halt polling (haltpoll=0), run {run} of {runs}");
        wall_unpolled.push(boot_ipc(&artifacts, &machine, "haltpoll=0")?);
    }
    // The median over the boots of one figure of each boot, in ns.
    let median_ns = |boots: &[Vec<IpcLine>], name: &str, tsc: fn(&IpcLine) -> u64| -> Result<f64> {
        let samples = boots.iter().map(|lines| mean_of(lines, name).map(|l| tsc(l) as f64 * 1e9 / l.tsc_hz.max(1) as f64));
        Ok(median(samples.collect::<Result<Vec<_>>>()?))
    };
    let mean_tsc: fn(&IpcLine) -> u64 = |l| l.mean_tsc;
    let median_tsc: fn(&IpcLine) -> u64 = |l| l.median_tsc;
    let min_tsc: fn(&IpcLine) -> u64 = |l| l.min_tsc;
    let ns = |name: &str| median_ns(&wall, name, mean_tsc);
    let per_round = |line: &IpcLine, n: u64| n as f64 / line.rounds.max(1) as f64;
    let same_instr = mean_of(&exact, "same_cpu")?.mean_tsc;
    let cross_instr = mean_of(&exact, "cross_cpu")?.mean_tsc;
    let same_base = mean_of(&baseline, "same_cpu")?.mean_tsc;
    let same_traced = mean_of(&traced, "same_cpu")?.mean_tsc;
    let cross_base = mean_of(&baseline, "cross_cpu")?.mean_tsc;
    let cross_traced = mean_of(&traced, "cross_cpu")?.mean_tsc;
    let same_captured = mean_of(&captured, "same_cpu")?.mean_tsc;
    let cross_captured = mean_of(&captured, "cross_cpu")?.mean_tsc;
    let (same_traced_records, cross_traced_records) =
        (mean_of(&traced_records, "same_cpu")?.mean_tsc, mean_of(&traced_records, "cross_cpu")?.mean_tsc);
    let (same_captured_records, cross_captured_records) =
        (mean_of(&captured_records, "same_cpu")?.mean_tsc, mean_of(&captured_records, "cross_cpu")?.mean_tsc);
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    let (same_ns, cross_ns) = (ns("same_cpu")?, ns("cross_cpu")?);
    let (same_unpolled_ns, cross_unpolled_ns) =
        (median_ns(&wall_unpolled, "same_cpu", mean_tsc)?, median_ns(&wall_unpolled, "cross_cpu", mean_tsc)?);
    let (same_median_ns, cross_median_ns) = (median_ns(&wall, "same_cpu", median_tsc)?, median_ns(&wall, "cross_cpu", median_tsc)?);
    let (same_unpolled_median_ns, cross_unpolled_median_ns) =
        (median_ns(&wall_unpolled, "same_cpu", median_tsc)?, median_ns(&wall_unpolled, "cross_cpu", median_tsc)?);
    let (same_exact, cross_exact) = (mean_of(&exact, "same_cpu")?, mean_of(&exact, "cross_cpu")?);
    let (same_fast, cross_fast) = (per_round(same_exact, same_exact.fast), per_round(cross_exact, cross_exact.fast));
    let (same_locked, cross_locked) = (mean_of(&lockstat, "same_cpu")?, mean_of(&lockstat, "cross_cpu")?);
    let (same_hold, cross_hold) = (per_round(same_locked, same_locked.lock_hold_tsc), per_round(cross_locked, cross_locked.lock_hold_tsc));
    let (same_wait, cross_wait) = (per_round(same_exact, same_exact.lock_wait_tsc), per_round(cross_exact, cross_exact.lock_wait_tsc));

    println!("IPC call/reply round trip (TCG, 2 CPUs, release build)");
    println!(
        "{:<12} {:>13} {:>13} {:>13} {:>12} {:>15} {:>17} {:>10} {:>10} {:>12}",
        "case",
        "instructions",
        "wall ns mean",
        "wall ns p50",
        "vs same CPU",
        "no poll: mean",
        "no poll: p50",
        "fast IPCs",
        "lock held",
        "lock waited"
    );
    let rows = [
        ("same CPU", same_instr, same_ns, same_median_ns, same_unpolled_ns, same_unpolled_median_ns, same_fast, same_hold, same_wait),
        (
            "cross CPU",
            cross_instr,
            cross_ns,
            cross_median_ns,
            cross_unpolled_ns,
            cross_unpolled_median_ns,
            cross_fast,
            cross_hold,
            cross_wait,
        ),
    ];
    for (name, instr, mean_ns, p50_ns, unpolled_ns, unpolled_p50_ns, fast, hold, wait) in rows {
        let vs = format!("{:.2}x", mean_ns / same_ns.max(1.0));
        println!(
            "{name:<12} {instr:>13} {mean_ns:>13.0} {p50_ns:>13.0} {vs:>12} {unpolled_ns:>15.0} {unpolled_p50_ns:>17.0} {fast:>10.2} {hold:>10.0} {wait:>12.0}"
        );
    }
    println!(
        "(instructions: --icount, where the TSC advances by one per guest instruction on any CPU; wall ns: TCG without icount, the median over {runs} boots of each boot's mean round trip, and of its median round trip (p50, each timed alone), with the idle CPUs' halt polling and without it (haltpoll=0), converted with the TSC rate the guest calibrated; fast IPCs: Calls and ReplyRecvs on the fast path per round trip; lock held: instructions per round trip the kernel lock was held on all CPUs (--icount, a boot with lockstat); lock waited: instructions per round trip CPUs spun for it (--icount))"
    );
    println!();
    println!("Tracing cost, instructions per round trip (--icount)");
    println!(
        "{:<12} {:>13} {:>12} {:>13} {:>13} {:>13} {:>13}",
        "case", "no trace pts", "tracing off", "capture: rec", "capture: msg", "stream: rec", "stream: msg"
    );
    let rows = [
        ("same CPU", same_base, [same_instr, same_captured_records, same_captured, same_traced_records, same_traced]),
        ("cross CPU", cross_base, [cross_instr, cross_captured_records, cross_captured, cross_traced_records, cross_traced]),
    ];
    for (name, base, cases) in rows {
        let cells: Vec<String> = cases.iter().map(|&n| format!("{n} ({:+.1}%)", (ratio(n, base) - 1.0) * 100.0)).collect();
        println!("{name:<12} {base:>13} {:>12} {:>13} {:>13} {:>13} {:>13}", cells[0], cells[1], cells[2], cells[3], cells[4]);
    }
    println!(
        "(capture: written to the per-CPU rings, flight recorder, nothing drained; stream: also encoded and sent on COM2, by idle CPUs or by a CPU whose ring is full, which under --icount counts on the one shared instruction clock; rec: records only (trace_payload=none); msg: records and their messages (the default))"
    );

    let json = serde_json::json!({
        "accel": "tcg",
        "smp": machine.smp,
        "wall_clock_runs": runs,
        "same_cpu_round_trip_instructions": same_instr,
        "cross_cpu_round_trip_instructions": cross_instr,
        "same_cpu_round_trip_ns": same_ns,
        "cross_cpu_round_trip_ns": cross_ns,
        "same_cpu_round_trip_min_ns": median_ns(&wall, "same_cpu", min_tsc)?,
        "cross_cpu_round_trip_min_ns": median_ns(&wall, "cross_cpu", min_tsc)?,
        "cross_cpu_round_trip_min_ns_without_halt_polling": median_ns(&wall_unpolled, "cross_cpu", min_tsc)?,
        "same_cpu_round_trip_median_ns": same_median_ns,
        "cross_cpu_round_trip_median_ns": cross_median_ns,
        "same_cpu_round_trip_median_ns_without_halt_polling": same_unpolled_median_ns,
        "cross_cpu_round_trip_median_ns_without_halt_polling": cross_unpolled_median_ns,
        "same_cpu_round_trip_ns_without_halt_polling": same_unpolled_ns,
        "cross_cpu_round_trip_ns_without_halt_polling": cross_unpolled_ns,
        "same_cpu_fast_path_ipcs_per_round_trip": same_fast,
        "cross_cpu_fast_path_ipcs_per_round_trip": cross_fast,
        "same_cpu_lock_held_instructions_per_round_trip": same_hold,
        "cross_cpu_lock_held_instructions_per_round_trip": cross_hold,
        "same_cpu_lock_wait_instructions_per_round_trip": same_wait,
        "cross_cpu_lock_wait_instructions_per_round_trip": cross_wait,
        "same_cpu_round_trip_instructions_without_trace_points": same_base,
        "same_cpu_round_trip_instructions_trace_on": same_traced,
        "cross_cpu_round_trip_instructions_without_trace_points": cross_base,
        "cross_cpu_round_trip_instructions_trace_on": cross_traced,
        "same_cpu_round_trip_instructions_trace_capture_only": same_captured,
        "cross_cpu_round_trip_instructions_trace_capture_only": cross_captured,
        "trace_off_cost": ratio(same_instr, same_base) - 1.0,
        "trace_on_cost": ratio(same_traced, same_base) - 1.0,
        "trace_capture_cost": ratio(same_captured, same_base) - 1.0,
        "cross_cpu_trace_off_cost": ratio(cross_instr, cross_base) - 1.0,
        "cross_cpu_trace_on_cost": ratio(cross_traced, cross_base) - 1.0,
        "cross_cpu_trace_capture_cost": ratio(cross_captured, cross_base) - 1.0,
        "same_cpu_round_trip_instructions_trace_on_records_only": same_traced_records,
        "cross_cpu_round_trip_instructions_trace_on_records_only": cross_traced_records,
        "same_cpu_round_trip_instructions_trace_capture_records_only": same_captured_records,
        "cross_cpu_round_trip_instructions_trace_capture_records_only": cross_captured_records,
    });
    write_json(&target_dir().join("bench").join("ipc.json"), &json)
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n").with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        let line = "[bench] ipc same_cpu rounds=10000 mean_tsc=1437 median_tsc=1400 min_tsc=1390 tsc_hz=1000000000 cpus=2 fast=20000 \
                    lock_hold_tsc=300 lock_wait_tsc=7";
        let expected = IpcLine {
            name: "same_cpu".into(),
            mean_tsc: 1437,
            median_tsc: 1400,
            min_tsc: 1390,
            tsc_hz: 1_000_000_000,
            rounds: 10_000,
            fast: 20_000,
            lock_hold_tsc: 300,
            lock_wait_tsc: 7,
        };
        assert_eq!(parse_ipc_line(line), Some(expected));
        let older = parse_ipc_line("[bench] ipc same_cpu rounds=10 mean_tsc=1437 tsc_hz=1000000000 cpus=2").map(|l| l.fast);
        assert_eq!(older, Some(0));
        assert_eq!(parse_ipc_line("[bench] ipc broken"), None);
        assert_eq!(parse_ipc_line("init: hello"), None);
    }

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}
