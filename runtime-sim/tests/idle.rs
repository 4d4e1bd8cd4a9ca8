//! Idle deadlines, reset only by progress, on virtual time: an RTMP publisher that only pings
//! is closed `publish_idle_timeout_ms` after its last media and its name is free at that
//! instant; a connection that never publishes or plays is closed `handshake_timeout_ms` after
//! connect, pings or not; an HTTP slowloris is closed `request_timeout_ms` after connect; an
//! RTMP client pinging a thousand times a second without reading gets ten answers a second
//! and is closed by the send-progress deadline, and one asking to be acknowledged every byte
//! is acknowledged every 4 KiB.

mod common;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;
use common::{client_ip, done};
use mediakit_core::rtmp::command::MAX_PINGS_PER_SECOND;
use mediakit_core::rtmp::{ControlMessage, UserControlEvent};
use mediakit_sim::clients::{
    control_bytes, play_http_flv, publish_rtmp, raw_tcp, status_code, Event, PlayOptions,
    PublishEnd, PublishOptions, RawRtmp, RawTcpOptions,
};
use mediakit_sim::server::{server_config, SimServer};
use mediakit_sim::{now, sleep_until, Millis, World};

/// Waits until the connection's peer closed (true) or `deadline` (false).
async fn closed_by(stream: &mediakit_sim::TcpStream, deadline: Millis) -> bool {
    let mut timer = sleep_until(deadline);
    poll_fn(|cx| {
        if stream.poll_peer_closed(cx).is_ready() {
            return Poll::Ready(true);
        }
        if Pin::new(&mut timer).poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        Poll::Pending
    })
    .await
}

const PUBLISH_IDLE_MS: u64 = 5_000;

#[test]
fn a_publisher_that_only_pings_is_closed_after_its_last_media_and_frees_its_name() {
    let world = World::new(11);
    let mut config = server_config();
    config.rtmp.publish_idle_timeout_ms = PUBLISH_IDLE_MS;
    let server = SimServer::start(&world, config).unwrap();
    let rtmp = server.rtmp_addr().unwrap();
    let t0 = world.now();

    // Two seconds of media, then a Ping Request and an Acknowledgement every 300 ms (never
    // at the same instant as the deadline, so the order of the two cannot matter).
    let idle = publish_rtmp(PublishOptions {
        video_frames: 50,
        end: PublishEnd::Ping { interval_ms: 300 },
        ..PublishOptions::new(client_ip(1), rtmp, "live", "cam")
    });
    // Ten seconds of media, twice the idle timeout: never idle, never closed.
    let busy = publish_rtmp(PublishOptions {
        video_frames: 250,
        ..PublishOptions::new(client_ip(2), rtmp, "live", "busy")
    });
    // Wants the idle publisher's name while it still holds it.
    let early = publish_rtmp(PublishOptions {
        start_delay_ms: 3_000,
        video_frames: 25,
        ..PublishOptions::new(client_ip(3), rtmp, "live", "cam")
    });

    assert!(world.run_until(|| idle.log().closed().is_some(), 20_000));
    let log = idle.log();
    let last_media = log.sent().last().unwrap().0;
    let (closed_at, why) = log.closed().unwrap();
    assert_eq!(why, "server closed");
    assert_eq!(
        closed_at,
        last_media + PUBLISH_IDLE_MS,
        "closed exactly publish_idle_timeout_ms after the last media (sent at {last_media:?})"
    );
    // It kept pinging all along: pings are no progress.
    let pings: Vec<Millis> = log
        .records()
        .iter()
        .filter(|record| record.event == Event::Pinged)
        .map(|record| record.at)
        .collect();
    assert_eq!(pings.len(), 16, "{pings:?}");
    assert_eq!(pings.first(), Some(&(last_media + 300)));
    assert_eq!(pings.last(), Some(&(last_media + 4_800)));
    drop(log);
    assert_eq!(
        early.log().refused(),
        Some((t0 + 3_000, "NetStream.Publish.BadName")),
        "the name was held until the close"
    );

    // The name is free at the very instant the idle publisher was closed.
    let successor = publish_rtmp(PublishOptions {
        video_frames: 25,
        ..PublishOptions::new(client_ip(4), rtmp, "live", "cam")
    });
    assert!(world.run_until(|| successor.log().started_at().is_some(), 1_000));
    assert_eq!(successor.log().started_at(), Some(closed_at));

    assert!(world.run_until(|| done(&busy) && done(&successor), 20_000));
    let busy = busy.log();
    let (busy_closed, why) = busy.closed().unwrap();
    assert_eq!(why, "stopped", "the busy publisher ended itself");
    assert_eq!(busy_closed, busy.sent().last().unwrap().0);
    assert!(busy_closed >= busy.started_at().unwrap() + 2 * PUBLISH_IDLE_MS - 100);
}

const HANDSHAKE_MS: u64 = 4_000;

#[test]
fn a_connection_that_never_publishes_or_plays_is_closed_at_the_handshake_timeout() {
    let world = World::new(12);
    let mut config = server_config();
    config.rtmp.handshake_timeout_ms = HANDSHAKE_MS;
    let server = SimServer::start(&world, config).unwrap();
    let rtmp = server.rtmp_addr().unwrap();

    // Handshake and connect at 1 s, then read whatever comes until the server hangs up.
    let reader = world.spawn(async move {
        mediakit_sim::sleep(1_000).await;
        let connected = now();
        let mut client = RawRtmp::handshake(client_ip(1), rtmp, None).await.unwrap();
        client.queue_connect("live");
        client.send().await.unwrap();
        let messages = client.read_to_end().await.unwrap();
        let codes: Vec<String> = messages.iter().filter_map(status_code).collect();
        (connected, now(), codes)
    });
    // The same at 1.5 s, then a Ping Request every 700 ms, reading nothing.
    let pinger = world.spawn(async move {
        mediakit_sim::sleep(1_500).await;
        let connected = now();
        let mut client = RawRtmp::handshake(client_ip(2), rtmp, None).await.unwrap();
        client.queue_connect("live");
        client.send().await.unwrap();
        let mut pings = 0;
        loop {
            if closed_by(client.stream(), now() + 700).await {
                return (connected, now(), pings);
            }
            client.queue_ping(pings);
            client.send().await.unwrap();
            pings += 1;
        }
    });

    assert!(world.run_until(|| reader.is_finished() && pinger.is_finished(), 10_000));
    let (connected, closed, codes) = reader.take().unwrap();
    assert_eq!(connected, Millis(1_000));
    assert_eq!(
        codes,
        ["NetConnection.Connect.Success"],
        "connect completed"
    );
    assert_eq!(closed, connected + HANDSHAKE_MS);
    let (connected, closed, pings) = pinger.take().unwrap();
    assert_eq!(connected, Millis(1_500));
    assert_eq!(closed, connected + HANDSHAKE_MS, "pings keep nothing alive");
    assert_eq!(pings, 5);
    assert_eq!(server.stats().connections, 0);
}

const REQUEST_MS: u64 = 5_100;

#[test]
fn an_http_slowloris_is_closed_at_the_request_timeout_while_a_player_plays_on() {
    let world = World::new(13);
    let mut config = server_config();
    config.http.request_timeout_ms = REQUEST_MS;
    let server = SimServer::start(&world, config).unwrap();
    let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());

    let publisher = publish_rtmp(PublishOptions {
        video_frames: 250,
        ..PublishOptions::new(client_ip(1), rtmp, "live", "cam")
    });
    let player = play_http_flv(PlayOptions {
        start_delay_ms: 500,
        ..PlayOptions::new(client_ip(2), http, "live", "cam")
    });
    // One byte of a request head every 500 ms: the head would take 20 s.
    let head = format!(
        "GET /live/cam.flv HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
        "z".repeat(12)
    );
    let bytes: Vec<Bytes> = head
        .bytes()
        .map(|byte| Bytes::copy_from_slice(&[byte]))
        .collect();
    assert!(bytes.len() * 500 > 4 * REQUEST_MS as usize);
    let slowloris = raw_tcp(RawTcpOptions {
        interval_ms: 500,
        start_delay_ms: 1_000,
        ..RawTcpOptions::new(client_ip(3), http, bytes)
    });

    assert!(world.run_until(|| done(&slowloris), 10_000));
    let log = slowloris.log();
    let connected = log.connected_at().unwrap();
    assert_eq!(connected, Millis(1_000));
    assert_eq!(
        log.closed(),
        Some((connected + REQUEST_MS, "server closed"))
    );
    // A byte at connect and every 500 ms up to 5 s: the one due at 5.5 s never went.
    assert_eq!(log.bytes_sent(), 11);
    assert_eq!(log.bytes_received(), 0, "closed without an answer");
    drop(log);

    assert!(world.run_until(|| done(&player), 20_000));
    player
        .log()
        .check_delivery(&publisher.log(), &Default::default())
        .unwrap();
    assert!(player.log().first(|e| *e == Event::Ended).is_some());
}

/// Pings a thousand times a second for ten seconds after the handshake, reading nothing
/// (its receive buffer holds `BUFFER` bytes); closed once the server's replies make no
/// progress for `SEND_TIMEOUT_MS`.
const BUFFER: usize = 400;
const SEND_TIMEOUT_MS: u64 = 3_000;
const FLOOD_MS: u64 = 10_000;

#[test]
fn a_ping_flood_gets_ten_answers_a_second_and_is_closed_when_they_back_up() {
    let world = World::new(14);
    let mut config = server_config();
    config.server.send_timeout_ms = SEND_TIMEOUT_MS;
    // Long enough that the setup deadline is not what closes it.
    config.rtmp.handshake_timeout_ms = 60_000;
    let server = SimServer::start(&world, config).unwrap();
    let rtmp = server.rtmp_addr().unwrap();

    // (time, bytes the server wrote that the client has not read) before each ping.
    let samples = Rc::new(RefCell::new(Vec::new()));
    let first_ping = Rc::new(Cell::new(None));
    let flood = {
        let (samples, first_ping) = (Rc::clone(&samples), Rc::clone(&first_ping));
        world.spawn(async move {
            let mut client = RawRtmp::handshake(client_ip(1), rtmp, Some(BUFFER))
                .await
                .unwrap();
            let start = now();
            first_ping.set(Some(start));
            for i in 0..FLOOD_MS {
                if closed_by(client.stream(), start + i).await {
                    return Some(now());
                }
                samples.borrow_mut().push((now(), client.stream().unread()));
                client.queue_ping(i as u32);
                if client.flush().is_err() {
                    return Some(now());
                }
            }
            closed_by(client.stream(), now() + 60_000).await.then(now)
        })
    };

    // The server's queue for the client, sampled every 100 ms.
    let mut queued = Vec::new();
    while !flood.is_finished() && world.now() < Millis(30_000) {
        world.run_for(100);
        queued.push((world.now(), server.stats().output_bytes));
    }
    let closed_at = flood.take().flatten().expect("closed by the server");
    let start = first_ping.get().unwrap();

    // The model: pings at start + i; each one-second window (from its first ping) answers
    // its first ten; the server's chunk encoder writes 18, 10, then 7 bytes per answer.
    let pong = ControlMessage::UserControl(UserControlEvent::PingResponse { timestamp: 0 });
    let answer_bytes = |answers: u64| control_bytes(&vec![pong.clone(); answers as usize]);
    let answered_before = |at: Millis| {
        let pings = at.saturating_since(start);
        let limit = u64::from(MAX_PINGS_PER_SECOND);
        (pings / 1_000) * limit + (pings % 1_000).min(limit)
    };
    let samples = samples.borrow();
    assert!(!samples.is_empty());
    for &(at, unread) in samples.iter() {
        let written = answer_bytes(answered_before(at)).min(BUFFER);
        assert_eq!(unread, written, "at {at:?}: bytes waiting for the client");
    }
    // Answers stop fitting in the client's buffer at the 56th: its ping went at start + 5005.
    let first_stuck = (1..).find(|&n| answer_bytes(n) > BUFFER).unwrap();
    assert_eq!(first_stuck, 56);
    let stuck_at = start + 5_005;
    assert_eq!(answered_before(stuck_at + 1), first_stuck);
    assert_eq!(
        closed_at,
        stuck_at + SEND_TIMEOUT_MS,
        "closed once its queue made no progress for send_timeout_ms"
    );
    // What the server queued beyond the buffer is the answers, ten a second, and no more.
    for &(at, bytes) in &queued {
        if at >= closed_at {
            assert_eq!(bytes, 0, "at {at:?}");
            continue;
        }
        let model = answer_bytes(answered_before(at + 1));
        assert_eq!(
            bytes,
            model - model.min(BUFFER),
            "at {at:?}: queued by the server"
        );
    }
    let stats = server.stats();
    assert_eq!(stats.closed_send_stalled, 1);
    assert_eq!(stats.connections, 0);
}

#[test]
fn an_acknowledgement_window_of_one_byte_is_raised_to_four_kib() {
    use mediakit_core::rtmp::message::types;
    use mediakit_core::rtmp::{ChunkEncoder, MIN_ACK_WINDOW};
    use mediakit_core::OutQueue;

    let world = World::new(15);
    let server = SimServer::start(&world, server_config()).unwrap();
    let rtmp = server.rtmp_addr().unwrap();
    // Asks to be acknowledged every byte, then sends 20,000 small messages (its own
    // Acknowledgements, which the server reads and ignores), then reads what came back.
    let mut controls = vec![ControlMessage::WindowAckSize(1)];
    controls.extend((0..20_000).map(|sequence| ControlMessage::Acknowledgement { sequence }));
    let sent = controls.clone();
    let client = world.spawn(async move {
        let mut client = RawRtmp::handshake(client_ip(1), rtmp, None).await.unwrap();
        for control in &sent {
            client.queue_control(control);
        }
        client.send().await.unwrap();
        mediakit_sim::sleep(10).await;
        client.try_messages().unwrap()
    });
    assert!(world.run_until(|| client.is_finished(), 1_000));
    let acks: Vec<u32> = client
        .take()
        .unwrap()
        .iter()
        .filter(|message| message.header.type_id == types::ACKNOWLEDGEMENT)
        .filter_map(|message| {
            match ControlMessage::parse(types::ACKNOWLEDGEMENT, &message.payload) {
                Ok(ControlMessage::Acknowledgement { sequence }) => Some(sequence),
                _ => None,
            }
        })
        .collect();

    // The model: the server counts each message's bytes as it reads it, and acknowledges
    // once 4 KiB have arrived since the last Acknowledgement (the window takes effect after
    // the message that set it).
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    let (mut received, mut acknowledged, mut expected) = (0u64, 0u64, Vec::new());
    for (n, control) in controls.iter().enumerate() {
        let before = out.queued_bytes();
        encoder.write_control(control, &mut out).unwrap();
        received += (out.queued_bytes() - before) as u64;
        if n > 0 && received - acknowledged >= u64::from(MIN_ACK_WINDOW) {
            acknowledged = received;
            expected.push(received as u32);
        }
    }
    assert_eq!(out.queued_bytes(), 16 + 12 + 19_999 * 5);
    assert_eq!(acks, expected);
    assert_eq!(acks.len(), 24, "not one per message");
}
