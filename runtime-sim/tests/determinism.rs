//! The same seed gives the same run: every client's log (each event with its virtual
//! time), the server's counters, the network's counters and the number of task polls.

mod common;

use std::net::SocketAddr;

use common::{client_ip, logs};
use mediakit_sim::clients::{
    play_http_flv, play_rtmp, publish_rtmp, raw_tcp, udp_flood, ClientLog, PlayOptions,
    PublishOptions, RawTcpOptions, UdpFloodOptions,
};
use mediakit_sim::server::{server_config, SimServer, Stats};
use mediakit_sim::{Millis, NetStats, World};

/// What a run leaves behind.
#[derive(Debug, PartialEq)]
struct Trace {
    publisher: ClientLog,
    clients: Vec<ClientLog>,
    stats: Stats,
    net: NetStats,
    polls: u64,
    end: Millis,
}

/// A publisher, a dozen players joining at seeded times (a third of them stalling), a
/// client pipelining requests without reading, and a UDP flood at the RTP port.
fn scenario(seed: u64) -> Trace {
    let world = World::new(seed);
    let server = SimServer::start(&world, server_config()).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
    let rtsp = server.rtsp_addr().unwrap();
    let publisher = publish_rtmp(PublishOptions {
        video_frames: 100,
        ..PublishOptions::new(client_ip(0), rtmp, "live", "cam")
    });
    let mut rng = world.rng(0);
    let mut clients = Vec::new();
    for n in 1..=12 {
        let delay = rng.range(0, 3_000);
        clients.push(match n % 3 {
            0 => play_rtmp(PlayOptions {
                start_delay_ms: delay,
                ..PlayOptions::new(client_ip(n), rtmp, "live", "cam")
            }),
            1 => play_http_flv(PlayOptions {
                start_delay_ms: delay,
                ..PlayOptions::new(client_ip(n), http, "live", "cam")
            }),
            _ => play_http_flv(PlayOptions {
                start_delay_ms: delay,
                stall_after_ms: Some(rng.range(100, 1_000)),
                receive_buffer: Some(32 * 1024),
                ..PlayOptions::new(client_ip(n), http, "live", "cam")
            }),
        });
    }
    let options: Vec<bytes::Bytes> = (0..5_000)
        .map(|cseq| format!("OPTIONS rtsp://x/live/cam RTSP/1.0\r\nCSeq: {cseq}\r\n\r\n").into())
        .collect();
    clients.push(raw_tcp(RawTcpOptions {
        read: false,
        ..RawTcpOptions::new(client_ip(50), rtsp, options)
    }));
    clients.push(udp_flood(UdpFloodOptions {
        burst: 100,
        duration_ms: 200,
        start_delay_ms: 1_000,
        ..UdpFloodOptions::new(
            SocketAddr::new(client_ip(51), 0),
            SocketAddr::new(server.config().server.bind, 30_000),
        )
    }));
    world.run_for(20_000);
    let trace = Trace {
        publisher: publisher.log().clone(),
        clients: logs(&clients),
        stats: server.stats(),
        net: world.net_stats(),
        polls: world.polls(),
        end: world.now(),
    };
    trace
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let first = scenario(42);
    assert!(first.clients.iter().all(|log| log.connected_at().is_some()));
    assert_eq!(first, scenario(42));
}

#[test]
fn another_seed_gives_another_run() {
    assert_ne!(scenario(42).clients, scenario(43).clients);
}
