//! A proptest over random scenarios on the real engine: a few stream names; publishers that
//! run a random number of frames, then stop, drop their connection or go idle (and are
//! closed for it), and restart under the same name; RTMP and HTTP-FLV players that join and
//! leave at random times, some of them stalling with small receive buffers; floods (garbage,
//! slowloris, RTSP requests and RTMP pings sent back to back and never read, HTTP-FLV and
//! HLS playlist requests never read, UDP junk at the RTP ports); and random small server
//! limits. Join, leave and stall times are often drawn from a few instants on the frame
//! grid, so that they coincide with each other and with frames.
//!
//! Every 5 virtual milliseconds the server's gauges are checked against bounds derived from
//! the engine's code (see [`Bounds`]). At the end: every healthy player received exactly
//! what its publish sent after it started playing, up to the end, in order and intact; every
//! player's frames are intact and consecutive; a player is refused only if its stream was
//! neither live nor published within its wait; stalled players, idle publishers and hostile
//! clients were closed by their deadlines; the gauges are back at zero; and a stopped server
//! leaves no connection and no task. A panic in any engine task fails the case, since the
//! tasks run on the simulation's executor on the test's thread.
//!
//! `PROPTEST_CASES` sets the number of cases (24 by default) and `PROPTEST_RNG_SEED` picks
//! another sequence of them (the default sequence is fixed); `SCENARIO_TRACE=1` (with
//! `--nocapture`) prints a line per case. The fixed cases at the end are engine bugs the
//! property found (fixed since), kept as regression tests.

mod common;

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use common::client_ip;
use mediakit_core::http::MAX_HEAD_BYTES;
use mediakit_core::http_live::HttpLiveSession;
use mediakit_core::rtmp::client::{ClientMode, RtmpClientConfig};
use mediakit_core::rtmp::handshake::HANDSHAKE_SIZE;
use mediakit_core::rtmp::server::{RtmpServerConfig, RtmpServerSession};
use mediakit_core::rtsp::server::{RtspServerConfig, RtspServerSession};
use mediakit_core::session::{LiveSession, Rejection, SessionEvent};
use mediakit_sim::clients::{
    play_http_flv, play_rtmp, publish_rtmp, raw_tcp, udp_flood, Client, ClientLog, Event,
    MediaSpec, PlayOptions, PublishEnd, PublishOptions, RawTcpOptions, Track, UdpFloodOptions,
    AUDIO_RATE,
};
use mediakit_sim::net::tcp::READ_SIZE;
use mediakit_sim::server::{server_config, ServerConfig, SimServer, Stats};
use mediakit_sim::{Millis, World};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

/// Virtual milliseconds between two samples of the server's gauges.
const SAMPLE_MS: u64 = 5;
/// Stream names the scenarios use.
const STREAMS: [&str; 3] = ["s0", "s1", "s2"];
/// Where the UDP junk goes: the first RTP/RTCP pairs of `server_config`'s range.
const RTP_BASE: u16 = 30_000;
/// A margin for checks whose two sides happen in the same virtual instant in principle
/// (the simulated network has no latency); it only keeps the checks off exact ties.
const MARGIN_MS: u64 = 50;
/// The video frame interval of the synthetic stream (25 fps), on which scenario times are
/// often drawn.
const FRAME_GRID_MS: u64 = 40;

/// Bytes of replies one read from a well-behaved simulated client can earn: the RTMP
/// handshake's S0+S1+S2 (`1 + 2 * 1536`) for C0+C1, and, should C2 and `connect` share a read
/// with them, the answers to one command (window, bandwidth and chunk-size control messages
/// of a dozen bytes and an AMF `_result` or `onStatus` of a few hundred: under 1 KiB); an
/// HTTP response head or an HLS playlist of a few segments is smaller.
const CLIENT_REPLIES: usize = 1 + 2 * HANDSHAKE_SIZE + 1024;
/// Bytes a session may queue on its own after the player path reached its threshold:
/// RTMP's end of stream (two `onStatus` objects and a `StreamEOF`) or HTTP's last chunk.
const CONTROL: usize = 2048;
/// Framing of one media item beyond its payload, in the worst of the two outputs: RTMP's
/// first chunk header (basic 3 + message 11 + extended timestamp 4) plus the FLV video tag
/// header (5), or HTTP-FLV's tag header (11) + video tag header (5) + previous-tag size (4)
/// + the HTTP chunk's size line and CRLFs (8 hex digits + 4).
const ITEM_FRAMING: usize = 64;
/// Each further RTMP chunk of a message adds a type-3 header: basic header (up to 3) and
/// extended timestamp (4).
const CHUNK_CONTINUATION: usize = 7;
/// The smallest allocation `BytesMut` makes when a shared buffer is copied out: its
/// "original capacity", capped at 64 KiB by the `bytes` crate.
const BYTES_ORIGINAL_CAPACITY_MAX: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// Which listener a raw client connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Rtmp,
    Http,
    Rtsp,
}

/// The server limits a scenario runs with, within the ranges `ServerConfig::validate` takes.
#[derive(Debug, Clone)]
struct Limits {
    workers: usize,
    send_timeout_ms: u64,
    max_output_backlog: usize,
    /// 0: no per-address limit. Only the floods share an address.
    max_connections_per_ip: usize,
    play_wait_ms: u64,
    handshake_timeout_ms: u64,
    request_timeout_ms: u64,
    session_timeout_ms: u64,
    publish_idle_timeout_ms: u64,
    chunk_size: u32,
    /// Player queue limits beyond what one GOP and a burst need (see [`reader_limits`]).
    reader_extra_items: usize,
    reader_extra_bytes: usize,
    reader_max_overflows: u32,
}

/// One publish of a stream; a stream's publishes follow each other.
#[derive(Debug, Clone)]
struct PublishPlan {
    /// After the previous publish's last frame (or the start).
    gap_ms: u64,
    video_frames: u64,
    /// Stop, drop the connection, or stay connected sending nothing (the server then closes
    /// it `publish_idle_timeout_ms` after its last frame).
    end: PublishEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Healthy,
    /// Stops reading this long after playing started.
    Stall(u64),
    /// Leaves this long after playing started.
    Leave(u64),
}

#[derive(Debug, Clone)]
struct PlayerPlan {
    stream: usize,
    http: bool,
    start_ms: u64,
    receive_buffer: Option<usize>,
    behaviour: Behaviour,
}

#[derive(Debug, Clone)]
enum Flood {
    /// Random bytes at once.
    Garbage {
        to: Proto,
        bytes: Vec<u8>,
        read: bool,
        start_ms: u64,
    },
    /// A request (RTMP: C0 and C1) that never completes, a byte at a time.
    Slowloris {
        to: Proto,
        pieces: usize,
        interval_ms: u64,
        start_ms: u64,
    },
    /// An RTMP handshake, optionally a Window Acknowledgement Size of 1 byte, then Ping
    /// Requests back to back, never reading a reply.
    Pings {
        pings: usize,
        tiny_ack_window: bool,
        receive_buffer: usize,
        start_ms: u64,
    },
    /// RTSP OPTIONS back to back, never reading a reply.
    Pipeline {
        requests: usize,
        receive_buffer: usize,
        start_ms: u64,
    },
    /// An HTTP-FLV or HLS playlist request (for a scenario stream or an unknown one) whose
    /// client never reads.
    NoReadGet {
        stream: Option<usize>,
        playlist: bool,
        receive_buffer: usize,
        start_ms: u64,
    },
    /// Junk at an RTP/RTCP port.
    Udp {
        port: u16,
        payload: usize,
        burst: u32,
        duration_ms: u64,
        start_ms: u64,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    limits: Limits,
    keyframe_interval: u32,
    media_seed: u64,
    /// Per stream, its publishes in order.
    publishes: Vec<Vec<PublishPlan>>,
    players: Vec<PlayerPlan>,
    floods: Vec<Flood>,
}

impl Scenario {
    fn spec(&self) -> MediaSpec {
        MediaSpec {
            keyframe_interval: self.keyframe_interval,
            seed: self.media_seed,
            ..MediaSpec::default()
        }
    }
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        (1usize..=2, 500u64..=4_000, 64usize * 1024..=1 << 20),
        (prop_oneof![Just(0usize), 1usize..=4], 200u64..=4_000),
        (
            1_000u64..=5_000,
            1_000u64..=5_000,
            1_000u64..=5_000,
            500u64..=3_000,
        ),
        prop_oneof![Just(60_000u32), 128u32..=65_536],
        (0usize..=256, 0usize..=256 * 1024, 1u32..=4),
    )
        .prop_map(
            |(
                (workers, send_timeout_ms, max_output_backlog),
                (max_connections_per_ip, play_wait_ms),
                (
                    handshake_timeout_ms,
                    request_timeout_ms,
                    session_timeout_ms,
                    publish_idle_timeout_ms,
                ),
                chunk_size,
                (reader_extra_items, reader_extra_bytes, reader_max_overflows),
            )| Limits {
                workers,
                send_timeout_ms,
                max_output_backlog,
                max_connections_per_ip,
                play_wait_ms,
                handshake_timeout_ms,
                request_timeout_ms,
                session_timeout_ms,
                publish_idle_timeout_ms,
                chunk_size,
                reader_extra_items,
                reader_extra_bytes,
                reader_max_overflows,
            },
        )
}

/// A publish; its gap is a whole number of frame intervals, so every publish of a scenario
/// starts, and sends its video frames, on one grid.
fn publish_plan() -> impl Strategy<Value = PublishPlan> {
    let end = prop_oneof![
        Just(PublishEnd::Stop),
        Just(PublishEnd::Disconnect),
        Just(PublishEnd::Stay)
    ];
    (5u64..=40, 25u64..=75, end).prop_map(|(gap, video_frames, end)| PublishPlan {
        gap_ms: gap * FRAME_GRID_MS,
        video_frames,
        end,
    })
}

/// A player. Its join, stall and leave times are drawn either freely or from `hot`, a few
/// instants on the video frame grid shared by the scenario, so that joins, leaves, stalls
/// and frames often fall in the same instant (the interleavings most likely to go wrong).
fn player(streams: usize, hot: Vec<u64>) -> impl Strategy<Value = PlayerPlan> {
    // (whether the instant is hot, the draw)
    let instant = |free: std::ops::RangeInclusive<u64>, hot: Vec<u64>| {
        prop_oneof![
            free.prop_map(|ms| (false, ms)),
            proptest::sample::select(hot).prop_map(|ms| (true, ms)),
        ]
    };
    (
        (0..streams, any::<bool>()),
        instant(0..=8_000, hot.clone()),
        prop_oneof![Just(None), (2usize * 1024..=256 * 1024).prop_map(Some)],
        // Healthy, stalling or leaving, 3:1:1.
        prop_oneof![3 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        instant(0..=4_000, hot),
        2usize * 1024..=64 * 1024,
    )
        .prop_map(
            |((stream, http), (_, start_ms), receive_buffer, kind, (hot, until), small)| {
                // A hot instant after the start is reached by stalling or leaving then
                // (counted from the start of playing, which is the join for a live stream);
                // a free draw, or a hot instant before the start, is a duration.
                let after = if hot && until > start_ms {
                    until - start_ms
                } else {
                    until % 4_000
                };
                let behaviour = match kind {
                    0 => Behaviour::Healthy,
                    1 => Behaviour::Stall(after),
                    _ => Behaviour::Leave(after),
                };
                PlayerPlan {
                    stream,
                    http,
                    start_ms,
                    // Stalled players get a small receive buffer, so they stall soon.
                    receive_buffer: match behaviour {
                        Behaviour::Stall(_) => Some(small),
                        _ => receive_buffer,
                    },
                    behaviour,
                }
            },
        )
}

fn proto() -> impl Strategy<Value = Proto> {
    prop_oneof![Just(Proto::Rtmp), Just(Proto::Http), Just(Proto::Rtsp)]
}

fn flood(streams: usize) -> impl Strategy<Value = Flood> {
    prop_oneof![
        (
            proto(),
            proptest::collection::vec(any::<u8>(), 1..2_048),
            any::<bool>(),
            0u64..=8_000
        )
            .prop_map(|(to, bytes, read, start_ms)| Flood::Garbage {
                to,
                bytes,
                read,
                start_ms
            }),
        (proto(), 10usize..=80, 100u64..=400, 0u64..=5_000).prop_map(
            |(to, pieces, interval_ms, start_ms)| Flood::Slowloris {
                to,
                pieces,
                interval_ms,
                start_ms
            }
        ),
        (
            1_000usize..=50_000,
            any::<bool>(),
            1_024usize..=16 * 1024,
            0u64..=5_000
        )
            .prop_map(|(pings, tiny_ack_window, receive_buffer, start_ms)| {
                Flood::Pings {
                    pings,
                    tiny_ack_window,
                    receive_buffer,
                    start_ms,
                }
            }),
        // Up to 3 MB of replies: more than any connection may hold, were it read regardless.
        (100usize..=20_000, 1_024usize..=16 * 1024, 0u64..=5_000).prop_map(
            |(requests, receive_buffer, start_ms)| Flood::Pipeline {
                requests,
                receive_buffer,
                start_ms
            }
        ),
        (
            prop_oneof![Just(None), (0..streams).prop_map(Some)],
            any::<bool>(),
            1_024usize..=16 * 1024,
            0u64..=10_000
        )
            .prop_map(
                |(stream, playlist, receive_buffer, start_ms)| Flood::NoReadGet {
                    stream,
                    playlist,
                    receive_buffer,
                    start_ms
                }
            ),
        (
            0u16..4,
            12usize..=1_400,
            1u32..=200,
            10u64..=500,
            0u64..=10_000
        )
            .prop_map(|(port, payload, burst, duration_ms, start_ms)| Flood::Udp {
                port,
                payload,
                burst,
                duration_ms,
                start_ms
            }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let hot = proptest::collection::vec((0u64..=200).prop_map(|k| k * FRAME_GRID_MS), 1..=4);
    (1usize..=3, hot).prop_flat_map(|(streams, hot)| {
        (
            any::<u64>(),
            limits(),
            prop_oneof![Just(10u32), Just(25u32), Just(50u32)],
            any::<u64>(),
            proptest::collection::vec(proptest::collection::vec(publish_plan(), 1..=3), streams),
            proptest::collection::vec(player(streams, hot), 0..=20),
            proptest::collection::vec(flood(streams), 0..=6),
        )
            .prop_map(
                |(seed, limits, keyframe_interval, media_seed, publishes, players, floods)| {
                    Scenario {
                        seed,
                        limits,
                        keyframe_interval,
                        media_seed,
                        publishes,
                        players,
                        floods,
                    }
                },
            )
    })
}

// ---------------------------------------------------------------------------------------
// Bounds
// ---------------------------------------------------------------------------------------

/// The largest number of items and payload bytes of one GOP of `spec` as a new player's queue
/// is seeded with it (the hub's GOP snapshot: both configurations, under 1 KiB, and every
/// frame since the last keyframe, audio included), plus a burst a healthy player may find
/// queued between two of its wake-ups (a few items published in one instant, two keyframes'
/// worth of bytes). Player queue limits at least this big never make a healthy player skip:
/// it drains its queue at every wake-up. Smaller limits are valid, but then a healthy player
/// joining mid-GOP skips to the next keyframe by design, and "loses no frame" would not hold.
fn gop_need(spec: &MediaSpec) -> (usize, usize) {
    const BURST_ITEMS: usize = 16;
    let ki = spec.keyframe_interval as usize;
    let gop_ms = ki * 1000 / spec.fps as usize;
    let audio = gop_ms * AUDIO_RATE as usize / 1024 / 1000 + 2;
    let items = 2 + ki + audio + BURST_ITEMS;
    let bytes = 1024
        + spec.keyframe_bytes.1
        + (ki - 1) * spec.frame_bytes.1
        + audio * spec.audio_bytes.1
        + 2 * spec.keyframe_bytes.1;
    (items, bytes)
}

fn reader_limits(spec: &MediaSpec, limits: &Limits) -> (usize, usize) {
    let (items, bytes) = gop_need(spec);
    (
        items + limits.reader_extra_items,
        bytes + limits.reader_extra_bytes,
    )
}

/// What the engine lets one connection hold, from `server/src/engine/connection.rs` and
/// `core/src/guard.rs`.
///
/// A connection's footprint (`Conn::measure`) is its session's queued output
/// (`transmit().queued_bytes()`), the capacity of its input buffer and its datagram queues.
///
/// **Output.** The loop reads only while `guard.may_read`: output (+ datagrams) below
/// `B = max_output_backlog_bytes`. One read takes at most `R = READ_SIZE` bytes (16 KiB in
/// the simulation) and the session answers everything complete in its input at once, so a
/// read adds at most `burst` bytes of replies on top of less than `B`. A player takes media
/// from its hub queue only while `guard.wants_media`: output below
/// `H = GuardConfig::player_high_water` (512 KiB, or `B` if that is less), one whole encoded item at
/// a time, so media adds at most one `item` on top of less than `H`. After either, the
/// session may queue `CONTROL` bytes on its own (end of stream). So
///
/// `out = max(B - 1 + burst, H - 1 + item) + CONTROL`
///
/// with `item = K + ITEM_FRAMING + CHUNK_CONTINUATION * ceil((K + 5) / chunk_size)` for the
/// largest keyframe payload `K`, and `burst` the largest of: [`CLIENT_REPLIES`]; for the
/// RTSP pipeliner, `floor((R + q_max - 1) / q_min) * reply_max` (a partial request under
/// `q_max` bytes left from the last read plus `R` new bytes hold at most that many requests
/// of at least `q_min` bytes, each answered by at most `reply_max` bytes, both measured by
/// running the core's `RtspServerSession` on the pipeliner's requests); for every garbage,
/// slowloris or ping-flood client, the replies the core's session for its port gives to all
/// it sends at once (for the ping flood: the handshake's answer, an Acknowledgement for
/// every 4 KiB, and as many Ping Responses as one instant allows, as in any one read).
///
/// **Input.** The footprint counts the input buffer's capacity. The loop reads only while
/// the unparsed input is below `P = GuardConfig::max_pending_input` (1 MiB, not
/// configurable), and each session parses whole units and leaves only an incomplete one: an
/// RTMP chunk (a header of at most 18 bytes and the peer's chunk size: 60 000 for the
/// simulation's publisher), the RTMP handshake (C0+C1+C2), an HTTP head (under
/// `MAX_HEAD_BYTES`, else an error), an RTSP request, or no more than a flood sent in all.
/// With `S` the largest of these (at most `P - 1`), the buffer holds `needed <= S + R` bytes
/// after a read. The engine reads with `BytesMut::extend_from_slice`, which (bytes 1.x,
/// `reserve_inner`) grows only when fewer than the bytes read fit after the data
/// (`capacity < needed`); it then either moves the data back to the front of the same
/// allocation, or allocates `max(2 * allocation, offset + needed)` where
/// `allocation = offset + capacity` and the front offset is below `needed` (otherwise the
/// move would have been chosen), so under `4 * needed`; a buffer still shared with frames
/// split off it is copied into `max(needed, original capacity <= 64 KiB)`. The capacity
/// reported never exceeds the allocation. So
///
/// `input = max(4 * (S + R), 64 KiB)`
///
/// (in general `S = P - 1`: the input is not a fixed buffer, only the guard's threshold).
///
/// **Datagrams.** No client of these scenarios claims UDP ports, and a datagram from no
/// routed peer is dropped before anything is allocated for it: 0.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    out: usize,
    input: usize,
}

impl Bounds {
    fn per_connection(&self) -> usize {
        self.out + self.input
    }
}

/// What the core's session of `proto`, configured as the engine configures it, queues in
/// answer to `bytes` received at once, a request it hands the server being refused (as an
/// unknown stream would be).
fn replies(proto: Proto, bytes: &[u8], config: &ServerConfig) -> usize {
    fn run<S: LiveSession>(mut session: S, bytes: &[u8]) -> usize {
        let mut input = BytesMut::from(bytes);
        let _ = session.handle_input(Millis(0), &mut input);
        while let Some(event) = session.poll_event() {
            if matches!(
                event,
                SessionEvent::PlayRequested { .. }
                    | SessionEvent::PublishRequested { .. }
                    | SessionEvent::ResourceRequested { .. }
            ) {
                session.reject(Rejection::NotFound);
            }
        }
        session.transmit().queued_bytes()
    }
    match proto {
        Proto::Rtmp => {
            let rtmp = RtmpServerConfig {
                chunk_size: config.rtmp.chunk_size,
                max_message_len: config.rtmp.max_message_bytes,
                setup_timeout_ms: config.rtmp.handshake_timeout_ms,
                publish_idle_timeout_ms: config.rtmp.publish_idle_timeout_ms,
            };
            run(RtmpServerSession::new(rtmp, Millis(0), 1), bytes)
        }
        Proto::Http => run(
            HttpLiveSession::with_head_timeout(Millis(0), config.http.request_timeout_ms),
            bytes,
        ),
        Proto::Rtsp => {
            let rtsp = RtspServerConfig {
                session_timeout_ms: config.rtsp.session_timeout_ms,
                ..RtspServerConfig::default()
            };
            run(RtspServerSession::new(rtsp, Millis(0), 1), bytes)
        }
    }
}

fn bounds(scenario: &Scenario, config: &ServerConfig) -> Bounds {
    let guard = config.guard_config();
    let spec = scenario.spec();
    let backlog = config.server.max_output_backlog_bytes;
    let keyframe = spec.keyframe_bytes.1;
    let chunk = config.rtmp.chunk_size as usize;
    let item = keyframe + ITEM_FRAMING + CHUNK_CONTINUATION * (keyframe + 5).div_ceil(chunk);

    let mut burst = CLIENT_REPLIES;
    let mut flood_bytes = 0;
    for flood in &scenario.floods {
        match flood {
            Flood::Garbage { to, bytes, .. } => {
                burst = burst.max(replies(*to, bytes, config));
                flood_bytes = flood_bytes.max(bytes.len());
            }
            Flood::Slowloris { to, pieces, .. } => {
                let all: Vec<u8> = slowloris_pieces(*to, *pieces).concat();
                burst = burst.max(replies(*to, &all, config));
                flood_bytes = flood_bytes.max(all.len());
            }
            Flood::Pings {
                pings,
                tiny_ack_window,
                ..
            } => {
                // All of it at once: the handshake's answer, every Acknowledgement it earns
                // and the most Ping Responses one instant allows; a read takes part of it.
                let all = rtmp_pings(*pings, *tiny_ack_window).concat();
                burst = burst.max(replies(Proto::Rtmp, &all, config));
                // Each message is consumed whole; the handshake is the largest unit.
                flood_bytes = flood_bytes.max(1 + 2 * HANDSHAKE_SIZE);
            }
            Flood::Pipeline { requests, .. } => {
                let first = options_request(0);
                let last = options_request(requests.saturating_sub(1));
                let (q_min, q_max) = (first.len(), last.len());
                let reply_max = replies(Proto::Rtsp, &last, config);
                burst = burst.max((READ_SIZE + q_max - 1) / q_min * reply_max);
                flood_bytes = flood_bytes.max(q_max);
            }
            Flood::NoReadGet {
                stream, playlist, ..
            } => {
                flood_bytes = flood_bytes.max(no_read_get(*stream, *playlist).len());
            }
            Flood::Udp { .. } => {}
        }
    }
    let out = (backlog - 1 + burst).max(guard.player_high_water - 1 + item) + CONTROL;

    let publisher_chunk = RtmpClientConfig::new(ClientMode::Publish, "live", "s0", "rtmp://x/live")
        .chunk_size as usize;
    let retained = (18 + publisher_chunk)
        .max(1 + 2 * HANDSHAKE_SIZE)
        .max(MAX_HEAD_BYTES)
        .max(flood_bytes)
        .min(guard.max_pending_input - 1);
    let input = (4 * (retained + READ_SIZE)).max(BYTES_ORIGINAL_CAPACITY_MAX);
    Bounds { out, input }
}

/// Checks one sample of the gauges against the bounds.
fn check_sample(stats: &Stats, bounds: &Bounds, at: Millis) {
    assert!(
        stats.largest_connection_bytes <= bounds.per_connection(),
        "at {at:?}: a connection held {} bytes, bound {} ({bounds:?})",
        stats.largest_connection_bytes,
        bounds.per_connection()
    );
    let n = stats.connections;
    assert!(
        stats.output_bytes <= n * bounds.out,
        "at {at:?}: {} bytes of output queued on {n} connections, bound {} each",
        stats.output_bytes,
        bounds.out
    );
    assert!(
        stats.input_bytes <= n * bounds.input,
        "at {at:?}: {} bytes of input held on {n} connections, bound {} each",
        stats.input_bytes,
        bounds.input
    );
    assert_eq!(
        stats.datagram_bytes, 0,
        "at {at:?}: datagrams held with no UDP session"
    );
    assert!(
        stats.output_bytes + stats.input_bytes + stats.datagram_bytes
            <= n * bounds.per_connection(),
        "at {at:?}: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Flood payloads
// ---------------------------------------------------------------------------------------

fn options_request(cseq: usize) -> Vec<u8> {
    format!("OPTIONS rtsp://127.0.0.1:8554/live/s0 RTSP/1.0\r\nCSeq: {cseq}\r\n\r\n").into_bytes()
}

/// C0+C1+C2 (the server does not check C2), a Window Acknowledgement Size of 1 if asked,
/// and `pings` Ping Requests, each a whole chunk on chunk stream 2.
fn rtmp_pings(pings: usize, tiny_ack_window: bool) -> Vec<Vec<u8>> {
    let mut handshake = vec![3u8];
    handshake.resize(1 + 2 * HANDSHAKE_SIZE, 0);
    let mut pieces = vec![handshake];
    let control = |type_id: u8, payload: &[u8]| {
        // Basic header (fmt 0, chunk stream 2), timestamp 0, 24-bit length, type, message
        // stream 0 (little-endian), then the payload.
        let mut chunk = vec![0x02, 0, 0, 0];
        chunk.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        chunk.push(type_id);
        chunk.extend_from_slice(&0u32.to_le_bytes());
        chunk.extend_from_slice(payload);
        chunk
    };
    if tiny_ack_window {
        pieces.push(control(5, &1u32.to_be_bytes()));
    }
    for n in 0..pings {
        // User Control event 6 (Ping Request) with a timestamp.
        let mut payload = vec![0, 6];
        payload.extend_from_slice(&(n as u32).to_be_bytes());
        pieces.push(control(4, &payload));
    }
    pieces
}

fn no_read_get(stream: Option<usize>, playlist: bool) -> Vec<u8> {
    let name = stream.map_or("nosuch", |s| STREAMS[s]);
    let path = if playlist {
        format!("/live/{name}/index.m3u8")
    } else {
        format!("/live/{name}.flv")
    };
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

/// A start that never completes: the beginning of a request (RTMP: C0), then one byte per
/// piece of a header line (RTMP: of C1) that never ends.
fn slowloris_pieces(to: Proto, pieces: usize) -> Vec<Vec<u8>> {
    let head: &[u8] = match to {
        Proto::Rtmp => &[3],
        Proto::Http => b"GET /live/s0.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        Proto::Rtsp => b"OPTIONS rtsp://127.0.0.1/live/s0 RTSP/1.0\r\nCSeq: 1\r\nX-Slow: ",
    };
    std::iter::once(head.to_vec())
        .chain(std::iter::repeat_n(b"a".to_vec(), pieces))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Running a scenario
// ---------------------------------------------------------------------------------------

/// A publish as it ran.
struct Publish {
    stream: usize,
    plan: PublishPlan,
    client: Client,
}

struct Player {
    plan: PlayerPlan,
    client: Client,
}

struct FloodClient {
    plan: Flood,
    client: Client,
}

fn server_limits(scenario: &Scenario) -> ServerConfig {
    let limits = &scenario.limits;
    let mut config = server_config();
    config.server.workers = limits.workers;
    config.server.send_timeout_ms = limits.send_timeout_ms;
    config.server.max_output_backlog_bytes = limits.max_output_backlog;
    config.server.max_connections_per_ip = limits.max_connections_per_ip;
    config.rtmp.chunk_size = limits.chunk_size;
    config.rtmp.handshake_timeout_ms = limits.handshake_timeout_ms;
    config.http.request_timeout_ms = limits.request_timeout_ms;
    config.rtsp.session_timeout_ms = limits.session_timeout_ms;
    config.rtmp.publish_idle_timeout_ms = limits.publish_idle_timeout_ms;
    config.hub.play_wait_ms = limits.play_wait_ms;
    let (items, bytes) = reader_limits(&scenario.spec(), limits);
    config.hub.reader_max_items = items;
    config.hub.reader_max_bytes = bytes;
    config.hub.reader_max_overflows = limits.reader_max_overflows;
    config
        .validate()
        .unwrap_or_else(|error| panic!("generated an invalid config: {error}"));
    config
}

/// How long the engine may take to close a connection of `proto` that never completes its
/// setup: the session's own setup deadline (RTSP's is not configurable: 15 s).
fn setup_deadline_ms(proto: Proto, config: &ServerConfig) -> u64 {
    match proto {
        Proto::Rtmp => config.rtmp.handshake_timeout_ms,
        Proto::Http => config.http.request_timeout_ms,
        Proto::Rtsp => RtspServerConfig::default().setup_timeout_ms,
    }
}

/// The longest a stream of `spec` takes to fill `buffer` bytes toward a player that stopped
/// reading: at the stream's lowest rate (smallest inter frames and audio frames), plus two
/// frame intervals for where the stall fell between frames.
fn fill_ms(spec: &MediaSpec, buffer: usize) -> u64 {
    let frame_ms = 1000 / u64::from(spec.fps);
    // Bytes per second at the lowest rate.
    let video = spec.frame_bytes.0 as u64 * u64::from(spec.fps);
    let audio = spec.audio_bytes.0 as u64 * u64::from(AUDIO_RATE) / 1024;
    (buffer as u64 * 1000).div_ceil(video + audio) + 2 * frame_ms
}

/// Runs one scenario to the end, checking as it goes; panics on a violation.
fn run(scenario: &Scenario) {
    let world = World::new(scenario.seed);
    let config = server_limits(scenario);
    let bounds = bounds(scenario, &config);
    let spec = scenario.spec();
    let server = SimServer::start(&world, config.clone()).expect("server starts");
    let (rtmp, http, rtsp) = (
        server.rtmp_addr().unwrap(),
        server.http_addr().unwrap(),
        server.rtsp_addr().unwrap(),
    );
    let addr_of = |proto| match proto {
        Proto::Rtmp => rtmp,
        Proto::Http => http,
        Proto::Rtsp => rtsp,
    };
    let t0 = world.now();
    let mut planned_end = 0u64;

    // Publishers, one stream's after another's end.
    let mut publishes = Vec::new();
    for (stream, plans) in scenario.publishes.iter().enumerate() {
        let mut at = 0u64;
        for plan in plans {
            at += plan.gap_ms;
            let n = publishes.len() as u32;
            let client = publish_rtmp(PublishOptions {
                media: spec.clone(),
                video_frames: plan.video_frames,
                start_delay_ms: at,
                end: plan.end,
                ..PublishOptions::new(client_ip(100 + n), rtmp, "live", STREAMS[stream])
            });
            at += plan.video_frames * 1000 / u64::from(spec.fps);
            if plan.end == PublishEnd::Stay {
                at += config.rtmp.publish_idle_timeout_ms;
            }
            publishes.push(Publish {
                stream,
                plan: plan.clone(),
                client,
            });
        }
        planned_end = planned_end.max(at);
    }

    let players: Vec<Player> = scenario
        .players
        .iter()
        .enumerate()
        .map(|(n, plan)| {
            let server = if plan.http { http } else { rtmp };
            let options = PlayOptions {
                media: spec.clone(),
                start_delay_ms: plan.start_ms,
                receive_buffer: plan.receive_buffer,
                stall_after_ms: match plan.behaviour {
                    Behaviour::Stall(ms) => Some(ms),
                    _ => None,
                },
                leave_after_ms: match plan.behaviour {
                    Behaviour::Leave(ms) => Some(ms),
                    _ => None,
                },
                ..PlayOptions::new(
                    client_ip(200 + n as u32),
                    server,
                    "live",
                    STREAMS[plan.stream],
                )
            };
            planned_end = planned_end.max(plan.start_ms + config.hub.play_wait_ms);
            let client = if plan.http {
                play_http_flv(options)
            } else {
                play_rtmp(options)
            };
            Player {
                plan: plan.clone(),
                client,
            }
        })
        .collect();

    // Every flood comes from the same address, the only one the per-address limit can bite.
    let flood_ip = client_ip(1_000);
    let floods: Vec<FloodClient> = scenario
        .floods
        .iter()
        .map(|plan| {
            let raw = |to: SocketAddr, send: Vec<Vec<u8>>| {
                RawTcpOptions::new(flood_ip, to, send.into_iter().map(Bytes::from).collect())
            };
            let client = match plan {
                Flood::Garbage {
                    to,
                    bytes,
                    read,
                    start_ms,
                } => raw_tcp(RawTcpOptions {
                    read: *read,
                    start_delay_ms: *start_ms,
                    ..raw(addr_of(*to), vec![bytes.clone()])
                }),
                Flood::Slowloris {
                    to,
                    pieces,
                    interval_ms,
                    start_ms,
                } => {
                    planned_end = planned_end.max(start_ms + *pieces as u64 * interval_ms);
                    raw_tcp(RawTcpOptions {
                        interval_ms: *interval_ms,
                        start_delay_ms: *start_ms,
                        ..raw(addr_of(*to), slowloris_pieces(*to, *pieces))
                    })
                }
                Flood::Pings {
                    pings,
                    tiny_ack_window,
                    receive_buffer,
                    start_ms,
                } => raw_tcp(RawTcpOptions {
                    read: false,
                    receive_buffer: Some(*receive_buffer),
                    start_delay_ms: *start_ms,
                    ..raw(rtmp, rtmp_pings(*pings, *tiny_ack_window))
                }),
                Flood::Pipeline {
                    requests,
                    receive_buffer,
                    start_ms,
                } => raw_tcp(RawTcpOptions {
                    read: false,
                    receive_buffer: Some(*receive_buffer),
                    start_delay_ms: *start_ms,
                    ..raw(rtsp, (0..*requests).map(options_request).collect())
                }),
                Flood::NoReadGet {
                    stream,
                    playlist,
                    receive_buffer,
                    start_ms,
                } => raw_tcp(RawTcpOptions {
                    read: false,
                    receive_buffer: Some(*receive_buffer),
                    start_delay_ms: *start_ms,
                    ..raw(http, vec![no_read_get(*stream, *playlist)])
                }),
                Flood::Udp {
                    port,
                    payload,
                    burst,
                    duration_ms,
                    start_ms,
                } => udp_flood(UdpFloodOptions {
                    payload_bytes: *payload,
                    burst: *burst,
                    interval_ms: 1,
                    duration_ms: *duration_ms,
                    start_delay_ms: *start_ms,
                    ..UdpFloodOptions::new(
                        SocketAddr::new(flood_ip, 0),
                        SocketAddr::new(config.server.bind, RTP_BASE + port),
                    )
                }),
            };
            let start = match plan {
                Flood::Garbage { start_ms, .. }
                | Flood::Slowloris { start_ms, .. }
                | Flood::Pings { start_ms, .. }
                | Flood::Pipeline { start_ms, .. }
                | Flood::NoReadGet { start_ms, .. }
                | Flood::Udp { start_ms, .. } => *start_ms,
            };
            planned_end = planned_end.max(start);
            FloodClient {
                plan: plan.clone(),
                client,
            }
        })
        .collect();

    // Run, sampling the gauges, until every client is done or the last deadline passed.
    let longest_deadline = [
        config.rtmp.handshake_timeout_ms,
        config.http.request_timeout_ms,
        RtspServerConfig::default().setup_timeout_ms,
        config.hub.play_wait_ms,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let horizon = t0 + planned_end + longest_deadline + 2 * config.server.send_timeout_ms + 5_000;
    let all: Vec<&Client> = publishes
        .iter()
        .map(|p| &p.client)
        .chain(players.iter().map(|p| &p.client))
        .chain(floods.iter().map(|f| &f.client))
        .collect();
    loop {
        world.run_for(SAMPLE_MS);
        check_sample(&server.stats(), &bounds, world.now());
        if all.iter().all(|client| client.is_finished()) || world.now() >= horizon {
            break;
        }
    }

    let unfinished: Vec<String> = publishes
        .iter()
        .map(|p| (format!("publish of {}", STREAMS[p.stream]), &p.client))
        .chain(
            players
                .iter()
                .enumerate()
                .map(|(n, p)| (format!("player {n} {:?}", p.plan), &p.client)),
        )
        .chain(
            floods
                .iter()
                .enumerate()
                .map(|(n, f)| (format!("flood {n}"), &f.client)),
        )
        .filter(|(_, client)| !client.is_finished())
        .map(|(what, client)| format!("{what}: {}", summary(&client.log())))
        .collect();
    assert!(
        unfinished.is_empty(),
        "still running at {:?} (horizon {horizon:?}): {unfinished:#?}",
        world.now()
    );

    check_publishes(&publishes, &config);
    let mut tally = Tally::default();
    check_players(&players, &publishes, &spec, &config, &mut tally);
    check_floods(&floods, &spec, &config, &mut tally);
    if std::env::var_os("SCENARIO_TRACE").is_some() {
        let frames: usize = players
            .iter()
            .map(|p| p.client.log().frames().count())
            .sum();
        eprintln!(
            "seed {:#x}: {bounds:?} {} publishes, {} players ({frames} frames), {} floods; ended at {:?}; {:?} {tally:?}",
            scenario.seed,
            publishes.len(),
            players.len(),
            floods.len(),
            world.now(),
            server.stats()
        );
    }

    // Everyone is gone: nothing is held.
    let stats = server.stats();
    assert_eq!(
        (
            stats.connections,
            stats.output_bytes,
            stats.input_bytes,
            stats.datagram_bytes
        ),
        (0, 0, 0, 0),
        "after every client left: {stats:?}"
    );
    assert_eq!(
        stats.datagrams_dropped,
        world.net_stats().udp_delivered,
        "every datagram that reached the server came from no routed peer"
    );
    assert!(
        stats.closed_send_stalled >= tally.stalls_after_timeout as u64,
        "stalled players closed by the send timeout not counted: {stats:?} {tally:?}"
    );
    assert!(
        stats.refused_connections <= floods.len() as u64,
        "only floods share an address: {stats:?}"
    );

    // A stopped server leaves nothing open and no task behind.
    server.stop();
    let quiet = world.run_until(
        || world.open_connections() == 0 && world.task_count() == 0,
        10_000,
    );
    assert!(
        quiet,
        "after stop: {} connections open, {} tasks",
        world.open_connections(),
        world.task_count()
    );
}

/// Publishes of a name follow each other, so each is accepted; one that stays idle is closed
/// `publish_idle_timeout_ms` after its last frame.
fn check_publishes(publishes: &[Publish], config: &ServerConfig) {
    for (n, publish) in publishes.iter().enumerate() {
        let log = publish.client.log();
        assert!(
            log.started_at().is_some() && log.refused().is_none(),
            "publish {n} of {}: {}",
            STREAMS[publish.stream],
            summary(&log)
        );
        let frames = log.sent().filter(|(_, id)| id.kind == Track::Video).count() as u64;
        assert_eq!(frames, publish.plan.video_frames, "publish {n}");
        if publish.plan.end == PublishEnd::Stay {
            let last = log.sent().last().map_or(Millis::ZERO, |(at, _)| at);
            let (closed, why) = log
                .closed()
                .unwrap_or_else(|| panic!("idle publish {n} never closed: {}", summary(&log)));
            let idle = config.rtmp.publish_idle_timeout_ms;
            assert!(
                why == "server closed"
                    && closed.0 >= last.0 + idle
                    && closed.0 <= last.0 + idle + MARGIN_MS,
                "idle publish {n} closed {} ms after its last frame ({why}), timeout {idle}",
                closed.0 - last.0
            );
        }
    }
}

/// When a publisher's publish started and ended, as its own log says.
fn live_interval(log: &ClientLog) -> Option<(Millis, Millis)> {
    let started = log.started_at()?;
    let ended = log.closed().map_or(Millis(u64::MAX), |(at, _)| at);
    Some((started, ended))
}

/// A client's log for a failure message: every event but frames, which are summed up as
/// runs of consecutive frames per track.
fn summary(log: &ClientLog) -> String {
    type Run = (u64, u64, Millis, Millis);
    fn flush(track: Track, run: Option<Run>, out: &mut Vec<String>) {
        if let Some((first, last, from, to)) = run {
            out.push(format!(
                "{track:?} {first}..={last} at {}..={}",
                from.0, to.0
            ));
        }
    }
    let mut out = Vec::new();
    let mut runs: [Option<Run>; 2] = [None, None];
    let slot = |track| match track {
        Track::Video => 0,
        Track::Audio => 1,
    };
    for record in log.records() {
        match &record.event {
            Event::Frame { id, .. } | Event::Sent(id) => {
                let run = &mut runs[slot(id.kind)];
                match run {
                    Some((_, last, _, to)) if id.seq == *last + 1 => {
                        *last = id.seq;
                        *to = record.at;
                    }
                    _ => {
                        flush(id.kind, run.take(), &mut out);
                        *run = Some((id.seq, id.seq, record.at, record.at));
                    }
                }
            }
            other => {
                flush(Track::Video, runs[0].take(), &mut out);
                flush(Track::Audio, runs[1].take(), &mut out);
                out.push(format!("{}: {other:?}", record.at.0));
            }
        }
    }
    flush(Track::Video, runs[0].take(), &mut out);
    flush(Track::Audio, runs[1].take(), &mut out);
    out.join(", ")
}

/// How many checks of each kind a case made (printed with `SCENARIO_TRACE=1`).
#[derive(Debug, Default)]
struct Tally {
    delivered: usize,
    refused: usize,
    stalls_timed: usize,
    stalls_after_timeout: usize,
    left: usize,
    floods_closed: usize,
}

fn check_players(
    players: &[Player],
    publishes: &[Publish],
    spec: &MediaSpec,
    config: &ServerConfig,
    tally: &mut Tally,
) {
    let send_timeout = config.server.send_timeout_ms;
    for (n, player) in players.iter().enumerate() {
        let log = player.client.log();
        let what = || format!("player {n} {:?}: {}", player.plan, summary(&log));
        let of_stream: Vec<(&Publish, (Millis, Millis))> = publishes
            .iter()
            .filter(|p| p.stream == player.plan.stream)
            .filter_map(|p| live_interval(&p.client.log()).map(|live| (p, live)))
            .collect();

        let Some(started) = log.started_at() else {
            // Refused: only if nothing of its stream was live when it asked, nor published
            // within its wait.
            let Some(connected) = log.connected_at() else {
                panic!("never connected: {}", what());
            };
            let wait = config.hub.play_wait_ms;
            let should_have_played = of_stream.iter().any(|(_, (start, end))| {
                (*start <= connected && end.0 >= connected.0 + MARGIN_MS)
                    || (*start >= connected && start.0 + MARGIN_MS <= connected.0 + wait)
            });
            assert!(!should_have_played, "not played: {}", what());
            tally.refused += 1;
            continue;
        };

        // Each player's frames are intact and consecutive, whatever it did.
        if let Err(error) = log.check_stream(spec) {
            panic!("{error}: {}", what());
        }

        // The publish it played: the latest of its stream that started by then (publishes of
        // one name never overlap, and a waiting player starts with the publish).
        let (publish, (_, ended)) = of_stream
            .iter()
            .filter(|(_, (start, _))| *start <= started)
            .max_by_key(|(_, (start, _))| *start)
            .unwrap_or_else(|| panic!("started with no publish: {}", what()));
        assert!(
            started <= *ended,
            "started after its publish ended: {}",
            what()
        );
        let publisher = publish.client.log();

        match player.plan.behaviour {
            Behaviour::Healthy => {
                if let Err(error) = log.check_delivery(&publisher, spec) {
                    let sent: Vec<_> = publisher.sent().collect();
                    panic!(
                        "{error}: {}\npublisher sent {} frames, last {:?}",
                        what(),
                        sent.len(),
                        sent.last()
                    );
                }
                assert!(
                    log.first(|e| *e == Event::Ended).is_some(),
                    "no end of stream: {}",
                    what()
                );
                tally.delivered += 1;
            }
            Behaviour::Stall(_) => {
                let Some(stalled) = log.first(|e| *e == Event::Stalled) else {
                    // The stream ended before it was to stall.
                    continue;
                };
                let (closed, why) = log
                    .closed()
                    .unwrap_or_else(|| panic!("never closed: {}", what()));
                assert_eq!(why, "server closed", "{}", what());
                // After the stall the queue makes progress until the player's buffer is full:
                // at the latest `fill` after the stall while the stream flows. If the stream
                // stopped flowing before that, its end (the server's end of stream, when it
                // closes an idle publisher) is the last thing that can be written. The guard
                // closes the connection `send_timeout_ms` after the last progress; a player
                // whose end of stream fit is closed at the end.
                let buffer = player.plan.receive_buffer.unwrap_or(256 * 1024);
                let fill = fill_ms(spec, buffer);
                let last_sent = publisher.sent().last().map_or(Millis::ZERO, |(at, _)| at);
                let flowed = last_sent.0 >= stalled.0 + fill;
                let last_progress = if flowed {
                    stalled.0 + fill
                } else {
                    (stalled.0 + fill).max(ended.0)
                };
                assert!(
                    closed.0 <= last_progress + send_timeout + MARGIN_MS,
                    "closed {} ms after its stall (fill {fill}, timeout {send_timeout}, \
                     publish ended at {}): {}",
                    closed.0 - stalled.0,
                    ended.0,
                    what()
                );
                tally.stalls_timed += 1;
                // While the stream flows past the stall there is progress at the stall, so
                // the guard cannot close it sooner than the timeout after.
                if flowed {
                    assert!(
                        closed.0 >= stalled.0 + send_timeout,
                        "closed before the send timeout: {}",
                        what()
                    );
                    tally.stalls_after_timeout += 1;
                }
            }
            Behaviour::Leave(_) => tally.left += 1,
        }
    }
}

fn check_floods(
    floods: &[FloodClient],
    spec: &MediaSpec,
    config: &ServerConfig,
    tally: &mut Tally,
) {
    let send_timeout = config.server.send_timeout_ms;
    for (n, flood) in floods.iter().enumerate() {
        let log = flood.client.log();
        let what = || format!("flood {n} {:?}: {}", flood.plan, summary(&log));
        let setup = match &flood.plan {
            Flood::Garbage { to, .. } | Flood::Slowloris { to, .. } => {
                setup_deadline_ms(*to, config)
            }
            Flood::Pings { .. } => setup_deadline_ms(Proto::Rtmp, config),
            Flood::Pipeline { .. } => setup_deadline_ms(Proto::Rtsp, config),
            Flood::NoReadGet { receive_buffer, .. } => {
                config.hub.play_wait_ms + fill_ms(spec, *receive_buffer)
            }
            Flood::Udp { .. } => continue,
        };
        let connected = log
            .connected_at()
            .unwrap_or_else(|| panic!("never connected: {}", what()));
        let (closed, _) = log
            .closed()
            .unwrap_or_else(|| panic!("never closed: {}", what()));
        // Its setup deadline, then (if its replies stalled) the send timeout.
        assert!(
            closed.0 <= connected.0 + setup + send_timeout + MARGIN_MS,
            "closed {} ms after connecting (setup {setup}, timeout {send_timeout}): {}",
            closed.0 - connected.0,
            what()
        );
        tally.floods_closed += 1;
    }
}

/// Runs `PROPTEST_CASES` cases (24 by default).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(24)
}

/// The same cases on every run unless `PROPTEST_RNG_SEED` asks for others: the scenarios
/// themselves are deterministic, so a failure in CI reproduces exactly; longer hunts pick
/// their own seeds (the mirror bug below was found at about one case in two thousand).
fn rng_seed() -> RngSeed {
    if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        ProptestConfig::default().rng_seed
    } else {
        RngSeed::Fixed(0x5ce7_a7105)
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        rng_seed: rng_seed(),
        max_shrink_iters: 256,
        failure_persistence: Some(Box::new(
            FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// Memory per connection and in total stays under the configured bounds, healthy players
    /// lose no frame, stalled and hostile clients are closed in time, nothing panics, and a
    /// stopped server leaves nothing behind.
    #[test]
    fn random_scenarios_stay_bounded_and_lose_nothing(scenario in scenario()) {
        run(&scenario);
    }
}

/// Found by the property: a player that joins late, so that its GOP snapshot is more than
/// the high-water mark, stops taking media at the mark; if its socket then takes all that is
/// queued at once, nothing woke it again (its hub queue was not empty, so new media did not
/// notify it), and it never got the rest of the stream nor its end.
#[test]
fn a_late_player_whose_socket_takes_every_burst_gets_the_whole_stream() {
    let world = World::new(0x1a7e);
    let mut config = server_config();
    config.server.workers = 1;
    config.server.max_output_backlog_bytes = 64 * 1024;
    let server = SimServer::start(&world, config).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
    let spec = MediaSpec {
        keyframe_interval: 25,
        ..MediaSpec::default()
    };
    let publisher = publish_rtmp(PublishOptions {
        media: spec.clone(),
        video_frames: 51,
        start_delay_ms: 360,
        ..PublishOptions::new(client_ip(1), rtmp, "live", "s0")
    });
    // Joins at the last frames of the publish: its snapshot (a whole GOP) is several times
    // 64 KiB, and its socket takes each burst whole.
    let player = play_http_flv(PlayOptions {
        media: spec.clone(),
        start_delay_ms: 2_321,
        receive_buffer: Some(224_653),
        ..PlayOptions::new(client_ip(2), http, "live", "s0")
    });
    assert!(world.run_until(|| player.is_finished(), 30_000));
    let log = player.log();
    log.check_delivery(&publisher.log(), &spec)
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(log.first(|e| *e == Event::Ended).is_some(), "end of stream");
}

/// A fixed case found by the property: a player was fed media until its queue reached the
/// guard's fixed 512 KiB high-water mark even with `max_output_backlog_bytes` configured
/// far below it (eight times the configured 64 KiB here). The high-water mark is now the
/// lesser of the two.
#[test]
fn a_stalled_player_queues_no_more_than_the_configured_backlog() {
    let world = World::new(0x51a11);
    let mut config = server_config();
    config.server.workers = 1;
    config.server.max_output_backlog_bytes = 64 * 1024;
    config.server.send_timeout_ms = 10_000;
    let server = SimServer::start(&world, config.clone()).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
    let spec = MediaSpec::default();
    let _publisher = publish_rtmp(PublishOptions {
        video_frames: 250,
        ..PublishOptions::new(client_ip(1), rtmp, "live", "s0")
    });
    let player = play_http_flv(PlayOptions {
        start_delay_ms: 100,
        stall_after_ms: Some(0),
        receive_buffer: Some(8 * 1024),
        ..PlayOptions::new(client_ip(2), http, "live", "s0")
    });
    let keyframe = spec.keyframe_bytes.1;
    let chunk = config.rtmp.chunk_size as usize;
    let item = keyframe + ITEM_FRAMING + CHUNK_CONTINUATION * (keyframe + 5).div_ceil(chunk);
    // The publisher's connection queues only small control replies.
    let bound = config.server.max_output_backlog_bytes + item + CONTROL + CLIENT_REPLIES;
    let mut most = 0;
    while !player.is_finished() && world.now() < Millis(9_000) {
        world.run_for(SAMPLE_MS);
        most = most.max(server.stats().output_bytes);
    }
    assert!(
        most <= bound,
        "{most} bytes queued for peers, configured backlog {} (bound {bound})",
        config.server.max_output_backlog_bytes
    );
}

/// Found by the property (shrunk by hand): with two workers, the last player of a stream on
/// worker 1 leaves in the same instant as a keyframe is published on worker 0 and a new
/// player joins on worker 1. The new player received the keyframe alone, before the codec
/// configurations, and then again at the head of the GOP snapshot. Fixed: the origin's
/// messages carry the subscription they were sent for, and a new mirror ignores what was
/// sent for the one before it.
///
/// The order of events in that instant: the origin forwards the keyframe to worker 1 (still
/// subscribed); the leaving player's `release_player` drops worker 1's mirror and sends
/// `Unsubscribe`; the joining player's `source_for_player` finds no mirror, creates a new one
/// and sends `Subscribe`; worker 1's inbox then delivers the keyframe, and `Worker::mirror`,
/// which looks a mirror up by publication only, hands it to the new mirror, whose player
/// (seeded with an empty GOP, waiting for a keyframe) takes it; the origin handles
/// `Unsubscribe` and `Subscribe` and sends a snapshot that ends with the same keyframe. Any
/// media forwarded between the old mirror's `Unsubscribe` and the origin handling it reached
/// the new mirror ahead of its snapshot.
#[test]
fn a_player_joining_as_the_last_one_on_its_worker_leaves_gets_each_frame_once() {
    let world = World::new(0);
    let mut config = server_config();
    config.server.workers = 2;
    let server = SimServer::start(&world, config).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
    // Keyframes every 400 ms: the publish starts at 680, keyframe 10 goes out at 1080.
    let spec = MediaSpec {
        keyframe_interval: 10,
        ..MediaSpec::default()
    };
    // Connections are spread over the workers in turn, per protocol: the publisher is on
    // worker 0, the RTMP player on worker 1, the first HTTP player on worker 0 and the
    // second on worker 1.
    let publisher = publish_rtmp(PublishOptions {
        media: spec.clone(),
        video_frames: 25,
        start_delay_ms: 680,
        ..PublishOptions::new(client_ip(1), rtmp, "live", "s0")
    });
    let leaving = play_rtmp(PlayOptions {
        media: spec.clone(),
        start_delay_ms: 935,
        leave_after_ms: Some(145),
        ..PlayOptions::new(client_ip(2), rtmp, "live", "s0")
    });
    let joining: Vec<Client> = (3..=4)
        .map(|n| {
            play_http_flv(PlayOptions {
                media: spec.clone(),
                start_delay_ms: 1_080,
                ..PlayOptions::new(client_ip(n), http, "live", "s0")
            })
        })
        .collect();
    assert!(world.run_until(|| joining.iter().all(Client::is_finished), 10_000));
    assert_eq!(world.listener_loads(rtmp), [1, 1]);
    assert_eq!(world.listener_loads(http), [1, 1]);
    assert_eq!(
        leaving.log().closed().map(|(at, _)| at),
        Some(Millis(1_080))
    );
    let publisher = publisher.log();
    for (n, player) in joining.iter().enumerate() {
        if let Err(error) = player.log().check_delivery(&publisher, &spec) {
            panic!("player {n}: {error}: {}", summary(&player.log()));
        }
    }
}
