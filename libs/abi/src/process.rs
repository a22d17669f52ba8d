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
/// Exit status of a process ended by a `Kill` request (its own or an
/// ancestor's).
pub const STATUS_KILLED: i32 = 143;

/// How the memory and process servers count references to shared frames,
/// and where the counting runs (its [`Placement`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Strategy {
    /// The FTL OS deferred single-lock manager in the memory server, fed by
    /// IPC batches: owned frames uncounted, count-1 shortcuts, decrements
    /// buffered per process server and flushed with try-lock semantics.
    Deferred = 0,
    /// The baseline (Linux `get_page`/`put_page`, kref): process servers do
    /// atomic read-modify-writes on one shared word per frame.
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
    /// FTL OS as written: the deferred manager's table and lock word in
    /// memory shared by the process servers, each flushing its own buffer
    /// under a try-lock.
    DeferredShared = 9,
    /// Every count change sent to the memory server over IPC before the
    /// operation that made it returns: the price of isolation.
    AtomicIpc = 10,
}

/// Where a strategy's operations run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In the memory server's one thread, fed by IPC batches.
    Server,
    /// In the process servers, each on its own CPU (`core` = that CPU),
    /// over tables in memory mapped writable into every process server.
    Shared,
}

impl Strategy {
    pub const ALL: [Strategy; 11] = [
        Strategy::Deferred,
        Strategy::Atomic,
        Strategy::Percpu,
        Strategy::RefCache,
        Strategy::Paygo,
        Strategy::Sloppy,
        Strategy::Striped,
        Strategy::Snzi,
        Strategy::Biased,
        Strategy::DeferredShared,
        Strategy::AtomicIpc,
    ];

    /// The name on the command line, in `image.toml` and in reports.
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
            Strategy::DeferredShared => "deferred-shared",
            Strategy::AtomicIpc => "atomic-ipc",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn from_index(index: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u64 == index)
    }

    pub const fn placement(self) -> Placement {
        match self {
            Strategy::Deferred | Strategy::AtomicIpc => Placement::Server,
            _ => Placement::Shared,
        }
    }

    /// Whether frames held alone are uncounted (`OWNED` in the counter
    /// table: forked and freed by their holder with no message) and
    /// decrements wait in a buffer: the deferred manager in the memory
    /// server.
    pub const fn defers(self) -> bool {
        matches!(self, Strategy::Deferred)
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
