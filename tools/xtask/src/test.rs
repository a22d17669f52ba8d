//! `cargo xtask test`: the host test suites, then the kernel's self-tests
//! booted under --smp 1 and --smp 4 with the refcount strategy image.toml
//! names, and under --smp 4 with every other one (the kernel's and the
//! system tests: the user tests do not depend on it), then the failure paths,
//! a short fuzzing campaign and the traced boots. Ends with a `N passed, N
//! failed` line.

use std::process::Command;

use anyhow::{Result, bail};

use crate::build::{self, workspace_root};
use crate::qemu::{self, Echo, MachineArgs};
use crate::selftest::Verdict;
use crate::{TestArgs, prereq};

/// One self-test boot: CPUs, strategy, and whether init runs its user
/// tests too.
struct GuestRun {
    smp: usize,
    strategy: abi::process::Strategy,
    user_tests: bool,
    /// Booted with `cow=pager`: the kernel copies nothing for the pager.
    cow_by_pager: bool,
}

/// The self-test boots: the manifest's strategy under `--smp 1` and `--smp
/// 4` with every test; every other strategy under `--smp 4` with the
/// kernel's and the system tests only (the user tests try the kernel, which
/// no strategy changes: `abi::selftest::INIT_FLAG_SYSTEM_ONLY`); and the
/// manifest's again with the system tests, every copy-on-write fault
/// resolved by the pager (`cow=pager`).
fn guest_runs(manifest: abi::process::Strategy) -> Vec<GuestRun> {
    let run = |smp, strategy, user_tests| GuestRun { smp, strategy, user_tests, cow_by_pager: false };
    let others = abi::process::Strategy::ALL.into_iter().filter(|&s| s != manifest);
    let whole = [1, 4].map(|smp| run(smp, manifest, true));
    let by_pager = GuestRun { cow_by_pager: true, ..run(2, manifest, false) };
    whole.into_iter().chain(others.map(|strategy| run(4, strategy, false))).chain([by_pager]).collect()
}

pub fn run(args: &TestArgs) -> Result<()> {
    prereq::ensure_target()?;
    prereq::ensure_qemu()?;
    if !args.guest_only {
        host_tests()?;
    }
    let artifacts = build::build(&args.build)?;
    let machine = MachineArgs::tcg(1, 120);
    let (mut passed, mut failed) = (0, 0);
    for GuestRun { smp, strategy, user_tests, cow_by_pager } in guest_runs(artifacts.strategy) {
        let system_only = if user_tests { "" } else { abi::selftest::SYSTEM_ONLY_FLAG };
        let by_pager = if cow_by_pager { abi::selftest::COW_PAGER_FLAG } else { "" };
        let strategy_word = crate::cmdline::strategy_word(strategy);
        let cmdline = crate::cmdline::join([abi::selftest::CMDLINE_FLAG, system_only, strategy_word.as_str(), by_pager]);
        eprintln!("xtask: guest self-tests, --smp {smp}, `{cmdline}`");
        let outcome = qemu::boot(&artifacts, &machine.with_smp(smp), &cmdline, Echo::Indented)?;
        outcome.report();
        let user: &[&str] = if user_tests { abi::selftest::USER_TESTS } else { &[] };
        let expected: Vec<&str> = abi::selftest::KERNEL_TESTS.iter().chain(user).chain(abi::selftest::SYSTEM_TESTS).copied().collect();
        let verdict = Verdict::read(&outcome.lines, &expected);
        for (name, reason) in &verdict.failed {
            eprintln!("xtask: FAILED (smp {smp}, `{cmdline}`) {name}: {reason}");
        }
        for name in &verdict.missing {
            eprintln!("xtask: MISSING (smp {smp}, `{cmdline}`) {name}: the guest never reported it");
        }
        if !verdict.done {
            eprintln!("xtask: MISSING (smp {smp}, `{cmdline}`): the guest never finished its self-tests");
        }
        if !outcome.lines.iter().any(|l| l.contains(&format!("{} {smp}", qemu::BANNER))) {
            eprintln!("xtask: FAILED (smp {smp}): banner does not say `{} {smp}`", qemu::BANNER);
            failed += 1;
        }
        let clean_exit = outcome.exit == Some(abi::exit::GuestExit::Success);
        passed += verdict.passed.len();
        failed += verdict.failed.len() + verdict.missing.len() + usize::from(!verdict.done) + usize::from(!clean_exit && verdict.ok());
    }
    let (failure_passed, failure_failed) = failure_paths(&artifacts, &machine)?;
    passed += failure_passed;
    failed += failure_failed;
    for (name, check) in [
        ("short fuzzing campaign", crate::fuzz::short_campaign as fn(&build::Artifacts) -> Result<()>),
        ("traced boot", traced_boot),
        ("traced fork batching", traced_fork_batching),
        ("traced counts in order", traced_counts_in_order),
    ] {
        match check(&artifacts) {
            Ok(()) => passed += 1,
            Err(error) => {
                eprintln!("xtask: FAILED {name}: {error:#}");
                failed += 1;
            }
        }
    }
    println!("guest: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} guest checks failed");
    }
    Ok(())
}

/// The host crates' tests, the refcount model at its full case count, then the loom
/// models of libs/refcount (in a target directory of their own: `--cfg loom` rebuilds
/// everything).
fn host_tests() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: host tests (cargo test)");
    if !Command::new(&cargo).current_dir(workspace_root()).arg("test").status()?.success() {
        bail!("host tests failed");
    }
    // The debug run above keeps the refcount model short; this one runs its full case count
    // (REFCOUNT_MODEL_CASES, passed through, sets another).
    eprintln!("xtask: refcount model, optimised (10000 cases per strategy by default)");
    let model = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(["test", "--package", "refcount", "--release", "--test", "model"])
        .status()?;
    if !model.success() {
        bail!("refcount model failed");
    }
    eprintln!("xtask: loom models of libs/refcount (--cfg loom)");
    let loom = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(["test", "--package", "refcount", "--release", "--test", "loom"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", build::target_dir().join("loom"))
        .status()?;
    if !loom.success() {
        bail!("loom models failed");
    }
    Ok(())
}

/// A boot that must fail in a stated way.
struct FailureCase {
    cmdline: &'static str,
    /// Every one of these must appear on serial.
    expect_lines: &'static [&'static str],
    /// The guest must be killed at the limit instead of exiting.
    expect_hang: bool,
}

const FAILURE_CASES: [FailureCase; 3] = [
    FailureCase {
        cmdline: abi::selftest::crash::PANIC,
        expect_lines: &["KERNEL PANIC on cpu 0 at microkernel/src/main.rs:", "crash requested"],
        expect_hang: false,
    },
    FailureCase {
        cmdline: abi::selftest::crash::FAULT,
        expect_lines: &["EXCEPTION #PF page fault (vector 14) on cpu 0", "cr2 0xfffffc0000000000", "rax "],
        expect_hang: false,
    },
    FailureCase { cmdline: abi::selftest::crash::HANG, expect_lines: &["idling forever"], expect_hang: true },
];

/// Proves that a panic and an unhandled exception are reported and end the
/// run with a failure status, and that a hung guest is killed.
fn failure_paths(artifacts: &build::Artifacts, machine: &MachineArgs) -> Result<(usize, usize)> {
    let (mut passed, mut failed) = (0, 0);
    for case in &FAILURE_CASES {
        eprintln!("xtask: failure path `{}` (expected to fail)", case.cmdline);
        let limit = if case.expect_hang { 5 } else { machine.timeout };
        let machine = MachineArgs { timeout: limit, ..machine.with_smp(2) };
        let outcome = qemu::boot(artifacts, &machine, case.cmdline, Echo::Indented)?;
        outcome.report();
        let missing: Vec<_> = case.expect_lines.iter().filter(|want| !outcome.lines.iter().any(|l| l.contains(*want))).collect();
        let ended_right = if case.expect_hang { outcome.timed_out.is_some() } else { outcome.exit == Some(abi::exit::GuestExit::Failure) };
        if missing.is_empty() && ended_right {
            passed += 1;
        } else {
            eprintln!("xtask: FAILED failure path `{}`: missing lines {missing:?}, ended as expected: {ended_right}", case.cmdline);
            failed += 1;
        }
    }
    Ok((passed, failed))
}

/// Boots the demo's IPC round trips with the IPC trace recorded, and has
/// `ipctrace check` find every call paired with its reply, no gap, no loss
/// and no damage.
fn traced_boot(artifacts: &build::Artifacts) -> Result<()> {
    let file = traced_demo(artifacts, "e2e", abi::selftest::DEMO_IPC_FLAG, artifacts.strategy)?;
    if !ipctrace(&file, &["stats"]).status()?.success() || !ipctrace(&file, &["check"]).status()?.success() {
        bail!("ipctrace found problems in {}", file.display());
    }
    Ok(())
}

/// Boots the whole demo (a short forkbench) traced, and requires the trace
/// to be whole (`traced_demo`), to pass `ipctrace check`, to show the
/// process servers' reference batches (calls to the memory server carrying
/// many operations each), and to decode them (`traced_batch_payloads`).
fn traced_fork_batching(artifacts: &build::Artifacts) -> Result<()> {
    const MIN_ITEMS_PER_MESSAGE: f64 = 10.0;
    let file = traced_demo(artifacts, "fork", "", artifacts.strategy)?;
    if !ipctrace(&file, &["check"]).status()?.success() {
        bail!("ipctrace check found problems in {}", file.display());
    }
    let output = ipctrace(&file, &["stats", "--json"]).output()?;
    if !output.status.success() {
        bail!("ipctrace stats failed on {}", file.display());
    }
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let label = proto::MEMORY_PROTOCOL;
    let rows = stats["by_endpoint_label"].as_array().map(Vec::as_slice).unwrap_or_default();
    let batches = rows
        .iter()
        .filter(|row| row["endpoint"] == "memory-server" && row["label_value"].as_u64() == Some(label))
        .find_map(|row| row["items_per_msg"].as_f64());
    match batches {
        Some(items) if items >= MIN_ITEMS_PER_MESSAGE => {
            eprintln!("xtask: the fork demo's trace shows {items:.1} reference operations per batch to the memory server");
        }
        other => bail!("no batching in the trace: memory-server items/msg {other:?}, expected at least {MIN_ITEMS_PER_MESSAGE}"),
    }
    traced_batch_payloads(&file)?;
    traced_kernel_copies(&file)
}

/// The trace shows the copy-on-write faults the kernel resolved with no
/// call to the pager (`cow-copy` records): the demo's children write pages
/// their parent holds.
fn traced_kernel_copies(file: &std::path::Path) -> Result<()> {
    let output = ipctrace(file, &["dump", "--kind", trace::Kind::CowCopy.name()]).output()?;
    if !output.status.success() {
        bail!("ipctrace dump --kind cow-copy failed on {}", file.display());
    }
    let copies = String::from_utf8_lossy(&output.stdout).lines().filter(|l| l.contains(trace::Kind::CowCopy.name())).count();
    if copies == 0 {
        bail!("no copy-on-write fault resolved by the kernel in the trace of the fork demo");
    }
    eprintln!("xtask: the fork demo's trace shows {copies} copy-on-write faults the kernel resolved");
    Ok(())
}

/// The trace carries the batches' payloads: `dump` decodes a whole
/// `RefBatch`, and `frame N` follows its first frame into it.
fn traced_batch_payloads(file: &std::path::Path) -> Result<()> {
    let output = ipctrace(file, &["dump", "--endpoint", "memory-server"]).output()?;
    let dump = String::from_utf8_lossy(&output.stdout);
    let frame = dump.lines().find_map(|l| {
        l.split_once(&format!("| memory.v{} RefBatch: RefBatch {{ ", proto::version_of(proto::MEMORY_PROTOCOL)))?
            .1
            .split_once("RefOp { frame: ")?
            .1
            .split_once(',')
            .map(|(n, _)| n.to_string())
    });
    let Some(frame) = frame else { bail!("no whole RefBatch decoded in `ipctrace {} dump`", file.display()) };
    let output = ipctrace(file, &["frame", &frame]).output()?;
    let history = String::from_utf8_lossy(&output.stdout);
    if !history.lines().any(|l| l.contains(": RefBatch (")) {
        bail!("`ipctrace {} frame {frame}` does not follow the frame into its batch:\n{history}", file.display());
    }
    eprintln!("xtask: the fork demo's trace decodes its reference batches; frame {frame}: {}", history.lines().last().unwrap_or(""));
    Ok(())
}

/// Boots the whole demo under atomic-ipc, where every change of a count
/// is a message to the memory server, and has `ipctrace frame all --exact`
/// follow every frame through its batches: no decrement may come before
/// its increment.
fn traced_counts_in_order(artifacts: &build::Artifacts) -> Result<()> {
    let file = traced_demo(artifacts, "atomic-ipc", "", abi::process::Strategy::AtomicIpc)?;
    let output = ipctrace(&file, &["frame", "all", "--exact"]).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let verdict = text.lines().last().unwrap_or("").to_string();
    if !output.status.success() || !verdict.ends_with("; 0 decrements before their increment") {
        bail!("`ipctrace {} frame all --exact`: {}", file.display(), text.lines().take(10).collect::<Vec<_>>().join("\n"));
    }
    eprintln!("xtask: atomic-ipc's trace: {verdict}");
    Ok(())
}

/// Boots the demo with `cmdline` under `strategy`, tracing into
/// target/trace/NAME.trace.
fn traced_demo(artifacts: &build::Artifacts, name: &str, cmdline: &str, strategy: abi::process::Strategy) -> Result<std::path::PathBuf> {
    let file = build::target_dir().join("trace").join(format!("{name}.trace"));
    std::fs::create_dir_all(file.parent().expect("has a parent"))?;
    let _ = std::fs::remove_file(&file);
    eprintln!("xtask: traced boot (--smp 2 --trace {}) {cmdline}", file.display());
    let machine = MachineArgs { trace: Some(file.clone()), ..MachineArgs::tcg(2, 120) };
    let cmdline = crate::cmdline::join([cmdline, crate::cmdline::strategy_word(strategy).as_str()]);
    let outcome = qemu::boot(artifacts, &machine, &cmdline, Echo::Indented)?;
    outcome.report();
    outcome.into_result()?;
    let summary = crate::trace_report::report(&file)?;
    if !summary.is_whole() {
        bail!("the trace of `{cmdline}` is not whole: {} of {} records lost", summary.lost(), summary.records + summary.lost());
    }
    Ok(file)
}

/// `ipctrace FILE ARGS...` through cargo.
fn ipctrace(file: &std::path::Path, args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root()).args(["run", "--quiet", "--package", "ipctrace", "--"]).arg(file).args(args);
    command
}
