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

/// How a player received the stream, for what its container adds to each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// RTMP or HTTP-FLV: frames exactly as published.
    Flv,
    /// RTSP: keyframes with their parameter sets in-band; presentation times only.
    Rtsp,
    /// MPEG-TS (HLS, HTTP-TS): video in Annex-B with an access unit delimiter first and the
    /// parameter sets before keyframes; AAC with a 7-byte ADTS header.
    Ts,
}

/// Access unit delimiter the TS muxer puts first in every video frame, with its start code.
fn aud_len(codec: &str) -> u64 {
    match codec {
        "hevc" => 7,
        _ => 6,
    }
}

impl Delivery {
    /// The bytes a frame may gain on its way to this player, beyond its published size.
    pub fn overhead(self, packet: &Packet) -> std::ops::RangeInclusive<u64> {
        let video = packet.stream_kind == StreamKind::Video;
        match self {
            Delivery::Flv => 0..=0,
            Delivery::Rtsp if video && packet.keyframe => 0..=MAX_IN_BAND_PARAMETER_SETS,
            Delivery::Rtsp => 0..=0,
            Delivery::Ts if video => {
                let aud = aud_len(&packet.codec_name);
                let sets = if packet.keyframe {
                    MAX_IN_BAND_PARAMETER_SETS
                } else {
                    0
                };
                aud..=aud + sets
            }
            Delivery::Ts => 7..=7,
        }
    }

    /// Whether `got` is `want` as this delivery carries it (its size, within what the
    /// container adds).
    pub fn carries(self, got: &Packet, want: &Packet) -> bool {
        self.carries_size(got.size, want)
    }

    /// Whether `size` bytes is `want` as this delivery carries it.
    pub fn carries_size(self, size: u64, want: &Packet) -> bool {
        size.checked_sub(want.size)
            .is_some_and(|extra| self.overhead(want).contains(&extra))
    }

    /// Whether the player reads decode times (RTP carries presentation times only).
    pub fn has_dts(self) -> bool {
        self != Delivery::Rtsp
    }
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
    assert_same_stream_as(what, kind, got, want, tolerance_ms, Delivery::Flv);
}

/// Like [`assert_same_stream_within`], with sizes as `delivery` carries them.
pub fn assert_same_stream_as(
    what: &str,
    kind: StreamKind,
    got: &ProbeReport,
    want: &ProbeReport,
    tolerance_ms: i64,
    delivery: Delivery,
) {
    let want_packets = want.of(kind);
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
    let same = |i: usize| {
        let (g, w) = (&got_view[i], &want_view[i]);
        close(g.0, w.0)
            && match (g.1, w.1) {
                (Some(a), Some(b)) => close(a, b),
                (a, b) => a == b,
            }
            && delivery.carries_size(g.2, want_packets[i])
            && g.3 == w.3
    };
    if let Some(index) = (0..got_view.len()).find(|&i| !same(i)) {
        panic!(
            "{what}: {kind:?} packet {index} differs beyond {tolerance_ms} ms (relative dts, relative pts, size as {delivery:?} carries it, keyframe):\n got {:?}\nwant {:?}",
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
    assert_stream_codecs(what, report, video.then_some("h264"), audio);
}

/// The codecs, picture size and audio format of `clip`.
pub fn assert_clip_codecs(what: &str, report: &ProbeReport, clip: Clip) {
    assert_stream_codecs(what, report, clip.video_codec(), clip != Clip::VideoOnly);
}

fn assert_stream_codecs(what: &str, report: &ProbeReport, video: Option<&str>, audio: bool) {
    if let Some(codec) = video {
        let stream = report
            .stream(StreamKind::Video)
            .unwrap_or_else(|| panic!("{what}: no video stream in {:?}", report.streams));
        assert_eq!(stream.codec_name, codec, "{what}: video codec");
        assert_eq!(
            (stream.width, stream.height),
            (Some(WIDTH), Some(HEIGHT)),
            "{what}: video size"
        );
        assert!(
            report
                .of(StreamKind::Video)
                .iter()
                .all(|p| p.codec_name == codec),
            "{what}: every video packet is {codec}"
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
    assert_matches_source_as(what, run, clip, Delivery::Flv);
}

/// Like [`assert_matches_source`], with frame sizes as `delivery` carries them.
pub fn assert_matches_source_as(what: &str, run: &ProbeRun, clip: Clip, delivery: Delivery) {
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
            assert_same_stream_as(what, kind, report, source, 0, delivery);
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

/// Timestamps through RTP: its clocks (90 kHz video, the audio sample rate) round-trip
/// through milliseconds.
pub const RTP_TOLERANCE_MS: i64 = 2;

/// Most bytes the in-band parameter sets may add to a keyframe read over RTSP (SPS + PPS, or
/// VPS + SPS + PPS, with their start codes).
pub const MAX_IN_BAND_PARAMETER_SETS: u64 = 160;

/// AAC frames ffmpeg's RTP muxer never sends: it aggregates AAC frames into packets and does
/// not flush the last, partly filled one when the input ends (checked with a UDP capture of
/// `ffmpeg -i camera.flv -vn -c copy -f rtp`: 258 of the clip's 260 frames arrive).
pub const FFMPEG_RTP_UNSENT_AAC_FRAMES: usize = 2;

// ffmpeg returns the last H.265 frame of a stream it parses (RTSP, MPEG-TS) one byte short.
// Not ours: ffmpeg publishing the H.265 clip to ffmpeg itself (`ffmpeg -rtsp_flags listen -i
// rtsp://.. -c copy -f framecrc -`) shows 515 bytes for the source's 516-byte last frame, and
// ffprobe of ffmpeg's own `-c copy -f mpegts` of the clip shows 522 for 516 + a 7-byte AUD;
// the same frame read from mediakit over RTMP is exact. `assert_complete_via_rtp` allows it.

/// How the stream reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// ffmpeg over RTSP: the last AAC frames never leave ffmpeg.
    FfmpegRtsp,
    /// ffmpeg over RTMP: every frame arrives.
    Rtmp,
}

/// A player that was there from the start got `clip`, published over RTSP (or RTMP) and read
/// over RTSP (`over_rtsp`) or RTMP / HTTP-FLV.
///
/// Video: every frame, exact count and keyframe flags. Audio: a contiguous run of the source's
/// frames, exact but for two stated ends: a player starts at the first video keyframe, so an
/// audio frame published before it (the clip's first) may be missing at the start, as over
/// RTMP and HTTP-FLV; and for an ffmpeg RTSP publisher the frames ffmpeg never sends are
/// missing at the end. Timestamps of both tracks are compared relative to the second video
/// frame (ffmpeg's RTSP demuxer leaves the first packet untimestamped), so A/V sync is checked
/// too, within the RTP tolerance: presentation times always, decode times where the player
/// reads them from FLV (RTP carries presentation times only; the server rebuilds decode
/// times). Keyframes read over RTSP carry the parameter sets in-band, so they may be larger;
/// the last H.265 frame read over RTSP or TS may be a byte short (ffmpeg, see above).
pub fn assert_complete_via_rtp(
    what: &str,
    run: &ProbeRun,
    clip: Clip,
    delivery: Delivery,
    ingest: Ingest,
) {
    let over_rtsp = delivery == Delivery::Rtsp;
    let source = clip.source();
    let report = run.expect_ok(what);
    assert!(
        run.finished.stderr.trim().is_empty(),
        "{what}: ffprobe reported errors: {}",
        run.finished.describe()
    );
    assert_clip_codecs(what, report, clip);
    let time = |packet: &Packet| packet.pts_ms.or(packet.dts_ms);
    let (got_video, source_video) = (report.of(StreamKind::Video), source.of(StreamKind::Video));
    assert_eq!(
        got_video.len(),
        source_video.len(),
        "{what}: video packet count (exact)"
    );
    let anchor = |video: &[&Packet]| {
        time(video[1]).unwrap_or_else(|| panic!("{what}: video packet 1 has no timestamp"))
    };
    let (got_anchor, source_anchor) = (anchor(&got_video), anchor(&source_video));
    let check_time = |kind: &str, index: usize, got: &Packet, want: &Packet| {
        let (Some(g), Some(w)) = (time(got), time(want)) else {
            panic!("{what}: {kind} packet {index} has no timestamp");
        };
        let drift = (g - got_anchor) - (w - source_anchor);
        assert!(
            drift.abs() <= RTP_TOLERANCE_MS,
            "{what}: {kind} packet {index} is {drift} ms off the source"
        );
    };
    for (index, (got, want)) in got_video.iter().zip(&source_video).enumerate() {
        assert_eq!(
            got.keyframe, want.keyframe,
            "{what}: video packet {index} keyframe flag"
        );
        let hevc_tail = delivery != Delivery::Flv
            && clip == Clip::Hevc
            && index + 1 == source_video.len()
            && delivery.carries_size(got.size + 1, want);
        assert!(
            delivery.carries(got, want) || hevc_tail,
            "{what}: video packet {index} size {} vs source {}",
            got.size,
            want.size
        );
        if !(over_rtsp && index == 0) {
            check_time("video", index, got, want);
        }
        if delivery.has_dts() {
            let (Some(g), Some(w)) = (got.dts_ms, want.dts_ms) else {
                panic!("{what}: video packet {index} has no dts");
            };
            let drift = (g - got_anchor) - (w - source_anchor);
            assert!(
                drift.abs() <= RTP_TOLERANCE_MS,
                "{what}: video packet {index} dts is {drift} ms off the source"
            );
        }
    }
    let (got_audio, source_audio) = (report.of(StreamKind::Audio), source.of(StreamKind::Audio));
    let unsent = if ingest == Ingest::FfmpegRtsp {
        FFMPEG_RTP_UNSENT_AAC_FRAMES
    } else {
        0
    };
    let first_keyframe = source
        .packets
        .iter()
        .position(|p| p.stream_kind == StreamKind::Video && p.keyframe)
        .unwrap_or(0);
    let before_keyframe = source.packets[..first_keyframe]
        .iter()
        .filter(|p| p.stream_kind == StreamKind::Audio)
        .count();
    // Where the player's audio starts in the source: the offset (at most the frames published
    // before the first keyframe) at which every payload size matches.
    let sizes_match = |skipped: usize| {
        source_audio.len() >= skipped + got_audio.len()
            && got_audio
                .iter()
                .zip(&source_audio[skipped..])
                .all(|(g, w)| delivery.carries(g, w))
    };
    let skipped = (0..=before_keyframe).find(|&skipped| sizes_match(skipped)).unwrap_or_else(|| {
        panic!(
            "{what}: {} audio packets are no run of the source's {} starting within its first {before_keyframe}",
            got_audio.len(),
            source_audio.len()
        )
    });
    let missing_at_end = source_audio.len() - skipped - got_audio.len();
    assert!(
        missing_at_end <= unsent,
        "{what}: the last {missing_at_end} audio frames are missing (the publisher leaves at most {unsent} unsent)"
    );
    for (index, got) in got_audio.iter().enumerate() {
        let want = source_audio[skipped + index];
        assert!(
            delivery.carries(got, want),
            "{what}: audio packet {index} size {} for the source packet {}'s {}",
            got.size,
            skipped + index,
            want.size
        );
        if !(over_rtsp && index == 0) {
            check_time("audio", index, got, want);
        }
    }
}

/// A clean decode of `clip` after RTP: every video frame, and the audio frames
/// [`assert_complete_via_rtp`] allows.
pub fn assert_decodes_via_rtp(what: &str, decode: &DecodeReport, clip: Clip, ingest: Ingest) {
    // The same allowances as `assert_complete`: the publisher's unsent tail, and at most the
    // one frame published before the first keyframe.
    let unsent = if ingest == Ingest::FfmpegRtsp {
        FFMPEG_RTP_UNSENT_AAC_FRAMES
    } else {
        0
    };
    let all = clip.source().of(StreamKind::Audio).len() as u64;
    assert_clean_decode_within(what, decode, clip, all - unsent as u64 - 1..=all);
}
