//! HLS on virtual time: a playlist asked for before its stream exists is answered at the
//! instant the first segment is cut (woken, not polled) or refused exactly at
//! `play_wait_ms`; one byte budget holds every stream's segments, lingering ones included;
//! lingering streams are forgotten at `linger_ms`; a publisher that returns within it
//! continues the media sequence after a discontinuity; the directory mirror (`[hls] dir`)
//! holds what the catalog holds, and forgotten streams leave neither files nor directories.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{client_ip, done};
use mediakit_sim::clients::{
    http_get, publish_rtmp, Client, FrameId, HttpResponse, MediaSpec, PublishOptions, Track,
};
use mediakit_sim::server::{server_config, SimServer};
use mediakit_sim::{JoinHandle, Millis, World};

/// A GET of `path` spawned now, after `delay_ms`.
fn get(from: IpAddr, server: SocketAddr, path: &str, delay_ms: u64) -> JoinHandle<HttpResponse> {
    let path = path.to_owned();
    mediakit_sim::spawn(async move {
        mediakit_sim::sleep(delay_ms).await;
        http_get(from, server, &path).await.unwrap()
    })
}

/// Runs until `request` is answered; its response.
fn answer(world: &World, request: &JoinHandle<HttpResponse>) -> HttpResponse {
    assert!(world.run_until(|| request.is_finished(), 60_000));
    request.take().unwrap()
}

/// When `publisher` sent video frame `seq`.
fn sent_at(publisher: &Client, seq: u64) -> Millis {
    let id = FrameId {
        kind: Track::Video,
        seq,
    };
    let log = publisher.log();
    let at = log.sent().find(|(_, sent)| *sent == id).unwrap().0;
    at
}

/// A playlist's media sequence, its segments (number, and whether a discontinuity precedes
/// it), and whether it ends.
#[derive(Debug, PartialEq, Eq)]
struct Playlist {
    media_sequence: u64,
    segments: Vec<(u64, bool)>,
    ended: bool,
}

fn parse(text: &str) -> Playlist {
    assert!(text.starts_with("#EXTM3U\n"), "{text:?}");
    let mut playlist = Playlist {
        media_sequence: u64::MAX,
        segments: Vec::new(),
        ended: false,
    };
    let mut discontinuity = false;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            playlist.media_sequence = value.parse().unwrap();
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if line == "#EXT-X-ENDLIST" {
            playlist.ended = true;
        } else if let Some(number) = line.strip_suffix(".ts") {
            playlist
                .segments
                .push((number.parse().unwrap(), std::mem::take(&mut discontinuity)));
        }
    }
    let numbers: Vec<u64> = playlist.segments.iter().map(|(n, _)| *n).collect();
    let expected: Vec<u64> =
        (playlist.media_sequence..playlist.media_sequence + numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "segments follow the media sequence");
    playlist
}

const WAIT_MS: u64 = 5_000;

#[test]
fn a_playlist_asked_for_early_is_answered_when_the_first_segment_is_cut() {
    let world = World::new(31);
    let mut config = server_config();
    config.hub.play_wait_ms = WAIT_MS;
    let server = SimServer::start(&world, config).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());

    // One request on each worker, before the publisher starts at 1 s.
    let early = [
        get(client_ip(1), http, "/live/cam/index.m3u8", 100),
        get(client_ip(2), http, "/live/cam/index.m3u8", 150),
    ];
    let never = get(client_ip(3), http, "/live/never/index.m3u8", 200);
    let publisher = publish_rtmp(PublishOptions {
        start_delay_ms: 1_000,
        video_frames: 150,
        ..PublishOptions::new(client_ip(4), rtmp, "live", "cam")
    });
    let early = early.map(|request| answer(&world, &request));
    assert_eq!(world.listener_loads(http), [2, 1]);

    // Segments are cut at the first keyframe 2 s in: video frame 50.
    let cut = sent_at(&publisher, 50);
    assert_eq!(cut, publisher.log().started_at().unwrap() + 2_000);
    for response in &early {
        assert_eq!(response.status, 200);
        assert_eq!(
            response.at, cut,
            "answered at the instant the segment was cut (asked at {:?})",
            response.sent
        );
        let playlist = parse(&response.text());
        assert_eq!(playlist.media_sequence, 0);
        assert_eq!(playlist.segments, [(0, false)]);
        assert!(!playlist.ended);
    }
    let never = answer(&world, &never);
    assert_eq!(never.status, 404);
    assert_eq!(
        never.at,
        never.sent + WAIT_MS,
        "refused exactly at play_wait_ms"
    );

    // Once the stream has a playlist, it is served at once, and its segments are there.
    let late = answer(&world, &get(client_ip(5), http, "/live/cam/index.m3u8", 0));
    assert_eq!((late.status, late.at), (200, late.sent));
    let segment = answer(&world, &get(client_ip(6), http, "/live/cam/0.ts", 0));
    assert_eq!(segment.status, 200);
    assert_eq!(segment.body.len() % 188, 0);
    assert_eq!(segment.body.first(), Some(&0x47));
    assert!(world.run_until(|| done(&publisher), 10_000));
}

/// One second GOPs and one second segments.
fn one_second_gops() -> MediaSpec {
    MediaSpec {
        keyframe_interval: 25,
        ..MediaSpec::default()
    }
}

/// The most bytes one segment of `spec` can take: one second of its largest frames, each in
/// TS packets with room for its PES header, access unit delimiter, parameter sets or ADTS
/// header and adaptation field (100 bytes is more than all of them), plus the PAT and PMT.
fn segment_bound(spec: &MediaSpec) -> usize {
    let packets = |payload: usize| (payload + 100).div_ceil(184) * 188;
    let video_frames = spec.fps as usize;
    let audio_frames = 48;
    packets(spec.keyframe_bytes.1)
        + (video_frames - 1) * packets(spec.frame_bytes.1)
        + audio_frames * packets(spec.audio_bytes.1)
        + 2 * 188
}

/// Publishers of streams s0..s11, one a second, each for 3.2 s: three or four live at a
/// time, each wanting about four segments.
fn publish_in_turn(rtmp: SocketAddr, spec: &MediaSpec) -> Vec<Client> {
    (0..PUBLISHERS)
        .map(|n| {
            publish_rtmp(PublishOptions {
                media: spec.clone(),
                video_frames: 80,
                start_delay_ms: u64::from(n) * 1_000,
                ..PublishOptions::new(client_ip(n), rtmp, "live", &format!("s{n}"))
            })
        })
        .collect()
}

const BUDGET: usize = 800_000;
const LINGER_MS: u64 = 4_000;
const PUBLISHERS: u32 = 12;

#[test]
fn one_budget_holds_every_streams_segments_and_lingering_streams_are_forgotten() {
    let world = World::new(32);
    let mut config = server_config();
    config.hls.target_duration_ms = 1_000;
    config.hls.window = 3;
    config.hls.max_total_bytes = BUDGET;
    config.hls.linger_ms = LINGER_MS;
    let server = SimServer::start(&world, config).unwrap();
    let rtmp = server.rtmp_addr().unwrap();
    let spec = one_second_gops();
    let bound = segment_bound(&spec);

    let publishers = publish_in_turn(rtmp, &spec);
    let live_at = |at: Millis| {
        publishers
            .iter()
            .filter(|p| {
                let log = p.log();
                log.started_at().is_some_and(|s| s <= at)
                    && log.closed().is_none_or(|(c, _)| c > at)
            })
            .count()
    };
    let kept_without_budget = |at: Millis| {
        publishers
            .iter()
            .filter(|p| {
                let log = p.log();
                log.started_at().is_some_and(|s| s <= at)
                    && log.closed().is_none_or(|(c, _)| c + LINGER_MS > at)
            })
            .count()
    };

    let mut over_budget = 0;
    let mut forgotten_early = 0;
    let mut most = 0;
    while !publishers.iter().all(done) {
        world.run_for(20);
        let (at, stats) = (world.now(), server.stats());
        let live = live_at(at);
        assert!(
            stats.hls_bytes <= BUDGET + live * bound,
            "at {at:?}: {} bytes kept, {live} live streams",
            stats.hls_bytes
        );
        assert!(stats.hls_streams <= kept_without_budget(at), "at {at:?}");
        over_budget += usize::from(stats.hls_bytes > BUDGET);
        forgotten_early += usize::from(stats.hls_streams < kept_without_budget(at));
        most = most.max(stats.hls_bytes);
    }
    // The budget was at work: totals beyond it (each live stream's newest segment), and
    // lingering streams forgotten before their time.
    assert!(
        over_budget > 0 && forgotten_early > 0,
        "{over_budget} {forgotten_early}"
    );
    assert!(most > BUDGET / 2);

    // The last stream lingers for exactly linger_ms after its publisher stopped.
    let (stopped, _) = publishers.last().unwrap().log().closed().unwrap();
    let last = format!("/live/s{}/index.m3u8", PUBLISHERS - 1);
    let http = server.http_addr().unwrap();
    let lingering = get(
        client_ip(100),
        http,
        &last,
        stopped.0 + LINGER_MS - 1 - world.now().0,
    );
    let lingering = answer(&world, &lingering);
    assert_eq!(lingering.status, 200);
    assert!(parse(&lingering.text()).ended);
    assert_eq!(server.stats().hls_streams, 1);
    assert!(server.stats().hls_bytes > 0);
    world.run_for(1);
    assert_eq!(world.now(), stopped + LINGER_MS);
    assert_eq!(server.stats().hls_streams, 0);
    assert_eq!(server.stats().hls_bytes, 0);
}

#[test]
fn a_publisher_returning_within_the_linger_continues_the_media_sequence() {
    let world = World::new(33);
    let mut config = server_config();
    config.hls.target_duration_ms = 1_000;
    config.hls.linger_ms = LINGER_MS;
    let server = SimServer::start(&world, config).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
    let spec = one_second_gops();
    let publish = |n: u32, frames: u64| {
        publish_rtmp(PublishOptions {
            media: spec.clone(),
            video_frames: frames,
            ..PublishOptions::new(client_ip(n), rtmp, "live", "cam")
        })
    };
    let playlist = |n: u32| {
        let response = answer(&world, &get(client_ip(n), http, "/live/cam/index.m3u8", 0));
        assert_eq!(response.status, 200);
        parse(&response.text())
    };

    // 2.5 s: segments 0 and 1, and 2 closed by the stop.
    let first = publish(1, 62);
    assert!(world.run_until(|| done(&first), 10_000));
    let (stopped, _) = first.log().closed().unwrap();
    world.run_for(500);
    let parked = playlist(10);
    assert_eq!(parked.segments, [(0, false), (1, false), (2, false)]);
    assert!(parked.ended, "a parked stream's playlist ends");

    // Back 1 s after the stop, within the linger: the end tag goes at once...
    world.run_for(500);
    let second = publish(2, 75);
    assert!(world.run_until(|| second.log().started_at().is_some(), 1_000));
    assert_eq!(second.log().started_at(), Some(stopped + 1_000));
    let resumed = playlist(11);
    assert_eq!(resumed.segments, parked.segments);
    assert!(!resumed.ended);
    // ...and the next segments follow on, after a discontinuity.
    world.run_for(2_500);
    let continued = playlist(12);
    assert_eq!(continued.media_sequence, 0);
    assert_eq!(
        continued.segments,
        [(0, false), (1, false), (2, false), (3, true), (4, false)]
    );
    let segment = answer(&world, &get(client_ip(13), http, "/live/cam/3.ts", 0));
    assert_eq!(segment.status, 200);

    // Back after the linger: a new stream, from 0.
    assert!(world.run_until(|| done(&second), 10_000));
    let (stopped, _) = second.log().closed().unwrap();
    assert!(world.run_until(|| server.stats().hls_streams == 0, 10_000));
    assert_eq!(world.now(), stopped + LINGER_MS);
    let third = publish(3, 50);
    world.run_for(1_500);
    let fresh = playlist(14);
    assert_eq!(
        (fresh.media_sequence, fresh.segments),
        (0, vec![(0, false)])
    );
    assert!(world.run_until(|| done(&third), 10_000));
}

/// Polls (in real time: the directory writer is a thread of its own) until `check` holds;
/// whether it did within ten seconds.
fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..1_000 {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    check()
}

/// The names in a directory, sorted; empty if it does not exist.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn the_directory_follows_the_budget_and_forgotten_streams_leave_nothing_behind() {
    let root = std::env::temp_dir().join(format!("mediakit-sim-hls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let world = World::new(34);
    let mut config = server_config();
    config.hls.target_duration_ms = 1_000;
    config.hls.window = 3;
    config.hls.max_total_bytes = BUDGET;
    config.hls.linger_ms = LINGER_MS;
    config.hls.dir = Some(root.clone());
    let server = SimServer::start(&world, config).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
    let publishers = publish_in_turn(rtmp, &one_second_gops());
    assert!(world.run_until(|| publishers.iter().all(done), 30_000));

    // A millisecond before the last stream's linger ends, it is the only one left, on disk
    // as in memory: its playlist, and every segment it keeps (those the playlist lists among
    // them), none of the streams forgotten for the budget or at their linger's end.
    let (stopped, _) = publishers.last().unwrap().log().closed().unwrap();
    world.run_for((stopped + LINGER_MS - 1).saturating_since(world.now()));
    assert_eq!(server.stats().hls_streams, 1);
    let last = format!("s{}", PUBLISHERS - 1);
    let playlist = answer(
        &world,
        &get(client_ip(100), http, &format!("/live/{last}/index.m3u8"), 0),
    );
    let listed = parse(&playlist.text());
    let stream_dir = root.join("live").join(&last);
    let on_disk = || std::fs::read(stream_dir.join("index.m3u8")).ok();
    assert!(
        eventually(|| {
            names(&root.join("live")) == [last.clone()]
                && on_disk().as_deref() == Some(&playlist.body[..])
        }),
        "{:?}: {:?}",
        names(&root.join("live")),
        names(&stream_dir)
    );
    let files = names(&stream_dir);
    for (sequence, _) in &listed.segments {
        assert!(files.contains(&format!("{sequence}.ts")), "{files:?}");
    }
    for file in files.iter().filter(|name| name.ends_with(".ts")) {
        let path = format!("/live/{last}/{file}");
        let segment = answer(&world, &get(client_ip(101), http, &path, 0));
        assert_eq!(segment.status, 200, "{file} is on disk and kept");
        assert_eq!(std::fs::read(stream_dir.join(file)).unwrap(), segment.body);
    }
    assert!(world.now() < stopped + LINGER_MS);

    // Its linger over, its directory goes, and the application's with it.
    world.run_for((stopped + LINGER_MS).saturating_since(world.now()));
    assert_eq!(server.stats().hls_streams, 0);
    assert!(
        eventually(|| names(&root).is_empty()),
        "{:?}",
        names(&root.join("live"))
    );
    let _ = std::fs::remove_dir_all(&root);
}
