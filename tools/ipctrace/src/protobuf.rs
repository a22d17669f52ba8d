//! A minimal protobuf writer: varint, fixed64, length-delimited fields, and
//! nested messages, which is all the Perfetto export needs.
//!
//! Owns the wire encoding only; which fields mean what is `perfetto`'s
//! business. The test-only reader parses the output back for the tests.

/// Wire types (the low three bits of a field key).
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

/// A message being written.
#[derive(Clone, Debug, Default)]
pub struct Msg {
    buf: Vec<u8>,
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl Msg {
    pub fn new() -> Msg {
        Msg::default()
    }

    fn key(&mut self, field: u32, wire: u64) {
        put_varint(&mut self.buf, (u64::from(field) << 3) | wire);
    }

    /// A uint64/uint32/enum/bool field.
    pub fn uint(&mut self, field: u32, v: u64) -> &mut Msg {
        self.key(field, VARINT);
        put_varint(&mut self.buf, v);
        self
    }

    /// An int64/int32 field: negative numbers are ten-byte varints.
    pub fn int(&mut self, field: u32, v: i64) -> &mut Msg {
        self.uint(field, v as u64)
    }

    pub fn fixed64(&mut self, field: u32, v: u64) -> &mut Msg {
        self.key(field, FIXED64);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Msg {
        self.key(field, LEN);
        put_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn string(&mut self, field: u32, v: &str) -> &mut Msg {
        self.bytes(field, v.as_bytes())
    }

    pub fn message(&mut self, field: u32, m: &Msg) -> &mut Msg {
        self.bytes(field, &m.buf)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Parses protobuf back into fields, for tests.
#[cfg(test)]
pub mod read {
    /// One field's value.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Value<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
        Fixed32(u32),
    }

    impl<'a> Value<'a> {
        pub fn uint(&self) -> u64 {
            match self {
                Value::Varint(v) | Value::Fixed64(v) => *v,
                other => panic!("not an integer: {other:?}"),
            }
        }

        pub fn bytes(&self) -> &'a [u8] {
            match self {
                Value::Bytes(b) => b,
                other => panic!("not length-delimited: {other:?}"),
            }
        }

        pub fn str(&self) -> &'a str {
            std::str::from_utf8(self.bytes()).expect("utf-8")
        }
    }

    fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*pos)?;
            *pos += 1;
            v |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// Every (field number, value) of a message, or `None` if malformed.
    pub fn fields(b: &[u8]) -> Option<Vec<(u32, Value<'_>)>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            let key = varint(b, &mut pos)?;
            let field = u32::try_from(key >> 3).ok()?;
            let v = match key & 7 {
                0 => Value::Varint(varint(b, &mut pos)?),
                1 => {
                    let raw = b.get(pos..pos + 8)?;
                    pos += 8;
                    Value::Fixed64(u64::from_le_bytes(raw.try_into().ok()?))
                }
                2 => {
                    let len = usize::try_from(varint(b, &mut pos)?).ok()?;
                    let raw = b.get(pos..pos.checked_add(len)?)?;
                    pos += len;
                    Value::Bytes(raw)
                }
                5 => {
                    let raw = b.get(pos..pos + 4)?;
                    pos += 4;
                    Value::Fixed32(u32::from_le_bytes(raw.try_into().ok()?))
                }
                _ => return None,
            };
            out.push((field, v));
        }
        Some(out)
    }

    /// The first value of `field`.
    pub fn get<'a, 'b>(fs: &'b [(u32, Value<'a>)], field: u32) -> Option<&'b Value<'a>> {
        fs.iter().find(|(f, _)| *f == field).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::read::{Value, fields};
    use super::*;

    #[test]
    fn known_bytes() {
        // The protobuf documentation's example: field 1 = 150 is 08 96 01.
        let mut m = Msg::new();
        m.uint(1, 150);
        assert_eq!(m.clone().into_bytes(), [0x08, 0x96, 0x01]);
        m.string(2, "testing");
        let b = m.into_bytes();
        assert_eq!(&b[3..], [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']);
    }

    #[test]
    fn round_trip_through_the_reader() {
        let mut inner = Msg::new();
        inner.int(1, -2);
        let mut m = Msg::new();
        m.fixed64(47, 0xDEAD_BEEF).message(60, &inner).uint(9, 0);
        let b = m.into_bytes();
        let fs = fields(&b).unwrap();
        assert_eq!(fs[0], (47, Value::Fixed64(0xDEAD_BEEF)));
        assert_eq!(fs[2], (9, Value::Varint(0)));
        let inner = fields(fs[1].1.bytes()).unwrap();
        assert_eq!(inner, vec![(1, Value::Varint(-2i64 as u64))]);
        // A truncated message is reported, not a panic.
        assert_eq!(fields(&b[..b.len() - 1]), None);
    }
}
