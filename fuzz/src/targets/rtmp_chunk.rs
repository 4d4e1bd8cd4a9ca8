//! Fuzz body for the RTMP chunk stream decoder and encoder.
//!
//! Input layout: byte 0 picks the initial chunk size, byte 1 the size of the reads the stream
//! is cut into, the rest is the chunk stream. Every decoded message must respect the length
//! limit, and re-encoding the decoded messages must decode to the same messages.

use bytes::BytesMut;
use mediakit_core::outq::OutQueue;
use mediakit_core::rtmp::chunk::{ChunkDecoder, ChunkEncoder, Message};
use mediakit_core::rtmp::message::{types, ControlMessage};

const MAX_MESSAGE_LEN: u32 = 256 * 1024;

fn chunk_size(selector: u8) -> u32 {
    match selector {
        0 => 128,
        1..=127 => u32::from(selector),
        _ => (u32::from(selector) - 127) * 512,
    }
}

/// Decodes `bytes` in reads of `read` bytes, applying Set Chunk Size as a session would.
fn decode(
    decoder: &mut ChunkDecoder,
    bytes: &[u8],
    read: usize,
    apply_control: bool,
) -> Vec<Message> {
    let mut input = BytesMut::new();
    let mut messages = Vec::new();
    for piece in bytes.chunks(read) {
        input.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(message)) => {
                    assert!(message.payload.len() <= MAX_MESSAGE_LEN as usize);
                    if apply_control && message.header.type_id == types::SET_CHUNK_SIZE {
                        if let Ok(ControlMessage::SetChunkSize(size)) =
                            ControlMessage::parse(message.header.type_id, &message.payload)
                        {
                            // Valid sizes are always accepted; the parser checked the range.
                            decoder.set_chunk_size(size).unwrap();
                        }
                    }
                    messages.push(message);
                }
                Ok(None) => break,
                Err(_) => return messages,
            }
        }
    }
    messages
}

/// Decodes arbitrary bytes as a chunk stream and checks that re-encoding round-trips.
pub fn rtmp_chunk(data: &[u8]) {
    let [size_selector, read_selector, stream @ ..] = data else {
        return;
    };
    let mut decoder = ChunkDecoder::new(MAX_MESSAGE_LEN);
    decoder.set_chunk_size(chunk_size(*size_selector)).unwrap();
    let read = usize::from(*read_selector % 64) + 1;
    let messages = decode(&mut decoder, stream, read, true);

    // Re-encode at a fixed chunk size (Set Chunk Size messages are carried as plain messages
    // here) and decode again: the messages must come back unchanged.
    let size = chunk_size(read_selector.wrapping_mul(31));
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(size).unwrap();
    let mut out = OutQueue::new();
    for message in &messages {
        encoder.write_message(message, &mut out).unwrap();
    }
    let bytes: Vec<u8> = out.segments().flatten().copied().collect();
    let mut decoder = ChunkDecoder::new(MAX_MESSAGE_LEN);
    decoder.set_chunk_size(size).unwrap();
    let again = decode(&mut decoder, &bytes, bytes.len().max(1), false);
    assert_eq!(again, messages);
}
