//! AMF0, the value encoding of RTMP commands and FLV script data (Adobe "Action Message
//! Format -- AMF 0", 2007).
//!
//! Decoding is defensive: nesting is bounded ([`MAX_DEPTH`]), every declared count or length is
//! checked against the bytes actually left before anything is reserved, and the markers we do
//! not carry (reference, movie clip, record set, XML document, the `unsupported` marker and the
//! AMF3 switch) are reported as errors rather than guessed at.
//!
//! Strings that are not valid UTF-8 are converted lossily (invalid sequences become U+FFFD):
//! encoders in the wild put Latin-1 titles into `onMetaData`, and refusing the whole command for
//! that would be less useful than a replacement character. Decoding a re-encoded value is
//! therefore exact, but re-encoding a decoded value may differ from the original bytes where
//! they were not UTF-8.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::BufMut;

use crate::wire::Reader;

/// Type marker of a number (IEEE 754 double).
pub const MARKER_NUMBER: u8 = 0x00;
/// Type marker of a boolean.
pub const MARKER_BOOLEAN: u8 = 0x01;
/// Type marker of a string with a 16-bit length.
pub const MARKER_STRING: u8 = 0x02;
/// Type marker of an anonymous object.
pub const MARKER_OBJECT: u8 = 0x03;
/// Type marker of a movie clip (reserved, never valid on the wire).
pub const MARKER_MOVIE_CLIP: u8 = 0x04;
/// Type marker of null.
pub const MARKER_NULL: u8 = 0x05;
/// Type marker of undefined.
pub const MARKER_UNDEFINED: u8 = 0x06;
/// Type marker of a reference to an earlier complex value.
pub const MARKER_REFERENCE: u8 = 0x07;
/// Type marker of an ECMA (associative) array.
pub const MARKER_ECMA_ARRAY: u8 = 0x08;
/// Type marker ending the properties of an object or ECMA array.
pub const MARKER_OBJECT_END: u8 = 0x09;
/// Type marker of a strict (dense) array.
pub const MARKER_STRICT_ARRAY: u8 = 0x0a;
/// Type marker of a date.
pub const MARKER_DATE: u8 = 0x0b;
/// Type marker of a string with a 32-bit length.
pub const MARKER_LONG_STRING: u8 = 0x0c;
/// Type marker of the `unsupported` value.
pub const MARKER_UNSUPPORTED: u8 = 0x0d;
/// Type marker of a record set (reserved).
pub const MARKER_RECORDSET: u8 = 0x0e;
/// Type marker of an XML document.
pub const MARKER_XML_DOCUMENT: u8 = 0x0f;
/// Type marker of a typed (class-named) object.
pub const MARKER_TYPED_OBJECT: u8 = 0x10;
/// Type marker switching the rest of the value to AMF3.
pub const MARKER_AVMPLUS: u8 = 0x11;

/// Deepest nesting of objects and arrays [`decode`] accepts. Real RTMP commands nest two or
/// three levels; the bound keeps hostile input from exhausting the stack.
pub const MAX_DEPTH: usize = 32;

/// One AMF0 value.
///
/// Properties of objects and ECMA arrays are kept in wire order as a `Vec` of pairs: commands
/// are small, order matters to some peers, and duplicate keys survive a round trip.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// A number (every AMF0 number is a double).
    Number(f64),
    /// A boolean.
    Boolean(bool),
    /// A string of at most 65535 bytes on the wire.
    String(String),
    /// An anonymous object.
    Object(Vec<(String, Amf0Value)>),
    /// Null.
    Null,
    /// Undefined.
    Undefined,
    /// An ECMA array: an object with an (advisory) element count, as `onMetaData` uses.
    EcmaArray(Vec<(String, Amf0Value)>),
    /// A strict array.
    StrictArray(Vec<Amf0Value>),
    /// A date: milliseconds since the Unix epoch and a timezone offset in minutes (which the
    /// specification says to ignore, kept so a round trip is exact).
    Date {
        /// Milliseconds since 1970-01-01T00:00:00Z.
        millis: f64,
        /// Timezone offset in minutes; should be 0.
        timezone: i16,
    },
    /// A string with a 32-bit length.
    LongString(String),
    /// An object with a registered class name.
    TypedObject {
        /// The class name.
        class_name: String,
        /// The properties, in wire order.
        properties: Vec<(String, Amf0Value)>,
    },
}

impl Amf0Value {
    /// A string value; strings longer than 65535 bytes are encoded as long strings anyway.
    pub fn string(value: impl Into<String>) -> Self {
        Amf0Value::String(value.into())
    }

    /// An object from `(key, value)` pairs.
    pub fn object<K: Into<String>>(properties: impl IntoIterator<Item = (K, Amf0Value)>) -> Self {
        Amf0Value::Object(
            properties
                .into_iter()
                .map(|(key, value)| (key.into(), value))
                .collect(),
        )
    }

    /// The text of a string or long string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(text) | Amf0Value::LongString(text) => Some(text),
            _ => None,
        }
    }

    /// The value of a number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(number) => Some(*number),
            _ => None,
        }
    }

    /// The value of a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(value) => Some(*value),
            _ => None,
        }
    }

    /// The properties of an object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(properties)
            | Amf0Value::EcmaArray(properties)
            | Amf0Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The first property named `key` of an object, ECMA array or typed object.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    /// True for null and undefined.
    pub fn is_null_or_undefined(&self) -> bool {
        matches!(self, Amf0Value::Null | Amf0Value::Undefined)
    }
}

/// Why AMF0 data could not be decoded. Offsets count from the start of the decoded input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("AMF0 {what}: truncated at byte {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset of the field that did not fit.
        offset: usize,
    },
    /// A type marker we do not decode (reference, movie clip, record set, XML document,
    /// `unsupported`) or that AMF0 does not define.
    #[error("AMF0: unsupported type marker {marker:#04x} at byte {offset}")]
    UnsupportedMarker {
        /// The marker byte.
        marker: u8,
        /// Its offset.
        offset: usize,
    },
    /// The AMF3 switch marker: the value that follows is AMF3, which we do not decode.
    #[error("AMF0: AMF3 value at byte {offset} is not supported")]
    Amf3 {
        /// Offset of the switch marker.
        offset: usize,
    },
    /// An object-end marker where a value was expected.
    #[error("AMF0: object end marker outside an object at byte {offset}")]
    UnexpectedObjectEnd {
        /// Offset of the marker.
        offset: usize,
    },
    /// Objects or arrays nested deeper than the limit.
    #[error("AMF0: nesting deeper than {max} at byte {offset}")]
    TooDeep {
        /// The nesting limit.
        max: usize,
        /// Offset of the value that went too deep.
        offset: usize,
    },
    /// A strict array declared more elements than the remaining bytes could hold.
    #[error(
        "AMF0 strict array: {count} elements declared at byte {offset}, {remaining} bytes left"
    )]
    CountTooLarge {
        /// The declared element count.
        count: u32,
        /// Bytes left after the count.
        remaining: usize,
        /// Offset of the count.
        offset: usize,
    },
}

/// Decodes one value at the reader's position, with nesting bounded by [`MAX_DEPTH`].
pub fn decode(reader: &mut Reader<'_>) -> Result<Amf0Value, Amf0Error> {
    decode_with_max_depth(reader, MAX_DEPTH)
}

/// Decodes one value with nesting bounded by `max_depth` (0 allows only scalars).
pub fn decode_with_max_depth(
    reader: &mut Reader<'_>,
    max_depth: usize,
) -> Result<Amf0Value, Amf0Error> {
    Decoder { reader, max_depth }.value(0)
}

/// Decodes every value in `bytes`, as an RTMP command message body is a sequence of values.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut reader = Reader::new(bytes);
    let mut values = Vec::new();
    while !reader.is_empty() {
        values.push(decode(&mut reader)?);
    }
    Ok(values)
}

struct Decoder<'r, 'a> {
    reader: &'r mut Reader<'a>,
    max_depth: usize,
}

impl Decoder<'_, '_> {
    fn truncated(&self, what: &'static str) -> Amf0Error {
        Amf0Error::Truncated {
            what,
            offset: self.reader.offset(),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        let offset = self.reader.offset();
        let marker = self
            .reader
            .u8()
            .ok_or_else(|| self.truncated("type marker"))?;
        let nested = matches!(
            marker,
            MARKER_OBJECT | MARKER_ECMA_ARRAY | MARKER_STRICT_ARRAY | MARKER_TYPED_OBJECT
        );
        if nested && depth >= self.max_depth {
            return Err(Amf0Error::TooDeep {
                max: self.max_depth,
                offset,
            });
        }
        Ok(match marker {
            MARKER_NUMBER => Amf0Value::Number(self.number("number")?),
            MARKER_BOOLEAN => {
                Amf0Value::Boolean(self.reader.u8().ok_or_else(|| self.truncated("boolean"))? != 0)
            }
            MARKER_STRING => Amf0Value::String(self.short_string("string")?),
            MARKER_OBJECT => Amf0Value::Object(self.properties(depth)?),
            MARKER_NULL => Amf0Value::Null,
            MARKER_UNDEFINED => Amf0Value::Undefined,
            MARKER_ECMA_ARRAY => {
                // The count is advisory (encoders get it wrong); the end marker is what counts.
                self.reader
                    .u32_be()
                    .ok_or_else(|| self.truncated("ECMA array count"))?;
                Amf0Value::EcmaArray(self.properties(depth)?)
            }
            MARKER_OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd { offset }),
            MARKER_STRICT_ARRAY => {
                let count_offset = self.reader.offset();
                let count = self
                    .reader
                    .u32_be()
                    .ok_or_else(|| self.truncated("strict array count"))?;
                // Every element takes at least its marker byte, so a count above the bytes left
                // is a lie; checking it first bounds the allocation below.
                let remaining = self.reader.remaining();
                let len = usize::try_from(count).unwrap_or(usize::MAX);
                if len > remaining {
                    return Err(Amf0Error::CountTooLarge {
                        count,
                        remaining,
                        offset: count_offset,
                    });
                }
                let mut elements = Vec::with_capacity(len);
                for _ in 0..len {
                    elements.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(elements)
            }
            MARKER_DATE => {
                let millis = self.number("date")?;
                let timezone = self
                    .reader
                    .u16_be()
                    .ok_or_else(|| self.truncated("date timezone"))?;
                Amf0Value::Date {
                    millis,
                    timezone: i16::from_be_bytes(timezone.to_be_bytes()),
                }
            }
            MARKER_LONG_STRING => {
                let len = self
                    .reader
                    .u32_be()
                    .ok_or_else(|| self.truncated("long string length"))?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                Amf0Value::LongString(self.text(len, "long string")?)
            }
            MARKER_TYPED_OBJECT => {
                let class_name = self.short_string("typed object class name")?;
                Amf0Value::TypedObject {
                    class_name,
                    properties: self.properties(depth)?,
                }
            }
            MARKER_AVMPLUS => return Err(Amf0Error::Amf3 { offset }),
            _ => return Err(Amf0Error::UnsupportedMarker { marker, offset }),
        })
    }

    fn number(&mut self, what: &'static str) -> Result<f64, Amf0Error> {
        let bits = self.reader.u64_be().ok_or_else(|| self.truncated(what))?;
        Ok(f64::from_bits(bits))
    }

    fn short_string(&mut self, what: &'static str) -> Result<String, Amf0Error> {
        let len = self.reader.u16_be().ok_or_else(|| self.truncated(what))?;
        self.text(usize::from(len), what)
    }

    fn text(&mut self, len: usize, what: &'static str) -> Result<String, Amf0Error> {
        let bytes = self.reader.take(len).ok_or_else(|| self.truncated(what))?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// Reads `key, value` pairs up to the empty key followed by the object-end marker.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        let mut properties = Vec::new();
        loop {
            let key = self.short_string("property name")?;
            if key.is_empty() && self.reader.peek_u8() == Some(MARKER_OBJECT_END) {
                let _ = self.reader.skip(1);
                return Ok(properties);
            }
            let value = self.value(depth + 1)?;
            properties.push((key, value));
        }
    }
}

/// Appends the encoding of `value` to `out`.
///
/// Encoding cannot fail, so the two things AMF0 cannot express are handled as documented: a
/// `String` longer than 65535 bytes is written as a long string, and a property name longer
/// than 65535 bytes is cut at the last character boundary that fits.
pub fn encode(value: &Amf0Value, out: &mut impl BufMut) {
    match value {
        Amf0Value::Number(number) => {
            out.put_u8(MARKER_NUMBER);
            out.put_f64(*number);
        }
        Amf0Value::Boolean(flag) => {
            out.put_u8(MARKER_BOOLEAN);
            out.put_u8(u8::from(*flag));
        }
        Amf0Value::String(text) => match u16::try_from(text.len()) {
            Ok(len) => {
                out.put_u8(MARKER_STRING);
                out.put_u16(len);
                out.put_slice(text.as_bytes());
            }
            Err(_) => put_long_string(text, out),
        },
        Amf0Value::Object(properties) => {
            out.put_u8(MARKER_OBJECT);
            put_properties(properties, out);
        }
        Amf0Value::Null => out.put_u8(MARKER_NULL),
        Amf0Value::Undefined => out.put_u8(MARKER_UNDEFINED),
        Amf0Value::EcmaArray(properties) => {
            out.put_u8(MARKER_ECMA_ARRAY);
            out.put_u32(u32::try_from(properties.len()).unwrap_or(u32::MAX));
            put_properties(properties, out);
        }
        Amf0Value::StrictArray(elements) => {
            out.put_u8(MARKER_STRICT_ARRAY);
            // A Vec longer than u32::MAX cannot exist in memory we could send; truncating keeps
            // the output self-consistent if it ever did.
            let count = u32::try_from(elements.len()).unwrap_or(u32::MAX);
            out.put_u32(count);
            for element in elements.iter().take(count as usize) {
                encode(element, out);
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.put_u8(MARKER_DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Amf0Value::LongString(text) => put_long_string(text, out),
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => {
            out.put_u8(MARKER_TYPED_OBJECT);
            put_short_string(class_name, out);
            put_properties(properties, out);
        }
    }
}

/// Appends the encoding of each value in turn, as an RTMP command body.
pub fn encode_all<'v>(values: impl IntoIterator<Item = &'v Amf0Value>, out: &mut impl BufMut) {
    for value in values {
        encode(value, out);
    }
}

/// Appends a string value, in the short form when it fits and the long form otherwise.
pub fn encode_str(text: &str, out: &mut impl BufMut) {
    match u16::try_from(text.len()) {
        Ok(len) => {
            out.put_u8(MARKER_STRING);
            out.put_u16(len);
            out.put_slice(text.as_bytes());
        }
        Err(_) => put_long_string(text, out),
    }
}

fn put_long_string(text: &str, out: &mut impl BufMut) {
    out.put_u8(MARKER_LONG_STRING);
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.put_u32(len);
    out.put_slice(text.as_bytes().get(..len as usize).unwrap_or_default());
}

/// Writes a u16-length string, cut at a character boundary if it does not fit.
fn put_short_string(text: &str, out: &mut impl BufMut) {
    let mut end = text.len().min(usize::from(u16::MAX));
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.get(..end).unwrap_or_default();
    out.put_u16(u16::try_from(cut.len()).unwrap_or(0));
    out.put_slice(cut.as_bytes());
}

fn put_properties(properties: &[(String, Amf0Value)], out: &mut impl BufMut) {
    for (key, value) in properties {
        put_short_string(key, out);
        encode(value, out);
    }
    out.put_u16(0);
    out.put_u8(MARKER_OBJECT_END);
}

impl From<f64> for Amf0Value {
    fn from(number: f64) -> Self {
        Amf0Value::Number(number)
    }
}

impl From<bool> for Amf0Value {
    fn from(flag: bool) -> Self {
        Amf0Value::Boolean(flag)
    }
}

impl From<&str> for Amf0Value {
    fn from(text: &str) -> Self {
        Amf0Value::String(text.to_owned())
    }
}

impl From<String> for Amf0Value {
    fn from(text: String) -> Self {
        Amf0Value::String(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn encoded(value: &Amf0Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(value, &mut out);
        out
    }

    #[test]
    fn decodes_a_connect_command() {
        // "connect", 1.0, {app: "live", tcUrl: "rtmp://h/live", fpad: false}
        let mut body = Vec::new();
        body.extend_from_slice(&[0x02, 0x00, 0x07]);
        body.extend_from_slice(b"connect");
        body.push(0x00);
        body.extend_from_slice(&1.0f64.to_be_bytes());
        body.push(0x03);
        for (key, text) in [("app", "live"), ("tcUrl", "rtmp://h/live")] {
            body.extend_from_slice(&(key.len() as u16).to_be_bytes());
            body.extend_from_slice(key.as_bytes());
            body.push(0x02);
            body.extend_from_slice(&(text.len() as u16).to_be_bytes());
            body.extend_from_slice(text.as_bytes());
        }
        body.extend_from_slice(&[0x00, 0x04]);
        body.extend_from_slice(b"fpad");
        body.extend_from_slice(&[0x01, 0x00]);
        body.extend_from_slice(&[0x00, 0x00, 0x09]);

        let values = decode_all(&body).unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_number(), Some(1.0));
        assert_eq!(
            values[2].get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
        assert_eq!(
            values[2].get("tcUrl").and_then(Amf0Value::as_str),
            Some("rtmp://h/live")
        );
        assert_eq!(
            values[2].get("fpad").and_then(Amf0Value::as_bool),
            Some(false)
        );
        assert_eq!(values[2].get("missing"), None);

        let mut again = Vec::new();
        encode_all(&values, &mut again);
        assert_eq!(again, body);
    }

    #[test]
    fn encodes_each_type_as_the_specification_lays_it_out() {
        assert_eq!(encoded(&Amf0Value::Null), [0x05]);
        assert_eq!(encoded(&Amf0Value::Undefined), [0x06]);
        assert_eq!(encoded(&Amf0Value::Boolean(true)), [0x01, 0x01]);
        assert_eq!(
            encoded(&Amf0Value::Number(2.5)),
            [0x00, 0x40, 0x04, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(encoded(&"ab".into()), [0x02, 0x00, 0x02, b'a', b'b']);
        assert_eq!(
            encoded(&Amf0Value::LongString("a".into())),
            [0x0c, 0, 0, 0, 1, b'a']
        );
        assert_eq!(
            encoded(&Amf0Value::Date {
                millis: 0.0,
                timezone: -60
            }),
            [0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xc4]
        );
        assert_eq!(
            encoded(&Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Null)])),
            [0x08, 0, 0, 0, 1, 0, 1, b'k', 0x05, 0, 0, 0x09]
        );
        assert_eq!(
            encoded(&Amf0Value::StrictArray(vec![Amf0Value::Null])),
            [0x0a, 0, 0, 0, 1, 0x05]
        );
        assert_eq!(
            encoded(&Amf0Value::TypedObject {
                class_name: "C".into(),
                properties: vec![]
            }),
            [0x10, 0, 1, b'C', 0, 0, 0x09]
        );
    }

    #[test]
    fn strings_too_long_for_sixteen_bits_become_long_strings() {
        let text = "x".repeat(70_000);
        let bytes = encoded(&Amf0Value::String(text.clone()));
        assert_eq!(bytes[0], MARKER_LONG_STRING);
        assert_eq!(decode_all(&bytes).unwrap(), [Amf0Value::LongString(text)]);
    }

    #[test]
    fn unsupported_markers_are_clean_errors() {
        assert_eq!(
            decode_all(&[0x05, 0x11, 0x04]),
            Err(Amf0Error::Amf3 { offset: 1 })
        );
        for marker in [0x04, 0x07, 0x0d, 0x0e, 0x0f, 0x12, 0xff] {
            assert_eq!(
                decode_all(&[marker, 0, 1]),
                Err(Amf0Error::UnsupportedMarker { marker, offset: 0 })
            );
        }
        assert_eq!(
            decode_all(&[0x09]),
            Err(Amf0Error::UnexpectedObjectEnd { offset: 0 })
        );
    }

    #[test]
    fn lying_strict_array_count_is_refused_before_allocating() {
        let err = decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x05]).unwrap_err();
        assert_eq!(
            err,
            Amf0Error::CountTooLarge {
                count: u32::MAX,
                remaining: 1,
                offset: 1
            }
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut bytes = [0x0a, 0, 0, 0, 1].repeat(MAX_DEPTH + 1);
        bytes.push(0x05);
        assert!(matches!(
            decode_all(&bytes),
            Err(Amf0Error::TooDeep { max: MAX_DEPTH, .. })
        ));
        let mut ok = [0x0a, 0, 0, 0, 1].repeat(MAX_DEPTH);
        ok.push(0x05);
        assert!(decode_all(&ok).is_ok());
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let value = Amf0Value::object([
            ("a", Amf0Value::Number(1.0)),
            ("b", Amf0Value::EcmaArray(vec![("c".into(), "text".into())])),
            (
                "d",
                Amf0Value::Date {
                    millis: 5.0,
                    timezone: 0,
                },
            ),
        ]);
        let bytes = encoded(&value);
        for len in 1..bytes.len() {
            assert!(
                matches!(
                    decode(&mut Reader::new(&bytes[..len])),
                    Err(Amf0Error::Truncated { .. })
                ),
                "len {len}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let values = decode_all(&[0x02, 0, 2, b'a', 0xe9]).unwrap();
        assert_eq!(values, [Amf0Value::String("a\u{fffd}".into())]);
    }

    #[test]
    fn empty_key_without_end_marker_is_an_ordinary_property() {
        let value = Amf0Value::object([("", Amf0Value::Null)]);
        let bytes = encoded(&value);
        assert_eq!(decode_all(&bytes).unwrap(), [value]);
    }

    fn arb_key() -> BoxedStrategy<String> {
        ".{0,8}".boxed()
    }

    fn arb_value() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            any::<f64>().prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,16}".prop_map(Amf0Value::String),
            ".{0,16}".prop_map(Amf0Value::LongString),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
            (any::<f64>(), any::<i16>())
                .prop_map(|(millis, timezone)| Amf0Value::Date { millis, timezone }),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let props = proptest::collection::vec((arb_key(), inner.clone()), 0..6).boxed();
            prop_oneof![
                props.clone().prop_map(Amf0Value::Object),
                props.clone().prop_map(Amf0Value::EcmaArray),
                proptest::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
                (arb_key(), props).prop_map(|(class_name, properties)| {
                    Amf0Value::TypedObject {
                        class_name,
                        properties,
                    }
                }),
            ]
        })
    }

    fn contains_nan(value: &Amf0Value) -> bool {
        match value {
            Amf0Value::Number(n) | Amf0Value::Date { millis: n, .. } => n.is_nan(),
            Amf0Value::StrictArray(elements) => elements.iter().any(contains_nan),
            other => other
                .properties()
                .is_some_and(|props| props.iter().any(|(_, v)| contains_nan(v))),
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(values in proptest::collection::vec(arb_value(), 0..4)) {
            let mut bytes = Vec::new();
            encode_all(&values, &mut bytes);
            let decoded = decode_all(&bytes).unwrap();
            // NaN != NaN, so compare the re-encoding bit for bit as well as the values.
            let mut again = Vec::new();
            encode_all(&decoded, &mut again);
            prop_assert_eq!(&again, &bytes);
            if !values.iter().any(contains_nan) {
                prop_assert_eq!(decoded, values);
            }
        }

        #[test]
        fn decode_never_panics_and_reencodes_stably(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(values) = decode_all(&bytes) {
                let mut first = Vec::new();
                encode_all(&values, &mut first);
                let again = decode_all(&first).unwrap();
                let mut second = Vec::new();
                encode_all(&again, &mut second);
                prop_assert_eq!(first, second);
            }
        }

        #[test]
        fn decode_never_panics_on_structured_garbage(
            parts in proptest::collection::vec(
                prop_oneof![
                    (0u8..0x13).prop_map(|m| vec![m]),
                    Just(vec![0, 0, 9]),
                    Just(vec![0xff, 0xff, 0xff, 0xff]),
                    proptest::collection::vec(any::<u8>(), 0..4),
                ],
                0..64,
            )
        ) {
            let bytes = parts.concat();
            let _ = decode_all(&bytes);
        }
    }
}
