//! The wire format of both protocols: every request and reply variant
//! survives a round trip (by hand and under proptest), through the bare codec
//! and through the client/server helpers, and the largest value of every
//! variant fits the IPC buffer with exactly the size the protocol declares.

mod common;

use std::collections::BTreeSet;

use abi::msg::IPC_BUFFER_DATA;
use common::*;
use proptest::prelude::*;
use proto::{
    MemoryProtocol, MemoryReply, MemoryRequest, ProcessProtocol, ProcessReply, ProcessRequest, Protocol, accept, decode, encode,
    read_reply, request, respond,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + core::fmt::Debug>(value: &T) -> usize {
    let mut buf = [0u8; IPC_BUFFER_DATA];
    let length = encode(value, &mut buf).expect("every value fits the IPC buffer");
    assert_eq!(decode::<T>(&buf[..length]).as_ref(), Ok(value));
    length
}

/// Request → server → reply, through the helpers both ends use.
fn through_helpers<P: Protocol>(sent: &P::Request, answer: &P::Reply)
where
    P::Request: PartialEq + core::fmt::Debug,
    P::Reply: PartialEq + core::fmt::Debug,
{
    let mut buf = [0u8; IPC_BUFFER_DATA];
    let out = request::<P>(sent, &mut buf).unwrap();
    assert_eq!(out.label, P::LABEL);
    match accept::<P>(out.label, &buf[..out.length]) {
        Ok(received) => assert_eq!(&received, sent),
        Err(error_reply) => panic!("valid request refused: {sent:?} -> {error_reply:?}"),
    }
    let back = respond::<P>(answer, &mut buf).unwrap();
    let read = read_reply::<P>(back.label, &buf[..back.length]);
    match P::reply_error(answer) {
        Some(error) => assert_eq!(read, Err(error)),
        None => assert_eq!(read.as_ref(), Ok(answer)),
    }
}

fn kinds(list: impl IntoIterator<Item = usize>) -> BTreeSet<usize> {
    list.into_iter().collect()
}

#[test]
fn samples_cover_every_variant() {
    assert_eq!(kinds(memory_requests().iter().map(memory_request_kind)), kinds(0..MEMORY_REQUEST_KINDS));
    assert_eq!(kinds(memory_replies().iter().map(memory_reply_kind)), kinds(0..MEMORY_REPLY_KINDS));
    assert_eq!(kinds(process_requests().iter().map(process_request_kind)), kinds(0..PROCESS_REQUEST_KINDS));
    assert_eq!(kinds(process_replies().iter().map(process_reply_kind)), kinds(0..PROCESS_REPLY_KINDS));
    assert_eq!(kinds(ALL_ERRORS.map(error_kind)), kinds(0..ALL_ERRORS.len()));
}

#[test]
fn declared_variant_counts_match_the_enums() {
    assert_eq!(MemoryProtocol::REQUEST_KINDS as usize, MEMORY_REQUEST_KINDS);
    assert_eq!(MemoryProtocol::REPLY_KINDS as usize, MEMORY_REPLY_KINDS);
    assert_eq!(ProcessProtocol::REQUEST_KINDS as usize, PROCESS_REQUEST_KINDS);
    assert_eq!(ProcessProtocol::REPLY_KINDS as usize, PROCESS_REPLY_KINDS);
    // The last variant of each enum has the last declared tag.
    let mut buf = [0u8; IPC_BUFFER_DATA];
    let tag = |value: &dyn erased::Encode, buf: &mut [u8]| {
        value.encode(buf);
        u32::from(buf[0])
    };
    assert_eq!(tag(&MemoryRequest::AllocHeap { count: 1 }, &mut buf), MemoryProtocol::REQUEST_KINDS - 1);
    assert_eq!(tag(&MemoryReply::Unique(true), &mut buf), MemoryProtocol::REPLY_KINDS - 1);
    assert_eq!(tag(&ProcessRequest::TimePhases { on: false }, &mut buf), ProcessProtocol::REQUEST_KINDS - 1);
    assert_eq!(tag(&ProcessReply::PhasesTimed, &mut buf), ProcessProtocol::REPLY_KINDS - 1);
}

#[test]
fn tags_follow_the_declared_order() {
    // The first byte of a message is its variant's tag (all below 128): the
    // `kind` functions state the order, and postcard must agree with them.
    let mut buf = [0u8; IPC_BUFFER_DATA];
    let mut tag = |value: &dyn erased::Encode| {
        value.encode(&mut buf);
        usize::from(buf[0])
    };
    for value in memory_requests() {
        assert_eq!(tag(&value), memory_request_kind(&value), "{value:?}");
    }
    for value in memory_replies() {
        assert_eq!(tag(&value), memory_reply_kind(&value), "{value:?}");
    }
    for value in process_requests() {
        assert_eq!(tag(&value), process_request_kind(&value), "{value:?}");
    }
    for value in process_replies() {
        assert_eq!(tag(&value), process_reply_kind(&value), "{value:?}");
    }
}

#[test]
fn every_variant_round_trips() {
    for value in memory_requests() {
        round_trip(&value);
    }
    for value in memory_replies() {
        round_trip(&value);
    }
    for value in process_requests() {
        round_trip(&value);
    }
    for value in process_replies() {
        round_trip(&value);
    }
}

#[test]
fn every_variant_passes_the_helpers() {
    for (sent, answer) in memory_requests().iter().zip(memory_replies().iter().cycle()) {
        through_helpers::<MemoryProtocol>(sent, answer);
    }
    for answer in memory_replies() {
        through_helpers::<MemoryProtocol>(&MemoryRequest::Stats, &answer);
    }
    for (sent, answer) in process_requests().iter().zip(process_replies().iter().cycle()) {
        through_helpers::<ProcessProtocol>(sent, answer);
    }
    for answer in process_replies() {
        through_helpers::<ProcessProtocol>(&ProcessRequest::GetPid, &answer);
    }
}

/// Largest encoding among `values`, each checked to fit and round-trip.
fn largest<T: Serialize + DeserializeOwned + PartialEq + core::fmt::Debug>(values: impl Iterator<Item = T>) -> usize {
    values.map(|value| round_trip(&value)).max().unwrap()
}

#[test]
fn largest_requests_are_valid() {
    // The bounds hold for requests a server accepts, not only for bytes it
    // can decode.
    for value in memory_requests() {
        let largest = largest_memory_request(&value);
        assert_eq!(MemoryProtocol::validate(&largest), Ok(()), "{largest:?}");
    }
    for value in process_requests() {
        let largest = largest_process_request(&value);
        assert_eq!(ProcessProtocol::validate(&largest), Ok(()), "{largest:?}");
    }
}

#[test]
fn largest_messages_fit_with_the_declared_bound() {
    let memory_request = largest(memory_requests().iter().map(largest_memory_request));
    let memory_reply = largest(memory_replies().iter().map(largest_memory_reply));
    let process_request = largest(process_requests().iter().map(largest_process_request));
    let process_reply = largest(process_replies().iter().map(largest_process_reply));
    // The declared bounds are exact, not merely safe.
    assert_eq!(memory_request, MemoryProtocol::MAX_REQUEST_LEN);
    assert_eq!(memory_reply, MemoryProtocol::MAX_REPLY_LEN);
    assert_eq!(process_request, ProcessProtocol::MAX_REQUEST_LEN);
    assert_eq!(process_reply, ProcessProtocol::MAX_REPLY_LEN);
    for bound in [memory_request, memory_reply, process_request, process_reply] {
        assert!(bound <= IPC_BUFFER_DATA);
    }
    // The numbers documented in the report.
    assert_eq!((memory_request, memory_reply, process_request, process_reply), (1003, 834, 44, 206));
}

#[test]
fn the_largest_messages_per_variant_are_as_computed() {
    let mut buf = [0u8; IPC_BUFFER_DATA];
    let mut size_of = |value: &dyn erased::Encode| value.encode(&mut buf);
    let memory: Vec<usize> = memory_requests().iter().map(|r| size_of(&largest_memory_request(r))).collect();
    // AllocFrames (x2), FreeFrames, RefBatch, Attach (x3), Stats,
    // TryRemoveUnique (x2), Settle, Materialize (x2), Swap (x2), Reclaim,
    // AllocHeap.
    // Materialize carries as many 5-byte frames as FreeFrames (a 2-byte
    // prefix and 200 * 5): 1003, as large, so the bound does not grow.
    assert_eq!(memory, [4, 4, 1003, 963, 2, 2, 2, 1, 6, 6, 1, 1003, 1003, 2, 2, 2, 4]);
    let materialize = size_of(&largest_memory_request(&MemoryRequest::Materialize { frames: Default::default() }));
    assert_eq!(materialize, 1 + proto::codec::size::seq(proto::memory::MAX_FREE_FRAMES, 5));
    assert!(materialize <= MemoryProtocol::MAX_REQUEST_LEN);
    let replies: Vec<usize> = memory_replies().iter().take(7).map(|r| size_of(&largest_memory_reply(r))).collect();
    // Frames, Ok, RefBatchDone, Attached, Stats, Unique (x2).
    assert_eq!(replies, [834, 1, 4, 11, 71, 2, 2]);
    assert_eq!(size_of(&MemoryReply::Error(proto::ProtoError::NotMapped)), 2);
    let process: Vec<usize> = process_requests().iter().map(|r| size_of(&largest_process_request(r))).collect();
    // Spawn, Fork (x2), Exit, Wait (x2), Exec, GetPid, Brk, Mmap, Munmap,
    // Quiesce, Stats, Swap (x2), Kill, TimePhases (x2).
    assert_eq!(process, [44, 25, 25, 6, 7, 7, 44, 1, 11, 6, 16, 1, 1, 2, 2, 6, 2, 2]);
    let replies: Vec<usize> = process_replies().iter().take(10).map(|r| size_of(&largest_process_reply(r))).collect();
    // Spawned, Forked, Exited, Pid, BrkSet, Mapped, Unmapped, Quiesced, Stats,
    // Swapped.
    assert_eq!(replies, [6, 6, 11, 6, 11, 11, 1, 1, 206, 1]);
    assert_eq!(size_of(&ProcessReply::Error(proto::ProtoError::NotMapped)), 2);
}

/// Encoding behind a trait object, to size values of different types alike.
mod erased {
    pub trait Encode {
        fn encode(&self, buf: &mut [u8]) -> usize;
    }
    impl<T: serde::Serialize> Encode for T {
        fn encode(&self, buf: &mut [u8]) -> usize {
            proto::encode(self, buf).expect("fits")
        }
    }
}

proptest! {
    #[test]
    fn any_memory_request_round_trips(value in arb_memory_request()) {
        let mut buf = [0u8; IPC_BUFFER_DATA];
        let length = encode(&value, &mut buf).unwrap();
        prop_assert!(length <= MemoryProtocol::MAX_REQUEST_LEN);
        prop_assert_eq!(decode::<MemoryRequest>(&buf[..length]), Ok(value.clone()));
        // The server accepts it exactly when it is valid.
        let accepted = accept::<MemoryProtocol>(proto::MEMORY_PROTOCOL, &buf[..length]);
        match MemoryProtocol::validate(&value) {
            Ok(()) => prop_assert_eq!(accepted, Ok(value)),
            Err(error) => prop_assert_eq!(accepted, Err(MemoryReply::Error(error))),
        }
    }

    #[test]
    fn any_memory_reply_round_trips(value in arb_memory_reply()) {
        let mut buf = [0u8; IPC_BUFFER_DATA];
        let length = encode(&value, &mut buf).unwrap();
        prop_assert!(length <= MemoryProtocol::MAX_REPLY_LEN);
        prop_assert_eq!(decode::<MemoryReply>(&buf[..length]), Ok(value));
    }

    #[test]
    fn any_process_request_round_trips(value in arb_process_request()) {
        let mut buf = [0u8; IPC_BUFFER_DATA];
        let length = encode(&value, &mut buf).unwrap();
        prop_assert!(length <= ProcessProtocol::MAX_REQUEST_LEN);
        prop_assert_eq!(decode::<ProcessRequest>(&buf[..length]), Ok(value.clone()));
        let accepted = accept::<ProcessProtocol>(proto::PROCESS_PROTOCOL, &buf[..length]);
        match ProcessProtocol::validate(&value) {
            Ok(()) => prop_assert_eq!(accepted, Ok(value)),
            Err(error) => prop_assert_eq!(accepted, Err(ProcessReply::Error(error))),
        }
    }

    #[test]
    fn any_process_reply_round_trips(value in arb_process_reply()) {
        let mut buf = [0u8; IPC_BUFFER_DATA];
        let length = encode(&value, &mut buf).unwrap();
        prop_assert!(length <= ProcessProtocol::MAX_REPLY_LEN);
        prop_assert_eq!(decode::<ProcessReply>(&buf[..length]), Ok(value));
    }
}
