//! Kernel command-line words that xtask composes from its own options (the
//! guest reads them through `abi::selftest::init_flags`), and the parsing of
//! those options, so that a bad name fails on the host before QEMU starts.

use abi::process::Strategy;

/// Parses a `--strategy` value: one of `Strategy::ALL`'s names.
pub fn parse_strategy(name: &str) -> Result<Strategy, String> {
    Strategy::from_name(name.trim()).ok_or_else(|| {
        let valid: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
        format!("unknown refcount strategy `{name}`; valid strategies: {}", valid.join(", "))
    })
}

/// The word that boots the guest under `strategy`: `strategy=NAME`.
pub fn strategy_word(strategy: Strategy) -> String {
    format!("{}{}", abi::process::STRATEGY_FLAG, strategy.name())
}

/// `words` joined by single spaces, empty ones dropped.
pub fn join<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words.into_iter().map(str::trim).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_parse_and_make_words() {
        for strategy in Strategy::ALL {
            assert_eq!(parse_strategy(strategy.name()), Ok(strategy));
        }
        assert_eq!(strategy_word(Strategy::Atomic), "strategy=atomic");
        let error = parse_strategy("bogus").unwrap_err();
        assert!(error.contains("bogus") && error.contains("deferred") && error.contains("atomic"), "{error}");
    }

    #[test]
    fn join_drops_empty_words() {
        assert_eq!(join(["", "bench=fork", " ", "icount "]), "bench=fork icount");
    }
}
