//! What xtask checks about a machine's options before QEMU starts, so that a
//! bad value is refused with the reason and the valid range instead of
//! booting something else or failing inside QEMU: the CPU count, the memory
//! size, the trace file and the accelerator.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::qemu::{Accel, MachineArgs};

/// Most CPUs a boot may have: the process servers run one thread per CPU, at
/// most 8 (`slot::MAX_SERVERS` of `servers/process`), and init starts them
/// on the first 8 only.
pub const MAX_SMP: usize = 8;

/// The device KVM needs.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// Parses `--smp`: a CPU count within `1..=MAX_SMP`.
pub fn parse_smp(text: &str) -> Result<usize, String> {
    let cpus: usize = text.trim().parse().map_err(|_| format!("`{text}` is not a CPU count; expected a number from 1 to {MAX_SMP}"))?;
    check_smp(cpus).map(|()| cpus)
}

fn check_smp(cpus: usize) -> Result<(), String> {
    if (1..=MAX_SMP).contains(&cpus) {
        Ok(())
    } else {
        Err(format!("{cpus} CPUs is outside what the system supports: 1 to {MAX_SMP} (the process servers run on at most {MAX_SMP} CPUs)"))
    }
}

/// Parses `--mem` in QEMU's syntax (a number, optionally with a fraction,
/// and a suffix K, M, G or T; no suffix means MiB) into bytes, refusing what
/// QEMU would refuse and sizes of zero.
pub fn parse_mem(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a memory size; expected a number with an optional K, M, G or T suffix, such as 512M or 2G");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let shift = match suffix {
        "" | "M" | "m" => 20,
        "K" | "k" => 10,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return Err(bad()),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') || number.matches('.').count() > 1 {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * (1u64 << shift) as f64;
    if bytes < 1.0 || bytes >= u64::MAX as f64 {
        return Err(format!("`{text}` is not a usable memory size"));
    }
    Ok(bytes as u64)
}

/// Checks every option of `machine`: the CPU count and the memory size
/// (which callers other than the command line may have set), the trace file
/// (created empty, so that an unwritable path fails here), and the
/// accelerator.
pub fn check(machine: &MachineArgs) -> Result<()> {
    check_smp(machine.smp).map_err(anyhow::Error::msg).context("--smp")?;
    parse_mem(&machine.mem).map_err(anyhow::Error::msg).context("--mem")?;
    if let Some(file) = &machine.trace {
        check_trace_file(file)?;
    }
    check_accel(machine.accel, Path::new(KVM_DEVICE))?;
    if machine.icount && machine.accel != Accel::Tcg {
        bail!("--icount needs --accel tcg");
    }
    Ok(())
}

/// The trace goes to QEMU's `-serial file:PATH`: QEMU's option syntax takes
/// a comma as the start of the next option, and QEMU cannot create a file in
/// a directory that is missing or not writable.
pub fn check_trace_file(file: &Path) -> Result<()> {
    if file.to_string_lossy().contains(',') {
        bail!("--trace {}: QEMU's -serial option cannot take a path with a comma", file.display());
    }
    std::fs::File::create(file).with_context(|| format!("--trace {}: cannot write the trace file", file.display()))?;
    Ok(())
}

/// TCG is always there; KVM needs `device` to open for reading and writing.
pub fn check_accel(accel: Accel, device: &Path) -> Result<()> {
    match accel {
        Accel::Tcg => Ok(()),
        Accel::Kvm => match std::fs::OpenOptions::new().read(true).write(true).open(device) {
            Ok(_) => Ok(()),
            Err(error) => bail!(
                "--accel kvm: the accelerator is missing on this machine ({}: {error}); use --accel tcg, the default",
                device.display()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smp_outside_the_range_is_refused_with_the_range() {
        assert_eq!(parse_smp("1"), Ok(1));
        assert_eq!(parse_smp("8"), Ok(8));
        for bad in ["0", "9", "20"] {
            let error = parse_smp(bad).unwrap_err();
            assert!(error.contains("1 to 8"), "{error}");
        }
        assert!(parse_smp("two").unwrap_err().contains("not a CPU count"));
        assert!(parse_smp("-1").is_err());
    }

    #[test]
    fn mem_takes_qemu_sizes_and_refuses_the_rest() {
        assert_eq!(parse_mem("512M"), Ok(512 << 20));
        assert_eq!(parse_mem("512"), Ok(512 << 20));
        assert_eq!(parse_mem("2G"), Ok(2 << 30));
        assert_eq!(parse_mem("1.5g"), Ok(3 << 29));
        assert_eq!(parse_mem("65536K"), Ok(64 << 20));
        for bad in ["", "1X", "G", "lots", "1.2.3M", ".5G", "1 G", "0", "0M", "-1G"] {
            assert!(parse_mem(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_unwritable_trace_path_is_named() {
        let missing = std::env::temp_dir().join("xtask-no-such-directory").join("t.trace");
        let error = format!("{:#}", check_trace_file(&missing).unwrap_err());
        assert!(error.contains("cannot write the trace file") && error.contains("xtask-no-such-directory"), "{error}");
        let comma = std::env::temp_dir().join("a,b.trace");
        assert!(format!("{:#}", check_trace_file(&comma).unwrap_err()).contains("comma"));
        let fine = std::env::temp_dir().join(format!("xtask-check-{}.trace", std::process::id()));
        check_trace_file(&fine).unwrap();
        std::fs::remove_file(fine).unwrap();
    }

    #[test]
    fn a_missing_accelerator_is_named() {
        let absent = Path::new("/nonexistent/kvm");
        let error = format!("{:#}", check_accel(Accel::Kvm, absent).unwrap_err());
        assert!(error.contains("accelerator is missing") && error.contains("/nonexistent/kvm") && error.contains("--accel tcg"), "{error}");
        check_accel(Accel::Tcg, absent).unwrap();
    }

    #[test]
    fn check_refuses_a_machine_built_in_code() {
        let machine = MachineArgs::tcg(20, 1);
        assert!(format!("{:#}", check(&machine).unwrap_err()).contains("1 to 8"));
        let machine = MachineArgs { mem: "lots".into(), ..MachineArgs::tcg(2, 1) };
        assert!(format!("{:#}", check(&machine).unwrap_err()).contains("--mem"));
        check(&MachineArgs::tcg(2, 1)).unwrap();
    }
}
