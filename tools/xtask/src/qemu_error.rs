//! What QEMU's own complaints mean: QEMU reports a bad option, a file it
//! cannot open or an accelerator it cannot start on its standard error, as
//! lines `qemu-system-x86_64: ...`. This file turns those lines into the one
//! reason xtask gives, naming a missing accelerator as such.

use crate::prereq::QEMU;

/// Why QEMU failed, from the lines it wrote on standard error; `None` when
/// it said nothing that reads as an error (warnings alone are not one).
pub fn failure(said: &[String]) -> Option<String> {
    let errors: Vec<&str> = said
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && !line.contains("warning:"))
        .map(|line| line.strip_prefix(QEMU).and_then(|rest| rest.strip_prefix(':')).map_or(line, str::trim))
        .collect();
    if errors.is_empty() {
        return None;
    }
    let text = errors.join("; ");
    let lower = text.to_lowercase();
    if lower.contains("kvm") {
        let what = if lower.contains("failed to initialize") || lower.contains("could not access") { "is not available" } else { "failed" };
        return Some(format!("the accelerator kvm {what} on this machine (QEMU: {text}); use --accel tcg, the default"));
    }
    Some(format!("QEMU's own error: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quiet_or_warning_only_is_no_failure() {
        assert_eq!(failure(&[]), None);
        assert_eq!(failure(&lines(&["qemu-system-x86_64: warning: host doesn't support requested feature"])), None);
    }

    #[test]
    fn an_option_error_is_quoted_as_qemus() {
        let said = lines(&["qemu-system-x86_64: -m 1X: Parameter 'size' expects a non-negative number below 2^64"]);
        let failure = failure(&said).unwrap();
        assert_eq!(failure, "QEMU's own error: -m 1X: Parameter 'size' expects a non-negative number below 2^64");
    }

    #[test]
    fn a_missing_accelerator_is_named() {
        let said = lines(&[
            "Could not access KVM kernel module: No such file or directory",
            "qemu-system-x86_64: failed to initialize kvm: No such file or directory",
        ]);
        let failure = failure(&said).unwrap();
        assert!(failure.starts_with("the accelerator kvm is not available") && failure.contains("--accel tcg"), "{failure}");
        // Nested KVM that starts and then breaks: QEMU aborts in its KVM code.
        let said = lines(&[
            "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69",
            "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed.",
        ]);
        assert!(super::failure(&said).unwrap().starts_with("the accelerator kvm failed on this machine"));
    }
}
