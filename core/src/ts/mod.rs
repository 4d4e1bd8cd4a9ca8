//! MPEG-2 transport stream (ISO/IEC 13818-1): the muxer behind HLS segments and HTTP-TS, and a
//! demuxer for tests and TS ingest.
//!
//! A transport stream is a sequence of 188-byte packets, each starting with the sync byte
//! `0x47` and carrying 184 bytes of one PID's data: PSI tables (PAT on PID 0, the PMT on the
//! PID the PAT names) or a PES stream of one elementary stream.
//!
//! ## Timestamps
//!
//! Frames carry millisecond timestamps that may start at zero or even be slightly negative (an
//! encoder's first B-frames). TS timestamps are unsigned 33-bit counts of a 90 kHz clock, so
//! the muxer adds a fixed offset, [`DEFAULT_TIMESTAMP_OFFSET_MS`] (1.4 s, as ffmpeg's mpegts
//! muxer does), before converting: a stream starting at 0 ms starts at 126000 ticks, and
//! timestamps down to -1.4 s stay positive. Everything else wraps modulo 2^33 (about 26.5
//! hours), as the format intends. [`ms_to_ticks`] is the exact conversion.

pub mod demux;
pub mod mux;
pub mod packet;
pub mod pes;
pub mod psi;

pub use demux::{DemuxStats, PesPacket, TsDemuxConfig, TsDemuxer};
pub use mux::{TsMuxer, TsMuxerConfig, WriteOutcome};

use crate::media::{Codec, MediaError};

/// Every transport stream packet is this long.
pub const PACKET_LEN: usize = 188;
/// The first byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;
/// Bytes after the 4-byte packet header: adaptation field plus payload.
pub const PACKET_BODY_LEN: usize = PACKET_LEN - 4;
/// The PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// The PID of null (padding) packets.
pub const NULL_PID: u16 = 0x1fff;
/// The PMT PID the muxer uses unless configured otherwise (ffmpeg's choice too).
pub const DEFAULT_PMT_PID: u16 = 0x1000;
/// The video PID the muxer uses unless configured otherwise.
pub const DEFAULT_VIDEO_PID: u16 = 0x0100;
/// The audio PID the muxer uses unless configured otherwise.
pub const DEFAULT_AUDIO_PID: u16 = 0x0101;
/// PMT stream type of H.264 video.
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// PMT stream type of H.265 video.
pub const STREAM_TYPE_H265: u8 = 0x24;
/// PMT stream type of AAC audio in ADTS framing.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// PES stream id of the (first) video stream.
pub const STREAM_ID_VIDEO: u8 = 0xe0;
/// PES stream id of the (first) audio stream.
pub const STREAM_ID_AUDIO: u8 = 0xc0;
/// The PTS/DTS clock rate.
pub const CLOCK_HZ: i64 = 90_000;
/// PTS, DTS and the PCR base are 33-bit counters.
pub const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
/// What the muxer adds to every millisecond timestamp before converting it (see the module
/// docs): 1.4 s, so negative timestamps down to -1.4 s do not underflow.
pub const DEFAULT_TIMESTAMP_OFFSET_MS: i64 = 1_400;

/// Converts a millisecond timestamp plus `offset_ms` to 90 kHz ticks, modulo 2^33.
pub fn ms_to_ticks(ms: i64, offset_ms: i64) -> u64 {
    unwrapped_ticks(ms, offset_ms).rem_euclid(1 << 33) as u64
}

/// Milliseconds plus offset in 90 kHz ticks, before the 33-bit wrap (saturating far outside any
/// real stream's range, so it never overflows).
pub(crate) fn unwrapped_ticks(ms: i64, offset_ms: i64) -> i64 {
    ms.saturating_add(offset_ms).saturating_mul(CLOCK_HZ / 1000)
}

/// The PMT stream type for a codec.
pub fn stream_type(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => STREAM_TYPE_H264,
        Codec::H265 => STREAM_TYPE_H265,
        Codec::Aac => STREAM_TYPE_AAC_ADTS,
    }
}

/// The codec a PMT stream type carries, for the types this crate handles.
pub fn stream_type_codec(stream_type: u8) -> Option<Codec> {
    match stream_type {
        STREAM_TYPE_H264 => Some(Codec::H264),
        STREAM_TYPE_H265 => Some(Codec::H265),
        STREAM_TYPE_AAC_ADTS => Some(Codec::Aac),
        _ => None,
    }
}

/// Why a frame could not be muxed or a part of a transport stream could not be read.
///
/// The demuxer reports these as values and carries on at the next packet: a transport stream
/// is designed to be joined mid-way and to survive damage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    /// A frame's payload or a track configuration could not be read.
    #[error("{0}")]
    Media(#[from] MediaError),
    /// The track uses something the TS mapping cannot carry (e.g. an AAC object type ADTS
    /// cannot signal).
    #[error("{what}: unsupported ({value})")]
    Unsupported {
        /// What was unsupported.
        what: &'static str,
        /// The offending value.
        value: u32,
    },
    /// A frame too large for its PES or ADTS length field, or a PES beyond the demuxer's limit.
    #[error("{what}: too large ({len} > {max}) at stream byte {offset}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The largest accepted size.
        max: usize,
        /// Offset in the input stream of the packet where it was noticed (0 when muxing).
        offset: u64,
    },
    /// A structure ended before its own lengths said it would.
    #[error("{what}: truncated at stream byte {offset} (PID {pid:#x})")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// The PID it came on.
        pid: u16,
        /// Offset in the input stream of the packet where it was noticed.
        offset: u64,
    },
    /// A field held a value the format does not allow.
    #[error("{what}: invalid at stream byte {offset} (PID {pid:#x})")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// The PID it came on.
        pid: u16,
        /// Offset in the input stream of the packet where it was noticed.
        offset: u64,
    },
    /// A PSI section whose CRC32 did not match: it was ignored.
    #[error("table {table_id:#x} on PID {pid:#x}: CRC mismatch at stream byte {offset}")]
    Crc {
        /// The table id of the section.
        table_id: u8,
        /// The PID it came on.
        pid: u16,
        /// Offset in the input stream of the packet that completed the section.
        offset: u64,
    },
}

#[cfg(test)]
mod tests;
