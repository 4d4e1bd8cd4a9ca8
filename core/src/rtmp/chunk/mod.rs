//! The RTMP chunk stream: messages split into chunks, interleaved across chunk streams.
//!
//! Each chunk starts with a basic header (format and chunk stream id, 1 to 3 bytes), a message
//! header whose size depends on the format (11, 7, 3 or 0 bytes) and, when the 24-bit timestamp
//! field holds `0xFFFFFF`, a 4-byte extended timestamp. Formats 1 to 3 leave out the fields that
//! equal the previous message on the same chunk stream, so all header state is kept per chunk
//! stream id, never globally.
//!
//! [`ChunkDecoder`] reassembles messages from untrusted input; [`ChunkEncoder`] writes messages
//! as header segments from a reusable arena plus `Bytes::slice`s of the payload.

mod decoder;
mod encoder;

pub use decoder::ChunkDecoder;
pub use encoder::ChunkEncoder;

use bytes::Bytes;

/// The chunk size both directions use until a Set Chunk Size message changes it.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// The largest chunk size the protocol allows (the top bit of Set Chunk Size must be zero).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;

/// The largest message length the 24-bit length field can express.
pub const MAX_MESSAGE_LEN: u32 = 0x00FF_FFFF;

/// The smallest chunk stream id (0 and 1 select the longer basic header forms).
pub const MIN_CSID: u32 = 2;

/// The largest chunk stream id (the 3-byte basic header form).
pub const MAX_CSID: u32 = 65599;

/// The chunk stream id reserved for protocol control messages.
pub const CSID_PROTOCOL_CONTROL: u32 = 2;

/// How many chunk streams a decoder keeps state for before refusing new ones.
pub const DEFAULT_MAX_CHUNK_STREAMS: usize = 64;

/// The timestamp field value that says an extended timestamp follows.
const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;

/// Everything about a message except its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageHeader {
    /// The chunk stream the message travels on (2..=65599).
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wraps at 2^32).
    pub timestamp: u32,
    /// Message type id (see [`crate::rtmp::message::types`]).
    pub type_id: u8,
    /// Message stream id (0 for protocol control and connection-level commands).
    pub stream_id: u32,
}

/// One complete RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Where the message travelled and what it is.
    pub header: MessageHeader,
    /// The message body; zero-copy from the input when it arrived in a single chunk.
    pub payload: Bytes,
}

/// Why the chunk stream could not be decoded or encoded.
///
/// Decoding errors are fatal for the connection: the decoder latches the first one and returns
/// it again on every later call. `offset` counts the bytes the decoder had consumed before the
/// chunk that failed, so the chunk can be found in a capture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// Partial messages across chunk streams would exceed the per-connection bound.
    #[error("partial messages would hold {pending} bytes (at most {max}) at byte {offset}")]
    ReassemblyTooLarge {
        /// Bytes the partial messages would hold.
        pending: usize,
        /// The bound: twice the largest message.
        max: usize,
        /// Stream offset of the chunk.
        offset: u64,
    },
    /// A message header declared a length above the configured maximum.
    #[error("chunk stream {csid}: message length {length} exceeds the limit {max} (chunk at byte {offset})")]
    MessageTooLong {
        /// The chunk stream id.
        csid: u32,
        /// The declared length.
        length: u32,
        /// The largest accepted length.
        max: u32,
        /// Stream offset of the chunk.
        offset: u64,
    },
    /// The peer opened more chunk streams than the decoder keeps state for.
    #[error("chunk stream {csid}: more than {max} chunk streams in use (chunk at byte {offset})")]
    TooManyChunkStreams {
        /// The chunk stream id that would not fit.
        csid: u32,
        /// The limit.
        max: usize,
        /// Stream offset of the chunk.
        offset: u64,
    },
    /// A compressed header (format 1, 2 or 3) arrived on a chunk stream with no previous
    /// message to take the missing fields from.
    #[error("chunk stream {csid}: format {fmt} header without a previous message (chunk at byte {offset})")]
    NoPreviousHeader {
        /// The chunk stream id.
        csid: u32,
        /// The header format (1..=3).
        fmt: u8,
        /// Stream offset of the chunk.
        offset: u64,
    },
    /// A format 0, 1 or 2 header arrived while a message on the same chunk stream was still
    /// incomplete.
    #[error("chunk stream {csid}: new message header while a message is incomplete (chunk at byte {offset})")]
    InterruptedMessage {
        /// The chunk stream id.
        csid: u32,
        /// Stream offset of the chunk.
        offset: u64,
    },
    /// A chunk size outside 1..=0x7FFFFFFF.
    #[error("invalid chunk size {size}")]
    InvalidChunkSize {
        /// The rejected size.
        size: u32,
    },
    /// A chunk stream id outside 2..=65599 was given to the encoder.
    #[error("invalid chunk stream id {csid}")]
    InvalidChunkStreamId {
        /// The rejected id.
        csid: u32,
    },
    /// A message body longer than the 24-bit length field can carry was given to the encoder.
    #[error("message body of {length} bytes exceeds the 24-bit length field")]
    PayloadTooLong {
        /// The body length.
        length: usize,
    },
}

/// Checks a chunk size against the range the protocol allows.
fn check_chunk_size(size: u32) -> Result<(), ChunkError> {
    if size == 0 || size > MAX_CHUNK_SIZE {
        return Err(ChunkError::InvalidChunkSize { size });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
