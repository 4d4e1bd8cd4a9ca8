//! H.264 over RTP (RFC 6184), packetization-mode 1: single NAL unit packets, STAP-A and FU-A.

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::smallvec;

use super::nal::{aggregated_units, fragment, NalFormat, ParameterSetKind, PayloadUnits};
use super::{NalDepacketizer, NalPacketizer, RtpError};
use crate::media::avc::{NAL_IDR, NAL_PPS, NAL_SPS};
use crate::media::{AvcConfig, Codec};

/// Single NAL unit packets carry NAL unit types 1..=23 as they are (RFC 6184 §5.6).
pub const SINGLE_NAL_MAX: u8 = 23;
/// Single-time aggregation packet (§5.7.1).
pub const STAP_A: u8 = 24;
/// STAP-B, needs decoding order numbers (interleaved mode; unsupported).
pub const STAP_B: u8 = 25;
/// Multi-time aggregation packet, 16-bit offsets (unsupported).
pub const MTAP16: u8 = 26;
/// Multi-time aggregation packet, 24-bit offsets (unsupported).
pub const MTAP24: u8 = 27;
/// Fragmentation unit without decoding order number (§5.8).
pub const FU_A: u8 = 28;
/// Fragmentation unit with decoding order number (interleaved mode; unsupported).
pub const FU_B: u8 = 29;
/// Access unit delimiter NAL unit type.
pub const NAL_AUD: u8 = 9;
/// Supplemental enhancement information NAL unit type.
pub const NAL_SEI: u8 = 6;

/// The NAL unit type: the low five bits of the header byte.
pub fn nal_type(header: u8) -> u8 {
    header & 0x1f
}

/// H.264 payload format marker for [`NalPacketizer`] and [`NalDepacketizer`].
#[derive(Debug, Clone, Copy)]
pub struct H264;

/// Packetizes H.264 access units.
pub type H264Packetizer = NalPacketizer<H264>;
/// Reassembles H.264 access units.
pub type H264Depacketizer = NalDepacketizer<H264>;

impl NalFormat for H264 {
    const CODEC: Codec = Codec::H264;
    const NAME: &'static str = "H.264 RTP payload";
    const NAL_HEADER_LEN: usize = 1;
    const AGGREGATION_HEADER_LEN: usize = 1;
    const FRAGMENT_HEADER_LEN: usize = 2;

    fn is_keyframe(nal: &[u8]) -> bool {
        nal.first().is_some_and(|&h| nal_type(h) == NAL_IDR)
    }

    fn parameter_set(nal: &[u8]) -> Option<ParameterSetKind> {
        match nal_type(*nal.first()?) {
            NAL_SPS => Some(ParameterSetKind::Sps),
            NAL_PPS => Some(ParameterSetKind::Pps),
            _ => None,
        }
    }

    fn begins_access_unit(nal: &[u8]) -> bool {
        nal.first()
            .is_some_and(|&h| matches!(nal_type(h), NAL_AUD | NAL_SPS))
    }

    fn may_begin_access_unit(nal: &[u8]) -> bool {
        // Slice header: first_mb_in_slice is ue(v), and ue(v) 0 is the single bit 1.
        match nal {
            [header, first, ..] if (1..=NAL_IDR).contains(&nal_type(*header)) => first & 0x80 != 0,
            [header, ..] => nal_type(*header) == NAL_SEI || Self::begins_access_unit(nal),
            [] => false,
        }
    }

    fn is_single_nal(nal: &[u8]) -> bool {
        nal.first()
            .is_some_and(|&h| (1..=SINGLE_NAL_MAX).contains(&nal_type(h)))
    }

    fn write_aggregation_header(nals: &[Bytes], out: &mut BytesMut) {
        // F is the OR and NRI the maximum of the aggregated units' (§5.7.1).
        let (f, nri) = nals
            .iter()
            .filter_map(|nal| nal.first())
            .fold((0u8, 0u8), |(f, nri), &h| {
                (f | (h & 0x80), nri.max(h & 0x60))
            });
        out.put_u8(f | nri | STAP_A);
    }

    fn write_fragment_header(nal_header: &[u8], start: bool, end: bool, out: &mut BytesMut) {
        let header = nal_header.first().copied().unwrap_or(0);
        out.put_u8((header & 0xe0) | FU_A);
        out.put_u8((u8::from(start) << 7) | (u8::from(end) << 6) | nal_type(header));
    }

    fn parse_payload(payload: &[u8]) -> Result<PayloadUnits, RtpError> {
        let Some(&first) = payload.first() else {
            return Err(RtpError::Truncated {
                what: Self::NAME,
                offset: 0,
            });
        };
        match nal_type(first) {
            1..=SINGLE_NAL_MAX => Ok(PayloadUnits::Whole(smallvec![0..payload.len()])),
            STAP_A => aggregated_units::<Self>(payload, "H.264 STAP-A"),
            FU_A => {
                let Some(&fu) = payload.get(1) else {
                    return Err(RtpError::Truncated {
                        what: "H.264 FU-A header",
                        offset: 1,
                    });
                };
                let header = (first & 0xe0) | nal_type(fu);
                fragment::<Self>(fu, [header, 0], 2..payload.len(), "H.264 FU-A")
            }
            packet_type @ (STAP_B | MTAP16 | MTAP24 | FU_B) => Err(RtpError::Unsupported {
                what: Self::NAME,
                packet_type,
            }),
            _ => Err(RtpError::Invalid {
                what: Self::NAME,
                offset: 0,
            }),
        }
    }
}

impl H264Packetizer {
    /// Sends this configuration's SPS and PPS before keyframes that lack them.
    pub fn set_config(&mut self, config: &AvcConfig) {
        self.set_parameter_sets(config.sps.iter().chain(&config.pps).cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Frame;
    use crate::rtp::nal::testing::{self, length_prefixed, rtp, NalSpec};
    use crate::rtp::{DepacketizerConfig, PacketizerConfig};
    use alloc::vec;
    use alloc::vec::Vec;

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

    #[test]
    fn depacketizes_stap_a_then_fu_a_start_middle_end() {
        let mut depacketizer = H264Depacketizer::new(&DepacketizerConfig::default());
        let stap = [&[0x78, 0, 6][..], SPS, &[0, 4], PPS].concat();
        depacketizer.push(rtp(1, 9000, false, &stap)).unwrap();
        depacketizer
            .push(rtp(2, 9000, false, &[0x7c, 0x85, 0x88, 0x01]))
            .unwrap();
        depacketizer
            .push(rtp(3, 9000, false, &[0x7c, 0x05, 0x02]))
            .unwrap();
        assert_eq!(depacketizer.pull(), None);
        depacketizer
            .push(rtp(4, 9000, true, &[0x7c, 0x45, 0x03]))
            .unwrap();
        let frame = depacketizer.pull().unwrap();
        assert!(frame.keyframe);
        assert_eq!((frame.dts, frame.pts), (0, 0));
        assert_eq!(
            frame.payload,
            length_prefixed(&[SPS, PPS, &[0x65, 0x88, 0x01, 0x02, 0x03]])
        );
        assert_eq!(depacketizer.parameter_sets().sps.as_deref(), Some(SPS));
        assert_eq!(depacketizer.parameter_sets().pps.as_deref(), Some(PPS));
        assert_eq!(depacketizer.parameter_sets().generation, 1);

        // A single NAL unit packet 40 ms later: a P-frame.
        depacketizer
            .push(rtp(5, 9000 + 3600, true, &[0x41, 0x9a, 0x02]))
            .unwrap();
        let frame = depacketizer.pull().unwrap();
        assert!(!frame.keyframe);
        assert_eq!(frame.pts, 40);
        assert_eq!(frame.payload, length_prefixed(&[&[0x41, 0x9a, 0x02]]));
    }

    #[test]
    fn packetizes_with_exact_bytes() {
        let config = PacketizerConfig {
            ssrc: 1,
            initial_sequence: 65535,
            initial_timestamp: 1000,
            mtu: 64,
            insert_parameter_sets: true,
            ..PacketizerConfig::default()
        };
        let mut packetizer = H264Packetizer::new(config);
        packetizer.set_config(
            &AvcConfig::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
                .unwrap(),
        );
        let mut idr = vec![0x65];
        idr.extend((0..100u8).map(|i| i | 0x80));
        let frame = Frame {
            codec: Codec::H264,
            dts: 10,
            pts: 10,
            keyframe: true,
            payload: length_prefixed(&[&idr]),
        };
        let (mut arena, mut out) = (BytesMut::new(), Vec::new());
        packetizer.packetize(&frame, &mut arena, &mut out).unwrap();
        let packets: Vec<Bytes> = out.iter().map(|p| p.to_bytes()).collect();
        // STAP-A of the inserted SPS and PPS, then the 101-byte IDR in FU-A pieces of 50.
        let ts = 1000u32 + 900;
        let header = |seq: u16, marker: bool| {
            let mut h = vec![0x80, (u8::from(marker) << 7) | 96];
            h.extend_from_slice(&seq.to_be_bytes());
            h.extend_from_slice(&ts.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 1]);
            h
        };
        let expected: [Vec<u8>; 3] = [
            [&header(65535, false)[..], &[0x78, 0, 6], SPS, &[0, 4], PPS].concat(),
            [&header(0, false)[..], &[0x7c, 0x85], &idr[1..51]].concat(),
            [&header(1, true)[..], &[0x7c, 0x45], &idr[51..]].concat(),
        ];
        assert_eq!(packets, expected);
        assert_eq!(packetizer.next_sequence(), 2);
        // The inserted parameter sets come from the config, the rest from the frame.
        testing::assert_payload_is_borrowed(&out[1..], &frame.payload);
    }

    #[test]
    fn malformed_payloads_are_errors_and_recovery_follows() {
        let mut depacketizer = H264Depacketizer::new(&DepacketizerConfig::default());
        let bad: [&[u8]; 8] = [
            &[0x78, 0, 1, 0x78], // STAP-A inside STAP-A
            &[0x7c, 0x9c, 0x01], // FU-A of an FU-A
            &[],
            &[0x78, 0, 9, 0x67], // STAP-A size past the end
            &[0x7c],             // FU-A without its header
            &[0x79, 0, 0, 0, 0], // STAP-B
            &[0x1e],             // reserved type 30
            &[0x7d, 0x85, 0x01], // FU-B
        ];
        for (i, payload) in bad.iter().enumerate() {
            let error = depacketizer.push(rtp(i as u16, 0, true, payload));
            assert!(error.is_err(), "{payload:?}");
        }
        assert_eq!(depacketizer.pull(), None);
        // An FU-A middle piece with no start is dropped silently.
        depacketizer
            .push(rtp(8, 100, true, &[0x7c, 0x45, 1]))
            .unwrap();
        assert_eq!(depacketizer.pull(), None);
        depacketizer.push(rtp(9, 200, true, &[0x65, 0x88])).unwrap();
        assert!(depacketizer.pull().unwrap().keyframe);
    }

    #[test]
    fn the_start_fragment_decides_the_nal_type() {
        let mut depacketizer = H264Depacketizer::new(&DepacketizerConfig::default());
        depacketizer.push(rtp(0, 0, true, &[0x65, 0x88])).unwrap();
        assert!(depacketizer.pull().unwrap().keyframe);
        // A non-IDR slice whose end piece claims to be IDR.
        depacketizer
            .push(rtp(1, 90, false, &[0x5c, 0x81, 0x9a]))
            .unwrap();
        depacketizer
            .push(rtp(2, 90, true, &[0x5c, 0x45, 0x01]))
            .unwrap();
        let frame = depacketizer.pull().unwrap();
        assert!(!frame.keyframe);
        assert_eq!(frame.payload, length_prefixed(&[&[0x41, 0x9a, 0x01]]));
    }

    #[test]
    fn access_unit_bound_drops_the_unit() {
        let config = DepacketizerConfig {
            max_access_unit: 10,
            ..DepacketizerConfig::default()
        };
        let mut depacketizer = H264Depacketizer::new(&config);
        assert!(matches!(
            depacketizer.push(rtp(0, 0, true, &[0x65; 20])),
            Err(RtpError::TooLarge { .. })
        ));
        assert_eq!(depacketizer.pull(), None);
        depacketizer.push(rtp(1, 10, true, &[0x65; 5])).unwrap();
        assert_eq!(depacketizer.pull().unwrap().payload.len(), 9);
    }

    /// One H.264 NAL unit of a generated frame.
    fn nal(spec: &NalSpec) -> Vec<u8> {
        match spec {
            NalSpec::Vps(_) => Vec::new(),
            NalSpec::Sps(body) => [&[0x67][..], body].concat(),
            NalSpec::Pps(body) => [&[0x68][..], body].concat(),
            NalSpec::Slice {
                keyframe,
                first,
                body,
            } => {
                let header = if *keyframe { 0x65 } else { 0x41 };
                let mb = if *first { 0x80 } else { 0x01 };
                [&[header, mb][..], body].concat()
            }
        }
    }

    // The shared properties, and `write_rtp_h264_corpus` (ignored) that writes the seed
    // corpus of the `rtp_h264` fuzz target: run
    // `cargo test -p mediakit-core write_rtp_h264_corpus -- --ignored`.
    testing::nal_format_properties!(H264, nal, "rtp_h264", write_rtp_h264_corpus);
}
