//! RTMP commands (NetConnection and NetStream calls) as AMF0 values: reading the ones peers
//! send and building the ones we answer with, plus the media message reading and writing that
//! the server and client sessions share.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, Message, MessageHeader};
use super::message::{types, AckTracker, ControlMessage, UserControlEvent};
use crate::amf0::{self, Amf0Error, Amf0Value};
use crate::flv::{self, FlvError, TagType};
use crate::limit::RateLimit;
use crate::media::Media;
use crate::outq::OutQueue;
use crate::time::Millis;
use crate::wire::Reader;

/// Chunk stream for connection-level commands and their replies.
pub const CSID_COMMAND: u32 = 3;
/// Chunk stream for audio messages.
pub const CSID_AUDIO: u32 = 4;
/// Chunk stream for stream-level commands, status and data messages.
pub const CSID_STREAM: u32 = 5;
/// Chunk stream for video messages.
pub const CSID_VIDEO: u32 = 6;

/// The most Ping Requests answered per second on one connection; the rest are ignored, so a
/// peer that pings in a loop without reading cannot make us queue a Ping Response for each.
pub const MAX_PINGS_PER_SECOND: u32 = 10;

/// `@setDataFrame` as an AMF0 string: a publisher puts it before `onMetaData` so the server
/// keeps the metadata for players instead of treating it as a one-off call.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// A decoded command message: `name`, transaction id, command object, arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The command or response name (`connect`, `publish`, `_result`, `onStatus`, ...).
    pub name: String,
    /// The transaction id (0 when no response is expected).
    pub transaction: f64,
    /// The command object (often null).
    pub object: Amf0Value,
    /// Remaining arguments.
    pub args: Vec<Amf0Value>,
}

impl Command {
    /// Decodes an AMF0 command body. `amf3` is true for message type 17, whose body starts with
    /// a format byte (0) before otherwise AMF0-encoded values.
    pub fn decode(body: &[u8], amf3: bool) -> Result<Command, CommandError> {
        let body = if amf3 {
            body.get(1..).unwrap_or_default()
        } else {
            body
        };
        let mut reader = Reader::new(body);
        let name = match amf0::decode(&mut reader)? {
            Amf0Value::String(name) => name,
            _ => return Err(CommandError::NoName),
        };
        let transaction = if reader.is_empty() {
            0.0
        } else {
            amf0::decode(&mut reader)?.as_number().unwrap_or(0.0)
        };
        let object = if reader.is_empty() {
            Amf0Value::Null
        } else {
            amf0::decode(&mut reader)?
        };
        let mut args = Vec::new();
        while !reader.is_empty() {
            args.push(amf0::decode(&mut reader)?);
        }
        Ok(Command {
            name,
            transaction,
            object,
            args,
        })
    }

    /// The first argument as a string (the stream name of `publish` and `play`).
    pub fn first_string_arg(&self) -> Option<&str> {
        self.args.first().and_then(Amf0Value::as_str)
    }

    /// A string field of the info object of a status or reply (`level`, `code`,
    /// `description`): the first argument that is an object, as `onStatus`, `_result` and
    /// `_error` carry it, else the command object, where a few servers put it.
    pub fn info_str(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|value| value.properties().is_some())
            .unwrap_or(&self.object)
            .get(key)
            .and_then(Amf0Value::as_str)
    }
}

/// Why a command message could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The body is not valid AMF0.
    #[error(transparent)]
    Amf0(#[from] Amf0Error),
    /// The body does not start with the command name string.
    #[error("command message does not start with a name string")]
    NoName,
}

/// Encodes a command: name, transaction id, then `values`.
pub fn encode_command(name: &str, transaction: f64, values: &[Amf0Value]) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    amf0::encode_str(name, &mut out);
    amf0::encode(&Amf0Value::Number(transaction), &mut out);
    amf0::encode_all(values, &mut out);
    out.freeze()
}

/// The info object of an `onStatus` or `_result` status: level, code, description.
pub fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

/// Encodes `onStatus(0, null, {level, code, description})`.
pub fn on_status(level: &str, code: &str, description: &str) -> Bytes {
    encode_command(
        "onStatus",
        0.0,
        &[Amf0Value::Null, status_object(level, code, description)],
    )
}

/// A data message body: a name and values, no transaction id.
pub fn encode_command_data(name: &str, values: &[Amf0Value]) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    amf0::encode_str(name, &mut out);
    amf0::encode_all(values, &mut out);
    out.freeze()
}

/// Reads the media items an audio, video, data (AMF0 or AMF3) or aggregate message carries,
/// in order, handing each to `sink`. Other message types, and tags we do not carry, yield
/// nothing. Payloads are zero-copy slices of the message.
pub fn read_media(message: &Message, sink: impl FnMut(Media)) -> Result<(), FlvError> {
    let payload = &message.payload;
    let tag_type = match message.header.type_id {
        types::AUDIO => TagType::Audio,
        types::VIDEO => TagType::Video,
        types::DATA_AMF0 => TagType::Script,
        types::DATA_AMF3 => {
            // An AMF3 data message is AMF0 after a format byte.
            let body = payload.slice(1.min(payload.len())..);
            return flv::parse_tag_body(TagType::Script, message.header.timestamp, body)
                .map(|media| media.map_or((), sink));
        }
        types::AGGREGATE => return read_aggregate(message.header.timestamp, payload, sink),
        _ => return Ok(()),
    };
    flv::parse_tag_body(tag_type, message.header.timestamp, payload.clone())
        .map(|media| media.map_or((), sink))
}

/// An aggregate message is a run of FLV tags (header, body, previous-tag-size) whose
/// timestamps are shifted so the first equals the message's.
fn read_aggregate(
    timestamp: u32,
    payload: &Bytes,
    mut sink: impl FnMut(Media),
) -> Result<(), FlvError> {
    let mut reader = Reader::new(payload);
    let mut base: Option<u32> = None;
    let truncated = |what, reader: &Reader<'_>| FlvError::Truncated {
        what,
        offset: reader.offset() as u64,
    };
    while !reader.is_empty() {
        let header = reader
            .array::<{ flv::TAG_HEADER_LEN }>()
            .ok_or_else(|| truncated("aggregate tag header", &reader))?;
        let [kind, s0, s1, s2, t0, t1, t2, high, ..] = header;
        let size = u32::from_be_bytes([0, s0, s1, s2]) as usize;
        let body = reader
            .take_range(size)
            .ok_or_else(|| truncated("aggregate tag body", &reader))?;
        reader
            .skip(4)
            .ok_or_else(|| truncated("aggregate previous tag size", &reader))?;
        let tag_time = u32::from_be_bytes([high, t0, t1, t2]);
        let first = *base.get_or_insert(tag_time);
        let time = timestamp.wrapping_add(tag_time.wrapping_sub(first));
        if let Some(tag_type) = TagType::from_u8(kind & 0x1f) {
            if let Some(media) = flv::parse_tag_body(tag_type, time, payload.slice(body))? {
                sink(media);
            }
        }
    }
    Ok(())
}

/// The chunk-level half of an RTMP connection that both ends keep alike: reading messages
/// (acknowledging as the peer's window asks), writing them, and the protocol control every
/// endpoint answers the same way.
#[derive(Debug)]
pub struct ChunkLink {
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    ack: AckTracker,
    /// Ping Requests answered in the current second.
    pings: RateLimit,
    /// Where the small headers of media tag bodies are built.
    arena: BytesMut,
    /// The bytes waiting to be sent.
    pub out: OutQueue,
}

impl ChunkLink {
    /// A link that accepts messages up to `max_message_len` bytes.
    pub fn new(max_message_len: u32) -> Self {
        Self {
            decoder: ChunkDecoder::new(max_message_len),
            encoder: ChunkEncoder::new(),
            ack: AckTracker::new(0),
            pings: RateLimit::new(MAX_PINGS_PER_SECOND, 1_000),
            arena: BytesMut::new(),
            out: OutQueue::new(),
        }
    }

    /// Decodes the next complete message from `input`, queueing an Acknowledgement when the
    /// bytes consumed complete the peer's window.
    pub fn next_message(&mut self, input: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        let before = input.len();
        let message = self.decoder.decode(input)?;
        if let Some(ack) = self.ack.acknowledgement(before - input.len()) {
            self.write_control(&ack)?;
        }
        Ok(message)
    }

    /// Applies Set Chunk Size, Abort, Window Acknowledgement Size (raised to
    /// [`super::message::MIN_ACK_WINDOW`]) and Ping Request (answered with a Ping Response, at
    /// most [`MAX_PINGS_PER_SECOND`] per second counted at `now`); any other control message
    /// is handed back for the session.
    pub fn handle_control(
        &mut self,
        now: Millis,
        control: ControlMessage,
    ) -> Result<Option<ControlMessage>, ChunkError> {
        match control {
            ControlMessage::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
            ControlMessage::Abort { csid } => self.decoder.abort(csid),
            ControlMessage::WindowAckSize(window) => self.ack.set_window(window),
            ControlMessage::UserControl(UserControlEvent::PingRequest { timestamp }) => {
                if self.pings.allow(now) {
                    let pong =
                        ControlMessage::UserControl(UserControlEvent::PingResponse { timestamp });
                    self.write_control(&pong)?;
                }
            }
            other => return Ok(Some(other)),
        }
        Ok(None)
    }

    /// Queues a protocol or user control message.
    pub fn write_control(&mut self, control: &ControlMessage) -> Result<(), ChunkError> {
        self.encoder.write_control(control, &mut self.out)
    }

    /// Queues a message with timestamp 0 (commands, status, data messages).
    pub fn write(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        body: Bytes,
    ) -> Result<(), ChunkError> {
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
        };
        self.encoder.write(&header, &[body], &mut self.out)
    }

    /// Queues one media item as an audio, video or data message on message stream
    /// `stream_id`: the small tag body header from the arena, the payload by reference. With
    /// `set_data_frame`, metadata goes out as `@setDataFrame` + `onMetaData`, as a publisher
    /// sends it.
    pub fn write_media(
        &mut self,
        stream_id: u32,
        media: &Media,
        set_data_frame: bool,
    ) -> Result<(), ChunkError> {
        let tag = flv::tag_body(media, &mut self.arena);
        let csid = match tag.tag_type {
            TagType::Audio => CSID_AUDIO,
            TagType::Video => CSID_VIDEO,
            TagType::Script => CSID_STREAM,
        };
        let header = MessageHeader {
            csid,
            timestamp: tag.timestamp,
            type_id: tag.tag_type.as_u8(),
            stream_id,
        };
        let out = &mut self.out;
        if set_data_frame && tag.tag_type == TagType::Script {
            let prefix = Bytes::from_static(SET_DATA_FRAME);
            self.encoder
                .write(&header, &[prefix, tag.header, tag.payload], out)
        } else {
            self.encoder.write(&header, &[tag.header, tag.payload], out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::message::MIN_ACK_WINDOW;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// The control messages a link queued since the last call, decoded as its peer reads
    /// them with `decoder`.
    fn sent_controls(link: &mut ChunkLink, decoder: &mut ChunkDecoder) -> Vec<ControlMessage> {
        let mut bytes = BytesMut::new();
        for segment in link.out.segments() {
            bytes.extend_from_slice(segment);
        }
        let queued = link.out.queued_bytes();
        link.out.advance(queued);
        let mut controls = Vec::new();
        while let Some(message) = decoder.decode(&mut bytes).unwrap() {
            controls.push(ControlMessage::parse(message.header.type_id, &message.payload).unwrap());
        }
        assert!(bytes.is_empty());
        controls
    }

    fn ping(timestamp: u32) -> ControlMessage {
        ControlMessage::UserControl(UserControlEvent::PingRequest { timestamp })
    }

    #[test]
    fn a_thousand_pings_in_a_second_get_at_most_ten_answers() {
        let mut link = ChunkLink::new(1 << 16);
        for i in 0..1_000u32 {
            let now = Millis(5_000 + u64::from(i));
            assert_eq!(link.handle_control(now, ping(i)).unwrap(), None);
        }
        let mut decoder = ChunkDecoder::new(1 << 20);
        let pongs = sent_controls(&mut link, &mut decoder);
        assert_eq!(pongs.len(), MAX_PINGS_PER_SECOND as usize);
        // The first ones are answered, in order, with their own timestamps.
        for (i, pong) in pongs.iter().enumerate() {
            let expected = UserControlEvent::PingResponse {
                timestamp: i as u32,
            };
            assert_eq!(pong, &ControlMessage::UserControl(expected));
        }
        // The next second answers again.
        link.handle_control(Millis(6_000), ping(7)).unwrap();
        assert_eq!(sent_controls(&mut link, &mut decoder).len(), 1);
    }

    #[test]
    fn a_one_byte_window_acknowledges_once_per_floor() {
        let mut link = ChunkLink::new(1 << 16);
        link.handle_control(Millis(0), ControlMessage::WindowAckSize(1))
            .unwrap();
        // 1000 small messages (a 12-byte header and a 5-byte body, or fewer header bytes once
        // compressed): an acknowledgement would be due after each one at a window of 1.
        let mut encoder = ChunkEncoder::new();
        let mut out = OutQueue::new();
        let header = MessageHeader {
            csid: CSID_STREAM,
            timestamp: 0,
            type_id: super::types::DATA_AMF0,
            stream_id: 1,
        };
        for _ in 0..1_000 {
            let body = Bytes::from_static(&[5, 0, 0, 0, 0]);
            encoder.write(&header, &[body], &mut out).unwrap();
        }
        let mut input = BytesMut::new();
        for segment in out.segments() {
            input.extend_from_slice(segment);
        }
        let total = input.len();
        while link.next_message(&mut input).unwrap().is_some() {}
        let acks = sent_controls(&mut link, &mut ChunkDecoder::new(1 << 20));
        assert!(!acks.is_empty());
        assert!(
            acks.len() <= total / MIN_ACK_WINDOW as usize,
            "{}",
            acks.len()
        );
        let mut last = 0;
        for ack in acks {
            let ControlMessage::Acknowledgement { sequence } = ack else {
                panic!("{ack:?}");
            };
            assert!(sequence - last >= MIN_ACK_WINDOW);
            last = sequence;
        }
    }

    proptest! {
        /// Against a model of fixed one-second windows that start at the first ping after the
        /// last window ended: exactly the pings the model allows are answered.
        #[test]
        fn pings_answered_match_a_window_model(
            gaps in proptest::collection::vec(0u64..300, 1..400),
        ) {
            let mut link = ChunkLink::new(1 << 16);
            let mut now = 0u64;
            let (mut window_start, mut in_window) = (None::<u64>, 0u32);
            let mut expected = 0usize;
            for (i, gap) in gaps.into_iter().enumerate() {
                now += gap;
                if window_start.is_none_or(|start| now - start >= 1_000) {
                    window_start = Some(now);
                    in_window = 0;
                }
                if in_window < MAX_PINGS_PER_SECOND {
                    in_window += 1;
                    expected += 1;
                }
                link.handle_control(Millis(now), ping(i as u32)).unwrap();
            }
            let sent = sent_controls(&mut link, &mut ChunkDecoder::new(1 << 20));
            prop_assert_eq!(sent.len(), expected);
        }
    }
}
