//! RTP (RFC 3550) packets and the payload formats the server carries: H.264 (RFC 6184),
//! H.265 (RFC 7798) and AAC (RFC 3640 `mpeg4-generic`, AAC-hbr).
//!
//! Output is zero-copy: a packetizer turns a [`Frame`](crate::media::Frame) into
//! [`RtpPacketOut`]s whose first segment is a small header written into a caller's `BytesMut`
//! arena (RTP header plus any payload-format header) and whose other segments are `Bytes`
//! slices of the frame payload. Input costs one copy: a depacketizer reassembles fragments and
//! aggregates into the canonical length-prefixed access unit (AAC frames are slices of the
//! packet, no copy).
//!
//! Depacketizers follow retina's shape: [`push`](NalDepacketizer::push) a parsed packet in
//! arrival order, [`pull`](NalDepacketizer::pull) finished frames. They detect loss from
//! sequence gaps themselves, put packets back in order within a small window, drop duplicates,
//! and after a loss drop the damaged access unit and everything up to the next keyframe. A
//! malformed packet is an error for that packet only; the depacketizer stays usable.
//!
//! For a received stream, [`DtsGenerator`] rebuilds the decode times of video with B-frames
//! (RTP carries only presentation times) and [`ReceiverStats`] keeps what a receiver report
//! says about the source.

pub mod aac;
pub mod clock;
pub mod dts;
pub mod h264;
pub mod h265;
pub mod nal;
pub mod receiver;
pub mod reorder;

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use crate::outq::OutQueue;
use crate::wire::Reader;

pub use aac::{AacDepacketizer, AacPacketizer};
pub use clock::RtpClock;
pub use dts::DtsGenerator;
pub use h264::{H264Depacketizer, H264Packetizer, H264};
pub use h265::{H265Depacketizer, H265Packetizer, H265};
pub use nal::{NalDepacketizer, NalFormat, NalPacketizer, ParameterSets};
pub use receiver::{Received, ReceiverStats};
pub use reorder::{Ordered, ReorderBuffer};

/// The only RTP version (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed RTP header, without CSRCs or extension.
pub const RTP_HEADER_LEN: usize = 12;
/// The RTP clock rate of every video payload format we carry (RFC 6184 §8.2.1, RFC 7798 §7.1).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;
/// The smallest MTU a packetizer accepts; smaller values are raised to it so every format
/// header plus at least one payload byte fits.
pub const MIN_MTU: usize = 64;
/// Default packet size: fits an Ethernet MTU with IP/UDP headers and some tunnelling slack.
pub const DEFAULT_MTU: usize = 1400;
/// Default reorder window, in packets.
pub const DEFAULT_REORDER_WINDOW: usize = 16;
/// Default bound on one reassembled access unit.
pub const DEFAULT_MAX_ACCESS_UNIT: usize = 8 << 20;

/// Why an RTP packet or payload could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// The packet ended before a field its own header or lengths promised.
    #[error("{what}: truncated at byte {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset of the field that did not fit.
        offset: usize,
    },
    /// A field held a value the format does not allow.
    #[error("{what}: invalid value at byte {offset}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Offset of the offending field.
        offset: usize,
    },
    /// A packet type the format defines but we do not implement (STAP-B, MTAP, FU-B, PACI).
    #[error("{what}: unsupported packet type {packet_type}")]
    Unsupported {
        /// The payload format.
        what: &'static str,
        /// The NAL unit / packet type found.
        packet_type: u8,
    },
    /// A size exceeded what the format or our bounds allow.
    #[error("{what}: too large ({len} > {max})")]
    TooLarge {
        /// What was being built or read.
        what: &'static str,
        /// The size reached.
        len: usize,
        /// The largest accepted size.
        max: usize,
    },
}

/// The fixed RTP header (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// The P bit: padding was present (it is not part of the parsed payload).
    pub padding: bool,
    /// The X bit: a header extension was present (skipped when parsing).
    pub extension: bool,
    /// Number of CSRC identifiers that followed the fixed header (skipped when parsing).
    pub csrc_count: u8,
    /// The M bit: for our formats, the last packet of an access unit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp in the payload format's clock.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Appends the 12-byte fixed header to `out`. Padding, extension and CSRCs are never
    /// written: a packetizer's payload needs none of them.
    pub fn write(&self, out: &mut BytesMut) {
        out.put_u8(RTP_VERSION << 6);
        out.put_u8((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.put_u16(self.sequence);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
    }
}

/// A received RTP packet: its header and a zero-copy slice of its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// The fixed header.
    pub header: RtpHeader,
    /// The payload, without CSRCs, header extension or padding.
    pub payload: Bytes,
}

impl RtpPacket {
    /// Parses one packet (a UDP datagram or the body of an interleaved frame).
    pub fn parse(packet: &Bytes) -> Result<Self, RtpError> {
        const WHAT: &str = "RTP header";
        let mut reader = Reader::new(packet);
        let truncated = |reader: &Reader<'_>| RtpError::Truncated {
            what: WHAT,
            offset: reader.offset(),
        };
        let [first, second] = reader.array::<2>().ok_or_else(|| truncated(&reader))?;
        if first >> 6 != RTP_VERSION {
            return Err(RtpError::Invalid {
                what: WHAT,
                offset: 0,
            });
        }
        let sequence = reader.u16_be().ok_or_else(|| truncated(&reader))?;
        let timestamp = reader.u32_be().ok_or_else(|| truncated(&reader))?;
        let ssrc = reader.u32_be().ok_or_else(|| truncated(&reader))?;
        let csrc_count = first & 0x0f;
        reader
            .skip(usize::from(csrc_count) * 4)
            .ok_or_else(|| truncated(&reader))?;
        let extension = first & 0x10 != 0;
        if extension {
            // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words, then the words.
            reader.skip(2).ok_or_else(|| truncated(&reader))?;
            let words = reader.u16_be().ok_or_else(|| truncated(&reader))?;
            reader
                .skip(usize::from(words) * 4)
                .ok_or_else(|| truncated(&reader))?;
        }
        let start = reader.offset();
        let mut end = packet.len();
        let padding = first & 0x20 != 0;
        if padding {
            // The last byte counts the padding, itself included.
            let count = usize::from(packet.last().copied().unwrap_or(0));
            if count == 0 || count > end - start {
                return Err(RtpError::Invalid {
                    what: "RTP padding",
                    offset: end.saturating_sub(1),
                });
            }
            end -= count;
        }
        Ok(Self {
            header: RtpHeader {
                padding,
                extension,
                csrc_count,
                marker: second & 0x80 != 0,
                payload_type: second & 0x7f,
                sequence,
                timestamp,
                ssrc,
            },
            payload: packet.slice(start..end),
        })
    }
}

/// One packet made by a packetizer, as segments to be written back to back.
///
/// The first segment is the RTP header followed by the payload-format header (FU indicator,
/// aggregation header, AU headers), written into the caller's arena; the others are slices of
/// the frame payload and, for aggregation packets, the 2-byte size fields between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacketOut {
    /// The header that the first segment starts with.
    pub header: RtpHeader,
    /// The packet's bytes in order.
    pub segments: SmallVec<[Bytes; 3]>,
}

impl RtpPacketOut {
    /// Total packet length in bytes.
    pub fn len(&self) -> usize {
        self.segments.iter().map(Bytes::len).sum()
    }

    /// True if the packet has no bytes (never the case for a packetizer's output).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues the segments, e.g. after a 4-byte interleave header on an RTSP connection.
    pub fn queue(&self, out: &mut OutQueue) {
        for segment in &self.segments {
            out.push(segment.clone());
        }
    }

    /// The packet as one contiguous buffer. This copies the payload: for tests and for
    /// datagram senders without vectored I/O.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        for segment in &self.segments {
            out.put_slice(segment);
        }
        out.freeze()
    }
}

/// Settings shared by every packetizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketizerConfig {
    /// Payload type to send (dynamic types 96..=127 in practice).
    pub payload_type: u8,
    /// Our synchronisation source.
    pub ssrc: u32,
    /// Sequence number of the first packet (RFC 3550 asks for a random one).
    pub initial_sequence: u16,
    /// RTP timestamp of media time 0 ms (RFC 3550 asks for a random one).
    pub initial_timestamp: u32,
    /// Largest RTP packet (header included) to produce; raised to [`MIN_MTU`] if smaller.
    pub mtu: usize,
    /// H.264/H.265 only: send the configured parameter sets before each keyframe that does
    /// not carry its own, so a receiver without the SDP's can start.
    pub insert_parameter_sets: bool,
}

impl Default for PacketizerConfig {
    fn default() -> Self {
        Self {
            payload_type: 96,
            ssrc: 0,
            initial_sequence: 0,
            initial_timestamp: 0,
            mtu: DEFAULT_MTU,
            insert_parameter_sets: true,
        }
    }
}

impl PacketizerConfig {
    /// Room for payload-format headers and data in one packet.
    pub(crate) fn max_payload(&self) -> usize {
        self.mtu.clamp(MIN_MTU, usize::from(u16::MAX)) - RTP_HEADER_LEN
    }
}

/// Settings shared by every depacketizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepacketizerConfig {
    /// RTP timestamp that maps to 0 ms (from RTP-Info's `rtptime`, or the SDP); `None` takes
    /// the first packet's timestamp.
    pub timestamp_origin: Option<u32>,
    /// How many packets past a hole to wait for the missing one before declaring it lost.
    pub reorder_window: usize,
    /// Largest access unit to reassemble; a bigger one is dropped as damaged.
    pub max_access_unit: usize,
}

impl Default for DepacketizerConfig {
    fn default() -> Self {
        Self {
            timestamp_origin: None,
            reorder_window: DEFAULT_REORDER_WINDOW,
            max_access_unit: DEFAULT_MAX_ACCESS_UNIT,
        }
    }
}

/// Numbers and stamps a packetizer's packets.
#[derive(Debug, Clone)]
pub(crate) struct HeaderSource {
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    clock: RtpClock,
}

impl HeaderSource {
    pub(crate) fn new(config: &PacketizerConfig, rate: u32) -> Self {
        Self {
            payload_type: config.payload_type,
            ssrc: config.ssrc,
            sequence: config.initial_sequence,
            clock: RtpClock::new(rate, Some(config.initial_timestamp)),
        }
    }

    pub(crate) fn sequence(&self) -> u16 {
        self.sequence
    }

    pub(crate) fn clock(&self) -> &RtpClock {
        &self.clock
    }

    /// The header of the next packet; sequence numbers wrap at 2^16.
    pub(crate) fn next(&mut self, marker: bool, timestamp: u32) -> RtpHeader {
        let header = RtpHeader {
            marker,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp,
            ssrc: self.ssrc,
            ..RtpHeader::default()
        };
        self.sequence = self.sequence.wrapping_add(1);
        header
    }
}

/// Builds a packet's first segment: the RTP header then the format header bytes from `write`.
pub(crate) fn header_segment(
    header: &RtpHeader,
    arena: &mut BytesMut,
    extra: usize,
    write: impl FnOnce(&mut BytesMut),
) -> Bytes {
    arena.reserve(RTP_HEADER_LEN + extra);
    header.write(arena);
    write(arena);
    arena.split().freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_with_csrcs_extension_and_padding() {
        let packet = Bytes::from_static(&[
            0xb1, 0xe0, 0x12, 0x34, // V=2 P X CC=1, M PT=96, seq
            0, 0, 0x10, 0, // timestamp
            0xde, 0xad, 0xbe, 0xef, // ssrc
            1, 2, 3, 4, // csrc
            0xbe, 0xde, 0, 1, 9, 9, 9, 9, // extension: one word
            0x65, 0xaa, // payload
            0, 0, 3, // padding, count 3
        ]);
        let parsed = RtpPacket::parse(&packet).unwrap();
        assert_eq!(
            parsed.header,
            RtpHeader {
                padding: true,
                extension: true,
                csrc_count: 1,
                marker: true,
                payload_type: 96,
                sequence: 0x1234,
                timestamp: 0x1000,
                ssrc: 0xdead_beef,
            }
        );
        assert_eq!(parsed.payload.as_ref(), &[0x65, 0xaa]);
    }

    #[test]
    fn written_header_parses_back() {
        let header = RtpHeader {
            marker: true,
            payload_type: 97,
            sequence: 65535,
            timestamp: u32::MAX,
            ssrc: 7,
            ..RtpHeader::default()
        };
        let mut arena = BytesMut::new();
        header.write(&mut arena);
        arena.put_slice(&[1, 2, 3]);
        let parsed = RtpPacket::parse(&arena.freeze()).unwrap();
        assert_eq!(parsed.header, header);
        assert_eq!(parsed.payload.as_ref(), &[1, 2, 3]);
    }

    #[test]
    fn malformed_headers_are_errors() {
        let good = Bytes::from_static(&[0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x41]);
        for len in 0..RTP_HEADER_LEN {
            assert!(RtpPacket::parse(&good.slice(..len)).is_err(), "len {len}");
        }
        let mut bad_version = good.to_vec();
        bad_version[0] = 0x40;
        assert!(RtpPacket::parse(&Bytes::from(bad_version)).is_err());
        // Padding longer than the payload, zero padding, CSRCs and extension past the end.
        for first in [0xa0, 0x8f, 0x90] {
            let mut packet = good.to_vec();
            packet[0] = first;
            *packet.last_mut().unwrap() = 0x41;
            assert!(
                RtpPacket::parse(&Bytes::from(packet)).is_err(),
                "{first:#x}"
            );
        }
        let mut zero_pad = good.to_vec();
        zero_pad[0] = 0xa0;
        *zero_pad.last_mut().unwrap() = 0;
        assert!(RtpPacket::parse(&Bytes::from(zero_pad)).is_err());
    }
}
