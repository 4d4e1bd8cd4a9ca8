//! The live media playlist text.

use alloc::string::String;
use core::fmt::Write;

use bytes::Bytes;

use super::Segment;

/// `EXT-X-TARGETDURATION` in seconds for the listed segments.
///
/// RFC 8216 4.3.3.1 requires every `EXTINF`, rounded to the nearest integer, to be at most
/// the target duration; the ceiling of the longest one always is. It never goes below the
/// configured target (rounded up), so players poll at the pace segments are made even while
/// the window holds only short segments (after a restart, say), nor below 1 s. It follows the
/// window rather than being fixed for the stream's life: a segment made long by a keyframe
/// gap raises it only while listed.
pub(crate) fn target_duration_secs<'a>(
    listed: impl Iterator<Item = &'a Segment>,
    target_duration_ms: u64,
) -> u64 {
    listed
        .map(|segment| segment.duration_ms.div_ceil(1000))
        .fold(target_duration_ms.div_ceil(1000), u64::max)
        .max(1)
}

/// Renders the playlist of `listed` (consecutive, oldest first, at least one).
/// `discontinuity_sequence` counts the discontinuities that slid out before the first;
/// `ended` adds `EXT-X-ENDLIST`.
pub(crate) fn render(
    listed: &[&Segment],
    target_duration_ms: u64,
    discontinuity_sequence: u64,
    ended: bool,
) -> Bytes {
    let media_sequence = listed.first().map_or(0, |segment| segment.sequence);
    let target = target_duration_secs(listed.iter().copied(), target_duration_ms);
    // About 40 bytes per segment entry plus the header.
    let mut text = String::with_capacity(128 + listed.len() * 48);
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:{media_sequence}\n"
    );
    if discontinuity_sequence > 0 {
        let _ = writeln!(
            text,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}"
        );
    }
    for segment in listed {
        if segment.discontinuity {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let ms = segment.duration_ms;
        let _ = write!(
            text,
            // The URI as `segment_name` spells it, without allocating it.
            "#EXTINF:{}.{:03},\n{}.ts\n",
            ms / 1000,
            ms % 1000,
            segment.sequence
        );
    }
    if ended {
        text.push_str("#EXT-X-ENDLIST\n");
    }
    Bytes::from(text)
}
