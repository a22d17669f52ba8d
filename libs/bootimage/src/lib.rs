//! The boot image: a flat archive of named files that xtask packs and QEMU
//! hands to the kernel as the `-initrd` module.
//!
//! Layout (all integers little-endian, every file 4 KiB aligned so the kernel
//! can hand file contents out as whole frames):
//!
//! ```text
//! header   magic "RCOWIMG1" | version u32 | count u32
//! entries  count x { name [u8; 48] NUL-padded | offset u64 | size u64 }
//! files    each at its offset from the start of the image
//! ```
//!
//! The reader is `no_std`, never allocates, and checks every offset against
//! the image length: a damaged image gives an [`ImageError`], never a panic.
#![no_std]

#[cfg(test)]
extern crate std;

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;

#[cfg(any(test, feature = "alloc"))]
mod writer;
#[cfg(any(test, feature = "alloc"))]
pub use writer::pack;

/// First eight bytes of every image.
pub const MAGIC: [u8; 8] = *b"RCOWIMG1";
/// Format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Longest file name, in bytes.
pub const NAME_LEN: usize = 48;
/// Alignment of every file's contents within the image.
pub const FILE_ALIGN: usize = 4096;
/// The file that describes the image (servers, strategy, workloads).
pub const MANIFEST: &str = "manifest";

const HEADER_LEN: usize = 16;
const ENTRY_LEN: usize = NAME_LEN + 16;

/// Why an image could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    TooShort,
    BadMagic,
    UnsupportedVersion(u32),
    EntryOutOfBounds(usize),
    BadName(usize),
}

/// A validated view of an image in memory.
#[derive(Clone, Copy, Debug)]
pub struct Image<'a> {
    bytes: &'a [u8],
    count: usize,
}

/// One file of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct File<'a> {
    pub name: &'a str,
    /// Byte offset of the contents from the start of the image.
    pub offset: usize,
    pub data: &'a [u8],
}

impl<'a> Image<'a> {
    /// Checks the header and every entry, so later lookups cannot fail.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        let header = bytes.get(..HEADER_LEN).ok_or(ImageError::TooShort)?;
        if header[..8] != MAGIC {
            return Err(ImageError::BadMagic);
        }
        let version = read_u32(&header[8..12]);
        if version != VERSION {
            return Err(ImageError::UnsupportedVersion(version));
        }
        let count = read_u32(&header[12..16]) as usize;
        let table_len = count.checked_mul(ENTRY_LEN).ok_or(ImageError::TooShort)?;
        if bytes.len() - HEADER_LEN < table_len {
            return Err(ImageError::TooShort);
        }
        let image = Self { bytes, count };
        for index in 0..count {
            image.entry(index)?;
        }
        Ok(image)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The files in archive order.
    pub fn files(&self) -> impl Iterator<Item = File<'a>> + '_ {
        (0..self.count).filter_map(|index| self.entry(index).ok())
    }

    /// The file called `name`, if the image has one.
    pub fn find(&self, name: &str) -> Option<File<'a>> {
        self.files().find(|file| file.name == name)
    }

    fn entry(&self, index: usize) -> Result<File<'a>, ImageError> {
        let start = HEADER_LEN + index * ENTRY_LEN;
        let raw = &self.bytes[start..start + ENTRY_LEN];
        let name_bytes = &raw[..NAME_LEN];
        let name_len = name_bytes.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        let name = core::str::from_utf8(&name_bytes[..name_len]).map_err(|_| ImageError::BadName(index))?;
        let offset = read_u64(&raw[NAME_LEN..NAME_LEN + 8]);
        let size = read_u64(&raw[NAME_LEN + 8..]);
        let data = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(offset, size)| Some(offset..offset.checked_add(size)?))
            .and_then(|range| self.bytes.get(range))
            .ok_or(ImageError::EntryOutOfBounds(index))?;
        Ok(File { name, offset: offset as usize, data })
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("caller passes 4 bytes"))
}

fn read_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("caller passes 8 bytes"))
}
