//! ffmpeg captures replayed into the core, checked against ffprobe's packet list of the same
//! media (`conformance/captures/record.sh` regenerates both).
//!
//! For every frame: same order per track, same dts (ms), same size, same keyframe flag. The
//! RTSP publish capture is held to the same, within what RTP changes (stated at its test).

use bytes::BytesMut;
use mediakit_conformance::captures_dir;
use mediakit_conformance::check::RTP_TOLERANCE_MS;
use mediakit_core::flv::FlvDemuxer;
use mediakit_core::media::{Media, MediaKind};
use mediakit_core::rtmp::server::{RtmpServerConfig, RtmpServerSession};
use mediakit_core::rtsp::{RtspServerConfig, RtspServerSession};
use mediakit_core::session::{LiveSession, SessionEvent};
use mediakit_core::Millis;
use serde_json::Value;

/// One packet as ffprobe lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Packet {
    kind: MediaKind,
    dts: i64,
    pts: i64,
    size: usize,
    keyframe: bool,
}

fn number(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn probe_packets(name: &str) -> Vec<Packet> {
    let path = captures_dir().join(format!("{name}.packets.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).expect("packets json");
    json["packets"]
        .as_array()
        .expect("packets array")
        .iter()
        .map(|packet| Packet {
            kind: match packet["codec_type"].as_str() {
                Some("video") => MediaKind::Video,
                Some("audio") => MediaKind::Audio,
                other => panic!("unexpected codec_type {other:?}"),
            },
            dts: number(&packet["dts"]).expect("dts"),
            pts: number(&packet["pts"]).expect("pts"),
            size: number(&packet["size"]).expect("size") as usize,
            keyframe: packet["flags"]
                .as_str()
                .is_some_and(|flags| flags.starts_with('K')),
        })
        .collect()
}

fn frames_of(media: &[Media]) -> Vec<Packet> {
    media
        .iter()
        .filter_map(|item| match item {
            Media::Frame(frame) => Some(Packet {
                kind: frame.kind(),
                dts: frame.dts,
                pts: frame.pts,
                size: frame.payload.len(),
                keyframe: frame.keyframe,
            }),
            _ => None,
        })
        .collect()
}

/// Compares per track, so interleaving differences between muxers do not matter.
fn assert_same_packets(name: &str, ours: &[Packet], probed: &[Packet]) {
    assert_same_packets_within(name, ours, probed, RtpAllowance::default());
}

/// What a path through RTP may change; nothing by default.
#[derive(Debug, Default, Clone, Copy)]
struct RtpAllowance {
    /// Timestamp difference once both timelines are aligned on their first video frame.
    tolerance_ms: i64,
    /// Source audio frames that may be missing at the end.
    unsent_audio: usize,
    /// How much less the rebuilt decode delay (pts - dts) may be than the encoder's: a
    /// receiver infers the least delay that orders the frames, an encoder may keep more.
    decode_delay_ms: i64,
}

fn assert_same_packets_within(
    name: &str,
    ours: &[Packet],
    probed: &[Packet],
    allowance: RtpAllowance,
) {
    assert!(!ours.is_empty(), "{name}: no packets at all");
    let first_video = |packets: &[Packet]| {
        packets
            .iter()
            .find(|p| p.kind == MediaKind::Video)
            .map_or((0, 0), |p| (p.pts, p.dts))
    };
    let ((our_pts, our_dts), (source_pts, source_dts)) = (first_video(ours), first_video(probed));
    // Presentation times align the timelines; decode times are compared as a pattern, and
    // their offset within the allowance.
    let shift = our_pts - source_pts;
    let delay_difference = (our_pts - our_dts) - (source_pts - source_dts);
    assert!(
        (-allowance.decode_delay_ms..=0).contains(&delay_difference),
        "{name}: decode delay differs from the source's by {delay_difference} ms"
    );
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let ours: Vec<_> = ours.iter().filter(|p| p.kind == kind).collect();
        let probed: Vec<_> = probed.iter().filter(|p| p.kind == kind).collect();
        let missing = if kind == MediaKind::Audio {
            allowance.unsent_audio
        } else {
            0
        };
        assert_eq!(
            ours.len() + missing,
            probed.len(),
            "{name}: {kind:?} packet count, {} of the source's {}",
            ours.len(),
            probed.len()
        );
        // Audio has no decode delay: its decode times are its presentation times.
        let dts_shift = match kind {
            MediaKind::Video => shift - delay_difference,
            MediaKind::Audio => shift,
        };
        for (index, (a, b)) in ours.iter().zip(&probed).enumerate() {
            let pts_drift = a.pts - shift - b.pts;
            let dts_drift = a.dts - dts_shift - b.dts;
            assert!(
                pts_drift.abs() <= allowance.tolerance_ms
                    && dts_drift.abs() <= allowance.tolerance_ms,
                "{name}: {kind:?} packet {index}: pts {pts_drift} ms, dts {dts_drift} ms off"
            );
            assert!(
                a.dts <= a.pts,
                "{name}: {kind:?} packet {index}: dts after pts"
            );
            assert_eq!(
                (a.size, a.keyframe),
                (b.size, b.keyframe),
                "{name}: {kind:?} packet {index}"
            );
        }
    }
}

fn demux_file(name: &str, read_size: usize) -> Vec<Media> {
    let path = captures_dir().join(format!("{name}.flv"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut demuxer = FlvDemuxer::new();
    let mut buffer = BytesMut::new();
    let mut media = Vec::new();
    for piece in data.chunks(read_size) {
        buffer.extend_from_slice(piece);
        demuxer.handle_input(&mut buffer).expect("demux");
        while let Some(item) = demuxer.poll_media() {
            media.push(item.expect("tag body"));
        }
    }
    media
}

#[test]
fn flv_captures_match_ffprobe_for_any_read_size() {
    for name in ["h264_aac", "video_only", "audio_only"] {
        let probed = probe_packets(name);
        for read_size in [1, 7, 188, 4096, usize::MAX] {
            let media = demux_file(name, read_size);
            assert_same_packets(name, &frames_of(&media), &probed);
        }
        let configs = demux_file(name, 4096)
            .iter()
            .filter(|m| matches!(m, Media::Config(_)))
            .count();
        let tracks = probed
            .iter()
            .map(|p| p.kind)
            .collect::<std::collections::HashSet<_>>()
            .len();
        assert_eq!(configs, tracks, "{name}: one codec configuration per track");
    }
}

/// What replaying a publisher's bytes into a server session gave.
struct Replay {
    /// `app/stream` of the accepted publish.
    published: Option<String>,
    media: Vec<Media>,
    /// Whether the session reported the publish stopped.
    stopped: bool,
}

/// Feeds `data` to `session` in reads of `read_size` bytes, accepting the publish.
fn replay_publish(mut session: impl LiveSession, data: &[u8], read_size: usize) -> Replay {
    let mut buffer = BytesMut::new();
    let mut replay = Replay {
        published: None,
        media: Vec::new(),
        stopped: false,
    };
    for piece in data.chunks(read_size) {
        buffer.extend_from_slice(piece);
        if let Err(error) = session.handle_input(Millis(0), &mut buffer) {
            panic!("read size {read_size}: session input: {error}");
        }
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::PublishRequested { key } => {
                    replay.published = Some(key.to_string());
                    session.accept_publish();
                }
                SessionEvent::Media(item) => replay.media.push(item),
                SessionEvent::PublishStopped => replay.stopped = true,
                _ => {}
            }
        }
        let queued = session.transmit().queued_bytes();
        session.transmit().advance(queued);
    }
    assert_eq!(
        replay.published.as_deref(),
        Some("live/capture"),
        "read size {read_size}"
    );
    replay
}

#[test]
fn rtmp_publish_capture_matches_ffprobe_of_its_source() {
    let path = captures_dir().join("rtmp_publish.bin");
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let probed = probe_packets("h264_aac");
    for read_size in [1, 100, 1460, 65536] {
        let session = RtmpServerSession::new(RtmpServerConfig::default(), Millis(0), 1);
        let replay = replay_publish(session, &data, read_size);
        assert_same_packets(
            &format!("rtmp_publish read size {read_size}"),
            &frames_of(&replay.media),
            &probed,
        );
    }
}

/// ffmpeg's RTSP publish of the same clip (TCP interleaved), replayed at several read sizes:
/// every video frame with its size and keyframe flag; decode times, which RTP does not carry
/// and the session rebuilds from presentation times (the clip has B-frames), within RTP's
/// millisecond rounding; every audio frame but the last ones ffmpeg's RTP muxer never sends.
///
/// That muxer aggregates AAC frames, 7 per packet here, and does not send the last, partly
/// filled aggregate: the capture's audio channel holds 12 packets of 7 frames, 84 of the
/// clip's 88 (counted from the AU-header lengths of the captured packets). x264 delays decode
/// times by two frames for this clip; the session rebuilds the least delay that keeps every
/// frame's decode time at or before its presentation, one frame here: so decode times are
/// compared with up to one frame (40 ms) less delay, as a pattern they are exact.
const CAPTURE_ALLOWANCE: RtpAllowance = RtpAllowance {
    tolerance_ms: RTP_TOLERANCE_MS,
    unsent_audio: 4,
    decode_delay_ms: 40,
};

#[test]
fn rtsp_publish_capture_matches_ffprobe_of_its_source() {
    let path = captures_dir().join("rtsp_publish.bin");
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The requests repeat the session id the server gave; a session seeded with it has it.
    let answers = std::fs::read(captures_dir().join("rtsp_publish.s2c.bin")).expect("answers");
    let answers = String::from_utf8_lossy(&answers);
    let session_id = answers
        .lines()
        .find_map(|line| line.strip_prefix("Session: "))
        .and_then(|value| value.split(';').next())
        .expect("a Session header in the server's answers");
    let seed = u64::from_str_radix(session_id, 16).expect("hexadecimal session id");
    let probed = probe_packets("h264_aac");
    for read_size in [1, 100, 1460, 65536] {
        let session = RtspServerSession::new(RtspServerConfig::default(), Millis(0), seed);
        let replay = replay_publish(session, &data, read_size);
        assert!(
            replay.stopped,
            "read size {read_size}: the TEARDOWN ends the publish"
        );
        assert_same_packets_within(
            &format!("rtsp_publish read size {read_size}"),
            &frames_of(&replay.media),
            &probed,
            CAPTURE_ALLOWANCE,
        );
    }
}
