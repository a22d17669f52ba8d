//! Capabilities as user space sees them: object kinds, rights, thread states,
//! and the slots of the boot capabilities init receives.

/// Kinds of kernel object a capability can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjectKind {
    Thread = 1,
    AddressSpace = 2,
    CSpace = 3,
    Endpoint = 4,
    Notification = 5,
    /// The right to answer one call, saved by `ReplySave`.
    Reply = 6,
    IoPorts = 7,
    PhysRange = 8,
    /// One interrupt line, delivered as notification bits.
    IrqLine = 9,
}

impl ObjectKind {
    pub fn from_raw(raw: u64) -> Option<Self> {
        use ObjectKind::*;
        [Thread, AddressSpace, CSpace, Endpoint, Notification, Reply, IoPorts, PhysRange, IrqLine]
            .into_iter()
            .find(|kind| *kind as u64 == raw)
    }

    /// Whether user space may create this kind with `Create`.
    pub const fn creatable(self) -> bool {
        matches!(self, Self::Thread | Self::AddressSpace | Self::CSpace | Self::Endpoint | Self::Notification)
    }
}

/// Rights a capability carries, as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights(pub u8);

impl Rights {
    pub const NONE: Self = Self(0);
    /// Receive on an endpoint, wait on a notification, read memory, query.
    pub const READ: Self = Self(1);
    /// Send on an endpoint, signal a notification, write memory, modify.
    pub const WRITE: Self = Self(2);
    /// Transfer capabilities over an endpoint; map executable memory.
    pub const GRANT: Self = Self(4);
    /// Derive new capabilities from this one (copy, mint, revoke).
    pub const DERIVE: Self = Self(8);
    pub const ALL: Self = Self(15);

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
}

/// Kernel services a capability table's threads may use, beyond what their
/// capabilities allow: a table starts with its creator's and can only lose
/// them (`TableRestrict`).
pub mod privilege {
    /// `DebugWrite` to the kernel console.
    pub const CONSOLE: u8 = 1;
    /// `KernelInfo`.
    pub const KERNEL_INFO: u8 = 2;
    /// `TraceName` (with the write right on the object named).
    pub const TRACE: u8 = 4;
    pub const ALL: u8 = CONSOLE | KERNEL_INFO | TRACE;
}

/// Number of slots in every capability table.
pub const CSPACE_SLOTS: usize = 256;

/// Where init finds its boot capabilities.
pub mod boot_slot {
    /// Init's own thread.
    pub const THREAD: u64 = 1;
    pub const ADDRESS_SPACE: u64 = 2;
    pub const CSPACE: u64 = 3;
    /// The serial console's I/O ports (COM1).
    pub const CONSOLE_PORTS: u64 = 4;
    /// The QEMU debug-exit port.
    pub const EXIT_PORT: u64 = 5;
    /// The boot image (read-only).
    pub const BOOT_IMAGE: u64 = 6;
    /// The PIT's I/O ports (0x40..0x43) and its interrupt line (ISA IRQ 0).
    pub const PIT_PORTS: u64 = 7;
    pub const PIT_IRQ: u64 = 8;
    /// COM1's interrupt line (ISA IRQ 4).
    pub const SERIAL_IRQ: u64 = 9;
    /// First of the PhysRanges of free RAM; their count is init's start argument.
    pub const FIRST_RAM: u64 = 16;
    /// First slot init may use freely.
    pub const FIRST_FREE: u64 = 64;
}

/// A thread's state as `ThreadState` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ThreadState {
    Inactive = 0,
    Ready = 1,
    Running = 2,
    Blocked = 3,
    Suspended = 4,
    Dead = 5,
}

impl ThreadState {
    pub fn from_raw(raw: u64) -> Option<Self> {
        use ThreadState::*;
        [Inactive, Ready, Running, Blocked, Suspended, Dead].into_iter().find(|s| *s as u64 == raw)
    }
}

/// How the kernel sizes one kind's pool from the RAM the boot loader
/// reported: one object per `mib_per_object` MiB of usable RAM, never fewer
/// than `floor` nor more than `ceiling` (0 `mib_per_object`: always
/// `floor`). `KernelInfo(kind)` reports the capacity it chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSize {
    pub floor: u64,
    pub mib_per_object: u64,
    pub ceiling: u64,
}

impl ObjectKind {
    /// The sizing rule of this kind's pool.
    pub const fn pool_size(self) -> PoolSize {
        let (floor, mib_per_object, ceiling) = match self {
            ObjectKind::Thread | ObjectKind::Endpoint => (128, 4, 32_768),
            ObjectKind::AddressSpace | ObjectKind::CSpace => (32, 16, 4096),
            ObjectKind::Notification => (128, 8, 32_768),
            ObjectKind::Reply | ObjectKind::PhysRange => (64, 8, 32_768),
            ObjectKind::IoPorts | ObjectKind::IrqLine => (8, 0, 8),
        };
        PoolSize { floor, mib_per_object, ceiling }
    }
}
