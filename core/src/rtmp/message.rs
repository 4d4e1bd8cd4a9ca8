//! RTMP message types, protocol control messages and user control events.

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::Reader;

/// Message type ids.
pub mod types {
    /// Set Chunk Size (protocol control).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message (protocol control).
    pub const ABORT: u8 = 2;
    /// Acknowledgement (protocol control).
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size (protocol control).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth (protocol control).
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data (an FLV audio tag body).
    pub const AUDIO: u8 = 8;
    /// Video data (an FLV video tag body).
    pub const VIDEO: u8 = 9;
    /// Data message, AMF3 encoded (`@setDataFrame`, `onMetaData`).
    pub const DATA_AMF3: u8 = 15;
    /// Shared object, AMF3 encoded.
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command message, AMF3 encoded.
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message, AMF0 encoded.
    pub const DATA_AMF0: u8 = 18;
    /// Shared object, AMF0 encoded.
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command message, AMF0 encoded (`connect`, `publish`, `play`, ...).
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message: a sequence of FLV-tag-like sub-messages.
    pub const AGGREGATE: u8 = 22;
}

/// User control event type ids.
pub mod events {
    /// Stream Begin.
    pub const STREAM_BEGIN: u16 = 0;
    /// Stream EOF.
    pub const STREAM_EOF: u16 = 1;
    /// Stream Dry.
    pub const STREAM_DRY: u16 = 2;
    /// Set Buffer Length.
    pub const SET_BUFFER_LENGTH: u16 = 3;
    /// Stream Is Recorded.
    pub const STREAM_IS_RECORDED: u16 = 4;
    /// Ping Request.
    pub const PING_REQUEST: u16 = 6;
    /// Ping Response.
    pub const PING_RESPONSE: u16 = 7;
}

/// Why a protocol control message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The payload ended before a field of the message.
    #[error("{what}: truncated at byte {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset in the payload of the field that did not fit.
        offset: usize,
    },
    /// A field held a value the protocol does not allow.
    #[error("{what}: invalid value at byte {offset}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Offset in the payload of the offending field.
        offset: usize,
    },
    /// The message type is not a protocol control or user control message.
    #[error("message type {type_id} is not a control message")]
    NotControl {
        /// The message type id.
        type_id: u8,
    },
}

/// How a Set Peer Bandwidth limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BandwidthLimit {
    /// Limit output to the window size.
    Hard,
    /// Limit output to the window size or the current limit, whichever is smaller.
    Soft,
    /// Hard if the previous limit was hard, otherwise ignore.
    Dynamic,
}

impl BandwidthLimit {
    fn code(self) -> u8 {
        match self {
            BandwidthLimit::Hard => 0,
            BandwidthLimit::Soft => 1,
            BandwidthLimit::Dynamic => 2,
        }
    }
}

/// A User Control Message event (message type 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserControlEvent {
    /// The stream became functional (sent before media on a play).
    StreamBegin {
        /// The message stream id.
        stream_id: u32,
    },
    /// Playback of the stream ended.
    StreamEof {
        /// The message stream id.
        stream_id: u32,
    },
    /// No more data on the stream for now.
    StreamDry {
        /// The message stream id.
        stream_id: u32,
    },
    /// The client's buffer length for a stream.
    SetBufferLength {
        /// The message stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// The stream is a recorded stream.
    StreamIsRecorded {
        /// The message stream id.
        stream_id: u32,
    },
    /// The server checks that the client is alive; the client echoes the timestamp.
    PingRequest {
        /// The sender's timestamp.
        timestamp: u32,
    },
    /// The answer to a Ping Request.
    PingResponse {
        /// The timestamp from the request.
        timestamp: u32,
    },
    /// An event type this crate does not interpret (for example SWF verification), kept so
    /// it can be logged or ignored rather than failing the connection.
    Other {
        /// The event type.
        event_type: u16,
        /// The event data.
        data: Bytes,
    },
}

/// A protocol control message (types 1, 2, 3, 5, 6) or a user control message (type 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ControlMessage {
    /// The sender's new maximum chunk size (1..=0x7FFFFFFF).
    SetChunkSize(u32),
    /// Discard the partly received message on a chunk stream.
    Abort {
        /// The chunk stream id.
        csid: u32,
    },
    /// Bytes received so far (wrapping), sent after each window.
    Acknowledgement {
        /// The sequence number: total bytes received, modulo 2^32.
        sequence: u32,
    },
    /// The window after which the receiver must send an Acknowledgement.
    WindowAckSize(u32),
    /// Limits the peer's output bandwidth.
    SetPeerBandwidth {
        /// The window size in bytes.
        window: u32,
        /// How the limit applies.
        limit: BandwidthLimit,
    },
    /// A user control event.
    UserControl(UserControlEvent),
}

impl ControlMessage {
    /// True for the message types [`ControlMessage::parse`] understands.
    pub fn is_control(type_id: u8) -> bool {
        matches!(type_id, 1..=6)
    }

    /// Parses the payload of a control message of type `type_id`.
    ///
    /// Trailing bytes after the fields are ignored, as other implementations do; missing bytes
    /// and out-of-range values are errors.
    pub fn parse(type_id: u8, payload: &[u8]) -> Result<Self, MessageError> {
        let mut reader = Reader::new(payload);
        let what = match type_id {
            types::SET_CHUNK_SIZE => "Set Chunk Size",
            types::ABORT => "Abort Message",
            types::ACKNOWLEDGEMENT => "Acknowledgement",
            types::USER_CONTROL => "User Control Message",
            types::WINDOW_ACK_SIZE => "Window Acknowledgement Size",
            types::SET_PEER_BANDWIDTH => "Set Peer Bandwidth",
            _ => return Err(MessageError::NotControl { type_id }),
        };
        let truncated = |reader: &Reader<'_>| MessageError::Truncated {
            what,
            offset: reader.offset(),
        };
        let u32_field = |reader: &mut Reader<'_>| reader.u32_be().ok_or_else(|| truncated(reader));
        Ok(match type_id {
            types::SET_CHUNK_SIZE => {
                let size = u32_field(&mut reader)?;
                if size == 0 || size > super::chunk::MAX_CHUNK_SIZE {
                    return Err(MessageError::Invalid { what, offset: 0 });
                }
                ControlMessage::SetChunkSize(size)
            }
            types::ABORT => ControlMessage::Abort {
                csid: u32_field(&mut reader)?,
            },
            types::ACKNOWLEDGEMENT => ControlMessage::Acknowledgement {
                sequence: u32_field(&mut reader)?,
            },
            types::WINDOW_ACK_SIZE => ControlMessage::WindowAckSize(u32_field(&mut reader)?),
            types::SET_PEER_BANDWIDTH => {
                let window = u32_field(&mut reader)?;
                let offset = reader.offset();
                let limit = match reader.u8() {
                    Some(0) => BandwidthLimit::Hard,
                    Some(1) => BandwidthLimit::Soft,
                    Some(2) => BandwidthLimit::Dynamic,
                    Some(_) => return Err(MessageError::Invalid { what, offset }),
                    None => return Err(truncated(&reader)),
                };
                ControlMessage::SetPeerBandwidth { window, limit }
            }
            _ => {
                let event_type = reader.u16_be().ok_or_else(|| truncated(&reader))?;
                let event = match event_type {
                    events::STREAM_BEGIN => UserControlEvent::StreamBegin {
                        stream_id: u32_field(&mut reader)?,
                    },
                    events::STREAM_EOF => UserControlEvent::StreamEof {
                        stream_id: u32_field(&mut reader)?,
                    },
                    events::STREAM_DRY => UserControlEvent::StreamDry {
                        stream_id: u32_field(&mut reader)?,
                    },
                    events::SET_BUFFER_LENGTH => UserControlEvent::SetBufferLength {
                        stream_id: u32_field(&mut reader)?,
                        buffer_ms: u32_field(&mut reader)?,
                    },
                    events::STREAM_IS_RECORDED => UserControlEvent::StreamIsRecorded {
                        stream_id: u32_field(&mut reader)?,
                    },
                    events::PING_REQUEST => UserControlEvent::PingRequest {
                        timestamp: u32_field(&mut reader)?,
                    },
                    events::PING_RESPONSE => UserControlEvent::PingResponse {
                        timestamp: u32_field(&mut reader)?,
                    },
                    event_type => UserControlEvent::Other {
                        event_type,
                        data: Bytes::copy_from_slice(reader.rest()),
                    },
                };
                ControlMessage::UserControl(event)
            }
        })
    }

    /// The message type id this message is sent with.
    pub fn type_id(&self) -> u8 {
        match self {
            ControlMessage::SetChunkSize(_) => types::SET_CHUNK_SIZE,
            ControlMessage::Abort { .. } => types::ABORT,
            ControlMessage::Acknowledgement { .. } => types::ACKNOWLEDGEMENT,
            ControlMessage::WindowAckSize(_) => types::WINDOW_ACK_SIZE,
            ControlMessage::SetPeerBandwidth { .. } => types::SET_PEER_BANDWIDTH,
            ControlMessage::UserControl(_) => types::USER_CONTROL,
        }
    }

    /// Appends the message payload to `buf`.
    pub fn encode_payload(&self, buf: &mut BytesMut) {
        match self {
            ControlMessage::SetChunkSize(value)
            | ControlMessage::Abort { csid: value }
            | ControlMessage::Acknowledgement { sequence: value }
            | ControlMessage::WindowAckSize(value) => buf.put_u32(*value),
            ControlMessage::SetPeerBandwidth { window, limit } => {
                buf.put_u32(*window);
                buf.put_u8(limit.code());
            }
            ControlMessage::UserControl(event) => match event {
                UserControlEvent::StreamBegin { stream_id } => {
                    put_event(buf, events::STREAM_BEGIN, *stream_id)
                }
                UserControlEvent::StreamEof { stream_id } => {
                    put_event(buf, events::STREAM_EOF, *stream_id)
                }
                UserControlEvent::StreamDry { stream_id } => {
                    put_event(buf, events::STREAM_DRY, *stream_id)
                }
                UserControlEvent::SetBufferLength {
                    stream_id,
                    buffer_ms,
                } => {
                    put_event(buf, events::SET_BUFFER_LENGTH, *stream_id);
                    buf.put_u32(*buffer_ms);
                }
                UserControlEvent::StreamIsRecorded { stream_id } => {
                    put_event(buf, events::STREAM_IS_RECORDED, *stream_id)
                }
                UserControlEvent::PingRequest { timestamp } => {
                    put_event(buf, events::PING_REQUEST, *timestamp)
                }
                UserControlEvent::PingResponse { timestamp } => {
                    put_event(buf, events::PING_RESPONSE, *timestamp)
                }
                UserControlEvent::Other { event_type, data } => {
                    buf.put_u16(*event_type);
                    buf.put_slice(data);
                }
            },
        }
    }

    /// The payload as its own `Bytes` (a small allocation; prefer
    /// [`crate::rtmp::ChunkEncoder::write_control`] on the output path).
    pub fn to_payload(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(10);
        self.encode_payload(&mut buf);
        buf.freeze()
    }
}

fn put_event(buf: &mut BytesMut, event_type: u16, value: u32) {
    buf.put_u16(event_type);
    buf.put_u32(value);
}

/// The smallest acknowledgement window a peer gets, in bytes: a Window Acknowledgement Size
/// below it is raised to it. A window of a few bytes would make us queue an Acknowledgement
/// for every message read, replies a peer that never reads could pile up without end.
pub const MIN_ACK_WINDOW: u32 = 4096;

/// Counts received bytes and says when an Acknowledgement is due.
///
/// The peer announces a window with Window Acknowledgement Size; the receiver must acknowledge
/// each time that many bytes have arrived since the last Acknowledgement. Feed it every byte
/// read from the connection (after the handshake) with [`AckTracker::on_received`].
#[derive(Debug, Clone, Default)]
pub struct AckTracker {
    window: u32,
    received: u64,
    acknowledged: u64,
}

impl AckTracker {
    /// A tracker that acknowledges every `window` bytes (0: never, until a window is set).
    pub fn new(window: u32) -> Self {
        Self {
            window,
            received: 0,
            acknowledged: 0,
        }
    }

    /// Applies the peer's Window Acknowledgement Size, raised to [`MIN_ACK_WINDOW`].
    pub fn set_window(&mut self, window: u32) {
        self.window = window.max(MIN_ACK_WINDOW);
    }

    /// The current window (0 when none was announced).
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Total bytes counted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Counts `bytes` more received bytes; returns the sequence number to send in an
    /// Acknowledgement when one is due.
    pub fn on_received(&mut self, bytes: usize) -> Option<u32> {
        self.received = self.received.saturating_add(bytes as u64);
        if self.window == 0 || self.received - self.acknowledged < u64::from(self.window) {
            return None;
        }
        self.acknowledged = self.received;
        // The sequence number is the byte count modulo 2^32 by definition.
        Some(self.received as u32)
    }

    /// The Acknowledgement to send, if one is due after counting `bytes` more.
    pub fn acknowledgement(&mut self, bytes: usize) -> Option<ControlMessage> {
        self.on_received(bytes)
            .map(|sequence| ControlMessage::Acknowledgement { sequence })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn roundtrip(message: &ControlMessage) -> ControlMessage {
        let payload = message.to_payload();
        ControlMessage::parse(message.type_id(), &payload).unwrap()
    }

    #[test]
    fn known_byte_layouts() {
        let cases: [(&[u8], u8, ControlMessage); 6] = [
            (&[0, 0, 0x10, 0], 1, ControlMessage::SetChunkSize(4096)),
            (&[0, 0, 0, 5], 2, ControlMessage::Abort { csid: 5 }),
            (
                &[0, 0x4C, 0x4B, 0x40],
                5,
                ControlMessage::WindowAckSize(5_000_000),
            ),
            (
                &[0, 0x4C, 0x4B, 0x40, 2],
                6,
                ControlMessage::SetPeerBandwidth {
                    window: 5_000_000,
                    limit: BandwidthLimit::Dynamic,
                },
            ),
            (
                &[0, 0, 0, 0, 0, 1],
                4,
                ControlMessage::UserControl(UserControlEvent::StreamBegin { stream_id: 1 }),
            ),
            (
                &[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8],
                4,
                ControlMessage::UserControl(UserControlEvent::SetBufferLength {
                    stream_id: 1,
                    buffer_ms: 3000,
                }),
            ),
        ];
        for (bytes, type_id, expected) in cases {
            assert_eq!(ControlMessage::parse(type_id, bytes).unwrap(), expected);
            assert_eq!(expected.type_id(), type_id);
            assert_eq!(&expected.to_payload()[..], bytes);
        }
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert!(matches!(
            ControlMessage::parse(1, &[0, 0, 1]),
            Err(MessageError::Truncated { offset: 0, .. })
        ));
        assert!(matches!(
            ControlMessage::parse(1, &[0, 0, 0, 0]),
            Err(MessageError::Invalid { .. })
        ));
        assert!(matches!(
            ControlMessage::parse(1, &[0x80, 0, 0, 1]),
            Err(MessageError::Invalid { .. })
        ));
        assert!(matches!(
            ControlMessage::parse(6, &[0, 0, 1, 0, 3]),
            Err(MessageError::Invalid { offset: 4, .. })
        ));
        assert!(matches!(
            ControlMessage::parse(6, &[0, 0, 1, 0]),
            Err(MessageError::Truncated { offset: 4, .. })
        ));
        assert!(matches!(
            ControlMessage::parse(4, &[0, 3, 0, 0, 0, 1, 0]),
            Err(MessageError::Truncated { .. })
        ));
        assert!(matches!(
            ControlMessage::parse(4, &[0]),
            Err(MessageError::Truncated { .. })
        ));
        assert_eq!(
            ControlMessage::parse(9, &[]),
            Err(MessageError::NotControl { type_id: 9 })
        );
    }

    #[test]
    fn unknown_user_control_events_are_kept() {
        let parsed = ControlMessage::parse(4, &[0, 0x1A, 1, 2]).unwrap();
        assert_eq!(
            parsed,
            ControlMessage::UserControl(UserControlEvent::Other {
                event_type: 0x1A,
                data: Bytes::from_static(&[1, 2]),
            })
        );
        assert_eq!(roundtrip(&parsed), parsed);
    }

    #[test]
    fn acknowledgements_follow_the_window() {
        let mut tracker = AckTracker::new(0);
        assert_eq!(tracker.on_received(1_000_000), None);
        tracker.set_window(10_000);
        // Bytes before the window was set count towards the first acknowledgement.
        assert_eq!(tracker.on_received(1), Some(1_000_001));
        assert_eq!(tracker.on_received(9_999), None);
        assert_eq!(
            tracker.acknowledgement(1),
            Some(ControlMessage::Acknowledgement {
                sequence: 1_010_001
            })
        );
        // The sequence number wraps at 2^32.
        let mut tracker = AckTracker::new(10);
        assert_eq!(tracker.on_received(u32::MAX as usize), Some(u32::MAX));
        assert_eq!(tracker.on_received(11), Some(10));
    }

    #[test]
    fn small_windows_are_raised_to_the_floor() {
        for asked in [0, 1, 100, MIN_ACK_WINDOW - 1] {
            let mut tracker = AckTracker::new(0);
            tracker.set_window(asked);
            assert_eq!(tracker.window(), MIN_ACK_WINDOW, "{asked}");
        }
        let mut tracker = AckTracker::new(0);
        tracker.set_window(MIN_ACK_WINDOW + 1);
        assert_eq!(tracker.window(), MIN_ACK_WINDOW + 1);
    }

    fn event() -> impl Strategy<Value = UserControlEvent> {
        prop_oneof![
            any::<u32>().prop_map(|stream_id| UserControlEvent::StreamBegin { stream_id }),
            any::<u32>().prop_map(|stream_id| UserControlEvent::StreamEof { stream_id }),
            any::<u32>().prop_map(|stream_id| UserControlEvent::StreamDry { stream_id }),
            (any::<u32>(), any::<u32>()).prop_map(|(stream_id, buffer_ms)| {
                UserControlEvent::SetBufferLength {
                    stream_id,
                    buffer_ms,
                }
            }),
            any::<u32>().prop_map(|stream_id| UserControlEvent::StreamIsRecorded { stream_id }),
            any::<u32>().prop_map(|timestamp| UserControlEvent::PingRequest { timestamp }),
            any::<u32>().prop_map(|timestamp| UserControlEvent::PingResponse { timestamp }),
            (8u16.., proptest::collection::vec(any::<u8>(), 0..8)).prop_map(
                |(event_type, data)| UserControlEvent::Other {
                    event_type,
                    data: Bytes::from(data),
                }
            ),
        ]
    }

    fn control() -> impl Strategy<Value = ControlMessage> {
        prop_oneof![
            (1u32..=0x7FFF_FFFF).prop_map(ControlMessage::SetChunkSize),
            any::<u32>().prop_map(|csid| ControlMessage::Abort { csid }),
            any::<u32>().prop_map(|sequence| ControlMessage::Acknowledgement { sequence }),
            any::<u32>().prop_map(ControlMessage::WindowAckSize),
            (any::<u32>(), 0..3u8).prop_map(|(window, limit)| ControlMessage::SetPeerBandwidth {
                window,
                limit: [
                    BandwidthLimit::Hard,
                    BandwidthLimit::Soft,
                    BandwidthLimit::Dynamic
                ][limit as usize],
            }),
            event().prop_map(ControlMessage::UserControl),
        ]
    }

    proptest! {
        /// Against a model that counts bytes since the last acknowledgement: whatever window
        /// the peer asks for and however the bytes arrive, acknowledgements come exactly when
        /// the floored window is full, never closer together than the floor.
        #[test]
        fn acknowledgements_match_a_byte_counting_model(
            asked in any::<u32>(),
            reads in proptest::collection::vec(0usize..10_000, 0..200),
        ) {
            let mut tracker = AckTracker::new(0);
            tracker.set_window(asked);
            let window = u64::from(asked.max(MIN_ACK_WINDOW));
            let (mut total, mut since_ack, mut last_ack) = (0u64, 0u64, None::<u64>);
            for read in reads {
                total += read as u64;
                since_ack += read as u64;
                let got = tracker.on_received(read);
                if since_ack >= window {
                    prop_assert_eq!(got, Some(total as u32));
                    if let Some(last) = last_ack {
                        prop_assert!(total - last >= u64::from(MIN_ACK_WINDOW));
                    }
                    last_ack = Some(total);
                    since_ack = 0;
                } else {
                    prop_assert_eq!(got, None);
                }
            }
        }

        #[test]
        fn control_messages_round_trip(message in control()) {
            prop_assert_eq!(roundtrip(&message), message);
        }

        #[test]
        fn parse_never_panics(type_id in 0u8..8, payload in proptest::collection::vec(any::<u8>(), 0..12)) {
            let parsed = ControlMessage::parse(type_id, &payload);
            if let Ok(message) = parsed {
                // What parsed re-encodes to a prefix of the input (trailing bytes are ignored).
                let encoded: Vec<u8> = message.to_payload().to_vec();
                prop_assert!(payload.starts_with(&encoded));
            }
        }
    }
}
