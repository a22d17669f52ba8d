//! Protocol labels: the IPC label of every request and reply names the
//! protocol (high bits) and its version (low 16 bits). This file owns the
//! label values and the check; it knows nothing of the message bodies.

use abi::msg::kernel_label;

use crate::ProtoError;

/// Bits of a label that hold the version.
pub const VERSION_BITS: u32 = 16;

/// The memory server protocol: 'ME', version 7 (`AllocHeap`, and the
/// heap's frames in `MemoryStats`).
pub const MEMORY_PROTOCOL: u64 = label(0x4D45, 7);
/// The process server protocol: 'PR', version 6 (`Kill`; `Denied` and
/// `LimitReached`; `TimePhases`).
pub const PROCESS_PROTOCOL: u64 = label(0x5052, 8);

/// The label of protocol `id` at `version`.
pub const fn label(id: u32, version: u16) -> u64 {
    ((id as u64) << VERSION_BITS) | version as u64
}

/// The protocol part of a label.
pub const fn protocol_of(label: u64) -> u64 {
    label >> VERSION_BITS
}

/// The version part of a label.
pub const fn version_of(label: u64) -> u16 {
    (label & ((1 << VERSION_BITS) - 1)) as u16
}

/// Checks that `label` is exactly `expected`: same protocol, same version.
///
/// Postcard is not self-describing, so two versions of a protocol share no
/// layout guarantee; there is no "compatible older version".
pub fn check_label(label: u64, expected: u64) -> Result<(), ProtoError> {
    if protocol_of(label) != protocol_of(expected) {
        Err(ProtoError::WrongProtocol)
    } else if version_of(label) != version_of(expected) {
        Err(ProtoError::UnsupportedVersion)
    } else {
        Ok(())
    }
}

// `MsgInfo` keeps 48 bits of label, and a server endpoint that is also a
// pager receives the kernel's labels: ours must fit and must not collide.
const _: () = {
    assert!(MEMORY_PROTOCOL < 1 << 48 && PROCESS_PROTOCOL < 1 << 48);
    assert!(protocol_of(MEMORY_PROTOCOL) != protocol_of(PROCESS_PROTOCOL));
    assert!(protocol_of(MEMORY_PROTOCOL) != protocol_of(kernel_label::FAULT));
    assert!(protocol_of(PROCESS_PROTOCOL) != protocol_of(kernel_label::FAULT));
    assert!(MEMORY_PROTOCOL != kernel_label::RESUME && PROCESS_PROTOCOL != kernel_label::RESUME);
};

#[cfg(test)]
mod tests {
    use super::*;
    use abi::msg::MsgInfo;

    #[test]
    fn values_are_the_documented_ones() {
        assert_eq!(MEMORY_PROTOCOL, 0x4D45_0007);
        assert_eq!(PROCESS_PROTOCOL, 0x5052_0008);
        assert_eq!(version_of(MEMORY_PROTOCOL), 7);
        assert_eq!(protocol_of(PROCESS_PROTOCOL), 0x5052);
    }

    #[test]
    fn labels_survive_the_message_info() {
        for label in [MEMORY_PROTOCOL, PROCESS_PROTOCOL] {
            assert_eq!(MsgInfo::new(label, 1024, false).label(), label);
        }
    }

    #[test]
    fn check_tells_protocol_from_version() {
        assert_eq!(check_label(MEMORY_PROTOCOL, MEMORY_PROTOCOL), Ok(()));
        assert_eq!(check_label(PROCESS_PROTOCOL, MEMORY_PROTOCOL), Err(ProtoError::WrongProtocol));
        assert_eq!(check_label(label(0x4D45, 6), MEMORY_PROTOCOL), Err(ProtoError::UnsupportedVersion));
        assert_eq!(check_label(label(0x4D45, 8), MEMORY_PROTOCOL), Err(ProtoError::UnsupportedVersion));
        assert_eq!(check_label(label(0x4D45, 0), MEMORY_PROTOCOL), Err(ProtoError::UnsupportedVersion));
        assert_eq!(check_label(kernel_label::FAULT, PROCESS_PROTOCOL), Err(ProtoError::WrongProtocol));
        assert_eq!(check_label(0, PROCESS_PROTOCOL), Err(ProtoError::WrongProtocol));
    }
}
