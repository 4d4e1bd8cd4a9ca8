//! The clients against small servers written here: a relay of two core RTMP server
//! sessions, and scripted HTTP responses. (The real engine is exercised in `tests/`.)

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use mediakit_core::flv::FlvMuxer;
use mediakit_core::media::Media;
use mediakit_core::rtmp::server::{RtmpServerConfig, RtmpServerSession};
use mediakit_core::session::{LiveSession, SessionEvent};
use mediakit_core::{Millis, OutQueue};

use super::*;
use crate::{now, sleep, sleep_until, TcpListener, World};

fn client(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 1, 0, last))
}

fn server(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// One server session on a simulated connection.
struct End {
    stream: TcpStream,
    session: RtmpServerSession,
    input: BytesMut,
    open: bool,
}

impl End {
    fn flush(&mut self) {
        while !self.session.transmit().is_empty() {
            if self.stream.try_send_queue(self.session.transmit()).is_err() {
                break;
            }
        }
    }
}

/// Relays the first publisher on `publishers` to the first player on `players`, each through
/// a core RTMP server session; ends the play when the publisher goes, and returns when the
/// player goes.
async fn relay(publishers: TcpListener, players: TcpListener) {
    let mut ends = Vec::new();
    for (listener, seed) in [(&publishers, 1), (&players, 2)] {
        let (stream, _) = listener.accept().await.unwrap();
        ends.push(End {
            stream,
            session: RtmpServerSession::new(RtmpServerConfig::default(), now(), seed),
            input: BytesMut::new(),
            open: true,
        });
    }
    let mut ended = false;
    loop {
        let mut forward = Vec::new();
        for end in &mut ends {
            while let Some(event) = end.session.poll_event() {
                match event {
                    SessionEvent::PublishRequested { .. } => end.session.accept_publish(),
                    SessionEvent::PlayRequested { .. } => end.session.accept_play(),
                    SessionEvent::Media(media) => forward.push(media),
                    SessionEvent::PublishStopped => ended = true,
                    _ => {}
                }
            }
        }
        for media in forward {
            ends[1].session.send_media(&media);
        }
        if ended || !ends[0].open {
            ends[1].session.end_of_stream();
            ended = false;
        }
        ends.iter_mut().for_each(End::flush);
        let want_write: Vec<bool> = ends
            .iter_mut()
            .map(|end| !end.session.transmit().is_empty())
            .collect();
        let ready = std::future::poll_fn(|cx| {
            for (i, end) in ends.iter().enumerate() {
                if end.open && end.stream.poll_read_ready(cx).is_ready() {
                    return std::task::Poll::Ready(Some(i));
                }
                if want_write[i] && end.stream.poll_write_ready(cx).is_ready() {
                    return std::task::Poll::Ready(None);
                }
            }
            std::task::Poll::Pending
        })
        .await;
        let Some(i) = ready else { continue };
        let end = &mut ends[i];
        match end.stream.try_read_buf(&mut end.input) {
            Ok(0) | Err(_) if i == 1 => return,
            Ok(0) | Err(_) => end.open = false,
            Ok(_) => {
                let _ = end.session.handle_input(now(), &mut end.input);
            }
        }
    }
}

#[test]
fn an_rtmp_player_gets_every_frame_an_rtmp_publisher_sends_through_core_sessions() {
    let world = World::new(11);
    let publishers = world.listen(server(1935)).unwrap();
    let players = world.listen(server(1936)).unwrap();
    world.spawn(relay(publishers, players));
    let spec = MediaSpec::default();
    let player = play_rtmp(PlayOptions::new(client(2), server(1936), "live", "cam"));
    let publisher = publish_rtmp(PublishOptions {
        start_delay_ms: 200,
        video_frames: 100,
        ..PublishOptions::new(client(1), server(1935), "live", "cam")
    });
    assert!(world.run_until(
        || player.log().first(|e| *e == Event::Ended).is_some(),
        10_000
    ));
    let publisher = publisher.log();
    let player = player.log();
    let started = publisher.started_at().unwrap();
    let sent: Vec<_> = publisher.sent().collect();
    assert_eq!(
        sent.iter()
            .filter(|(_, id)| id.kind == Track::Video)
            .count(),
        100
    );
    for (at, id) in &sent {
        assert_eq!(*at, started + spec.dts(*id) as u64, "{id:?} sent on time");
    }
    let delivered = player.check_delivery(&publisher, &spec).unwrap();
    assert_eq!(delivered.tracks[&Track::Video], (0, 99));
    assert_eq!(delivered.frames, sent.len());
    assert!(player
        .records()
        .iter()
        .any(|r| r.event == Event::Config(Track::Video)));
    assert!(player
        .records()
        .iter()
        .any(|r| r.event == Event::Config(Track::Audio)));
    assert_eq!(publisher.closed().map(|(_, why)| why), Some("stopped"));
    assert!(player.bytes_received() > 100 * 2_000);
}

/// One media item as FLV, framed as an HTTP chunk when `chunked`.
fn flv_piece(muxer: &mut FlvMuxer, media: &Media, chunked: bool) -> Bytes {
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    muxer.write_media(media, &mut arena, &mut out).unwrap();
    muxer.flush(&mut arena, &mut out);
    let body: Vec<u8> = out.segments().flatten().copied().collect();
    if !chunked {
        return Bytes::from(body);
    }
    let mut piece = format!("{:x}\r\n", body.len()).into_bytes();
    piece.extend_from_slice(&body);
    piece.extend_from_slice(b"\r\n");
    Bytes::from(piece)
}

/// Answers one HTTP request on `listener` with `head`, then the FLV of `frames` synthetic
/// frames paced by their timestamps (chunked when `chunked`), then the end.
async fn scripted_flv(listener: TcpListener, head: &'static str, frames: usize, chunked: bool) {
    let (stream, _) = listener.accept().await.unwrap();
    let mut request = BytesMut::new();
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        stream.read_buf(&mut request).await.unwrap();
    }
    stream.write_all(head.as_bytes()).await.unwrap();
    if frames == 0 {
        return;
    }
    let spec = MediaSpec::default();
    let mut source = SyntheticSource::new(spec.clone());
    let mut muxer = FlvMuxer::new(true, true);
    let start = now();
    let items = spec
        .configs()
        .into_iter()
        .chain((0..frames).map(|_| Media::Frame(source.next_frame())));
    for item in items {
        if let Media::Frame(frame) = &item {
            sleep_until(start + frame.dts as u64).await;
        }
        let piece = flv_piece(&mut muxer, &item, chunked);
        stream.write_all(&piece).await.unwrap();
    }
    if !chunked {
        // The body ends where the connection does.
        return;
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    // Wait for the player to hang up, so nothing it sent is left unread.
    let mut rest = BytesMut::new();
    while stream.read_buf(&mut rest).await.is_ok_and(|n| n > 0) {}
}

const OK_CHUNKED: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn an_http_flv_player_decodes_chunked_flv_and_sees_the_end() {
    let world = World::new(3);
    let listener = world.listen(server(8080)).unwrap();
    world.spawn(scripted_flv(listener, OK_CHUNKED, 120, true));
    let player = play_http_flv(PlayOptions::new(client(1), server(8080), "live", "cam"));
    assert!(world.run_until(|| player.is_finished(), 10_000));
    let log = player.log();
    assert_eq!(log.started_at(), Some(Millis(0)));
    let delivered = log.check_stream(&MediaSpec::default()).unwrap();
    let mut source = SyntheticSource::new(MediaSpec::default());
    let videos = (0..120)
        .filter(|_| source.next_frame().codec == mediakit_core::media::Codec::H264)
        .count() as u64;
    assert_eq!(delivered.tracks[&Track::Video], (0, videos - 1));
    assert_eq!(delivered.frames, 120);
    assert!(log.first(|e| *e == Event::Ended).is_some());
    assert_eq!(log.closed().map(|(_, why)| why), Some("stream ended"));
    // The last frame arrived at its own time: the body is paced, not buffered.
    let last = log.frames().last().unwrap();
    assert_eq!(last.0, Millis(MediaSpec::default().dts(last.1) as u64));
}

#[test]
fn an_http_flv_player_reads_an_identity_body_until_close() {
    let world = World::new(3);
    let listener = world.listen(server(8080)).unwrap();
    world.spawn(async move {
        scripted_flv(listener, "HTTP/1.0 200 OK\r\n\r\n", 30, false).await;
    });
    let player = play_http_flv(PlayOptions::new(client(1), server(8080), "live", "cam"));
    assert!(world.run_until(|| player.is_finished(), 10_000));
    let log = player.log();
    assert_eq!(log.check_stream(&MediaSpec::default()).unwrap().frames, 30);
}

#[test]
fn an_http_flv_player_reports_a_refusal() {
    let world = World::new(3);
    let listener = world.listen(server(8080)).unwrap();
    world.spawn(async move {
        scripted_flv(
            listener,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            0,
            true,
        )
        .await;
    });
    let player = play_http_flv(PlayOptions {
        start_delay_ms: 40,
        ..PlayOptions::new(client(1), server(8080), "live", "cam")
    });
    assert!(world.run_until(|| player.is_finished(), 1_000));
    let log = player.log();
    assert_eq!(log.refused(), Some((Millis(40), "404")));
    assert_eq!(log.closed(), Some((Millis(40), "server closed")));
    assert_eq!(log.started_at(), None);
}

#[test]
fn a_stalled_player_stops_reading_and_notices_when_the_server_gives_up() {
    let world = World::new(3);
    let listener = world.listen(server(8080)).unwrap();
    let server_task = world.spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut request = BytesMut::new();
        stream.read_buf(&mut request).await.unwrap();
        stream.write_all(OK_CHUNKED.as_bytes()).await.unwrap();
        // An endless stream, until the socket stays full for a second.
        let spec = MediaSpec::default();
        let mut source = SyntheticSource::new(spec.clone());
        let mut muxer = FlvMuxer::new(true, true);
        let mut pending: Vec<Bytes> = spec
            .configs()
            .iter()
            .map(|config| flv_piece(&mut muxer, config, true))
            .collect();
        let mut sent = 0usize;
        loop {
            if pending.is_empty() {
                pending.push(flv_piece(
                    &mut muxer,
                    &Media::Frame(source.next_frame()),
                    true,
                ));
            }
            match stream.try_write(&pending[0]) {
                Ok(n) if n == pending[0].len() => {
                    sent += n;
                    pending.remove(0);
                }
                Ok(n) => {
                    sent += n;
                    pending[0] = pending[0].slice(n..);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let full_since = now();
                    let writable = async { stream.writable().await.is_ok() };
                    let timeout = async {
                        sleep(1_000).await;
                        false
                    };
                    let mut writable = Box::pin(writable);
                    let mut timeout = Box::pin(timeout);
                    let resumed = std::future::poll_fn(|cx| {
                        use std::future::Future;
                        if let std::task::Poll::Ready(v) = writable.as_mut().poll(cx) {
                            return std::task::Poll::Ready(v);
                        }
                        timeout.as_mut().poll(cx)
                    })
                    .await;
                    if !resumed {
                        return (sent, full_since, now());
                    }
                }
                Err(e) => panic!("{e}"),
            }
            sleep(10).await;
        }
    });
    let player = play_http_flv(PlayOptions {
        stall_after_ms: Some(500),
        receive_buffer: Some(64 * 1024),
        ..PlayOptions::new(client(1), server(8080), "live", "cam")
    });
    assert!(world.run_until(|| player.is_finished(), 60_000));
    let (sent, full_since, gave_up) = server_task.take().unwrap();
    let log = player.log();
    assert_eq!(log.first(|e| *e == Event::Stalled), Some(Millis(500)));
    assert_eq!(log.closed(), Some((gave_up, "server closed")));
    assert_eq!(gave_up, full_since + 1_000);
    // What the player read before it stalled, plus what fills its buffer, is what was sent.
    let head = OK_CHUNKED.len() as u64;
    assert_eq!(log.bytes_received() + 64 * 1024, sent as u64 + head);
    // Until it stalled, the player took a clean stream.
    let delivered = log.check_stream(&MediaSpec::default()).unwrap();
    assert!(delivered.frames > 10, "{delivered:?}");
}

#[test]
fn a_raw_client_pipelines_without_reading_and_sends_slowly() {
    let world = World::new(5);
    let listener = world.listen(server(554)).unwrap();
    // An echo server that gives up on a peer whose socket stays full for 300 ms.
    world.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            crate::spawn(async move {
                let mut buffer = BytesMut::new();
                loop {
                    buffer.clear();
                    if stream.read_buf(&mut buffer).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut rest = &buffer[..];
                    while !rest.is_empty() {
                        match stream.try_write(rest) {
                            Ok(n) => rest = &rest[n..],
                            Err(_) => {
                                sleep(300).await;
                                if stream.try_write(rest).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    let pipelined: Vec<Bytes> = (0..20_000)
        .map(|i| Bytes::from(format!("OPTIONS * RTSP/1.0\r\nCSeq: {i}\r\n\r\n")))
        .collect();
    let total: usize = pipelined.iter().map(Bytes::len).sum();
    let stalled = raw_tcp(RawTcpOptions {
        read: false,
        receive_buffer: Some(8 * 1024),
        ..RawTcpOptions::new(client(1), server(554), pipelined)
    });
    let slow = raw_tcp(RawTcpOptions {
        interval_ms: 100,
        ..RawTcpOptions::new(
            client(2),
            server(554),
            vec![Bytes::from_static(b"GET / HTTP/1.1\r\n"); 5],
        )
    });
    world.run_for(5_000);
    let stalled = stalled.log();
    assert_eq!(stalled.first(|e| *e == Event::Stalled), Some(Millis(0)));
    assert_eq!(stalled.closed().map(|(_, why)| why), Some("server closed"));
    assert!(
        stalled.bytes_sent() < total as u64,
        "the server stopped reading"
    );
    assert_eq!(stalled.bytes_received(), 0);
    let slow = slow.log();
    assert_eq!(slow.bytes_sent(), 5 * 16);
    assert_eq!(slow.bytes_received(), 5 * 16);
    assert!(!slow
        .records()
        .iter()
        .any(|r| matches!(r.event, Event::Closed(_))));
}

#[test]
fn a_udp_flood_sends_bursts_until_its_time_is_up() {
    let world = World::new(9);
    let sink = world.bind_udp(server(30_000)).unwrap();
    sink.set_receive_buffer(100 * 1200);
    let flood = udp_flood(UdpFloodOptions {
        burst: 50,
        interval_ms: 10,
        duration_ms: 100,
        ..UdpFloodOptions::new(SocketAddr::new(client(1), 0), server(30_000))
    });
    world.run_for(1_000);
    let log = flood.log();
    assert_eq!(log.datagrams_sent(), 500);
    assert_eq!(log.bytes_sent(), 500 * 1200);
    assert_eq!(log.closed(), Some((Millis(100), "done")));
    assert_eq!(
        sink.queued(),
        100,
        "the sink's queue holds 100; the rest were dropped"
    );
    let stats = world.net_stats();
    assert_eq!((stats.udp_delivered, stats.udp_overflowed), (100, 400));
    let (first, from) = sink.try_recv().unwrap();
    assert_eq!(&first[..8], &0u64.to_be_bytes());
    assert_eq!(from.ip(), client(1));
}

#[test]
fn a_raw_rtmp_client_connects_publishes_and_pings_a_core_session() {
    use mediakit_core::rtmp::{ControlMessage, UserControlEvent};
    let world = World::new(12);
    let listener = world.listen(server(1935)).unwrap();
    // A core server session that answers everything and accepts the publish.
    let served = world.spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut session = RtmpServerSession::new(RtmpServerConfig::default(), now(), 1);
        let mut input = BytesMut::new();
        let mut events = Vec::new();
        loop {
            while let Some(event) = session.poll_event() {
                if let SessionEvent::PublishRequested { .. } = event {
                    session.accept_publish();
                }
                events.push(event);
            }
            stream.send_queue(session.transmit()).await.unwrap();
            match stream.read_buf(&mut input).await {
                Ok(0) | Err(_) => return events,
                Ok(_) => session.handle_input(now(), &mut input).unwrap(),
            }
        }
    });
    let client = world.spawn(async {
        let mut client = RawRtmp::handshake(client(1), server(1935), None)
            .await
            .unwrap();
        client.queue_connect("live");
        client.queue_publish("cam");
        client.queue_ping(7);
        client.send().await.unwrap();
        let mut seen = Vec::new();
        while let Some(message) = client.next_message().await.unwrap() {
            let pong = ControlMessage::parse(message.header.type_id, &message.payload);
            if let Ok(ControlMessage::UserControl(UserControlEvent::PingResponse { timestamp })) =
                pong
            {
                seen.push(format!("pong {timestamp}"));
            }
            if let Some(code) = status_code(&message) {
                seen.push(code);
            }
            if seen.len() == 3 {
                break;
            }
        }
        seen
    });
    assert!(world.run_until(|| client.is_finished(), 1_000));
    assert_eq!(
        client.take().unwrap(),
        // The pong is queued as the input is read, the publish answer once it is accepted.
        [
            "NetConnection.Connect.Success",
            "pong 7",
            "NetStream.Publish.Start"
        ]
    );
    world.run_for(10);
    let events = served.take().unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::PublishRequested { key } if key.stream() == "cam")));
}

#[test]
fn control_bytes_follow_the_chunk_encoders_header_compression() {
    use mediakit_core::rtmp::{ControlMessage, UserControlEvent};
    let pong = ControlMessage::UserControl(UserControlEvent::PingResponse { timestamp: 3 });
    // A full header (12 bytes) first, then only the timestamp delta (4), then none (1).
    let sizes: Vec<usize> = (0..5)
        .map(|n| control_bytes(&vec![pong.clone(); n]))
        .collect();
    assert_eq!(sizes, [0, 18, 28, 35, 42]);
}
