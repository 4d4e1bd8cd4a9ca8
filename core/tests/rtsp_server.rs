//! The RTSP server session driven with ffmpeg's captured requests and with hand-built
//! sessions whose RTP comes from the core's own packetizers, checked by depacketizing what the
//! session sends.

use bytes::{BufMut, Bytes, BytesMut};
use mediakit_core::datagram::UdpChannel;
use mediakit_core::hub::StreamKey;
use mediakit_core::media::nal::to_length_prefixed;
use mediakit_core::media::{AacConfig, AvcConfig, Codec, Frame, HevcConfig, Media, TrackConfig};
use mediakit_core::rtcp::{self, Bye, NtpTimestamp, RtcpPacket, SenderReport};
use mediakit_core::rtp::{
    AacDepacketizer, AacPacketizer, DepacketizerConfig, H264Depacketizer, H264Packetizer,
    PacketizerConfig, RtpPacket, RtpPacketOut,
};
use mediakit_core::rtsp::message::interleaved_header;
use mediakit_core::rtsp::server::SENDER_REPORT_TIMELINE_MARGIN_MS;
use mediakit_core::rtsp::{
    Input, Method, Request, Response, RtpInfo, RtspDecoder, RtspServerConfig, RtspServerSession,
};
use mediakit_core::sdp::{SdpCodec, SessionDescription};
use mediakit_core::session::{LiveSession, Phase, Rejection, RequestKind, SessionEvent};
use mediakit_core::Millis;
use proptest::prelude::*;

const PUBLISH_TCP: &[u8] = include_bytes!("../src/rtsp/testdata/ffmpeg_publish_tcp.bin");
const PLAY_UDP: &[u8] = include_bytes!("../src/rtsp/testdata/ffmpeg_play_udp.bin");
/// ffmpeg captures from the RTSP message fuzz corpus, after the byte that picks the fuzzer's
/// read size.
const PLAY_TCP: &[u8] = include_bytes!("../../fuzz/corpus/rtsp_message/ffmpeg_play_tcp");
const PUBLISH_H265_HEAD: &[u8] =
    include_bytes!("../../fuzz/corpus/rtsp_message/ffmpeg_publish_h265_head");

fn corpus(seed: &[u8]) -> &[u8] {
    &seed[1..]
}

/// The seed whose session id is the `12345678` ffmpeg echoes in the captures.
const CAPTURE_SEED: u64 = 0x1234_5678;
const URL: &str = "rtsp://127.0.0.1:8554/live/cam";

const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

fn avc() -> TrackConfig {
    TrackConfig::Avc(
        AvcConfig::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap(),
    )
}

fn aac() -> TrackConfig {
    TrackConfig::Aac(AacConfig::new(2, 44_100, 2).unwrap())
}

fn session() -> RtspServerSession {
    RtspServerSession::new(RtspServerConfig::default(), Millis(0), CAPTURE_SEED)
}

/// The server's UDP port pair in sessions that serve UDP.
const SERVER_PORTS: (u16, u16) = (30_000, 30_001);
/// Test clients over UDP use port `CLIENT_PORT + n` where a TCP client would use channel `n`.
const CLIENT_PORT: u16 = 5_000;

fn udp_session() -> RtspServerSession {
    let config = RtspServerConfig {
        udp_ports: Some(SERVER_PORTS),
        ..RtspServerConfig::default()
    };
    RtspServerSession::new(config, Millis(0), CAPTURE_SEED)
}

/// The datagrams a session queued, as the interleaved items a TCP client would have read on
/// the channel its port stands for.
fn datagram_items(session: &mut RtspServerSession) -> Vec<Input> {
    let queue = session.datagrams().expect("RTSP sends datagrams");
    let mut items = Vec::new();
    while let Some(datagram) = queue.pop_front() {
        let channel = u8::try_from(datagram.port - CLIENT_PORT).unwrap();
        assert_eq!(datagram.channel == UdpChannel::Rtcp, channel % 2 == 1);
        let mut payload = BytesMut::new();
        for segment in &datagram.segments {
            payload.put_slice(segment);
        }
        items.push(Input::Interleaved {
            channel,
            payload: payload.freeze(),
        });
    }
    assert_eq!(queue.queued_bytes(), 0);
    items
}

/// A video access unit: keyframes optionally carry SPS and PPS; slices are `size` bytes.
fn video(dts: i64, keyframe: bool, with_sets: bool, size: usize) -> Frame {
    let mut slice = vec![if keyframe { 0x65 } else { 0x41 }, 0x88];
    slice.extend((0..size).map(|i| (i * 7 + dts as usize) as u8));
    let units: Vec<&[u8]> = if with_sets {
        vec![SPS, PPS, &slice]
    } else {
        vec![&slice]
    };
    Frame {
        codec: Codec::H264,
        dts,
        pts: dts,
        keyframe,
        payload: to_length_prefixed(units),
    }
}

fn audio(dts: i64) -> Frame {
    Frame {
        codec: Codec::Aac,
        dts,
        pts: dts,
        keyframe: true,
        payload: Bytes::from(vec![0x21, (dts % 251) as u8, 0x5a, 0x10, 7]),
    }
}

/// Two seconds of media in decoding order: video at 25 fps with a keyframe every second,
/// AAC frames every 23 ms, starting at `audio_start`.
fn media(audio_start: i64) -> Vec<Frame> {
    let mut frames: Vec<Frame> = (0..50)
        .map(|i| {
            let key = i % 25 == 0;
            video(i * 40, key, key, if key { 3000 } else { 300 })
        })
        .collect();
    frames.extend((0..80).map(|i| audio(audio_start + i * 23)));
    frames.sort_by_key(|frame| (frame.dts, frame.codec == Codec::Aac));
    frames
}

fn request(method: Method, uri: &str, cseq: u32) -> Request {
    Request::new(method, uri).header("CSeq", &cseq.to_string())
}

fn encode(request: &Request) -> BytesMut {
    let mut out = BytesMut::new();
    request.encode(&mut out);
    out
}

/// Feeds bytes and returns the events that follow.
fn feed(session: &mut RtspServerSession, now: u64, bytes: &[u8]) -> Vec<SessionEvent> {
    let mut input = BytesMut::from(bytes);
    session.handle_input(Millis(now), &mut input).unwrap();
    assert!(input.is_empty());
    events(session)
}

fn events(session: &mut RtspServerSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// Everything the session queued, decoded as a client reads it.
fn output(session: &mut RtspServerSession) -> Vec<Input> {
    let out = session.transmit();
    let mut bytes = BytesMut::new();
    for segment in out.segments() {
        bytes.put_slice(segment);
    }
    let queued = out.queued_bytes();
    out.advance(queued);
    let decoder = RtspDecoder::default();
    let mut items = Vec::new();
    while let Some(item) = decoder.decode(&mut bytes).unwrap() {
        items.push(item);
    }
    assert!(bytes.is_empty(), "a partial item was queued");
    items
}

fn responses(items: &[Input]) -> Vec<&Response> {
    items
        .iter()
        .filter_map(|item| match item {
            Input::Response(response) => Some(response),
            _ => None,
        })
        .collect()
}

fn statuses(items: &[Input]) -> Vec<(u16, Option<u32>)> {
    responses(items)
        .iter()
        .map(|r| (r.status, r.cseq()))
        .collect()
}

fn media_events(events: &[SessionEvent]) -> Vec<Media> {
    events
        .iter()
        .filter_map(|event| match event {
            SessionEvent::Media(media) => Some(media.clone()),
            _ => None,
        })
        .collect()
}

fn interleave(out: &mut BytesMut, channel: u8, packet: &[u8]) {
    out.put_slice(&interleaved_header(channel, packet.len()).unwrap());
    out.put_slice(packet);
}

fn packet_bytes(packets: &[RtpPacketOut], channel: u8, out: &mut BytesMut) {
    for packet in packets {
        interleave(out, channel, &packet.to_bytes());
    }
}

/// A publisher: the ANNOUNCE/SETUP/RECORD requests, then the RTP for `frames` (and sender
/// reports first when `reports` is set) as one byte stream.
struct Publisher {
    video: H264Packetizer,
    audio: AacPacketizer,
}

impl Publisher {
    fn new() -> Self {
        let config = |pt, ssrc, seq, ts| PacketizerConfig {
            payload_type: pt,
            ssrc,
            initial_sequence: seq,
            initial_timestamp: ts,
            insert_parameter_sets: false,
            ..PacketizerConfig::default()
        };
        Self {
            video: H264Packetizer::new(config(96, 11, 65_000, 4_000_000_000)),
            audio: AacPacketizer::new(&config(97, 22, 100, 77), 44_100),
        }
    }

    fn setup_requests() -> BytesMut {
        Self::setup_requests_with(|track| {
            format!(
                "RTP/AVP/TCP;unicast;interleaved={}-{};mode=record",
                track * 2,
                track * 2 + 1
            )
        })
    }

    /// ANNOUNCE, SETUP with the transport `transport(track)` for each track, RECORD.
    fn setup_requests_with(transport: impl Fn(u16) -> String) -> BytesMut {
        let sdp = SessionDescription::from_tracks(&[avc(), aac()], "test").to_string();
        let mut wire = BytesMut::new();
        let announce = request(Method::Announce, URL, 1)
            .header("Content-Type", "application/sdp")
            .body(Bytes::from(sdp));
        wire.put(encode(&announce));
        for (cseq, track) in [(2, 0), (3, 1)] {
            let setup = request(Method::Setup, &format!("{URL}/trackID={track}"), cseq)
                .header("Transport", &transport(track));
            let setup = if cseq == 3 {
                setup.header("Session", "12345678")
            } else {
                setup
            };
            wire.put(encode(&setup));
        }
        let record = request(Method::Record, URL, 4)
            .header("Session", "12345678")
            .header("Range", "npt=0.000-");
        wire.put(encode(&record));
        wire
    }

    /// Sender reports putting media time `video_ms` / `audio_ms` at the same NTP instant.
    fn reports(&self, video_ms: i64, audio_ms: i64) -> BytesMut {
        let mut wire = BytesMut::new();
        let ntp = NtpTimestamp::from_unix_micros(1_700_000_000_000_000);
        for (channel, ssrc, rtp) in [
            (1, 11, self.video.clock().timestamp(video_ms)),
            (3, 22, self.audio.clock().timestamp(audio_ms)),
        ] {
            let mut packet = BytesMut::new();
            SenderReport {
                ssrc,
                ntp,
                rtp_timestamp: rtp,
                packet_count: 0,
                octet_count: 0,
                reports: Vec::new(),
            }
            .encode(&mut packet);
            interleave(&mut wire, channel, &packet);
        }
        wire
    }

    fn rtp(&mut self, frames: &[Frame]) -> BytesMut {
        let mut wire = BytesMut::new();
        let mut arena = BytesMut::new();
        for frame in frames {
            let mut packets = Vec::new();
            let channel = match frame.codec {
                Codec::H264 => {
                    self.video
                        .packetize(frame, &mut arena, &mut packets)
                        .unwrap();
                    0
                }
                _ => {
                    self.audio
                        .packetize(frame, &mut arena, &mut packets)
                        .unwrap();
                    2
                }
            };
            packet_bytes(&packets, channel, &mut wire);
        }
        wire
    }
}

fn accept_all(session: &mut RtspServerSession, events: &[SessionEvent]) {
    for event in events {
        match event {
            SessionEvent::PublishRequested { .. } => session.accept_publish(),
            SessionEvent::PlayRequested { .. } => session.accept_play(),
            SessionEvent::DatagramPortsRequested { .. } => session.accept_datagram_ports(),
            _ => {}
        }
    }
}

/// Runs a whole publish given as one byte stream cut at `cuts`, accepting the publish.
fn run_publish(wire: &[u8], cuts: &[usize]) -> Vec<SessionEvent> {
    let mut session = session();
    let mut all = Vec::new();
    let mut buffer = BytesMut::new();
    let mut fed = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(wire.len());
    points.sort_unstable();
    for (i, cut) in points.into_iter().enumerate() {
        buffer.put_slice(&wire[fed..cut]);
        fed = cut;
        session.handle_input(Millis(i as u64), &mut buffer).unwrap();
        let new = events(&mut session);
        accept_all(&mut session, &new);
        all.extend(new);
        all.extend(events(&mut session));
    }
    assert!(buffer.is_empty());
    all
}

fn frames_of(media: &[Media], codec: Codec) -> Vec<Frame> {
    media
        .iter()
        .filter_map(|m| match m {
            Media::Frame(frame) if frame.codec == codec => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn publish_flow_gives_configs_then_the_frames_sent() {
    let frames = media(0);
    let mut publisher = Publisher::new();
    let mut wire = Publisher::setup_requests();
    wire.put(publisher.rtp(&frames));
    let mut session = session();
    let events = feed(&mut session, 0, &wire);
    assert_eq!(
        events,
        [SessionEvent::PublishRequested {
            key: StreamKey::parse("live", "cam").unwrap()
        }]
    );
    // Nothing is answered or read on until the server decides.
    assert!(output(&mut session).is_empty());
    session.accept_publish();
    let items = output(&mut session);
    assert_eq!(
        statuses(&items),
        [
            (200, Some(1)),
            (200, Some(2)),
            (200, Some(3)),
            (200, Some(4))
        ]
    );
    let setup = responses(&items)[1];
    assert_eq!(setup.headers.get("Session"), Some("12345678;timeout=60"));
    assert_eq!(
        setup.headers.get("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
    );
    assert_eq!(session.phase(), Phase::Media);
    let events = self::events(&mut session);
    let media = media_events(&events);
    assert_eq!(media[0], Media::Config(avc()));
    assert_eq!(media[1], Media::Config(aac()));
    let expected_video: Vec<Frame> = frames
        .iter()
        .filter(|f| f.codec == Codec::H264)
        .cloned()
        .collect();
    let expected_audio: Vec<Frame> = frames
        .iter()
        .filter(|f| f.codec == Codec::Aac)
        .cloned()
        .collect();
    assert_eq!(frames_of(&media, Codec::H264), expected_video);
    assert_eq!(frames_of(&media, Codec::Aac), expected_audio);
    // In-band SPS/PPS equal to the SDP's are not announced again.
    assert_eq!(
        media
            .iter()
            .filter(|m| matches!(m, Media::Config(_)))
            .count(),
        2
    );
    // Receiver reports on each track's RTCP channel: ours, on the publisher's source, with
    // nothing lost.
    session.handle_timeout(Millis(5_000));
    let mut reported = Vec::new();
    for item in output(&mut session) {
        let Input::Interleaved { channel, payload } = item else {
            panic!("only reports are due")
        };
        for packet in rtcp::parse_compound(&payload).unwrap() {
            if let RtcpPacket::ReceiverReport(report) = packet {
                let block = &report.reports[0];
                assert_eq!((block.cumulative_lost, block.fraction_lost), (0, 0));
                reported.push((channel, block.ssrc));
            }
        }
    }
    assert_eq!(reported, [(1, 11), (3, 22)]);
    assert_eq!(session.poll_timeout(), Some(Millis(10_000)));
    // TEARDOWN ends the publish.
    let events = feed(
        &mut session,
        10,
        &encode(&request(Method::Teardown, URL, 5).header("Session", "12345678")),
    );
    assert_eq!(
        events,
        [
            SessionEvent::PublishStopped,
            SessionEvent::Closed { reason: "teardown" }
        ]
    );
    assert_eq!(statuses(&output(&mut session)), [(200, Some(5))]);
}

#[test]
fn b_frames_published_over_rtsp_get_their_decode_times_back() {
    // x264 with two B-frames: decode order I P B B P B B ..., presentation one frame behind
    // decode (the least delay that keeps pts >= dts, which is what x264 writes and all a
    // generator can infer).
    let display = |decode: i64| match decode {
        0 => 0,
        d if d % 3 == 1 => d + 2,
        d => d - 1,
    };
    let frames: Vec<Frame> = (0..60)
        .map(|i| {
            let mut frame = video(i * 40, i % 30 == 0, i == 0, 200);
            frame.pts = display(i) * 40 + 40;
            frame
        })
        .collect();
    let mut publisher = Publisher::new();
    let mut wire = Publisher::setup_requests();
    wire.put(publisher.reports(0, 0));
    wire.put(publisher.rtp(&frames));
    // The publisher's BYE on the video track's RTCP channel releases the frames still
    // waiting for their decode times, before (without) any TEARDOWN.
    let mut bye = BytesMut::new();
    Bye {
        sources: vec![11],
        reason: None,
    }
    .encode(&mut bye);
    interleave(&mut wire, 1, &bye);
    let events = run_publish(&wire, &[]);
    assert!(!events.contains(&SessionEvent::PublishStopped));
    let media = media_events(&events);
    let got = frames_of(&media, Codec::H264);
    assert_eq!(got.len(), frames.len());
    // RTP carried presentation times only; every decode time is reconstructed.
    let shift = got[0].pts - frames[0].pts;
    for (index, (got, sent)) in got.iter().zip(&frames).enumerate() {
        assert_eq!(
            (got.pts - shift, got.dts - shift),
            (sent.pts, sent.dts),
            "frame {index}"
        );
    }
}

#[test]
fn udp_publish_gives_the_same_media_as_interleaved() {
    let frames = media(0);
    let interleaved = {
        let mut publisher = Publisher::new();
        let mut wire = Publisher::setup_requests();
        wire.put(publisher.reports(0, 0));
        wire.put(publisher.rtp(&frames));
        media_events(&run_publish(&wire, &[]))
    };

    let mut publisher = Publisher::new();
    let mut session = udp_session();
    let setup = Publisher::setup_requests_with(|track| {
        let port = CLIENT_PORT + track * 2;
        format!(
            "RTP/AVP/UDP;unicast;client_port={}-{};mode=record",
            port,
            port + 1
        )
    });
    let requested = feed(&mut session, 0, &setup);
    assert!(matches!(
        requested.as_slice(),
        [SessionEvent::PublishRequested { .. }]
    ));
    session.accept_publish();
    // Each UDP SETUP waits for the server to route its ports; what follows waits behind it.
    let mut accepted = Vec::new();
    let mut asked = Vec::new();
    loop {
        let new = events(&mut session);
        let ports: Vec<(u16, u16)> = new
            .iter()
            .filter_map(|e| match e {
                SessionEvent::DatagramPortsRequested { rtp, rtcp } => Some((*rtp, *rtcp)),
                _ => None,
            })
            .collect();
        accepted.extend(new);
        let [ports] = ports[..] else {
            assert!(ports.is_empty());
            break;
        };
        asked.push(ports);
        session.accept_datagram_ports();
    }
    assert_eq!(asked, [(5000, 5001), (5002, 5003)]);
    let items = output(&mut session);
    assert_eq!(statuses(&items).len(), 4);
    assert_eq!(
        responses(&items)[1].headers.get("Transport"),
        Some("RTP/AVP;unicast;client_port=5000-5001;server_port=30000-30001;mode=record")
    );
    // The same packets as datagrams from the client's ports, with garbage from a port the
    // session does not know and RTP sent to the RTCP socket in between: both are ignored.
    // The audio track's sender report arrives after its first RTP packets (UDP may reorder
    // them): those wait for it, so audio keeps its place on the shared timeline.
    let mut wire = publisher.reports(0, 0);
    wire.put(publisher.rtp(&frames));
    let decoder = RtspDecoder::default();
    let mut items = Vec::new();
    while let Some(item) = decoder.decode(&mut wire).unwrap() {
        items.push(item);
    }
    let audio_report = items
        .iter()
        .position(|item| matches!(item, Input::Interleaved { channel: 3, .. }))
        .unwrap();
    let late = items.remove(audio_report);
    let third_audio = items
        .iter()
        .enumerate()
        .filter(|(_, item)| matches!(item, Input::Interleaved { channel: 2, .. }))
        .nth(2)
        .unwrap()
        .0;
    items.insert(third_audio + 1, late);
    let mut media = media_events(&accepted);
    for item in items {
        let Input::Interleaved { channel, payload } = item else {
            panic!("only packets")
        };
        let socket = if channel % 2 == 1 {
            UdpChannel::Rtcp
        } else {
            UdpChannel::Rtp
        };
        let port = CLIENT_PORT + u16::from(channel);
        session.handle_datagram(Millis(1), socket, port, payload.clone());
        session.handle_datagram(Millis(1), UdpChannel::Rtp, CLIENT_PORT + 9, payload.clone());
        if socket == UdpChannel::Rtp {
            session.handle_datagram(Millis(1), UdpChannel::Rtcp, port, payload);
        }
        media.extend(media_events(&events(&mut session)));
    }
    assert_eq!(media, interleaved);
    assert!(frames_of(&media, Codec::H264).len() > 10);
}

#[test]
fn sender_reports_align_tracks_that_start_apart() {
    // Audio starts 100 ms after video; without reports both would start at 0.
    let frames = media(100);
    let mut publisher = Publisher::new();
    let mut wire = Publisher::setup_requests();
    wire.put(publisher.reports(0, 0));
    wire.put(publisher.rtp(&frames));
    let events = run_publish(&wire, &[]);
    let media = media_events(&events);
    let audio = frames_of(&media, Codec::Aac);
    // The timeline's zero lies the margin before the first packet (video's), see the session.
    let zero = SENDER_REPORT_TIMELINE_MARGIN_MS;
    assert_eq!(audio.first().map(|f| f.dts), Some(zero + 100));
    let expected: Vec<i64> = (0..80).map(|i| zero + 100 + i * 23).collect();
    assert_eq!(audio.iter().map(|f| f.dts).collect::<Vec<_>>(), expected);
    assert_eq!(frames_of(&media, Codec::H264)[1].dts, zero + 40);

    let events = run_publish(
        &[Publisher::setup_requests(), Publisher::new().rtp(&frames)].concat(),
        &[],
    );
    assert_eq!(
        frames_of(&media_events(&events), Codec::Aac)[0].dts,
        0,
        "without reports each track starts at 0"
    );
}

#[test]
fn a_track_that_starts_before_the_first_packet_keeps_its_offset() {
    // The audio report says audio time 23 ms was at the same instant as video time 0, so the
    // first audio frame (audio time 0) belongs 23 ms before video's first frame, which arrived
    // first. The timeline's zero lies a margin before that first packet, so audio keeps its
    // 23 ms lead and nothing goes negative (RTMP and FLV carry unsigned times).
    let frames = media(0);
    let mut publisher = Publisher::new();
    let mut wire = Publisher::setup_requests();
    wire.put(publisher.reports(0, 23));
    wire.put(publisher.rtp(&frames));
    let media = media_events(&run_publish(&wire, &[]));
    let zero = SENDER_REPORT_TIMELINE_MARGIN_MS;
    let audio: Vec<i64> = frames_of(&media, Codec::Aac)
        .iter()
        .map(|f| f.dts)
        .collect();
    let expected: Vec<i64> = (0..80).map(|i| zero - 23 + i * 23).collect();
    assert_eq!(audio, expected);
    assert_eq!(frames_of(&media, Codec::H264)[0].dts, zero);
    assert!(media
        .iter()
        .all(|m| !matches!(m, Media::Frame(frame) if frame.dts < 0 || frame.pts < 0)));
}

#[test]
fn in_band_parameter_sets_that_change_give_a_new_config() {
    let new_sps: &[u8] = &[0x67, 0x4d, 0x00, 0x28, 0xaa, 0xbb];
    let mut keyframe = video(40, true, false, 100);
    let slice = keyframe.payload.slice(4..);
    keyframe.payload = to_length_prefixed([new_sps, PPS, &slice[..]]);
    let mut publisher = Publisher::new();
    let mut wire = Publisher::setup_requests();
    wire.put(publisher.rtp(&[video(0, true, true, 100), keyframe.clone()]));
    let media = media_events(&run_publish(&wire, &[]));
    let expected = TrackConfig::Avc(
        AvcConfig::from_parameter_sets(Bytes::from_static(new_sps), Bytes::from_static(PPS))
            .unwrap(),
    );
    let kinds: Vec<&str> = media
        .iter()
        .map(|m| match m {
            Media::Config(_) => "config",
            Media::Frame(_) => "frame",
            Media::Metadata(_) => "metadata",
        })
        .collect();
    assert_eq!(kinds, ["config", "config", "frame", "config", "frame"]);
    assert_eq!(media[3], Media::Config(expected));
    assert_eq!(media[4], Media::Frame(keyframe));
}

#[test]
fn ffmpeg_publish_capture_replays() {
    let mut session = session();
    let events = feed(&mut session, 0, PUBLISH_TCP);
    assert_eq!(
        events,
        [SessionEvent::PublishRequested {
            key: StreamKey::parse("live", "x").unwrap()
        }]
    );
    session.accept_publish();
    assert_eq!(
        statuses(&output(&mut session)),
        (1..=5).map(|cseq| (200, Some(cseq))).collect::<Vec<_>>()
    );
    let media = media_events(&self::events(&mut session));
    match (&media[0], &media[1]) {
        (Media::Config(TrackConfig::Avc(avc)), Media::Config(TrackConfig::Aac(aac))) => {
            assert_eq!((avc.profile, avc.level), (0x64, 0x0d));
            assert_eq!((aac.sample_rate, aac.channels), (44_100, 2));
        }
        other => panic!("{other:?}"),
    }
    // The capture holds the first keyframe (x264's SEI, then the IDR) and ends before audio.
    // The keyframe waits in the DTS generator (it cannot know yet whether B-frames follow)
    // until the TEARDOWN flushes it.
    assert!(frames_of(&media, Codec::H264).is_empty());
    let teardown =
        request(Method::Teardown, "rtsp://127.0.0.1:8554/live/x", 6).header("Session", "12345678");
    let media = media_events(&feed(&mut session, 1, &encode(&teardown)));
    let video = frames_of(&media, Codec::H264);
    assert_eq!(video.len(), 1);
    assert!(video[0].keyframe);
    // ffmpeg sends sender reports first, so the timeline is the reported one (see the session).
    let zero = SENDER_REPORT_TIMELINE_MARGIN_MS;
    assert_eq!((video[0].dts, video[0].payload.len()), (zero, 4845));
    assert!(frames_of(&media, Codec::Aac).is_empty());
}

#[test]
fn ffmpeg_h265_publish_head_gives_an_hevc_config() {
    let mut session = session();
    // The capture stops inside an interleaved frame: that tail waits for more input.
    let mut input = BytesMut::from(corpus(PUBLISH_H265_HEAD));
    session.handle_input(Millis(0), &mut input).unwrap();
    assert!(input.len() < 1400);
    let events = self::events(&mut session);
    assert!(matches!(
        events.as_slice(),
        [SessionEvent::PublishRequested { .. }]
    ));
    session.accept_publish();
    let media = media_events(&self::events(&mut session));
    match media.first() {
        Some(Media::Config(TrackConfig::Hevc(hevc))) => {
            assert_eq!(hevc.profile, 1);
            assert_eq!(HevcConfig::parse(hevc.record.clone()).as_ref(), Ok(hevc));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        media.get(1),
        Some(Media::Config(TrackConfig::Aac(_)))
    ));
}

/// A player: drives DESCRIBE/SETUP/PLAY and depacketizes what comes back.
struct Player {
    session: RtspServerSession,
    /// Set up the tracks over UDP rather than interleaved.
    udp: bool,
    base: String,
    video: Option<H264Depacketizer>,
    audio: Option<AacDepacketizer>,
    frames: Vec<Frame>,
    reports: Vec<(u8, SenderReport)>,
    video_packets: u32,
}

impl Player {
    /// DESCRIBE, accepted, answered once `snapshot` has been sent; returns the SDP.
    fn describe(snapshot: &[Media]) -> (Self, SessionDescription) {
        let mut session = udp_session();
        let events = feed(&mut session, 0, &encode(&request(Method::Describe, URL, 1)));
        assert_eq!(
            events,
            [SessionEvent::PlayRequested {
                key: StreamKey::parse("live", "cam").unwrap()
            }]
        );
        session.accept_play();
        let mut answered = false;
        let mut sdp = None;
        for item in snapshot {
            session.send_media(item);
            let items = output(&mut session);
            if let Some(response) = responses(&items).first() {
                assert!(!answered);
                assert_eq!((response.status, response.cseq()), (200, Some(1)));
                assert_eq!(
                    response.headers.get("Content-Base"),
                    Some("rtsp://127.0.0.1:8554/live/cam/")
                );
                sdp = Some(SessionDescription::parse(&response.body).unwrap());
                answered = true;
            }
        }
        let sdp = sdp.expect("DESCRIBE answered");
        let player = Self {
            session,
            udp: false,
            base: "rtsp://127.0.0.1:8554/live/cam/".into(),
            video: None,
            audio: None,
            frames: Vec::new(),
            reports: Vec::new(),
            video_packets: 0,
        };
        (player, sdp)
    }

    fn setup_and_play(&mut self, sdp: &SessionDescription) {
        for (i, media) in sdp.media.iter().enumerate() {
            let (rtp, rtcp) = (i * 2, i * 2 + 1);
            let transport = if self.udp {
                let port = CLIENT_PORT as usize;
                format!(
                    "RTP/AVP/UDP;unicast;client_port={}-{}",
                    port + rtp,
                    port + rtcp
                )
            } else {
                format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp}")
            };
            let setup = request(Method::Setup, &media.control_url(&self.base), 2 + i as u32)
                .header("Transport", &transport);
            let setup = if i > 0 {
                setup.header("Session", self.session.session_id())
            } else {
                setup
            };
            let events = feed(&mut self.session, 1, &encode(&setup));
            if self.udp {
                // Answered once the server has routed the ports.
                assert!(self.output().is_empty());
                self.session.accept_datagram_ports();
            }
            let items = self.output();
            let response = responses(&items)[0];
            assert_eq!(response.status, 200);
            let answer = response.headers.get("Transport").unwrap();
            if self.udp {
                let (rtp, rtcp) = (CLIENT_PORT + rtp as u16, CLIENT_PORT + rtcp as u16);
                assert_eq!(events, [SessionEvent::DatagramPortsRequested { rtp, rtcp }]);
                let expected = format!(
                    "RTP/AVP;unicast;client_port={rtp}-{rtcp};server_port={}-{};ssrc=",
                    SERVER_PORTS.0, SERVER_PORTS.1
                );
                assert!(answer.starts_with(&expected), "{answer}");
            } else {
                assert!(events.is_empty());
                assert!(answer.starts_with("RTP/AVP/TCP;unicast;interleaved="));
            }
            assert_eq!(response.headers.get("Session"), Some("12345678;timeout=60"));
        }
        let play = request(Method::Play, &self.base, 9)
            .header("Session", "12345678")
            .header("Range", "npt=0.000-");
        feed(&mut self.session, 2, &encode(&play));
        assert_eq!(self.session.phase(), Phase::Media);
        let items = self.output();
        let response = responses(&items)[0];
        assert_eq!((response.status, response.cseq()), (200, Some(9)));
        assert_eq!(response.headers.get("Range"), Some("npt=0.000-"));
        let info = RtpInfo::parse_header(response.headers.get("RTP-Info").unwrap(), 4).unwrap();
        assert_eq!(info.len(), sdp.media.len());
        for (entry, media) in info.iter().zip(&sdp.media) {
            assert_eq!(entry.url, media.control_url(&self.base));
            let config = DepacketizerConfig {
                timestamp_origin: entry.rtptime,
                ..DepacketizerConfig::default()
            };
            match &media.codec {
                SdpCodec::H264 { .. } => self.video = Some(H264Depacketizer::new(&config)),
                SdpCodec::Aac { sample_rate, .. } => {
                    self.audio = Some(AacDepacketizer::new(&config, *sample_rate))
                }
                other => panic!("{other:?}"),
            }
        }
        self.receive(&items);
    }

    fn receive(&mut self, items: &[Input]) {
        for item in items {
            let Input::Interleaved { channel, payload } = item else {
                continue;
            };
            if channel % 2 == 1 {
                for packet in rtcp::parse_compound(payload).unwrap() {
                    if let RtcpPacket::SenderReport(report) = packet {
                        self.reports.push((*channel, report));
                    }
                }
                continue;
            }
            let packet = RtpPacket::parse(payload).unwrap();
            match channel {
                0 => {
                    self.video_packets += 1;
                    let depacketizer = self.video.as_mut().unwrap();
                    depacketizer.push(packet).unwrap();
                    self.frames
                        .extend(std::iter::from_fn(|| depacketizer.pull()));
                }
                _ => {
                    let depacketizer = self.audio.as_mut().unwrap();
                    depacketizer.push(packet).unwrap();
                    self.frames
                        .extend(std::iter::from_fn(|| depacketizer.pull()));
                }
            }
        }
    }

    fn send(&mut self, media: &Media) {
        self.session.send_media(media);
        let items = self.output();
        self.receive(&items);
    }

    /// What the session sent on the connection, then what it sent as datagrams (which only
    /// a UDP player may get).
    fn output(&mut self) -> Vec<Input> {
        let mut items = output(&mut self.session);
        let datagrams = datagram_items(&mut self.session);
        if self.udp {
            assert!(items.iter().all(|i| matches!(i, Input::Response(_))));
        } else {
            assert!(datagrams.is_empty());
        }
        items.extend(datagrams);
        items
    }
}

/// What a player gets for a frame: times relative to the start of play, keyframes with the
/// parameter sets the packetizer puts before them.
fn as_received(frame: &Frame, start: i64) -> Frame {
    let mut frame = frame.clone();
    frame.dts -= start;
    frame.pts -= start;
    if frame.codec == Codec::H264 && frame.keyframe {
        let mut payload = to_length_prefixed([SPS, PPS]).to_vec();
        payload.extend_from_slice(&frame.payload);
        frame.payload = Bytes::from(payload);
    }
    frame
}

fn sorted(mut frames: Vec<Frame>) -> Vec<Frame> {
    frames.sort_by_key(|f| (f.codec == Codec::Aac, f.dts));
    frames
}

#[test]
fn play_flow_sends_the_frames_given_to_send_media() {
    play_flow(false);
}

#[test]
fn udp_play_flow_sends_the_same_packets_as_datagrams() {
    let mut player = play_flow(true);
    // Receiver reports from the client's RTCP port keep the session alive past its timeout;
    // datagrams from ports it did not set up do not.
    let report = Bytes::from_static(&[0x80, 201, 0, 1, 0, 0, 0, 9]);
    let session = &mut player.session;
    session.handle_datagram(
        Millis(50_000),
        UdpChannel::Rtcp,
        CLIENT_PORT + 7,
        report.clone(),
    );
    session.handle_datagram(
        Millis(50_000),
        UdpChannel::Rtp,
        CLIENT_PORT + 1,
        report.clone(),
    );
    session.handle_timeout(Millis(59_000));
    assert!(events(session).is_empty());
    session.handle_datagram(Millis(59_000), UdpChannel::Rtcp, CLIENT_PORT + 1, report);
    session.handle_timeout(Millis(110_000));
    assert!(events(session).is_empty(), "alive: reported at 59 s");
    session.handle_timeout(Millis(119_001));
    assert_eq!(
        events(session),
        [
            SessionEvent::PlayStopped,
            SessionEvent::Closed {
                reason: "session timeout"
            }
        ]
    );
}

/// A player joins a live stream over TCP or UDP and gets what was sent, sender reports
/// included.
fn play_flow(udp: bool) -> Player {
    // A live stream joined mid-way: the snapshot starts at a keyframe at 1000 ms.
    let frames: Vec<Frame> = media(0)
        .into_iter()
        .filter(|frame| frame.dts >= 1000)
        .map(|mut frame| {
            if frame.codec == Codec::H264 && frame.keyframe {
                frame = video(frame.dts, true, false, 3000);
            }
            frame
        })
        .collect();
    let (gop, live) = frames.split_at(10);
    let mut snapshot = vec![Media::Config(avc()), Media::Config(aac())];
    snapshot.extend(gop.iter().cloned().map(Media::Frame));
    // The DESCRIBE is answered as soon as both configurations are known.
    let (mut player, sdp) = Player::describe(&snapshot[..2]);
    player.udp = udp;
    assert_eq!(sdp.media.len(), 2);
    assert!(matches!(sdp.media[0].codec, SdpCodec::H264 { .. }));
    assert!(matches!(sdp.media[1].codec, SdpCodec::Aac { .. }));
    for item in &snapshot[2..] {
        player.send(item);
    }
    assert!(player.frames.is_empty(), "nothing is sent before PLAY");
    player.setup_and_play(&sdp);
    for frame in live {
        player.send(&Media::Frame(frame.clone()));
    }
    let expected: Vec<Frame> = frames.iter().map(|f| as_received(f, 1000)).collect();
    assert_eq!(sorted(player.frames.clone()), sorted(expected));
    // Sender reports went out at PLAY, on the RTCP channels, on one NTP/RTP line.
    let at_play: Vec<u8> = player.reports.iter().map(|(c, _)| *c).collect();
    assert_eq!(at_play, [1, 3]);
    player.session.handle_timeout(Millis(5_002));
    let items = player.output();
    player.receive(&items);
    assert_eq!(player.reports.len(), 4);
    let (first, later) = (&player.reports[0].1, &player.reports[2].1);
    assert_eq!(first.packet_count, 0);
    assert_eq!(later.packet_count, player.video_packets);
    // 5 s later on the same line: NTP and RTP (90 kHz) both advanced by 5 s.
    assert_eq!(
        later.rtp_timestamp.wrapping_sub(first.rtp_timestamp),
        450_000
    );
    assert_eq!(
        later.ntp.to_unix_micros() - first.ntp.to_unix_micros(),
        5_000_000
    );
    assert_eq!(
        player.session.poll_timeout(),
        Some(Millis(5_002 + 5_000)),
        "next report"
    );
    player
}

#[test]
fn pause_stops_media_and_play_resumes_at_a_keyframe() {
    let snapshot = [
        Media::Config(avc()),
        Media::Config(aac()),
        Media::Frame(video(0, true, true, 10)),
    ];
    let (mut player, sdp) = Player::describe(&snapshot);
    player.setup_and_play(&sdp);
    assert_eq!(player.frames.len(), 1);
    let pause = request(Method::Pause, URL, 20).header("Session", "12345678");
    feed(&mut player.session, 3, &encode(&pause));
    assert_eq!(statuses(&output(&mut player.session)), [(200, Some(20))]);
    assert_eq!(player.session.phase(), Phase::Setup);
    player.send(&Media::Frame(video(40, false, false, 10)));
    assert_eq!(player.frames.len(), 1);
    let play = request(Method::Play, URL, 21).header("Session", "12345678");
    feed(&mut player.session, 4, &encode(&play));
    assert_eq!(statuses(&output(&mut player.session)), [(200, Some(21))]);
    player.send(&Media::Frame(video(80, false, false, 10)));
    player.send(&Media::Frame(audio(90)));
    assert_eq!(player.frames.len(), 1, "waits for a keyframe");
    player.send(&Media::Frame(video(120, true, true, 10)));
    assert_eq!(player.frames.len(), 2);
    assert!(player.frames[1].keyframe);
    let teardown = request(Method::Teardown, URL, 22).header("Session", "12345678");
    let events = feed(&mut player.session, 5, &encode(&teardown));
    assert_eq!(
        events,
        [
            SessionEvent::PlayStopped,
            SessionEvent::Closed { reason: "teardown" }
        ]
    );
}

#[test]
fn ffmpeg_tcp_play_capture_is_served() {
    let mut session = session();
    let capture = corpus(PLAY_TCP);
    let (head, rest) = capture.split_at(capture.windows(5).position(|w| w == b"SETUP").unwrap());
    let events = feed(&mut session, 0, head);
    assert!(matches!(
        events.as_slice(),
        [SessionEvent::PlayRequested { .. }]
    ));
    session.accept_play();
    session.send_media(&Media::Config(avc()));
    session.send_media(&Media::Config(aac()));
    assert_eq!(
        statuses(&output(&mut session)),
        [(200, Some(1)), (200, Some(2))]
    );
    session.send_media(&Media::Frame(video(0, true, true, 100)));
    // ffmpeg's SETUP URLs say streamid=N (the capture came from another server).
    feed(&mut session, 1, rest);
    let items = output(&mut session);
    assert_eq!(
        statuses(&items),
        [(200, Some(3)), (200, Some(4)), (200, Some(5))]
    );
    assert!(items
        .iter()
        .any(|item| matches!(item, Input::Interleaved { channel: 0, .. })));
}

#[test]
fn rejects_and_errors_are_answered() {
    // DESCRIBE of a stream that is not there.
    let mut s = session();
    feed(&mut s, 0, &encode(&request(Method::Describe, URL, 7)));
    s.reject(Rejection::NotFound);
    assert_eq!(statuses(&output(&mut s)), [(404, Some(7))]);
    assert!(matches!(
        events(&mut s).as_slice(),
        [SessionEvent::Closed { .. }]
    ));

    // A second publisher of a live name.
    let mut s = session();
    feed(&mut s, 0, &Publisher::setup_requests());
    s.reject(Rejection::AlreadyPublishing);
    let items = output(&mut s);
    assert_eq!(statuses(&items), [(406, Some(1))]);
    assert!(responses(&items)[0].reason.contains("already publishing"));

    // ffmpeg with -rtsp_transport udp.
    let mut s = session();
    let describe_end = PLAY_UDP.windows(5).position(|w| w == b"SETUP").unwrap();
    feed(&mut s, 0, &PLAY_UDP[..describe_end]);
    s.accept_play();
    s.send_media(&Media::Config(aac()));
    s.send_media(&Media::Frame(audio(0)));
    feed(&mut s, 1, &PLAY_UDP[describe_end..]);
    assert_eq!(
        statuses(&output(&mut s)),
        [
            (200, Some(1)),
            (200, Some(2)),
            (461, Some(3)),
            (461, Some(4)),
            (455, Some(5))
        ]
    );

    // Unknown methods, other sessions, other streams, wrong states.
    let mut s = session();
    let mut wire = BytesMut::new();
    wire.put(encode(&request(Method::from_token("FLY"), URL, 1)));
    wire.put(encode(&request(Method::Play, URL, 2)));
    wire.put(encode(
        &request(Method::GetParameter, URL, 3).header("Session", "bogus"),
    ));
    wire.put(encode(&request(Method::GetParameter, URL, 4)));
    wire.put(encode(&request(Method::Options, "*", 5)));
    feed(&mut s, 0, &wire);
    let items = output(&mut s);
    assert_eq!(
        statuses(&items),
        [
            (501, Some(1)),
            (454, Some(2)),
            (454, Some(3)),
            (200, Some(4)),
            (200, Some(5))
        ]
    );
    assert!(responses(&items)[4]
        .headers
        .get("Public")
        .unwrap()
        .contains("GET_PARAMETER"));

    // An ANNOUNCE with nothing we carry.
    let mut s = session();
    let sdp =
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=x\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let announce = request(Method::Announce, URL, 1).body(Bytes::from(sdp));
    assert!(feed(&mut s, 0, &encode(&announce)).is_empty());
    assert_eq!(statuses(&output(&mut s)), [(415, Some(1))]);

    // Garbage is an error that latches.
    let mut s = session();
    let mut input = BytesMut::from(&b"\x16\x03\x01 hello"[..]);
    assert!(s.handle_input(Millis(0), &mut input).is_err());
    assert!(s.handle_input(Millis(1), &mut BytesMut::new()).is_err());
}

#[test]
fn requests_wait_while_describe_waits_for_the_server() {
    let mut s = session();
    let mut wire = encode(&request(Method::Describe, URL, 1));
    wire.put(encode(&request(Method::Options, URL, 2)));
    feed(&mut s, 0, &wire);
    assert!(output(&mut s).is_empty());
    s.accept_play();
    assert!(output(&mut s).is_empty());
    s.send_media(&Media::Config(avc()));
    s.send_media(&Media::Frame(video(0, true, true, 10)));
    assert_eq!(statuses(&output(&mut s)), [(200, Some(1)), (200, Some(2))]);
}

#[test]
fn timeouts_close_idle_sessions() {
    let mut s = session();
    assert_eq!(s.poll_timeout(), Some(Millis(15_000)));
    s.handle_timeout(Millis(15_000));
    assert_eq!(
        events(&mut s),
        [SessionEvent::Closed {
            reason: "setup timeout"
        }]
    );

    let mut s = session();
    let events_in = feed(&mut s, 0, &Publisher::setup_requests());
    accept_all(&mut s, &events_in);
    events(&mut s);
    // Receiver reports fall due every 5 s; the idle timeout is 60 s all the same.
    assert_eq!(s.poll_timeout(), Some(Millis(5_000)));
    s.handle_timeout(Millis(60_000));
    assert_eq!(
        events(&mut s),
        [
            SessionEvent::PublishStopped,
            SessionEvent::Closed {
                reason: "session timeout"
            }
        ]
    );

    // An accepted DESCRIBE that never gets a configuration.
    let mut s = session();
    feed(&mut s, 0, &encode(&request(Method::Describe, URL, 1)));
    s.accept_play();
    assert_eq!(s.poll_timeout(), Some(Millis(10_000)));
    s.handle_timeout(Millis(10_000));
    assert_eq!(statuses(&output(&mut s)), [(404, Some(1))]);
}

fn publish_wire() -> Vec<u8> {
    let mut publisher = Publisher::new();
    let mut wire = Publisher::setup_requests();
    wire.put(publisher.reports(0, 0));
    let frames: Vec<Frame> = media(0).into_iter().take(40).collect();
    wire.put(publisher.rtp(&frames));
    wire.put(encode(
        &request(Method::Teardown, URL, 9).header("Session", "12345678"),
    ));
    wire.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_split_of_a_publish_gives_the_same_events(
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let wire = publish_wire();
        let whole = run_publish(&wire, &[]);
        prop_assert!(whole.len() > 20);
        prop_assert_eq!(run_publish(&wire, &cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_after_options_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
        recording in any::<bool>(),
    ) {
        let mut s = session();
        let mut wire = encode(&request(Method::Options, "*", 1));
        if recording {
            wire.put(Publisher::setup_requests());
        }
        let mut input = BytesMut::from(&wire[..]);
        s.handle_input(Millis(0), &mut input).unwrap();
        let requested = events(&mut s);
        accept_all(&mut s, &requested);
        let mut input = BytesMut::from(&tail[..]);
        let _ = s.handle_input(Millis(1), &mut input);
        events(&mut s);
        s.handle_timeout(Millis(1_000_000));
        output(&mut s);
    }

    #[test]
    fn rtp_garbage_on_a_recording_session_never_panics(
        packets in proptest::collection::vec(
            (0u8..4, proptest::collection::vec(any::<u8>(), 0..200)), 0..40),
    ) {
        let mut s = session();
        let mut input = Publisher::setup_requests();
        s.handle_input(Millis(0), &mut input).unwrap();
        let requested = events(&mut s);
        accept_all(&mut s, &requested);
        let mut wire = BytesMut::new();
        for (channel, mut packet) in packets {
            if let Some(first) = packet.first_mut() {
                *first = 0x80 | (*first & 0x3f);
            }
            interleave(&mut wire, channel, &packet);
        }
        s.handle_input(Millis(1), &mut wire).unwrap();
        events(&mut s);
    }
}

/// A player session whose DESCRIBE was answered (UDP ports configured), and the URL of its
/// first track's SETUP.
fn described_udp_player() -> (RtspServerSession, String) {
    let (player, sdp) = Player::describe(&[Media::Config(avc()), Media::Config(aac())]);
    let control = sdp.media[0].control_url(&player.base);
    (player.session, control)
}

fn udp_setup(control: &str, cseq: u32, port: u16) -> Request {
    let transport = format!("RTP/AVP/UDP;unicast;client_port={}-{}", port, port + 1);
    request(Method::Setup, control, cseq).header("Transport", &transport)
}

#[test]
fn udp_setup_waits_for_the_server_and_holds_what_follows() {
    let (mut s, control) = described_udp_player();
    let mut wire = encode(&udp_setup(&control, 2, CLIENT_PORT));
    wire.put(encode(&request(Method::Options, URL, 3)));
    let asked = feed(&mut s, 1, &wire);
    assert_eq!(
        asked,
        [SessionEvent::DatagramPortsRequested {
            rtp: CLIENT_PORT,
            rtcp: CLIENT_PORT + 1
        }]
    );
    // Neither the SETUP nor the OPTIONS behind it is answered yet, and no deadline runs
    // while the server decides.
    assert!(output(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(Millis(1_000_000));
    assert!(events(&mut s).is_empty());
    // Input that arrives meanwhile waits in order behind them.
    feed(&mut s, 2, &encode(&request(Method::GetParameter, URL, 4)));
    assert!(output(&mut s).is_empty());
    s.accept_datagram_ports();
    let items = output(&mut s);
    assert_eq!(
        statuses(&items),
        [(200, Some(2)), (200, Some(3)), (200, Some(4))]
    );
    let transport = responses(&items)[0].headers.get("Transport").unwrap();
    assert!(transport.starts_with("RTP/AVP;unicast;client_port=5000-5001;server_port=30000-30001"));
    assert!(events(&mut s).is_empty());
    // A second answer has nothing to answer.
    s.accept_datagram_ports();
    s.reject(Rejection::PortsInUse);
    assert!(output(&mut s).is_empty());
    assert!(s.poll_timeout().is_some());
}

#[test]
fn ports_in_use_are_answered_461_and_leave_nothing_set_up() {
    let (mut s, control) = described_udp_player();
    let mut wire = encode(&udp_setup(&control, 2, CLIENT_PORT));
    wire.put(encode(
        &request(Method::Play, URL, 3).header("Session", "12345678"),
    ));
    let events = feed(&mut s, 1, &wire);
    assert!(matches!(
        events.as_slice(),
        [SessionEvent::DatagramPortsRequested { .. }]
    ));
    s.reject(Rejection::PortsInUse);
    let items = output(&mut s);
    // The PLAY behind it finds no track set up.
    assert_eq!(statuses(&items), [(461, Some(2)), (455, Some(3))]);
    assert_eq!(responses(&items)[0].reason, "Unsupported Transport");
    assert!(self::events(&mut s).is_empty(), "the session goes on");
    // Datagrams from those ports are nobody's: nothing is sent to them either.
    s.handle_datagram(
        Millis(2),
        UdpChannel::Rtcp,
        CLIENT_PORT + 1,
        Bytes::from_static(&[0x80, 201, 0, 1, 0, 0, 0, 9]),
    );
    s.send_media(&Media::Frame(video(0, true, true, 10)));
    assert!(datagram_items(&mut s).is_empty());
    // ffmpeg then retries the track over TCP, which works.
    let tcp = request(Method::Setup, &control, 4)
        .header("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1");
    assert!(feed(&mut s, 3, &encode(&tcp)).is_empty());
    let play = request(Method::Play, URL, 5).header("Session", "12345678");
    feed(&mut s, 4, &encode(&play));
    let items = output(&mut s);
    assert_eq!(statuses(&items), [(200, Some(4)), (200, Some(5))]);
    assert!(items
        .iter()
        .any(|item| matches!(item, Input::Interleaved { channel: 0, .. })));
}

#[test]
fn a_publisher_udp_setup_refused_records_no_route() {
    let mut s = udp_session();
    let setup = Publisher::setup_requests_with(|track| {
        let port = CLIENT_PORT + track * 2;
        format!(
            "RTP/AVP/UDP;unicast;client_port={port}-{};mode=record",
            port + 1
        )
    });
    feed(&mut s, 0, &setup);
    s.accept_publish();
    assert!(matches!(
        events(&mut s).as_slice(),
        [.., SessionEvent::DatagramPortsRequested { rtp: 5000, .. }]
    ));
    s.reject(Rejection::PortsInUse);
    assert!(matches!(
        events(&mut s).as_slice(),
        [SessionEvent::DatagramPortsRequested { rtp: 5002, .. }]
    ));
    s.reject(Rejection::PortsInUse);
    // RECORD with no track set up is refused; the refused ports carry nothing in.
    assert_eq!(
        statuses(&output(&mut s)),
        [
            (200, Some(1)),
            (461, Some(2)),
            (461, Some(3)),
            (455, Some(4))
        ]
    );
    let mut rtp = Publisher::new().rtp(&[video(0, true, true, 10)]);
    let decoder = RtspDecoder::default();
    while let Some(Input::Interleaved { payload, .. }) = decoder.decode(&mut rtp).unwrap() {
        s.handle_datagram(Millis(1), UdpChannel::Rtp, CLIENT_PORT, payload);
    }
    assert!(events(&mut s).is_empty());
}

/// A publisher over TCP, recording since time 0.
fn recording() -> (RtspServerSession, Publisher) {
    let mut s = session();
    feed(&mut s, 0, &Publisher::setup_requests());
    s.accept_publish();
    assert_eq!(statuses(&output(&mut s)).len(), 4);
    events(&mut s);
    assert_eq!(s.phase(), Phase::Media);
    (s, Publisher::new())
}

#[test]
fn a_recording_session_sending_only_keepalives_times_out() {
    let (mut s, publisher) = recording();
    for at in (5_000..60_000).step_by(5_000) {
        // GET_PARAMETER keep-alives, OPTIONS and sender reports are not media.
        let mut wire =
            encode(&request(Method::GetParameter, URL, 10).header("Session", "12345678"));
        wire.put(encode(&request(Method::Options, URL, 11)));
        wire.put(publisher.reports(0, 0));
        feed(&mut s, at, &wire);
        output(&mut s);
        s.handle_timeout(Millis(at));
        assert!(events(&mut s).is_empty());
    }
    s.handle_timeout(Millis(59_999));
    assert!(events(&mut s).is_empty());
    s.handle_timeout(Millis(60_000));
    assert_eq!(
        events(&mut s),
        [
            SessionEvent::PublishStopped,
            SessionEvent::Closed {
                reason: "session timeout"
            }
        ]
    );
}

#[test]
fn a_recording_session_sending_rtp_does_not_time_out() {
    let (mut s, mut publisher) = recording();
    for (i, at) in (5_000..200_000).step_by(5_000).enumerate() {
        let frame = video(i as i64 * 40, i == 0, i == 0, 20);
        feed(&mut s, at, &publisher.rtp(&[frame]));
        s.handle_timeout(Millis(at));
        assert!(
            !events(&mut s)
                .iter()
                .any(|e| matches!(e, SessionEvent::Closed { .. })),
            "closed at {at}"
        );
        assert!(s.poll_timeout().unwrap() > Millis(at));
    }
    // Over UDP the same: RTP datagrams are progress.
    let mut s = udp_session();
    let setup = Publisher::setup_requests_with(|track| {
        let port = CLIENT_PORT + track * 2;
        format!(
            "RTP/AVP/UDP;unicast;client_port={port}-{};mode=record",
            port + 1
        )
    });
    let events_now = feed(&mut s, 0, &setup);
    accept_all(&mut s, &events_now);
    for _ in 0..2 {
        let asked = events(&mut s);
        accept_all(&mut s, &asked);
    }
    assert_eq!(s.phase(), Phase::Media);
    let mut publisher = Publisher::new();
    for (i, at) in (30_000..200_000).step_by(30_000).enumerate() {
        let mut rtp = publisher.rtp(&[video(i as i64 * 40, i == 0, i == 0, 20)]);
        let decoder = RtspDecoder::default();
        while let Some(Input::Interleaved { payload, .. }) = decoder.decode(&mut rtp).unwrap() {
            s.handle_datagram(Millis(at), UdpChannel::Rtp, CLIENT_PORT, payload);
        }
        s.handle_timeout(Millis(at));
        assert!(
            !events(&mut s)
                .iter()
                .any(|e| matches!(e, SessionEvent::Closed { .. })),
            "closed at {at}"
        );
    }
    // The last RTP came at 180 s: the session lasts until 60 s after it.
    s.handle_timeout(Millis(239_999));
    assert!(!events(&mut s)
        .iter()
        .any(|e| matches!(e, SessionEvent::Closed { .. })));
    s.handle_timeout(Millis(240_000));
    assert!(events(&mut s).contains(&SessionEvent::Closed {
        reason: "session timeout"
    }));
}

#[test]
fn bad_stream_names_are_answered_400_by_the_session() {
    let long = "x".repeat(200);
    let cases = [
        (
            Method::Describe,
            "rtsp://h/live/a/b".to_string(),
            RequestKind::Play,
        ),
        (
            Method::Describe,
            "rtsp://h/live".to_string(),
            RequestKind::Play,
        ),
        (
            Method::Describe,
            format!("rtsp://h/live/{long}"),
            RequestKind::Play,
        ),
        (
            Method::Announce,
            "rtsp://h/live/a..b".to_string(),
            RequestKind::Publish,
        ),
        (
            Method::Announce,
            "rtsp://h/".to_string(),
            RequestKind::Publish,
        ),
    ];
    for (method, url, kind) in cases {
        let mut s = session();
        let mut wire = if method == Method::Announce {
            let sdp = SessionDescription::from_tracks(&[avc()], "test").to_string();
            encode(&request(method, &url, 1).body(Bytes::from(sdp)))
        } else {
            encode(&request(method, &url, 1))
        };
        // A request pipelined behind it is not answered: the session is over.
        wire.put(encode(&request(Method::Options, URL, 2)));
        let events = feed(&mut s, 0, &wire);
        match events.as_slice() {
            [SessionEvent::BadStreamName { request, .. }, SessionEvent::Closed { .. }] => {
                assert_eq!(*request, kind, "{url}");
            }
            other => panic!("{url}: {other:?}"),
        }
        let items = output(&mut s);
        assert_eq!(statuses(&items), [(400, Some(1))], "{url}");
        assert_eq!(
            responses(&items)[0].reason,
            "Bad Request (invalid stream name)"
        );
    }
}

proptest! {
    /// Whatever a peer sends, the error that ends the session prints no text of its choosing.
    #[test]
    fn errors_print_bounded_lines(
        junk in proptest::collection::vec(any::<u8>(), 0..3_000),
    ) {
        let mut s = session();
        let mut input = BytesMut::from(&junk[..]);
        if let Err(error) = s.handle_input(Millis(0), &mut input) {
            prop_assert!(error.to_string().len() < 160, "{}", error);
        }
    }
}
