//! Fuzz body for the RTSP message and interleaved frame decoder.

use bytes::BytesMut;
use mediakit_core::rtsp::message::{Input, RtspDecoder, RtspLimits};

/// Decodes arbitrary bytes whole and in reads of a fuzzer-chosen size: both must yield the same
/// items and the same verdict, and the buffer never holds more than the bounds allow.
pub fn rtsp_message(data: &[u8]) {
    let decoder = RtspDecoder::new(RtspLimits {
        max_head_bytes: 2048,
        max_headers: 16,
        max_body_bytes: 4096,
    });
    let (read_size, input) = crate::read_sizes(data);
    let whole = decode(&decoder, &[input]);
    let pieces: Vec<&[u8]> = input.chunks(read_size).collect();
    let split = decode(&decoder, &pieces);
    assert_eq!(whole.0, split.0);
    assert_eq!(whole.1.is_ok(), split.1.is_ok());
    for item in &whole.0 {
        if let Input::Request(request) = item {
            // What we decoded must encode to something that decodes the same.
            let mut out = BytesMut::new();
            request.encode(&mut out);
            let again = decoder.decode(&mut out);
            if let Ok(Some(Input::Request(again))) = again {
                assert_eq!(again.method, request.method);
                assert_eq!(again.body, request.body);
                assert_eq!(again.cseq(), request.cseq());
            }
        }
    }
}

fn decode(decoder: &RtspDecoder, pieces: &[&[u8]]) -> (Vec<Input>, Result<(), ()>) {
    let mut buffer = BytesMut::new();
    let mut items = Vec::new();
    for piece in pieces {
        buffer.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(_) => return (items, Err(())),
            }
        }
        assert!(buffer.len() <= 2048 + 4096 + 65535 + piece.len());
    }
    (items, Ok(()))
}
