//! One RTMP publisher and a hundred players (half RTMP, half HTTP-FLV, spread over two
//! workers) on the real engine, on virtual time: every player gets every frame published
//! after it joined, in order, intact.

mod common;

use std::time::Instant;

use common::{client_ip, done};
use mediakit_sim::clients::{
    play_http_flv, play_rtmp, publish_rtmp, Event, PlayOptions, PublishOptions, Track,
};
use mediakit_sim::server::{server_config, SimServer};
use mediakit_sim::World;

#[test]
fn a_hundred_players_get_every_frame_published_after_they_joined() {
    let began = Instant::now();
    let world = World::new(0x5eed);
    let server = SimServer::start(&world, server_config()).unwrap();
    let rtmp = server.rtmp_addr().unwrap();
    let http = server.http_addr().unwrap();

    let publisher = publish_rtmp(PublishOptions {
        video_frames: 250,
        ..PublishOptions::new(client_ip(0), rtmp, "live", "cam")
    });
    // Players join over the first four seconds, in a seeded order, alternating protocols.
    let mut joins = world.rng(1);
    let players: Vec<_> = (1..=100u32)
        .map(|n| {
            let delay = 100 + joins.range(0, 4_000);
            if n % 2 == 0 {
                play_rtmp(PlayOptions {
                    start_delay_ms: delay,
                    ..PlayOptions::new(client_ip(n), rtmp, "live", "cam")
                })
            } else {
                play_http_flv(PlayOptions {
                    start_delay_ms: delay,
                    ..PlayOptions::new(client_ip(n), http, "live", "cam")
                })
            }
        })
        .collect();

    assert!(
        world.run_until(|| players.iter().all(done), 30_000),
        "every player sees the end of the stream"
    );
    let spec = &PublishOptions::new(client_ip(0), rtmp, "live", "cam").media;
    let publisher = publisher.log();
    assert_eq!(
        publisher
            .sent()
            .filter(|(_, id)| id.kind == Track::Video)
            .count(),
        250
    );
    for (n, player) in players.iter().enumerate() {
        let log = player.log();
        let delivered = log
            .check_delivery(&publisher, spec)
            .unwrap_or_else(|error| panic!("player {n}: {error}"));
        assert_eq!(delivered.tracks[&Track::Video].1, 249, "player {n}");
        assert!(
            log.first(|event| *event == Event::Ended).is_some(),
            "player {n}"
        );
    }
    // The two workers took turns: each served half of each protocol's connections.
    assert_eq!(world.listener_loads(rtmp), [26, 25]);
    assert_eq!(world.listener_loads(http), [25, 25]);
    let stats = server.stats();
    assert_eq!(stats.closed_send_stalled, 0);
    assert_eq!(stats.refused_connections, 0);
    // Ten seconds of stream for a hundred players in well under a second of real time.
    let elapsed = began.elapsed();
    assert!(elapsed.as_secs() < 5, "took {elapsed:?}");
}
