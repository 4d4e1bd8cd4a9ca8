//! The media model shared by every protocol: codecs, frames, track configuration.
//!
//! A [`Frame`] carries one access unit as a `Bytes` payload in the canonical form the server
//! uses internally: for H.264 and H.265 the NAL units are length-prefixed (4-byte big-endian
//! lengths, as in FLV/MP4), for AAC the payload is one raw AAC frame with no ADTS header.
//! Codec configuration travels separately as a [`TrackConfig`].

pub mod aac;
pub mod avc;
pub mod hevc;
pub mod nal;

use bytes::Bytes;

pub use aac::AacConfig;
pub use avc::AvcConfig;
pub use hevc::HevcConfig;

/// The codecs the server carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 / AVC video.
    H264,
    /// H.265 / HEVC video.
    H265,
    /// AAC audio (any MPEG-4 audio object type carried as AAC).
    Aac,
}

/// Whether a track is video or audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A video track.
    Video,
    /// An audio track.
    Audio,
}

impl Codec {
    /// Whether this codec carries video or audio.
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::H264 | Codec::H265 => MediaKind::Video,
            Codec::Aac => MediaKind::Audio,
        }
    }
}

/// One access unit: a video picture or an audio frame.
///
/// Cloning a frame for another player bumps a reference count; the payload is never copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The codec of the payload.
    pub codec: Codec,
    /// Decode timestamp in milliseconds.
    pub dts: i64,
    /// Presentation timestamp in milliseconds (equal to `dts` unless B-frames reorder).
    pub pts: i64,
    /// True for a video random-access point (IDR / IRAP); always true for audio.
    pub keyframe: bool,
    /// The access unit in the canonical form described in the module docs.
    pub payload: Bytes,
}

impl Frame {
    /// Whether this frame belongs to the video or the audio track.
    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }

    /// `pts - dts`, the composition time offset FLV and RTMP carry.
    pub fn composition_offset(&self) -> i64 {
        self.pts.saturating_sub(self.dts)
    }
}

/// The decoder configuration of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackConfig {
    /// H.264 parameter sets (AVCDecoderConfigurationRecord).
    Avc(AvcConfig),
    /// H.265 parameter sets (HEVCDecoderConfigurationRecord).
    Hevc(HevcConfig),
    /// AAC AudioSpecificConfig.
    Aac(AacConfig),
}

impl TrackConfig {
    /// The codec this configuration is for.
    pub fn codec(&self) -> Codec {
        match self {
            TrackConfig::Avc(_) => Codec::H264,
            TrackConfig::Hevc(_) => Codec::H265,
            TrackConfig::Aac(_) => Codec::Aac,
        }
    }

    /// Whether this configures the video or the audio track.
    pub fn kind(&self) -> MediaKind {
        self.codec().kind()
    }

    /// The configuration record exactly as FLV/MP4 carry it.
    pub fn record(&self) -> &Bytes {
        match self {
            TrackConfig::Avc(config) => &config.record,
            TrackConfig::Hevc(config) => &config.record,
            TrackConfig::Aac(config) => &config.record,
        }
    }
}

/// Stream metadata as the publisher sent it: the AMF0-encoded `onMetaData` name and
/// properties, kept encoded so it can be forwarded to players without re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// AMF0 string `onMetaData` followed by the properties (an ECMA array or object).
    pub amf0: Bytes,
}

/// One item of a live stream, in the order the publisher produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// A new or changed codec configuration for one track.
    Config(TrackConfig),
    /// Stream metadata.
    Metadata(Metadata),
    /// An access unit.
    Frame(Frame),
}

impl Media {
    /// The bytes the item pins in memory, for the byte bounds of caches and queues.
    ///
    /// Payloads are shared `Bytes`, so this over-counts real memory when many queues hold the
    /// same frame; it is the right measure of what one slow reader alone could keep alive.
    pub fn byte_size(&self) -> usize {
        match self {
            Media::Config(config) => config.record().len(),
            Media::Metadata(metadata) => metadata.amf0.len(),
            Media::Frame(frame) => frame.payload.len(),
        }
    }
}

/// Why a codec configuration or payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The data ended before a field that its own lengths promised.
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
    /// A count or length exceeded what the format or our bounds allow.
    #[error("{what}: too large ({len} > {max})")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The declared size.
        len: usize,
        /// The largest accepted size.
        max: usize,
    },
}
