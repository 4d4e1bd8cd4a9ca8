//! Live tests of RTSP over TCP (interleaved) and UDP: ffmpeg publishes over RTSP and players
//! read it over RTSP, RTMP and HTTP-FLV; an RTMP publish is read over RTSP. Run against every
//! server binary.
//!
//! Source: the camera clip (H.264 without B-frames + AAC): RTP carries presentation time only,
//! which for this clip is also decode time. Tolerances, each for a stated reason:
//! - timestamps within 2 ms: RTP clocks (90 kHz video, 44.1 kHz audio) round-trip through
//!   milliseconds;
//! - players reading RTSP get keyframes with the SPS/PPS in-band (RTSP players expect them),
//!   so those are larger by those bytes; ffmpeg's RTSP demuxer leaves the first packet of a
//!   stream without a timestamp, so timestamps are compared relative to the second video
//!   frame;
//! - audio may lack the one frame the clip publishes before its first keyframe (a player
//!   starts at the first keyframe, over every protocol), and with ffmpeg as RTSP publisher the
//!   last two frames, which ffmpeg's RTP muxer may never send.
//!
//! Video frame counts, keyframe flags and every other size are exact, over UDP too: on
//! loopback at the clip's real-time rate nothing is lost, and a loss would be a bug to see.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mediakit_conformance::check::{assert_clean_decode_within, assert_codecs, stream_path};
use mediakit_conformance::media::{self, Clip};
use mediakit_conformance::probe::{self, DecodeReport, Packet, ProbeRun, StreamKind};
use mediakit_conformance::server::{server_binaries, Server};

const PLAYER_DEADLINE: Duration = Duration::from_secs(25);
const PLAYERS_SETTLE: Duration = Duration::from_millis(1000);
const RTP_TOLERANCE_MS: i64 = 2;
const RTSP_TCP: &[&str] = &["-rtsp_transport", "tcp"];
const RTSP_UDP: &[&str] = &["-rtsp_transport", "udp"];

/// Most bytes the in-band parameter sets may add to a keyframe (SPS + PPS + start codes).
const MAX_IN_BAND_PARAMETER_SETS: u64 = 64;

/// AAC frames ffmpeg's RTP muxer never sends: it aggregates AAC frames into packets and does
/// not flush the last, partly filled one when the input ends (checked with a UDP capture of
/// `ffmpeg -i camera.flv -vn -c copy -f rtp`: 258 of the clip's 260 frames arrive).
const FFMPEG_RTP_UNSENT_AAC_FRAMES: usize = 2;

/// How the stream reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ingest {
    /// ffmpeg over RTSP: the last AAC frames never leave ffmpeg.
    FfmpegRtsp,
    /// ffmpeg over RTMP: every frame arrives.
    Rtmp,
}

/// A player that was there from the start got the camera clip.
///
/// Video: every frame, exact count and keyframe flags. Audio: a contiguous run of the source's
/// frames, exact but for two stated ends: a player starts at the first video keyframe, so an
/// audio frame published before it (the clip's first) may be missing at the start, as over
/// RTMP and HTTP-FLV; and for an ffmpeg RTSP publisher the frames ffmpeg never sends are
/// missing at the end. Timestamps of both tracks are compared relative to the second video
/// frame (see the module docs), so A/V sync is checked too, within the RTP tolerance.
fn assert_complete(what: &str, run: &ProbeRun, over_rtsp: bool, ingest: Ingest) {
    let source = Clip::Camera.source();
    let report = run.expect_ok(what);
    assert!(
        run.finished.stderr.trim().is_empty(),
        "{what}: ffprobe reported errors: {}",
        run.finished.describe()
    );
    assert_codecs(what, report, true, true);
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
        let extra = got.size.checked_sub(want.size);
        let in_band =
            over_rtsp && got.keyframe && extra.is_some_and(|e| e <= MAX_IN_BAND_PARAMETER_SETS);
        assert!(
            extra == Some(0) || in_band,
            "{what}: video packet {index} size {} vs source {}",
            got.size,
            want.size
        );
        if !(over_rtsp && index == 0) {
            check_time("video", index, got, want);
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
                .all(|(g, w)| g.size == w.size)
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
        assert_eq!(
            got.size,
            want.size,
            "{what}: audio packet {index} size (source packet {})",
            skipped + index
        );
        if !(over_rtsp && index == 0) {
            check_time("audio", index, got, want);
        }
    }
}

fn assert_decodes(what: &str, decode: &DecodeReport, ingest: Ingest) {
    // The same allowances as `assert_complete`: the publisher's unsent tail, and at most the
    // one frame published before the first keyframe.
    let unsent = if ingest == Ingest::FfmpegRtsp {
        FFMPEG_RTP_UNSENT_AAC_FRAMES
    } else {
        0
    };
    let all = Clip::Camera.source().of(StreamKind::Audio).len() as u64;
    assert_clean_decode_within(what, decode, Clip::Camera, all - unsent as u64 - 1..=all);
}

#[test]
fn rtsp_publish_plays_over_rtsp_rtmp_and_http_flv() {
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &[]);
        let path = stream_path("rtspin", index);
        let probe_rtsp = probe::spawn_probe(&server.rtsp_url(&path), RTSP_TCP);
        let probe_rtmp = probe::spawn_probe(&server.rtmp_url(&path), &[]);
        let probe_http = probe::spawn_probe(&server.http_url(&format!("{path}.flv")), &[]);
        let decode_rtsp = probe::spawn_decode(&server.rtsp_url(&path), RTSP_TCP);
        std::thread::sleep(PLAYERS_SETTLE);
        let publisher = media::publish_rtsp(Clip::Camera, &server.rtsp_url(&path), "tcp");
        let published = publisher.wait_timeout(PLAYER_DEADLINE);
        assert!(
            published.success(),
            "{}: RTSP publish failed: {}\n{}",
            binary.display(),
            published.describe(),
            server.log_text()
        );
        let tail = Duration::from_secs(8);
        let what = |p: &str| format!("{} rtsp publish, {p} player", binary.display());
        assert_complete(
            &what("rtsp"),
            &ProbeRun::from_finished(probe_rtsp.wait_timeout(tail)),
            true,
            Ingest::FfmpegRtsp,
        );
        assert_complete(
            &what("rtmp"),
            &ProbeRun::from_finished(probe_rtmp.wait_timeout(tail)),
            false,
            Ingest::FfmpegRtsp,
        );
        assert_complete(
            &what("http-flv"),
            &ProbeRun::from_finished(probe_http.wait_timeout(tail)),
            false,
            Ingest::FfmpegRtsp,
        );
        assert_decodes(
            &what("rtsp decode"),
            &DecodeReport::from_finished(decode_rtsp.wait_timeout(tail)),
            Ingest::FfmpegRtsp,
        );
    }
}

#[test]
fn rtsp_udp_publish_plays_over_rtsp_udp_and_rtmp() {
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &[]);
        let path = stream_path("rtspudpin", index);
        let probe_udp = probe::spawn_probe(&server.rtsp_url(&path), RTSP_UDP);
        let probe_rtmp = probe::spawn_probe(&server.rtmp_url(&path), &[]);
        let decode_udp = probe::spawn_decode(&server.rtsp_url(&path), RTSP_UDP);
        std::thread::sleep(PLAYERS_SETTLE);
        let publisher = media::publish_rtsp(Clip::Camera, &server.rtsp_url(&path), "udp");
        let published = publisher.wait_timeout(PLAYER_DEADLINE);
        assert!(
            published.success(),
            "{}: RTSP/UDP publish failed: {}\n{}",
            binary.display(),
            published.describe(),
            server.log_text()
        );
        let tail = Duration::from_secs(8);
        let what = |p: &str| format!("{} rtsp/udp publish, {p} player", binary.display());
        assert_complete(
            &what("rtsp/udp"),
            &ProbeRun::from_finished(probe_udp.wait_timeout(tail)),
            true,
            Ingest::FfmpegRtsp,
        );
        assert_complete(
            &what("rtmp"),
            &ProbeRun::from_finished(probe_rtmp.wait_timeout(tail)),
            false,
            Ingest::FfmpegRtsp,
        );
        assert_decodes(
            &what("rtsp/udp decode"),
            &DecodeReport::from_finished(decode_udp.wait_timeout(tail)),
            Ingest::FfmpegRtsp,
        );
    }
}

#[test]
fn rtmp_publish_plays_over_rtsp_tcp_and_udp() {
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &[]);
        let path = stream_path("rtmpin", index);
        let probe_rtsp = probe::spawn_probe(&server.rtsp_url(&path), RTSP_TCP);
        let probe_udp = probe::spawn_probe(&server.rtsp_url(&path), RTSP_UDP);
        let decode_rtsp = probe::spawn_decode(&server.rtsp_url(&path), RTSP_TCP);
        std::thread::sleep(PLAYERS_SETTLE);
        let publisher = media::publish(Clip::Camera, &server.rtmp_url(&path), &[]);
        let published = publisher.wait_timeout(PLAYER_DEADLINE);
        assert!(
            published.success(),
            "{}: RTMP publish failed: {}",
            binary.display(),
            published.describe()
        );
        let tail = Duration::from_secs(8);
        let what = format!("{} rtmp publish, rtsp player", binary.display());
        assert_complete(
            &what,
            &ProbeRun::from_finished(probe_rtsp.wait_timeout(tail)),
            true,
            Ingest::Rtmp,
        );
        assert_complete(
            &format!("{} rtmp publish, rtsp/udp player", binary.display()),
            &ProbeRun::from_finished(probe_udp.wait_timeout(tail)),
            true,
            Ingest::Rtmp,
        );
        assert_decodes(
            &what,
            &DecodeReport::from_finished(decode_rtsp.wait_timeout(tail)),
            Ingest::Rtmp,
        );
    }
}

/// Sends `bytes` to the RTSP port and waits for the server to close the connection.
fn closed_after(port: u16, bytes: &[u8], within: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.write_all(bytes);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let deadline = Instant::now() + within;
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn malformed_rtsp_closes_only_its_own_connection() {
    for (index, binary) in server_binaries().iter().enumerate() {
        let mut server = Server::start(binary, &[]);
        let path = stream_path("rtsphostile", index);
        let probe_rtsp = probe::spawn_probe(&server.rtsp_url(&path), RTSP_TCP);
        std::thread::sleep(PLAYERS_SETTLE);
        let publisher = media::publish_rtsp(Clip::Camera, &server.rtsp_url(&path), "tcp");
        std::thread::sleep(Duration::from_secs(2));
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
            .collect();
        let mut huge_head = b"OPTIONS rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 1\r\n".to_vec();
        while huge_head.len() < 16 * 1024 {
            huge_head.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let bad_request_line = b"THIS IS NOT RTSP\r\n\r\n".to_vec();
        for (name, bytes) in [
            ("garbage", garbage),
            ("oversized head", huge_head),
            ("malformed request line", bad_request_line),
        ] {
            assert!(
                closed_after(server.rtsp_port, &bytes, Duration::from_secs(3)),
                "{}: {name} connection was not closed",
                binary.display()
            );
        }
        let published = publisher.wait_timeout(PLAYER_DEADLINE);
        assert!(
            published.success(),
            "{}: publish failed: {}",
            binary.display(),
            published.describe()
        );
        let what = format!(
            "{} rtsp player beside hostile connections",
            binary.display()
        );
        assert_complete(
            &what,
            &ProbeRun::from_finished(probe_rtsp.wait_timeout(Duration::from_secs(8))),
            true,
            Ingest::FfmpegRtsp,
        );
        assert!(server.is_running(), "{}: server died", binary.display());
    }
}
