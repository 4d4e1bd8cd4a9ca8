//! FLV: the tag body codec RTMP shares (audio, video and data messages carry exactly FLV tag
//! bodies), a file muxer for HTTP-FLV and an incremental file demuxer.
//!
//! Video is H.264 in the legacy form (codec id 7), H.265 both in the legacy form some Chinese
//! CDNs and ZLMediaKit use (codec id 12, laid out like AVC) and in the enhanced RTMP form
//! (FourCC `hvc1`, which is what we emit). Audio is AAC. Script data yields
//! [`Media::Metadata`](crate::media::Media::Metadata) for `onMetaData`.
//!
//! Frame payloads pass through untouched as zero-copy slices: FLV carries the length-prefixed
//! NAL units the media model uses, with the length size the configuration record declares
//! (4 in everything we have seen).

mod demux;
mod mux;
mod tag;

pub use demux::{FlvDemuxer, FlvHeader, DEFAULT_MAX_TAG_SIZE};
pub use mux::FlvMuxer;
pub use tag::{
    parse_tag_body, tag_body, TagBody, AAC_SOUND_BYTE, CODEC_ID_AVC, CODEC_ID_HEVC,
    SOUND_FORMAT_AAC,
};

use crate::amf0::Amf0Error;
use crate::media::MediaError;

/// Largest tag body the 24-bit DataSize field can describe.
pub const MAX_TAG_DATA_SIZE: usize = 0x00ff_ffff;

/// Bytes in the FLV file header (signature, version, flags, data offset).
pub const FILE_HEADER_LEN: usize = 9;

/// Bytes in a tag header (type, data size, timestamp, extended timestamp, stream id).
pub const TAG_HEADER_LEN: usize = 11;

/// The kind of an FLV tag, which is also the RTMP message type id carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagType {
    /// Audio (8).
    Audio = 8,
    /// Video (9).
    Video = 9,
    /// Script data, AMF0 encoded (18).
    Script = 18,
}

impl TagType {
    /// The tag type for a tag-type byte or RTMP message type id, if it is one of ours.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            8 => Some(TagType::Audio),
            9 => Some(TagType::Video),
            18 => Some(TagType::Script),
            _ => None,
        }
    }

    /// The tag-type byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Why FLV data could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// A tag body or header ended before a field its format requires.
    #[error("FLV {what}: truncated at byte {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset of the field that did not fit (within the tag body, or the stream).
        offset: u64,
    },
    /// A codec configuration record in a sequence header could not be parsed.
    #[error("FLV {what}: {source}")]
    Config {
        /// Which sequence header.
        what: &'static str,
        /// What was wrong with the record.
        #[source]
        source: MediaError,
    },
    /// Script data was not valid AMF0.
    #[error("FLV script data: {source}")]
    Amf0 {
        /// What was wrong with the AMF0.
        #[source]
        source: Amf0Error,
    },
    /// The stream does not start with the `FLV` signature.
    #[error("not an FLV stream: bad signature")]
    Signature,
    /// The file header's data offset is smaller than the header itself.
    #[error("FLV header: data offset {data_offset} is smaller than the header")]
    DataOffset {
        /// The declared offset.
        data_offset: u32,
    },
    /// A tag larger than the configured (or, when muxing, the representable) maximum.
    #[error("FLV tag at byte {offset}: {len} bytes exceeds the limit of {max}")]
    TagTooLarge {
        /// The declared or required size.
        len: usize,
        /// The largest accepted size.
        max: usize,
        /// Stream offset of the tag (0 when muxing).
        offset: u64,
    },
}

impl From<Amf0Error> for FlvError {
    fn from(source: Amf0Error) -> Self {
        FlvError::Amf0 { source }
    }
}
