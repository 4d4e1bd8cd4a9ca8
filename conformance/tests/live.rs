//! Live tests: the real server binaries driven by ffmpeg and ffprobe over RTMP and HTTP-FLV.
//!
//! Each test starts its own server (on free loopback ports) for every binary in
//! `server_binaries()`, so tests run in parallel without sharing state. Every child process
//! has a deadline and is killed by its PID when it overruns (see `probe::Proc`), so a hang
//! shows up as a failed assertion, never as a stuck suite.
//!
//! Reference: the source clip's own ffprobe packet list. `ffmpeg -re -c copy` from FLV to RTMP
//! keeps every packet and timestamp, RTMP and FLV both carry millisecond timestamps, so a
//! player that joined before the publish must see exactly the same packets.
//!
//! Tolerances: none on packet counts, dts, pts, sizes or keyframe flags for players that were
//! there from the start (exact equality per stream after subtracting the first dts of that
//! stream, and the audio/video offset exactly preserved). Timing windows are stated at each
//! assertion.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mediakit_conformance::check::{
    assert_clean_decode, assert_codecs, assert_matches_source, assert_source_tail, stream_path,
};
use mediakit_conformance::media::{self, Clip};
use mediakit_conformance::probe::{self, DecodeReport, ProbeRun, StreamKind};
use mediakit_conformance::server::{server_binaries, Server};

/// Long enough for a 6 s real-time clip plus startup, short enough to fail a hang quickly.
const PLAYER_DEADLINE: Duration = Duration::from_secs(20);
/// Time for players to connect and issue their play request before the publisher starts.
const PLAYERS_SETTLE: Duration = Duration::from_millis(1000);

/// A player started before the publisher, over RTMP and over HTTP-FLV (both URL forms), gets
/// exactly the source's packets and decodes them without a single error.
#[test]
fn play_before_publish_gets_every_packet() {
    let clip = Clip::AudioVideo;
    clip.source();
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &[]);
        let path = stream_path("pbp", index);
        let rtmp = server.rtmp_url(&path);
        let http = server.http_url(&format!("{path}.flv"));
        let http_live = server.http_url(&format!("{path}.live.flv"));
        let probe_rtmp = probe::spawn_probe(&rtmp, &[]);
        let probe_http = probe::spawn_probe(&http, &[]);
        let decode_rtmp = probe::spawn_decode(&rtmp, &[]);
        let decode_http = probe::spawn_decode(&http_live, &[]);
        std::thread::sleep(PLAYERS_SETTLE);
        let publisher = media::publish(clip, &rtmp, &[]).wait_timeout(PLAYER_DEADLINE);
        server.assert_published(&binary.display().to_string(), &publisher);

        let what = |player: &str| format!("{} {player}", binary.display());
        // Players end when the publisher does; 5 s covers the server noticing and closing.
        let tail = Duration::from_secs(5);
        assert_matches_source(
            &what("ffprobe RTMP"),
            &ProbeRun::from_finished(probe_rtmp.wait_timeout(tail)),
            clip,
        );
        assert_matches_source(
            &what("ffprobe HTTP-FLV"),
            &ProbeRun::from_finished(probe_http.wait_timeout(tail)),
            clip,
        );
        assert_clean_decode(
            &what("ffmpeg decode RTMP"),
            &DecodeReport::from_finished(decode_rtmp.wait_timeout(tail)),
            clip,
        );
        assert_clean_decode(
            &what("ffmpeg decode HTTP-FLV (.live.flv)"),
            &DecodeReport::from_finished(decode_http.wait_timeout(tail)),
            clip,
        );
    }
}

/// Video-only and audio-only streams (published at once, on two names of one server) reach
/// RTMP and HTTP-FLV players complete, with no phantom stream of the missing kind.
#[test]
fn single_track_streams_play_complete() {
    for clip in [Clip::VideoOnly, Clip::AudioOnly] {
        clip.source();
    }
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &[]);
        let mut runs = Vec::new();
        for (clip, name) in [(Clip::VideoOnly, "vonly"), (Clip::AudioOnly, "aonly")] {
            let path = stream_path(name, index);
            let rtmp = server.rtmp_url(&path);
            let http = server.http_url(&format!("{path}.flv"));
            let players = [
                probe::spawn_probe(&rtmp, &[]),
                probe::spawn_probe(&http, &[]),
            ];
            runs.push((clip, rtmp, players));
        }
        std::thread::sleep(PLAYERS_SETTLE);
        let publishers: Vec<_> = runs
            .iter()
            .map(|(clip, rtmp, _)| media::publish(*clip, rtmp, &[]))
            .collect();
        for publisher in publishers {
            let publisher = publisher.wait_timeout(PLAYER_DEADLINE);
            server.assert_published(&binary.display().to_string(), &publisher);
        }
        for (clip, _, players) in runs {
            for (player, protocol) in players.into_iter().zip(["RTMP", "HTTP-FLV"]) {
                let run = ProbeRun::from_finished(player.wait_timeout(Duration::from_secs(5)));
                assert_matches_source(
                    &format!("{} {clip:?} ffprobe {protocol}", binary.display()),
                    &run,
                    clip,
                );
            }
        }
    }
}

/// A late joiner (1.5 s into the stream, i.e. half a GOP after the keyframe at 1 s) starts with
/// the codec configuration and a keyframe, and then gets a contiguous tail of the source.
#[test]
fn late_joiner_starts_on_a_keyframe() {
    let clip = Clip::AudioVideo;
    let source = clip.source();
    let source_video = source.of(StreamKind::Video);
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &[]);
        let path = stream_path("late", index);
        let rtmp = server.rtmp_url(&path);
        let http = server.http_url(&format!("{path}.flv"));
        let publisher = media::publish(clip, &rtmp, &[]);
        std::thread::sleep(Duration::from_millis(1500));
        let players = [
            probe::spawn_probe(&rtmp, &[]),
            probe::spawn_probe(&http, &[]),
        ];
        let publisher = publisher.wait_timeout(PLAYER_DEADLINE);
        assert!(publisher.success(), "publisher: {}", publisher.describe());
        for (player, protocol) in players.into_iter().zip(["RTMP", "HTTP-FLV"]) {
            let what = format!("{} late joiner {protocol}", binary.display());
            let run = ProbeRun::from_finished(player.wait_timeout(Duration::from_secs(5)));
            let report = run.expect_ok(&what);
            assert_codecs(&what, report, true, true);
            let video = report.of(StreamKind::Video);
            let first = video
                .first()
                .unwrap_or_else(|| panic!("{what}: no video packets"));
            assert!(
                first.keyframe,
                "{what}: first video packet is not a keyframe: {first:?}"
            );
            // It really joined late: at least the first GOP (25 frames) is missing.
            assert!(
                video.len() + 25 <= source_video.len(),
                "{what}: got {} video packets of {}, so it did not join late",
                video.len(),
                source_video.len()
            );
            // From its first keyframe on, it got the source's tail, packet for packet.
            assert_source_tail(&what, report, source);
        }
    }
}

/// Sends a raw HTTP GET and returns the status code and how long the answer took.
fn http_status(port: u16, path: &str, timeout: Duration) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP port");
    stream
        .set_read_timeout(Some(timeout))
        .expect("set read timeout");
    let request =
        format!("GET /{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok());
    (status, started.elapsed())
}

/// With `--play-wait-ms 1000`, a play of a stream nobody publishes waits about a second and then
/// fails with the protocol's own error: an RTMP error status (ffmpeg logs it as "Server error")
/// and HTTP 404.
#[test]
fn play_of_missing_stream_times_out() {
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &["--play-wait-ms", "1000"]);
        let path = stream_path("nobody", index);
        let rtmp_player = probe::spawn_probe(&server.rtmp_url(&path), &[]);
        let (status, elapsed) = http_status(
            server.http_port,
            &format!("{path}.flv"),
            Duration::from_secs(8),
        );
        let what = format!("{} HTTP GET of a missing stream", binary.display());
        eprintln!("{what}: status {status:?} after {elapsed:?}");
        assert_eq!(status, Some(404), "{what}: status after {elapsed:?}");
        // Lower bound: it did wait for a publisher; upper bound: 1 s wait + 2 s slack.
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed <= Duration::from_secs(3),
            "{what}: answered after {elapsed:?}, want 1-3 s"
        );

        let finished = rtmp_player.wait_timeout(Duration::from_secs(8));
        let what = format!("{} RTMP play of a missing stream", binary.display());
        eprintln!("{what}: {}", finished.describe());
        assert!(
            !finished.timed_out() && !finished.success(),
            "{what}: want a non-zero exit: {}",
            finished.describe()
        );
        // ffprobe's own startup is included here, hence 0.5 s more slack than for HTTP.
        assert!(
            finished.elapsed >= Duration::from_millis(900)
                && finished.elapsed <= Duration::from_millis(3500),
            "{what}: failed after {:?}, want about 1-3 s: {}",
            finished.elapsed,
            finished.describe()
        );
        // ffmpeg prints "Server error: ..." for an onStatus of level "error" (such as
        // NetStream.Play.StreamNotFound); a dropped connection would read differently.
        assert!(
            finished.stderr.contains("Server error"),
            "{what}: no RTMP error status: {}",
            finished.describe()
        );
    }
}

/// A second publisher of a live name is rejected quickly, and the first keeps flowing: a player
/// that joins after the rejection receives a steadily increasing stream to the end.
#[test]
fn second_publisher_is_rejected() {
    let clip = Clip::AudioVideo;
    let source = clip.source();
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &[]);
        let path = stream_path("dup", index);
        let rtmp = server.rtmp_url(&path);
        let mut first = media::publish(clip, &rtmp, &[]);
        std::thread::sleep(Duration::from_millis(1000));
        let second = media::publish(clip, &rtmp, &[]).wait_timeout(Duration::from_secs(5));
        let what = format!("{} second publisher", binary.display());
        eprintln!("{what}: {}", second.describe());
        assert!(
            !second.timed_out() && !second.success(),
            "{what}: want a quick non-zero exit: {}",
            second.describe()
        );
        assert!(
            second.elapsed < Duration::from_secs(3),
            "{what}: rejected only after {:?}",
            second.elapsed
        );
        assert!(
            !first.has_exited(),
            "{what}: the first publisher stopped when the second was rejected"
        );

        let player = probe::spawn_probe(&rtmp, &[]);
        let first = first.wait_timeout(PLAYER_DEADLINE);
        assert!(
            first.success(),
            "{} first publisher: {}\nserver log:\n{}",
            binary.display(),
            first.describe(),
            server.log_text()
        );
        let what = format!("{} player after the rejection", binary.display());
        let run = ProbeRun::from_finished(player.wait_timeout(Duration::from_secs(5)));
        let report = run.expect_ok(&what);
        let video = report.of(StreamKind::Video);
        // The player joined ~1.1 s in, so about 4.9 s (over 100 frames) remain; ask for 3 s.
        assert!(
            video.len() >= 75,
            "{what}: only {} video packets",
            video.len()
        );
        assert!(
            video.first().is_some_and(|p| p.keyframe),
            "{what}: first video packet is not a keyframe"
        );
        for kind in [StreamKind::Video, StreamKind::Audio] {
            let dts = report.relative_dts(kind);
            assert!(
                dts.windows(2).all(|w| w[0] < w[1]),
                "{what}: {kind:?} dts not strictly increasing: {dts:?}"
            );
        }
        // Contiguous from its first keyframe to the end of the source: the first publisher was
        // neither cut off nor interrupted by the rejected one.
        assert_source_tail(&what, report, source);
    }
}

/// When the publisher finishes, its players (RTMP and HTTP-FLV) end by themselves, cleanly,
/// within a few seconds.
#[test]
fn publisher_stop_ends_players() {
    let clip = Clip::AudioVideo;
    clip.source();
    for (index, binary) in server_binaries().iter().enumerate() {
        let server = Server::start(binary, &[]);
        let path = stream_path("stop", index);
        let rtmp = server.rtmp_url(&path);
        let http = server.http_url(&format!("{path}.flv"));
        let players = [
            probe::spawn_decode(&rtmp, &[]),
            probe::spawn_decode(&http, &[]),
        ];
        std::thread::sleep(PLAYERS_SETTLE);
        // Two seconds of media are enough to show the players ending.
        let publisher = media::publish(clip, &rtmp, &["-t", "2"]).wait_timeout(PLAYER_DEADLINE);
        assert!(publisher.success(), "publisher: {}", publisher.describe());
        let stopped = Instant::now();
        for (player, protocol) in players.into_iter().zip(["RTMP", "HTTP-FLV"]) {
            let what = format!(
                "{} {protocol} player after the publisher stopped",
                binary.display()
            );
            // 4 s from the publisher's exit (the budget counts from `stopped`, shared by both).
            let budget = Duration::from_secs(4).saturating_sub(stopped.elapsed());
            let decode = DecodeReport::from_finished(player.wait_timeout(budget));
            eprintln!(
                "{what}: ended {:?} after the publisher: {}",
                stopped.elapsed(),
                decode.finished.describe()
            );
            assert!(
                !decode.finished.timed_out(),
                "{what}: still playing {:?} after the publisher ended",
                stopped.elapsed()
            );
            assert!(
                decode.finished.success() && decode.error_lines.is_empty(),
                "{what}: did not end cleanly: {}",
                decode.finished.describe()
            );
            assert!(
                decode.video_frames >= 25 && decode.audio_frames >= 40,
                "{what}: decoded only {} video / {} audio frames",
                decode.video_frames,
                decode.audio_frames
            );
        }
    }
}

/// The server closes a hostile connection: returns how long after `since` the read saw EOF or
/// an error, or `None` if the connection was still open after `timeout`.
fn wait_closed(stream: &mut TcpStream, since: Instant, timeout: Duration) -> Option<Duration> {
    let deadline = since + timeout;
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buffer) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue, // S0/S1/S2 or anything else the server sends first
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if Instant::now() >= deadline {
                    return None;
                }
            }
            Err(_) => return Some(since.elapsed()), // reset: closed with our bytes unread
        }
    }
}

/// Deterministic garbage (xorshift), never starting with an RTMP version byte (3 or 6).
fn garbage(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    if matches!(bytes.first(), Some(3 | 6)) {
        bytes[0] = 0xEE;
    }
    bytes
}

/// What a hostile connection did and how the server answered.
#[derive(Debug)]
struct Hostile {
    kind: &'static str,
    closed_after: Option<Duration>,
}

fn hostile_garbage(addr: std::net::SocketAddr) -> Hostile {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    // A write may fail once the server has closed: that is the outcome we want.
    let _ = stream.write_all(&garbage(4096));
    Hostile {
        kind: "garbage",
        closed_after: wait_closed(&mut stream, started, Duration::from_secs(5)),
    }
}

fn hostile_truncated_handshake(addr: std::net::SocketAddr) -> Hostile {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(0x5A, 1536 / 2));
    let _ = stream.write_all(&c0c1);
    Hostile {
        kind: "truncated handshake",
        closed_after: wait_closed(&mut stream, started, Duration::from_secs(5)),
    }
}

fn hostile_oversized_message(addr: std::net::SocketAddr) -> Hostile {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set read timeout");
    // C0 = 3, C1 = time(4) + zero(4) + 1528 bytes: zeros in bytes 4..8 select the plain scheme.
    let mut c0c1 = vec![3u8, 0, 0, 0, 0, 0, 0, 0, 0];
    c0c1.extend((0..1528).map(|i| (i * 7 + 1) as u8));
    stream.write_all(&c0c1).expect("send C0C1");
    let mut s0s1s2 = vec![0u8; 1 + 1536 + 1536];
    stream
        .read_exact(&mut s0s1s2)
        .expect("read S0S1S2: the server must complete a plain handshake");
    assert_eq!(s0s1s2[0], 3, "S0 version");
    stream
        .write_all(&s0s1s2[1..1 + 1536])
        .expect("send C2 = S1");
    // fmt 0 on chunk stream 3: timestamp 0, message length 0xFFFFFF (16 MiB, above the 1 MiB
    // configured bound), type 20 (AMF0 command), message stream 0; then some payload.
    let mut chunk = vec![0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
    chunk.extend(std::iter::repeat_n(0x05, 128));
    let sent = Instant::now();
    let _ = stream.write_all(&chunk);
    Hostile {
        kind: "oversized message",
        closed_after: wait_closed(&mut stream, sent, Duration::from_secs(5)),
    }
}

/// Garbage, a truncated handshake and an oversized chunk message each get their own
/// connection closed, while a normal player on the same server keeps getting every packet and
/// the server keeps running.
#[test]
fn hostile_connections_are_closed_alone() {
    let clip = Clip::AudioVideo;
    clip.source();
    let config_dir = media::cache_dir();
    let config: PathBuf = config_dir.join(format!("hostile-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[rtmp]\nhandshake_timeout_ms = 1000\nmax_message_bytes = 1048576\n",
    )
    .expect("write the config file");
    for (index, binary) in server_binaries().iter().enumerate() {
        let mut server = Server::start(binary, &["--config", &config.to_string_lossy()]);
        let path = stream_path("hostile", index);
        let rtmp = server.rtmp_url(&path);
        let player = probe::spawn_probe(&rtmp, &[]);
        std::thread::sleep(PLAYERS_SETTLE);
        let publisher = media::publish(clip, &rtmp, &[]);
        std::thread::sleep(Duration::from_millis(1000));

        // Two of each, at once, so that both workers (the kernel spreads connections over the
        // listeners) are likely to see each kind while they carry the stream.
        let addr = server.rtmp_addr();
        let attacks: Vec<std::thread::JoinHandle<Hostile>> = (0..2)
            .flat_map(|_| {
                [
                    std::thread::spawn(move || hostile_garbage(addr)),
                    std::thread::spawn(move || hostile_truncated_handshake(addr)),
                    std::thread::spawn(move || hostile_oversized_message(addr)),
                ]
            })
            .collect();
        for attack in attacks {
            let hostile = attack.join().expect("hostile client thread");
            let what = format!("{} {} connection", binary.display(), hostile.kind);
            eprintln!("{what}: closed after {:?}", hostile.closed_after);
            let closed = hostile.closed_after.unwrap_or_else(|| {
                panic!(
                    "{what}: still open after 5 s\nserver log:\n{}",
                    server.log_text()
                )
            });
            // Garbage and an oversized declared length are errors the moment they are read, so
            // they must close before the 1 s handshake timeout could be what closed them; the
            // truncated handshake can only be closed by that timeout (1 s, with 2 s slack).
            let limit = if hostile.kind == "truncated handshake" {
                Duration::from_secs(3)
            } else {
                Duration::from_millis(900)
            };
            assert!(
                closed <= limit,
                "{what}: closed after {closed:?}, want at most {limit:?}"
            );
            if hostile.kind == "truncated handshake" {
                assert!(
                    closed >= Duration::from_millis(900),
                    "{what}: closed after {closed:?}, before the 1 s handshake timeout"
                );
            }
        }

        let publisher = publisher.wait_timeout(PLAYER_DEADLINE);
        server.assert_published(&binary.display().to_string(), &publisher);
        let run = ProbeRun::from_finished(player.wait_timeout(Duration::from_secs(5)));
        assert_matches_source(
            &format!("{} player beside the hostile connections", binary.display()),
            &run,
            clip,
        );
        assert!(
            server.is_running(),
            "{}: the server exited\nlog:\n{}",
            binary.display(),
            server.log_text()
        );
    }
    let _ = std::fs::remove_file(&config);
}
