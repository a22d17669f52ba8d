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

/// FORKBENCH's flag bit in parameter `b`: the machine counts instructions.
pub const FORKBENCH_ICOUNT: u64 = 1;

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
    }
}
