//! How init tells the `apps` program which workload to run: the argument of
//! Spawn or Exec packs a mode and up to three parameters.

pub const FORKBENCH: u64 = 1;
pub const COW: u64 = 2;
pub const TREE: u64 = 3;
pub const OOM: u64 = 4;
pub const CRASH: u64 = 5;
pub const EXEC: u64 = 6;
pub const EXEC_TARGET: u64 = 7;
pub const MISC: u64 = 8;
/// A copy-on-write fault storm (a = pages, b = rounds, c = [`BENCH_ICOUNT`]).
pub const COW_STORM: u64 = 9;
/// fork + exit + wait on every CPU at once (a = rounds, c = [`BENCH_ICOUNT`]).
pub const PARALLEL_FORK: u64 = 10;
/// The TREE workload timed (a = depth, b = width, c = [`BENCH_ICOUNT`] and
/// the number of trees from bit [`TREE_ROUNDS_SHIFT`]).
pub const FORKTREE_BENCH: u64 = 11;
/// Workers on every CPU fork the same parent's pages at once (a = pages,
/// b = rounds, c = [`BENCH_ICOUNT`]).
pub const SHARED_FORK: u64 = 12;
/// Workers on every CPU take copy-on-write faults on the same parent's
/// pages at once (a = pages, b = rounds, c = [`BENCH_ICOUNT`]).
pub const SHARED_COW: u64 = 13;

/// A fork bomb (a = 0: every process forks until refused, then waits for
/// its children and exits; a = 1: it never stops, retrying refused forks,
/// until killed).
pub const FORKBOMB: u64 = 14;
/// Copy-on-write faults resolved by the kernel and by the pager (a = 1:
/// the kernel is armed to copy; 0: booted with `cow=pager`).
pub const COW_KERNEL: u64 = 15;

/// FORKBENCH's flag bit in parameter `b`: the machine counts instructions.
pub const FORKBENCH_ICOUNT: u64 = 1;
/// The flag bit in parameter `c` of COW_STORM, PARALLEL_FORK,
/// FORKTREE_BENCH, SHARED_FORK and SHARED_COW: the machine counts instructions (`--icount`), so their
/// TSC deltas are instruction counts and their lines print them.
pub const BENCH_ICOUNT: u64 = 1;
/// FORKTREE_BENCH: the number of trees timed sits in `c` from this bit (0
/// counts as 1).
pub const TREE_ROUNDS_SHIFT: u32 = 8;

/// The argument: `mode` in bits 0..8, `a` in 8..24, `b` in 24..40, `c` from 40.
pub const fn encode(mode: u64, a: u64, b: u64, c: u64) -> u64 {
    (mode & 0xFF) | (a & 0xFFFF) << 8 | (b & 0xFFFF) << 24 | c << 40
}

/// `(mode, a, b, c)` of an argument.
pub const fn decode(arg: u64) -> (u64, u64, u64, u64) {
    (arg & 0xFF, (arg >> 8) & 0xFFFF, (arg >> 24) & 0xFFFF, arg >> 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        assert_eq!(decode(encode(TREE, 3, 4, 5)), (TREE, 3, 4, 5));
        assert_eq!(decode(encode(FORKBENCH, 0xFFFF, FORKBENCH_ICOUNT, 0)), (FORKBENCH, 0xFFFF, 1, 0));
        let c = BENCH_ICOUNT | 5 << TREE_ROUNDS_SHIFT;
        assert_eq!(decode(encode(FORKTREE_BENCH, 2, 3, c)), (FORKTREE_BENCH, 2, 3, c));
    }
}
