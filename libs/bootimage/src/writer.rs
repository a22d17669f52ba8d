//! Packing an image on the host (xtask). The inverse of [`crate::Image::parse`].

use alloc::vec::Vec;

use crate::{ENTRY_LEN, FILE_ALIGN, HEADER_LEN, MAGIC, NAME_LEN, VERSION};

/// Packs `files` (name, contents) into an image; `Err` names a file whose name
/// is empty, too long, or repeated.
pub fn pack(files: &[(&str, &[u8])]) -> Result<Vec<u8>, alloc::string::String> {
    for (index, (name, _)) in files.iter().enumerate() {
        if name.is_empty() || name.len() > NAME_LEN || name.contains('\0') {
            return Err(alloc::format!("bad file name {name:?} (1..={NAME_LEN} bytes, no NUL)"));
        }
        if files[..index].iter().any(|(other, _)| other == name) {
            return Err(alloc::format!("file name {name:?} appears twice"));
        }
    }
    let mut image = Vec::new();
    image.extend_from_slice(&MAGIC);
    image.extend_from_slice(&VERSION.to_le_bytes());
    image.extend_from_slice(&(files.len() as u32).to_le_bytes());
    let mut offset = align_up(HEADER_LEN + files.len() * ENTRY_LEN);
    for (name, data) in files {
        let mut padded = [0u8; NAME_LEN];
        padded[..name.len()].copy_from_slice(name.as_bytes());
        image.extend_from_slice(&padded);
        image.extend_from_slice(&(offset as u64).to_le_bytes());
        image.extend_from_slice(&(data.len() as u64).to_le_bytes());
        offset = align_up(offset + data.len());
    }
    for (_, data) in files {
        image.resize(align_up(image.len()), 0);
        image.extend_from_slice(data);
    }
    Ok(image)
}

fn align_up(value: usize) -> usize {
    value.next_multiple_of(FILE_ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Image, ImageError};
    use alloc::{format, string::String, vec::Vec};
    use proptest::prelude::*;

    #[test]
    fn packed_files_read_back_aligned() {
        let image = pack(&[("manifest", b"strategy = \"deferred\"\n"), ("init", &[0x7f, b'E', b'L', b'F'])]).unwrap();
        let parsed = Image::parse(&image).unwrap();
        assert_eq!(parsed.len(), 2);
        let init = parsed.find("init").unwrap();
        assert_eq!(init.data, &[0x7f, b'E', b'L', b'F']);
        assert_eq!(init.offset % FILE_ALIGN, 0);
        assert_eq!(parsed.find(crate::MANIFEST).unwrap().data, b"strategy = \"deferred\"\n");
        assert!(parsed.find("missing").is_none());
    }

    #[test]
    fn rejects_bad_names() {
        assert!(pack(&[("", b"")]).is_err());
        assert!(pack(&[("a", b""), ("a", b"")]).is_err());
        assert!(pack(&[(&"x".repeat(NAME_LEN + 1), b"")]).is_err());
    }

    #[test]
    fn rejects_damaged_headers() {
        let image = pack(&[("a", b"hello")]).unwrap();
        assert_eq!(Image::parse(&image[..8]).unwrap_err(), ImageError::TooShort);
        let mut bad = image.clone();
        bad[0] = b'X';
        assert_eq!(Image::parse(&bad).unwrap_err(), ImageError::BadMagic);
        let mut bad = image.clone();
        bad[8] = 9;
        assert_eq!(Image::parse(&bad).unwrap_err(), ImageError::UnsupportedVersion(9));
        let truncated = &image[..image.len() - 1];
        assert_eq!(Image::parse(truncated).unwrap_err(), ImageError::EntryOutOfBounds(0));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), tail in any::<u8>()) {
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            with_magic.push(tail);
            for candidate in [&bytes[..], &with_magic[..]] {
                if let Ok(image) = Image::parse(candidate) {
                    prop_assert_eq!(image.files().count(), image.len());
                }
            }
        }

        #[test]
        fn pack_then_parse_is_identity(files in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..5000), 0..6)) {
            let names: Vec<String> = (0..files.len()).map(|i| format!("file{i}")).collect();
            let entries: Vec<(&str, &[u8])> = names.iter().map(String::as_str).zip(files.iter().map(Vec::as_slice)).collect();
            let image = pack(&entries).unwrap();
            let parsed = Image::parse(&image).unwrap();
            for ((name, data), file) in entries.iter().zip(parsed.files()) {
                prop_assert_eq!(*name, file.name);
                prop_assert_eq!(*data, file.data);
            }
        }
    }
}
