//! HTTP Live Streaming (RFC 8216): a live segmenter that cuts the MPEG-TS of one stream into
//! segments and keeps a sliding-window media playlist over them, and a server-wide catalog of
//! every stream's playlist and segments.
//!
//! ## Who holds what
//!
//! A server keeps one [`HlsCatalog`] (see [`catalog`]) behind a lock. A publisher's
//! connection gets an [`HlsPublication`] from [`HlsCatalog::start`] and feeds it every media
//! item with no lock; when a segment closes it locks the catalog once to
//! [`HlsCatalog::publish`] a new [`Snapshot`]. HTTP handlers lock it once per request to
//! clone the `Arc<Snapshot>` of a stream, or to wait for its first segment in the shared
//! [`WaitList`](crate::wait::WaitList), woken by the publish that brings it. When the
//! publisher leaves ([`HlsCatalog::stop`]), the stream is parked: its playlist ends with
//! `EXT-X-ENDLIST` and stays served for a linger time, during which a returning publisher
//! continues it after `EXT-X-DISCONTINUITY`. All streams, live and parked, share one byte
//! budget, and the catalog says what each stream's directory should hold
//! ([`DiskState`]) so that a disk writer reconciles rather than replays file operations.
//! Time is passed in as [`Millis`](crate::time::Millis).
//!
//! [`HlsSegmenter`] is owned by the worker of the stream's publisher and fed the same
//! [`Media`](crate::media::Media) the hub fans out. It reads no clock: segment durations come
//! from frame timestamps. Each closed segment is one contiguous `Bytes` and the playlist is
//! regenerated once per closed segment and kept as `Bytes`, so a server hands both to any
//! number of HTTP handlers (on any thread) by reference count: serving is O(1) and copies
//! nothing.
//!
//! ## Cutting
//!
//! A segment is cut before a video keyframe once it holds at least
//! [`HlsConfig::target_duration_ms`] (keyframe DTS minus the segment's first DTS); a stream
//! without video is cut before any audio frame once the target is reached. Each segment starts
//! with PAT and PMT, so it decodes on its own. Before the first keyframe of a publisher,
//! frames are dropped (a segment must not start with undecodable video).
//!
//! A segment that would grow past [`HlsConfig::max_segment_bytes`] (a publisher that never
//! sends a keyframe) is cut before the next frame whatever it is, and the segment starting
//! there has [`Segment::independent`] false: players decode it with artifacts until the next
//! keyframe, but memory stays bounded and the live edge keeps moving.
//!
//! ## Time
//!
//! A segment's duration is the time from its first frame to the first frame of the next
//! segment, measured on the clock track (video if the stream has video, else audio). The
//! clock advances by the DTS difference of consecutive clock-track frames; a step back of up
//! to [`TIMESTAMP_JITTER_MS`] is jitter and ignored, and a step back beyond it or forward
//! beyond [`MAX_TIMESTAMP_STEP_MS`] is a new time base and counts as zero. Durations are thus
//! never negative and one bad timestamp cannot blow up `EXT-X-TARGETDURATION`. Such a jump
//! is not signalled with `EXT-X-DISCONTINUITY`; a new publisher should be announced with
//! [`HlsSegmenter::restart`], which is.
//!
//! ## Memory
//!
//! Closed segments are kept while they are in the playlist window or among the
//! [`HlsConfig::extra_segments`] before it (a player that just fetched the playlist may still
//! ask for them), and while their total stays within [`HlsConfig::max_stream_bytes`]; the
//! oldest go first, and the newest segment is always kept. The segment being filled is
//! bounded by `max_segment_bytes` plus one frame. The window shrinks to what the budget
//! holds: every segment the playlist lists can be fetched. Across streams, the catalog holds
//! all of them to [`CatalogConfig::max_total_bytes`] (parked streams go first, then a
//! publisher's oldest segments, see [`HlsSegmenter::trim_to`]); each live stream still keeps
//! its newest segment.

pub mod catalog;
mod playlist;
mod segmenter;

pub use catalog::{
    reconcile, CatalogConfig, CatalogError, DiskPlan, DiskState, HlsCatalog, HlsPublication,
    Published, Snapshot,
};
pub use segmenter::HlsSegmenter;

use alloc::string::String;
use bytes::Bytes;

use crate::ts::TsMuxerConfig;

/// A step back of the clock track's DTS up to this many milliseconds is reordering jitter,
/// not a new time base.
pub const TIMESTAMP_JITTER_MS: i64 = 1_000;
/// A step forward of the clock track's DTS beyond this many milliseconds is a new time base
/// (a publisher's timestamp reset), not elapsed time.
pub const MAX_TIMESTAMP_STEP_MS: i64 = 10_000;

/// How segments are cut and how much of a stream is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsConfig {
    /// Segments are cut at the first opportunity (a video keyframe, or any audio frame of an
    /// audio-only stream) once they last at least this long.
    pub target_duration_ms: u64,
    /// Segments listed in the live playlist (at least 1 is used).
    pub window: usize,
    /// Segments kept beyond the window for players working from a slightly older playlist,
    /// budget permitting.
    pub extra_segments: usize,
    /// A segment that grows to this size is cut before the next frame even if it is not a
    /// keyframe (see the module docs).
    pub max_segment_bytes: usize,
    /// Closed segments of one stream kept in total; the oldest are dropped first (the newest
    /// one is always kept).
    pub max_stream_bytes: usize,
    /// The transport stream muxer's settings.
    pub ts: TsMuxerConfig,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            target_duration_ms: 2_000,
            window: 5,
            extra_segments: 3,
            max_segment_bytes: 32 << 20,
            max_stream_bytes: 128 << 20,
            ts: TsMuxerConfig::default(),
        }
    }
}

/// One closed segment: cheap to clone (the bytes are reference counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its media sequence number; also its name, see [`segment_name`].
    pub sequence: u64,
    /// Its duration in milliseconds (the `EXTINF`).
    pub duration_ms: u64,
    /// DTS of its first frame, in the publisher's milliseconds.
    pub first_dts: i64,
    /// True for the first segment after [`HlsSegmenter::restart`]: the playlist puts
    /// `EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
    /// False when the segment was cut for size and does not start with a keyframe.
    pub independent: bool,
    /// The transport stream: PAT and PMT first, then whole PES packets.
    pub bytes: Bytes,
}

impl Segment {
    /// Its URI relative to the playlist, e.g. `"42.ts"`.
    pub fn name(&self) -> String {
        segment_name(self.sequence)
    }
}

/// The URI of a segment relative to the playlist: `"{sequence}.ts"`.
pub fn segment_name(sequence: u64) -> String {
    alloc::format!("{sequence}.ts")
}

/// The sequence number in a segment name made by [`segment_name`]; `None` for anything else
/// (signs, leading zeros, overflow, another extension), so each segment has exactly one name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".ts")?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// The names a stream's playlist is served under, relative to `/{app}/{stream}/`.
pub const PLAYLIST_NAMES: [&str; 2] = ["index.m3u8", "hls.m3u8"];

/// What an HLS request names under `/{app}/{stream}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsResource {
    /// The live playlist (any of [`PLAYLIST_NAMES`]).
    Playlist,
    /// A segment by media sequence number.
    Segment(u64),
}

impl HlsResource {
    /// The resource a last path component names; `None` for anything that is neither a
    /// playlist name nor a segment name made by [`segment_name`].
    pub fn parse(name: &str) -> Option<Self> {
        if PLAYLIST_NAMES.contains(&name) {
            return Some(HlsResource::Playlist);
        }
        parse_segment_name(name).map(HlsResource::Segment)
    }
}

#[cfg(test)]
mod tests;
