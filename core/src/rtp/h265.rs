//! H.265 over RTP (RFC 7798) without DONL (`sprop-max-don-diff` 0): single NAL unit packets,
//! aggregation packets (AP) and fragmentation units (FU).

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::smallvec;

use super::nal::{aggregated_units, fragment, NalFormat, ParameterSetKind, PayloadUnits};
use super::{NalDepacketizer, NalPacketizer, RtpError};
use crate::media::hevc::{is_irap, nal_type, NAL_PPS, NAL_SPS, NAL_VPS};
use crate::media::{Codec, HevcConfig};

/// NAL unit types up to this travel as they are; the higher ones are RTP packet types.
pub const SINGLE_NAL_MAX: u8 = 47;
/// Aggregation packet type (RFC 7798 §4.4.2).
pub const AP: u8 = 48;
/// Fragmentation unit type (§4.4.3).
pub const FU: u8 = 49;
/// PACI packet type (§4.4.4; unsupported).
pub const PACI: u8 = 50;
/// Access unit delimiter NAL unit type.
pub const NAL_AUD: u8 = 35;
/// Prefix SEI NAL unit type.
pub const NAL_PREFIX_SEI: u8 = 39;
/// The last VCL (slice) NAL unit type.
const VCL_MAX: u8 = 31;

/// H.265 payload format marker for [`NalPacketizer`] and [`NalDepacketizer`].
#[derive(Debug, Clone, Copy)]
pub struct H265;

/// Packetizes H.265 access units.
pub type H265Packetizer = NalPacketizer<H265>;
/// Reassembles H.265 access units.
pub type H265Depacketizer = NalDepacketizer<H265>;

/// The type of a NAL unit from its first byte, or 64 (no such type) for an empty one.
fn type_of(nal: &[u8]) -> u8 {
    nal.first().map_or(64, |&b| nal_type(b))
}

impl NalFormat for H265 {
    const CODEC: Codec = Codec::H265;
    const NAME: &'static str = "H.265 RTP payload";
    const NAL_HEADER_LEN: usize = 2;
    const AGGREGATION_HEADER_LEN: usize = 2;
    const FRAGMENT_HEADER_LEN: usize = 3;

    fn is_keyframe(nal: &[u8]) -> bool {
        is_irap(type_of(nal))
    }

    fn parameter_set(nal: &[u8]) -> Option<ParameterSetKind> {
        match type_of(nal) {
            NAL_VPS => Some(ParameterSetKind::Vps),
            NAL_SPS => Some(ParameterSetKind::Sps),
            NAL_PPS => Some(ParameterSetKind::Pps),
            _ => None,
        }
    }

    fn begins_access_unit(nal: &[u8]) -> bool {
        matches!(type_of(nal), NAL_AUD | NAL_VPS)
    }

    fn may_begin_access_unit(nal: &[u8]) -> bool {
        // The slice segment header starts with first_slice_segment_in_pic_flag.
        match (type_of(nal), nal) {
            (kind, [_, _, first, ..]) if kind <= VCL_MAX => first & 0x80 != 0,
            (kind, _) => kind == NAL_PREFIX_SEI || Self::begins_access_unit(nal),
        }
    }

    fn is_single_nal(nal: &[u8]) -> bool {
        nal.len() >= 2 && type_of(nal) <= SINGLE_NAL_MAX
    }

    fn write_aggregation_header(nals: &[Bytes], out: &mut BytesMut) {
        // F is the OR, LayerId and TID the lowest of the aggregated units' (§4.4.2).
        let (mut f, mut layer, mut tid) = (0u8, u8::MAX, u8::MAX);
        for nal in nals {
            if let [first, second, ..] = nal.as_ref() {
                f |= first & 0x80;
                layer = layer.min(((first & 1) << 5) | (second >> 3));
                tid = tid.min(second & 0x07);
            }
        }
        let (layer, tid) = if layer == u8::MAX {
            (0, 1)
        } else {
            (layer, tid)
        };
        out.put_u8(f | (AP << 1) | (layer >> 5));
        out.put_u8(((layer & 0x1f) << 3) | tid);
    }

    fn write_fragment_header(nal_header: &[u8], start: bool, end: bool, out: &mut BytesMut) {
        let (first, second) = match nal_header {
            [first, second, ..] => (*first, *second),
            _ => (0, 1),
        };
        out.put_u8((first & 0x81) | (FU << 1));
        out.put_u8(second);
        out.put_u8((u8::from(start) << 7) | (u8::from(end) << 6) | nal_type(first));
    }

    fn parse_payload(payload: &[u8]) -> Result<PayloadUnits, RtpError> {
        let (first, second) = match payload {
            [first, second, ..] => (*first, *second),
            _ => {
                return Err(RtpError::Truncated {
                    what: Self::NAME,
                    offset: payload.len(),
                })
            }
        };
        match nal_type(first) {
            0..=SINGLE_NAL_MAX => Ok(PayloadUnits::Whole(smallvec![0..payload.len()])),
            AP => aggregated_units::<Self>(payload, "H.265 AP"),
            FU => {
                let Some(&fu) = payload.get(2) else {
                    return Err(RtpError::Truncated {
                        what: "H.265 FU header",
                        offset: 2,
                    });
                };
                let header = [(first & 0x81) | ((fu & 0x3f) << 1), second];
                fragment::<Self>(fu, header, 3..payload.len(), "H.265 FU")
            }
            PACI => Err(RtpError::Unsupported {
                what: Self::NAME,
                packet_type: PACI,
            }),
            _ => Err(RtpError::Invalid {
                what: Self::NAME,
                offset: 0,
            }),
        }
    }
}

impl H265Packetizer {
    /// Sends this configuration's VPS, SPS and PPS before keyframes that lack them.
    pub fn set_config(&mut self, config: &HevcConfig) {
        let sets = config.vps.iter().chain(&config.sps).chain(&config.pps);
        self.set_parameter_sets(sets.cloned());
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

    const VPS: &[u8] = &[0x40, 0x01, 0x0c];
    const SPS: &[u8] = &[0x42, 0x01, 0x01];
    const PPS: &[u8] = &[0x44, 0x01, 0xc1];

    #[test]
    fn depacketizes_ap_then_fu() {
        let mut depacketizer = H265Depacketizer::new(&DepacketizerConfig::default());
        let ap = [&[0x60, 0x01, 0, 3][..], VPS, &[0, 3], SPS, &[0, 3], PPS].concat();
        depacketizer.push(rtp(65535, 0, false, &ap)).unwrap();
        // An IDR_W_RADL (19) slice in three FU pieces across the sequence wrap.
        depacketizer
            .push(rtp(0, 0, false, &[0x62, 0x01, 0x93, 0xaf]))
            .unwrap();
        depacketizer
            .push(rtp(1, 0, false, &[0x62, 0x01, 0x13, 0x01]))
            .unwrap();
        depacketizer
            .push(rtp(2, 0, true, &[0x62, 0x01, 0x53, 0x02]))
            .unwrap();
        let frame = depacketizer.pull().unwrap();
        assert!(frame.keyframe);
        assert_eq!(frame.codec, Codec::H265);
        assert_eq!(
            frame.payload,
            length_prefixed(&[VPS, SPS, PPS, &[0x26, 0x01, 0xaf, 0x01, 0x02]])
        );
        let sets = depacketizer.parameter_sets();
        assert_eq!(
            (
                sets.vps.as_deref(),
                sets.sps.as_deref(),
                sets.pps.as_deref()
            ),
            (Some(VPS), Some(SPS), Some(PPS))
        );
    }

    #[test]
    fn packetizes_with_exact_bytes() {
        let mut packetizer = H265Packetizer::new(PacketizerConfig {
            mtu: 64,
            insert_parameter_sets: false,
            ..PacketizerConfig::default()
        });
        let mut idr = vec![0x26, 0x01];
        idr.extend(0..60u8);
        let small = [0x02, 0x01, 0x80];
        let frame = Frame {
            codec: Codec::H265,
            dts: 0,
            pts: 0,
            keyframe: true,
            payload: length_prefixed(&[VPS, SPS, &idr, &small]),
        };
        let (mut arena, mut out) = (BytesMut::new(), Vec::new());
        packetizer.packetize(&frame, &mut arena, &mut out).unwrap();
        let payloads: Vec<Vec<u8>> = out.iter().map(|p| p.to_bytes()[12..].to_vec()).collect();
        let expected: [Vec<u8>; 4] = [
            [&[0x60, 0x01, 0, 3][..], VPS, &[0, 3], SPS].concat(),
            [&[0x62, 0x01, 0x93][..], &idr[2..51]].concat(),
            [&[0x62, 0x01, 0x53][..], &idr[51..]].concat(),
            small.to_vec(),
        ];
        assert_eq!(payloads, expected);
        let markers: Vec<bool> = out.iter().map(|p| p.header.marker).collect();
        assert_eq!(markers, [false, false, false, true]);
        testing::assert_payload_is_borrowed(&out, &frame.payload);
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let mut depacketizer = H265Depacketizer::new(&DepacketizerConfig::default());
        let bad: [&[u8]; 5] = [
            &[0x26],
            &[0x60, 0x01, 0, 5, 1],
            &[0x62, 0x01],
            &[0x64, 0x01],
            &[0x7e, 0x01],
        ];
        for (i, payload) in bad.iter().enumerate() {
            assert!(
                depacketizer.push(rtp(i as u16, 0, true, payload)).is_err(),
                "{payload:?}"
            );
        }
        assert_eq!(depacketizer.pull(), None);
    }

    /// One H.265 NAL unit of a generated frame.
    fn nal(spec: &NalSpec) -> Vec<u8> {
        match spec {
            NalSpec::Vps(body) => [&[0x40, 0x01][..], body].concat(),
            NalSpec::Sps(body) => [&[0x42, 0x01][..], body].concat(),
            NalSpec::Pps(body) => [&[0x44, 0x01][..], body].concat(),
            NalSpec::Slice {
                keyframe,
                first,
                body,
            } => {
                // IDR_W_RADL (19) or TRAIL_R (1).
                let header = if *keyframe { 0x26 } else { 0x02 };
                let flag = if *first { 0x80 } else { 0x01 };
                [&[header, 0x01, flag][..], body].concat()
            }
        }
    }

    // The shared properties, and `write_rtp_h265_corpus` (ignored) that writes the seed
    // corpus of the `rtp_h265` fuzz target: run
    // `cargo test -p mediakit-core write_rtp_h265_corpus -- --ignored`.
    testing::nal_format_properties!(H265, nal, "rtp_h265", write_rtp_h265_corpus);
}
