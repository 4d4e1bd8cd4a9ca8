//! Play-before-publish on virtual time: a player that connects before the publisher, within
//! `play_wait_ms`, gets the stream; one that waits longer is refused exactly at its
//! deadline.

mod common;

use common::{client_ip, done, saw};
use mediakit_sim::clients::{
    play_http_flv, play_rtmp, publish_rtmp, Event, PlayOptions, PublishOptions,
};
use mediakit_sim::server::{server_config, SimServer};
use mediakit_sim::{Millis, World};

const WAIT_MS: u64 = 3_000;

#[test]
fn players_wait_for_a_late_publisher_and_are_refused_exactly_at_the_deadline() {
    let world = World::new(7);
    let mut config = server_config();
    config.hub.play_wait_ms = WAIT_MS;
    let server = SimServer::start(&world, config).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
    let t0 = world.now();

    // Connect before the publisher, which starts 1.5 s later: both get the stream.
    let early_rtmp = play_rtmp(PlayOptions::new(client_ip(1), rtmp, "live", "late"));
    let early_http = play_http_flv(PlayOptions {
        start_delay_ms: 500,
        ..PlayOptions::new(client_ip(2), http, "live", "late")
    });
    let publisher = publish_rtmp(PublishOptions {
        start_delay_ms: 1_500,
        video_frames: 50,
        ..PublishOptions::new(client_ip(3), rtmp, "live", "late")
    });
    // Wait for a stream that is published only after their wait ends.
    let refused_rtmp = play_rtmp(PlayOptions {
        start_delay_ms: 200,
        ..PlayOptions::new(client_ip(4), rtmp, "live", "later")
    });
    let refused_http = play_http_flv(PlayOptions {
        start_delay_ms: 700,
        ..PlayOptions::new(client_ip(5), http, "live", "later")
    });
    let too_late = publish_rtmp(PublishOptions {
        start_delay_ms: 4_000,
        video_frames: 25,
        ..PublishOptions::new(client_ip(6), rtmp, "live", "later")
    });

    let clients = [&early_rtmp, &early_http, &refused_rtmp, &refused_http];
    assert!(world.run_until(|| clients.iter().all(|c| done(c)), 20_000));

    let publisher = publisher.log();
    let published = publisher.started_at().unwrap();
    assert!(published >= t0 + 1_500);
    for early in [&early_rtmp, &early_http] {
        let log = early.log();
        assert_eq!(
            log.started_at(),
            Some(published),
            "playing starts with the publish"
        );
        log.check_delivery(&publisher, &Default::default()).unwrap();
        assert!(saw(early, |e| *e == Event::Ended));
    }

    let rtmp_connected = refused_rtmp.log().connected_at().unwrap();
    assert_eq!(rtmp_connected, t0 + 200);
    assert_eq!(
        refused_rtmp.log().refused(),
        Some((rtmp_connected + WAIT_MS, "NetStream.Play.StreamNotFound"))
    );
    let http_connected = refused_http.log().connected_at().unwrap();
    assert_eq!(
        refused_http.log().refused(),
        Some((http_connected + WAIT_MS, "404"))
    );
    assert_eq!(refused_http.log().started_at(), None);
    // The stream the refused players asked for does get published, after their wait.
    assert!(world.run_until(|| too_late.log().started_at().is_some(), 5_000));
    assert!(too_late.log().started_at() >= Some(Millis(t0.0 + 4_000)));
}
