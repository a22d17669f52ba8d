//! `cargo xtask bench`: runs a benchmark suite and leaves its JSON under
//! `target/bench/`.

use std::process::Command;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use crate::build::{target_dir, workspace_root};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Suite {
    /// The refcount strategies on the host (libs/refcount, tools/refbench).
    Refcount,
}

#[derive(Args)]
pub struct BenchArgs {
    pub suite: Suite,
    /// A short run (seconds, not minutes), for smoke testing.
    #[arg(long)]
    pub quick: bool,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    match args.suite {
        Suite::Refcount => refcount(args.quick),
    }
}

fn refcount(quick: bool) -> Result<()> {
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let json = out_dir.join("refcount.json");
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
