//! `cargo xtask lint`: every check of the code that needs no guest boot, with
//! warnings denied: clippy on the host crates and on the guest crates for
//! their target, `cargo fmt --check` against `rustfmt.toml`, and rustdoc.
//! It runs them all and fails if any failed, naming each.

use std::process::Command;

use anyhow::{Result, bail};

use crate::build::{target_dir, workspace_root};
use crate::prereq::TARGET;

/// The crates built for the guest, and the shared libraries they use there.
const GUEST_CRATES: &[&str] =
    &["microkernel", "rt", "init", "hello", "memory", "process", "apps", "abi", "proto", "refcount", "trace", "bootimage"];

/// One check: what it is called and the cargo command that runs it.
struct Check {
    name: &'static str,
    command: Command,
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(workspace_root()).env_remove("RUSTFLAGS").args(args);
    command
}

/// A cargo command for the guest crates, in a target directory of its own
/// so that it does not rebuild the host's or the boot build's.
fn guest_cargo(args: &[&str]) -> Command {
    let mut command = cargo(args);
    command.args(["--target", TARGET, "--target-dir"]).arg(target_dir().join("lint"));
    for name in GUEST_CRATES {
        command.args(["--package", name]);
    }
    command
}

fn checks() -> Vec<Check> {
    let mut host_doc = cargo(&["doc", "--no-deps"]);
    host_doc.env("RUSTDOCFLAGS", "-D warnings");
    let mut guest_doc = guest_cargo(&["doc", "--no-deps"]);
    guest_doc.env("RUSTDOCFLAGS", "-D warnings");
    let mut guest_clippy = guest_cargo(&["clippy"]);
    guest_clippy.args(["--", "-D", "warnings"]);
    vec![
        // The root's default members are the host crates.
        Check { name: "clippy (host crates, tests included)", command: cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]) },
        Check { name: "clippy (guest crates, x86_64-unknown-none)", command: guest_clippy },
        Check { name: "cargo fmt --check", command: cargo(&["fmt", "--all", "--check"]) },
        Check { name: "rustdoc (host crates)", command: host_doc },
        Check { name: "rustdoc (guest crates)", command: guest_doc },
    ]
}

pub fn run() -> Result<()> {
    let mut failed = Vec::new();
    for mut check in checks() {
        eprintln!("xtask: lint: {}", check.name);
        if !check.command.status()?.success() {
            failed.push(check.name);
        }
    }
    if failed.is_empty() {
        eprintln!("xtask: lint: all clean");
        Ok(())
    } else {
        bail!("lint failed: {}", failed.join("; "))
    }
}
