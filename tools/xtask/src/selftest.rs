//! Reading the guest's self-test markers (protocol in `abi::selftest`): every
//! expected test must report `pass`, and the run must end with `done`.

use abi::selftest::Marker;

/// What a boot's serial output says about its self-tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub passed: Vec<String>,
    /// Tests that reported failure, with the reason.
    pub failed: Vec<(String, String)>,
    /// Expected tests that never reported.
    pub missing: Vec<String>,
    pub done: bool,
}

impl Verdict {
    pub fn read(lines: &[String], expected: &[&str]) -> Self {
        let mut verdict = Self::default();
        for line in lines {
            match Marker::parse(line) {
                Some(Marker::Pass(name)) => verdict.passed.push(name.to_string()),
                Some(Marker::Fail { name, reason }) => verdict.failed.push((name.to_string(), reason.to_string())),
                Some(Marker::Done) => verdict.done = true,
                None => {}
            }
        }
        verdict.missing = expected
            .iter()
            .filter(|name| !verdict.passed.iter().any(|p| p == *name) && !verdict.failed.iter().any(|(f, _)| f == *name))
            .map(|name| name.to_string())
            .collect();
        verdict
    }

    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.missing.is_empty() && self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn all_passed_and_done_is_ok() {
        let verdict = Verdict::read(&lines("boot\n[selftest] pass a\n[selftest] pass b\n[selftest] done"), &["a", "b"]);
        assert!(verdict.ok());
        assert_eq!(verdict.passed, ["a", "b"]);
    }

    #[test]
    fn a_missing_test_fails_loudly() {
        let verdict = Verdict::read(&lines("[selftest] pass a\n[selftest] done"), &["a", "b"]);
        assert!(!verdict.ok());
        assert_eq!(verdict.missing, ["b"]);
    }

    #[test]
    fn a_failure_or_a_cut_off_run_is_not_ok() {
        let failed = Verdict::read(&lines("[selftest] fail a: no tick\n[selftest] done"), &["a"]);
        assert_eq!(failed.failed, [("a".to_string(), "no tick".to_string())]);
        assert!(!failed.ok());
        let cut_off = Verdict::read(&lines("[selftest] pass a"), &["a"]);
        assert!(!cut_off.ok());
    }
}
