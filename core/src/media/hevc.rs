//! H.265 decoder configuration: the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3).

use alloc::vec::Vec;
use bytes::{BufMut, Bytes, BytesMut};

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
    /// source such as RTP provides them. The general profile, tier, compatibility and
    /// constraint flags and level come from the SPS's `profile_tier_level`; chroma format and
    /// bit depths are written as 4:2:0 8-bit, fields decoders take from the SPS itself.
    pub fn from_parameter_sets(vps: Bytes, sps: Bytes, pps: Bytes) -> Result<Self, MediaError> {
        const WHAT: &str = "H.265 SPS";
        // NAL header (2), then the byte with max_sub_layers_minus1 and temporal_id_nesting,
        // then general_profile_tier_level: 1 + 4 + 6 + 1 bytes.
        let mut rbsp = [0u8; 15];
        let mut filled = 0;
        let mut zeros = 0;
        for &byte in sps.iter() {
            if filled == rbsp.len() {
                break;
            }
            // An emulation-prevention byte (00 00 03) is not part of the RBSP.
            if zeros >= 2 && byte == 3 {
                zeros = 0;
                continue;
            }
            zeros = if byte == 0 { zeros + 1 } else { 0 };
            if let Some(slot) = rbsp.get_mut(filled) {
                *slot = byte;
            }
            filled += 1;
        }
        if filled < rbsp.len() {
            return Err(MediaError::Truncated {
                what: WHAT,
                offset: sps.len(),
            });
        }
        if nal_type(rbsp[0]) != NAL_SPS {
            return Err(MediaError::Invalid {
                what: WHAT,
                offset: 0,
            });
        }
        for set in [&vps, &sps, &pps] {
            if set.len() > usize::from(u16::MAX) {
                return Err(MediaError::TooLarge {
                    what: WHAT,
                    len: set.len(),
                    max: usize::from(u16::MAX),
                });
            }
        }
        let sub_layers = ((rbsp[2] >> 1) & 0x07) + 1;
        let temporal_id_nested = rbsp[2] & 0x01;
        let mut record = BytesMut::with_capacity(23 + 15 + vps.len() + sps.len() + pps.len());
        record.put_u8(1);
        // profile space, tier, profile idc, compatibility flags, constraint flags, level.
        record.put_slice(&rbsp[3..]);
        record.put_slice(&[0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0]);
        record.put_u8((sub_layers << 3) | (temporal_id_nested << 2) | 0x03);
        record.put_u8(3);
        for (kind, set) in [(NAL_VPS, &vps), (NAL_SPS, &sps), (NAL_PPS, &pps)] {
            record.put_u8(0x80 | kind);
            record.put_u16(1);
            put_u16_prefixed(&mut record, set);
        }
        Ok(Self {
            record: record.freeze(),
            profile: rbsp[3] & 0x1f,
            level: rbsp[14],
            nal_length_size: 4,
            vps: alloc::vec![vps],
            sps: alloc::vec![sps],
            pps: alloc::vec![pps],
        })
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

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let record = sample_record();
        for len in 0..record.len() {
            assert!(HevcConfig::parse(record.slice(..len)).is_err(), "len {len}");
        }
    }

    #[test]
    fn record_built_from_ffmpeg_parameter_sets_parses_back() {
        // sprop-vps/sps/pps of an ffmpeg H.265 publish (Main profile, level 2.0 = 60).
        let vps = Bytes::from_static(&[
            0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00,
            0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x95, 0x98, 0x09,
        ]);
        let sps = Bytes::from_static(&[
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
            0x00, 0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b,
            0xc0, 0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
        ]);
        let pps = Bytes::from_static(&[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40]);
        let built = HevcConfig::from_parameter_sets(vps.clone(), sps.clone(), pps.clone()).unwrap();
        let parsed = HevcConfig::parse(built.record.clone()).unwrap();
        assert_eq!(parsed, built);
        assert_eq!((parsed.profile, parsed.level), (1, 60));
        // general_profile_compatibility_flags 0x60000000, constraint flags 0x90 then zeros.
        assert_eq!(
            &built.record[1..13],
            &[0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 60]
        );
        assert_eq!(
            (parsed.vps, parsed.sps, parsed.pps),
            (vec![vps], vec![sps], vec![pps])
        );
        assert!(HevcConfig::from_parameter_sets(
            Bytes::new(),
            Bytes::from_static(&[0x42, 0x01, 0x01]),
            Bytes::new()
        )
        .is_err());
    }
}
