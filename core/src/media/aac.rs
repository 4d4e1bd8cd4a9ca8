//! AAC decoder configuration: the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).

use bytes::Bytes;

use super::MediaError;

/// Sampling rates indexed by `samplingFrequencyIndex`.
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// An AAC AudioSpecificConfig and the fields a server needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// The AudioSpecificConfig bytes as FLV and MP4 carry them.
    pub record: Bytes,
    /// `audioObjectType` (2 = AAC-LC).
    pub object_type: u8,
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// `channelConfiguration` (0 means defined in-band).
    pub channels: u8,
}

impl AacConfig {
    /// Parses an AudioSpecificConfig (including escaped object types and explicit rates).
    pub fn parse(record: Bytes) -> Result<Self, MediaError> {
        const WHAT: &str = "AudioSpecificConfig";
        let mut bits = BitReader {
            bytes: &record,
            bit: 0,
        };
        let truncated = MediaError::Truncated {
            what: WHAT,
            offset: record.len(),
        };
        let mut object_type = bits.read(5).ok_or(truncated.clone())?;
        if object_type == 31 {
            object_type = 32 + bits.read(6).ok_or(truncated.clone())?;
        }
        let index = bits.read(4).ok_or(truncated.clone())?;
        let sample_rate = if index == 15 {
            bits.read(24).ok_or(truncated.clone())?
        } else {
            *SAMPLE_RATES
                .get(index as usize)
                .ok_or(MediaError::Invalid {
                    what: WHAT,
                    offset: 0,
                })?
        };
        let channels = bits.read(4).ok_or(truncated)? as u8;
        Ok(Self {
            record,
            object_type: object_type as u8,
            sample_rate,
            channels,
        })
    }

    /// Builds the two-byte AudioSpecificConfig for a plain object type, rate and channel count.
    pub fn new(object_type: u8, sample_rate: u32, channels: u8) -> Result<Self, MediaError> {
        let index = SAMPLE_RATES
            .iter()
            .position(|&rate| rate == sample_rate)
            .ok_or(MediaError::Invalid {
                what: "AAC sampling rate",
                offset: 0,
            })? as u16;
        if object_type == 0 || object_type >= 31 || channels > 15 {
            return Err(MediaError::Invalid {
                what: "AudioSpecificConfig",
                offset: 0,
            });
        }
        let packed = (u16::from(object_type) << 11) | (index << 7) | (u16::from(channels) << 3);
        let record = Bytes::copy_from_slice(&packed.to_be_bytes());
        Ok(Self {
            record,
            object_type,
            sample_rate,
            channels,
        })
    }

    /// The `samplingFrequencyIndex` of this rate, if it is one of the tabled rates.
    pub fn sample_rate_index(&self) -> Option<u8> {
        SAMPLE_RATES
            .iter()
            .position(|&rate| rate == self.sample_rate)
            .map(|i| i as u8)
    }
}

/// Reads big-endian bit fields of up to 32 bits (also used for H.265 SPS fields).
pub(crate) struct BitReader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) bit: usize,
}

impl BitReader<'_> {
    pub(crate) fn read(&mut self, count: u32) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..count {
            let byte = *self.bytes.get(self.bit / 8)?;
            let bit = (byte >> (7 - (self.bit % 8))) & 1;
            value = (value << 1) | u32::from(bit);
            self.bit += 1;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aac_lc_44100_stereo() {
        let config = AacConfig::parse(Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert_eq!(
            (config.object_type, config.sample_rate, config.channels),
            (2, 44100, 2)
        );
        assert_eq!(AacConfig::new(2, 44100, 2).unwrap(), config);
    }

    #[test]
    fn short_config_is_an_error() {
        assert!(AacConfig::parse(Bytes::from_static(&[0x12])).is_err());
        assert!(AacConfig::parse(Bytes::new()).is_err());
    }
}
