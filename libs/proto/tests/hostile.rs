//! Hostile and broken input: truncation at every length, random bytes, wrong
//! labels and versions, length prefixes beyond a vector's capacity, unknown
//! tags and trailing bytes all give an error (and, through `accept`, an error
//! reply) without a panic, and a server keeps serving after them.

#![allow(clippy::result_large_err, reason = "accept's error reply is a whole message by design")]

mod common;

use abi::msg::{IPC_BUFFER_DATA, kernel_label};
use common::*;
use proptest::prelude::*;
use proto::memory::{AttachPart, Layout, MAX_FREE_FRAMES, MAX_REF_OPS};
use proto::{
    FrameRun, MEMORY_PROTOCOL, MemoryProtocol, MemoryReply, MemoryRequest, PROCESS_PROTOCOL, ProcessProtocol, ProcessReply, ProcessRequest,
    ProtoError, Protocol, RefOp, accept, decode, encode, label, payload, read_reply, respond,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn bytes_of<T: Serialize>(value: &T) -> Vec<u8> {
    let mut buf = [0u8; IPC_BUFFER_DATA];
    let length = encode(value, &mut buf).unwrap();
    buf[..length].to_vec()
}

/// Every strict prefix of a message fails to decode, and so does the message
/// with a byte appended.
fn truncations_and_trailers_fail<T: Serialize + DeserializeOwned + core::fmt::Debug>(value: &T) {
    let bytes = bytes_of(value);
    for length in 0..bytes.len() {
        let result = decode::<T>(&bytes[..length]);
        assert_eq!(result.err(), Some(ProtoError::Malformed), "{value:?} cut to {length} bytes");
    }
    for extra in [0u8, 1, 0xFF] {
        let mut longer = bytes.clone();
        longer.push(extra);
        assert_eq!(decode::<T>(&longer).err(), Some(ProtoError::TrailingBytes), "{value:?} + {extra}");
    }
}

#[test]
fn truncated_or_extended_messages_are_rejected() {
    for value in memory_requests() {
        truncations_and_trailers_fail(&value);
        truncations_and_trailers_fail(&largest_memory_request(&value));
    }
    for value in memory_replies() {
        truncations_and_trailers_fail(&value);
        truncations_and_trailers_fail(&largest_memory_reply(&value));
    }
    for value in process_requests() {
        truncations_and_trailers_fail(&value);
        truncations_and_trailers_fail(&largest_process_request(&value));
    }
    for value in process_replies() {
        truncations_and_trailers_fail(&value);
        truncations_and_trailers_fail(&largest_process_reply(&value));
    }
}

#[test]
fn the_server_answers_truncation_and_trailers_with_errors() {
    let bytes = bytes_of(&MemoryRequest::RefBatch { ops: [RefOp::dec(0x1234_5678)].into_iter().collect() });
    assert!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &bytes).is_ok());
    assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &bytes[..bytes.len() - 1]), Err(MemoryReply::Error(ProtoError::Malformed)));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &longer), Err(MemoryReply::Error(ProtoError::TrailingBytes)));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[]), Err(ProcessReply::Error(ProtoError::Malformed)));
    // A fork cut before its CPU: the stack must not be read as the CPU.
    let fork = bytes_of(&ProcessRequest::Fork { resume: 0x40_1000, stack: 0x7FFF_FF00, cpu: Some(2) });
    for length in 0..fork.len() {
        assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &fork[..length]), Err(ProcessReply::Error(ProtoError::Malformed)));
    }
    // A TryRemoveUnique cut inside or before its frame: the tag must not
    // be read as the frame.
    let unique = bytes_of(&MemoryRequest::TryRemoveUnique { frame: 0x1234_5678 });
    assert_eq!(unique.len(), 1 + 5);
    assert!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &unique).is_ok());
    for length in 0..unique.len() {
        assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &unique[..length]), Err(MemoryReply::Error(ProtoError::Malformed)));
    }
    // Settle has no body: anything after its tag is left over.
    assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &[6]), Ok(MemoryRequest::Settle));
    assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &[6, 0]), Err(MemoryReply::Error(ProtoError::TrailingBytes)));
    // A Swap (memory tag 8, process tag 11) whose strategy byte is missing,
    // or followed by another byte.
    assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &[8, 2]), Ok(MemoryRequest::Swap { strategy: 2 }));
    assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &[8]), Err(MemoryReply::Error(ProtoError::Malformed)));
    assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &[8, 2, 0]), Err(MemoryReply::Error(ProtoError::TrailingBytes)));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[11, 2]), Ok(ProcessRequest::Swap { strategy: 2 }));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[11]), Err(ProcessReply::Error(ProtoError::Malformed)));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[11, 2, 0]), Err(ProcessReply::Error(ProtoError::TrailingBytes)));
    // A Materialize cut anywhere, down to its tag, is malformed; whole, with
    // a frame twice, it is accepted; with no frame, it decodes but is
    // rejected by validation.
    let materialize = bytes_of(&MemoryRequest::Materialize { frames: [0x1234_5678u32, 3, 0x1234_5678].into_iter().collect() });
    assert_eq!(materialize.len(), 1 + 1 + 5 + 1 + 5);
    assert!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &materialize).is_ok());
    for length in 0..materialize.len() {
        assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &materialize[..length]), Err(MemoryReply::Error(ProtoError::Malformed)));
    }
    assert_eq!(decode::<MemoryRequest>(&[7, 0]), Ok(MemoryRequest::Materialize { frames: Default::default() }));
    assert_eq!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &[7, 0]), Err(MemoryReply::Error(ProtoError::InvalidArgument)));
}

#[test]
fn wrong_protocol_or_version_is_refused() {
    let bytes = bytes_of(&MemoryRequest::Stats);
    let refused = |label| accept::<MemoryProtocol>(label, &bytes);
    assert_eq!(refused(MEMORY_PROTOCOL), Ok(MemoryRequest::Stats));
    assert_eq!(refused(PROCESS_PROTOCOL), Err(MemoryReply::Error(ProtoError::WrongProtocol)));
    assert_eq!(refused(label(0x4D45, 6)), Err(MemoryReply::Error(ProtoError::UnsupportedVersion)));
    assert_eq!(refused(kernel_label::FAULT), Err(MemoryReply::Error(ProtoError::WrongProtocol)));
    assert_eq!(refused(kernel_label::RESUME), Err(MemoryReply::Error(ProtoError::WrongProtocol)));
    // A client reading a reply checks the label too.
    let reply = bytes_of(&ProcessReply::Pid(7));
    assert_eq!(read_reply::<ProcessProtocol>(PROCESS_PROTOCOL, &reply), Ok(ProcessReply::Pid(7)));
    assert_eq!(read_reply::<ProcessProtocol>(MEMORY_PROTOCOL, &reply), Err(ProtoError::WrongProtocol));
    assert_eq!(read_reply::<ProcessProtocol>(label(0x5052, 9), &reply), Err(ProtoError::UnsupportedVersion));
}

#[test]
fn unknown_tags_are_unknown_requests() {
    let memory = |bytes: &[u8]| accept::<MemoryProtocol>(MEMORY_PROTOCOL, bytes);
    let unknown = Err(MemoryReply::Error(ProtoError::UnknownRequest));
    // MemoryRequest has 11 variants (tags 0..=10), ProcessRequest 14.
    assert_eq!(memory(&[11]), unknown);
    assert_eq!(memory(&[11, 1, 2, 3]), unknown);
    assert_eq!(memory(&[12]), unknown);
    assert_eq!(memory(&[10, 1]), Ok(MemoryRequest::AllocHeap { count: 1 }));
    assert_eq!(memory(&[10, 0]), Err(MemoryReply::Error(ProtoError::InvalidArgument)));
    assert_eq!(memory(&[9, 2]), Ok(MemoryRequest::Reclaim { record: 2 }));
    assert_eq!(memory(&[9, 0]), Err(MemoryReply::Error(ProtoError::InvalidArgument)));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[14]), Err(ProcessReply::Error(ProtoError::UnknownRequest)));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[14, 0]), Err(ProcessReply::Error(ProtoError::UnknownRequest)));
    // Kill (tag 12) is known; its pid must be there, and not 0. So is
    // TimePhases (tag 13).
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[12, 5]), Ok(ProcessRequest::Kill { pid: 5 }));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[12]), Err(ProcessReply::Error(ProtoError::Malformed)));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[12, 0]), Err(ProcessReply::Error(ProtoError::InvalidArgument)));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[13, 1]), Ok(ProcessRequest::TimePhases { on: true }));
    // The last tags are known: Swap (memory tag 8), Materialize (memory tag
    // 7), Settle (memory tag 6), TryRemoveUnique (memory tag 5) and Stats
    // (memory tag 4) before them; Swap (process tag 11), Stats (process
    // tag 10) and Quiesce (process tag 9).
    assert_eq!(memory(&[8, 0]), Ok(MemoryRequest::Swap { strategy: 0 }));
    assert_eq!(memory(&[8, 0xFF]), Ok(MemoryRequest::Swap { strategy: u8::MAX }));
    assert_eq!(memory(&[7, 2, 5, 5]), Ok(MemoryRequest::Materialize { frames: [5u32, 5].into_iter().collect() }));
    assert_eq!(memory(&[6]), Ok(MemoryRequest::Settle));
    assert_eq!(memory(&[5, 2]), Ok(MemoryRequest::TryRemoveUnique { frame: 2 }));
    assert_eq!(memory(&[4]), Ok(MemoryRequest::Stats));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[11, 7]), Ok(ProcessRequest::Swap { strategy: 7 }));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[10]), Ok(ProcessRequest::Stats));
    assert_eq!(accept::<ProcessProtocol>(PROCESS_PROTOCOL, &[9]), Ok(ProcessRequest::Quiesce));
    // Tag 200 as a two-byte varint, and u32::MAX.
    assert_eq!(memory(&[0xC8, 0x01]), unknown);
    assert_eq!(memory(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), unknown);
    // A known tag with a bad body is malformed, not unknown.
    assert_eq!(memory(&[0, 0xFF]), Err(MemoryReply::Error(ProtoError::Malformed)));
    // A tag varint longer than a u32 is no tag at all.
    assert_eq!(memory(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), Err(MemoryReply::Error(ProtoError::Malformed)));
    // The bare codec cannot know the variant count: it says malformed.
    assert_eq!(decode::<MemoryRequest>(&[10]), Err(ProtoError::Malformed));
    assert_eq!(decode::<ProcessRequest>(&[14]), Err(ProtoError::Malformed));
    // Replies: an unknown reply kind, and an unknown error kind inside an
    // Error reply (a known reply kind with a bad body). MemoryReply has 7
    // variants; Unique (6) comes after Error (5).
    assert_eq!(read_reply::<MemoryProtocol>(MEMORY_PROTOCOL, &[7]), Err(ProtoError::UnknownRequest));
    assert_eq!(read_reply::<MemoryProtocol>(MEMORY_PROTOCOL, &[7, 1]), Err(ProtoError::UnknownRequest));
    assert_eq!(read_reply::<MemoryProtocol>(MEMORY_PROTOCOL, &[5, 17]), Err(ProtoError::Malformed));
    assert_eq!(read_reply::<MemoryProtocol>(MEMORY_PROTOCOL, &[5, 14]), Err(ProtoError::Denied));
    assert_eq!(read_reply::<MemoryProtocol>(MEMORY_PROTOCOL, &[6, 0]), Ok(MemoryReply::Unique(false)));
    assert_eq!(read_reply::<MemoryProtocol>(MEMORY_PROTOCOL, &[6, 1]), Ok(MemoryReply::Unique(true)));
    // A bool is 0 or 1, and it must be there.
    for bad in [&[6, 2][..], &[6, 0xFF][..], &[6][..]] {
        assert_eq!(read_reply::<MemoryProtocol>(MEMORY_PROTOCOL, bad), Err(ProtoError::Malformed), "{bad:?}");
    }
    // ProcessReply has 13 variants; Quiesced (8), Stats (9), Swapped (10),
    // Killed (11) and PhasesTimed (12) come after Error (7).
    assert_eq!(read_reply::<ProcessProtocol>(PROCESS_PROTOCOL, &[13]), Err(ProtoError::UnknownRequest));
    assert_eq!(read_reply::<ProcessProtocol>(PROCESS_PROTOCOL, &[11]), Ok(ProcessReply::Killed));
    assert_eq!(read_reply::<ProcessProtocol>(PROCESS_PROTOCOL, &[12]), Ok(ProcessReply::PhasesTimed));
    assert_eq!(read_reply::<ProcessProtocol>(PROCESS_PROTOCOL, &[10]), Ok(ProcessReply::Swapped));
    // Swapped has no body.
    assert_eq!(read_reply::<ProcessProtocol>(PROCESS_PROTOCOL, &[10, 0]), Err(ProtoError::TrailingBytes));
    assert_eq!(read_reply::<ProcessProtocol>(PROCESS_PROTOCOL, &[8]), Ok(ProcessReply::Quiesced));
    assert_eq!(read_reply::<ProcessProtocol>(PROCESS_PROTOCOL, &[7, 17]), Err(ProtoError::Malformed));
}

/// A length prefix: postcard's varint, as for a `u32`.
fn prefix(len: usize) -> Vec<u8> {
    bytes_of(&u32::try_from(len).unwrap())
}

/// The bytes of a `FreeFrames` whose length prefix says `claimed` and
/// that then carries `present` distinct frames.
fn free_frames_claiming(claimed: &[u8], present: usize) -> Vec<u8> {
    let mut bytes = vec![1u8]; // the FreeFrames tag
    bytes.extend_from_slice(claimed);
    for frame in 0..present {
        bytes.extend(bytes_of(&u32::try_from(frame).unwrap()));
    }
    bytes
}

/// The bytes of a `Materialize` whose length prefix says `claimed` and that
/// then carries `present` frames, all the same one (holders may repeat it).
fn materialize_claiming(claimed: &[u8], present: usize) -> Vec<u8> {
    let mut bytes = vec![7u8]; // the Materialize tag
    bytes.extend_from_slice(claimed);
    for _ in 0..present {
        bytes.extend(bytes_of(&u32::MAX));
    }
    bytes
}

/// The bytes of a `RefBatch` whose length prefix says `claimed` and that
/// then carries `present` increments.
fn ref_batch_claiming(claimed: &[u8], present: usize) -> Vec<u8> {
    let mut bytes = vec![2u8]; // the RefBatch tag
    bytes.extend_from_slice(claimed);
    for frame in 0..present {
        bytes.extend(bytes_of(&RefOp::inc(u32::try_from(frame).unwrap())));
    }
    bytes
}

#[test]
fn length_prefixes_beyond_capacity_are_rejected() {
    // Sanity: the hand-built forms are what postcard produces.
    assert_eq!(free_frames_claiming(&[3], 3), bytes_of(&MemoryRequest::FreeFrames { frames: [0u32, 1, 2].into_iter().collect() }));
    assert_eq!(materialize_claiming(&[2], 2), bytes_of(&MemoryRequest::Materialize { frames: [u32::MAX, u32::MAX].into_iter().collect() }));
    assert_eq!(
        ref_batch_claiming(&[2], 2),
        bytes_of(&MemoryRequest::RefBatch { ops: [RefOp::inc(0), RefOp::inc(1)].into_iter().collect() })
    );
    // 200 frames is the capacity (a 2-byte prefix), 201 one too many, even
    // with all 201 present.
    let full = free_frames_claiming(&prefix(MAX_FREE_FRAMES), MAX_FREE_FRAMES);
    assert!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &full).is_ok());
    let one_more = free_frames_claiming(&prefix(MAX_FREE_FRAMES + 1), MAX_FREE_FRAMES + 1);
    assert_eq!(decode::<MemoryRequest>(&one_more), Err(ProtoError::Malformed));
    // The same for the 200 frames of a Materialize (repeated, which its
    // validation allows).
    let full = materialize_claiming(&prefix(MAX_FREE_FRAMES), MAX_FREE_FRAMES);
    assert_eq!(full.len(), 1 + 2 + MAX_FREE_FRAMES * 5);
    assert!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &full).is_ok());
    let one_more = materialize_claiming(&prefix(MAX_FREE_FRAMES + 1), MAX_FREE_FRAMES + 1);
    assert_eq!(decode::<MemoryRequest>(&one_more), Err(ProtoError::Malformed));
    // The same for the 160 operations of a RefBatch.
    let full = ref_batch_claiming(&prefix(MAX_REF_OPS), MAX_REF_OPS);
    assert!(accept::<MemoryProtocol>(MEMORY_PROTOCOL, &full).is_ok());
    let one_more = ref_batch_claiming(&prefix(MAX_REF_OPS + 1), MAX_REF_OPS + 1);
    assert_eq!(decode::<MemoryRequest>(&one_more), Err(ProtoError::Malformed));
    // Huge claims with few elements behind them: no allocation, no panic.
    for claim in [&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F][..], &[0xFF; 9][..], &[0xFF; 10][..], &[0x80, 0x08][..]] {
        assert_eq!(decode::<MemoryRequest>(&free_frames_claiming(claim, 2)), Err(ProtoError::Malformed));
    }
    assert_eq!(decode::<MemoryRequest>(&ref_batch_claiming(&[0xFF; 10], 2)), Err(ProtoError::Malformed));
    assert_eq!(decode::<MemoryRequest>(&materialize_claiming(&[0xFF; 10], 2)), Err(ProtoError::Malformed));
    // A program name of 33 bytes (Spawn, tag 0), then its arg.
    let mut long_name = vec![0u8, 33];
    long_name.extend_from_slice(&[b'a'; 33]);
    long_name.push(0);
    assert_eq!(decode::<ProcessRequest>(&long_name), Err(ProtoError::Malformed));
    // Sanity: a good name with its arg decodes.
    assert_eq!(decode::<ProcessRequest>(&[0, 2, b'o', b'k', 5]), Ok(ProcessRequest::Spawn { program: name("ok"), arg: 5 }));
    // A name that is not UTF-8 (Spawn and Exec, tags 0 and 4).
    assert_eq!(decode::<ProcessRequest>(&[0, 2, 0xC3, 0x28, 5]), Err(ProtoError::Malformed));
    assert_eq!(decode::<ProcessRequest>(&[4, 2, 0xC3, 0x28, 5]), Err(ProtoError::Malformed));
    // An AttachPart that is not Frames, Table or Region (Attach, tag 3).
    assert_eq!(decode::<MemoryRequest>(&[3, 1]), Ok(MemoryRequest::Attach { part: AttachPart::Table }));
    assert_eq!(decode::<MemoryRequest>(&[3, 2]), Ok(MemoryRequest::Attach { part: AttachPart::Region }));
    assert_eq!(decode::<MemoryRequest>(&[3, 3]), Err(ProtoError::Malformed));
    // An Option tag that is neither None nor Some (Wait, tag 3; the CPU of
    // a Fork, tag 1, after resume 0 and stack 8).
    assert_eq!(decode::<ProcessRequest>(&[3, 2, 1]), Err(ProtoError::Malformed));
    assert_eq!(decode::<ProcessRequest>(&[1, 0, 8, 1, 1]), Ok(ProcessRequest::Fork { resume: 0, stack: 8, cpu: Some(1) }));
    assert_eq!(decode::<ProcessRequest>(&[1, 0, 8, 2, 1]), Err(ProtoError::Malformed));
    // A frame whose varint overflows 32 bits (FreeFrames, tag 1, one
    // frame).
    assert_eq!(decode::<MemoryRequest>(&[1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x10]), Err(ProtoError::Malformed));
    assert!(decode::<MemoryRequest>(&[1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).is_ok());
    // The same in a Materialize (tag 7, one frame), also when the
    // overflowing frame comes after a good one.
    assert_eq!(decode::<MemoryRequest>(&[7, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x10]), Err(ProtoError::Malformed));
    assert_eq!(decode::<MemoryRequest>(&[7, 2, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0x10]), Err(ProtoError::Malformed));
    assert_eq!(
        decode::<MemoryRequest>(&[7, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        Ok(MemoryRequest::Materialize { frames: [u32::MAX].into_iter().collect() })
    );
    // A varint longer than a u32's five bytes.
    assert_eq!(decode::<MemoryRequest>(&[7, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), Err(ProtoError::Malformed));
    // The same in a TryRemoveUnique (tag 5).
    assert_eq!(decode::<MemoryRequest>(&[5, 0xFF, 0xFF, 0xFF, 0xFF, 0x10]), Err(ProtoError::Malformed));
    assert_eq!(decode::<MemoryRequest>(&[5, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), Ok(MemoryRequest::TryRemoveUnique { frame: u32::MAX }));
    // A varint longer than a u32's five bytes.
    assert_eq!(decode::<MemoryRequest>(&[5, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), Err(ProtoError::Malformed));
    // A u16 count whose varint overflows 16 bits (AllocFrames, tag 0), and
    // the largest that fits.
    assert_eq!(decode::<MemoryRequest>(&[0, 0xFF, 0xFF, 0x04]), Err(ProtoError::Malformed));
    assert_eq!(decode::<MemoryRequest>(&[0, 0xFF, 0xFF, 0x03]), Ok(MemoryRequest::AllocFrames { count: u16::MAX }));
    // A client field of an older version is a trailing byte now.
    assert_eq!(decode::<MemoryRequest>(&[0, 0, 1]), Err(ProtoError::TrailingBytes));
}

#[test]
fn claimed_payload_lengths_are_bounded() {
    let data = [0u8; IPC_BUFFER_DATA];
    // The message info has 12 bits of length: up to 4095 can be claimed.
    assert_eq!(payload(&data, 4095), Err(ProtoError::TooLarge));
    assert_eq!(decode::<MemoryRequest>(&[0u8; IPC_BUFFER_DATA + 1]), Err(ProtoError::TooLarge));
}

/// A memory server's turn: decode, act (here: answer from a fixed table),
/// encode. Returns the reply the client reads.
fn serve_one(label: u64, bytes: &[u8]) -> Result<MemoryReply, ProtoError> {
    let reply = match accept::<MemoryProtocol>(label, bytes) {
        Ok(MemoryRequest::AllocFrames { count, .. }) => MemoryReply::Frames { runs: [FrameRun::new(0x100, count)].into_iter().collect() },
        // Unique exactly when the frame is even.
        Ok(MemoryRequest::TryRemoveUnique { frame, .. }) => MemoryReply::Unique(frame % 2 == 0),
        Ok(MemoryRequest::Attach { part }) => MemoryReply::Attached(Layout {
            pool_frames: 0x8000,
            table_pages: match part {
                AttachPart::Frames => 0,
                AttachPart::Table => 64,
                AttachPart::Region => 1,
            },
        }),
        Ok(_) => MemoryReply::Ok,
        Err(error_reply) => error_reply,
    };
    let mut out = [0u8; IPC_BUFFER_DATA];
    let sent = respond::<MemoryProtocol>(&reply, &mut out).unwrap();
    read_reply::<MemoryProtocol>(sent.label, &out[..sent.length])
}

#[test]
fn a_server_keeps_serving_after_bad_messages() {
    let good = bytes_of(&MemoryRequest::AllocFrames { count: 3 });
    assert_eq!(serve_one(MEMORY_PROTOCOL, &good), Ok(MemoryReply::Frames { runs: [FrameRun::new(0x100, 3)].into_iter().collect() }));
    assert_eq!(serve_one(MEMORY_PROTOCOL, &[11, 0, 0]), Err(ProtoError::UnknownRequest));
    assert_eq!(serve_one(MEMORY_PROTOCOL, &[0xFF; 7]), Err(ProtoError::Malformed));
    assert_eq!(serve_one(MEMORY_PROTOCOL, &good[..1]), Err(ProtoError::Malformed));
    assert_eq!(serve_one(PROCESS_PROTOCOL, &good), Err(ProtoError::WrongProtocol));
    assert_eq!(serve_one(MEMORY_PROTOCOL, &bytes_of(&MemoryRequest::AllocFrames { count: 0 })), Err(ProtoError::InvalidArgument));
    assert_eq!(
        serve_one(MEMORY_PROTOCOL, &bytes_of(&MemoryRequest::FreeFrames { frames: [9u32, 9].into_iter().collect() })),
        Err(ProtoError::InvalidArgument)
    );
    let attach = bytes_of(&MemoryRequest::Attach { part: AttachPart::Table });
    assert_eq!(serve_one(MEMORY_PROTOCOL, &attach), Ok(MemoryReply::Attached(Layout { pool_frames: 0x8000, table_pages: 64 })));
    // The new requests are served after the bad ones too.
    for (frame, unique) in [(4, true), (5, false)] {
        let request = bytes_of(&MemoryRequest::TryRemoveUnique { frame });
        assert_eq!(serve_one(MEMORY_PROTOCOL, &request), Ok(MemoryReply::Unique(unique)));
    }
    assert_eq!(serve_one(MEMORY_PROTOCOL, &[5, 0xFF, 0xFF, 0xFF, 0xFF, 0x10]), Err(ProtoError::Malformed));
    assert_eq!(serve_one(MEMORY_PROTOCOL, &bytes_of(&MemoryRequest::Settle)), Ok(MemoryReply::Ok));
    // Materialize and Swap: an empty Materialize, a frame overflowing u32,
    // a Swap with no strategy byte, then good ones.
    assert_eq!(
        serve_one(MEMORY_PROTOCOL, &bytes_of(&MemoryRequest::Materialize { frames: Default::default() })),
        Err(ProtoError::InvalidArgument)
    );
    assert_eq!(serve_one(MEMORY_PROTOCOL, &[7, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0x10]), Err(ProtoError::Malformed));
    assert_eq!(serve_one(MEMORY_PROTOCOL, &[8]), Err(ProtoError::Malformed));
    assert_eq!(
        serve_one(MEMORY_PROTOCOL, &bytes_of(&MemoryRequest::Materialize { frames: [9u32, 9].into_iter().collect() })),
        Ok(MemoryReply::Ok)
    );
    assert_eq!(serve_one(MEMORY_PROTOCOL, &bytes_of(&MemoryRequest::Swap { strategy: 1 })), Ok(MemoryReply::Ok));
}

/// `accept` on arbitrary bytes: no panic, and the answer always encodes.
fn accept_any<P: Protocol>(label: u64, bytes: &[u8]) -> Result<(), TestCaseError>
where
    P::Request: PartialEq + core::fmt::Debug,
{
    let mut out = [0u8; IPC_BUFFER_DATA];
    match accept::<P>(label, bytes) {
        Ok(request) => {
            // What is accepted is valid, and decodes to the same value again.
            prop_assert_eq!(P::validate(&request), Ok(()));
            let again = bytes_of(&request);
            prop_assert_eq!(decode::<P::Request>(&again).ok(), Some(request));
        }
        Err(error_reply) => {
            prop_assert!(P::reply_error(&error_reply).is_some());
            let sent = respond::<P>(&error_reply, &mut out).unwrap();
            prop_assert!(read_reply::<P>(sent.label, &out[..sent.length]).is_err());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..=IPC_BUFFER_DATA + 8)) {
        accept_any::<MemoryProtocol>(MEMORY_PROTOCOL, &bytes)?;
        accept_any::<ProcessProtocol>(PROCESS_PROTOCOL, &bytes)?;
        let _ = decode::<MemoryReply>(&bytes);
        let _ = decode::<ProcessReply>(&bytes);
        prop_assert!(accept::<MemoryProtocol>(PROCESS_PROTOCOL, &bytes).is_err());
    }

    #[test]
    fn random_bytes_behind_a_valid_tag_never_panic(tag in 0u8..=ProcessProtocol::REQUEST_KINDS.max(MemoryProtocol::REQUEST_KINDS) as u8, body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&body);
        accept_any::<MemoryProtocol>(MEMORY_PROTOCOL, &bytes)?;
        accept_any::<ProcessProtocol>(PROCESS_PROTOCOL, &bytes)?;
    }

    #[test]
    fn any_label_but_ours_is_refused(label in any::<u64>()) {
        let bytes = bytes_of(&ProcessRequest::GetPid);
        let result = accept::<ProcessProtocol>(label, &bytes);
        prop_assert_eq!(result.is_ok(), label == PROCESS_PROTOCOL);
    }

    #[test]
    fn flipping_a_byte_of_a_valid_message_never_panics(value in arb_memory_request(), at in any::<prop::sample::Index>(), with in any::<u8>()) {
        let mut bytes = bytes_of(&value);
        let at = at.index(bytes.len());
        bytes[at] = with;
        accept_any::<MemoryProtocol>(MEMORY_PROTOCOL, &bytes)?;
    }

    #[test]
    fn flipping_a_byte_of_a_valid_process_request_never_panics(value in arb_process_request(), at in any::<prop::sample::Index>(), with in any::<u8>()) {
        let mut bytes = bytes_of(&value);
        let at = at.index(bytes.len());
        bytes[at] = with;
        accept_any::<ProcessProtocol>(PROCESS_PROTOCOL, &bytes)?;
    }
}
