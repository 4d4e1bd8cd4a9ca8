//! Live tests of MPEG-TS output: HLS (`/{app}/{stream}/index.m3u8` and its segments) and
//! live HTTP-TS (`/{app}/{stream}.ts`), fed by an RTMP publish, an RTSP publish and an H.265
//! RTSP publish. Run against every server binary.
//!
//! Every player connects before the publisher, so it waits (play-before-publish) and then gets
//! the stream from its first frame. Checked: packet counts, timestamps and sizes against the
//! source (exact for an RTMP publish; within the RTP allowances of `check` after RTSP), a
//! clean decode, and nothing from ffmpeg's MPEG-TS demuxer about continuity counters, PES
//! sizes or corrupt packets.

use std::time::Duration;

use mediakit_conformance::check::{
    assert_clean_decode, assert_complete_via_rtp, assert_decodes_via_rtp, assert_matches_source_as,
    stream_path, Delivery, Ingest,
};
use mediakit_conformance::http;
use mediakit_conformance::media::{self, Clip};
use mediakit_conformance::probe::{self, DecodeReport, Finished, ProbeRun, Proc};
use mediakit_conformance::server::{server_binaries, Server};

const PLAYER_DEADLINE: Duration = Duration::from_secs(25);
const PLAYERS_SETTLE: Duration = Duration::from_millis(1000);
/// A live HLS playlist has no end until the publisher stops and the server ends it; players
/// finish a few seconds after that (a playlist reload).
const HLS_TAIL: Duration = Duration::from_secs(15);
const TS_TAIL: Duration = Duration::from_secs(8);

/// Players of one stream over HLS and HTTP-TS: packet lists, full decodes and TS checks.
struct Players {
    probe_hls: Proc,
    probe_ts: Proc,
    decode_hls: Proc,
    decode_ts: Proc,
    check_hls: Proc,
    check_ts: Proc,
}

impl Players {
    fn start(server: &Server, path: &str) -> Self {
        let hls = server.http_url(&format!("{path}/index.m3u8"));
        let ts = server.http_url(&format!("{path}.ts"));
        Self {
            probe_hls: probe::spawn_probe(&hls, &[]),
            probe_ts: probe::spawn_probe(&ts, &[]),
            decode_hls: probe::spawn_decode(&hls, &[]),
            decode_ts: probe::spawn_decode(&server.http_url(&format!("{path}.live.ts")), &[]),
            check_hls: probe::spawn_ts_check(&hls, &[]),
            check_ts: probe::spawn_ts_check(&ts, &[]),
        }
    }

    /// Waits for every player and checks each with `complete` (packet list) and `decodes`.
    fn finish(
        self,
        what: &dyn Fn(&str) -> String,
        complete: &dyn Fn(&str, &ProbeRun),
        decodes: &dyn Fn(&str, &DecodeReport),
    ) {
        complete(
            &what("ffprobe HLS"),
            &ProbeRun::from_finished(self.probe_hls.wait_timeout(HLS_TAIL)),
        );
        complete(
            &what("ffprobe HTTP-TS"),
            &ProbeRun::from_finished(self.probe_ts.wait_timeout(TS_TAIL)),
        );
        decodes(
            &what("decode HLS"),
            &DecodeReport::from_finished(self.decode_hls.wait_timeout(HLS_TAIL)),
        );
        decodes(
            &what("decode HTTP-TS (.live.ts)"),
            &DecodeReport::from_finished(self.decode_ts.wait_timeout(TS_TAIL)),
        );
        assert_no_ts_problems(&what("HLS demux"), &self.check_hls.wait_timeout(HLS_TAIL));
        assert_no_ts_problems(&what("HTTP-TS demux"), &self.check_ts.wait_timeout(TS_TAIL));
    }
}

fn assert_no_ts_problems(what: &str, finished: &Finished) {
    assert!(
        finished.success(),
        "{what}: ffmpeg failed: {}",
        finished.describe()
    );
    let problems = probe::ts_problems(finished);
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

fn assert_published(what: &str, publisher: Finished, server: &Server) {
    assert!(
        publisher.success(),
        "{what}: publish failed: {}\nserver log:\n{}",
        publisher.describe(),
        server.log_text()
    );
}

#[test]
fn rtmp_publish_plays_over_hls_and_http_ts() {
    let clip = Clip::AudioVideo;
    clip.source();
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &[]);
        let path = stream_path("hlsrtmp", index);
        let players = Players::start(&server, &path);
        std::thread::sleep(PLAYERS_SETTLE);
        let publisher = media::publish(clip, &server.rtmp_url(&path), &[]);
        assert_published(
            &binary.display().to_string(),
            publisher.wait_timeout(PLAYER_DEADLINE),
            &server,
        );
        players.finish(
            &|player| format!("{} rtmp publish, {player}", binary.display()),
            &|what, run| assert_matches_source_as(what, run, clip, Delivery::Ts),
            &|what, decode| assert_clean_decode(what, decode, clip),
        );
    }
}

#[test]
fn rtsp_publish_plays_over_hls_and_http_ts() {
    for clip in [Clip::Camera, Clip::Hevc] {
        clip.source();
        for (index, binary) in server_binaries().iter().enumerate() {
            let server = Server::start(binary, &[]);
            let path = stream_path(
                &format!("hlsrtsp{}", clip.video_codec().unwrap_or("")),
                index,
            );
            let players = Players::start(&server, &path);
            std::thread::sleep(PLAYERS_SETTLE);
            let publisher = media::publish_rtsp(clip, &server.rtsp_url(&path), "tcp");
            assert_published(
                &binary.display().to_string(),
                publisher.wait_timeout(PLAYER_DEADLINE),
                &server,
            );
            let ingest = Ingest::FfmpegRtsp;
            players.finish(
                &|player| format!("{} {clip:?} rtsp publish, {player}", binary.display()),
                &|what, run| assert_complete_via_rtp(what, run, clip, Delivery::Ts, ingest),
                &|what, decode| assert_decodes_via_rtp(what, decode, clip, ingest),
            );
        }
    }
}

/// The playlist and segments as documents: content types, caching, CORS, HEAD, a playlist
/// that waits for its first segment, 404s for what does not exist, and a publisher that
/// comes back under the same name continuing the playlist after a discontinuity.
#[test]
fn hls_documents_wait_restart_and_404() {
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &["--play-wait-ms", "8000"]);
        let path = stream_path("hlsdocs", index);
        let port = server.http_port;
        let playlist_path = format!("{path}/index.m3u8");
        // Asked before anything is published: the answer comes once the first segment exists.
        let waiting = std::thread::spawn(move || http::get(port, &playlist_path, PLAYER_DEADLINE));
        std::thread::sleep(PLAYERS_SETTLE);
        let first = media::publish(Clip::AudioVideo, &server.rtmp_url(&path), &["-t", "4"]);
        let playlist = waiting.join().expect("playlist request");
        let what = binary.display();
        assert_eq!(playlist.status, 200, "{what}: {playlist:?}");
        assert!(
            playlist.elapsed >= Duration::from_millis(1500),
            "{what}: the playlist was answered before a 2 s segment could exist"
        );
        assert_eq!(
            playlist.header("content-type"),
            Some("application/vnd.apple.mpegurl")
        );
        assert_eq!(playlist.header("cache-control"), Some("no-cache"));
        assert!(playlist.header("access-control-allow-origin").is_some());
        let text = playlist.text();
        assert!(text.starts_with("#EXTM3U\n"), "{what}: {text}");
        assert!(text.contains("#EXT-X-TARGETDURATION:"), "{what}: {text}");
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{what}: {text}");
        let segment = text
            .lines()
            .find(|line| line.ends_with(".ts"))
            .unwrap_or_else(|| panic!("{what}: no segment in {text}"))
            .to_owned();
        let got = http::get(port, &format!("{path}/{segment}"), PLAYER_DEADLINE);
        assert_eq!(got.status, 200, "{what}: segment {segment}");
        assert_eq!(got.header("content-type"), Some("video/mp2t"));
        assert_eq!(got.body.len() % 188, 0, "{what}: whole TS packets");
        assert_eq!(got.body.first(), Some(&0x47));
        assert_eq!(
            got.header("content-length"),
            Some(got.body.len().to_string().as_str())
        );
        let head = http::request("HEAD", port, &format!("{path}/{segment}"), PLAYER_DEADLINE);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty(), "{what}: HEAD has no body");
        assert_eq!(
            head.header("content-length"),
            got.header("content-length"),
            "{what}: HEAD gives the length"
        );
        for missing in [
            format!("{path}/999999.ts"),
            format!("{path}/00.ts"),
            "live/nothing-here/1.ts".to_string(),
            format!("{path}/index.html"),
        ] {
            let reply = http::get(port, &missing, PLAYER_DEADLINE);
            assert_eq!(reply.status, 404, "{what}: {missing}");
        }
        assert_published(
            &what.to_string(),
            first.wait_timeout(PLAYER_DEADLINE),
            &server,
        );

        // The same name again: the playlist goes on, with a discontinuity.
        let second = media::publish(Clip::AudioVideo, &server.rtmp_url(&path), &["-t", "5"]);
        assert_published(
            &what.to_string(),
            second.wait_timeout(PLAYER_DEADLINE),
            &server,
        );
        let text = http::get(port, &format!("{path}/hls.m3u8"), PLAYER_DEADLINE).text();
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n"),
            "{what}: no discontinuity after the restart:\n{text}"
        );
        let sequences: Vec<u64> = text
            .lines()
            .filter_map(|line| line.strip_suffix(".ts")?.parse().ok())
            .collect();
        assert!(
            sequences.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "{what}: segment numbers continue: {sequences:?}"
        );
        assert!(
            sequences.len() >= 3,
            "{what}: both publishes' segments: {text}"
        );

        // Nobody publishes this one: after the play wait, a 404.
        let short = Server::start(binary, &["--play-wait-ms", "1000"]);
        let reply = http::get(
            short.http_port,
            "live/never/index.m3u8",
            Duration::from_secs(10),
        );
        assert_eq!(reply.status, 404, "{what}: unpublished playlist");
        assert!(reply.elapsed >= Duration::from_millis(900));
    }
}

/// `--hls-dir` writes each stream's segments and playlist under `{dir}/{app}/{stream}/`.
#[test]
fn hls_segments_are_written_to_the_directory() {
    for (index, binary) in server_binaries().iter().enumerate() {
        let dir =
            std::env::temp_dir().join(format!("mediakit-hls-dir-{}-{index}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let server = Server::start(binary, &["--hls-dir", &dir.to_string_lossy()]);
        let path = stream_path("hlsdir", index);
        let publisher = media::publish(Clip::AudioVideo, &server.rtmp_url(&path), &[]);
        assert_published(
            &binary.display().to_string(),
            publisher.wait_timeout(PLAYER_DEADLINE),
            &server,
        );
        let stream_dir = dir.join(&path);
        // The writer thread is asynchronous: give it a moment.
        std::thread::sleep(Duration::from_millis(500));
        let playlist = std::fs::read_to_string(stream_dir.join("index.m3u8"))
            .unwrap_or_else(|error| panic!("{}: {error}", stream_dir.display()));
        let served = http::get(
            server.http_port,
            &format!("{path}/index.m3u8"),
            PLAYER_DEADLINE,
        );
        assert_eq!(playlist, served.text(), "the file is the served playlist");
        let decode = probe::decode_check(
            &stream_dir.join("index.m3u8").to_string_lossy(),
            &[],
            PLAYER_DEADLINE,
        );
        assert_clean_decode(
            &format!("{} decode of the written HLS", binary.display()),
            &decode,
            Clip::AudioVideo,
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
