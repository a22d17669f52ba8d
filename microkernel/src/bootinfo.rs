//! What the boot loader told the kernel, copied into kernel memory before the
//! kernel allocates anything: the physical memory map, the ACPI RSDP, the boot
//! image (`-initrd`) and the command line.
//!
//! Copies are bounded: entries past the capacity are dropped and counted, never
//! written out of bounds.

/// Most memory-map entries kept.
pub const MAX_REGIONS: usize = 64;
/// Longest command line kept, in bytes.
pub const MAX_CMDLINE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Bad,
}

#[derive(Clone, Copy, Debug)]
pub struct MemoryRegion {
    pub start: u64,
    pub len: u64,
    pub kind: RegionKind,
}

impl MemoryRegion {
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// A physical range the loader placed in memory (the boot image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysBlob {
    pub start: u64,
    pub len: u64,
}

pub struct BootInfo {
    regions: [MemoryRegion; MAX_REGIONS],
    region_count: usize,
    /// Memory-map entries that did not fit.
    pub regions_dropped: usize,
    /// Physical address of the ACPI RSDP, if the loader passed one.
    pub rsdp: Option<u64>,
    pub initrd: Option<PhysBlob>,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
}

impl BootInfo {
    pub const fn empty() -> Self {
        Self {
            regions: [MemoryRegion { start: 0, len: 0, kind: RegionKind::Reserved }; MAX_REGIONS],
            region_count: 0,
            regions_dropped: 0,
            rsdp: None,
            initrd: None,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
        }
    }

    pub fn push_region(&mut self, region: MemoryRegion) {
        match self.regions.get_mut(self.region_count) {
            Some(slot) => {
                *slot = region;
                self.region_count += 1;
            }
            None => self.regions_dropped += 1,
        }
    }

    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }

    pub fn usable(&self) -> impl Iterator<Item = &MemoryRegion> {
        self.regions().iter().filter(|r| r.kind == RegionKind::Usable)
    }

    /// Bytes of RAM the memory map calls usable.
    pub fn usable_bytes(&self) -> u64 {
        self.usable().map(|r| r.len).sum()
    }

    /// Copies at most [`MAX_CMDLINE`] bytes, cut at a character boundary.
    pub fn set_cmdline(&mut self, bytes: &[u8]) {
        let text = match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => core::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or(""),
        };
        let mut len = text.len().min(MAX_CMDLINE);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        self.cmdline[..len].copy_from_slice(&text.as_bytes()[..len]);
        self.cmdline_len = len;
    }

    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// Whether the command line contains `word` as a whole word.
    pub fn has_flag(&self, word: &str) -> bool {
        self.cmdline().split_ascii_whitespace().any(|w| w == word)
    }
}
