//! The serial protocol of the in-guest self-tests, shared by the guest (which
//! prints the markers) and `cargo xtask test` (which checks them).
//!
//! Each test prints `[selftest] pass NAME` or `[selftest] fail NAME: why`; the
//! run ends with `[selftest] done`. The host fails unless every expected name
//! passed, so a test that silently never ran is a failure too.

/// Prefix of every self-test marker line.
pub const MARKER: &str = "[selftest]";

/// The kernel command-line word that boots into self-test mode.
pub const CMDLINE_FLAG: &str = "selftest";

/// The kernel's own unit tests, in the order they run.
pub const KERNEL_TESTS: &[&str] = &["boot_info", "frame_alloc", "map_unmap", "exception", "timer_ticks", "ipi_pingpong", "smep_smap"];

/// The tests init runs from user mode, after the kernel's, in this order.
pub const USER_TESTS: &[&str] = &[
    "user_unknown_syscall",
    "user_bad_pointer",
    "user_bad_length",
    "user_heap",
    "thread_lifecycle",
    "preemption",
    "ipc_same_cpu",
    "ipc_cross_cpu",
    "ipc_payload_and_cap_transfer",
    "ipc_fast_path",
    "ipc_fallbacks",
    "reply_object",
    "notification",
    "irq_timer",
    "cap_rights",
    "cap_rights_matrix",
    "cap_badge",
    "cap_revoke",
    "memory_map",
    "memory_remap",
    "tlb_shootdown",
    "idle_cpu_shootdown",
    "phys_range_carve",
    "spawn_program",
    "memory_server",
    "fault_delivery",
    "fault_kill",
    "kernel_pool_exhaustion",
    "pools_from_ram",
    "protect_bounded",
    "priority_ceiling",
    "reply_grant",
    "exit_reported",
    "dead_server_releases_caller",
    "trace_drain_race",
    "privileges",
    "allowance",
    "cycle_reclaimed",
    "cycle_member_stops",
    "cycle_fault_endpoint",
    "cycle_dead_beside_live",
    "revoke_bound",
    "revoke_race",
    "syscall_fuzz",
];

/// The system tests init runs next, once it has started the memory and
/// process servers (`system_start`), in this order.
pub const SYSTEM_TESTS: &[&str] = &[
    "system_start",
    "process_protocol_errors",
    "memory_hostile",
    "apps_misc",
    "fork_cow",
    "cow_kernel",
    "fork_exec",
    "fork_tree",
    "fork_crash",
    "fork_oom",
    "forkbench_quick",
    "live_swap",
    "fork_bomb",
    "kill_tree",
    "process_restart",
    "memory_restart",
];

/// Bit 0 of init's start flags (in `rsi`): run the self-tests.
pub const INIT_FLAG_SELFTEST: u64 = 1;
/// Bit 1: run the IPC benchmark and print [`BENCH_MARKER`] lines.
pub const INIT_FLAG_BENCH_IPC: u64 = 2;
/// Bit 2: run the fork benchmark and print [`BENCH_MARKER`] lines.
pub const INIT_FLAG_BENCH_FORK: u64 = 4;
/// Bit 3: the machine counts instructions (`--icount`), so TSC deltas are
/// instruction counts.
pub const INIT_FLAG_ICOUNT: u64 = 8;
/// Bit 4: the demo runs its IPC round trips only (a short trace that must
/// come out whole).
pub const INIT_FLAG_DEMO_IPC: u64 = 16;
/// Bit 5: run the experiment matrix's workloads (`cargo xtask bench matrix`).
pub const INIT_FLAG_BENCH_MATRIX: u64 = 32;
/// Bit 6: a benchmark's short version (fewer rounds).
pub const INIT_FLAG_BENCH_QUICK: u64 = 64;
/// Bit 23: run the contention workloads (`cargo xtask bench contention`).
pub const INIT_FLAG_BENCH_CONTENTION: u64 = 1 << 23;
/// Bits 8..15: the refcount strategy's index (`crate::process::Strategy`).
pub const INIT_STRATEGY_SHIFT: u32 = 8;
/// Bits 16..21: 1 + the index of a strategy the demo swaps to live, 0 for
/// none.
pub const INIT_SWAP_SHIFT: u32 = 16;
/// Bit 22: the process servers resolve every copy-on-write fault
/// themselves; they do not arm the kernel to copy (`CowArm`).
pub const INIT_FLAG_COW_PAGER: u64 = 1 << 22;
/// The kernel command-line word for [`INIT_FLAG_COW_PAGER`].
pub const COW_PAGER_FLAG: &str = "cow=pager";
/// The kernel command-line word that has the demo swap to strategy NAME
/// while its forkbench runs: `swap=NAME`.
pub const SWAP_FLAG: &str = "swap=";
/// Bit 7: run the fuzzing campaign (`cargo xtask fuzz`) instead of the demo;
/// bits 25..40 its first seed, 41..56 its calls per seed in thousands,
/// 57..63 its number of seeds.
pub const INIT_FLAG_FUZZ: u64 = 128;
/// Bit 24: with the self-test, the system tests only. The user tests try
/// the kernel, which no refcount strategy changes (those that start a
/// memory server name their strategies themselves), so `cargo xtask test`
/// runs them in the boots under the manifest's strategy and skips them in
/// the boots that try every other strategy.
pub const INIT_FLAG_SYSTEM_ONLY: u64 = 1 << 24;
/// The kernel command-line word for [`INIT_FLAG_SYSTEM_ONLY`].
pub const SYSTEM_ONLY_FLAG: &str = "system_only";
/// The kernel command-line word for the campaign: `fuzz=SEED,THOUSANDS,SEEDS`.
pub const FUZZ_FLAG: &str = "fuzz=";
/// Prefix of the campaign's report lines.
pub const FUZZ_MARKER: &str = "[fuzz]";

/// A fuzzing campaign: `seeds` seeds from `seed`, `calls` calls each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuzzPlan {
    pub seed: u16,
    pub calls: u64,
    pub seeds: u8,
}

impl FuzzPlan {
    /// The plan in init's flags, if the command line asked for one.
    pub fn of(flags: u64) -> Option<Self> {
        (flags & INIT_FLAG_FUZZ != 0).then(|| Self {
            seed: (flags >> 25) as u16,
            calls: (flags >> 41 & 0xFFFF) * 1000,
            seeds: (flags >> 57) as u8,
        })
    }

    /// The flags for `fuzz=SEED,THOUSANDS,SEEDS`; 0 if the word is malformed.
    fn parse(value: &str) -> u64 {
        let mut fields = value.split(',').map(str::parse::<u64>);
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(Ok(seed)), Some(Ok(thousands)), Some(Ok(seeds)), None) if seed <= 0xFFFF && thousands <= 0xFFFF && seeds <= 0x7F => {
                INIT_FLAG_FUZZ | seed << 25 | thousands << 41 | seeds << 57
            }
            _ => 0,
        }
    }
}

/// The kernel command-line word that boots into the IPC benchmark.
pub const BENCH_IPC_FLAG: &str = "bench=ipc";
/// The kernel command-line word that boots into the fork benchmark.
pub const BENCH_FORK_FLAG: &str = "bench=fork";
/// The kernel command-line word that boots into the experiment matrix's
/// workloads.
pub const BENCH_MATRIX_FLAG: &str = "bench=matrix";
/// The kernel command-line word that boots into the contention workloads.
pub const BENCH_CONTENTION_FLAG: &str = "bench=contention";
/// The kernel command-line word that asks a benchmark for its short version.
pub const BENCH_QUICK_FLAG: &str = "quick";
/// The kernel command-line word that limits the demo to IPC round trips.
pub const DEMO_IPC_FLAG: &str = "demo=ipc";
/// The kernel command-line word that says the machine runs with `--icount`.
pub const ICOUNT_FLAG: &str = "icount";

/// Prefix of benchmark result lines:
/// `[bench] ipc NAME rounds=N mean_tsc=T tsc_hz=F`.
pub const BENCH_MARKER: &str = "[bench]";

/// The flags the kernel passes to init, from the words of its command line.
/// An unknown strategy name leaves the default (deferred).
pub fn init_flags<'a>(words: impl Iterator<Item = &'a str>) -> u64 {
    let mut flags = 0;
    for word in words {
        flags |= match word {
            CMDLINE_FLAG => INIT_FLAG_SELFTEST,
            BENCH_IPC_FLAG => INIT_FLAG_BENCH_IPC,
            BENCH_FORK_FLAG => INIT_FLAG_BENCH_FORK,
            BENCH_MATRIX_FLAG => INIT_FLAG_BENCH_MATRIX,
            BENCH_CONTENTION_FLAG => INIT_FLAG_BENCH_CONTENTION,
            BENCH_QUICK_FLAG => INIT_FLAG_BENCH_QUICK,
            ICOUNT_FLAG => INIT_FLAG_ICOUNT,
            DEMO_IPC_FLAG => INIT_FLAG_DEMO_IPC,
            SYSTEM_ONLY_FLAG => INIT_FLAG_SYSTEM_ONLY,
            COW_PAGER_FLAG => INIT_FLAG_COW_PAGER,
            _ => {
                let named = |prefix: &str| word.strip_prefix(prefix).and_then(crate::process::Strategy::from_name);
                let strategy = named(crate::process::STRATEGY_FLAG).map_or(0, |s| (s as u64) << INIT_STRATEGY_SHIFT);
                let fuzz = word.strip_prefix(FUZZ_FLAG).map_or(0, FuzzPlan::parse);
                strategy | fuzz | named(SWAP_FLAG).map_or(0, |s| (s as u64 + 1) << INIT_SWAP_SHIFT)
            }
        };
    }
    flags
}

/// The strategy named in init's flags.
pub fn strategy_of(flags: u64) -> crate::process::Strategy {
    crate::process::Strategy::from_index((flags >> INIT_STRATEGY_SHIFT) & 0xFF).unwrap_or(crate::process::Strategy::Deferred)
}

/// The strategy the demo swaps to live, if the command line names one.
pub fn swap_of(flags: u64) -> Option<crate::process::Strategy> {
    ((flags >> INIT_SWAP_SHIFT) & 0x3F).checked_sub(1).and_then(crate::process::Strategy::from_index)
}

/// What one marker line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker<'a> {
    Pass(&'a str),
    Fail { name: &'a str, reason: &'a str },
    Done,
}

impl<'a> Marker<'a> {
    /// Parses one line of serial output; `None` for lines that are not markers.
    pub fn parse(line: &'a str) -> Option<Self> {
        let rest = line.trim_end().strip_prefix(MARKER)?.trim_start();
        if rest == "done" {
            return Some(Self::Done);
        }
        if let Some(name) = rest.strip_prefix("pass ") {
            return Some(Self::Pass(name.trim()));
        }
        let failed = rest.strip_prefix("fail ")?;
        let (name, reason) = failed.split_once(':').unwrap_or((failed, ""));
        Some(Self::Fail { name: name.trim(), reason: reason.trim() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_marker_kind() {
        assert_eq!(Marker::parse("[selftest] pass frame_alloc"), Some(Marker::Pass("frame_alloc")));
        assert_eq!(
            Marker::parse("[selftest] fail ipi_pingpong: cpu 2 silent\r"),
            Some(Marker::Fail { name: "ipi_pingpong", reason: "cpu 2 silent" })
        );
        assert_eq!(Marker::parse("[selftest] done"), Some(Marker::Done));
        assert_eq!(Marker::parse("cpus online: 4"), None);
        assert_eq!(Marker::parse("[selftest] bogus"), None);
    }

    #[test]
    fn init_flags_come_from_the_command_line() {
        let flags = init_flags("selftest strategy=atomic bench=fork icount".split(' '));
        assert_eq!(flags & 0xFF, INIT_FLAG_SELFTEST | INIT_FLAG_BENCH_FORK | INIT_FLAG_ICOUNT);
        assert_eq!(strategy_of(flags), crate::process::Strategy::Atomic);
        assert_eq!(strategy_of(init_flags("strategy=bogus".split(' '))), crate::process::Strategy::Deferred);
        assert_eq!(swap_of(flags), None);
        let swap = init_flags("strategy=atomic swap=deferred".split(' '));
        assert_eq!((strategy_of(swap), swap_of(swap)), (crate::process::Strategy::Atomic, Some(crate::process::Strategy::Deferred)));
        let flags = init_flags("bench=matrix quick strategy=snzi".split(' '));
        assert_eq!(flags & 0xFF, INIT_FLAG_BENCH_MATRIX | INIT_FLAG_BENCH_QUICK);
        assert_eq!(strategy_of(flags), crate::process::Strategy::Snzi);
        let fuzz = init_flags("fuzz=7,250,4 strategy=atomic".split(' '));
        assert_eq!(FuzzPlan::of(fuzz), Some(FuzzPlan { seed: 7, calls: 250_000, seeds: 4 }));
        assert_eq!(strategy_of(fuzz), crate::process::Strategy::Atomic);
        assert_eq!(FuzzPlan::of(init_flags("fuzz=7,250".split(' '))), None);
        assert_eq!(FuzzPlan::of(init_flags("fuzz=70000,1,1".split(' '))), None);
        // Each mode its own bits: the contention suite is not a fuzz plan
        // or a swap, and no plan or swap turns it on.
        let contention = init_flags("bench=contention strategy=biased".split(' '));
        assert_ne!(contention & INIT_FLAG_BENCH_CONTENTION, 0);
        assert_eq!((FuzzPlan::of(contention), swap_of(contention)), (None, None));
        assert_eq!(strategy_of(contention), crate::process::Strategy::Biased);
        let swap_all = init_flags("swap=atomic-ipc fuzz=65535,65535,127".split(' '));
        assert_eq!(swap_all & (INIT_FLAG_BENCH_CONTENTION | INIT_FLAG_SYSTEM_ONLY), 0);
        assert_eq!(FuzzPlan::of(swap_all), Some(FuzzPlan { seed: 65535, calls: 65_535_000, seeds: 127 }));
        let system_only = init_flags("selftest system_only strategy=snzi".split(' '));
        assert_eq!(system_only & (INIT_FLAG_SELFTEST | INIT_FLAG_SYSTEM_ONLY), INIT_FLAG_SELFTEST | INIT_FLAG_SYSTEM_ONLY);
        assert_eq!((FuzzPlan::of(system_only), strategy_of(system_only)), (None, crate::process::Strategy::Snzi));
        // The pager-only switch is no swap, and the largest swap is not it.
        let pager = init_flags("bench=fork cow=pager".split(' '));
        assert_eq!((pager & INIT_FLAG_COW_PAGER, swap_of(pager)), (INIT_FLAG_COW_PAGER, None));
        let swap_last = init_flags("swap=atomic-ipc".split(' '));
        assert_eq!((swap_last & INIT_FLAG_COW_PAGER, swap_of(swap_last)), (0, Some(crate::process::Strategy::AtomicIpc)));
    }
}

/// Command-line words that make the kernel fail on purpose once it has
/// booted, so the host can prove that failures are reported and never hang.
pub mod crash {
    /// A kernel panic: message and location on serial, then a failing exit.
    pub const PANIC: &str = "crash=panic";
    /// An unhandled kernel page fault: the full exception report, then a failing exit.
    pub const FAULT: &str = "crash=fault";
    /// Idle forever: the host must kill the guest at its time limit.
    pub const HANG: &str = "crash=hang";
}
