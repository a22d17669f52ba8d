//! What a message said: the request or reply in a record's `Message` frame,
//! named and decoded with the message types of `libs/proto` (the label says
//! which protocol, the record's kind whether it is a request or a reply), and
//! a fault's registers as the kernel sends them (`libs/abi`).
//!
//! Owns the mapping from label and kind to message type, and the names of
//! the variants, which it takes from the types themselves (see
//! [`variant_names`]), so no table of names is copied here. A payload the
//! kernel cut short still has its name (its first byte is the tag); only a
//! whole payload is decoded.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use trace::{Kind, Record};

use crate::load::{Message, Trace};

/// The message types a record's message is one of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    MemoryRequest,
    MemoryReply,
    ProcessRequest,
    ProcessReply,
    /// A fault the kernel delivers: vector, address, RIP, error code in the
    /// registers.
    Fault,
}

impl Schema {
    /// The type of the message of a `kind` record with `label`: requests go
    /// out in sends and calls, replies in replies. `None` for labels no
    /// protocol here defines (the IPC benchmark's, a pager's fault reply).
    pub fn of(kind: Kind, label: u64) -> Option<Schema> {
        let request = matches!(kind, Kind::Send | Kind::Call);
        let reply = matches!(kind, Kind::Reply | Kind::ReplyRecv);
        match label {
            proto::MEMORY_PROTOCOL if request => Some(Schema::MemoryRequest),
            proto::MEMORY_PROTOCOL if reply => Some(Schema::MemoryReply),
            proto::PROCESS_PROTOCOL if request => Some(Schema::ProcessRequest),
            proto::PROCESS_PROTOCOL if reply => Some(Schema::ProcessReply),
            abi::msg::kernel_label::FAULT if kind == Kind::FaultDelivery => Some(Schema::Fault),
            _ => None,
        }
    }

    /// The names of the type's variants, in tag order.
    fn variants(self) -> &'static [&'static str] {
        match self {
            Schema::MemoryRequest => variant_names::<proto::MemoryRequest>(),
            Schema::MemoryReply => variant_names::<proto::MemoryReply>(),
            Schema::ProcessRequest => variant_names::<proto::ProcessRequest>(),
            Schema::ProcessReply => variant_names::<proto::ProcessReply>(),
            Schema::Fault => &[],
        }
    }

    /// The whole payload decoded and printed, or why not.
    fn decode(self, payload: &[u8]) -> Result<String, proto::ProtoError> {
        fn show<T: DeserializeOwned + std::fmt::Debug>(payload: &[u8]) -> Result<String, proto::ProtoError> {
            proto::decode::<T>(payload).map(|m| format!("{m:?}"))
        }
        match self {
            Schema::MemoryRequest => show::<proto::MemoryRequest>(payload),
            Schema::MemoryReply => show::<proto::MemoryReply>(payload),
            Schema::ProcessRequest => show::<proto::ProcessRequest>(payload),
            Schema::ProcessReply => show::<proto::ProcessReply>(payload),
            Schema::Fault => Err(proto::ProtoError::Malformed),
        }
    }
}

/// A message, named and (when whole) decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// `memory.v7 AllocFrames`, `fault`, or the label alone when the
    /// message is not known or not in the capture.
    pub name: String,
    /// The decoded message, the fault's registers, the registers of a
    /// message of no known protocol, or why it could not be read.
    pub body: String,
}

/// Names and decodes the message of record `r` of `t`; `None` when the
/// record stands for no message.
pub fn decode(t: &Trace, r: &Record) -> Option<Decoded> {
    if !matches!(r.kind, Kind::Send | Kind::Call | Kind::Reply | Kind::ReplyRecv | Kind::FaultDelivery | Kind::FaultReply) {
        return None;
    }
    let label = t.names.label(r.label);
    let Some(message) = t.message(r) else {
        return Some(Decoded { name: label, body: "(no message in the capture)".into() });
    };
    Some(describe(&label, Schema::of(r.kind, r.label), r, message))
}

/// The name and body of `message`, the message of `r`, labelled `label`.
pub fn describe(label: &str, schema: Option<Schema>, r: &Record, message: &Message) -> Decoded {
    let [a, b, c, d] = message.mrs;
    let registers = format!("registers {a:#x} {b:#x} {c:#x} {d:#x}");
    let Some(schema) = schema else {
        return Decoded { name: label.into(), body: registers };
    };
    if schema == Schema::Fault {
        let what = if a == abi::msg::kernel_label::EXIT_VECTOR { "thread exit".to_string() } else { format!("vector {a}") };
        return Decoded { name: label.into(), body: format!("{what}, address {b:#x}, rip {c:#x}, error {d:#x}") };
    }
    let whole = message.payload.len() as u64 == u64::from(r.payload_len());
    let tag = postcard::take_from_bytes::<u32>(&message.payload).ok().map(|(tag, _)| tag);
    let name = match tag.and_then(|tag| schema.variants().get(tag as usize).map(|v| (tag, v))) {
        Some((_, variant)) => format!("{label} {variant}"),
        None if message.payload.is_empty() => label.into(),
        None => format!("{label} tag {}", tag.map_or("?".into(), |t| t.to_string())),
    };
    let body = if whole {
        schema.decode(&message.payload).unwrap_or_else(|e| format!("undecodable: {e:?} ({} bytes)", message.payload.len()))
    } else {
        format!("cut: {} of {} payload bytes kept", message.payload.len(), r.payload_len())
    };
    Decoded { name, body }
}

/// The whole payload of record `r` decoded as `T`, when the capture holds
/// it whole and it reads as one.
pub fn whole<T: DeserializeOwned>(t: &Trace, r: &Record) -> Option<T> {
    let message = t.message(r)?;
    (message.payload.len() as u64 == u64::from(r.payload_len())).then(|| proto::decode::<T>(&message.payload).ok())?
}

/// The variant names of the enum `T`, in tag order, as its own
/// `Deserialize` implementation states them (serde passes them to
/// `deserialize_enum`, which is all [`VariantNames`] implements).
pub fn variant_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut grab = VariantNames(&[]);
    let _ = T::deserialize(&mut grab);
    grab.0
}

/// A deserializer that reads nothing and keeps the variant names of the
/// enum asked of it.
struct VariantNames(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut VariantNames {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not an enum"))
    }

    fn deserialize_enum<V: Visitor<'de>>(self, _: &'static str, variants: &'static [&'static str], _: V) -> Result<V::Value, Self::Error> {
        self.0 = variants;
        Err(de::Error::custom("only the names were wanted"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
        newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use proto::{FrameRun, MemoryReply, MemoryRequest, ProcessReply, ProcessRequest, RefOp};
    use serde::Serialize;

    use super::*;
    use crate::synth::encoded;

    /// The name and body of `message` sent in a `kind` record with `label`,
    /// the first `keep` payload bytes in the capture.
    fn seen<T: Serialize>(kind: Kind, label: u64, message: &T, keep: usize) -> Decoded {
        let payload = encoded(message);
        let r = Record { label, len: (32 + payload.len()) as u32, flags: Record::FLAG_MESSAGE, ..Record::empty(kind) };
        let kept = Message { mrs: [0; 4], payload: payload[..keep.min(payload.len())].to_vec() };
        let names = crate::names::Names::default();
        describe(&names.label(label), Schema::of(kind, label), &r, &kept)
    }

    fn whole_name<T: Serialize>(kind: Kind, label: u64, message: &T) -> String {
        seen(kind, label, message, usize::MAX).name
    }

    #[test]
    fn labels_map_to_their_protocols_types() {
        let memory = proto::MEMORY_PROTOCOL;
        let process = proto::PROCESS_PROTOCOL;
        let m = |name: &str| format!("memory.v{} {name}", proto::version_of(memory));
        let p = |name: &str| format!("process.v{} {name}", proto::version_of(process));
        assert_eq!(whole_name(Kind::Call, memory, &MemoryRequest::AllocFrames { count: 8 }), m("AllocFrames"));
        assert_eq!(whole_name(Kind::Call, memory, &MemoryRequest::Settle), m("Settle"));
        assert_eq!(whole_name(Kind::ReplyRecv, memory, &MemoryReply::RefBatchDone { freed: 2 }), m("RefBatchDone"));
        assert_eq!(whole_name(Kind::Call, process, &ProcessRequest::Fork { resume: 1, stack: 2, cpu: None }), p("Fork"));
        assert_eq!(whole_name(Kind::Send, process, &ProcessRequest::GetPid), p("GetPid"));
        assert_eq!(whole_name(Kind::Reply, process, &ProcessReply::Forked { child_pid: 7 }), p("Forked"));
        // The same tag means another message in the other protocol or direction.
        assert_eq!(whole_name(Kind::Reply, memory, &MemoryReply::Ok), m("Ok"));
        assert_eq!(whole_name(Kind::Call, memory, &ProcessRequest::Fork { resume: 1, stack: 2, cpu: None }), m("FreeFrames"));
    }

    #[test]
    fn every_variant_is_named_from_its_type() {
        assert_eq!(variant_names::<MemoryRequest>().len() as u32, <proto::MemoryProtocol as proto::Protocol>::REQUEST_KINDS);
        assert_eq!(variant_names::<MemoryReply>().len() as u32, <proto::MemoryProtocol as proto::Protocol>::REPLY_KINDS);
        assert_eq!(variant_names::<ProcessRequest>().len() as u32, <proto::ProcessProtocol as proto::Protocol>::REQUEST_KINDS);
        assert_eq!(variant_names::<ProcessReply>().len() as u32, <proto::ProcessProtocol as proto::Protocol>::REPLY_KINDS);
        assert_eq!(variant_names::<MemoryRequest>()[2], "RefBatch");
    }

    #[test]
    fn whole_payloads_decode_to_the_message() {
        let ops = [RefOp::inc(40_000), RefOp::dec(12)].into_iter().collect();
        let batch = MemoryRequest::RefBatch { ops };
        let d = seen(Kind::Call, proto::MEMORY_PROTOCOL, &batch, usize::MAX);
        assert_eq!(d.name, "memory.v7 RefBatch");
        assert_eq!(d.body, format!("{batch:?}"));
        let frames = MemoryReply::Frames { runs: [FrameRun::new(5, 3)].into_iter().collect() };
        assert_eq!(seen(Kind::ReplyRecv, proto::MEMORY_PROTOCOL, &frames, usize::MAX).body, format!("{frames:?}"));
    }

    #[test]
    fn a_cut_payload_keeps_its_name() {
        let batch = MemoryRequest::RefBatch { ops: (0..100).map(RefOp::inc).collect() };
        let d = seen(Kind::Call, proto::MEMORY_PROTOCOL, &batch, 16);
        assert_eq!(d.name, "memory.v7 RefBatch");
        assert!(d.body.starts_with("cut: 16 of "), "{}", d.body);
        // Nothing kept: the label alone.
        assert_eq!(seen(Kind::Call, proto::MEMORY_PROTOCOL, &batch, 0).name, "memory.v7");
    }

    #[test]
    fn faults_and_unknown_labels_show_registers() {
        let r = Record { label: abi::msg::kernel_label::FAULT, len: 32, flags: Record::FLAG_MESSAGE, ..Record::empty(Kind::FaultDelivery) };
        let m = Message { mrs: [14, 0x4000, 0x20_1000, 6], payload: Vec::new() };
        let d = describe("fault", Schema::of(r.kind, r.label), &r, &m);
        assert_eq!(d.body, "vector 14, address 0x4000, rip 0x201000, error 0x6");
        let echo = Record { label: 7, ..r };
        assert_eq!(describe("7", Schema::of(Kind::Call, 7), &echo, &m).body, "registers 0xe 0x4000 0x201000 0x6");
    }
}
