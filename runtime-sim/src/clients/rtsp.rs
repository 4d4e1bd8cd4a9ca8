//! RTSP clients: a hand-driven connection ([`RtspConnection`]: text requests out, responses
//! and `$`-interleaved frames in, parsed with the core's `rtsp` types), a player that
//! receives RTP over UDP or interleaved and checks every frame ([`play_rtsp`]), and a
//! publisher that sends the synthetic stream as interleaved RTP ([`publish_rtsp`]).
//!
//! RTP is made and read by the core's packetizers and depacketizers, so what a player checks
//! is the synthetic frame the publisher sent, byte for byte.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use mediakit_core::media::{Frame, Media, TrackConfig};
use mediakit_core::rtp::{
    AacDepacketizer, AacPacketizer, DepacketizerConfig, H264Depacketizer, H264Packetizer,
    PacketizerConfig, RtpPacket, RtpPacketOut,
};
use mediakit_core::rtsp::message::{
    interleaved_header, Input, Method, Request, Response, RtspDecoder, RtspLimits,
};
use mediakit_core::rtsp::transport::{RtpInfo, Transport};
use mediakit_core::sdp::{MediaType, SessionDescription};
use mediakit_core::{Millis, OutQueue};

use super::media::{MediaSpec, SyntheticSource, Track};
use super::rtmp::PublishEnd;
use super::wait::{Waiter, Woke};
use super::{connect_from, record_media, Client, ClientLog, Event};
use crate::{now, seed, sleep, TcpStream, UdpSocket};

/// Bodies and heads a client accepts: a DESCRIBE answer is a small SDP.
const LIMITS: RtspLimits = RtspLimits {
    max_head_bytes: 16 * 1024,
    max_headers: 64,
    max_body_bytes: 64 * 1024,
};

/// One hand-driven RTSP client connection: each request gets the next `CSeq` and the
/// session the server gave, and waits for its response (interleaved frames that arrive
/// meanwhile are dropped; read them with [`RtspConnection::next_input`] instead).
#[derive(Debug)]
pub struct RtspConnection {
    stream: TcpStream,
    input: BytesMut,
    decoder: RtspDecoder,
    cseq: u32,
    session: Option<String>,
    /// Set once the server closed its side.
    eof: bool,
}

impl RtspConnection {
    /// Connects from `from` to the server's RTSP address.
    pub fn connect(from: IpAddr, server: SocketAddr) -> io::Result<RtspConnection> {
        TcpStream::connect(from, server).map(RtspConnection::new)
    }

    /// Drives an established connection.
    pub fn new(stream: TcpStream) -> RtspConnection {
        RtspConnection {
            stream,
            input: BytesMut::new(),
            decoder: RtspDecoder::new(LIMITS),
            cseq: 0,
            session: None,
            eof: false,
        }
    }

    /// The connection.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The session id the server gave (without its `;timeout=`), once it gave one.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// `rtsp://{server}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{path}", self.stream.peer_addr())
    }

    /// Sends `method` for `uri` with `headers` (and `CSeq`, and `Session` once known) and
    /// `body`, and waits for its response. `UnexpectedEof` if the server closes first.
    pub async fn request(
        &mut self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> io::Result<Response> {
        let cseq = self.send_request(method, uri, headers, body).await?;
        loop {
            match self.next_input().await? {
                Some(Input::Response(response)) if response.cseq() == Some(cseq) => {
                    if let Some(session) = response.headers.get("Session") {
                        let id = session.split(';').next().unwrap_or(session).trim();
                        self.session = Some(id.to_owned());
                    }
                    return Ok(response);
                }
                Some(_) => {}
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Sends a request without waiting for its response; returns its `CSeq`.
    pub async fn send_request(
        &mut self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> io::Result<u32> {
        let mut out = BytesMut::new();
        self.encode_request(method, uri, headers, body, &mut out);
        self.stream.write_all(&out).await?;
        Ok(self.cseq)
    }

    /// Appends a request (with the next `CSeq` and the session) to `out`.
    fn encode_request(
        &mut self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        out: &mut BytesMut,
    ) {
        self.cseq += 1;
        let mut request = Request::new(method, uri).header("CSeq", &self.cseq.to_string());
        if let Some(session) = &self.session {
            request = request.header("Session", session);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body).encode(out);
    }

    /// The next response, request or interleaved frame from the server, reading as needed;
    /// `None` once the server closed.
    pub async fn next_input(&mut self) -> io::Result<Option<Input>> {
        loop {
            if let Some(input) = self.decode()? {
                return Ok(Some(input));
            }
            if self.eof || self.stream.read_buf(&mut self.input).await? == 0 {
                self.eof = true;
                return Ok(None);
            }
        }
    }

    /// Takes the next whole item off the input read so far.
    fn decode(&mut self) -> io::Result<Option<Input>> {
        self.decoder
            .decode(&mut self.input)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))
    }

    /// Reads what has arrived without waiting: `Ok(false)` once the server closed.
    fn read_ready(&mut self) -> io::Result<bool> {
        loop {
            match self.stream.try_read_buf(&mut self.input) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(error) => return Err(error),
            }
        }
    }
}

/// What an RTSP player plays and how its RTP travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspPlayOptions {
    /// The client's IP address.
    pub from: IpAddr,
    /// The server's RTSP address.
    pub server: SocketAddr,
    /// Application name.
    pub app: String,
    /// Stream name.
    pub stream: String,
    /// The synthetic stream to check frames against.
    pub media: MediaSpec,
    /// Connect this long after the client is spawned, in milliseconds.
    pub start_delay_ms: u64,
    /// RTP over UDP to this even port for the first track (RTCP on the next, the second track
    /// on the two after), or interleaved on the connection when `None`.
    pub udp_port: Option<u16>,
}

impl RtspPlayOptions {
    /// Plays `app/stream` over UDP from `udp_port` up.
    pub fn udp(from: IpAddr, server: SocketAddr, app: &str, stream: &str, udp_port: u16) -> Self {
        Self {
            from,
            server,
            app: app.into(),
            stream: stream.into(),
            media: MediaSpec::default(),
            start_delay_ms: 0,
            udp_port: Some(udp_port),
        }
    }
}

/// One track a player set up.
struct PlayTrack {
    url: String,
    kind: Track,
    depacketizer: Depacketizer,
    /// UDP only: the RTP and RTCP sockets.
    sockets: Option<(UdpSocket, UdpSocket)>,
}

enum Depacketizer {
    Video(H264Depacketizer),
    Audio(AacDepacketizer),
    /// Created at PLAY, once RTP-Info gave the timestamp origin.
    Waiting(u32),
}

/// Spawns an RTSP player on the current world. It logs `Connected`, `Refused` (with the
/// status code, then `Closed("refused")` as it hangs up) if DESCRIBE, a SETUP or PLAY is not
/// answered 200, `ServerPorts` for each UDP SETUP answered, `Started` at the PLAY answer,
/// `Config` for each track the SDP describes, `Frame` for every frame its RTP carries
/// (checked against `options.media`), `Ended` at an RTCP BYE and `Closed` when the server
/// closes the connection.
pub fn play_rtsp(options: RtspPlayOptions) -> Client {
    Client::spawn(|log| run_player(options, log))
}

/// Ends a client with `reason`.
fn closed(log: &RefCell<ClientLog>, reason: impl Into<String>) {
    log.borrow_mut().push(now(), Event::Closed(reason.into()));
}

async fn run_player(options: RtspPlayOptions, log: Rc<RefCell<ClientLog>>) {
    sleep(options.start_delay_ms).await;
    let Some(stream) = connect_from(options.from, options.server, None, &log) else {
        return;
    };
    let mut conn = RtspConnection::new(stream);
    match setup_player(&mut conn, &options, &log).await {
        Ok(Some(tracks)) => receive(conn, tracks, &options.media, &log).await,
        // Refused: hang up.
        Ok(None) => closed(&log, "refused"),
        Err(error) => closed(&log, error.to_string()),
    }
}

/// DESCRIBE, SETUP of every track and PLAY; `None` if the server refused one of them.
async fn setup_player(
    conn: &mut RtspConnection,
    options: &RtspPlayOptions,
    log: &RefCell<ClientLog>,
) -> io::Result<Option<Vec<PlayTrack>>> {
    let url = conn.url(&format!("{}/{}", options.app, options.stream));
    let accept = [("Accept", "application/sdp")];
    let describe = conn
        .request(Method::Describe, &url, &accept, Bytes::new())
        .await?;
    if !refused(&describe, log) {
        return Ok(None);
    }
    let sdp = SessionDescription::parse(&describe.body)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
    let base = describe
        .headers
        .get("Content-Base")
        .map_or_else(|| format!("{url}/"), str::to_owned);
    let mut tracks = Vec::new();
    for (index, media) in sdp.media.iter().enumerate() {
        let kind = match media.kind {
            MediaType::Video => Track::Video,
            _ => Track::Audio,
        };
        if media.track_config().is_some() {
            log.borrow_mut().push(now(), Event::Config(kind));
        }
        let track_url = media.control_url(&base);
        let (transport, sockets) = track_transport(options.from, options.udp_port, index, "")?;
        let answer = conn
            .request(
                Method::Setup,
                &track_url,
                &[("Transport", &transport)],
                Bytes::new(),
            )
            .await?;
        if !refused(&answer, log) {
            return Ok(None);
        }
        let server_ports = answer
            .headers
            .get("Transport")
            .and_then(|value| Transport::parse(value).ok())
            .and_then(|transport| transport.server_port);
        if let Some((rtp, rtcp)) = server_ports {
            log.borrow_mut()
                .push(now(), Event::ServerPorts { rtp, rtcp });
        }
        tracks.push(PlayTrack {
            url: track_url,
            kind,
            depacketizer: Depacketizer::Waiting(media.clock_rate),
            sockets,
        });
    }
    let play = conn
        .request(Method::Play, &url, &[("Range", "npt=0.000-")], Bytes::new())
        .await?;
    if !refused(&play, log) {
        return Ok(None);
    }
    let infos = play
        .headers
        .get("RTP-Info")
        .and_then(|value| RtpInfo::parse_header(value, 8).ok())
        .unwrap_or_default();
    for track in &mut tracks {
        let rtptime = infos
            .iter()
            .find(|info| info.url == track.url)
            .and_then(|info| info.rtptime);
        let config = DepacketizerConfig {
            timestamp_origin: rtptime,
            ..DepacketizerConfig::default()
        };
        track.depacketizer = match (track.kind, &track.depacketizer) {
            (Track::Video, _) => Depacketizer::Video(H264Depacketizer::new(&config)),
            (Track::Audio, Depacketizer::Waiting(rate)) => {
                Depacketizer::Audio(AacDepacketizer::new(&config, *rate))
            }
            (Track::Audio, _) => Depacketizer::Audio(AacDepacketizer::new(&config, 48_000)),
        };
    }
    log.borrow_mut().push(now(), Event::Started);
    Ok(Some(tracks))
}

/// Logs a refusal if `response` is not 200; true if it is.
fn refused(response: &Response, log: &RefCell<ClientLog>) -> bool {
    if response.status == 200 {
        return true;
    }
    log.borrow_mut()
        .push(now(), Event::Refused(response.status.to_string()));
    false
}

/// What woke a player.
enum PlayerWoke {
    Connection,
    Datagram,
}

/// Receives RTP until the server closes the connection.
async fn receive(
    mut conn: RtspConnection,
    mut tracks: Vec<PlayTrack>,
    spec: &MediaSpec,
    log: &RefCell<ClientLog>,
) {
    loop {
        let woke = poll_fn(|cx| {
            if conn.stream.poll_read_ready(cx).is_ready() {
                return Poll::Ready(PlayerWoke::Connection);
            }
            for track in &tracks {
                if let Some((rtp, rtcp)) = &track.sockets {
                    if rtp.poll_recv_ready(cx).is_ready() || rtcp.poll_recv_ready(cx).is_ready() {
                        return Poll::Ready(PlayerWoke::Datagram);
                    }
                }
            }
            Poll::Pending
        })
        .await;
        match woke {
            PlayerWoke::Datagram => drain_datagrams(&mut tracks, spec, log),
            PlayerWoke::Connection => {
                let open = match conn.read_ready() {
                    Ok(open) => open,
                    Err(error) => return closed(log, format!("read: {error}")),
                };
                loop {
                    match conn.decode() {
                        Ok(Some(Input::Interleaved { channel, payload })) => {
                            let index = usize::from(channel / 2);
                            if let Some(track) = tracks.get_mut(index) {
                                if channel % 2 == 0 {
                                    track.push_rtp(payload, spec, log);
                                } else {
                                    track.on_rtcp(&payload, log);
                                }
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(error) => return closed(log, format!("bad input: {error}")),
                    }
                }
                if !open {
                    // What the server sent over UDP before it closed is here already.
                    drain_datagrams(&mut tracks, spec, log);
                    for track in &mut tracks {
                        track.flush(spec, log);
                    }
                    return closed(log, "server closed");
                }
            }
        }
    }
}

fn drain_datagrams(tracks: &mut [PlayTrack], spec: &MediaSpec, log: &RefCell<ClientLog>) {
    for track in tracks {
        let Some((rtp, rtcp)) = &track.sockets else {
            continue;
        };
        let mut rtp_in = Vec::new();
        while let Ok((payload, _)) = rtp.try_recv() {
            rtp_in.push(payload);
        }
        let mut rtcp_in = Vec::new();
        while let Ok((payload, _)) = rtcp.try_recv() {
            rtcp_in.push(payload);
        }
        for payload in rtp_in {
            track.push_rtp(payload, spec, log);
        }
        for payload in &rtcp_in {
            track.on_rtcp(payload, log);
        }
    }
}

impl PlayTrack {
    fn push_rtp(&mut self, payload: Bytes, spec: &MediaSpec, log: &RefCell<ClientLog>) {
        let Ok(packet) = RtpPacket::parse(&payload) else {
            log.borrow_mut()
                .push(now(), Event::Corrupt("not RTP".into()));
            return;
        };
        let pushed = match &mut self.depacketizer {
            Depacketizer::Video(inner) => inner.push(packet),
            Depacketizer::Audio(inner) => inner.push(packet),
            Depacketizer::Waiting(_) => Ok(()),
        };
        if let Err(error) = pushed {
            log.borrow_mut()
                .push(now(), Event::Corrupt(format!("RTP: {error}")));
        }
        self.pull(spec, log);
    }

    fn on_rtcp(&mut self, payload: &Bytes, log: &RefCell<ClientLog>) {
        let bye = mediakit_core::rtcp::parse_compound(payload).is_ok_and(|packets| {
            packets
                .iter()
                .any(|packet| matches!(packet, mediakit_core::rtcp::RtcpPacket::Bye(_)))
        });
        if bye && self.kind == Track::Video {
            log.borrow_mut().push(now(), Event::Ended);
        }
    }

    fn flush(&mut self, spec: &MediaSpec, log: &RefCell<ClientLog>) {
        let _ = match &mut self.depacketizer {
            Depacketizer::Video(inner) => inner.flush(),
            Depacketizer::Audio(inner) => inner.flush(),
            Depacketizer::Waiting(_) => Ok(()),
        };
        self.pull(spec, log);
    }

    fn pull(&mut self, spec: &MediaSpec, log: &RefCell<ClientLog>) {
        loop {
            let frame = match &mut self.depacketizer {
                Depacketizer::Video(inner) => inner.pull().map(synthetic_video),
                Depacketizer::Audio(inner) => inner.pull(),
                Depacketizer::Waiting(_) => None,
            };
            let Some(frame) = frame else {
                return;
            };
            record_media(spec, &Media::Frame(frame), log);
        }
    }
}

/// A depacketized H.264 access unit as the synthetic source made it: the server sends the
/// stream's SPS and PPS before each keyframe, so the access unit's slice NAL unit is picked
/// out (with its length prefix) from among them. An access unit without a slice is returned
/// as it is, for the check to reject.
fn synthetic_video(frame: Frame) -> Frame {
    let mut rest = frame.payload.clone();
    while rest.len() >= 4 {
        let len = rest.get_u32() as usize;
        if len > rest.len() {
            break;
        }
        let nal = rest.split_to(len);
        let nal_type = nal.first().map_or(0, |header| header & 0x1f);
        if nal_type == 1 || nal_type == 5 {
            let mut payload = BytesMut::with_capacity(4 + len);
            payload.extend_from_slice(&(len as u32).to_be_bytes());
            payload.extend_from_slice(&nal);
            return Frame {
                keyframe: nal_type == 5,
                payload: payload.freeze(),
                ..frame
            };
        }
    }
    frame
}

/// What and where an RTSP publisher publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspPublishOptions {
    /// The client's IP address.
    pub from: IpAddr,
    /// The server's RTSP address.
    pub server: SocketAddr,
    /// Application name.
    pub app: String,
    /// Stream name.
    pub stream: String,
    /// The synthetic stream to send.
    pub media: MediaSpec,
    /// Video frames to send (the audio frames between them go too).
    pub video_frames: u64,
    /// Connect this long after the client is spawned, in milliseconds.
    pub start_delay_ms: u64,
    /// RTP over UDP from this even port for the first track (RTCP on the next, the second
    /// track on the two after), or interleaved on the connection when `None`.
    pub udp_port: Option<u16>,
    /// What to do after the last frame: `Stop` sends TEARDOWN, `Ping` sends a
    /// `GET_PARAMETER` keep-alive every interval (logged as `Pinged`), `Stay` sends nothing,
    /// `Disconnect` drops the connection.
    pub end: PublishEnd,
}

impl RtspPublishOptions {
    /// Publishes `app/stream` at once: 10 s of the default synthetic stream, then TEARDOWN.
    pub fn new(from: IpAddr, server: SocketAddr, app: &str, stream: &str) -> Self {
        Self {
            from,
            server,
            app: app.into(),
            stream: stream.into(),
            media: MediaSpec::default(),
            video_frames: 250,
            start_delay_ms: 0,
            udp_port: None,
            end: PublishEnd::Stop,
        }
    }
}

/// Spawns an RTSP publisher on the current world: ANNOUNCE, SETUP of each track (interleaved
/// on the connection, or over UDP), RECORD, then the synthetic stream as RTP in real (virtual) time. It
/// logs `Connected`, `Started` at the RECORD answer (`Refused` with the status code, then
/// `Closed("refused")`, if a request is not answered 200), `Sent` for every frame, `Pinged`
/// for every keep-alive, and `Closed`.
pub fn publish_rtsp(options: RtspPublishOptions) -> Client {
    Client::spawn(|log| run_publisher(options, log))
}

/// A publisher's packetizer for one track.
enum Packetizer {
    Video(H264Packetizer),
    Audio(AacPacketizer),
}

/// One track a publisher sends.
struct PublishTrack {
    packetizer: Packetizer,
    /// Over UDP: the RTP and RTCP sockets and the server's RTP address.
    udp: Option<(UdpSocket, UdpSocket, SocketAddr)>,
}

async fn run_publisher(options: RtspPublishOptions, log: Rc<RefCell<ClientLog>>) {
    sleep(options.start_delay_ms).await;
    let Some(stream) = connect_from(options.from, options.server, None, &log) else {
        return;
    };
    let mut conn = RtspConnection::new(stream);
    let tracks = match setup_publisher(&mut conn, &options, &log).await {
        Ok(Some(tracks)) => tracks,
        Ok(None) => return closed(&log, "refused"),
        Err(error) => return closed(&log, error.to_string()),
    };
    if let Err(reason) = send_stream(&mut conn, tracks, &options, &log).await {
        closed(&log, reason);
    }
}

/// ANNOUNCE, SETUP and RECORD; each track (video first), or `None` if the server refused.
async fn setup_publisher(
    conn: &mut RtspConnection,
    options: &RtspPublishOptions,
    log: &RefCell<ClientLog>,
) -> io::Result<Option<Vec<PublishTrack>>> {
    let url = conn.url(&format!("{}/{}", options.app, options.stream));
    let configs: Vec<TrackConfig> = options
        .media
        .configs()
        .into_iter()
        .filter_map(|media| match media {
            Media::Config(config) => Some(config),
            _ => None,
        })
        .collect();
    let sdp = SessionDescription::from_tracks(&configs, "mediakit-sim");
    let announce = conn
        .request(
            Method::Announce,
            &url,
            &[("Content-Type", "application/sdp")],
            Bytes::from(sdp.to_string()),
        )
        .await?;
    if !refused(&announce, log) {
        return Ok(None);
    }
    let mut tracks = Vec::new();
    let random = seed();
    for (index, (config, media)) in configs.iter().zip(&sdp.media).enumerate() {
        let (transport, sockets) =
            track_transport(options.from, options.udp_port, index, ";mode=record")?;
        let setup = conn
            .request(
                Method::Setup,
                &media.control_url(&format!("{url}/")),
                &[("Transport", &transport)],
                Bytes::new(),
            )
            .await?;
        if !refused(&setup, log) {
            return Ok(None);
        }
        let udp = match sockets {
            Some((rtp, rtcp)) => {
                let server_port = setup
                    .headers
                    .get("Transport")
                    .and_then(|value| Transport::parse(value).ok())
                    .and_then(|transport| transport.server_port)
                    .ok_or_else(|| io::Error::other("a UDP SETUP answered without server_port"))?;
                let server = SocketAddr::new(options.server.ip(), server_port.0);
                Some((rtp, rtcp, server))
            }
            None => None,
        };
        let packetizer = PacketizerConfig {
            payload_type: media.payload_type,
            ssrc: (random >> (index * 8)) as u32,
            initial_sequence: (random >> 16) as u16,
            initial_timestamp: (random >> 32) as u32,
            // The SDP carries them: access units go out as the source made them, so a
            // player of the stream can check them byte for byte.
            insert_parameter_sets: false,
            ..PacketizerConfig::default()
        };
        let packetizer = match config {
            TrackConfig::Aac(aac) => {
                Packetizer::Audio(AacPacketizer::new(&packetizer, aac.sample_rate))
            }
            TrackConfig::Avc(avc) => {
                let mut inner = H264Packetizer::new(packetizer);
                inner.set_config(avc);
                Packetizer::Video(inner)
            }
            _ => return Err(io::Error::other("the synthetic stream is H.264 and AAC")),
        };
        tracks.push(PublishTrack { packetizer, udp });
    }
    let record = conn
        .request(
            Method::Record,
            &url,
            &[("Range", "npt=0.000-")],
            Bytes::new(),
        )
        .await?;
    if !refused(&record, log) {
        return Ok(None);
    }
    log.borrow_mut().push(now(), Event::Started);
    Ok(Some(tracks))
}

/// Sends the stream, then ends as `options.end` says; `Err` with the reason the connection
/// ended (a clean end logs its own `Closed`).
async fn send_stream(
    conn: &mut RtspConnection,
    mut tracks: Vec<PublishTrack>,
    options: &RtspPublishOptions,
    log: &RefCell<ClientLog>,
) -> Result<(), String> {
    let spec = &options.media;
    let mut source = SyntheticSource::new(spec.clone());
    let start = now();
    let mut out = OutQueue::new();
    let mut arena = BytesMut::new();
    let mut packets: Vec<RtpPacketOut> = Vec::new();
    let mut waiter = Waiter::default();
    let mut finished = false;
    let mut next_ping: Option<Millis> = None;
    let url = conn.url(&format!("{}/{}", options.app, options.stream));
    loop {
        let mut wake_at = None;
        while !finished {
            let next = source.peek();
            if next.kind == Track::Video && next.seq >= options.video_frames {
                finished = true;
                match options.end {
                    PublishEnd::Stop => {
                        flush_all(conn, &mut out).await?;
                        let teardown = conn
                            .request(Method::Teardown, &url, &[], Bytes::new())
                            .await
                            .map_err(|error| format!("teardown: {error}"))?;
                        let _ = refused(&teardown, log);
                        closed(log, "stopped");
                        while let Ok(Some(_)) = conn.next_input().await {}
                        return Ok(());
                    }
                    PublishEnd::Disconnect => {
                        let _ = flush(conn, &mut out);
                        closed(log, "disconnected");
                        return Ok(());
                    }
                    PublishEnd::Stay => {}
                    PublishEnd::Ping { interval_ms } => next_ping = Some(now() + interval_ms),
                }
                break;
            }
            let due = start + u64::try_from(spec.dts(next)).unwrap_or(0);
            if due > now() {
                wake_at = Some(due);
                break;
            }
            let frame = source.next_frame();
            let index = match next.kind {
                Track::Video => 0,
                Track::Audio => 1,
            };
            packets.clear();
            let Some(track) = tracks.get_mut(index) else {
                continue;
            };
            let packetized = match &mut track.packetizer {
                Packetizer::Video(inner) => inner.packetize(&frame, &mut arena, &mut packets),
                Packetizer::Audio(inner) => inner.packetize(&frame, &mut arena, &mut packets),
            };
            if packetized.is_ok() {
                for packet in &packets {
                    match &track.udp {
                        Some((socket, _, server)) => {
                            let segments = packet.segments.iter().map(|s| &s[..]);
                            socket.send_gathered(segments, *server);
                        }
                        None => {
                            if let Some(header) = interleaved_header(2 * index as u8, packet.len())
                            {
                                out.push(Bytes::copy_from_slice(&header));
                                packet.queue(&mut out);
                            }
                        }
                    }
                }
            }
            log.borrow_mut().push(now(), Event::Sent(next));
        }
        if let (PublishEnd::Ping { interval_ms }, Some(at)) = (options.end, next_ping) {
            if now() >= at {
                let mut request = BytesMut::new();
                conn.encode_request(Method::GetParameter, &url, &[], Bytes::new(), &mut request);
                out.push(request.freeze());
                log.borrow_mut().push(now(), Event::Pinged);
                next_ping = Some(at + interval_ms.max(1));
            }
            wake_at = next_ping;
        }
        flush(conn, &mut out)?;
        let want_write = !out.is_empty();
        let woke = waiter.wait(&conn.stream, true, want_write, wake_at).await;
        if woke == Woke::Readable {
            // Answers to keep-alives; nothing to act on but the end.
            let open = conn
                .read_ready()
                .map_err(|error| format!("read: {error}"))?;
            while let Ok(Some(_)) = conn.decode() {}
            if !open {
                return Err("server closed".into());
            }
        }
    }
}

/// Writes what `out` holds as far as the connection takes it now.
fn flush(conn: &RtspConnection, out: &mut OutQueue) -> Result<(), String> {
    while !out.is_empty() {
        match conn.stream.try_send_queue(out) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => return Err(format!("write: {error}")),
        }
    }
    Ok(())
}

/// Writes all of `out`, waiting for room.
async fn flush_all(conn: &RtspConnection, out: &mut OutQueue) -> Result<(), String> {
    conn.stream
        .send_queue(out)
        .await
        .map_err(|error| format!("write: {error}"))
}

/// The `Transport` a client asks for in the SETUP of track `index`: UDP from the
/// `udp_port`s up (binding the RTP/RTCP pair it then receives on), else TCP interleaved on
/// channels `2 * index` and the next; `extra` is appended (`;mode=record` for a publisher).
fn track_transport(
    from: IpAddr,
    udp_port: Option<u16>,
    index: usize,
    extra: &str,
) -> io::Result<(String, Option<(UdpSocket, UdpSocket)>)> {
    match udp_port {
        Some(first) => {
            let port = first + 2 * index as u16;
            let rtp = UdpSocket::bind(SocketAddr::new(from, port))?;
            let rtcp = UdpSocket::bind(SocketAddr::new(from, port + 1))?;
            let spec = format!("RTP/AVP;unicast;client_port={}-{}{extra}", port, port + 1);
            Ok((spec, Some((rtp, rtcp))))
        }
        None => {
            let channel = 2 * index;
            let spec = format!(
                "RTP/AVP/TCP;unicast;interleaved={}-{}{extra}",
                channel,
                channel + 1
            );
            Ok((spec, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_slice_is_picked_out_of_an_access_unit_with_parameter_sets() {
        let spec = MediaSpec::default();
        let mut source = SyntheticSource::new(spec.clone());
        let keyframe = source.next_frame();
        let mut payload = BytesMut::new();
        for nal in [&[0x67u8, 1, 2][..], &[0x68, 3]] {
            payload.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            payload.extend_from_slice(nal);
        }
        payload.extend_from_slice(&keyframe.payload);
        let received = Frame {
            payload: payload.freeze(),
            keyframe: false,
            ..keyframe.clone()
        };
        let picked = synthetic_video(received);
        assert_eq!(picked, keyframe);
        assert!(spec.check(&picked).is_ok());
        // Nothing to pick: returned as it came, for the check to reject.
        let sets_only = Frame {
            payload: Bytes::from_static(&[0, 0, 0, 1, 0x67]),
            ..keyframe
        };
        assert_eq!(synthetic_video(sets_only.clone()), sets_only);
    }
}
