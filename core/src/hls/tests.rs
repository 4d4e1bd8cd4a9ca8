//! Cutting, playlists, retention and a demux round trip of the segments.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::media::{AacConfig, AvcConfig, Codec, Frame, Media, TrackConfig};
use crate::ts::{ms_to_ticks, TsDemuxer, DEFAULT_TIMESTAMP_OFFSET_MS, PACKET_LEN, PAT_PID};

const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

pub(super) fn avc() -> Media {
    Media::Config(TrackConfig::Avc(AvcConfig {
        record: Bytes::new(),
        profile: 100,
        compatibility: 0,
        level: 31,
        nal_length_size: 4,
        sps: vec![Bytes::from_static(SPS)],
        pps: vec![Bytes::from_static(PPS)],
    }))
}

pub(super) fn aac() -> Media {
    Media::Config(TrackConfig::Aac(AacConfig::new(2, 44_100, 2).unwrap()))
}

/// A video frame whose single NAL unit carries its DTS, so it can be recognised after demux.
pub(super) fn video(dts: i64, keyframe: bool, size: usize) -> Frame {
    let mut unit = vec![if keyframe { 0x65 } else { 0x41 }];
    unit.extend_from_slice(&dts.to_be_bytes());
    unit.resize(size.max(unit.len()), 0xab);
    let mut payload = (unit.len() as u32).to_be_bytes().to_vec();
    payload.extend_from_slice(&unit);
    Frame {
        codec: Codec::H264,
        dts,
        pts: dts,
        keyframe,
        payload: Bytes::from(payload),
    }
}

pub(super) fn audio(dts: i64) -> Frame {
    let mut payload = vec![0x21];
    payload.extend_from_slice(&dts.to_be_bytes());
    Frame {
        codec: Codec::Aac,
        dts,
        pts: dts,
        keyframe: true,
        payload: Bytes::from(payload),
    }
}

fn config(target_duration_ms: u64, window: usize) -> HlsConfig {
    HlsConfig {
        target_duration_ms,
        window,
        ..HlsConfig::default()
    }
}

/// Pushes frames and remembers which frames went into which closed segment.
struct Feeder {
    hls: HlsSegmenter,
    pending: Vec<Frame>,
    closed: Vec<(Segment, Vec<Frame>)>,
}

impl Feeder {
    fn new(config: HlsConfig, tracks: &[Media]) -> Self {
        let mut hls = HlsSegmenter::new(config);
        for track in tracks {
            assert_eq!(hls.push(track).unwrap(), None);
        }
        Self {
            hls,
            pending: Vec::new(),
            closed: Vec::new(),
        }
    }

    fn push(&mut self, frame: Frame) -> Option<Segment> {
        let before = self.hls.partial_bytes();
        let closed = self.hls.push(&Media::Frame(frame.clone())).unwrap();
        if let Some(segment) = &closed {
            self.closed
                .push((segment.clone(), core::mem::take(&mut self.pending)));
        }
        // Frames the segmenter skipped (before the first keyframe) add nothing.
        if closed.is_some() || self.hls.partial_bytes() != before {
            self.pending.push(frame);
        }
        closed
    }

    fn finish(&mut self) -> Option<Segment> {
        let closed = self.hls.finish();
        if let Some(segment) = &closed {
            self.closed
                .push((segment.clone(), core::mem::take(&mut self.pending)));
        }
        closed
    }

    fn restart(&mut self) -> Option<Segment> {
        let closed = self.hls.restart();
        if let Some(segment) = &closed {
            self.closed
                .push((segment.clone(), core::mem::take(&mut self.pending)));
        }
        closed
    }

    /// 25 fps video from `from_ms` for `ms`, a keyframe every `gop_ms`, with audio every
    /// 23 ms when `with_audio`.
    fn av(&mut self, from_ms: i64, ms: i64, gop_ms: i64, with_audio: bool) {
        let mut next_audio = from_ms;
        let mut t = from_ms;
        while t < from_ms + ms {
            self.push(video(t, (t - from_ms) % gop_ms == 0, 200));
            while with_audio && next_audio < t + 40 {
                self.push(audio(next_audio));
                next_audio += 23;
            }
            t += 40;
        }
    }

    fn playlist(&self) -> String {
        String::from_utf8(self.hls.playlist().unwrap().to_vec()).unwrap()
    }
}

fn extinfs(playlist: &str) -> Vec<f64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse().unwrap())
        .collect()
}

fn tag(playlist: &str, name: &str) -> Option<u64> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.parse().unwrap())
}

#[test]
fn cuts_before_keyframes_once_the_target_is_reached() {
    // Keyframes every 1.5 s, target 2 s: the keyframe at 1.5 s is too early, 3 s is the cut.
    let mut feeder = Feeder::new(config(2_000, 5), &[avc(), aac()]);
    feeder.av(0, 9_000, 1_500, true);
    feeder.finish();
    let starts: Vec<i64> = feeder.closed.iter().map(|(s, _)| s.first_dts).collect();
    assert_eq!(starts, [0, 3_000, 6_000]);
    let durations: Vec<u64> = feeder.closed.iter().map(|(s, _)| s.duration_ms).collect();
    assert_eq!(durations, [3_000, 3_000, 3_000]);
    for (segment, frames) in &feeder.closed {
        let first = &frames[0];
        assert!(first.keyframe && first.codec == Codec::H264);
        assert!(segment.independent && !segment.discontinuity);
    }

    // Keyframes every second: every second keyframe cuts, exactly at the target.
    let mut feeder = Feeder::new(config(2_000, 5), &[avc()]);
    feeder.av(0, 7_000, 1_000, false);
    let starts: Vec<i64> = feeder.closed.iter().map(|(s, _)| s.first_dts).collect();
    assert_eq!(starts, [0, 2_000, 4_000]);
    assert!(feeder.closed.iter().all(|(s, _)| s.duration_ms == 2_000));
}

#[test]
fn frames_before_the_first_keyframe_are_dropped() {
    let mut feeder = Feeder::new(config(1_000, 5), &[avc(), aac()]);
    feeder.push(audio(0));
    feeder.push(video(0, false, 100));
    assert_eq!(feeder.hls.partial_bytes(), 0);
    feeder.push(video(40, true, 100));
    assert!(feeder.hls.partial_bytes() > 0);
    feeder.push(audio(50));
    feeder.finish();
    let (segment, frames) = &feeder.closed[0];
    assert_eq!(segment.first_dts, 40);
    assert_eq!(frames.len(), 2);
}

#[test]
fn audio_only_streams_cut_on_any_frame() {
    let mut feeder = Feeder::new(config(1_000, 5), &[aac()]);
    for i in 0..200 {
        feeder.push(audio(i * 23));
    }
    // 1000 / 23 rounds up to 44 frames: the cut is before frame 44 (1012 ms).
    let starts: Vec<i64> = feeder.closed.iter().map(|(s, _)| s.first_dts).collect();
    assert_eq!(starts, [0, 1_012, 2_024, 3_036]);
    assert!(feeder
        .closed
        .iter()
        .all(|(s, f)| s.duration_ms == 1_012 && f.len() == 44));
}

#[test]
fn playlist_text_is_exact() {
    let mut feeder = Feeder::new(config(2_000, 5), &[avc()]);
    feeder.av(0, 4_000, 2_000, false);
    feeder.push(video(4_000, true, 100));
    feeder.push(video(4_040, false, 100));
    feeder.finish();
    assert_eq!(
        feeder.playlist(),
        "#EXTM3U\n\
         #EXT-X-VERSION:3\n\
         #EXT-X-TARGETDURATION:2\n\
         #EXT-X-MEDIA-SEQUENCE:0\n\
         #EXTINF:2.000,\n0.ts\n\
         #EXTINF:2.000,\n1.ts\n\
         #EXTINF:0.080,\n2.ts\n\
         #EXT-X-ENDLIST\n"
    );
    assert_eq!(feeder.hls.media_sequence(), 0);
    assert_eq!(
        feeder.hls.segments().map(Segment::name).collect::<Vec<_>>(),
        ["0.ts", "1.ts", "2.ts"]
    );
}

#[test]
fn target_duration_covers_every_rounded_extinf() {
    // Keyframes every 2.6 s: EXTINF 2.600 rounds to 3, so the target must be 3.
    let mut feeder = Feeder::new(config(2_000, 5), &[avc()]);
    feeder.av(0, 8_000, 2_600, false);
    let playlist = feeder.playlist();
    assert_eq!(tag(&playlist, "#EXT-X-TARGETDURATION"), Some(3));
    assert_eq!(extinfs(&playlist), [2.6, 2.6, 2.6]);
    // 2.4 s rounds down but the ceiling is used: never below any EXTINF.
    let mut feeder = Feeder::new(config(1_000, 5), &[avc()]);
    feeder.av(0, 5_000, 2_400, false);
    assert_eq!(tag(&feeder.playlist(), "#EXT-X-TARGETDURATION"), Some(3));
    // Never below the configured target, rounded up.
    let mut feeder = Feeder::new(config(2_500, 5), &[avc()]);
    feeder.av(0, 500, 1_000, false);
    feeder.finish();
    assert_eq!(tag(&feeder.playlist(), "#EXT-X-TARGETDURATION"), Some(3));
}

#[test]
fn the_window_slides_and_older_segments_stay_fetchable() {
    let mut feeder = Feeder::new(
        HlsConfig {
            extra_segments: 2,
            ..config(1_000, 3)
        },
        &[avc()],
    );
    feeder.av(0, 6_040, 1_000, false);
    // Segments 0..=5 closed, the 6th is being filled.
    assert_eq!(feeder.closed.len(), 6);
    let playlist = feeder.playlist();
    assert_eq!(tag(&playlist, "#EXT-X-MEDIA-SEQUENCE"), Some(3));
    assert_eq!(feeder.hls.media_sequence(), 3);
    let uris: Vec<&str> = playlist.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(uris, ["3.ts", "4.ts", "5.ts"]);
    // Window 3 plus 2 extra: 0 is gone, 1 and 2 are still there for slow players.
    assert!(feeder.hls.segment(0).is_none());
    assert_eq!(feeder.hls.segment(1).unwrap().sequence, 1);
    assert_eq!(feeder.hls.segment(5).unwrap().sequence, 5);
    assert!(feeder.hls.segment(6).is_none());
    assert_eq!(
        feeder.hls.segment(4).unwrap().bytes,
        feeder.closed[4].0.bytes
    );
}

#[test]
fn restart_marks_a_discontinuity_that_is_counted_when_it_slides_out() {
    let mut feeder = Feeder::new(config(1_000, 3), &[avc(), aac()]);
    feeder.av(0, 2_500, 1_000, true);
    let closed = feeder.restart().expect("the partial segment is closed");
    assert_eq!(closed.sequence, 2);
    assert_eq!(closed.duration_ms, 520);
    assert_eq!(feeder.hls.restart(), None, "nothing to close twice");
    // The new publisher starts over at 0 with its own configurations.
    for track in [avc(), aac()] {
        feeder.hls.push(&track).unwrap();
    }
    feeder.av(0, 2_000, 1_000, true);
    let playlist = feeder.playlist();
    assert_eq!(
        playlist,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:1\n\
         #EXTINF:1.000,\n1.ts\n#EXTINF:0.520,\n2.ts\n\
         #EXT-X-DISCONTINUITY\n#EXTINF:1.000,\n3.ts\n"
    );
    assert!(feeder.closed[3].0.discontinuity);
    assert_eq!(feeder.closed[3].0.first_dts, 0);
    feeder.av(2_000, 3_000, 1_000, true);
    let playlist = feeder.playlist();
    assert_eq!(tag(&playlist, "#EXT-X-MEDIA-SEQUENCE"), Some(4));
    assert_eq!(tag(&playlist, "#EXT-X-DISCONTINUITY-SEQUENCE"), Some(1));
    assert!(!playlist.contains("#EXT-X-DISCONTINUITY\n"));
    // Played as one stream (as ffmpeg does across discontinuities), the continuity counters
    // carry on over the restart and every frame comes back.
    let mut demuxer = TsDemuxer::default();
    for (segment, _) in &feeder.closed {
        demuxer.push(&segment.bytes);
    }
    demuxer.flush();
    let pes = core::iter::from_fn(|| demuxer.poll()).count();
    assert_eq!(demuxer.stats().continuity_errors, 0);
    assert_eq!(
        pes,
        feeder.closed.iter().map(|(_, f)| f.len()).sum::<usize>()
    );
    // A restart before anything was closed is no discontinuity.
    let mut hls = HlsSegmenter::new(HlsConfig::default());
    assert_eq!(hls.restart(), None);
    hls.push(&avc()).unwrap();
    hls.push(&Media::Frame(video(0, true, 10))).unwrap();
    assert!(!hls.finish().unwrap().discontinuity);
}

#[test]
fn the_playlist_ends_when_the_publisher_leaves_until_the_stream_goes_on() {
    let mut feeder = Feeder::new(config(1_000, 3), &[avc(), aac()]);
    feeder.av(0, 2_000, 1_000, true);
    assert!(!feeder.playlist().contains("ENDLIST"));
    feeder.finish().expect("the partial segment is closed");
    assert!(feeder.playlist().ends_with("#EXT-X-ENDLIST\n"));
    // A finish with nothing partial still ends the playlist.
    assert_eq!(feeder.hls.finish(), None);
    assert!(feeder.playlist().ends_with("#EXT-X-ENDLIST\n"));
    // A new publisher: the end tag goes at once, the discontinuity comes with its segment.
    feeder.restart();
    assert!(!feeder.playlist().contains("ENDLIST"));
    for track in [avc(), aac()] {
        feeder.hls.push(&track).unwrap();
    }
    feeder.av(0, 2_000, 1_000, true);
    let playlist = feeder.playlist();
    assert!(!playlist.contains("ENDLIST"), "{playlist}");
    assert!(playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
    // Frames after a finish without a restart also take the end tag away.
    feeder.finish();
    feeder.av(2_000, 2_000, 1_000, true);
    assert!(!feeder.playlist().contains("ENDLIST"));
}

#[test]
fn the_byte_budget_drops_the_oldest_segments() {
    let mut feeder = Feeder::new(
        HlsConfig {
            max_stream_bytes: 20_000,
            ..config(1_000, 5)
        },
        &[avc()],
    );
    feeder.av(0, 10_040, 1_000, false);
    let sizes: Vec<usize> = feeder.closed.iter().map(|(s, _)| s.bytes.len()).collect();
    let each = sizes[0];
    assert!(sizes.iter().all(|&s| s == each), "{sizes:?}");
    let fit = 20_000 / each;
    assert!(
        fit < 5,
        "the test wants the budget below the window: {each}"
    );
    assert_eq!(feeder.hls.segments().len(), fit);
    assert_eq!(feeder.hls.stored_bytes(), fit * each);
    assert_eq!(
        feeder.hls.segments().next().unwrap().sequence,
        10 - fit as u64
    );
    // The playlist lists only what can be fetched.
    assert_eq!(extinfs(&feeder.playlist()).len(), fit);
    assert_eq!(feeder.hls.media_sequence(), 10 - fit as u64);
}

#[test]
fn trimming_drops_the_oldest_but_keeps_the_newest() {
    let mut feeder = Feeder::new(config(1_000, 3), &[avc()]);
    feeder.av(0, 5_040, 1_000, false);
    assert_eq!(feeder.hls.segments().len(), 5);
    let each = feeder.closed[0].0.bytes.len();
    let before = feeder.playlist();
    assert_eq!(feeder.hls.trim_to(5 * each), 0);
    assert_eq!(
        feeder.playlist(),
        before,
        "nothing dropped, nothing rendered"
    );
    // Room for two and a half: the three oldest go.
    assert_eq!(feeder.hls.trim_to(5 * each / 2), 3);
    assert_eq!(feeder.hls.stored_bytes(), 2 * each);
    let kept: Vec<u64> = feeder.hls.segments().map(|s| s.sequence).collect();
    assert_eq!(kept, [3, 4]);
    let playlist = feeder.playlist();
    assert_eq!(tag(&playlist, "#EXT-X-MEDIA-SEQUENCE"), Some(3));
    assert_eq!(extinfs(&playlist).len(), 2);
    // The newest stays whatever the budget.
    assert_eq!(feeder.hls.trim_to(0), 1);
    assert_eq!(feeder.hls.segments().len(), 1);
    assert_eq!(
        feeder.hls.segment(4).unwrap().bytes,
        feeder.closed[4].0.bytes
    );
    assert_eq!(feeder.hls.trim_to(0), 0);
    // The stream goes on after a trim.
    feeder.av(5_040, 2_000, 1_000, false);
    let kept: Vec<u64> = feeder.hls.segments().map(|s| s.sequence).collect();
    assert_eq!(kept, [4, 5]);
    assert_eq!(feeder.hls.media_sequence(), 4);
}

#[test]
fn finishing_gives_the_frame_buffers_back() {
    let mut feeder = Feeder::new(config(1_000, 3), &[avc(), aac()]);
    feeder.av(0, 2_500, 1_000, true);
    assert!(feeder.hls.buffered_capacity() > 0);
    feeder.finish().unwrap();
    assert_eq!(feeder.hls.buffered_capacity(), 0);
    assert_eq!(feeder.hls.partial_bytes(), 0);
    // A publisher that comes back gets them again.
    feeder.restart();
    for track in [avc(), aac()] {
        feeder.hls.push(&track).unwrap();
    }
    feeder.av(0, 2_000, 1_000, true);
    assert!(feeder.hls.buffered_capacity() > 0);
    assert!(feeder.playlist().contains("#EXT-X-DISCONTINUITY\n"));
}

#[test]
fn an_oversized_segment_is_cut_at_the_next_frame() {
    let mut feeder = Feeder::new(
        HlsConfig {
            max_segment_bytes: 10_000,
            ..config(2_000, 5)
        },
        &[avc()],
    );
    // One keyframe, then only P-frames of 2000 bytes (11 packets each).
    for i in 0..25 {
        feeder.push(video(i * 40, i == 0, 2_000));
    }
    assert!(feeder.closed.len() >= 4);
    for (segment, frames) in &feeder.closed {
        assert!(segment.bytes.len() <= 10_000);
        assert_eq!(segment.bytes[1..3], [0x40, 0x00], "starts with PAT");
        assert_eq!(segment.independent, frames[0].keyframe);
    }
    assert!(feeder.hls.partial_bytes() <= 10_000);
}

#[test]
fn timestamps_jumping_back_or_far_ahead_give_sane_durations() {
    let mut feeder = Feeder::new(config(1_000, 5), &[avc()]);
    feeder.av(0, 1_200, 1_000, false);
    // A reset to 0 without a restart, then a jump an hour ahead.
    feeder.av(0, 2_000, 1_000, false);
    feeder.av(3_600_000, 2_000, 1_000, false);
    feeder.push(video(3_601_990, false, 100));
    feeder.push(video(3_601_980, false, 100)); // jitter
    feeder.finish();
    // The jumps count as no time: no segment is longer than its frames span.
    let durations: Vec<u64> = feeder.closed.iter().map(|(s, _)| s.duration_ms).collect();
    assert_eq!(durations, [1_000, 1_160, 1_960, 1_020]);
    assert!(tag(&feeder.playlist(), "#EXT-X-TARGETDURATION").unwrap() <= 2);
}

#[test]
fn segments_demux_back_to_the_frames_pushed() {
    let mut feeder = Feeder::new(config(1_000, 10), &[avc(), aac()]);
    feeder.av(0, 3_000, 500, true);
    feeder.finish();
    assert_eq!(feeder.closed.len(), 3);
    // An audio-only stream gets its tables at each segment start from the segmenter.
    let mut audio_only = Feeder::new(config(500, 10), &[aac()]);
    for i in 0..100 {
        audio_only.push(audio(i * 21));
    }
    audio_only.finish();
    assert!(audio_only.closed.len() >= 4);

    for (segment, frames) in feeder.closed.iter().chain(&audio_only.closed) {
        let bytes = &segment.bytes;
        assert_eq!(bytes.len() % PACKET_LEN, 0);
        let first_pid = u16::from_be_bytes([bytes[1], bytes[2]]) & 0x1fff;
        assert_eq!(first_pid, PAT_PID);
        // Each segment on its own demuxer: it must be independently decodable.
        let mut demuxer = TsDemuxer::default();
        demuxer.push(bytes);
        demuxer.flush();
        let packets: Vec<_> = core::iter::from_fn(|| demuxer.poll())
            .map(Result::unwrap)
            .collect();
        assert_eq!(demuxer.stats().continuity_errors, 0);
        assert_eq!(packets.len(), frames.len(), "segment {}", segment.sequence);
        // The demuxer completes a video PES only when the next one starts, so compare each
        // track in its own order.
        for codec in [Codec::H264, Codec::Aac] {
            let pes: Vec<_> = packets
                .iter()
                .filter(|p| p.codec() == Some(codec))
                .collect();
            let sent: Vec<_> = frames.iter().filter(|f| f.codec == codec).collect();
            assert_eq!(pes.len(), sent.len());
            for (index, (pes, frame)) in pes.iter().zip(&sent).enumerate() {
                let ticks = ms_to_ticks(frame.pts, DEFAULT_TIMESTAMP_OFFSET_MS);
                assert_eq!(pes.pts, Some(ticks));
                if codec == Codec::Aac {
                    assert_eq!(&pes.payload[7..], &frame.payload[..]);
                } else {
                    // Annex-B: AUD, parameter sets before keyframes, then the NAL unit.
                    assert!(pes.payload.ends_with(&frame.payload[4..]));
                    assert_eq!(pes.random_access, frame.keyframe);
                    if index == 0 {
                        assert!(
                            frame.keyframe,
                            "segment {} starts with a keyframe",
                            segment.sequence
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn resource_names_are_playlists_or_segments() {
    assert_eq!(
        HlsResource::parse("index.m3u8"),
        Some(HlsResource::Playlist)
    );
    assert_eq!(HlsResource::parse("hls.m3u8"), Some(HlsResource::Playlist));
    assert_eq!(HlsResource::parse("42.ts"), Some(HlsResource::Segment(42)));
    for other in [
        "live.m3u8",
        "index.M3U8",
        "042.ts",
        "x.ts",
        "index.html",
        "",
    ] {
        assert_eq!(HlsResource::parse(other), None, "{other}");
    }
}

#[test]
fn segment_names_round_trip() {
    for sequence in [0, 1, 42, u64::MAX] {
        assert_eq!(parse_segment_name(&segment_name(sequence)), Some(sequence));
    }
    for bad in [
        "",
        ".ts",
        "1",
        "1.m3u8",
        "+1.ts",
        "-1.ts",
        "01.ts",
        "1a.ts",
        " 1.ts",
        "18446744073709551616.ts",
    ] {
        assert_eq!(parse_segment_name(bad), None, "{bad:?}");
    }
    assert_eq!(segment_name(7), "7.ts".to_string());
}

#[derive(Debug, Clone)]
enum Op {
    /// Video frame `gap` ms after the last, keyframe or not.
    Video {
        gap: i64,
        key: bool,
        size: usize,
    },
    /// Audio frame `gap` ms after the last (may be negative: audio behind video).
    Audio {
        gap: i64,
    },
    /// A jump of the timeline without restart.
    Jump {
        to: i64,
    },
    Restart {
        to: i64,
    },
    Finish,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (0i64..120, prop::bool::weighted(0.08), 1usize..3_000)
            .prop_map(|(gap, key, size)| Op::Video { gap, key, size }),
        30 => (-50i64..60).prop_map(|gap| Op::Audio { gap }),
        1 => (-100_000i64..100_000).prop_map(|to| Op::Jump { to }),
        1 => (-2_000i64..100_000).prop_map(|to| Op::Restart { to }),
        1 => Just(Op::Finish),
    ]
}

/// Sequence numbers follow each other, discontinuities come only on the first segment after
/// a restart, sizes stay bounded (a segment may exceed the limit by one frame: 3000 bytes at most here).
fn check_closed(
    segment: &Segment,
    next_sequence: &mut u64,
    restarted: &mut bool,
    max_segment_bytes: usize,
    discontinuities: &mut Vec<u64>,
) -> Result<(), TestCaseError> {
    if segment.discontinuity {
        discontinuities.push(segment.sequence);
    }
    prop_assert_eq!(segment.sequence, *next_sequence);
    *next_sequence += 1;
    prop_assert_eq!(segment.discontinuity, *restarted);
    *restarted = false;
    prop_assert!(segment.bytes.len() <= max_segment_bytes.max(4_000));
    Ok(())
}

proptest! {
    #[test]
    fn playlists_stay_valid(
        ops in prop::collection::vec(op(), 1..600),
        with_video in any::<bool>(),
        target in 200u64..3_000,
        window in 1usize..6,
        extra in 0usize..4,
        max_segment_bytes in 2_000usize..60_000,
        max_stream_bytes in 1_000usize..200_000,
    ) {
        let hls_config = HlsConfig {
            target_duration_ms: target,
            window,
            extra_segments: extra,
            max_segment_bytes,
            max_stream_bytes,
            ..HlsConfig::default()
        };
        let tracks: Vec<Media> = if with_video { vec![avc(), aac()] } else { vec![aac()] };
        let mut hls = HlsSegmenter::new(hls_config);
        for track in &tracks {
            hls.push(track).unwrap();
        }
        let mut t = 0i64;
        let mut last_media_sequence = 0;
        let mut restarted = false;
        let mut next_sequence = 0;
        let mut discontinuities = Vec::new();
        for op in ops {
            let closed = match op {
                Op::Video { gap, key, size } => {
                    t += gap;
                    hls.push(&Media::Frame(video(t, key, size))).unwrap()
                }
                Op::Audio { gap } => {
                    t += gap;
                    hls.push(&Media::Frame(audio(t))).unwrap()
                }
                Op::Jump { to } => {
                    t = to;
                    None
                }
                Op::Restart { to } => {
                    t = to;
                    if let Some(segment) = hls.restart() {
                        check_closed(&segment, &mut next_sequence, &mut restarted, max_segment_bytes, &mut discontinuities)?;
                    }
                    restarted = next_sequence > 0;
                    for track in &tracks {
                        hls.push(track).unwrap();
                    }
                    None
                }
                Op::Finish => hls.finish(),
            };
            if let Some(segment) = closed {
                check_closed(&segment, &mut next_sequence, &mut restarted, max_segment_bytes, &mut discontinuities)?;
            }
            prop_assert!(hls.partial_bytes() <= max_segment_bytes.max(4_000));
            prop_assert!(
                hls.stored_bytes() <= max_stream_bytes || hls.segments().len() <= 1
            );
            prop_assert_eq!(
                hls.stored_bytes(),
                hls.segments().map(|s| s.bytes.len()).sum::<usize>()
            );
            let Some(playlist) = hls.playlist() else {
                prop_assert_eq!(next_sequence, 0);
                continue;
            };
            let text = core::str::from_utf8(&playlist).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            prop_assert_eq!(&lines[..2], &["#EXTM3U", "#EXT-X-VERSION:3"]);
            let target_secs = tag(text, "#EXT-X-TARGETDURATION").unwrap();
            prop_assert!(target_secs >= target.div_ceil(1000));
            let media_sequence = tag(text, "#EXT-X-MEDIA-SEQUENCE").unwrap();
            prop_assert!(media_sequence >= last_media_sequence);
            last_media_sequence = media_sequence;
            prop_assert_eq!(media_sequence, hls.media_sequence());
            let uris: Vec<&str> = lines.iter().copied().filter(|l| !l.starts_with('#')).collect();
            let durations = extinfs(text);
            prop_assert_eq!(uris.len(), durations.len());
            prop_assert!(!uris.is_empty() && uris.len() <= window);
            for (index, (uri, duration)) in uris.iter().zip(&durations).enumerate() {
                let sequence = parse_segment_name(uri).unwrap();
                prop_assert_eq!(sequence, media_sequence + index as u64);
                let segment = hls.segment(sequence).unwrap();
                prop_assert_eq!(segment.duration_ms as f64 / 1000.0, *duration);
                prop_assert!(duration.round() as u64 <= target_secs);
            }
            // Every EXT-X-DISCONTINUITY is followed by the EXTINF of a flagged segment.
            let flagged = hls.listed().filter(|s| s.discontinuity).count();
            prop_assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), flagged);
            // RFC 8216 6.2.2: the discontinuities that slid out are counted.
            let slid_out = discontinuities.iter().filter(|&&s| s < media_sequence).count();
            prop_assert_eq!(
                tag(text, "#EXT-X-DISCONTINUITY-SEQUENCE").unwrap_or(0),
                slid_out as u64
            );
        }
    }
}

/// Manual check against ffmpeg: `HLS_INPUT=/path/to/file.flv cargo test -p mediakit-core
/// hls::tests::write_real_segments -- --ignored`, then point ffprobe/ffmpeg at
/// `/tmp/hlscheck/index.m3u8`. The input is played twice, with a restart in between.
#[test]
#[ignore]
fn write_real_segments() {
    extern crate std;
    use crate::flv::FlvDemuxer;
    use bytes::BytesMut;

    let input = std::env::var("HLS_INPUT").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../conformance/captures/h264_aac.flv"
        )
        .into()
    });
    let data = std::fs::read(&input).unwrap();
    let dir = std::path::Path::new("/tmp/hlscheck");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut hls = HlsSegmenter::new(HlsConfig {
        window: 1_000,
        extra_segments: 0,
        ..HlsConfig::default()
    });
    let write = |segment: Option<Segment>| {
        if let Some(segment) = segment {
            std::fs::write(dir.join(segment.name()), &segment.bytes).unwrap();
        }
    };
    for pass in 0..2 {
        if pass > 0 {
            write(hls.restart());
        }
        let mut demuxer = FlvDemuxer::new();
        let mut buffer = BytesMut::from(&data[..]);
        demuxer.handle_input(&mut buffer).unwrap();
        while let Some(media) = demuxer.poll_media() {
            write(hls.push(&media.unwrap()).unwrap());
        }
        write(hls.finish());
    }
    std::fs::write(dir.join("index.m3u8"), hls.playlist().unwrap()).unwrap();
    std::println!("{}", std::str::from_utf8(&hls.playlist().unwrap()).unwrap());
}
