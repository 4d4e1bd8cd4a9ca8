//! Live tests of H.265 + AAC through RTSP ingest: ffmpeg publishes the H.265 clip (two
//! B-frames) over RTSP with TCP and with UDP transport; players read it over RTSP/TCP and
//! RTSP/UDP (Debian's ffprobe) and over RTMP and HTTP-FLV as enhanced RTMP (`hvc1`), with the
//! ffmpeg 9 from imageio-ffmpeg because Debian's ffmpeg 5.1 cannot read H.265 in FLV. Run
//! against every server binary.
//!
//! The tolerances are those of the RTSP suite (`check::assert_complete_via_rtp`): RTP
//! timestamps within 2 ms, keyframes read over RTSP larger by their in-band VPS/SPS/PPS, the
//! audio ffmpeg's RTP muxer never sends. Over RTMP and HTTP-FLV the decode times the server
//! rebuilt from presentation times are checked against the source's too.

use std::time::Duration;

use mediakit_conformance::check::{
    assert_complete_via_rtp, assert_decodes_via_rtp, stream_path, Delivery, Ingest,
};
use mediakit_conformance::ffmpeg9::ffmpeg9;
use mediakit_conformance::media::{self, Clip};
use mediakit_conformance::probe::{self, DecodeReport, ProbeRun, Proc};
use mediakit_conformance::server::{server_binaries, Server};

const PLAYER_DEADLINE: Duration = Duration::from_secs(25);
const PLAYERS_SETTLE: Duration = Duration::from_millis(1000);

/// ffmpeg 9's HTTP client closes its connection when the terminating chunk arrives, and the
/// demuxer's next read of the closed handle fails, so every chunked body that ends, H.264 too,
/// ends with this line (seen with `-v debug`: "Last chunk received, closing conn", then the
/// error). The body itself is complete; the packet checks that follow prove it.
const FFMPEG9_HTTP_EOF: &str = "Error during demuxing: Input/output error";

fn without_http_eof_report(mut run: ProbeRun) -> ProbeRun {
    let stderr = run.finished.stderr.trim();
    let eof_only = stderr.lines().count() == 1 && stderr.ends_with(FFMPEG9_HTTP_EOF);
    if eof_only {
        run.finished.stderr.clear();
    }
    run
}

#[test]
fn h265_rtsp_publish_plays_over_rtsp_rtmp_and_http_flv() {
    let ffmpeg9 = ffmpeg9();
    let copy = |url: &str| Proc::spawn_path(ffmpeg9, &probe::copy_args(url, &[]));
    for (index, binary) in server_binaries().iter().enumerate() {
        for transport in ["tcp", "udp"] {
            let server = Server::start(binary, &[]);
            let path = stream_path(&format!("h265{transport}"), index);
            let rtsp_url = server.rtsp_url(&path);
            let transport_flag = ["-rtsp_transport", transport];
            let probe_rtsp = probe::spawn_probe(&rtsp_url, &transport_flag);
            let decode_rtsp = probe::spawn_decode(&rtsp_url, &transport_flag);
            let copy_rtmp = copy(&server.rtmp_url(&path));
            let copy_http = copy(&server.http_url(&format!("{path}.flv")));
            let decode_rtmp =
                Proc::spawn_path(ffmpeg9, &probe::decode_args(&server.rtmp_url(&path), &[]));
            std::thread::sleep(PLAYERS_SETTLE);
            let publisher = media::publish_rtsp(Clip::Hevc, &rtsp_url, transport);
            let published = publisher.wait_timeout(PLAYER_DEADLINE);
            assert!(
                published.success(),
                "{}: H.265 RTSP/{transport} publish failed: {}\n{}",
                binary.display(),
                published.describe(),
                server.log_text()
            );
            let tail = Duration::from_secs(8);
            let what = |player: &str| {
                format!(
                    "{} h265 rtsp/{transport} publish, {player} player",
                    binary.display()
                )
            };
            let ingest = Ingest::FfmpegRtsp;
            assert_complete_via_rtp(
                &what(&format!("rtsp/{transport}")),
                &ProbeRun::from_finished(probe_rtsp.wait_timeout(tail)),
                Clip::Hevc,
                Delivery::Rtsp,
                ingest,
            );
            assert_complete_via_rtp(
                &what("rtmp (ffmpeg 9)"),
                &ProbeRun::from_framecrc(copy_rtmp.wait_timeout(tail)),
                Clip::Hevc,
                Delivery::Flv,
                ingest,
            );
            assert_complete_via_rtp(
                &what("http-flv (ffmpeg 9)"),
                &without_http_eof_report(ProbeRun::from_framecrc(copy_http.wait_timeout(tail))),
                Clip::Hevc,
                Delivery::Flv,
                ingest,
            );
            assert_decodes_via_rtp(
                &what(&format!("rtsp/{transport} decode")),
                &DecodeReport::from_finished(decode_rtsp.wait_timeout(tail)),
                Clip::Hevc,
                ingest,
            );
            assert_decodes_via_rtp(
                &what("rtmp decode (ffmpeg 9)"),
                &DecodeReport::from_finished(decode_rtmp.wait_timeout(tail)),
                Clip::Hevc,
                ingest,
            );
        }
    }
}
