//! Assertions the live suites share: a player's packets against the source clip's own
//! ffprobe packet list, codecs, and clean decodes.

use crate::media::{Clip, HEIGHT, WIDTH};
use crate::probe::{self, DecodeReport, Packet, ProbeReport, ProbeRun, StreamKind};

/// A stream name unique to this test and binary, so a failure in one never leaks into another.
pub fn stream_path(test: &str, binary_index: usize) -> String {
    format!("live/{test}{binary_index}")
}

/// Compares one stream of `got` with the same stream of `want`, packet by packet: dts and pts
/// relative to the stream's first dts, payload size and keyframe flag.
pub fn assert_same_stream(what: &str, kind: StreamKind, got: &ProbeReport, want: &ProbeReport) {
    assert_same_stream_within(what, kind, got, want, 0);
}

/// Like [`assert_same_stream`], with relative timestamps allowed to differ by up to
/// `tolerance_ms` (for paths through a clock other than milliseconds, such as RTP's 90 kHz).
/// Counts, sizes and keyframe flags stay exact.
pub fn assert_same_stream_within(
    what: &str,
    kind: StreamKind,
    got: &ProbeReport,
    want: &ProbeReport,
    tolerance_ms: i64,
) {
    let view = |report: &ProbeReport| -> Vec<(i64, Option<i64>, u64, bool)> {
        let packets: Vec<&Packet> = report.of(kind);
        let first = packets.first().and_then(|p| p.dts_ms).unwrap_or(0);
        packets
            .iter()
            .map(|p| {
                (
                    p.dts_ms.map_or(i64::MIN, |d| d - first),
                    p.pts_ms.map(|pts| pts - first),
                    p.size,
                    p.keyframe,
                )
            })
            .collect()
    };
    let (got_view, want_view) = (view(got), view(want));
    assert_eq!(
        got_view.len(),
        want_view.len(),
        "{what}: {kind:?} packet count (exact)"
    );
    let close = |a: i64, b: i64| a.abs_diff(b) <= tolerance_ms.unsigned_abs();
    let same = |g: &(i64, Option<i64>, u64, bool), w: &(i64, Option<i64>, u64, bool)| {
        close(g.0, w.0)
            && match (g.1, w.1) {
                (Some(a), Some(b)) => close(a, b),
                (a, b) => a == b,
            }
            && g.2 == w.2
            && g.3 == w.3
    };
    if let Some(index) = (0..got_view.len()).find(|&i| !same(&got_view[i], &want_view[i])) {
        panic!(
            "{what}: {kind:?} packet {index} differs beyond {tolerance_ms} ms (relative dts, relative pts, size, keyframe):\n got {:?}\nwant {:?}",
            &got_view[index..(index + 5).min(got_view.len())],
            &want_view[index..(index + 5).min(want_view.len())]
        );
    }
}

/// The video packets of `got` are exactly the last packets of the source's video (relative
/// timestamps, sizes, keyframe flags), i.e. a contiguous tail running to the end.
pub fn assert_source_tail(what: &str, got: &ProbeReport, source: &ProbeReport) {
    let source_video = source.of(StreamKind::Video);
    let video = got.of(StreamKind::Video);
    assert!(
        video.len() <= source_video.len(),
        "{what}: {} video packets, more than the source's {}",
        video.len(),
        source_video.len()
    );
    let skip = source_video.len() - video.len();
    let only_video = |streams: &[probe::StreamInfo], packets: &[&Packet]| ProbeReport {
        streams: streams.to_vec(),
        packets: packets.iter().map(|p| (*p).clone()).collect(),
    };
    assert_same_stream(
        what,
        StreamKind::Video,
        &only_video(&got.streams, &video),
        &only_video(&source.streams, &source_video[skip..]),
    );
}

/// The first dts of a kind.
pub fn first_dts(report: &ProbeReport, kind: StreamKind) -> Option<i64> {
    report.of(kind).first().and_then(|p| p.dts_ms)
}

pub fn assert_codecs(what: &str, report: &ProbeReport, video: bool, audio: bool) {
    if video {
        let stream = report
            .stream(StreamKind::Video)
            .unwrap_or_else(|| panic!("{what}: no video stream in {:?}", report.streams));
        assert_eq!(stream.codec_name, "h264", "{what}: video codec");
        assert_eq!(
            (stream.width, stream.height),
            (Some(WIDTH), Some(HEIGHT)),
            "{what}: video size"
        );
        assert!(
            report
                .of(StreamKind::Video)
                .iter()
                .all(|p| p.codec_name == "h264"),
            "{what}: every video packet is h264"
        );
    } else {
        assert!(
            report.stream(StreamKind::Video).is_none(),
            "{what}: unexpected video stream {:?}",
            report.streams
        );
    }
    if audio {
        let stream = report
            .stream(StreamKind::Audio)
            .unwrap_or_else(|| panic!("{what}: no audio stream in {:?}", report.streams));
        assert_eq!(stream.codec_name, "aac", "{what}: audio codec");
        assert_eq!(
            (stream.sample_rate, stream.channels),
            (Some(44100), Some(2)),
            "{what}: audio format"
        );
    } else {
        assert!(
            report.stream(StreamKind::Audio).is_none(),
            "{what}: unexpected audio stream {:?}",
            report.streams
        );
    }
}

/// A player that was there from the start got exactly the source's packets.
pub fn assert_matches_source(what: &str, run: &ProbeRun, clip: Clip) {
    let source = clip.source();
    let report = run.expect_ok(what);
    // ffprobe runs with `-v error`: anything on stderr is an error it saw while reading.
    assert!(
        run.finished.stderr.trim().is_empty(),
        "{what}: ffprobe reported errors: {}",
        run.finished.describe()
    );
    let video = clip != Clip::AudioOnly;
    let audio = clip != Clip::VideoOnly;
    assert_codecs(what, report, video, audio);
    for (kind, present) in [(StreamKind::Video, video), (StreamKind::Audio, audio)] {
        if present {
            assert_same_stream(what, kind, report, source);
        }
    }
    if video && audio {
        let offset = |r: &ProbeReport| {
            Some(first_dts(r, StreamKind::Audio)? - first_dts(r, StreamKind::Video)?)
        };
        assert_eq!(
            offset(report),
            offset(source),
            "{what}: first audio dts minus first video dts (A/V sync) must be preserved exactly"
        );
    }
}

/// A clean full decode: exit 0, nothing logged at error level, every frame decoded.
pub fn assert_clean_decode(what: &str, decode: &DecodeReport, clip: Clip) {
    // Every packet of this clip decodes to exactly one frame (checked on the file itself:
    // 150 video frames, 260 audio frames for the 6 s clip), so the counts are exact too.
    let audio = clip.source().of(StreamKind::Audio).len() as u64;
    assert_clean_decode_within(what, decode, clip, audio..=audio);
}

/// A clean full decode with every video frame of `clip` and a number of audio frames in
/// `audio`, for paths where the caller states why some audio may be missing.
pub fn assert_clean_decode_within(
    what: &str,
    decode: &DecodeReport,
    clip: Clip,
    audio: std::ops::RangeInclusive<u64>,
) {
    assert!(
        decode.finished.success(),
        "{what}: decoding ffmpeg failed: {}",
        decode.finished.describe()
    );
    assert!(
        decode.error_lines.is_empty(),
        "{what}: decode errors:\n{}",
        decode.error_lines.join("\n")
    );
    assert_eq!(
        decode.video_frames,
        clip.source().of(StreamKind::Video).len() as u64,
        "{what}: decoded video frames"
    );
    assert!(
        audio.contains(&decode.audio_frames),
        "{what}: {} audio frames decoded, expected {audio:?}",
        decode.audio_frames
    );
}
