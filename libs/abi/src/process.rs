//! What a process started by a process server can rely on: the capability
//! slot of its server, the start registers, and the refcount strategy names
//! shared by the kernel command line, init and the servers.

/// Slot of a process's table holding its process server's endpoint (badged
/// with its pid).
pub const SERVER_SLOT: u64 = 1;

/// `rsi` at the entry of a process started by a process server (`rdi` is its
/// pid, `rdx` the argument of Spawn or Exec). The runtime reads it to know it
/// runs as a managed process, whose exits go to its server.
pub const START_MAGIC: u64 = 0x5052_4F43_4553_5321;

/// init's pid: the parent of the processes it spawns.
pub const INIT_PID: u32 = 1;

/// Exit status of a process killed by a fault its pager could not resolve.
pub const STATUS_FAULT: i32 = 139;
/// Exit status of a process killed because no frame was left for a page it
/// touched.
pub const STATUS_NO_MEMORY: i32 = 137;
/// Exit status of a process whose runtime panicked.
pub const STATUS_PANIC: i32 = 101;

/// How the memory and process servers count references to shared frames:
/// the strategies of `libs/refcount`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Strategy {
    /// The FTL OS deferred single-lock manager: owned frames uncounted,
    /// increments committed per fork, decrements buffered and batched.
    Deferred = 0,
    /// The baseline (kref): every frame counted, every change applied
    /// before the operation that made it returns.
    Atomic = 1,
    /// Linux percpu-ref.
    Percpu = 2,
    /// RadixVM's RefCache.
    RefCache = 3,
    /// PAYGO.
    Paygo = 4,
    /// Sloppy counters.
    Sloppy = 5,
    /// Java LongAdder-style striping.
    Striped = 6,
    /// SNZI.
    Snzi = 7,
    /// Biased reference counting.
    Biased = 8,
}

impl Strategy {
    pub const ALL: [Strategy; 9] = [
        Strategy::Deferred,
        Strategy::Atomic,
        Strategy::Percpu,
        Strategy::RefCache,
        Strategy::Paygo,
        Strategy::Sloppy,
        Strategy::Striped,
        Strategy::Snzi,
        Strategy::Biased,
    ];

    /// The name, as `libs/refcount` calls it.
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::Deferred => "deferred",
            Strategy::Atomic => "atomic",
            Strategy::Percpu => "percpu",
            Strategy::RefCache => "refcache",
            Strategy::Paygo => "paygo",
            Strategy::Sloppy => "sloppy",
            Strategy::Striped => "striped",
            Strategy::Snzi => "snzi",
            Strategy::Biased => "biased",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn from_index(index: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u64 == index)
    }

    /// Whether the process servers use the deferred client rules: frames held
    /// alone are uncounted (forked without a message), and decrements wait
    /// in a buffer. Every other strategy counts every frame and sends each
    /// change before the operation that made it returns.
    pub const fn defers(self) -> bool {
        matches!(self, Strategy::Deferred)
    }

    /// Whether a frame's count is one word of the shared counter table, so
    /// a process server reads it for `try_remove_unique` without IPC
    /// (deferred and atomic). The others keep per-core parts only the memory
    /// server can sum, and answer `TryRemoveUnique` requests.
    pub const fn table_readable(self) -> bool {
        matches!(self, Strategy::Deferred | Strategy::Atomic)
    }
}

/// The kernel command-line word that selects the strategy: `strategy=NAME`.
pub const STRATEGY_FLAG: &str = "strategy=";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for strategy in Strategy::ALL {
            assert_eq!(Strategy::from_name(strategy.name()), Some(strategy));
            assert_eq!(Strategy::from_index(strategy as u64), Some(strategy));
        }
        assert_eq!(Strategy::from_name("nonsense"), None);
    }
}
