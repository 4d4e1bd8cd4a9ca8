use alloc::vec;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::outq::OutQueue;
use crate::rtmp::message::{types, ControlMessage};

fn decode_all(decoder: &mut ChunkDecoder, bytes: &[u8]) -> Result<Vec<Message>, ChunkError> {
    let mut input = BytesMut::from(bytes);
    let mut messages = Vec::new();
    while let Some(message) = decoder.decode(&mut input)? {
        messages.push(message);
    }
    assert!(input.is_empty(), "{} bytes left over", input.len());
    Ok(messages)
}

fn header(csid: u32, timestamp: u32, type_id: u8, stream_id: u32) -> MessageHeader {
    MessageHeader {
        csid,
        timestamp,
        type_id,
        stream_id,
    }
}

fn flatten(out: &OutQueue) -> Vec<u8> {
    out.segments().flatten().copied().collect()
}

#[test]
fn each_header_format() {
    let bytes: &[u8] = &[
        // fmt 0, csid 3: ts 100, length 3, type 20, stream 1 (little-endian).
        0x03, 0, 0, 100, 0, 0, 3, 20, 1, 0, 0, 0, b'a', b'b', b'c', //
        // fmt 1: delta 10, length 2, type 8.
        0x43, 0, 0, 10, 0, 0, 2, 8, b'd', b'e', //
        // fmt 2: delta 5.
        0x83, 0, 0, 5, b'f', b'g', //
        // fmt 3 starting a new message: same delta again.
        0xC3, b'h', b'i',
    ];
    let messages = decode_all(&mut ChunkDecoder::new(1000), bytes).unwrap();
    let expected = [
        (header(3, 100, 20, 1), &b"abc"[..]),
        (header(3, 110, 8, 1), b"de"),
        (header(3, 115, 8, 1), b"fg"),
        (header(3, 120, 8, 1), b"hi"),
    ];
    assert_eq!(messages.len(), expected.len());
    for (message, (header, payload)) in messages.iter().zip(expected) {
        assert_eq!(message.header, header);
        assert_eq!(&message.payload[..], payload);
    }
}

#[test]
fn two_and_three_byte_basic_headers() {
    let bytes: &[u8] = &[
        // csid 100 = 64 + 36.
        0x00, 36, 0, 0, 1, 0, 0, 1, 9, 0, 0, 0, 0, 0xAA, //
        // csid 1000 = 64 + 0x03A8, low byte first.
        0x01, 0xA8, 0x03, 0, 0, 2, 0, 0, 1, 8, 0, 0, 0, 0, 0xBB, //
        // csid 65599, the largest.
        0x01, 0xFF, 0xFF, 0, 0, 3, 0, 0, 1, 8, 0, 0, 0, 0, 0xCC, //
        // fmt 2 on csid 1000 again.
        0x81, 0xA8, 0x03, 0, 0, 1, 0xDD,
    ];
    let messages = decode_all(&mut ChunkDecoder::new(1000), bytes).unwrap();
    let got: Vec<(u32, u32, u8)> = messages
        .iter()
        .map(|m| (m.header.csid, m.header.timestamp, m.payload[0]))
        .collect();
    assert_eq!(
        got,
        vec![
            (100, 1, 0xAA),
            (1000, 2, 0xBB),
            (65599, 3, 0xCC),
            (1000, 3, 0xDD)
        ]
    );

    // The encoder picks the same forms.
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    for csid in [63, 64, 319, 320, 65599] {
        encoder
            .write(
                &header(csid, 0, 8, 0),
                &[Bytes::from_static(b"x")],
                &mut out,
            )
            .unwrap();
    }
    let encoded = flatten(&out);
    assert_eq!(&encoded[..1], &[63]);
    assert_eq!(&encoded[13..15], &[0, 0]);
    assert_eq!(&encoded[27..29], &[0, 255]);
    assert_eq!(&encoded[41..44], &[1, 0, 1]);
    assert_eq!(&encoded[56..59], &[1, 0xFF, 0xFF]);
    let decoded = decode_all(&mut ChunkDecoder::new(10), &encoded).unwrap();
    let csids: Vec<u32> = decoded.iter().map(|m| m.header.csid).collect();
    assert_eq!(csids, vec![63, 64, 319, 320, 65599]);
}

#[test]
fn extended_timestamp_repeats_on_continuation_chunks() {
    let mut bytes = vec![
        0x04, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0, // fmt 0, extended
        0x01, 0x00, 0x00, 0x00, // timestamp 0x01000000
    ];
    bytes.extend_from_slice(&[1; 128]);
    bytes.extend_from_slice(&[0xC4, 0x01, 0x00, 0x00, 0x00]);
    bytes.extend_from_slice(&[2; 72]);
    // fmt 1 with an extended delta, then a fmt 3 new message reusing it.
    bytes.extend_from_slice(&[
        0x44, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 0x01, 0x00, 0x00, 0x05, 3,
    ]);
    bytes.extend_from_slice(&[0xC4, 0x01, 0x00, 0x00, 0x05, 4]);
    let messages = decode_all(&mut ChunkDecoder::new(1000), &bytes).unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].header, header(4, 0x0100_0000, 9, 1));
    assert_eq!(messages[0].payload.len(), 200);
    assert!(messages[0].payload[..128].iter().all(|&b| b == 1));
    assert!(messages[0].payload[128..].iter().all(|&b| b == 2));
    assert_eq!(messages[1].header.timestamp, 0x0200_0005);
    assert_eq!(&messages[1].payload[..], &[3]);
    assert_eq!(messages[2].header.timestamp, 0x0300_000A);
    assert_eq!(&messages[2].payload[..], &[4]);

    // The encoder writes the extended field on every chunk, too.
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    let payload = Bytes::from(vec![0u8; 200]);
    encoder
        .write(&header(4, 0x0100_0000, 9, 1), &[payload], &mut out)
        .unwrap();
    let encoded = flatten(&out);
    assert_eq!(&encoded[1..4], &[0xFF; 3]);
    assert_eq!(&encoded[12..16], &[1, 0, 0, 0]);
    assert_eq!(&encoded[16 + 128..16 + 128 + 5], &[0xC4, 1, 0, 0, 0]);
    assert_eq!(encoded.len(), 16 + 128 + 5 + 72);
}

#[test]
fn chunks_of_different_streams_interleave() {
    let mut bytes = vec![0x04, 0, 0, 0, 0, 0, 130, 9, 1, 0, 0, 0];
    bytes.extend_from_slice(&[9; 128]);
    bytes.extend_from_slice(&[0x05, 0, 0, 7, 0, 0, 2, 8, 1, 0, 0, 0, 8, 8]);
    bytes.extend_from_slice(&[0xC4, 9, 9]);
    let messages = decode_all(&mut ChunkDecoder::new(1000), &bytes).unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].header, header(5, 7, 8, 1));
    assert_eq!(&messages[0].payload[..], &[8, 8]);
    assert_eq!(messages[1].header, header(4, 0, 9, 1));
    assert_eq!(messages[1].payload.len(), 130);
}

#[test]
fn abort_discards_the_partial_message() {
    let mut first = vec![0x04, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0];
    first.extend_from_slice(&[1; 128]);
    let restart: &[u8] = &[0x04, 0, 0, 5, 0, 0, 1, 9, 1, 0, 0, 0, 7];

    let mut decoder = ChunkDecoder::new(1000);
    assert!(decode_all(&mut decoder, &first).unwrap().is_empty());
    decoder.abort(4);
    let messages = decode_all(&mut decoder, restart).unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].header.timestamp, 5);
    assert_eq!(&messages[0].payload[..], &[7]);

    // Without the abort the new header is a protocol error.
    let mut decoder = ChunkDecoder::new(1000);
    decode_all(&mut decoder, &first).unwrap();
    assert!(matches!(
        decode_all(&mut decoder, restart),
        Err(ChunkError::InterruptedMessage {
            csid: 4,
            offset: 140
        })
    ));
}

#[test]
fn set_chunk_size_applies_to_the_next_chunk() {
    let mut bytes = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 1, 0];
    bytes.extend_from_slice(&[0x03, 0, 0, 0, 0, 0, 200, 20, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[5; 200]);
    let mut decoder = ChunkDecoder::new(1000);
    let mut input = BytesMut::from(&bytes[..]);
    let control = decoder.decode(&mut input).unwrap().unwrap();
    assert_eq!(control.header.type_id, types::SET_CHUNK_SIZE);
    let ControlMessage::SetChunkSize(size) =
        ControlMessage::parse(control.header.type_id, &control.payload).unwrap()
    else {
        panic!("not a Set Chunk Size");
    };
    decoder.set_chunk_size(size).unwrap();
    let start = input.as_ptr() as usize;
    let message = decoder.decode(&mut input).unwrap().unwrap();
    assert_eq!(message.payload.len(), 200);
    assert!(input.is_empty());
    // A message in one chunk is the input's own memory.
    assert_eq!(message.payload.as_ptr() as usize, start + 12);
}

#[test]
fn limits_are_enforced_before_the_payload_arrives() {
    // Only the header of a 1000-byte message: rejected at once.
    let bytes: &[u8] = &[0x03, 0, 0, 0, 0, 0x03, 0xE8, 9, 0, 0, 0, 0];
    let mut decoder = ChunkDecoder::new(999);
    let error = decode_all(&mut decoder, bytes).unwrap_err();
    assert_eq!(
        error,
        ChunkError::MessageTooLong {
            csid: 3,
            length: 1000,
            max: 999,
            offset: 0
        }
    );
    // The error latches.
    let mut more = BytesMut::from(&[0xC3][..]);
    assert_eq!(decoder.decode(&mut more), Err(error));

    let mut decoder = ChunkDecoder::new(100).with_max_chunk_streams(2);
    let three: &[u8] = &[
        0x03, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, //
        0x04, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, //
        0x05, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0,
    ];
    assert!(matches!(
        decode_all(&mut decoder, three),
        Err(ChunkError::TooManyChunkStreams {
            csid: 5,
            offset: 24,
            ..
        })
    ));

    let mut decoder = ChunkDecoder::new(100);
    assert!(matches!(
        decode_all(&mut decoder, &[0x43, 0, 0, 0, 0, 0, 0, 9]),
        Err(ChunkError::NoPreviousHeader {
            csid: 3,
            fmt: 1,
            ..
        })
    ));
    assert!(ChunkDecoder::new(1).set_chunk_size(0).is_err());
    assert!(ChunkDecoder::new(1).set_chunk_size(0x8000_0000).is_err());
    assert!(ChunkDecoder::new(1).set_chunk_size(0x7FFF_FFFF).is_ok());
}

#[test]
fn incomplete_input_is_not_consumed() {
    let bytes: &[u8] = &[0x03, 0, 0, 1, 0, 0, 3, 9, 0, 0, 0, 0, 1, 2, 3];
    for cut in 0..bytes.len() {
        let mut decoder = ChunkDecoder::new(100);
        let mut input = BytesMut::from(&bytes[..cut]);
        assert_eq!(decoder.decode(&mut input), Ok(None));
        assert_eq!(input.len(), cut);
        input.extend_from_slice(&bytes[cut..]);
        let message = decoder.decode(&mut input).unwrap().unwrap();
        assert_eq!(&message.payload[..], &[1, 2, 3]);
    }
}

#[test]
fn encoder_compresses_headers_per_stream() {
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    let body = [Bytes::from_static(b"xy")];
    let mut sizes = Vec::new();
    for (ts, type_id, stream_id, len) in [
        (40, 9, 1, 2),  // fmt 0: first on the stream
        (80, 9, 1, 2),  // fmt 2: same length and type (never 3 right after 0)
        (120, 9, 1, 2), // fmt 3: same delta
        (130, 9, 1, 3), // fmt 1: length changed
        (90, 9, 1, 3),  // fmt 0: timestamp went backwards
        (95, 9, 2, 3),  // fmt 0: stream id changed
    ] {
        let before = out.queued_bytes();
        let body: &[Bytes] = if len == 2 {
            &body
        } else {
            &[Bytes::from_static(b"xyz")]
        };
        encoder
            .write(&header(6, ts, type_id, stream_id), body, &mut out)
            .unwrap();
        sizes.push(out.queued_bytes() - before - len);
    }
    assert_eq!(sizes, vec![12, 4, 1, 8, 12, 12]);
    let decoded = decode_all(&mut ChunkDecoder::new(100), &flatten(&out)).unwrap();
    let stamps: Vec<(u32, u32)> = decoded
        .iter()
        .map(|m| (m.header.timestamp, m.header.stream_id))
        .collect();
    assert_eq!(
        stamps,
        vec![(40, 1), (80, 1), (120, 1), (130, 1), (90, 1), (95, 2)]
    );
}

#[test]
fn encoder_rejects_what_cannot_be_sent() {
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    assert_eq!(
        encoder.write(&header(1, 0, 9, 0), &[], &mut out),
        Err(ChunkError::InvalidChunkStreamId { csid: 1 })
    );
    assert_eq!(
        encoder.write(&header(65600, 0, 9, 0), &[], &mut out),
        Err(ChunkError::InvalidChunkStreamId { csid: 65600 })
    );
    let big = Bytes::from(vec![0u8; 0x0100_0000]);
    assert_eq!(
        encoder.write(&header(3, 0, 9, 0), &[big], &mut out),
        Err(ChunkError::PayloadTooLong {
            length: 0x0100_0000
        })
    );
    assert!(out.is_empty());
}

#[test]
fn write_control_switches_chunk_size_after_sending() {
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    encoder
        .write_control(&ControlMessage::SetChunkSize(4096), &mut out)
        .unwrap();
    assert_eq!(encoder.chunk_size(), 4096);
    assert_eq!(
        flatten(&out),
        vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0]
    );
}

#[test]
fn encoding_references_the_payload() {
    let payload = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    let flv_header = Bytes::from_static(&[0x17, 1, 0, 0, 0]);
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(4096).unwrap();
    let mut out = OutQueue::new();
    encoder
        .write(
            &header(6, 1000, 9, 1),
            &[flv_header.clone(), payload.clone()],
            &mut out,
        )
        .unwrap();

    let range = payload.as_ptr() as usize..payload.as_ptr() as usize + payload.len();
    let inside: Vec<&[u8]> = out
        .segments()
        .filter(|s| range.contains(&(s.as_ptr() as usize)))
        .collect();
    // 5 + 100000 bytes in 4096-byte chunks: the first chunk holds the FLV header and 4091
    // payload bytes, the rest 24 more pieces of the payload itself.
    assert_eq!(inside.len(), 25);
    assert_eq!(inside.iter().map(|s| s.len()).sum::<usize>(), payload.len());
    // Headers: 12 bytes for the first chunk, 1 for each of the 24 continuations.
    assert_eq!(out.queued_bytes(), 100_005 + 12 + 24);

    let decoded = {
        let mut decoder = ChunkDecoder::new(200_000);
        decoder.set_chunk_size(4096).unwrap();
        decode_all(&mut decoder, &flatten(&out)).unwrap()
    };
    assert_eq!(decoded.len(), 1);
    assert_eq!(&decoded[0].payload[..5], &flv_header[..]);
    assert_eq!(&decoded[0].payload[5..], &payload[..]);
}

// ---- properties ----

#[derive(Debug, Clone)]
struct TestMessage {
    header: MessageHeader,
    /// Lengths of the body pieces; content is derived from the index so big payloads are cheap
    /// to generate.
    pieces: Vec<usize>,
    /// Switch the chunk size (via Set Chunk Size on csid 2) before this message.
    new_chunk_size: Option<u32>,
}

impl TestMessage {
    fn body(&self, seed: usize) -> Vec<Bytes> {
        let mut at = seed;
        self.pieces
            .iter()
            .map(|&len| {
                let piece: Vec<u8> = (at..at + len).map(|i| (i * 7 + i / 251) as u8).collect();
                at += len;
                Bytes::from(piece)
            })
            .collect()
    }
}

fn chunk_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => 1u32..=16,
        5 => 17u32..=65536,
        1 => Just(0x00FF_FFFF),
        1 => Just(MAX_CHUNK_SIZE),
    ]
}

fn timestamp() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..100_000, 0x00FF_FFF0u32..0x0100_0010, any::<u32>(),]
}

fn test_message() -> impl Strategy<Value = TestMessage> {
    let csid = prop_oneof![3u32..8, 60u32..70, 315u32..325, Just(MAX_CSID)];
    let piece = prop_oneof![8 => 0usize..400, 1 => 0usize..70_000];
    (
        csid,
        timestamp(),
        any::<u8>(),
        prop_oneof![Just(0u32), Just(1), any::<u32>()],
        proptest::collection::vec(piece, 1..3),
        proptest::option::weighted(0.1, chunk_size()),
    )
        .prop_map(
            |(csid, timestamp, type_id, stream_id, pieces, new_chunk_size)| TestMessage {
                header: header(csid, timestamp, type_id, stream_id),
                pieces,
                new_chunk_size,
            },
        )
}

/// Makes timestamps mostly increase per chunk stream, as real streams do, so that every
/// header format gets exercised, while keeping some arbitrary jumps.
fn realistic(mut messages: Vec<TestMessage>, deltas: &[u32]) -> Vec<TestMessage> {
    let mut last: Vec<(u32, u32)> = Vec::new();
    for (i, message) in messages.iter_mut().enumerate() {
        let delta = deltas.get(i).copied().unwrap_or(0);
        if delta == u32::MAX {
            continue;
        }
        let csid = message.header.csid;
        let previous = last.iter().find(|(c, _)| *c == csid).map(|(_, t)| *t);
        if let Some(previous) = previous {
            message.header.timestamp = previous.wrapping_add(delta);
        }
        last.retain(|(c, _)| *c != csid);
        last.push((csid, message.header.timestamp));
    }
    messages
}

/// Splits `bytes` into reads whose sizes cycle through `reads`, decoding after each, applying
/// Set Chunk Size messages as a session would. Returns the messages and how many bytes were
/// left undecoded.
fn decode_in_reads(
    decoder: &mut ChunkDecoder,
    bytes: &[u8],
    reads: &[usize],
) -> Result<(Vec<Message>, usize), ChunkError> {
    let mut input = BytesMut::new();
    let mut messages = Vec::new();
    let mut at = 0;
    let mut reads = reads.iter().cycle();
    while at < bytes.len() {
        let n = (*reads.next().unwrap()).min(bytes.len() - at);
        input.extend_from_slice(&bytes[at..at + n]);
        at += n;
        while let Some(message) = decoder.decode(&mut input)? {
            if message.header.type_id == types::SET_CHUNK_SIZE && message.header.csid == 2 {
                if let Ok(ControlMessage::SetChunkSize(size)) =
                    ControlMessage::parse(message.header.type_id, &message.payload)
                {
                    decoder.set_chunk_size(size)?;
                }
            }
            messages.push(message);
        }
    }
    Ok((messages, input.len()))
}

fn concat(pieces: &[Bytes]) -> Bytes {
    pieces.concat().into()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn encode_then_decode_is_the_identity(
        messages in proptest::collection::vec(test_message(), 1..12),
        deltas in proptest::collection::vec(prop_oneof![0u32..100, Just(0x00FF_FFFF), Just(u32::MAX)], 12),
        initial_chunk_size in chunk_size(),
        reads in proptest::collection::vec(prop_oneof![1usize..20, 1usize..5000, Just(usize::MAX)], 1..8),
    ) {
        let messages = realistic(messages, &deltas);
        let mut encoder = ChunkEncoder::new();
        let mut out = OutQueue::new();
        let mut expected = Vec::new();
        let mut size = DEFAULT_CHUNK_SIZE;
        let mut sizes = vec![initial_chunk_size];
        for (i, message) in messages.iter().enumerate() {
            if let Some(new) = message.new_chunk_size {
                sizes.push(new);
            }
            for new in sizes.drain(..) {
                let control = ControlMessage::SetChunkSize(new);
                encoder.write_control(&control, &mut out).unwrap();
                expected.push(Message {
                    header: header(CSID_PROTOCOL_CONTROL, 0, types::SET_CHUNK_SIZE, 0),
                    payload: control.to_payload(),
                });
                size = new;
            }
            // Keep tiny chunk sizes from producing millions of chunks.
            let mut message = message.clone();
            let cap = (size as usize).saturating_mul(600);
            for piece in &mut message.pieces {
                *piece = (*piece).min(cap);
            }
            let body = message.body(i * 1000);
            encoder.write(&message.header, &body, &mut out).unwrap();
            expected.push(Message { header: message.header, payload: concat(&body) });
        }
        let bytes = flatten(&out);
        let mut decoder = ChunkDecoder::new(MAX_MESSAGE_LEN);
        let (decoded, left) = decode_in_reads(&mut decoder, &bytes, &reads).unwrap();
        prop_assert_eq!(left, 0);
        prop_assert_eq!(decoded, expected);
        prop_assert_eq!(decoder.consumed(), bytes.len() as u64);
    }

    /// Chunks of messages on different chunk streams interleaved in any order still decode to
    /// each stream's messages, in order.
    #[test]
    fn interleaved_chunk_streams(
        lanes in proptest::collection::vec(
            proptest::collection::vec((timestamp(), any::<u8>(), 0usize..600), 1..6), 2..5),
        schedule in proptest::collection::vec(any::<prop::sample::Index>(), 0..400),
        chunk_size in 1u32..300,
    ) {
        let mut lane_chunks: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut expected: Vec<Vec<Message>> = Vec::new();
        for (lane, messages) in lanes.iter().enumerate() {
            // Each lane has its own chunk stream; encoder state is per chunk stream, so one
            // encoder per lane produces the same bytes as a shared one.
            let csid = 3 + lane as u32 * 100;
            let mut encoder = ChunkEncoder::new();
            encoder.set_chunk_size(chunk_size).unwrap();
            let mut chunks = Vec::new();
            let mut lane_messages = Vec::new();
            for (i, &(ts, type_id, len)) in messages.iter().enumerate() {
                let payload: Bytes = (0..len).map(|b| (b + i + lane) as u8).collect::<Vec<u8>>().into();
                let header = header(csid, ts, type_id, lane as u32);
                let mut out = OutQueue::new();
                encoder.write(&header, core::slice::from_ref(&payload), &mut out).unwrap();
                // A single-piece body comes out as header, payload slice, header, ...
                let segments: Vec<&[u8]> = out.segments().collect();
                for chunk in segments.chunks(2) {
                    chunks.push(chunk.concat());
                }
                lane_messages.push(Message { header, payload });
            }
            lane_chunks.push(chunks);
            expected.push(lane_messages);
        }
        let mut bytes = Vec::new();
        let mut cursors = vec![0usize; lane_chunks.len()];
        let mut pick = schedule.iter();
        loop {
            let open: Vec<usize> = (0..lane_chunks.len()).filter(|&l| cursors[l] < lane_chunks[l].len()).collect();
            if open.is_empty() {
                break;
            }
            let lane = match pick.next() {
                Some(index) => open[index.index(open.len())],
                None => open[0],
            };
            bytes.extend_from_slice(&lane_chunks[lane][cursors[lane]]);
            cursors[lane] += 1;
        }
        let mut decoder = ChunkDecoder::new(1000);
        decoder.set_chunk_size(chunk_size).unwrap();
        let (decoded, left) = decode_in_reads(&mut decoder, &bytes, &[7, 1, 300]).unwrap();
        prop_assert_eq!(left, 0);
        for (lane, messages) in expected.iter().enumerate() {
            let csid = 3 + lane as u32 * 100;
            let got: Vec<&Message> = decoded.iter().filter(|m| m.header.csid == csid).collect();
            let want: Vec<&Message> = messages.iter().collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn decoder_never_panics_and_respects_limits(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        max in 0u32..2000,
        size in chunk_size(),
        reads in proptest::collection::vec(1usize..64, 1..4),
    ) {
        let mut decoder = ChunkDecoder::new(max);
        decoder.set_chunk_size(size).unwrap();
        if let Ok((messages, _)) = decode_in_reads(&mut decoder, &bytes, &reads) {
            prop_assert!(messages.iter().all(|m| m.payload.len() <= max as usize));
        }
    }

    /// Corrupting bytes of a valid stream never panics either (random bytes rarely get past
    /// the first header).
    #[test]
    fn corrupted_streams_never_panic(
        messages in proptest::collection::vec(test_message(), 1..6),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut encoder = ChunkEncoder::new();
        let mut out = OutQueue::new();
        for (i, message) in messages.iter().enumerate() {
            let mut message = message.clone();
            for piece in &mut message.pieces {
                *piece = (*piece).min(2000);
            }
            encoder.write(&message.header, &message.body(i), &mut out).unwrap();
        }
        let mut bytes = flatten(&out);
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        let mut input = BytesMut::from(&bytes[..]);
        let mut decoder = ChunkDecoder::new(1500);
        while let Ok(Some(message)) = decoder.decode(&mut input) {
            prop_assert!(message.payload.len() <= 1500);
        }
    }
}

/// Writes the seed corpus of the `rtmp_chunk` fuzz target (byte 0: initial chunk size selector,
/// 0 = 128; byte 1: read size selector; then the chunk stream). Run with
/// `cargo test -p mediakit-core write_rtmp_chunk_corpus -- --ignored`.
#[cfg(feature = "std")]
#[test]
#[ignore]
fn write_rtmp_chunk_corpus() {
    extern crate std;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rtmp_chunk");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in corpus_streams() {
        let mut file = vec![0u8, 7];
        file.extend_from_slice(&bytes);
        std::fs::write(dir.join(name), file).unwrap();
    }
}

fn corpus_streams() -> Vec<(&'static str, Vec<u8>)> {
    let mut streams = Vec::new();

    // Set Chunk Size, then a command that spans chunks at the new size.
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    encoder
        .write_control(&ControlMessage::SetChunkSize(200), &mut out)
        .unwrap();
    encoder
        .write_control(&ControlMessage::WindowAckSize(2_500_000), &mut out)
        .unwrap();
    let command = Bytes::from(vec![0x02; 450]);
    encoder
        .write(&header(3, 0, types::COMMAND_AMF0, 0), &[command], &mut out)
        .unwrap();
    streams.push(("set_chunk_size_then_command", flatten(&out)));

    // Audio and video on two chunk streams with every header format and extended timestamps.
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    for (i, ts) in [0u32, 23, 46, 69, 0x00FF_FFF0, 0x0100_0007, 0x0100_001E]
        .into_iter()
        .enumerate()
    {
        let audio = Bytes::from(vec![0xAF; 20]);
        let video = Bytes::from(vec![0x27; 150 + i]);
        encoder
            .write(&header(4, ts, types::AUDIO, 1), &[audio], &mut out)
            .unwrap();
        encoder
            .write(&header(6, ts, types::VIDEO, 1), &[video], &mut out)
            .unwrap();
    }
    streams.push(("audio_video_extended_timestamps", flatten(&out)));

    // Two- and three-byte basic headers, a user control event and an abort.
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    encoder
        .write(
            &header(100, 5, types::DATA_AMF0, 1),
            &[Bytes::from(vec![1; 10])],
            &mut out,
        )
        .unwrap();
    encoder
        .write(
            &header(1000, 6, types::VIDEO, 1),
            &[Bytes::from(vec![2; 300])],
            &mut out,
        )
        .unwrap();
    encoder
        .write_control(
            &ControlMessage::UserControl(crate::rtmp::message::UserControlEvent::StreamBegin {
                stream_id: 1,
            }),
            &mut out,
        )
        .unwrap();
    encoder
        .write_control(&ControlMessage::Abort { csid: 1000 }, &mut out)
        .unwrap();
    streams.push(("long_basic_headers_and_control", flatten(&out)));
    streams
}

#[test]
fn corpus_streams_decode() {
    for (name, bytes) in corpus_streams() {
        let mut decoder = ChunkDecoder::new(1000);
        let (messages, left) = decode_in_reads(&mut decoder, &bytes, &[7]).unwrap();
        assert_eq!(left, 0, "{name}");
        assert!(messages.len() >= 3, "{name}");
    }
}

#[test]
fn many_large_partial_messages_hit_the_connection_bound() {
    // Ten chunk streams each start a 60 KB message in a 50 KB chunk and never finish it: with
    // a 64 KiB message limit the decoder refuses before holding two messages' worth.
    let max_message = 64 * 1024;
    let mut decoder = ChunkDecoder::new(max_message);
    decoder.set_chunk_size(50_000).unwrap();
    let length: u32 = 60_000;
    let mut input = BytesMut::new();
    for csid in 3..13u8 {
        input.extend_from_slice(&[csid, 0, 0, 0]);
        input.extend_from_slice(&length.to_be_bytes()[1..]);
        input.extend_from_slice(&[9, 1, 0, 0, 0]);
        input.extend_from_slice(&vec![0u8; 50_000]);
    }
    match decoder.decode(&mut input) {
        Err(ChunkError::ReassemblyTooLarge { max, pending, .. }) => {
            assert_eq!(max, 2 * max_message as usize);
            assert!(pending > max);
        }
        other => panic!("expected the reassembly bound, got {other:?}"),
    }
}
