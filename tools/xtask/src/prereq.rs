//! Prerequisites: the `x86_64-unknown-none` target and QEMU. Installs what it
//! can (rustup, and Debian's package when running as root); otherwise says the
//! exact command to run.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

pub const TARGET: &str = "x86_64-unknown-none";
pub const QEMU: &str = "qemu-system-x86_64";
pub const QBOOT: &str = "/usr/share/qemu/qboot.rom";
const QEMU_PACKAGE: &str = "qemu-system-x86";

/// Adds the kernel's target to the pinned toolchain if it is missing.
pub fn ensure_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup (the toolchain is managed by rustup; see rust-toolchain.toml)")?;
    if String::from_utf8_lossy(&installed.stdout).lines().any(|line| line.trim() == TARGET) {
        return Ok(());
    }
    eprintln!("xtask: adding the Rust target {TARGET}");
    let status = Command::new("rustup").args(["target", "add", TARGET]).status()?;
    if !status.success() {
        bail!("`rustup target add {TARGET}` failed; run it by hand and retry");
    }
    Ok(())
}

/// Makes sure QEMU and its qboot firmware are installed.
pub fn ensure_qemu() -> Result<()> {
    if qemu_present() {
        return Ok(());
    }
    if !running_as_root() {
        bail!("{QEMU} or {QBOOT} is missing; install it with:\n    sudo apt-get install -y {QEMU_PACKAGE}");
    }
    eprintln!("xtask: installing {QEMU_PACKAGE} from Debian's packages");
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "--no-install-recommends", QEMU_PACKAGE])?;
    if !qemu_present() {
        bail!("{QEMU_PACKAGE} installed but {QEMU} or {QBOOT} is still missing");
    }
    Ok(())
}

fn qemu_present() -> bool {
    let runs = Command::new(QEMU).arg("--version").output().is_ok_and(|out| out.status.success());
    runs && Path::new(QBOOT).exists()
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status()?;
    if !status.success() {
        bail!("apt-get {} failed", args.join(" "));
    }
    Ok(())
}
