//! Fuzz body for the AMF0 decoder.

use mediakit_core::amf0::{self, Amf0Value};
use mediakit_core::wire::Reader;

/// Decodes arbitrary bytes as an AMF0 value sequence; whatever decodes must re-encode to bytes
/// that decode to an equal value (compared by re-encoding, so NaN payloads count as equal).
pub fn amf0(data: &[u8]) {
    // Value by value through one reader, as the RTMP command parser uses it: every step must
    // consume at least one byte or stop with an error.
    let mut reader = Reader::new(data);
    while !reader.is_empty() {
        let before = reader.offset();
        if amf0::decode(&mut reader).is_err() {
            break;
        }
        assert!(reader.offset() > before, "decode consumed nothing");
    }

    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let mut first = Vec::new();
    amf0::encode_all(&values, &mut first);
    let again: Vec<Amf0Value> = amf0::decode_all(&first).expect("re-encoded AMF0 must decode");
    assert_eq!(again.len(), values.len());
    let mut second = Vec::new();
    amf0::encode_all(&again, &mut second);
    assert_eq!(first, second, "AMF0 re-encoding is not stable");
}
