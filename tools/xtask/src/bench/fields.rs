//! The `key=value` words of a guest's result line (forkbench's `fork
//! pages=...`, the page-fault lines' `pagefault kind=...`): found by the
//! line's prefix, each key once, read as whole numbers, reals or `-` (not
//! measured), with errors that quote the line.

use std::collections::HashMap;

use anyhow::{Error, Result, anyhow};

/// One line's words after its leading word (`fork`, `pagefault`).
pub(super) struct Fields<'a> {
    line: &'a str,
    /// The words in the line's order.
    words: Vec<(&'a str, &'a str)>,
    by_key: HashMap<&'a str, &'a str>,
}

impl<'a> Fields<'a> {
    /// The fields of `line` if it contains `prefix` (`LEAD first=`): the
    /// words from there on, without `LEAD`. `Ok(None)` for another line.
    pub(super) fn of(line: &'a str, prefix: &str) -> Result<Option<Self>> {
        let Some(at) = line.find(prefix) else { return Ok(None) };
        let lead = prefix.split_whitespace().next().unwrap_or_default();
        let rest = line[at..].trim_end().strip_prefix(lead).unwrap_or_default();
        let mut fields = Self { line: line.trim_end(), words: Vec::new(), by_key: HashMap::new() };
        for word in rest.split_whitespace() {
            let (key, value) = word.split_once('=').ok_or_else(|| fields.malformed(format!("`{word}` is not key=value")))?;
            if fields.by_key.insert(key, value).is_some() {
                return Err(fields.malformed(format!("`{key}` appears twice")));
            }
            fields.words.push((key, value));
        }
        Ok(Some(fields))
    }

    pub(super) fn malformed(&self, why: String) -> Error {
        anyhow!("malformed benchmark line `{}`: {why}", self.line)
    }

    pub(super) fn text(&self, key: &str) -> Result<&'a str> {
        self.by_key.get(key).copied().ok_or_else(|| self.malformed(format!("no `{key}=`")))
    }

    fn number<T: std::str::FromStr>(&self, key: &str, value: &str) -> Result<T> {
        value.parse().map_err(|_| self.malformed(format!("`{key}={value}` is not a whole number")))
    }

    pub(super) fn int(&self, key: &str) -> Result<u64> {
        self.number(key, self.text(key)?)
    }

    pub(super) fn small(&self, key: &str) -> Result<u32> {
        self.number(key, self.text(key)?)
    }

    pub(super) fn real(&self, key: &str) -> Result<f64> {
        let value = self.text(key)?;
        value.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| self.malformed(format!("`{key}={value}` is not a number")))
    }

    /// A whole number, or `None` for `-` (not measured).
    pub(super) fn counted(&self, key: &str) -> Result<Option<u64>> {
        match self.text(key)? {
            "-" => Ok(None),
            _ => self.int(key).map(Some),
        }
    }

    /// The whole-number fields whose key starts with `prefix`, in the
    /// line's order, named without it.
    pub(super) fn prefixed(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.words
            .iter()
            .filter_map(|(key, value)| Some((key.strip_prefix(prefix)?, *value)))
            .map(|(name, value)| Ok((name.to_string(), self.number(name, value)?)))
            .collect()
    }
}

/// The kernel's address-space switches and TLB flushes per operation
/// (`switches_per_X=`, `flushes_per_X=`, `page_flushes_per_X=`,
/// `ipis_per_X=`), summed over every CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub(super) struct TlbPer {
    pub(super) switches: f64,
    pub(super) flushes: f64,
    pub(super) page_flushes: f64,
    pub(super) ipis: f64,
}

impl TlbPer {
    /// Reads them per `per` (`fork`, `fault`).
    pub(super) fn read(fields: &Fields, per: &str) -> Result<Self> {
        Ok(Self {
            switches: fields.real(&format!("switches_per_{per}"))?,
            flushes: fields.real(&format!("flushes_per_{per}"))?,
            page_flushes: fields.real(&format!("page_flushes_per_{per}"))?,
            ipis: fields.real(&format!("ipis_per_{per}"))?,
        })
    }
}
