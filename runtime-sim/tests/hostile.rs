//! The scenario: one publisher and a hundred players, ten of which stop reading, an
//! RTSP client pipelining requests without ever reading, and a UDP flood at the RTP port.
//! The healthy players lose nothing; the stalled ones and the pipeliner are closed once
//! their sends make no progress for `send_timeout_ms`; no connection holds more than the
//! configured backlog.

mod common;

use std::net::SocketAddr;

use common::{client_ip, done};
use mediakit_sim::clients::{
    play_http_flv, play_rtmp, publish_rtmp, raw_tcp, udp_flood, Client, PlayOptions,
    PublishOptions, RawTcpOptions, UdpFloodOptions,
};
use mediakit_sim::server::{server_config, SimServer};
use mediakit_sim::World;

const SEND_TIMEOUT_MS: u64 = 5_000;

#[test]
fn stalled_players_a_pipeliner_and_a_flood_cost_healthy_players_nothing() {
    let world = World::new(0xbad);
    let mut config = server_config();
    config.server.send_timeout_ms = SEND_TIMEOUT_MS;
    let backlog = config.server.max_output_backlog_bytes;
    let server = SimServer::start(&world, config).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
    let rtsp = server.rtsp_addr().unwrap();

    let publisher = publish_rtmp(PublishOptions {
        video_frames: 500,
        ..PublishOptions::new(client_ip(0), rtmp, "live", "cam")
    });
    let mut joins = world.rng(1);
    let (mut healthy, mut stalled) = (Vec::new(), Vec::new());
    for n in 1..=100u32 {
        let mut options = PlayOptions::new(client_ip(n), rtmp, "live", "cam");
        options.start_delay_ms = 100 + joins.range(0, 2_000);
        let stalls = n % 10 == 0;
        if stalls {
            options.stall_after_ms = Some(500);
            options.receive_buffer = Some(64 * 1024);
        }
        let player: Client = if n % 2 == 0 {
            play_rtmp(options)
        } else {
            play_http_flv(PlayOptions {
                server: http,
                ..options
            })
        };
        if stalls {
            stalled.push(player);
        } else {
            healthy.push(player);
        }
    }
    // Enough requests that their replies outgrow the backlog and both socket buffers.
    let requests: Vec<bytes::Bytes> = (0..50_000)
        .map(|cseq| {
            format!("OPTIONS rtsp://{rtsp}/live/cam RTSP/1.0\r\nCSeq: {cseq}\r\n\r\n").into()
        })
        .collect();
    let request_bytes: usize = requests.iter().map(bytes::Bytes::len).sum();
    let pipeliner = raw_tcp(RawTcpOptions {
        read: false,
        start_delay_ms: 1_000,
        ..RawTcpOptions::new(client_ip(200), rtsp, requests)
    });
    let flood = udp_flood(UdpFloodOptions {
        burst: 100,
        duration_ms: 2_000,
        start_delay_ms: 3_000,
        ..UdpFloodOptions::new(
            SocketAddr::new(client_ip(201), 0),
            SocketAddr::new(rtsp.ip(), 30_000),
        )
    });

    assert!(world.run_until(
        || healthy.iter().chain(&stalled).all(done) && done(&pipeliner),
        60_000
    ));

    let spec = PlayOptions::new(client_ip(0), rtmp, "live", "cam").media;
    let publisher = publisher.log();
    for (n, player) in healthy.iter().enumerate() {
        player
            .log()
            .check_delivery(&publisher, &spec)
            .unwrap_or_else(|error| panic!("healthy player {n}: {error}"));
    }
    for (n, player) in stalled.iter().enumerate() {
        let log = player.log();
        let stalled_at = log.started_at().unwrap() + 500;
        let (closed_at, why) = log.closed().unwrap();
        assert_eq!(why, "server closed", "stalled player {n}");
        // Closed once its queue made no progress for the timeout, counted from when its
        // socket buffer filled (within a second of the stall at this bitrate).
        assert!(
            closed_at >= stalled_at + SEND_TIMEOUT_MS
                && closed_at <= stalled_at + SEND_TIMEOUT_MS + 1_000,
            "stalled player {n}: stalled at {stalled_at:?}, closed at {closed_at:?}"
        );
    }
    let log = pipeliner.log();
    let (closed_at, _) = log.closed().unwrap();
    let connected = log.connected_at().unwrap();
    assert!(
        closed_at <= connected + SEND_TIMEOUT_MS + 1_000,
        "{closed_at:?}"
    );
    assert!(
        log.bytes_sent() < request_bytes as u64,
        "the server stopped reading the pipeliner"
    );

    let stats = server.stats();
    assert_eq!(stats.closed_send_stalled, stalled.len() as u64 + 1);
    assert_eq!(stats.datagrams_dropped, flood.log().datagrams_sent());
    assert!(
        stats.largest_connection_bytes <= backlog + 256 * 1024,
        "a connection held {} bytes",
        stats.largest_connection_bytes
    );
    assert_eq!(
        stats.connections, 0,
        "every connection ended with the stream"
    );
    assert_eq!(world.open_connections(), 0);
}
