//! `ipctrace`: decode and analyse the IPC trace the kernel writes to its
//! second serial port.
//!
//! This file owns the command line only; each command lives in its own module
//! and works on a [`load::Trace`], which never fails on damaged input.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod calls;
mod chain;
mod check;
mod chrome;
mod dump;
mod frame_history;
mod load;
mod message;
mod names;
mod perfetto;
mod protobuf;
mod stats;
#[cfg(test)]
mod synth;

use load::Trace;

#[derive(Parser)]
#[command(about = "Decode and analyse IPC traces captured from the kernel's trace port")]
struct Cli {
    /// The capture: raw bytes from the second serial port.
    file: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One line per record, in time order.
    Dump {
        /// Records where this thread is source or destination: its name (as
        /// dump prints it), `t<id>.<generation>` or its id.
        #[arg(long, value_name = "NAME")]
        thread: Option<String>,
        /// Records on this endpoint: its name, `ep<id>` or its id.
        #[arg(long, value_name = "NAME")]
        endpoint: Option<String>,
        #[arg(long)]
        cpu: Option<u16>,
        /// send, recv, call, reply, reply-recv, notify-signal, notify-wait,
        /// fault, fault-reply or kill.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<trace::Kind>,
        /// Start of the window, in ns since the first record.
        #[arg(long)]
        from_ns: Option<u64>,
        /// End of the window (inclusive), in ns since the first record.
        #[arg(long)]
        to_ns: Option<u64>,
    },
    /// Counts, bytes, errors and latencies per endpoint and label, and per client.
    Stats {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// The tree of calls that call CALLID caused (CPU/SEQ as dump prints it).
    Chain {
        #[arg(value_parser = names::parse_call_id)]
        call_id: u64,
    },
    /// Frame N of the pool: its count through the memory server's messages
    /// (hand-out, reference batches, frees), and whether a decrement came
    /// before its increment; `all` checks every frame the messages name.
    Frame {
        #[arg(value_parser = parse_frame, value_name = "N|all")]
        frame: Frames,
        /// Every change of a count travels in a message (strategy
        /// atomic-ipc): a count below zero is then a decrement before its
        /// increment, and the exit status 1.
        #[arg(long)]
        exact: bool,
    },
    /// Gaps, lost records, unpaired calls, time going backwards, damage.
    /// Exits with status 1 when anything is found.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Write the trace for a viewer.
    Export {
        /// Perfetto TrackEvent protobuf (open in ui.perfetto.dev).
        #[arg(long)]
        perfetto: Option<PathBuf>,
        /// Chrome trace-event JSON (chrome://tracing, Perfetto).
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn parse_kind(s: &str) -> Result<trace::Kind, String> {
    trace::Kind::from_name(s).ok_or_else(|| {
        let all: Vec<&str> = trace::Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown kind {s:?}; one of {}", all.join(", "))
    })
}

/// Which frames `frame` follows.
#[derive(Clone, Copy, Debug)]
enum Frames {
    One(u64),
    All,
}

fn parse_frame(s: &str) -> Result<Frames, String> {
    match s {
        "all" => Ok(Frames::All),
        _ => s.parse().map(Frames::One).map_err(|_| format!("`{s}` is not a frame number (or `all`)")),
    }
}

/// Prints `lines` to standard output; a reader that closed the pipe (`dump |
/// head`) ends the output quietly, any other write error is one.
fn print_lines<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = lines.into_iter().try_for_each(|l| writeln!(out, "{}", l.as_ref())).and_then(|()| out.flush());
    match written {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error).context("writing to standard output"),
        _ => Ok(()),
    }
}

fn damage_note(t: &Trace) {
    if t.decode.bad_frames > 0 {
        eprintln!("ipctrace: skipped {} damaged frames ({} bytes); `check` lists them", t.decode.bad_frames, t.decode.bytes_skipped);
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let t = Trace::load(&cli.file)?;
    match cli.cmd {
        Cmd::Dump { thread, endpoint, cpu, kind, from_ns, to_ns } => {
            damage_note(&t);
            let f = dump::Filter { thread, endpoint, cpu, kind, from_ns, to_ns };
            print_lines(dump::dump(&t, &f))?;
        }
        Cmd::Stats { json } => {
            damage_note(&t);
            let st = stats::Stats::of(&t);
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print!("{}", st.render());
            }
        }
        Cmd::Chain { call_id } => {
            damage_note(&t);
            let calls = calls::Calls::pair(&t);
            let Some(root) = chain::chain(&t, &calls, call_id) else {
                bail!("no call with id {} in {}", names::call_id(call_id), cli.file.display());
            };
            print_lines(chain::render(&t, &calls, &root).lines())?;
        }
        Cmd::Frame { frame, exact } => {
            damage_note(&t);
            let requests = frame_history::Requests::of(&t);
            let below_zero = match frame {
                Frames::One(frame) => {
                    let history = frame_history::History::of(&requests, frame);
                    print_lines(history.render(&t, frame, exact).lines())?;
                    history.below_zero()
                }
                Frames::All => {
                    let all = frame_history::History::all(&requests);
                    print_lines(frame_history::render_all(&t, &all, exact).lines())?;
                    all.values().map(frame_history::History::below_zero).sum()
                }
            };
            if exact && below_zero > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Check { json } => {
            let rep = check::Report::of(&t);
            if json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                println!("{}", rep.render(&t));
            }
            if rep.problems() > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Export { perfetto, json } => {
            if perfetto.is_none() && json.is_none() {
                bail!("export needs --perfetto FILE and/or --json FILE");
            }
            damage_note(&t);
            if let Some(path) = perfetto {
                let bytes = perfetto::export(&t);
                std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = json {
                let text = serde_json::to_string(&chrome::export(&t))?;
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ipctrace: {e:#}");
            ExitCode::from(2)
        }
    }
}
