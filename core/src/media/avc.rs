//! H.264 decoder configuration: the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3).

use alloc::vec::Vec;
use bytes::{BufMut, Bytes, BytesMut};

use super::MediaError;
use crate::wire::Reader;

/// NAL unit type of an IDR slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// The largest number of parameter sets of one kind we keep from a record.
const MAX_PARAMETER_SETS: usize = 32;

/// H.264 parameter sets and the record that carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// The AVCDecoderConfigurationRecord as FLV and MP4 carry it.
    pub record: Bytes,
    /// `profile_idc`.
    pub profile: u8,
    /// The constraint flags byte.
    pub compatibility: u8,
    /// `level_idc`.
    pub level: u8,
    /// Bytes in each NAL unit length prefix of frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets (NAL units without start codes or length prefixes).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord; parameter sets are zero-copy slices of it.
    pub fn parse(record: Bytes) -> Result<Self, MediaError> {
        const WHAT: &str = "AVCDecoderConfigurationRecord";
        let mut reader = Reader::new(&record);
        let truncated = |reader: &Reader<'_>| MediaError::Truncated {
            what: WHAT,
            offset: reader.offset(),
        };
        let [version, profile, compatibility, level, length_byte] =
            reader.array::<5>().ok_or_else(|| truncated(&reader))?;
        if version != 1 {
            return Err(MediaError::Invalid {
                what: WHAT,
                offset: 0,
            });
        }
        let nal_length_size = (length_byte & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(MediaError::Invalid {
                what: WHAT,
                offset: 4,
            });
        }
        let sps_count = usize::from(reader.u8().ok_or_else(|| truncated(&reader))? & 0x1f);
        let sps = read_parameter_sets(&record, &mut reader, sps_count, WHAT)?;
        let pps_count = usize::from(reader.u8().ok_or_else(|| truncated(&reader))?);
        let pps = read_parameter_sets(&record, &mut reader, pps_count, WHAT)?;
        Ok(Self {
            record,
            profile,
            compatibility,
            level,
            nal_length_size,
            sps,
            pps,
        })
    }

    /// Builds a record (with 4-byte NAL lengths) from one SPS and one PPS, as a packetized
    /// source such as RTP provides them.
    pub fn from_parameter_sets(sps: Bytes, pps: Bytes) -> Result<Self, MediaError> {
        const WHAT: &str = "H.264 SPS";
        let (profile, compatibility, level) = match sps.get(1..4) {
            Some(&[profile, compatibility, level]) => (profile, compatibility, level),
            _ => {
                return Err(MediaError::Truncated {
                    what: WHAT,
                    offset: sps.len(),
                })
            }
        };
        for set in [&sps, &pps] {
            if set.len() > usize::from(u16::MAX) {
                return Err(MediaError::TooLarge {
                    what: WHAT,
                    len: set.len(),
                    max: usize::from(u16::MAX),
                });
            }
        }
        let mut record = BytesMut::with_capacity(11 + sps.len() + pps.len());
        record.put_slice(&[1, profile, compatibility, level, 0xff, 0xe1]);
        put_u16_prefixed(&mut record, &sps);
        record.put_u8(1);
        put_u16_prefixed(&mut record, &pps);
        Ok(Self {
            record: record.freeze(),
            profile,
            compatibility,
            level,
            nal_length_size: 4,
            sps: alloc::vec![sps],
            pps: alloc::vec![pps],
        })
    }
}

/// Reads `count` u16-length-prefixed NAL units as zero-copy slices of `source`.
pub(crate) fn read_parameter_sets(
    source: &Bytes,
    reader: &mut Reader<'_>,
    count: usize,
    what: &'static str,
) -> Result<Vec<Bytes>, MediaError> {
    if count > MAX_PARAMETER_SETS {
        return Err(MediaError::TooLarge {
            what,
            len: count,
            max: MAX_PARAMETER_SETS,
        });
    }
    let mut sets = Vec::with_capacity(count);
    for _ in 0..count {
        let truncated = MediaError::Truncated {
            what,
            offset: reader.offset(),
        };
        let len = usize::from(reader.u16_be().ok_or(truncated.clone())?);
        let range = reader.take_range(len).ok_or(truncated)?;
        sets.push(source.slice(range));
    }
    Ok(sets)
}

/// Appends a NAL unit with a big-endian u16 length; callers bound the length to u16 first.
pub(crate) fn put_u16_prefixed(out: &mut BytesMut, nal: &[u8]) {
    out.put_u16(u16::try_from(nal.len()).unwrap_or(u16::MAX));
    out.put_slice(nal.get(..usize::from(u16::MAX)).unwrap_or(nal));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_built_from_parameter_sets_parses_back() {
        let sps = Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9]);
        let pps = Bytes::from_static(&[0x68, 0xeb, 0xe3, 0xcb]);
        let built = AvcConfig::from_parameter_sets(sps.clone(), pps.clone()).unwrap();
        let parsed = AvcConfig::parse(built.record.clone()).unwrap();
        assert_eq!(parsed, built);
        assert_eq!(parsed.profile, 0x64);
        assert_eq!(parsed.level, 0x1f);
        assert_eq!(parsed.sps, [sps]);
        assert_eq!(parsed.pps, [pps]);
    }

    #[test]
    fn truncated_record_is_an_error() {
        let record = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0x00, 0x10, 0x67]);
        assert!(matches!(
            AvcConfig::parse(record),
            Err(MediaError::Truncated { .. })
        ));
    }
}
