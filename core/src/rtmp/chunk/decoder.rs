//! Reassembling messages from chunks read off the network.

use alloc::vec::Vec;

use bytes::{Buf, BytesMut};

use super::{
    check_chunk_size, ChunkError, Message, MessageHeader, DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_CHUNK_STREAMS, EXTENDED_TIMESTAMP,
};
use crate::latch::Latch;
use crate::wire::Reader;

/// Header state and the partly received message of one chunk stream.
#[derive(Debug)]
struct StreamState {
    csid: u32,
    /// Timestamp of the message most recently started on this chunk stream.
    timestamp: u32,
    /// The timestamp field of the last format 0/1/2 header (after extension): absolute for
    /// format 0, a delta for 1 and 2. A format 3 header that starts a new message adds it again.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last format 0/1/2 header carried an extended timestamp, which every
    /// following format 3 chunk then repeats.
    extended: bool,
    /// Whether a message is partly received (so a format 3 chunk continues it).
    in_progress: bool,
    /// The bytes received so far of a message spanning several chunks; grows only as they come.
    partial: BytesMut,
}

/// What a chunk header says, before anything is committed to the stream state.
struct Parsed {
    /// Header bytes including the extended timestamp.
    header_len: usize,
    /// Index into `streams`, or `None` for a chunk stream not seen before.
    index: Option<usize>,
    csid: u32,
    continuation: bool,
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// Payload bytes this chunk carries.
    payload_len: usize,
}

/// Reassembles RTMP messages from a byte stream of interleaved chunks.
///
/// Input is untrusted: declared lengths are checked against `max_message_len` before any buffer
/// is set aside for them, a partly received message grows only with the bytes actually received,
/// and at most a bounded number of chunk streams keep state. Partial messages on all chunk
/// streams together are bounded by twice `max_message_len`.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    max_message_len: u32,
    max_chunk_streams: usize,
    streams: Vec<StreamState>,
    /// Bytes consumed so far, for error offsets.
    consumed: u64,
    failed: Latch<ChunkError>,
}

impl ChunkDecoder {
    /// A decoder with the default chunk size (128) that rejects messages longer than
    /// `max_message_len` bytes.
    pub fn new(max_message_len: u32) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_message_len,
            max_chunk_streams: DEFAULT_MAX_CHUNK_STREAMS,
            streams: Vec::new(),
            consumed: 0,
            failed: Latch::new(),
        }
    }

    /// Changes how many chunk streams may be in use at once (default 64).
    pub fn with_max_chunk_streams(mut self, max: usize) -> Self {
        self.max_chunk_streams = max;
        self
    }

    /// The chunk size the peer currently sends with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies the peer's Set Chunk Size; it takes effect from the next chunk decoded.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        check_chunk_size(size)?;
        self.chunk_size = size;
        Ok(())
    }

    /// Applies the peer's Abort Message: drops the partly received message on `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(stream) = self.streams.iter_mut().find(|s| s.csid == csid) {
            stream.in_progress = false;
            stream.partial = BytesMut::new();
        }
    }

    /// Bytes consumed from the input so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Consumes chunks from the front of `input` until one message is complete and returns it.
    ///
    /// Returns `Ok(None)` when `input` holds no complete chunk; the incomplete chunk stays in
    /// `input` for the next call. Only whole chunks are consumed, so the caller's buffer holds
    /// at most one chunk (header plus up to `chunk_size` bytes) between calls. Call again after
    /// every message until `Ok(None)`, applying Set Chunk Size and Abort in between.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        self.failed.check()?;
        let result = self.decode_chunks(input);
        self.failed.record(result)
    }

    fn decode_chunks(&mut self, input: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        loop {
            let Some(parsed) = self.parse_chunk(input)? else {
                return Ok(None);
            };
            self.check_reassembly_room(&parsed)?;
            if let Some(message) = self.commit(parsed, input) {
                return Ok(Some(message));
            }
        }
    }

    /// Partial messages on all chunk streams together may hold at most twice the largest
    /// message: room for one maximal message with others interleaved, while a peer that starts
    /// many large messages at once cannot make one connection hold `streams * max` bytes.
    fn check_reassembly_room(&self, parsed: &Parsed) -> Result<(), ChunkError> {
        let whole_in_one_chunk = parsed.payload_len == parsed.length as usize
            && !self
                .find(parsed.csid)
                .and_then(|i| self.streams.get(i))
                .is_some_and(|s| s.in_progress);
        if whole_in_one_chunk {
            return Ok(());
        }
        let pending: usize =
            self.streams.iter().map(|s| s.partial.len()).sum::<usize>() + parsed.payload_len;
        let max = (self.max_message_len as usize).saturating_mul(2);
        if pending > max {
            return Err(ChunkError::ReassemblyTooLarge {
                pending,
                max,
                offset: self.consumed,
            });
        }
        Ok(())
    }

    fn find(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.csid == csid)
    }

    /// Reads one chunk header without consuming anything; `None` if the whole chunk (header and
    /// payload) is not in `input` yet.
    fn parse_chunk(&self, input: &[u8]) -> Result<Option<Parsed>, ChunkError> {
        let offset = self.consumed;
        let mut reader = Reader::new(input);
        let Some(first) = reader.u8() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let csid = match first & 0x3F {
            0 => match reader.u8() {
                Some(b) => 64 + u32::from(b),
                None => return Ok(None),
            },
            // Little-endian, unlike every other RTMP field.
            1 => match reader.array::<2>() {
                Some(v) => 64 + u32::from(u16::from_le_bytes(v)),
                None => return Ok(None),
            },
            id => u32::from(id),
        };

        let index = self.find(csid);
        let previous = index.and_then(|i| self.streams.get(i));
        if previous.is_none() {
            if fmt != 0 {
                return Err(ChunkError::NoPreviousHeader { csid, fmt, offset });
            }
            if self.streams.len() >= self.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams {
                    csid,
                    max: self.max_chunk_streams,
                    offset,
                });
            }
        }
        if fmt != 3 && previous.is_some_and(|p| p.in_progress) {
            return Err(ChunkError::InterruptedMessage { csid, offset });
        }

        // The message header fields; `None` for those this format leaves out.
        let (field, length, type_id, stream_id) = match fmt {
            0 => {
                let Some(((ts, len, ty), sid)) = (|| {
                    Some((
                        (reader.u24_be()?, reader.u24_be()?, reader.u8()?),
                        reader.u32_le()?,
                    ))
                })() else {
                    return Ok(None);
                };
                (Some(ts), Some(len), Some(ty), Some(sid))
            }
            1 => {
                let Some((ts, len, ty)) =
                    (|| Some((reader.u24_be()?, reader.u24_be()?, reader.u8()?)))()
                else {
                    return Ok(None);
                };
                (Some(ts), Some(len), Some(ty), None)
            }
            2 => {
                let Some(ts) = reader.u24_be() else {
                    return Ok(None);
                };
                (Some(ts), None, None, None)
            }
            _ => (None, None, None, None),
        };

        let extended = match field {
            Some(ts) => ts == EXTENDED_TIMESTAMP,
            None => previous.is_some_and(|p| p.extended),
        };
        let extended_value = if extended {
            let Some(value) = reader.u32_be() else {
                return Ok(None);
            };
            Some(value)
        } else {
            None
        };
        let field = match (extended_value, field) {
            (Some(value), _) => Some(value),
            (None, field) => field,
        };

        let continuation = fmt == 3 && previous.is_some_and(|p| p.in_progress);
        let (timestamp, delta, length, type_id, stream_id, received) = match previous {
            None => (
                field.unwrap_or_default(),
                field.unwrap_or_default(),
                length.unwrap_or_default(),
                type_id.unwrap_or_default(),
                stream_id.unwrap_or_default(),
                0,
            ),
            Some(p) if continuation => (
                p.timestamp,
                p.delta,
                p.length,
                p.type_id,
                p.stream_id,
                p.partial.len(),
            ),
            Some(p) => {
                // Format 0 carries an absolute timestamp; 1 and 2 a delta; 3 repeats the last
                // delta, or the extended value it carries, which is that same delta.
                let delta = field.unwrap_or(p.delta);
                let timestamp = if fmt == 0 {
                    delta
                } else {
                    p.timestamp.wrapping_add(delta)
                };
                (
                    timestamp,
                    delta,
                    length.unwrap_or(p.length),
                    type_id.unwrap_or(p.type_id),
                    stream_id.unwrap_or(p.stream_id),
                    0,
                )
            }
        };

        if length > self.max_message_len {
            return Err(ChunkError::MessageTooLong {
                csid,
                length,
                max: self.max_message_len,
                offset,
            });
        }

        let remaining = (length as usize).saturating_sub(received);
        let payload_len = remaining.min(self.chunk_size as usize);
        if reader.remaining() < payload_len {
            return Ok(None);
        }
        Ok(Some(Parsed {
            header_len: reader.offset(),
            index,
            csid,
            continuation,
            timestamp,
            delta,
            length,
            type_id,
            stream_id,
            extended,
            payload_len,
        }))
    }

    /// Consumes a parsed chunk from `input` and updates the stream state; returns the message
    /// if this chunk completed one.
    fn commit(&mut self, parsed: Parsed, input: &mut BytesMut) -> Option<Message> {
        let chunk_len = parsed.header_len + parsed.payload_len;
        self.consumed = self.consumed.wrapping_add(chunk_len as u64);
        input.advance(parsed.header_len);

        let index = match parsed.index {
            Some(index) => index,
            None => {
                self.streams.push(StreamState {
                    csid: parsed.csid,
                    timestamp: 0,
                    delta: 0,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                    extended: false,
                    in_progress: false,
                    partial: BytesMut::new(),
                });
                self.streams.len() - 1
            }
        };
        let stream = self.streams.get_mut(index)?;
        if !parsed.continuation {
            stream.timestamp = parsed.timestamp;
            stream.delta = parsed.delta;
            stream.length = parsed.length;
            stream.type_id = parsed.type_id;
            stream.stream_id = parsed.stream_id;
            stream.extended = parsed.extended;
        }
        let header = MessageHeader {
            csid: parsed.csid,
            timestamp: stream.timestamp,
            type_id: stream.type_id,
            stream_id: stream.stream_id,
        };

        if !stream.in_progress && parsed.payload_len == parsed.length as usize {
            // The whole message is in this chunk: hand out the input's own bytes.
            let payload = input.split_to(parsed.payload_len).freeze();
            return Some(Message { header, payload });
        }
        stream
            .partial
            .extend_from_slice(input.get(..parsed.payload_len)?);
        input.advance(parsed.payload_len);
        if stream.partial.len() >= stream.length as usize {
            stream.in_progress = false;
            let payload = core::mem::take(&mut stream.partial).freeze();
            Some(Message { header, payload })
        } else {
            stream.in_progress = true;
            None
        }
    }
}
