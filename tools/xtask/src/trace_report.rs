//! After a traced boot: where the trace went, how many records it holds and
//! how many were lost on the way (`trace::Summary`), so a user knows at once
//! whether `ipctrace` will see the whole run.

use std::path::Path;

use anyhow::{Context, Result};
use trace::Summary;

/// Reads the capture `file`, prints its summary line and returns it.
pub fn report(file: &Path) -> Result<Summary> {
    let bytes = std::fs::read(file).with_context(|| format!("reading the trace {}", file.display()))?;
    let summary = Summary::of(&bytes);
    eprintln!("xtask: {}", line(file, bytes.len(), &summary));
    Ok(summary)
}

fn line(file: &Path, bytes: usize, summary: &Summary) -> String {
    let mut text = format!(
        "trace: {} ({} KiB): {} records from {} CPUs, {} lost, {} messages ({} KiB of payload)",
        file.display(),
        bytes.div_ceil(1024),
        summary.records,
        summary.cpus,
        summary.lost(),
        summary.messages,
        summary.payload_bytes.div_ceil(1024)
    );
    if summary.damaged_frames > 0 {
        text.push_str(&format!(", {} damaged frames", summary.damaged_frames));
    }
    if !summary.hello {
        text.push_str(", no Hello frame (was tracing ever on?)");
    }
    if summary.is_whole() {
        text.push_str(&format!("; read it with `cargo run -p ipctrace -- {} stats`", file.display()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_where_how_many_and_the_loss() {
        let whole = Summary { records: 32_000, cpus: 2, hello: true, messages: 20_000, payload_bytes: 60_000, ..Summary::default() };
        let text = line(Path::new("t.trace"), 1_400_000, &whole);
        assert_eq!(
            text,
            "trace: t.trace (1368 KiB): 32000 records from 2 CPUs, 0 lost, 20000 messages (59 KiB of payload); read it with `cargo run -p ipctrace -- t.trace stats`"
        );
        let lossy = Summary { records: 9_000, cpus: 2, missing: 22_000, damaged_frames: 1, hello: true, ..Summary::default() };
        assert_eq!(
            line(Path::new("t.trace"), 2048, &lossy),
            "trace: t.trace (2 KiB): 9000 records from 2 CPUs, 22000 lost, 0 messages (0 KiB of payload), 1 damaged frames"
        );
    }
}
