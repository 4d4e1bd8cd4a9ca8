//! ffmpeg captures replayed into the core, checked against ffprobe's packet list of the same
//! media (`conformance/captures/record.sh` regenerates both).
//!
//! For every frame: same order per track, same dts (ms), same size, same keyframe flag.

use bytes::BytesMut;
use mediakit_conformance::captures_dir;
use mediakit_core::flv::FlvDemuxer;
use mediakit_core::media::{Media, MediaKind};
use mediakit_core::rtmp::server::{RtmpServerConfig, RtmpServerSession};
use mediakit_core::session::{LiveSession, SessionEvent};
use mediakit_core::Millis;
use serde_json::Value;

/// One packet as ffprobe lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Packet {
    kind: MediaKind,
    dts: i64,
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
                size: frame.payload.len(),
                keyframe: frame.keyframe,
            }),
            _ => None,
        })
        .collect()
}

/// Compares per track, so interleaving differences between muxers do not matter.
fn assert_same_packets(name: &str, ours: &[Packet], probed: &[Packet]) {
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let ours: Vec<_> = ours.iter().filter(|p| p.kind == kind).collect();
        let probed: Vec<_> = probed.iter().filter(|p| p.kind == kind).collect();
        assert_eq!(ours.len(), probed.len(), "{name}: {kind:?} packet count");
        for (index, (a, b)) in ours.iter().zip(&probed).enumerate() {
            assert_eq!(a, b, "{name}: {kind:?} packet {index}");
        }
    }
    assert!(!ours.is_empty(), "{name}: no packets at all");
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

#[test]
fn rtmp_publish_capture_matches_ffprobe_of_its_source() {
    let path = captures_dir().join("rtmp_publish.bin");
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let probed = probe_packets("h264_aac");
    for read_size in [1, 100, 1460, 65536] {
        let mut session = RtmpServerSession::new(RtmpServerConfig::default(), Millis(0), 1);
        let mut buffer = BytesMut::new();
        let mut media = Vec::new();
        let mut published = None;
        for piece in data.chunks(read_size) {
            buffer.extend_from_slice(piece);
            session
                .handle_input(Millis(0), &mut buffer)
                .expect("session input");
            while let Some(event) = session.poll_event() {
                match event {
                    SessionEvent::PublishRequested { app, stream } => {
                        published = Some(format!("{app}/{stream}"));
                        session.accept_publish();
                    }
                    SessionEvent::Media(item) => media.push(item),
                    _ => {}
                }
            }
            let queued = session.transmit().queued_bytes();
            session.transmit().advance(queued);
        }
        assert_eq!(
            published.as_deref(),
            Some("live/capture"),
            "read size {read_size}"
        );
        assert_same_packets(
            &format!("rtmp_publish read size {read_size}"),
            &frames_of(&media),
            &probed,
        );
    }
}
