//! Writing messages as chunks without copying their payloads.

use alloc::vec::Vec;

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    check_chunk_size, ChunkError, Message, MessageHeader, CSID_PROTOCOL_CONTROL,
    DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP, MAX_CSID, MAX_MESSAGE_LEN, MIN_CSID,
};
use crate::outq::OutQueue;
use crate::rtmp::message::ControlMessage;

/// Headers are built in blocks of this size so that many chunk headers share one allocation.
const ARENA_BLOCK: usize = 4096;

/// The longest chunk header: 3-byte basic header, 11-byte message header, extended timestamp.
const MAX_HEADER_LEN: usize = 18;

/// What the encoder last sent on one chunk stream, to compress the next header against.
#[derive(Debug)]
struct StreamState {
    csid: u32,
    timestamp: u32,
    /// The timestamp field of the last header (absolute after format 0, else a delta).
    delta: u32,
    /// Whether `delta` may be reused by a format 3 header. Not after format 0: decoders
    /// disagree on what a format 3 message following a format 0 one means.
    delta_reusable: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// False until the first message, which always gets a full header.
    sent: bool,
}

/// Splits messages into chunks for one direction of a connection.
///
/// Every message becomes a header segment per chunk, cut from a reusable `BytesMut` arena, and
/// `Bytes::slice`s of the body pieces: the payload is never copied. Header compression is chosen
/// per chunk stream by comparing with the previous message sent on it.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    streams: Vec<StreamState>,
    arena: BytesMut,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder with the default chunk size (128).
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            arena: BytesMut::new(),
        }
    }

    /// The chunk size messages are currently split at.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the chunk size for the messages written after this call.
    ///
    /// The peer must learn the new size first: send the Set Chunk Size message before calling
    /// this, or use [`ChunkEncoder::write_control`], which does both in the right order.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        check_chunk_size(size)?;
        self.chunk_size = size;
        Ok(())
    }

    /// Forgets the header state of `csid`, so the next message on it gets a full header
    /// (needed after sending an Abort Message for it).
    pub fn reset_stream(&mut self, csid: u32) {
        self.streams.retain(|s| s.csid != csid);
    }

    /// Writes one message whose body is the concatenation of `body` (for example a 5-byte FLV
    /// video tag header and the frame's payload) into `out`.
    pub fn write(
        &mut self,
        header: &MessageHeader,
        body: &[Bytes],
        out: &mut OutQueue,
    ) -> Result<(), ChunkError> {
        let length: usize = body.iter().map(Bytes::len).sum();
        if length > MAX_MESSAGE_LEN as usize {
            return Err(ChunkError::PayloadTooLong { length });
        }
        let length = length as u32;
        let csid = header.csid;
        if !(MIN_CSID..=MAX_CSID).contains(&csid) {
            return Err(ChunkError::InvalidChunkStreamId { csid });
        }

        let index = match self.streams.iter().position(|s| s.csid == csid) {
            Some(index) => index,
            None => {
                self.streams.push(StreamState {
                    csid,
                    timestamp: 0,
                    delta: 0,
                    delta_reusable: false,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                    sent: false,
                });
                self.streams.len() - 1
            }
        };
        let Some(state) = self.streams.get_mut(index) else {
            return Err(ChunkError::InvalidChunkStreamId { csid });
        };
        let delta = header.timestamp.wrapping_sub(state.timestamp);
        let fmt = if !state.sent
            || header.stream_id != state.stream_id
            || header.timestamp < state.timestamp
        {
            0
        } else if length != state.length || header.type_id != state.type_id {
            1
        } else if state.delta_reusable && delta == state.delta {
            3
        } else {
            2
        };
        let field = if fmt == 0 { header.timestamp } else { delta };
        state.sent = true;
        state.timestamp = header.timestamp;
        state.delta = field;
        state.delta_reusable = fmt != 0;
        state.length = length;
        state.type_id = header.type_id;
        state.stream_id = header.stream_id;

        let extended = field >= EXTENDED_TIMESTAMP;
        let first = self.header_bytes(|buf| {
            put_basic_header(buf, fmt, csid);
            let ts = field.min(EXTENDED_TIMESTAMP);
            if fmt <= 2 {
                put_u24(buf, ts);
            }
            if fmt <= 1 {
                put_u24(buf, length);
                buf.put_u8(header.type_id);
            }
            if fmt == 0 {
                buf.put_u32_le(header.stream_id);
            }
            if extended {
                buf.put_u32(field);
            }
        });
        out.push(first);

        let chunk_size = self.chunk_size as usize;
        let mut room = chunk_size;
        for piece in body {
            let mut at = 0;
            while at < piece.len() {
                if room == 0 {
                    let continuation = self.header_bytes(|buf| {
                        put_basic_header(buf, 3, csid);
                        if extended {
                            buf.put_u32(field);
                        }
                    });
                    out.push(continuation);
                    room = chunk_size;
                }
                let end = piece.len().min(at + room);
                out.push(piece.slice(at..end));
                room -= end - at;
                at = end;
            }
        }
        Ok(())
    }

    /// Writes a decoded or locally built message, sharing its payload.
    pub fn write_message(
        &mut self,
        message: &Message,
        out: &mut OutQueue,
    ) -> Result<(), ChunkError> {
        self.write(
            &message.header,
            core::slice::from_ref(&message.payload),
            out,
        )
    }

    /// Writes a protocol control message on chunk stream 2, message stream 0, timestamp 0.
    ///
    /// A Set Chunk Size also switches this encoder to the new size, after the message itself
    /// went out with the old one.
    pub fn write_control(
        &mut self,
        control: &ControlMessage,
        out: &mut OutQueue,
    ) -> Result<(), ChunkError> {
        let payload = self.header_bytes(|buf| control.encode_payload(buf));
        let header = MessageHeader {
            csid: CSID_PROTOCOL_CONTROL,
            timestamp: 0,
            type_id: control.type_id(),
            stream_id: 0,
        };
        self.write(&header, core::slice::from_ref(&payload), out)?;
        if let ControlMessage::SetChunkSize(size) = *control {
            self.set_chunk_size(size)?;
        }
        Ok(())
    }

    /// Builds a small segment in the arena; segments share arena blocks until one fills up.
    fn header_bytes(&mut self, build: impl FnOnce(&mut BytesMut)) -> Bytes {
        if self.arena.capacity() < MAX_HEADER_LEN {
            self.arena.reserve(ARENA_BLOCK);
        }
        build(&mut self.arena);
        self.arena.split().freeze()
    }
}

fn put_basic_header(buf: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        0..=63 => buf.put_u8(fmt | csid as u8),
        64..=319 => {
            buf.put_u8(fmt);
            buf.put_u8((csid - 64) as u8);
        }
        _ => {
            buf.put_u8(fmt | 1);
            buf.put_u16_le((csid - 64) as u16);
        }
    }
}

fn put_u24(buf: &mut BytesMut, value: u32) {
    let [_, a, b, c] = value.to_be_bytes();
    buf.put_slice(&[a, b, c]);
}
