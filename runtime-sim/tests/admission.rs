//! What the engine does to every accepted socket: keepalive and nodelay set, and the
//! connection limits (global and per IP) enforced at accept.

mod common;

use std::time::Duration;

use common::client_ip;
use mediakit_sim::server::{server_config, SimServer};
use mediakit_sim::World;

#[test]
fn accepted_sockets_get_keepalive_and_nodelay() {
    let world = World::new(1);
    let server = SimServer::start(&world, server_config()).unwrap();
    let client = world
        .connect(client_ip(1), server.http_addr().unwrap())
        .unwrap();
    world.run_for(10);
    let options = client.peer_options();
    assert_eq!(options.keepalive, Some(Duration::from_secs(60)));
    assert!(options.nodelay, "on during setup");
}

#[test]
fn connections_beyond_the_per_ip_and_global_limits_are_refused_while_others_connect() {
    let world = World::new(1);
    let mut config = server_config();
    config.server.max_connections_per_ip = 3;
    config.server.max_connections = 5;
    let server = SimServer::start(&world, config).unwrap();
    let http = server.http_addr().unwrap();
    let crowd: Vec<_> = (0..5)
        .map(|_| world.connect(client_ip(1), http).unwrap())
        .collect();
    world.run_for(10);
    // Which ones are refused depends on the order the two workers accept in; how many
    // does not.
    let refused =
        |clients: &[mediakit_sim::TcpStream]| clients.iter().filter(|c| c.peer_closed()).count();
    assert_eq!(refused(&crowd), 2);
    let others: Vec<_> = (2..5)
        .map(|n| world.connect(client_ip(n), http).unwrap())
        .collect();
    world.run_for(10);
    // Two more fit under the global limit of five; the third does not.
    assert_eq!(refused(&others), 1);
    assert_eq!(server.stats().refused_connections, 3);
    assert_eq!(server.stats().connections, 5);
    // A slot freed is a slot taken.
    drop(crowd);
    world.run_for(10);
    let late = world.connect(client_ip(9), http).unwrap();
    world.run_for(10);
    assert!(!late.peer_closed());
}

#[test]
fn stopping_the_server_closes_every_connection() {
    use mediakit_sim::clients::{play_rtmp, publish_rtmp, PlayOptions, PublishEnd, PublishOptions};
    let world = World::new(3);
    let server = SimServer::start(&world, server_config()).unwrap();
    let rtmp = server.rtmp_addr().unwrap();
    let publisher = publish_rtmp(PublishOptions {
        end: PublishEnd::Stay,
        ..PublishOptions::new(client_ip(1), rtmp, "live", "cam")
    });
    let player = play_rtmp(PlayOptions::new(client_ip(2), rtmp, "live", "cam"));
    let idle = world
        .connect(client_ip(3), server.http_addr().unwrap())
        .unwrap();
    world.run_for(1_000);
    assert_eq!(server.stats().connections, 3);
    server.stop();
    assert!(world.run_until(|| publisher.is_finished() && player.is_finished(), 5_000));
    world.run_for(3_000);
    assert!(idle.peer_closed());
    assert_eq!(server.stats().connections, 0);
    assert_eq!(
        world.open_connections(),
        1,
        "only the idle client's own end"
    );
}

#[test]

fn a_stopped_server_releases_its_listeners_ports_and_tasks() {
    let world = World::new(3);
    let server = SimServer::start(&world, server_config()).unwrap();
    world.run_for(100);
    server.stop();
    world.run_for(5_000);
    let refused = world.connect(client_ip(1), server.rtmp_addr().unwrap());
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused,
        "no listener left"
    );
    let rtp = std::net::SocketAddr::new(server.config().server.bind, 30_000);
    assert!(world.bind_udp(rtp).is_ok(), "the RTP port is free again");
    assert_eq!(world.task_count(), 0, "every worker task ended");
}
