//! Live tests of RTSP over TCP (interleaved) and UDP: ffmpeg publishes over RTSP and players
//! read it over RTSP, RTMP and HTTP-FLV; an RTMP publish is read over RTSP. Run against every
//! server binary.
//!
//! Source: the camera clip (H.264 without B-frames + AAC), as IP cameras send; B-frames over
//! RTSP are covered by the H.265 suite (`live_hevc.rs`). Tolerances, each for a stated reason
//! (see `check::assert_complete_via_rtp`):
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

use mediakit_conformance::check::{
    assert_complete_via_rtp, assert_decodes_via_rtp, stream_path, Delivery, Ingest,
};
use mediakit_conformance::media::{self, Clip};
use mediakit_conformance::probe::{self, DecodeReport, ProbeRun};
use mediakit_conformance::server::{server_binaries, Server};

const PLAYER_DEADLINE: Duration = Duration::from_secs(25);
const PLAYERS_SETTLE: Duration = Duration::from_millis(1000);
const RTSP_TCP: &[&str] = &["-rtsp_transport", "tcp"];
const RTSP_UDP: &[&str] = &["-rtsp_transport", "udp"];

/// ffmpeg publishes over RTSP with TCP and then with UDP transport; each time players read
/// over RTSP with the same transport, RTMP and HTTP-FLV, and a decode runs over RTSP.
#[test]
fn rtsp_publish_plays_over_rtsp_rtmp_and_http_flv() {
    for (index, binary) in server_binaries().iter().enumerate() {
        for (transport, flag) in [("tcp", RTSP_TCP), ("udp", RTSP_UDP)] {
            let server = Server::start(binary, &[]);
            let path = stream_path(&format!("rtspin{transport}"), index);
            let probe_rtsp = probe::spawn_probe(&server.rtsp_url(&path), flag);
            let probe_rtmp = probe::spawn_probe(&server.rtmp_url(&path), &[]);
            let probe_http = probe::spawn_probe(&server.http_url(&format!("{path}.flv")), &[]);
            let decode_rtsp = probe::spawn_decode(&server.rtsp_url(&path), flag);
            std::thread::sleep(PLAYERS_SETTLE);
            let publisher = media::publish_rtsp(Clip::Camera, &server.rtsp_url(&path), transport);
            let published = publisher.wait_timeout(PLAYER_DEADLINE);
            assert!(
                published.success(),
                "{}: RTSP/{transport} publish failed: {}\n{}",
                binary.display(),
                published.describe(),
                server.log_text()
            );
            let tail = Duration::from_secs(8);
            let what =
                |p: &str| format!("{} rtsp/{transport} publish, {p} player", binary.display());
            let ingest = Ingest::FfmpegRtsp;
            for (player, run, delivery) in [
                (format!("rtsp/{transport}"), probe_rtsp, Delivery::Rtsp),
                ("rtmp".to_string(), probe_rtmp, Delivery::Flv),
                ("http-flv".to_string(), probe_http, Delivery::Flv),
            ] {
                let run = ProbeRun::from_finished(run.wait_timeout(tail));
                assert_complete_via_rtp(&what(&player), &run, Clip::Camera, delivery, ingest);
            }
            assert_decodes_via_rtp(
                &what(&format!("rtsp/{transport} decode")),
                &DecodeReport::from_finished(decode_rtsp.wait_timeout(tail)),
                Clip::Camera,
                ingest,
            );
        }
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
        assert_complete_via_rtp(
            &what,
            &ProbeRun::from_finished(probe_rtsp.wait_timeout(tail)),
            Clip::Camera,
            Delivery::Rtsp,
            Ingest::Rtmp,
        );
        assert_complete_via_rtp(
            &format!("{} rtmp publish, rtsp/udp player", binary.display()),
            &ProbeRun::from_finished(probe_udp.wait_timeout(tail)),
            Clip::Camera,
            Delivery::Rtsp,
            Ingest::Rtmp,
        );
        assert_decodes_via_rtp(
            &what,
            &DecodeReport::from_finished(decode_rtsp.wait_timeout(tail)),
            Clip::Camera,
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

/// ANNOUNCE (H.264 + AAC), SETUP of both tracks interleaved, RECORD, then interleaved
/// frames of garbage on every channel, as one write (the server answers in order).
fn garbage_publish(url: &str) -> Vec<u8> {
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n\
        m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
        a=fmtp:97 streamtype=5; profile-level-id=15; mode=AAC-hbr; config=1210; \
        sizelength=13; indexlength=3; indexdeltalength=3\r\na=control:trackID=1\r\n";
    let mut wire = format!(
        "ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes();
    for (cseq, track) in [(2, 0), (3, 1)] {
        wire.extend_from_slice(
            format!(
                "SETUP {url}/trackID={track} RTSP/1.0\r\nCSeq: {cseq}\r\n\
                 Transport: RTP/AVP/TCP;unicast;interleaved={}-{};mode=record\r\n\r\n",
                track * 2,
                track * 2 + 1
            )
            .as_bytes(),
        );
    }
    wire.extend_from_slice(format!("RECORD {url} RTSP/1.0\r\nCSeq: 4\r\n\r\n").as_bytes());
    for i in 0..400u32 {
        let len = 20 + (i * 37 % 1200) as usize;
        wire.extend_from_slice(&[b'$', (i % 4) as u8, (len >> 8) as u8, len as u8]);
        wire.extend((0..len).map(|j| (i as usize * 31 + j * 7) as u8));
    }
    wire
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
        // A publisher of another name whose RTP is garbage: its packets are dropped, the
        // publish stays up, and nothing reaches anyone else.
        let mut garbage_rtp = TcpStream::connect(("127.0.0.1", server.rtsp_port)).unwrap();
        garbage_rtp
            .write_all(&garbage_publish(&server.rtsp_url(&format!("{path}x"))))
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let garbage_stream = format!("stream={path}x");
        assert!(
            server
                .log_text()
                .lines()
                .any(|line| line.contains("publishing") && line.contains(&garbage_stream)),
            "{}: the garbage publisher was not accepted:\n{}",
            binary.display(),
            server.log_text()
        );
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
        assert_complete_via_rtp(
            &what,
            &ProbeRun::from_finished(probe_rtsp.wait_timeout(Duration::from_secs(8))),
            Clip::Camera,
            Delivery::Rtsp,
            Ingest::FfmpegRtsp,
        );
        assert!(server.is_running(), "{}: server died", binary.display());
    }
}
