//! RTCP (RFC 3550 §6): compound packets of sender reports, receiver reports, source
//! descriptions and BYE, parsed and written; other packet types (APP, XR, feedback) are
//! reported by type and skipped.
//!
//! The core reads no clock: NTP timestamps for sender reports are built from a wall-clock time
//! the caller passes in ([`NtpTimestamp::from_unix_micros`]).

use alloc::vec::Vec;

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::Reader;

/// Packet type of a sender report.
pub const SR: u8 = 200;
/// Packet type of a receiver report.
pub const RR: u8 = 201;
/// Packet type of a source description.
pub const SDES: u8 = 202;
/// Packet type of BYE.
pub const BYE: u8 = 203;
/// Packet type of an application-defined packet.
pub const APP: u8 = 204;
/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;

/// The most packets read from one compound packet; a UDP datagram cannot hold more than a few.
pub const MAX_PACKETS: usize = 32;

/// Why an RTCP packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// The data ended before a field the packet's own lengths promised.
    #[error("RTCP {what} truncated at byte {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset in the compound packet.
        offset: usize,
    },
    /// A field held a value RTCP does not allow.
    #[error("invalid RTCP {what} at byte {offset}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Offset in the compound packet.
        offset: usize,
    },
    /// More packets than [`MAX_PACKETS`].
    #[error("more than {MAX_PACKETS} packets in one compound RTCP packet")]
    TooManyPackets,
}

/// A 64-bit NTP timestamp: seconds since 1900 in the high half, the fraction in the low half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtpTimestamp(pub u64);

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

impl NtpTimestamp {
    /// The NTP time of a wall-clock instant given in microseconds since the Unix epoch. NTP
    /// seconds wrap in 2036 (era 1), as the 32-bit field on the wire does.
    pub fn from_unix_micros(micros: u64) -> Self {
        let seconds = (micros / 1_000_000).wrapping_add(NTP_UNIX_OFFSET);
        // Rounded both ways, so a microsecond time survives the trip through NTP.
        let fraction = (((micros % 1_000_000) << 32) + 500_000) / 1_000_000;
        NtpTimestamp((seconds << 32) | fraction)
    }

    /// Microseconds since the Unix epoch (saturating at 0 for times before 1970).
    pub fn to_unix_micros(self) -> u64 {
        let seconds = (self.0 >> 32).saturating_sub(NTP_UNIX_OFFSET);
        let fraction = ((self.0 & 0xffff_ffff) * 1_000_000 + (1 << 31)) >> 32;
        seconds * 1_000_000 + fraction
    }

    /// The middle 32 bits, as report blocks carry it in `LSR`.
    pub fn middle(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// A reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (`LSR`).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s (`DLSR`).
    pub delay_since_last_sr: u32,
}

/// A sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// Wall-clock time of this report.
    pub ntp: NtpTimestamp,
    /// The same instant in the stream's RTP clock.
    pub rtp_timestamp: u32,
    /// Packets sent since the start.
    pub packet_count: u32,
    /// Payload octets sent since the start.
    pub octet_count: u32,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

/// A receiver report (RFC 3550 §6.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverReport {
    /// The reporter's SSRC.
    pub ssrc: u32,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

/// One SDES chunk: a source and its CNAME (other items are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    /// The source described.
    pub ssrc: u32,
    /// Its canonical name, if the chunk has one.
    pub cname: Option<Bytes>,
}

/// A BYE packet (RFC 3550 §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye {
    /// The sources leaving (at most 31).
    pub sources: Vec<u32>,
    /// The reason, if given.
    pub reason: Option<Bytes>,
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// A sender report.
    SenderReport(SenderReport),
    /// A receiver report.
    ReceiverReport(ReceiverReport),
    /// A source description.
    SourceDescription(Vec<SdesChunk>),
    /// A BYE.
    Bye(Bye),
    /// A packet of another type (APP, XR, feedback...), skipped.
    Other {
        /// Its packet type.
        packet_type: u8,
    },
}

/// Parses a compound RTCP packet (one UDP datagram or one interleaved frame). Text fields
/// are zero-copy slices of `data`.
pub fn parse_compound(data: &Bytes) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut reader = Reader::new(data);
    let mut packets = Vec::new();
    while !reader.is_empty() {
        if packets.len() >= MAX_PACKETS {
            return Err(RtcpError::TooManyPackets);
        }
        let start = reader.offset();
        let truncated = |what| RtcpError::Truncated {
            what,
            offset: start,
        };
        let [first, packet_type, len_high, len_low] = reader.array().ok_or(truncated("header"))?;
        if first >> 6 != 2 {
            return Err(RtcpError::Invalid {
                what: "version",
                offset: start,
            });
        }
        let count = usize::from(first & 0x1f);
        let body_len = usize::from(u16::from_be_bytes([len_high, len_low])) * 4;
        let body_range = reader.take_range(body_len).ok_or(truncated("packet"))?;
        let mut body_end = body_range.end;
        if first & 0x20 != 0 {
            // Padding: the last octet counts the padding octets, itself included.
            let padding = data
                .get(body_range.clone())
                .and_then(|body| body.last())
                .map(|last| usize::from(*last))
                .filter(|padding| *padding > 0 && *padding <= body_len)
                .ok_or(RtcpError::Invalid {
                    what: "padding",
                    offset: start,
                })?;
            body_end -= padding;
        }
        let body = data.slice(body_range.start..body_end);
        let offset = body_range.start;
        packets.push(parse_packet(packet_type, count, &body, offset)?);
    }
    Ok(packets)
}

fn parse_packet(
    packet_type: u8,
    count: usize,
    body: &Bytes,
    offset: usize,
) -> Result<RtcpPacket, RtcpError> {
    let mut reader = Reader::new(body);
    let truncated = |what, reader: &Reader<'_>| RtcpError::Truncated {
        what,
        offset: offset + reader.offset(),
    };
    Ok(match packet_type {
        SR => {
            let ssrc = reader.u32_be().ok_or_else(|| truncated("SR", &reader))?;
            let ntp = NtpTimestamp(reader.u64_be().ok_or_else(|| truncated("SR", &reader))?);
            let [rtp_timestamp, packet_count, octet_count] = [(); 3].map(|_| reader.u32_be());
            let (Some(rtp_timestamp), Some(packet_count), Some(octet_count)) =
                (rtp_timestamp, packet_count, octet_count)
            else {
                return Err(truncated("SR sender info", &reader));
            };
            let reports = parse_report_blocks(&mut reader, count, offset)?;
            RtcpPacket::SenderReport(SenderReport {
                ssrc,
                ntp,
                rtp_timestamp,
                packet_count,
                octet_count,
                reports,
            })
        }
        RR => {
            let ssrc = reader.u32_be().ok_or_else(|| truncated("RR", &reader))?;
            let reports = parse_report_blocks(&mut reader, count, offset)?;
            RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports })
        }
        SDES => RtcpPacket::SourceDescription(parse_sdes(body, count, offset)?),
        BYE => {
            let mut sources = Vec::with_capacity(count);
            for _ in 0..count {
                sources.push(reader.u32_be().ok_or_else(|| truncated("BYE", &reader))?);
            }
            let reason = match reader.u8() {
                Some(len) => {
                    let range = reader
                        .take_range(usize::from(len))
                        .ok_or_else(|| truncated("BYE reason", &reader))?;
                    Some(body.slice(range))
                }
                None => None,
            };
            RtcpPacket::Bye(Bye { sources, reason })
        }
        other => RtcpPacket::Other { packet_type: other },
    })
}

fn parse_report_blocks(
    reader: &mut Reader<'_>,
    count: usize,
    offset: usize,
) -> Result<Vec<ReportBlock>, RtcpError> {
    let mut reports = Vec::with_capacity(count);
    for _ in 0..count {
        let at = offset + reader.offset();
        let fields: [u8; 24] = reader.array().ok_or(RtcpError::Truncated {
            what: "report block",
            offset: at,
        })?;
        let word = |i: usize| {
            fields
                .get(i * 4..i * 4 + 4)
                .and_then(|bytes| bytes.try_into().ok())
                .map_or(0, u32::from_be_bytes)
        };
        let lost = word(1);
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        reports.push(ReportBlock {
            ssrc: word(0),
            fraction_lost: (lost >> 24) as u8,
            cumulative_lost,
            highest_sequence: word(2),
            jitter: word(3),
            last_sr: word(4),
            delay_since_last_sr: word(5),
        });
    }
    Ok(reports)
}

fn parse_sdes(body: &Bytes, count: usize, offset: usize) -> Result<Vec<SdesChunk>, RtcpError> {
    let mut reader = Reader::new(body);
    let mut chunks = Vec::with_capacity(count);
    for _ in 0..count {
        let truncated = |reader: &Reader<'_>| RtcpError::Truncated {
            what: "SDES chunk",
            offset: offset + reader.offset(),
        };
        let ssrc = reader.u32_be().ok_or_else(|| truncated(&reader))?;
        let mut cname = None;
        loop {
            let item_type = reader.u8().ok_or_else(|| truncated(&reader))?;
            if item_type == 0 {
                // The item list ends with a null octet and pads to the next 32-bit boundary.
                let pad = (4 - reader.offset() % 4) % 4;
                reader.skip(pad.min(reader.remaining()));
                break;
            }
            let len = usize::from(reader.u8().ok_or_else(|| truncated(&reader))?);
            let range = reader.take_range(len).ok_or_else(|| truncated(&reader))?;
            if item_type == SDES_CNAME {
                cname = Some(body.slice(range));
            }
        }
        chunks.push(SdesChunk { ssrc, cname });
    }
    Ok(chunks)
}

/// Writes a packet header; `words` is the packet length in 32-bit words, header included.
fn put_header(out: &mut BytesMut, count: usize, packet_type: u8, words: usize) {
    out.put_u8(0x80 | (count.min(31) as u8));
    out.put_u8(packet_type);
    out.put_u16(words.saturating_sub(1).min(usize::from(u16::MAX)) as u16);
}

fn put_report_blocks(out: &mut BytesMut, reports: &[ReportBlock]) {
    for block in reports.iter().take(31) {
        out.put_u32(block.ssrc);
        out.put_u32(
            (u32::from(block.fraction_lost) << 24) | (block.cumulative_lost as u32 & 0x00ff_ffff),
        );
        out.put_u32(block.highest_sequence);
        out.put_u32(block.jitter);
        out.put_u32(block.last_sr);
        out.put_u32(block.delay_since_last_sr);
    }
}

impl SenderReport {
    /// Appends the report to `out` (at most 31 report blocks are written).
    pub fn encode(&self, out: &mut BytesMut) {
        let blocks = self.reports.len().min(31);
        put_header(out, blocks, SR, 7 + 6 * blocks);
        out.put_u32(self.ssrc);
        out.put_u64(self.ntp.0);
        out.put_u32(self.rtp_timestamp);
        out.put_u32(self.packet_count);
        out.put_u32(self.octet_count);
        put_report_blocks(out, &self.reports);
    }
}

impl ReceiverReport {
    /// Appends the report to `out` (at most 31 report blocks are written).
    pub fn encode(&self, out: &mut BytesMut) {
        let blocks = self.reports.len().min(31);
        put_header(out, blocks, RR, 2 + 6 * blocks);
        out.put_u32(self.ssrc);
        put_report_blocks(out, &self.reports);
    }
}

/// Appends an SDES packet with one CNAME chunk, which RFC 3550 §6.1 requires in every
/// compound packet. Names longer than 255 bytes are cut.
pub fn encode_sdes_cname(out: &mut BytesMut, ssrc: u32, cname: &[u8]) {
    let cname = cname.get(..255).unwrap_or(cname);
    // ssrc + type + length + name + null, padded to a word.
    let chunk_len = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    put_header(out, 1, SDES, 1 + chunk_len / 4);
    out.put_u32(ssrc);
    out.put_u8(SDES_CNAME);
    out.put_u8(cname.len() as u8);
    out.put_slice(cname);
    out.put_bytes(0, chunk_len - 6 - cname.len());
}

impl Bye {
    /// Appends the BYE to `out` (at most 31 sources; a reason is cut to 255 bytes).
    pub fn encode(&self, out: &mut BytesMut) {
        let sources = self.sources.len().min(31);
        let reason = self
            .reason
            .as_ref()
            .map(|r| r.get(..255).unwrap_or(r.as_ref()));
        let reason_len = reason.map_or(0, |r| (1 + r.len()).div_ceil(4) * 4);
        put_header(out, sources, BYE, 1 + sources + reason_len / 4);
        for ssrc in self.sources.iter().take(31) {
            out.put_u32(*ssrc);
        }
        if let Some(reason) = reason {
            out.put_u8(reason.len() as u8);
            out.put_slice(reason);
            out.put_bytes(0, reason_len - 1 - reason.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    /// ffmpeg's first sender report of a TCP-interleaved RTSP publish.
    const FFMPEG_SR: &[u8] = &[
        0x80, 0xc8, 0x00, 0x06, 0x2b, 0x1d, 0x5b, 0x14, 0xee, 0xaf, 0x40, 0xed, 0x08, 0x31, 0x26,
        0xe9, 0x54, 0xb9, 0x47, 0x91, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn parses_an_ffmpeg_sender_report() {
        let packets = parse_compound(&Bytes::from_static(FFMPEG_SR)).unwrap();
        let [RtcpPacket::SenderReport(sr)] = &packets[..] else {
            panic!("{packets:?}")
        };
        assert_eq!(sr.ssrc, 0x2b1d_5b14);
        assert_eq!(sr.ntp.0 >> 32, 0xeeaf_40ed);
        assert_eq!(sr.rtp_timestamp, 0x54b9_4791);
        assert_eq!((sr.packet_count, sr.octet_count), (0, 0));
        assert!(sr.reports.is_empty());
        // 0xeeaf40ed seconds since 1900 is in 2026.
        let unix_seconds = sr.ntp.to_unix_micros() / 1_000_000;
        assert!((1_767_225_600..1_798_761_600).contains(&unix_seconds));
        let mut out = BytesMut::new();
        sr.encode(&mut out);
        assert_eq!(&out[..], FFMPEG_SR);
    }

    #[test]
    fn parses_a_receiver_compound_with_sdes_and_bye() {
        let block = ReportBlock {
            ssrc: 0x2b1d_5b14,
            fraction_lost: 12,
            cumulative_lost: -3,
            highest_sequence: 0x0001_0005,
            jitter: 77,
            last_sr: NtpTimestamp(0xeeaf_40ed_0831_26e9).middle(),
            delay_since_last_sr: 65536,
        };
        let mut out = BytesMut::new();
        ReceiverReport {
            ssrc: 7,
            reports: vec![block],
        }
        .encode(&mut out);
        encode_sdes_cname(&mut out, 7, b"player@127.0.0.1");
        Bye {
            sources: vec![7],
            reason: Some(Bytes::from_static(b"teardown")),
        }
        .encode(&mut out);
        // APP packets are skipped by type.
        out.put_slice(&[0x80, APP, 0x00, 0x02, 0, 0, 0, 7, b'n', b'a', b'm', b'e']);
        let packets = parse_compound(&out.freeze()).unwrap();
        assert_eq!(packets.len(), 4);
        assert_eq!(
            packets[0],
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 7,
                reports: vec![block]
            })
        );
        assert_eq!(
            packets[1],
            RtcpPacket::SourceDescription(vec![SdesChunk {
                ssrc: 7,
                cname: Some(Bytes::from_static(b"player@127.0.0.1"))
            }])
        );
        assert_eq!(
            packets[2],
            RtcpPacket::Bye(Bye {
                sources: vec![7],
                reason: Some(Bytes::from_static(b"teardown"))
            })
        );
        assert_eq!(packets[3], RtcpPacket::Other { packet_type: APP });
        assert_eq!(block.last_sr, 0x40ed_0831);
    }

    #[test]
    fn malformed_packets_are_errors() {
        let data = Bytes::from_static(FFMPEG_SR);
        assert!(matches!(
            parse_compound(&data.slice(..27)),
            Err(RtcpError::Truncated { .. })
        ));
        let mut wrong_version = FFMPEG_SR.to_vec();
        wrong_version[0] = 0x40;
        assert!(matches!(
            parse_compound(&Bytes::from(wrong_version)),
            Err(RtcpError::Invalid { .. })
        ));
        let mut claims_a_block = FFMPEG_SR.to_vec();
        claims_a_block[0] = 0x81;
        assert!(parse_compound(&Bytes::from(claims_a_block)).is_err());
        let mut bad_padding = FFMPEG_SR.to_vec();
        bad_padding[0] = 0xa0;
        assert!(matches!(
            parse_compound(&Bytes::from(bad_padding)),
            Err(RtcpError::Invalid { .. })
        ));
    }

    #[test]
    fn ntp_from_wall_clock() {
        // 2000-01-01T00:00:00.5Z.
        let ntp = NtpTimestamp::from_unix_micros(946_684_800_500_000);
        assert_eq!(ntp.0 >> 32, 946_684_800 + 2_208_988_800);
        assert_eq!(ntp.0 & 0xffff_ffff, 0x8000_0000);
        assert_eq!(ntp.to_unix_micros(), 946_684_800_500_000);
    }

    fn arb_block() -> impl Strategy<Value = ReportBlock> {
        (
            any::<u32>(),
            any::<u8>(),
            -(1i32 << 23)..(1 << 23),
            any::<[u32; 4]>(),
        )
            .prop_map(
                |(
                    ssrc,
                    fraction_lost,
                    cumulative_lost,
                    [highest_sequence, jitter, last_sr, delay_since_last_sr],
                )| {
                    ReportBlock {
                        ssrc,
                        fraction_lost,
                        cumulative_lost,
                        highest_sequence,
                        jitter,
                        last_sr,
                        delay_since_last_sr,
                    }
                },
            )
    }

    fn arb_packet() -> impl Strategy<Value = RtcpPacket> {
        let blocks = || proptest::collection::vec(arb_block(), 0..32);
        let text = || proptest::collection::vec(any::<u8>(), 0..256).prop_map(Bytes::from);
        prop_oneof![
            (any::<u32>(), any::<u64>(), any::<[u32; 3]>(), blocks()).prop_map(
                |(ssrc, ntp, [rtp_timestamp, packet_count, octet_count], reports)| {
                    RtcpPacket::SenderReport(SenderReport {
                        ssrc,
                        ntp: NtpTimestamp(ntp),
                        rtp_timestamp,
                        packet_count,
                        octet_count,
                        reports,
                    })
                }
            ),
            (any::<u32>(), blocks()).prop_map(|(ssrc, reports)| RtcpPacket::ReceiverReport(
                ReceiverReport { ssrc, reports }
            )),
            (any::<u32>(), text()).prop_map(|(ssrc, cname)| RtcpPacket::SourceDescription(vec![
                SdesChunk {
                    ssrc,
                    cname: Some(cname)
                }
            ])),
            (
                proptest::collection::vec(any::<u32>(), 0..32),
                proptest::option::of(text())
            )
                .prop_map(|(sources, reason)| RtcpPacket::Bye(Bye { sources, reason })),
        ]
    }

    fn encode(packet: &RtcpPacket, out: &mut BytesMut) {
        match packet {
            RtcpPacket::SenderReport(sr) => sr.encode(out),
            RtcpPacket::ReceiverReport(rr) => rr.encode(out),
            RtcpPacket::SourceDescription(chunks) => {
                let chunk = &chunks[0];
                encode_sdes_cname(out, chunk.ssrc, chunk.cname.as_deref().unwrap_or_default())
            }
            RtcpPacket::Bye(bye) => bye.encode(out),
            RtcpPacket::Other { .. } => {}
        }
    }

    /// What the writers keep: at most 31 blocks or sources, names and reasons cut to 255.
    fn truncated(packet: &RtcpPacket) -> RtcpPacket {
        let mut packet = packet.clone();
        match &mut packet {
            RtcpPacket::SenderReport(sr) => sr.reports.truncate(31),
            RtcpPacket::ReceiverReport(rr) => rr.reports.truncate(31),
            RtcpPacket::SourceDescription(chunks) => {
                for chunk in chunks {
                    chunk.cname = chunk.cname.as_ref().map(|c| c.slice(..c.len().min(255)));
                }
            }
            RtcpPacket::Bye(bye) => {
                bye.sources.truncate(31);
                bye.reason = bye.reason.as_ref().map(|r| r.slice(..r.len().min(255)));
            }
            RtcpPacket::Other { .. } => {}
        }
        packet
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(packets in proptest::collection::vec(arb_packet(), 1..6)) {
            let mut out = BytesMut::new();
            for packet in &packets {
                encode(packet, &mut out);
            }
            prop_assert_eq!(out.len() % 4, 0);
            let parsed = parse_compound(&out.freeze()).unwrap();
            let expected: Vec<RtcpPacket> = packets.iter().map(truncated).collect();
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = parse_compound(&Bytes::from(input));
        }

        #[test]
        fn ntp_round_trips_to_the_microsecond(micros in 0u64..2_085_978_496_000_000) {
            prop_assert_eq!(NtpTimestamp::from_unix_micros(micros).to_unix_micros(), micros);
        }
    }
}
