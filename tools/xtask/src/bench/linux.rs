//! The Linux baseline of `cargo xtask bench fork --linux KERNEL`: the
//! guest's forkbench loop as a C program (`tools/linux-forkbench`, built
//! static with the host's C compiler), the `/init` of an initramfs, booted
//! on a Linux kernel the user names in the same QEMU, machine and
//! accelerator as the guest's boots, within the same run. One boot under
//! `--icount` gives its instructions (CLOCK_MONOTONIC then counts one
//! nanosecond per guest instruction), the others wall-clock nanoseconds.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::fields::Fields;
use crate::build::{target_dir, workspace_root};
use crate::qemu::{self, Echo, MachineArgs};

/// The kernel command line before init's arguments; `quiet` keeps the
/// console for the program's lines.
const KERNEL_WORDS: &str = "console=ttyS0 quiet";
/// The program's last line, printed before it powers off.
const DONE: &str = "[linux-forkbench] done";
/// The program's lines start like the guest forkbench's.
const SHAPE_PREFIX: &str = "fork pages=";

/// A kernel and the initramfs that runs the benchmark on it.
pub(super) struct Linux {
    kernel: PathBuf,
    initramfs: PathBuf,
}

/// One shape's line from the Linux boot.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LinuxLine {
    pub(super) pages: u32,
    pub(super) child_writes: u32,
    pub(super) rounds: u64,
    pub(super) mean_ns: u64,
    pub(super) min_ns: u64,
}

impl LinuxLine {
    pub(super) fn shape(&self) -> (u32, u32) {
        (self.pages, self.child_writes)
    }
}

impl Linux {
    /// Builds the program and its initramfs under `target/bench/linux`, for
    /// `kernel` (a bzImage, such as Debian's `/boot/vmlinuz-*`).
    pub(super) fn prepare(kernel: &Path) -> Result<Self> {
        if !kernel.is_file() {
            bail!("--linux: no kernel image at {}", kernel.display());
        }
        let dir = target_dir().join("bench").join("linux");
        std::fs::create_dir_all(&dir)?;
        let source = workspace_root().join("tools").join("linux-forkbench").join("forkbench.c");
        let program = dir.join("forkbench");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let built = Command::new(&cc)
            .args(["-O2", "-static", "-o"])
            .arg(&program)
            .arg(&source)
            .status()
            .with_context(|| format!("--linux needs a C compiler with static libc (`{cc}`; Debian: gcc and libc6-dev)"))?;
        if !built.success() {
            bail!("{cc} could not build {}", source.display());
        }
        let initramfs = dir.join("initramfs.cpio");
        let bytes = std::fs::read(&program)?;
        let init = cpio::NewcBuilder::new("init").mode(0o100_755).nlink(1);
        let file = std::fs::File::create(&initramfs).with_context(|| format!("writing {}", initramfs.display()))?;
        cpio::write_cpio(std::iter::once((init, Cursor::new(bytes))), file)?;
        Ok(Self { kernel: kernel.to_path_buf(), initramfs })
    }

    /// Boots the benchmark once: `rounds` forks at each of `shapes`.
    pub(super) fn boot(&self, machine: &MachineArgs, shapes: &[(u32, u32)], rounds: u64) -> Result<Vec<LinuxLine>> {
        let shape_words: Vec<String> = shapes.iter().map(|(pages, writes)| format!("{pages},{writes}")).collect();
        let cmdline = format!("{KERNEL_WORDS} -- {rounds} {}", shape_words.join(" "));
        let outcome = qemu::boot_files(&self.kernel, &self.initramfs, machine, &cmdline, Echo::Indented)?;
        if !outcome.lines.iter().any(|line| line.contains(DONE)) {
            outcome.report();
            bail!("the Linux boot did not finish the benchmark");
        }
        let mut lines = Vec::new();
        for line in &outcome.lines {
            if line.contains("forkbench: ") {
                bail!("the Linux benchmark failed: {}", line.trim());
            }
            lines.extend(parse_line(line)?);
        }
        for shape in shapes {
            if !lines.iter().any(|l| l.shape() == *shape) {
                bail!("the Linux boot printed no line for pages={} child_writes={}", shape.0, shape.1);
            }
        }
        Ok(lines)
    }

    pub(super) fn kernel(&self) -> &Path {
        &self.kernel
    }
}

/// Parses one of the program's shape lines; `Ok(None)` for any other line.
pub(super) fn parse_line(line: &str) -> Result<Option<LinuxLine>> {
    let Some(fields) = Fields::of(line, SHAPE_PREFIX)? else { return Ok(None) };
    Ok(Some(LinuxLine {
        pages: fields.small("pages")?,
        child_writes: fields.small("child_writes")?,
        rounds: fields.int("rounds")?,
        mean_ns: fields.int("mean_ns")?,
        min_ns: fields.int("min_ns")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_programs_lines() {
        let line = "fork pages=4096 child_writes=256 rounds=20 mean_ns=3853384 min_ns=3844524";
        let parsed = parse_line(line).unwrap().unwrap();
        assert_eq!(parsed, LinuxLine { pages: 4096, child_writes: 256, rounds: 20, mean_ns: 3_853_384, min_ns: 3_844_524 });
        assert_eq!(parse_line("[    4.6] reboot: Power down").unwrap(), None);
        assert!(parse_line("fork pages=16 child_writes=0 rounds=20 mean_ns=x min_ns=1").is_err());
    }
}
