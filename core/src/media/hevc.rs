//! H.265 decoder configuration: the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3).

use alloc::vec::Vec;
use bytes::{BufMut, Bytes, BytesMut};

use super::aac::BitReader;
use super::avc::{put_u16_prefixed, read_parameter_sets};
use super::MediaError;
use crate::wire::Reader;

/// NAL unit type of a video parameter set.
pub const NAL_VPS: u8 = 32;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 34;

/// The largest number of NAL unit arrays we accept in one record.
const MAX_ARRAYS: usize = 16;

/// H.265 parameter sets and the record that carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig {
    /// The HEVCDecoderConfigurationRecord as FLV and MP4 carry it.
    pub record: Bytes,
    /// `general_profile_idc`.
    pub profile: u8,
    /// `general_level_idc`.
    pub level: u8,
    /// Bytes in each NAL unit length prefix of frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// Video parameter sets.
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
}

/// Returns the NAL unit type of an H.265 NAL unit (first header byte bits 1..=6).
pub fn nal_type(first_header_byte: u8) -> u8 {
    (first_header_byte >> 1) & 0x3f
}

/// True for the IRAP picture types (BLA, IDR, CRA: 16..=21) a decoder can start at.
pub fn is_irap(nal_type: u8) -> bool {
    (16..=21).contains(&nal_type)
}

impl HevcConfig {
    /// Parses an HEVCDecoderConfigurationRecord; parameter sets are zero-copy slices of it.
    pub fn parse(record: Bytes) -> Result<Self, MediaError> {
        const WHAT: &str = "HEVCDecoderConfigurationRecord";
        let mut reader = Reader::new(&record);
        let header: [u8; 23] = reader.array().ok_or(MediaError::Truncated {
            what: WHAT,
            offset: record.len(),
        })?;
        if header[0] != 1 {
            return Err(MediaError::Invalid {
                what: WHAT,
                offset: 0,
            });
        }
        let profile = header[1] & 0x1f;
        let level = header[12];
        let nal_length_size = (header[21] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(MediaError::Invalid {
                what: WHAT,
                offset: 21,
            });
        }
        let array_count = usize::from(header[22]);
        if array_count > MAX_ARRAYS {
            return Err(MediaError::TooLarge {
                what: WHAT,
                len: array_count,
                max: MAX_ARRAYS,
            });
        }
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..array_count {
            let truncated = MediaError::Truncated {
                what: WHAT,
                offset: reader.offset(),
            };
            let kind = reader.u8().ok_or(truncated.clone())? & 0x3f;
            let count = usize::from(reader.u16_be().ok_or(truncated)?);
            let sets = read_parameter_sets(&record, &mut reader, count, WHAT)?;
            match kind {
                NAL_VPS => vps.extend(sets),
                NAL_SPS => sps.extend(sets),
                NAL_PPS => pps.extend(sets),
                _ => {}
            }
        }
        Ok(Self {
            record,
            profile,
            level,
            nal_length_size,
            vps,
            sps,
            pps,
        })
    }

    /// Builds a record (with 4-byte NAL lengths) from one VPS, SPS and PPS, as a packetized
    /// source such as RTP provides them. Profile, tier, level, chroma format, bit depths and
    /// temporal layering come from the SPS.
    pub fn from_parameter_sets(vps: Bytes, sps: Bytes, pps: Bytes) -> Result<Self, MediaError> {
        for set in [&vps, &sps, &pps] {
            if set.len() > usize::from(u16::MAX) {
                return Err(MediaError::TooLarge {
                    what: "H.265 parameter set",
                    len: set.len(),
                    max: usize::from(u16::MAX),
                });
            }
        }
        let info = SpsInfo::parse(&sps)?;
        let mut record = BytesMut::with_capacity(23 + 3 * 5 + vps.len() + sps.len() + pps.len());
        record.put_u8(1);
        record.put_slice(&info.profile_tier_level);
        // min_spatial_segmentation_idc 0, parallelismType 0 (unknown).
        record.put_slice(&[0xf0, 0x00, 0xfc]);
        record.put_u8(0xfc | info.chroma_format);
        record.put_u8(0xf8 | info.bit_depth_luma_minus8);
        record.put_u8(0xf8 | info.bit_depth_chroma_minus8);
        // avgFrameRate 0 (unknown), constantFrameRate 0, then 4-byte NAL lengths.
        record.put_u16(0);
        record.put_u8((info.temporal_layers << 3) | (u8::from(info.temporal_id_nested) << 2) | 3);
        record.put_u8(3);
        for (kind, set) in [(NAL_VPS, &vps), (NAL_SPS, &sps), (NAL_PPS, &pps)] {
            record.put_u8(0x80 | kind);
            record.put_u16(1);
            put_u16_prefixed(&mut record, set);
        }
        Ok(Self {
            record: record.freeze(),
            profile: info.profile_tier_level[0] & 0x1f,
            level: info.profile_tier_level[11],
            nal_length_size: 4,
            vps: alloc::vec![vps],
            sps: alloc::vec![sps],
            pps: alloc::vec![pps],
        })
    }
}

/// What a configuration record needs from an SPS (H.265 §7.3.2.2).
struct SpsInfo {
    /// general_profile_space..general_level_idc, as the record carries them.
    profile_tier_level: [u8; 12],
    temporal_layers: u8,
    temporal_id_nested: bool,
    chroma_format: u8,
    bit_depth_luma_minus8: u8,
    bit_depth_chroma_minus8: u8,
}

impl SpsInfo {
    fn parse(sps: &[u8]) -> Result<Self, MediaError> {
        const WHAT: &str = "H.265 SPS";
        let rbsp = unescape(sps.get(2..).unwrap_or_default());
        let mut bits = BitReader {
            bytes: &rbsp,
            bit: 0,
        };
        let truncated = MediaError::Truncated {
            what: WHAT,
            offset: sps.len(),
        };
        let invalid = MediaError::Invalid {
            what: WHAT,
            offset: 2,
        };
        let first = bits.read(8).ok_or(truncated.clone())?;
        let max_sub_layers_minus1 = (first >> 1) & 0x07;
        let mut profile_tier_level = [0u8; 12];
        for byte in &mut profile_tier_level {
            *byte = bits.read(8).ok_or(truncated.clone())? as u8;
        }
        // Sub-layer flags, the padding to eight of them, then the sub-layer profiles/levels.
        let mut sub_layer_bits = 0;
        for _ in 0..max_sub_layers_minus1 {
            let flags = bits.read(2).ok_or(truncated.clone())?;
            sub_layer_bits +=
                if flags & 2 != 0 { 88 } else { 0 } + if flags & 1 != 0 { 8 } else { 0 };
        }
        if max_sub_layers_minus1 > 0 {
            bits.skip(2 * (8 - max_sub_layers_minus1 as usize))
                .ok_or(truncated.clone())?;
        }
        bits.skip(sub_layer_bits).ok_or(truncated.clone())?;
        let _sps_id = bits.ue().ok_or(truncated.clone())?;
        let chroma_format = bits.ue().ok_or(truncated.clone())?;
        if chroma_format > 3 {
            return Err(invalid);
        }
        if chroma_format == 3 {
            bits.skip(1).ok_or(truncated.clone())?;
        }
        let _width = bits.ue().ok_or(truncated.clone())?;
        let _height = bits.ue().ok_or(truncated.clone())?;
        if bits.read(1).ok_or(truncated.clone())? == 1 {
            for _ in 0..4 {
                bits.ue().ok_or(truncated.clone())?;
            }
        }
        let luma = bits.ue().ok_or(truncated.clone())?;
        let chroma = bits.ue().ok_or(truncated)?;
        if luma > 7 || chroma > 7 {
            return Err(invalid);
        }
        Ok(Self {
            profile_tier_level,
            temporal_layers: max_sub_layers_minus1 as u8 + 1,
            temporal_id_nested: first & 1 != 0,
            chroma_format: chroma_format as u8,
            bit_depth_luma_minus8: luma as u8,
            bit_depth_chroma_minus8: chroma as u8,
        })
    }
}

/// Removes emulation prevention bytes (the 3 of each 00 00 03).
fn unescape(escaped: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(escaped.len());
    let mut zeros = 0;
    for &byte in escaped {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// Adds what SPS parsing needs to the AAC bit reader: skips and Exp-Golomb codes.
impl BitReader<'_> {
    fn skip(&mut self, count: usize) -> Option<()> {
        let end = self.bit.checked_add(count)?;
        (end <= self.bytes.len() * 8).then(|| self.bit = end)
    }

    /// ue(v); values past 2^31 are treated as malformed.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.read(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.read(zeros)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample_record() -> Bytes {
        let mut record = alloc::vec![
            1u8, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0,
            0, 0x0f, 3
        ];
        for (kind, nal) in [
            (NAL_VPS, &[0x40u8, 0x01, 0x0c][..]),
            (NAL_SPS, &[0x42, 0x01, 0x01]),
            (NAL_PPS, &[0x44, 0x01, 0xc1]),
        ] {
            record.extend_from_slice(&[0x80 | kind, 0, 1, 0, nal.len() as u8]);
            record.extend_from_slice(nal);
        }
        Bytes::from(record)
    }

    #[test]
    fn parses_arrays_of_parameter_sets() {
        let config = HevcConfig::parse(sample_record()).unwrap();
        assert_eq!(config.profile, 1);
        assert_eq!(config.level, 93);
        assert_eq!(config.nal_length_size, 4);
        assert_eq!(config.vps[0].as_ref(), &[0x40, 0x01, 0x0c]);
        assert_eq!(config.sps[0].as_ref(), &[0x42, 0x01, 0x01]);
        assert_eq!(config.pps[0].as_ref(), &[0x44, 0x01, 0xc1]);
    }

    /// A 1280x720 Main profile, level 3.1 SPS with emulation prevention bytes (x265).
    const SPS_720P: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x5d, 0xa0, 0x02, 0x80, 0x80, 0x2d, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0,
        0x5a, 0x70, 0x80, 0x00, 0x01, 0xf4, 0x80, 0x00, 0x3a, 0x98, 0x04,
    ];

    #[test]
    fn record_built_from_parameter_sets_parses_back() {
        let vps = Bytes::from_static(&[0x40, 0x01, 0x0c, 0x01]);
        let sps = Bytes::from_static(SPS_720P);
        let pps = Bytes::from_static(&[0x44, 0x01, 0xc1, 0x72]);
        let built = HevcConfig::from_parameter_sets(vps.clone(), sps.clone(), pps.clone()).unwrap();
        let parsed = HevcConfig::parse(built.record.clone()).unwrap();
        assert_eq!(parsed, built);
        assert_eq!((parsed.profile, parsed.level), (1, 93));
        assert_eq!(
            (parsed.vps, parsed.sps, parsed.pps),
            (vec![vps], vec![sps], vec![pps])
        );
        let record = &built.record;
        // Profile/tier/level copied from the unescaped SPS; 4:2:0, 8-bit, one temporal layer.
        assert_eq!(
            &record[1..13],
            &[0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5d]
        );
        assert_eq!(&record[16..19], &[0xfd, 0xf8, 0xf8]);
        assert_eq!(record[21], 0x0f);
    }

    #[test]
    fn truncated_sps_is_an_error() {
        let (vps, pps) = (
            Bytes::from_static(&[0x40, 0x01]),
            Bytes::from_static(&[0x44, 0x01]),
        );
        for len in 0..20 {
            let sps = Bytes::copy_from_slice(&SPS_720P[..len]);
            assert!(
                HevcConfig::from_parameter_sets(vps.clone(), sps, pps.clone()).is_err(),
                "{len}"
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let record = sample_record();
        for len in 0..record.len() {
            assert!(HevcConfig::parse(record.slice(..len)).is_err(), "len {len}");
        }
    }
}
