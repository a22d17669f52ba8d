//! Running a boot in QEMU: the command line, the serial console captured line
//! by line, a hard time limit, and the guest's exit status mapped back through
//! `abi::exit`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use abi::exit::GuestExit;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use wait_timeout::ChildExt;

use crate::build::Artifacts;
use crate::prereq::{QBOOT, QEMU};
use crate::{machine_check, qemu_error};

/// The line whose arrival ends "boot to banner".
pub const BANNER: &str = "cpus online:";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    Tcg,
    Kvm,
}

#[derive(Args, Clone, Debug)]
pub struct MachineArgs {
    /// Number of CPUs, 1 to 8 (the process servers run on at most 8).
    #[arg(long, default_value_t = 2, value_parser = machine_check::parse_smp)]
    pub smp: usize,
    /// Guest memory (QEMU syntax: 512M, 2G).
    #[arg(long, default_value = "512M", value_parser = parse_mem_arg)]
    pub mem: String,
    /// Accelerator: tcg (default; works everywhere) or kvm (real hardware virtualization only).
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
    /// Deterministic time: the TSC counts executed guest instructions (TCG only).
    #[arg(long)]
    pub icount: bool,
    /// Start QEMU's gdb stub on tcp::1234 and wait for the debugger before the first instruction.
    #[arg(long)]
    pub gdb: bool,
    /// Kill the guest after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Record the IPC trace (every category) from the second serial port into FILE.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
}

impl MachineArgs {
    /// A TCG machine with 512 MiB, no debugger, no trace.
    pub fn tcg(smp: usize, timeout: u64) -> Self {
        Self { smp, mem: "512M".into(), accel: Accel::Tcg, icount: false, gdb: false, timeout, trace: None }
    }

    pub fn with_smp(&self, smp: usize) -> Self {
        Self { smp, ..self.clone() }
    }

    fn qemu_args(&self, kernel: &Path, initrd: &Path, cmdline: &str) -> Result<Vec<String>> {
        machine_check::check(self)?;
        let mut args: Vec<String> = [
            "-machine",
            "q35",
            "-smp",
            &self.smp.to_string(),
            "-m",
            &self.mem,
            "-bios",
            QBOOT,
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-device",
            &format!("isa-debug-exit,iobase={:#x},iosize=0x04", abi::exit::DEBUG_EXIT_PORT),
        ]
        .map(String::from)
        .into();
        match self.accel {
            Accel::Tcg => args.extend(["-accel", "tcg", "-cpu", "max"].map(String::from)),
            Accel::Kvm => args.extend(["-accel", "kvm", "-cpu", "host"].map(String::from)),
        }
        if self.icount {
            args.extend(["-icount", "shift=0,sleep=off"].map(String::from));
        }
        if self.gdb {
            args.extend(["-s", "-S"].map(String::from));
        }
        let mut cmdline = cmdline.to_string();
        if let Some(file) = &self.trace {
            args.extend(["-serial".into(), format!("file:{}", file.display())]);
            cmdline.push_str(" trace=all");
        }
        args.extend(["-kernel".into(), kernel.display().to_string()]);
        args.extend(["-initrd".into(), initrd.display().to_string()]);
        args.extend(["-append".into(), cmdline.trim().to_string()]);
        Ok(args)
    }
}

/// `--mem` checked, kept in QEMU's syntax.
fn parse_mem_arg(text: &str) -> Result<String, String> {
    machine_check::parse_mem(text).map(|_| text.trim().to_string())
}

/// QEMU's version (`7.2.22 (Debian ...)`), for benchmark records; `None` if
/// it cannot be asked.
pub fn version() -> Option<String> {
    let output = Command::new(QEMU).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next()?.trim();
    Some(first.strip_prefix("QEMU emulator version ").unwrap_or(first).to_string())
}

/// Whether serial output is shown while the guest runs.
#[derive(Clone, Copy)]
pub enum Echo {
    Yes,
    Indented,
    /// Nothing shown; the caller reads `Outcome::lines`.
    No,
}

/// How a boot ended.
pub struct Outcome {
    pub lines: Vec<String>,
    /// What the guest reported through the exit device, if anything.
    pub exit: Option<GuestExit>,
    /// QEMU's own exit status; `None` if xtask killed it.
    pub status: Option<i32>,
    pub timed_out: Option<Duration>,
    /// Wall time from starting QEMU to the banner line.
    pub boot_to_banner: Option<Duration>,
    /// What QEMU itself wrote on its standard error.
    pub qemu_said: Vec<String>,
}

impl Outcome {
    pub fn report(&self) {
        if let Some(elapsed) = self.boot_to_banner {
            eprintln!("xtask: boot to banner: {} ms (wall clock, QEMU start included)", elapsed.as_millis());
        }
        match (self.exit, self.timed_out, self.status) {
            (Some(GuestExit::Success), _, _) => eprintln!("xtask: guest exited: success"),
            (Some(GuestExit::Failure), _, _) => eprintln!("xtask: guest exited: FAILURE"),
            (None, Some(limit), _) => eprintln!("xtask: guest killed after the time limit of {} s", limit.as_secs()),
            (None, None, status) => match qemu_error::failure(&self.qemu_said) {
                Some(failure) => eprintln!(
                    "xtask: QEMU failed ({}): {failure}",
                    status.map_or("killed by a signal".into(), |code| format!("status {code}"))
                ),
                None => eprintln!("xtask: QEMU ended without a guest verdict (status {status:?})"),
            },
        }
    }

    pub fn into_result(self) -> Result<()> {
        match (self.exit, self.timed_out, qemu_error::failure(&self.qemu_said)) {
            (Some(GuestExit::Success), _, _) => Ok(()),
            (None, None, Some(failure)) => bail!("QEMU failed: {failure}"),
            _ => bail!("the guest did not report success"),
        }
    }
}

/// Boots the kernel with `cmdline` and waits for it to leave, or kills it
/// at the time limit.
pub fn boot(artifacts: &Artifacts, machine: &MachineArgs, cmdline: &str, echo: Echo) -> Result<Outcome> {
    boot_files(&artifacts.kernel, &artifacts.image, machine, cmdline, echo)
}

/// [`boot`] for any kernel and initial RAM disk (the Linux baseline of
/// `bench fork --linux`).
pub fn boot_files(kernel: &Path, initrd: &Path, machine: &MachineArgs, cmdline: &str, echo: Echo) -> Result<Outcome> {
    let args = machine.qemu_args(kernel, initrd, cmdline)?;
    if machine.gdb {
        eprintln!("xtask: QEMU waits for gdb: target remote :1234 (symbols: {})", kernel.display());
    }
    let mut qemu = Command::new(QEMU);
    qemu.args(&args);
    let limit = (!machine.gdb).then(|| Duration::from_secs(machine.timeout));
    watch(qemu, limit, echo)
}

/// Runs `qemu`, collecting its serial console (standard output) line by line
/// and what it says on standard error, until it exits or `limit` passes.
fn watch(mut qemu: Command, limit: Option<Duration>, echo: Echo) -> Result<Outcome> {
    let started = Instant::now();
    let mut child =
        qemu.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().with_context(|| format!("starting {QEMU}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send((line, started.elapsed())).is_err() {
                break;
            }
        }
    });
    let complaints = std::thread::spawn(move || {
        let mut said = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("xtask: QEMU said: {line}");
            said.push(line);
        }
        said
    });
    let mut lines = Vec::new();
    let mut boot_to_banner = None;
    let mut collect = |(line, at): (String, Duration)| {
        match echo {
            Echo::Yes => println!("{line}"),
            Echo::Indented => println!("    | {line}"),
            Echo::No => {}
        }
        if boot_to_banner.is_none() && line.contains(BANNER) {
            boot_to_banner = Some(at);
        }
        lines.push(line);
    };
    let status = loop {
        while let Ok(item) = lines_rx.try_recv() {
            collect(item);
        }
        if let Some(status) = child.wait_timeout(Duration::from_millis(20))? {
            break Some(status);
        }
        if limit.is_some_and(|limit| started.elapsed() > limit) {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
    };
    reader.join().ok();
    lines_rx.try_iter().for_each(&mut collect);
    let qemu_said = complaints.join().unwrap_or_default();
    let code = status.and_then(|s| s.code());
    Ok(Outcome {
        lines,
        exit: code.and_then(GuestExit::from_qemu_status),
        status: code,
        timed_out: if status.is_none() { limit } else { None },
        boot_to_banner,
        qemu_said,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for QEMU that fails the way QEMU does on a bad option.
    fn failing_qemu(stderr: &str, status: u8) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", &format!("echo 'serial line'; echo \"$0\" >&2; exit {status}"), stderr]);
        command
    }

    #[test]
    fn qemus_own_error_is_the_reported_failure() {
        let said =
            "qemu-system-x86_64: -serial file:/no/such/dir/t.trace: Could not open '/no/such/dir/t.trace': No such file or directory";
        let outcome = watch(failing_qemu(said, 1), Some(Duration::from_secs(30)), Echo::No).unwrap();
        assert_eq!(outcome.lines, ["serial line"]);
        assert_eq!(outcome.status, Some(1));
        assert_eq!(outcome.qemu_said, [said]);
        let error = format!("{:#}", outcome.into_result().unwrap_err());
        assert!(error.starts_with("QEMU failed: QEMU's own error: -serial file:/no/such/dir/t.trace: Could not open"), "{error}");
    }

    #[test]
    fn a_guest_verdict_wins_over_qemus_warnings() {
        let outcome =
            watch(failing_qemu("qemu-system-x86_64: warning: TCG doesn't support requested feature", 33), None, Echo::No).unwrap();
        assert_eq!(outcome.exit, Some(GuestExit::Success));
        outcome.into_result().unwrap();
    }
}
