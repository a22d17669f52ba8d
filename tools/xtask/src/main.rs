//! `cargo xtask`: the project's one entry point for building the kernel and
//! the boot image, running them in QEMU, testing and benchmarking.
//!
//! Every command first makes sure of its prerequisites (the cross target,
//! QEMU), so the README's two commands work on a fresh machine.

mod bench;
mod build;
mod cmdline;
mod fuzz;
mod lint;
mod machine_check;
mod prereq;
mod qemu;
mod qemu_error;
mod selftest;
mod test;
mod trace_report;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run, test and benchmark the system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the kernel and pack the boot image.
    Build(BuildArgs),
    /// Boot the system in QEMU; exits with the guest's status.
    Run(RunArgs),
    /// Host tests, then the in-guest self-tests under --smp 1 and --smp 4.
    Test(TestArgs),
    /// Benchmarks (see `cargo xtask bench --help`).
    Bench(bench::BenchArgs),
    /// Clippy on the host and guest crates, `cargo fmt --check` and rustdoc,
    /// warnings denied.
    Lint,
    /// The system-call fuzzer: several seeds, pools checked after each.
    Fuzz(fuzz::FuzzArgs),
}

#[derive(Args, Clone)]
pub struct BuildArgs {
    /// Build with optimisations (the default is a debug build).
    #[arg(long)]
    pub release: bool,
}

#[derive(Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub machine: qemu::MachineArgs,
    /// Extra words for the kernel command line.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Refcount strategy of the memory and process servers (one of the nine of
    /// libs/refcount); appends `strategy=NAME` to the kernel command line.
    /// Without it, the strategy image.toml names.
    #[arg(long, value_name = "NAME", value_parser = cmdline::parse_strategy)]
    pub strategy: Option<abi::process::Strategy>,
}

#[derive(Args, Clone)]
pub struct TestArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Skip the host tests and only boot the guest self-tests.
    #[arg(long)]
    pub guest_only: bool,
}

fn main() -> std::process::ExitCode {
    match dispatch(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => {
            prereq::ensure_target()?;
            let artifacts = build::build(&args)?;
            println!("kernel: {}\nboot image: {}", artifacts.kernel.display(), artifacts.image.display());
            Ok(())
        }
        Command::Run(args) => run(&args),
        Command::Test(args) => test::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Lint => {
            prereq::ensure_target()?;
            lint::run()
        }
        Command::Fuzz(args) => fuzz::run(&args),
    }
}

fn run(args: &RunArgs) -> Result<()> {
    prereq::ensure_target()?;
    prereq::ensure_qemu()?;
    let artifacts = build::build(&args.build)?;
    let strategy = cmdline::strategy_word(args.strategy.unwrap_or(artifacts.strategy));
    let cmdline = cmdline::join([args.append.as_str(), strategy.as_str()]);
    let outcome = qemu::boot(&artifacts, &args.machine, &cmdline, qemu::Echo::Yes)?;
    outcome.report();
    if let Some(file) = &args.machine.trace {
        trace_report::report(file)?;
    }
    outcome.into_result()
}
