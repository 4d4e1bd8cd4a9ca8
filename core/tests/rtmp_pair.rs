//! RTMP client and server sessions driven against each other in memory, with virtual time and
//! arbitrary splits of the bytes into reads in both directions.

use bytes::{Bytes, BytesMut};
use mediakit_core::amf0::{self, Amf0Value};
use mediakit_core::hub::StreamKey;
use mediakit_core::media::TrackConfig;
use mediakit_core::media::{AacConfig, AvcConfig, Codec, Frame, HevcConfig, Media, Metadata};
use mediakit_core::rtmp::client::{ClientEvent, ClientMode, RtmpClientConfig, RtmpClientSession};
use mediakit_core::rtmp::command::MAX_PINGS_PER_SECOND;
use mediakit_core::rtmp::server::{RtmpServerConfig, RtmpServerSession};
use mediakit_core::rtmp::{
    ChunkDecoder, ChunkEncoder, ControlMessage, MessageHeader, UserControlEvent, MIN_ACK_WINDOW,
};
use mediakit_core::session::{LiveSession, Rejection, RequestKind, SessionEvent};
use mediakit_core::{Millis, OutQueue};
use proptest::prelude::*;

/// One direction of the connection: bytes in flight and the receiver's read buffer.
#[derive(Debug, Default)]
struct Link {
    wire: Vec<u8>,
    rx: BytesMut,
    reads: Vec<usize>,
    next_read: usize,
    /// Everything that crossed this link, for the fuzz corpus.
    log: Vec<u8>,
}

impl Link {
    fn with_reads(reads: Vec<usize>) -> Self {
        Self {
            reads,
            ..Self::default()
        }
    }

    /// Moves what the sender queued onto the wire.
    fn take_from(&mut self, out: &mut OutQueue) -> bool {
        let queued = out.queued_bytes();
        for segment in out.segments() {
            self.wire.extend_from_slice(segment);
            self.log.extend_from_slice(segment);
        }
        out.advance(queued);
        queued > 0
    }

    /// Hands the wire's bytes to the receiver, one read at a time.
    fn deliver<E: std::fmt::Debug>(
        &mut self,
        mut receive: impl FnMut(&mut BytesMut) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut at = 0;
        while at < self.wire.len() {
            let read = match self.reads.get(self.next_read % self.reads.len().max(1)) {
                Some(&read) => read.max(1),
                None => usize::MAX,
            };
            self.next_read += 1;
            let end = self.wire.len().min(at.saturating_add(read));
            self.rx.extend_from_slice(&self.wire[at..end]);
            at = end;
            receive(&mut self.rx)?;
        }
        self.wire.clear();
        Ok(())
    }
}

/// A client and a server session joined by two links.
struct Pair {
    client: RtmpClientSession,
    server: RtmpServerSession,
    now: Millis,
    up: Link,
    down: Link,
    client_events: Vec<ClientEvent>,
    server_events: Vec<SessionEvent>,
}

impl Pair {
    fn new(client: RtmpClientConfig, server: RtmpServerConfig) -> Self {
        Self::with_reads(client, server, Vec::new(), Vec::new())
    }

    fn with_reads(
        client: RtmpClientConfig,
        server: RtmpServerConfig,
        up_reads: Vec<usize>,
        down_reads: Vec<usize>,
    ) -> Self {
        let now = Millis(1_000);
        Self {
            client: RtmpClientSession::new(client, now, 1),
            server: RtmpServerSession::new(server, now, 2),
            now,
            up: Link::with_reads(up_reads),
            down: Link::with_reads(down_reads),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// Shuttles bytes until neither side has anything to send, answering server events with
    /// `hub`. Panics on a session error: in a pair of our own sessions there must be none.
    fn run(&mut self, hub: &mut impl FnMut(&mut RtmpServerSession, &SessionEvent)) {
        for _ in 0..1_000 {
            self.now = self.now + 1;
            let now = self.now;
            let moved_up = self.up.take_from(self.client.transmit());
            let server = &mut self.server;
            self.up
                .deliver(|rx| server.handle_input(now, rx))
                .expect("server input");
            while let Some(event) = self.server.poll_event() {
                hub(&mut self.server, &event);
                self.server_events.push(event);
            }
            let moved_down = self.down.take_from(self.server.transmit());
            let client = &mut self.client;
            self.down
                .deliver(|rx| client.handle_input(now, rx))
                .expect("client input");
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
            }
            if !moved_up && !moved_down {
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    /// A pair run until quiet after connecting, with `hub` answering the server.
    fn settled(client: RtmpClientConfig, server: RtmpServerConfig, hub: &mut Hub) -> Self {
        let mut pair = Self::new(client, server);
        settle(&mut pair, hub);
        pair
    }

    fn take_server_media(&mut self) -> Vec<Media> {
        take_media(&mut self.server_events, |event| match event {
            SessionEvent::Media(media) => Ok(media),
            other => Err(other),
        })
    }

    fn take_client_media(&mut self) -> Vec<Media> {
        take_media(&mut self.client_events, |event| match event {
            ClientEvent::Media(media) => Ok(media),
            other => Err(other),
        })
    }
}

/// Removes the media events from `events`, keeping the others in order.
fn take_media<E>(events: &mut Vec<E>, media: impl Fn(E) -> Result<Media, E>) -> Vec<Media> {
    let mut taken = Vec::new();
    let mut rest = Vec::new();
    for event in events.drain(..) {
        match media(event) {
            Ok(item) => taken.push(item),
            Err(other) => rest.push(other),
        }
    }
    *events = rest;
    taken
}

/// The in-test hub: one published name; publishing it twice or playing another is refused.
#[derive(Default)]
struct Hub {
    published: Option<String>,
}

impl Hub {
    fn on_event(&mut self, server: &mut RtmpServerSession, event: &SessionEvent) {
        match event {
            SessionEvent::PublishRequested { key } => {
                let key = key.to_string();
                if self.published.as_deref() == Some(&key) {
                    server.reject(Rejection::AlreadyPublishing);
                } else {
                    self.published = Some(key);
                    server.accept_publish();
                }
            }
            SessionEvent::PlayRequested { key } => {
                if self.published.as_deref() == Some(&key.to_string()) {
                    server.accept_play();
                } else {
                    server.reject(Rejection::NotFound);
                }
            }
            _ => {}
        }
    }
}

fn client_config(mode: ClientMode, stream: &str) -> RtmpClientConfig {
    RtmpClientConfig::new(mode, "live", stream, "rtmp://localhost/live")
}

fn avc_config() -> Media {
    let config = AvcConfig::from_parameter_sets(
        Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac]),
        Bytes::from_static(&[0x68, 0xeb]),
    )
    .unwrap();
    Media::Config(TrackConfig::Avc(config))
}

fn hevc_config() -> Media {
    let mut record = vec![
        1u8, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0,
        0x0f, 3,
    ];
    for (kind, nal) in [
        (32u8, &[0x40u8, 0x01, 0x0c][..]),
        (33, &[0x42, 0x01, 0x01]),
        (34, &[0x44, 0x01, 0xc1]),
    ] {
        record.extend_from_slice(&[0x80 | kind, 0, 1, 0, nal.len() as u8]);
        record.extend_from_slice(nal);
    }
    Media::Config(TrackConfig::Hevc(
        HevcConfig::parse(Bytes::from(record)).unwrap(),
    ))
}

fn aac_config() -> Media {
    Media::Config(TrackConfig::Aac(AacConfig::new(2, 44_100, 2).unwrap()))
}

fn metadata(width: f64) -> Media {
    let mut amf = BytesMut::new();
    amf0::encode_str("onMetaData", &mut amf);
    amf0::encode(
        &Amf0Value::EcmaArray(vec![
            ("width".into(), Amf0Value::Number(width)),
            ("encoder".into(), Amf0Value::string("mediakit test")),
        ]),
        &mut amf,
    );
    Media::Metadata(Metadata { amf0: amf.freeze() })
}

fn frame(codec: Codec, dts: i64, cts: i64, keyframe: bool, payload: &[u8]) -> Media {
    Media::Frame(Frame {
        codec,
        dts,
        pts: dts + cts,
        keyframe,
        payload: Bytes::copy_from_slice(payload),
    })
}

/// A short stream: configurations, metadata, H.264 with B-frame offsets and AAC.
fn sample_stream() -> Vec<Media> {
    let big = vec![0xab; 70_000];
    vec![
        metadata(1280.0),
        avc_config(),
        aac_config(),
        frame(Codec::H264, 0, 80, true, &[0, 0, 0, 2, 0x65, 0x88]),
        frame(Codec::Aac, 0, 0, true, &[0x21, 0x10, 0x04]),
        frame(Codec::H264, 40, -40, false, &[0, 0, 0, 2, 0x41, 0x9a]),
        frame(Codec::Aac, 23, 0, true, &[0x21, 0x10, 0x05]),
        frame(Codec::H264, 80, 0, false, &big),
        // Past the 24-bit timestamp field: extended timestamps.
        frame(Codec::H264, 0x0100_0000, 40, true, &[0, 0, 0, 1, 0x65]),
        frame(Codec::Aac, 0x0100_0010, 0, true, &[0x21]),
    ]
}

/// Runs the pair until it is quiet, with `hub` answering the server.
fn settle(pair: &mut Pair, hub: &mut Hub) {
    pair.run(&mut |server, event| hub.on_event(server, event));
}

#[test]
fn publish_flow_delivers_media_to_the_server() {
    let mut hub = Hub::default();
    let mut pair = Pair::new(
        client_config(ClientMode::Publish, "cam?token=secret"),
        RtmpServerConfig::default(),
    );
    // Nothing may be sent before the server accepted the publish.
    assert!(!pair.client.send_media(&avc_config()));
    settle(&mut pair, &mut hub);
    assert_eq!(
        pair.server_events,
        vec![SessionEvent::PublishRequested {
            key: StreamKey::parse("live", "cam").unwrap()
        }]
    );
    assert_eq!(pair.client_events, vec![ClientEvent::Publishing]);
    assert!(pair.client.is_publishing());
    assert_eq!(pair.client.stream_id(), Some(1));
    pair.server_events.clear();
    pair.client_events.clear();

    let stream = sample_stream();
    for media in &stream {
        assert!(pair.client.send_media(media));
    }
    settle(&mut pair, &mut hub);
    assert_eq!(pair.take_server_media(), stream);

    pair.client.stop();
    settle(&mut pair, &mut hub);
    assert_eq!(pair.server_events, vec![SessionEvent::PublishStopped]);
    assert_eq!(
        pair.client_events,
        vec![ClientEvent::Closed { reason: "stopped" }]
    );
    assert!(pair.client.is_closed());
    assert!(!pair.client.send_media(&avc_config()));
}

#[test]
fn play_flow_receives_what_the_server_sends_then_the_end() {
    let mut hub = Hub {
        published: Some("live/cam".into()),
    };
    let mut pair = Pair::settled(
        client_config(ClientMode::Play, "cam?token=1"),
        RtmpServerConfig {
            chunk_size: 4096,
            ..RtmpServerConfig::default()
        },
        &mut hub,
    );
    assert_eq!(
        pair.server_events,
        vec![SessionEvent::PlayRequested {
            key: StreamKey::parse("live", "cam").unwrap()
        }]
    );
    assert_eq!(pair.client_events, vec![ClientEvent::Playing]);

    let mut stream = sample_stream();
    stream.push(hevc_config());
    stream.push(frame(
        Codec::H265,
        0x0100_0020,
        -3,
        false,
        &[0, 0, 0, 1, 0x02],
    ));
    for media in &stream {
        pair.server.send_media(media);
    }
    settle(&mut pair, &mut hub);
    // The `|RtmpSampleAccess` and `NetStream.Data.Start` data messages are not media.
    assert_eq!(pair.take_client_media(), stream);

    pair.server.end_of_stream();
    settle(&mut pair, &mut hub);
    assert_eq!(
        pair.client_events,
        vec![ClientEvent::Playing, ClientEvent::StreamEnded]
    );
    pair.client.stop();
    settle(&mut pair, &mut hub);
    assert_eq!(
        pair.client_events.last(),
        Some(&ClientEvent::Closed { reason: "stopped" })
    );
}

#[test]
fn second_publisher_of_a_name_is_rejected_with_bad_name() {
    let mut hub = Hub {
        published: Some("live/cam".into()),
    };
    let mut pair = Pair::settled(
        client_config(ClientMode::Publish, "cam"),
        RtmpServerConfig::default(),
        &mut hub,
    );
    assert_eq!(
        pair.client_events,
        vec![
            ClientEvent::Rejected {
                code: "NetStream.Publish.BadName".into(),
                description: "stream is already being published".into()
            },
            ClientEvent::Closed { reason: "rejected" }
        ]
    );
    assert!(!pair.client.send_media(&avc_config()));
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn playing_an_unknown_stream_is_rejected_with_not_found() {
    let mut hub = Hub::default();
    let pair = Pair::settled(
        client_config(ClientMode::Play, "nothing"),
        RtmpServerConfig::default(),
        &mut hub,
    );
    assert_eq!(
        pair.client_events,
        vec![
            ClientEvent::Rejected {
                code: "NetStream.Play.StreamNotFound".into(),
                description: "no such stream".into()
            },
            ClientEvent::Closed { reason: "rejected" }
        ]
    );
}

#[test]
fn client_setup_times_out_without_a_server() {
    let mut client = RtmpClientSession::new(client_config(ClientMode::Play, "cam"), Millis(100), 3);
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline, Millis(15_100));
    client.handle_timeout(Millis(15_099));
    assert_eq!(client.poll_event(), None);
    client.handle_timeout(deadline);
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::Closed {
            reason: "setup timeout"
        })
    );
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn player_idle_timeout_counts_from_the_last_input() {
    let mut hub = Hub {
        published: Some("live/cam".into()),
    };
    let mut config = client_config(ClientMode::Play, "cam");
    config.idle_timeout_ms = 500;
    let mut pair = Pair::new(config, RtmpServerConfig::default());
    settle(&mut pair, &mut hub);
    assert_eq!(pair.client_events, vec![ClientEvent::Playing]);
    // Media arrives at 5 s; an empty read does not count as input.
    pair.server.send_media(&aac_config());
    let mut rx = BytesMut::new();
    pair.down.take_from(pair.server.transmit());
    rx.extend_from_slice(&pair.down.wire);
    pair.client.handle_input(Millis(5_000), &mut rx).unwrap();
    pair.client
        .handle_input(Millis(5_200), &mut BytesMut::new())
        .unwrap();
    assert_eq!(pair.client.poll_timeout(), Some(Millis(5_500)));
    pair.client.handle_timeout(Millis(5_499));
    assert!(matches!(
        pair.client.poll_event(),
        Some(ClientEvent::Media(_))
    ));
    assert_eq!(pair.client.poll_event(), None);
    pair.client.handle_timeout(Millis(5_500));
    assert_eq!(
        pair.client.poll_event(),
        Some(ClientEvent::Closed {
            reason: "idle timeout"
        })
    );
}

/// S0, S1 and S2: what a server sends before its first chunk.
const SERVER_HANDSHAKE_LEN: usize = 1 + 1536 + 1536;

/// The chunk stream the tests' own control messages travel on, apart from the real client's
/// (so its header compression is not disturbed).
const TEST_CSID: u32 = 60;

/// Sends `controls` to the server at `now` as a client would, beside the real client's
/// messages; the server's answers stay queued.
fn send_controls(pair: &mut Pair, now: u64, controls: &[ControlMessage]) -> usize {
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    for control in controls {
        let header = MessageHeader {
            csid: TEST_CSID,
            timestamp: 0,
            type_id: control.type_id(),
            stream_id: 0,
        };
        encoder
            .write(&header, &[control.to_payload()], &mut out)
            .unwrap();
    }
    let mut rx = BytesMut::new();
    for segment in out.segments() {
        rx.extend_from_slice(segment);
    }
    let sent = rx.len();
    pair.server.handle_input(Millis(now), &mut rx).unwrap();
    assert!(rx.is_empty());
    sent
}

fn ping(timestamp: u32) -> ControlMessage {
    ControlMessage::UserControl(UserControlEvent::PingRequest { timestamp })
}

/// Every control message the server has sent so far, decoded from the whole down link (what
/// is still queued is moved onto it, not delivered).
fn server_controls(pair: &mut Pair) -> Vec<ControlMessage> {
    pair.down.take_from(pair.server.transmit());
    let mut bytes = BytesMut::from(&pair.down.log[SERVER_HANDSHAKE_LEN..]);
    let mut decoder = ChunkDecoder::new(1 << 24);
    let mut controls = Vec::new();
    while let Some(message) = decoder.decode(&mut bytes).unwrap() {
        if !ControlMessage::is_control(message.header.type_id) {
            continue;
        }
        let control = ControlMessage::parse(message.header.type_id, &message.payload).unwrap();
        if let ControlMessage::SetChunkSize(size) = control {
            decoder.set_chunk_size(size).unwrap();
        }
        controls.push(control);
    }
    assert!(bytes.is_empty());
    controls
}

fn count_pongs(controls: &[ControlMessage]) -> usize {
    controls
        .iter()
        .filter(|c| {
            matches!(
                c,
                ControlMessage::UserControl(UserControlEvent::PingResponse { .. })
            )
        })
        .count()
}

/// A publisher connected and accepted; returns the pair and the time the publish was
/// accepted at (the server's idle clock starts there).
fn publishing(hub: &mut Hub) -> (Pair, Millis) {
    let pair = Pair::settled(
        client_config(ClientMode::Publish, "cam"),
        RtmpServerConfig::default(),
        hub,
    );
    assert_eq!(pair.client_events, vec![ClientEvent::Publishing]);
    let accepted = pair.server.poll_timeout().unwrap() - 20_000;
    assert!(accepted > Millis(1_000) && accepted <= pair.now);
    (pair, accepted)
}

#[test]
fn a_one_byte_window_gets_at_most_one_acknowledgement_per_floor() {
    let mut hub = Hub::default();
    let (mut pair, _) = publishing(&mut hub);
    let before = server_controls(&mut pair).len();
    let now = pair.now.0;
    let injected = send_controls(&mut pair, now, &[ControlMessage::WindowAckSize(1)]);
    for media in &sample_stream() {
        assert!(pair.client.send_media(media));
    }
    settle(&mut pair, &mut hub);
    let received = pair.up.log.len() - SERVER_HANDSHAKE_LEN + injected;
    let acks: Vec<u32> = server_controls(&mut pair)[before..]
        .iter()
        .filter_map(|c| match c {
            ControlMessage::Acknowledgement { sequence } => Some(*sequence),
            _ => None,
        })
        .collect();
    assert!(!acks.is_empty());
    assert!(
        acks.len() <= received / MIN_ACK_WINDOW as usize,
        "{} acknowledgements for {received} bytes",
        acks.len()
    );
    for pair in acks.windows(2) {
        assert!(pair[1] - pair[0] >= MIN_ACK_WINDOW, "{acks:?}");
    }
}

#[test]
fn a_thousand_pings_in_a_second_are_answered_at_most_ten_times() {
    let mut hub = Hub::default();
    let (mut pair, _) = publishing(&mut hub);
    let start = pair.now.0 + 1;
    let before = count_pongs(&server_controls(&mut pair));
    for i in 0..1_000u32 {
        send_controls(&mut pair, start + u64::from(i % 1_000), &[ping(i)]);
    }
    let answered = count_pongs(&server_controls(&mut pair)) - before;
    assert!(answered <= MAX_PINGS_PER_SECOND as usize, "{answered}");
    assert!(answered > 0);
    // In a burst within one read, too.
    let batch: Vec<ControlMessage> = (0..1_000).map(ping).collect();
    send_controls(&mut pair, start + 5_000, &batch);
    let burst = count_pongs(&server_controls(&mut pair)) - before - answered;
    assert_eq!(burst, MAX_PINGS_PER_SECOND as usize);
}

#[test]
fn a_publisher_sending_only_pings_is_closed_at_the_idle_timeout() {
    let mut hub = Hub::default();
    let (mut pair, accepted) = publishing(&mut hub);
    pair.server_events.clear();
    let deadline = accepted + 20_000;
    let mut now = accepted.0;
    while now + 500 < deadline.0 {
        now += 500;
        send_controls(&mut pair, now, &[ping(now as u32)]);
        // Commands and acknowledgements count no more than pings.
        send_controls(
            &mut pair,
            now,
            &[ControlMessage::Acknowledgement { sequence: 1 }],
        );
        assert_eq!(pair.server.poll_timeout(), Some(deadline), "at {now}");
        pair.server.handle_timeout(Millis(now));
    }
    assert_eq!(pair.server.poll_event(), None);
    pair.server.handle_timeout(deadline);
    assert_eq!(
        pair.server.poll_event(),
        Some(SessionEvent::Closed {
            reason: "publisher idle timeout"
        })
    );
}

#[test]
fn a_publisher_sending_media_is_not_closed() {
    let mut hub = Hub::default();
    let (mut pair, accepted) = publishing(&mut hub);
    pair.server_events.clear();
    let mut now = accepted.0;
    for i in 0..60 {
        now += 1_000;
        pair.now = Millis(now);
        let item = frame(Codec::Aac, i * 1_000, 0, true, &[0x21, 0x10]);
        assert!(pair.client.send_media(&item));
        settle(&mut pair, &mut hub);
        let deadline = pair.server.poll_timeout().unwrap();
        assert!(deadline > Millis(now + 19_000), "at {now}: {deadline:?}");
        pair.server.handle_timeout(pair.now);
    }
    assert_eq!(pair.take_server_media().len(), 60);
    assert_eq!(pair.server_events, vec![]);
}

#[test]
fn an_idle_connection_after_unpublish_is_closed_setup_timeout_later() {
    let mut hub = Hub::default();
    let (mut pair, _) = publishing(&mut hub);
    pair.server_events.clear();
    pair.now = Millis(100_000);
    pair.client.stop();
    settle(&mut pair, &mut hub);
    assert_eq!(pair.server_events, vec![SessionEvent::PublishStopped]);
    // The unpublish arrived within the run's first few steps after 100 s.
    let deadline = pair.server.poll_timeout().unwrap();
    assert!(
        deadline > Millis(115_000) && deadline <= pair.now + 15_000,
        "{deadline:?}"
    );
    // Pings keep nothing alive.
    send_controls(&mut pair, 110_000, &[ping(1)]);
    assert_eq!(pair.server.poll_timeout(), Some(deadline));
    pair.server.handle_timeout(deadline - 1);
    assert_eq!(pair.server.poll_event(), None);
    pair.server.handle_timeout(deadline);
    assert_eq!(
        pair.server.poll_event(),
        Some(SessionEvent::Closed {
            reason: "setup timeout"
        })
    );
}

#[test]
fn bad_stream_names_are_refused_by_the_server_session() {
    let long = "x".repeat(200);
    let cases = [
        (
            ClientMode::Publish,
            "a b",
            RequestKind::Publish,
            "NetStream.Publish.BadName",
        ),
        (
            ClientMode::Publish,
            long.as_str(),
            RequestKind::Publish,
            "NetStream.Publish.BadName",
        ),
        (
            ClientMode::Play,
            "..",
            RequestKind::Play,
            "NetStream.Play.StreamNotFound",
        ),
        (
            ClientMode::Play,
            "?token=1",
            RequestKind::Play,
            "NetStream.Play.StreamNotFound",
        ),
    ];
    for (mode, stream, kind, code) in cases {
        let mut hub = Hub::default();
        let pair = Pair::settled(
            client_config(mode, stream),
            RtmpServerConfig::default(),
            &mut hub,
        );
        match pair.server_events.as_slice() {
            [SessionEvent::BadStreamName { request, .. }, SessionEvent::Closed { .. }] => {
                assert_eq!(*request, kind, "{stream}");
            }
            other => panic!("{stream}: {other:?}"),
        }
        assert!(
            matches!(
                pair.client_events.first(),
                Some(ClientEvent::Rejected { code: got, .. }) if got == code
            ),
            "{stream}: {:?}",
            pair.client_events
        );
    }
    // An application name that is no key part is refused the same way.
    let config = RtmpClientConfig::new(ClientMode::Publish, "", "cam", "rtmp://localhost/");
    let pair = Pair::settled(config, RtmpServerConfig::default(), &mut Hub::default());
    assert!(matches!(
        pair.server_events.as_slice(),
        [
            SessionEvent::BadStreamName {
                request: RequestKind::Publish,
                ..
            },
            SessionEvent::Closed { .. }
        ]
    ));
}

/// A valid client handshake and connect, as the bytes a server reads first.
fn client_preamble() -> Vec<u8> {
    let pair = Pair::settled(
        client_config(ClientMode::Publish, "cam"),
        RtmpServerConfig::default(),
        &mut Hub::default(),
    );
    pair.up.log
}

#[test]
fn garbage_after_a_valid_handshake_is_an_error_for_the_server() {
    let preamble = client_preamble();
    // A format 1 header on a chunk stream that never had a message.
    let garbage = [0x47, 0, 0, 0, 0, 0, 4, 20, 1, 2, 3, 4];
    let mut server = RtmpServerSession::new(RtmpServerConfig::default(), Millis(0), 5);
    let mut rx = BytesMut::from(&preamble[..]);
    server.handle_input(Millis(1), &mut rx).unwrap();
    let mut rx = BytesMut::from(&garbage[..]);
    let error = server.handle_input(Millis(2), &mut rx).unwrap_err();
    // Errors latch.
    assert_eq!(
        server.handle_input(Millis(3), &mut BytesMut::new()),
        Err(error)
    );
}

#[test]
fn garbage_after_a_valid_handshake_is_an_error_for_the_client() {
    let mut pair = Pair::settled(
        client_config(ClientMode::Publish, "cam"),
        RtmpServerConfig::default(),
        &mut Hub::default(),
    );
    // A command message whose body is not AMF0.
    let garbage = [0x03, 0, 0, 0, 0, 0, 2, 20, 0, 0, 0, 0, 0xff, 0xff];
    let mut rx = BytesMut::from(&garbage[..]);
    let error = pair
        .client
        .handle_input(Millis(9_000), &mut rx)
        .unwrap_err();
    assert_eq!(
        pair.client
            .handle_input(Millis(9_001), &mut BytesMut::from(&[0u8][..])),
        Err(error)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever follows a valid handshake, the server session returns errors, never panics,
    /// and an error latches.
    #[test]
    fn server_survives_arbitrary_chunk_bytes(
        garbage in prop::collection::vec(any::<u8>(), 0..2_000),
        read in 1usize..300,
    ) {
        let preamble = client_preamble();
        let mut server = RtmpServerSession::new(RtmpServerConfig::default(), Millis(0), 5);
        let mut rx = BytesMut::new();
        let mut failed = None;
        for piece in preamble.chunks(read).chain(garbage.chunks(read)) {
            rx.extend_from_slice(piece);
            if let Err(error) = server.handle_input(Millis(1), &mut rx) {
                failed = Some(error);
                break;
            }
        }
        if let Some(error) = failed {
            // Nothing of the peer's choosing makes the log line long.
            prop_assert!(error.to_string().len() < 160, "{}", error);
            prop_assert_eq!(server.handle_input(Millis(2), &mut BytesMut::new()), Err(error));
        }
    }

    /// Media published through a client and server, handed to a second server and played by
    /// a second client, arrives unchanged for any chunk sizes and read splits.
    #[test]
    fn media_survives_publish_and_play(
        stream in media_sequence(),
        chunk_sizes in prop::array::uniform4(chunk_size()),
        reads in prop::array::uniform4(prop::collection::vec(1usize..3_000, 1..6)),
    ) {
        let [publisher_chunk, ingest_chunk, egress_chunk, player_chunk] = chunk_sizes;
        let [up_a, down_a, up_b, down_b] = reads;
        let mut hub = Hub::default();

        let mut config = client_config(ClientMode::Publish, "relay?k=v");
        config.chunk_size = publisher_chunk;
        let ingest = RtmpServerConfig { chunk_size: ingest_chunk, ..RtmpServerConfig::default() };
        let mut a = Pair::with_reads(config, ingest, up_a, down_a);
        a.run(&mut |server, event| hub.on_event(server, event));
        prop_assert_eq!(&a.client_events, &vec![ClientEvent::Publishing]);

        let mut config = client_config(ClientMode::Play, "relay");
        config.chunk_size = player_chunk;
        let egress = RtmpServerConfig { chunk_size: egress_chunk, ..RtmpServerConfig::default() };
        let mut b = Pair::with_reads(config, egress, up_b, down_b);
        b.run(&mut |server, event| hub.on_event(server, event));
        prop_assert_eq!(&b.client_events, &vec![ClientEvent::Playing]);

        for media in &stream {
            prop_assert!(a.client.send_media(media));
        }
        a.run(&mut |server, event| hub.on_event(server, event));
        let ingested = a.take_server_media();
        prop_assert_eq!(&ingested, &stream);
        for media in &ingested {
            b.server.send_media(media);
        }
        b.run(&mut |server, event| hub.on_event(server, event));
        prop_assert_eq!(b.take_client_media(), stream);
    }
}

fn chunk_size() -> impl Strategy<Value = u32> {
    prop_oneof![Just(128u32), 1u32..300, 300u32..70_000]
}

/// Arbitrary media items that survive the FLV tag body round trip: dts within 32 bits,
/// composition offsets within 24 bits, AAC always a keyframe with pts = dts.
fn media_sequence() -> impl Strategy<Value = Vec<Media>> {
    let payload = || prop::collection::vec(any::<u8>(), 0..5_000);
    let video = (
        prop_oneof![Just(Codec::H264), Just(Codec::H265)],
        0i64..=i64::from(u32::MAX),
        -0x80_0000i64..0x80_0000,
        any::<bool>(),
        payload(),
    )
        .prop_map(|(codec, dts, cts, key, data)| frame(codec, dts, cts, key, &data));
    let audio = (0i64..=i64::from(u32::MAX), payload())
        .prop_map(|(dts, data)| frame(Codec::Aac, dts, 0, true, &data));
    let item = prop_oneof![
        4 => video,
        4 => audio,
        1 => Just(avc_config()),
        1 => Just(hevc_config()),
        1 => Just(aac_config()),
        1 => (0.0f64..10_000.0).prop_map(metadata),
    ];
    prop::collection::vec(item, 0..24)
}

/// Writes the seed corpus of the `rtmp_client` fuzz target: byte 0 picks the read size, the
/// rest is what a real server session sent to a client (handshake, control messages, command
/// replies, status, media). Run with
/// `cargo test -p mediakit-core --test rtmp_pair write_rtmp_client_corpus -- --ignored`.
#[test]
#[ignore]
fn write_rtmp_client_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rtmp_client");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<(&str, u8, Vec<u8>)> = Vec::new();

    let mut hub = Hub::default();
    let mut pair = Pair::settled(
        client_config(ClientMode::Publish, "cam"),
        RtmpServerConfig::default(),
        &mut hub,
    );
    for media in &sample_stream()[..4] {
        pair.client.send_media(media);
    }
    settle(&mut pair, &mut hub);
    pair.client.stop();
    settle(&mut pair, &mut hub);
    files.push(("publish_accepted", 63, pair.down.log));

    let pair = Pair::settled(
        client_config(ClientMode::Publish, "cam"),
        RtmpServerConfig::default(),
        &mut hub,
    );
    files.push(("publish_bad_name", 7, pair.down.log));

    let mut pair = Pair::settled(
        client_config(ClientMode::Play, "cam"),
        RtmpServerConfig {
            chunk_size: 200,
            ..RtmpServerConfig::default()
        },
        &mut hub,
    );
    // Small frames only: the fuzz target limits messages to 64 KiB.
    let small = sample_stream()
        .into_iter()
        .chain([hevc_config()])
        .filter(|media| !matches!(media, Media::Frame(frame) if frame.payload.len() > 1_000));
    for media in small {
        pair.server.send_media(&media);
    }
    pair.server.end_of_stream();
    settle(&mut pair, &mut hub);
    files.push(("play_media_then_end", 20, pair.down.log));

    let pair = Pair::settled(
        client_config(ClientMode::Play, "missing"),
        RtmpServerConfig::default(),
        &mut hub,
    );
    files.push(("play_not_found", 0, pair.down.log));

    for (name, read_selector, bytes) in files {
        let mut data = vec![read_selector];
        data.extend_from_slice(&bytes);
        std::fs::write(dir.join(name), data).unwrap();
    }
}

/// Writes the seed corpus of the `rtmp_session` fuzz target: the first byte picks the read
/// size, the rest is what a real client session sent to a server (handshake, connect, publish
/// or play, media, stop). Run with
/// `cargo test -p mediakit-core --test rtmp_pair write_rtmp_session_corpus -- --ignored`.
#[test]
#[ignore]
fn write_rtmp_session_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rtmp_session");
    std::fs::create_dir_all(&dir).unwrap();
    let mut hub = Hub::default();
    let mut publish = Pair::settled(
        client_config(ClientMode::Publish, "cam"),
        RtmpServerConfig::default(),
        &mut hub,
    );
    // Small frames only: the fuzz target limits messages to 64 KiB.
    let small = sample_stream()
        .into_iter()
        .filter(|media| !matches!(media, Media::Frame(frame) if frame.payload.len() > 1_000));
    for media in small {
        publish.client.send_media(&media);
    }
    settle(&mut publish, &mut hub);
    publish.client.stop();
    settle(&mut publish, &mut hub);
    let mut play = Pair::settled(
        client_config(ClientMode::Play, "cam"),
        RtmpServerConfig::default(),
        &mut hub,
    );
    play.client.stop();
    settle(&mut play, &mut hub);
    let seeds = [
        ("publish", 63u8, &publish.up.log),
        ("publish_small_reads", 4, &publish.up.log),
        ("play", 20, &play.up.log),
    ];
    for (name, read_selector, bytes) in seeds {
        let mut data = vec![read_selector];
        data.extend_from_slice(bytes);
        std::fs::write(dir.join(name), data).unwrap();
    }
}
