//! RTSP's defences on virtual time: a UDP flood at a worker's RTP and RTCP ports costs the
//! players on that worker nothing; a session cannot take over the client ports another
//! session of the same address holds, nor claim routes without bound; a recording session
//! that only sends keep-alives is closed at `session_timeout_ms` after its last RTP.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::{client_ip, done, saw};
use mediakit_core::rtsp::message::{Method, Response};
use mediakit_core::rtsp::transport::Transport;
use mediakit_sim::clients::{
    play_rtmp, play_rtsp, publish_rtmp, publish_rtsp, udp_flood, Client, ClientLog, Event,
    MediaSpec, PlayOptions, PublishEnd, PublishOptions, RtspConnection, RtspPlayOptions,
    RtspPublishOptions, UdpFloodOptions,
};
use mediakit_sim::server::{server_config, SimServer};
use mediakit_sim::{UdpSocket, World};

/// The server ports a player's first UDP SETUP was answered with.
fn server_ports(client: &Client) -> Option<(u16, u16)> {
    client
        .log()
        .records()
        .iter()
        .find_map(|record| match record.event {
            Event::ServerPorts { rtp, rtcp } => Some((rtp, rtcp)),
            _ => None,
        })
}

/// The longest a frame published after the player started took to reach it, in virtual
/// milliseconds. (The frames before, from the server's GOP cache, are late by design.)
fn max_delay(player: &ClientLog, publisher: &ClientLog) -> u64 {
    let started = player.started_at().unwrap();
    player
        .frames()
        .filter_map(|(at, id, _)| {
            let (sent, _) = publisher.sent().find(|(_, sent)| *sent == id).unwrap();
            (sent >= started).then(|| at.saturating_since(sent))
        })
        .max()
        .unwrap()
}

/// Flood datagrams per millisecond at each of the two ports, and for how long.
const FLOOD_BURST: u32 = 100;
const FLOOD_MS: u64 = 3_000;

#[test]
fn a_udp_flood_at_a_workers_rtp_ports_costs_its_players_nothing() {
    let world = World::new(21);
    let server = SimServer::start(&world, server_config()).unwrap();
    let (rtmp, rtsp) = (server.rtmp_addr().unwrap(), server.rtsp_addr().unwrap());

    // Connections go to each protocol's listeners in the order the workers bound them, and a
    // worker binds its listeners and its RTP pair in one go: the first RTMP connection, the
    // first RTSP connection and the first port pair (30000-30001) are the same worker's.
    let rtmp_player = play_rtmp(PlayOptions::new(client_ip(2), rtmp, "live", "cam"));
    let publisher = publish_rtmp(PublishOptions {
        start_delay_ms: 100,
        ..PublishOptions::new(client_ip(1), rtmp, "live", "cam")
    });
    let rtsp_player = play_rtsp(RtspPlayOptions {
        start_delay_ms: 500,
        ..RtspPlayOptions::udp(client_ip(3), rtsp, "live", "cam", 5_000)
    });
    assert!(world.run_until(|| rtsp_player.log().started_at().is_some(), 2_000));
    assert_eq!(world.listener_loads(rtmp), [1, 1]);
    assert_eq!(world.listener_loads(rtsp), [1, 0]);
    let (rtp, rtcp) = server_ports(&rtsp_player).unwrap();
    assert_eq!((rtp, rtcp), (30_000, 30_001), "the first worker's pair");

    // 1200-byte junk from an address no SETUP named, at both ports, from 2 s to 5 s.
    let bind = server.config().server.bind;
    let floods: Vec<Client> = [rtp, rtcp]
        .into_iter()
        .enumerate()
        .map(|(n, port)| {
            udp_flood(UdpFloodOptions {
                burst: FLOOD_BURST,
                duration_ms: FLOOD_MS,
                start_delay_ms: 1_500,
                ..UdpFloodOptions::new(
                    SocketAddr::new(client_ip(50 + n as u32), 0),
                    SocketAddr::new(bind, port),
                )
            })
        })
        .collect();

    assert!(world.run_until(|| done(&rtsp_player) && done(&rtmp_player), 20_000));
    assert!(floods.iter().all(done));
    let publisher = publisher.log();
    let spec = MediaSpec::default();
    for (name, player) in [("RTSP/UDP", &rtsp_player), ("RTMP", &rtmp_player)] {
        let log = player.log();
        let delivered = log
            .check_delivery(&publisher, &spec)
            .unwrap_or_else(|error| panic!("{name} player: {error}"));
        assert!(delivered.frames > 700, "{name}: {delivered:?}");
        // The bound on the extra delay the flood may cause: none, every frame arrives at
        // the instant it was published. Virtual time stands still while tasks run, so this
        // says the flood cost the players no wake-up and no frame; the CPU time a real
        // worker spends on it is not modelled here (the live conformance test covers that).
        assert_eq!(max_delay(&log, &publisher), 0, "{name} player");
        assert!(saw(player, |event| *event == Event::Ended), "{name}");
    }
    // Every datagram of the flood reached a socket and was dropped before anything was
    // allocated for it, or was dropped by the full socket.
    let flooded: u64 = floods
        .iter()
        .map(|flood| flood.log().datagrams_sent())
        .sum();
    assert_eq!(flooded, 2 * u64::from(FLOOD_BURST) * FLOOD_MS);
    let stats = server.stats();
    let net = world.net_stats();
    assert_eq!(stats.datagrams_dropped + net.udp_overflowed, flooded);
    assert_eq!(stats.datagram_bytes, 0);
}

/// A hand-driven session's SETUP of `track` with UDP `client_port`s.
async fn setup_udp(conn: &mut RtspConnection, url: &str, track: u8, port: u16) -> Response {
    let transport = format!("RTP/AVP;unicast;client_port={}-{}", port, port + 1);
    conn.request(
        Method::Setup,
        &format!("{url}/trackID={track}"),
        &[("Transport", &transport)],
        Bytes::new(),
    )
    .await
    .unwrap()
}

/// The server ports of a SETUP answer.
fn answered_ports(response: &Response) -> Option<(u16, u16)> {
    let transport = Transport::parse(response.headers.get("Transport")?).ok()?;
    transport.server_port
}

#[test]
fn a_session_cannot_take_over_the_client_ports_another_session_of_its_address_holds() {
    let world = World::new(22);
    let server = SimServer::start(&world, server_config()).unwrap();
    let (rtmp, rtsp) = (server.rtmp_addr().unwrap(), server.rtsp_addr().unwrap());
    let publisher = publish_rtmp(PublishOptions::new(client_ip(1), rtmp, "live", "cam"));
    let first = play_rtsp(RtspPlayOptions {
        start_delay_ms: 200,
        ..RtspPlayOptions::udp(client_ip(2), rtsp, "live", "cam", 5_000)
    });
    // The second RTSP connection goes to the other worker; this one, interleaved, is it.
    let other = play_rtsp(RtspPlayOptions {
        start_delay_ms: 400,
        udp_port: None,
        ..RtspPlayOptions::udp(client_ip(3), rtsp, "live", "cam", 0)
    });
    // The third comes back to the first player's worker, from the first player's address.
    let intruder = world.spawn(async move {
        mediakit_sim::sleep(1_000).await;
        let mut conn = RtspConnection::connect(client_ip(2), rtsp).unwrap();
        let url = conn.url("live/cam");
        let describe = conn
            .request(Method::Describe, &url, &[], Bytes::new())
            .await
            .unwrap();
        assert_eq!(describe.status, 200);
        // Audio on fresh ports: accepted, on the same worker as the first player.
        let audio = setup_udp(&mut conn, &url, 1, 7_000).await;
        // Video on the first player's video ports, then on a pair overlapping them.
        let same = setup_udp(&mut conn, &url, 0, 5_000).await;
        let overlapping = setup_udp(&mut conn, &url, 0, 4_999).await;
        // Video on ports of its own: accepted, and it plays there.
        let own = setup_udp(&mut conn, &url, 0, 7_002).await;
        let socket = UdpSocket::bind(SocketAddr::new(client_ip(2), 7_002)).unwrap();
        let play = conn
            .request(Method::Play, &url, &[], Bytes::new())
            .await
            .unwrap();
        mediakit_sim::sleep(2_000).await;
        let statuses = [&audio, &same, &overlapping, &own, &play].map(|r| r.status);
        (answered_ports(&audio), statuses, socket.queued())
    });

    assert!(world.run_until(|| done(&first) && done(&other), 20_000));
    let (ports, statuses, received) = intruder.take().unwrap();
    assert_eq!(ports, server_ports(&first), "the same worker's pair");
    assert_eq!(statuses, [200, 461, 461, 200, 200]);
    assert!(received > 10, "the intruder plays on its own ports");
    let publisher = publisher.log();
    for (name, player) in [("first", &first), ("other", &other)] {
        let delivered = player
            .log()
            .check_delivery(&publisher, &MediaSpec::default())
            .unwrap_or_else(|error| panic!("{name} player: {error}"));
        assert_eq!(delivered.tracks.len(), 2);
        assert!(saw(player, |event| *event == Event::Ended), "{name}");
    }
    assert_eq!(world.listener_loads(rtsp), [2, 1]);
}

/// The same takeover attempt from a connection the kernel gave the other worker: that
/// worker's sockets never receive the first player's RTP, but it would send its own to the
/// first player's ports, so the claim is refused server-wide.
#[test]
fn a_session_on_another_worker_cannot_claim_the_client_ports_either() {
    let world = World::new(24);
    let server = SimServer::start(&world, server_config()).unwrap();
    let (rtmp, rtsp) = (server.rtmp_addr().unwrap(), server.rtsp_addr().unwrap());
    let publisher = publish_rtmp(PublishOptions::new(client_ip(1), rtmp, "live", "cam"));
    let first = play_rtsp(RtspPlayOptions {
        start_delay_ms: 200,
        ..RtspPlayOptions::udp(client_ip(2), rtsp, "live", "cam", 5_000)
    });
    // The second RTSP connection goes to the other worker, from the first player's address.
    let intruder = world.spawn(async move {
        mediakit_sim::sleep(1_000).await;
        let mut conn = RtspConnection::connect(client_ip(2), rtsp).unwrap();
        let url = conn.url("live/cam");
        let describe = conn
            .request(Method::Describe, &url, &[], Bytes::new())
            .await
            .unwrap();
        assert_eq!(describe.status, 200);
        let same = setup_udp(&mut conn, &url, 0, 5_000).await;
        let own = setup_udp(&mut conn, &url, 0, 7_002).await;
        (answered_ports(&own), [same.status, own.status])
    });

    assert!(world.run_until(|| done(&first), 20_000));
    let (ports, statuses) = intruder.take().unwrap();
    assert_ne!(ports, server_ports(&first), "the other worker's pair");
    assert_eq!(statuses, [461, 200]);
    let delivered = first
        .log()
        .check_delivery(&publisher.log(), &MediaSpec::default())
        .unwrap_or_else(|error| panic!("first player: {error}"));
    assert_eq!(delivered.tracks.len(), 2);
    assert_eq!(world.listener_loads(rtsp), [1, 1]);
}

#[test]
fn setups_beyond_the_route_cap_are_refused_and_routes_go_with_their_session() {
    let world = World::new(23);
    let server = SimServer::start(&world, server_config()).unwrap();
    let (rtmp, rtsp) = (server.rtmp_addr().unwrap(), server.rtsp_addr().unwrap());
    let _publisher = publish_rtmp(PublishOptions::new(client_ip(1), rtmp, "live", "cam"));
    let session = world.spawn(async move {
        mediakit_sim::sleep(500).await;
        let mut conn = RtspConnection::connect(client_ip(2), rtsp).unwrap();
        let url = conn.url("live/cam");
        conn.request(Method::Describe, &url, &[], Bytes::new())
            .await
            .unwrap();
        // Video, audio, then video again twice on new ports: eight routes, the cap.
        let mut statuses = Vec::new();
        for (track, port) in [(0, 8_000), (1, 8_002), (0, 8_004), (0, 8_006), (0, 8_008)] {
            statuses.push(setup_udp(&mut conn, &url, track, port).await.status);
        }
        let sockets = [8_000, 8_006, 8_008]
            .map(|port| UdpSocket::bind(SocketAddr::new(client_ip(2), port)).unwrap());
        let play = conn
            .request(Method::Play, &url, &[], Bytes::new())
            .await
            .unwrap();
        statuses.push(play.status);
        mediakit_sim::sleep(1_000).await;
        let queued = sockets.each_ref().map(UdpSocket::queued);
        let teardown = conn
            .request(Method::Teardown, &url, &[], Bytes::new())
            .await
            .unwrap();
        statuses.push(teardown.status);
        (statuses, queued)
    });
    // Another connection in between, so that the next one is the first one's worker's.
    let filler = world.spawn(async move {
        mediakit_sim::sleep(600).await;
        let mut conn = RtspConnection::connect(client_ip(3), rtsp).unwrap();
        let url = conn.url("live/cam");
        conn.request(Method::Options, &url, &[], Bytes::new())
            .await
            .unwrap()
            .status
    });
    assert!(world.run_until(|| session.is_finished() && filler.is_finished(), 5_000));
    let (statuses, queued) = session.take().unwrap();
    assert_eq!(statuses, [200, 200, 200, 200, 461, 200, 200]);
    let [first, last_accepted, refused] = queued;
    assert!(last_accepted > 10, "video goes to the last ports accepted");
    assert_eq!((first, refused), (0, 0));

    // Once that session is gone, its routes are free for the address's next session.
    let next = world.spawn(async move {
        let mut conn = RtspConnection::connect(client_ip(2), rtsp).unwrap();
        let url = conn.url("live/cam");
        conn.request(Method::Describe, &url, &[], Bytes::new())
            .await
            .unwrap();
        let mut statuses = Vec::new();
        for (track, port) in [(0, 8_000), (1, 8_002), (0, 8_008)] {
            statuses.push(setup_udp(&mut conn, &url, track, port).await.status);
        }
        statuses
    });
    assert!(world.run_until(|| next.is_finished(), 1_000));
    assert_eq!(next.take().unwrap(), [200, 200, 200]);
    assert_eq!(world.listener_loads(rtsp), [2, 1]);
}

const SESSION_MS: u64 = 5_000;

#[test]
fn a_recording_session_that_only_keeps_alive_is_closed_at_the_session_timeout() {
    let world = World::new(24);
    let mut config = server_config();
    config.rtsp.session_timeout_ms = SESSION_MS;
    let server = SimServer::start(&world, config).unwrap();
    let (rtmp, rtsp) = (server.rtmp_addr().unwrap(), server.rtsp_addr().unwrap());

    // Two seconds of RTP interleaved, then a GET_PARAMETER every 1.1 s (never at the
    // deadline itself).
    let idle = publish_rtsp(RtspPublishOptions {
        video_frames: 50,
        end: PublishEnd::Ping { interval_ms: 1_100 },
        ..RtspPublishOptions::new(client_ip(1), rtsp, "live", "idle")
    });
    // Twelve seconds of RTP over UDP, more than twice the timeout, then TEARDOWN.
    let busy = publish_rtsp(RtspPublishOptions {
        video_frames: 300,
        udp_port: Some(6_000),
        ..RtspPublishOptions::new(client_ip(2), rtsp, "live", "busy")
    });
    let player = play_rtmp(PlayOptions {
        start_delay_ms: 100,
        ..PlayOptions::new(client_ip(3), rtmp, "live", "busy")
    });

    assert!(world.run_until(|| idle.log().closed().is_some(), 20_000));
    let log = idle.log();
    let last_rtp = log.sent().last().unwrap().0;
    assert_eq!(
        log.closed(),
        Some((last_rtp + SESSION_MS, "server closed")),
        "closed exactly session_timeout_ms after its last RTP (at {last_rtp:?})"
    );
    let keepalives = log
        .records()
        .iter()
        .filter(|record| record.event == Event::Pinged)
        .count();
    assert_eq!(
        keepalives, 4,
        "keep-alives are no progress for a recording session"
    );
    drop(log);
    // Its name is free at that instant.
    let successor = publish_rtmp(PublishOptions {
        video_frames: 25,
        ..PublishOptions::new(client_ip(4), rtmp, "live", "idle")
    });
    assert!(world.run_until(|| successor.log().started_at().is_some(), 1_000));
    assert_eq!(
        successor.log().started_at(),
        idle.log().closed().map(|(at, _)| at)
    );

    assert!(world.run_until(|| done(&busy) && done(&player), 20_000));
    let busy = busy.log();
    let (closed, why) = busy.closed().unwrap();
    assert_eq!(why, "stopped", "the busy publisher tore down itself");
    assert!(closed >= busy.started_at().unwrap() + 2 * SESSION_MS);
    // What it sent was media: a player got its frames, intact and in order.
    let delivered = player.log().check_stream(&MediaSpec::default()).unwrap();
    assert!(delivered.frames > 500, "{delivered:?}");
    assert!(saw(&player, |event| *event == Event::Ended));
}
