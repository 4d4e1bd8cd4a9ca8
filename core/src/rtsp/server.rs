//! The server side of an RTSP connection (RFC 2326): playing a live stream with DESCRIBE,
//! SETUP and PLAY, publishing one with ANNOUNCE, SETUP and RECORD, RTP and RTCP interleaved on
//! the same TCP connection or over UDP.
//!
//! As with RTMP, the session asks before it serves anything: DESCRIBE becomes
//! [`SessionEvent::PlayRequested`] and ANNOUNCE [`SessionEvent::PublishRequested`]; the answer
//! comes back through [`LiveSession::accept_play`], [`LiveSession::accept_publish`] or
//! [`LiveSession::reject`]. A DESCRIBE answer needs the tracks' codec configurations for its
//! SDP, so after `accept_play` it waits for them to arrive through
//! [`LiveSession::send_media`] (the hub's start-up snapshot begins with them) and keeps the
//! frames that follow, so PLAY starts at once at a keyframe.
//!
//! Each track travels interleaved on the connection (`RTP/AVP/TCP`) or, when the runtime
//! gave the session a UDP port pair ([`RtspServerConfig::udp_ports`]), over UDP unicast to the
//! client's ports. A UDP SETUP asks the server first ([`SessionEvent::DatagramPortsRequested`]):
//! it is answered once the server has routed the client's ports here
//! ([`LiveSession::accept_datagram_ports`]), or `461 Unsupported Transport` when they belong
//! to another session (`reject(`[`Rejection::PortsInUse`]`)`). UDP output goes to
//! [`LiveSession::datagrams`]; UDP input comes back through [`LiveSession::handle_datagram`].
//! Without a port pair, or for multicast, SETUP is answered 461 at once. Requests that arrive
//! while DESCRIBE, ANNOUNCE or a UDP SETUP waits for the server are answered in order once it
//! has. A stream path that is not a valid [`StreamKey`] is answered 400 by the session itself
//! ([`SessionEvent::BadStreamName`]).
//!
//! A session ends after [`RtspServerConfig::session_timeout_ms`] without progress: RTP media
//! for a publisher that is recording (its requests, keep-alives and RTCP do not count, so a
//! publisher that stopped sending cannot hold its stream name), any request or RTCP for the
//! others.
//!
//! Sender reports carry an NTP time, but the core has no wall clock: the NTP time of `now` is
//! [`RtspServerConfig::ntp_epoch_offset_micros`] (the Unix time at which the caller's
//! [`Millis`] clock read zero) plus `now`. With the default 0 the NTP times are relative,
//! which is all a player needs to align the tracks of one session: every report of a session
//! maps NTP to RTP on the same line for all its tracks.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use bytes::{BufMut, Bytes, BytesMut};

use super::message::{Input, Method, Request, Response, RtspDecoder, RtspError, RtspLimits};
use super::transport::{LowerTransport, RtpInfo, Transport, TransportMode};
use crate::datagram::{Datagram, DatagramQueue, UdpChannel};
use crate::key::StreamKey;
use crate::latch::Latch;
use crate::media::{AvcConfig, Frame, HevcConfig, Media, MediaKind, TrackConfig};
use crate::outq::OutQueue;
use crate::rtcp::{self, Bye, NtpTimestamp, ReceiverReport, RtcpPacket, SenderReport};
use crate::rtp::{
    AacDepacketizer, AacPacketizer, DepacketizerConfig, DtsGenerator, H264Depacketizer,
    H264Packetizer, H265Depacketizer, H265Packetizer, PacketizerConfig, ReceiverStats, RtpClock,
    RtpError, RtpPacket, RtpPacketOut, DEFAULT_MAX_ACCESS_UNIT, DEFAULT_MTU, RTP_HEADER_LEN,
    VIDEO_CLOCK_RATE,
};
use crate::sdp::{MediaDescription, SdpCodec, SessionDescription};
use crate::session::{LiveSession, Phase, Rejection, RequestKind, SessionEvent};
use crate::time::Millis;

/// The methods the server answers, for `Public` in OPTIONS replies. GET_PARAMETER in this
/// list is what makes ffmpeg use it as its keep-alive.
const PUBLIC: &str =
    "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, PAUSE, RECORD, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
/// The `s=` of the SDP we answer DESCRIBE with, and the RTCP CNAME.
const SERVER_NAME: &str = "mediakit";

/// With publisher sender reports, how far before the first mapped packet the ingest timeline's
/// zero lies: room for tracks that start a little before the first packet to arrive.
pub const SENDER_REPORT_TIMELINE_MARGIN_MS: i64 = 1_000;

/// Most RTP packets of a track kept while its first sender report is awaited (another track
/// already set the timeline from its report; over UDP a report can arrive after the RTP it
/// preceded). Past this the track starts without a report.
const MAX_RTP_BEFORE_REPORT: usize = 64;

/// Most audio frames kept back while video waits for decode times (about 1 s of AAC at
/// 48 kHz twice over).
const MAX_HELD_AUDIO: usize = 96;

/// Limits and settings of one server session.
#[derive(Debug, Clone)]
pub struct RtspServerConfig {
    /// Bounds on request heads and bodies (interleaved frames are bounded by their 16-bit
    /// length).
    pub limits: RtspLimits,
    /// The most media sections an ANNOUNCE may describe.
    pub max_tracks: usize,
    /// A session that makes no progress for this long is closed, in milliseconds (announced
    /// to clients as `Session: id;timeout=`). Progress is RTP media for a recording
    /// publisher, any request or RTCP for the others (see the module docs).
    pub session_timeout_ms: u64,
    /// A connection that has not sent DESCRIBE or ANNOUNCE by then is closed, in milliseconds.
    pub setup_timeout_ms: u64,
    /// How long an accepted DESCRIBE waits for the track configurations before it is answered
    /// with what has arrived (or 404 if nothing has), in milliseconds.
    pub describe_timeout_ms: u64,
    /// Interval between RTCP sender reports of each track while playing, in milliseconds.
    pub sender_report_interval_ms: u64,
    /// The Unix time in microseconds at which the caller's `Millis` clock read zero; sender
    /// reports carry NTP times from it (see the module docs). 0 gives relative NTP times.
    pub ntp_epoch_offset_micros: u64,
    /// Largest RTP packet sent to players.
    pub mtu: usize,
    /// The most frames kept between the DESCRIBE answer and PLAY.
    pub max_held_frames: usize,
    /// The most payload bytes kept between the DESCRIBE answer and PLAY.
    pub max_held_bytes: usize,
    /// Largest access unit reassembled from a publisher's RTP.
    pub max_frame_bytes: usize,
    /// The most requests queued while DESCRIBE, ANNOUNCE or a UDP SETUP waits for the server.
    pub max_queued_requests: usize,
    /// The most body and interleaved bytes queued while a request waits for the server.
    pub max_queued_bytes: usize,
    /// The server's RTP and RTCP UDP ports (`server_port=` in SETUP answers), when the runtime
    /// serves RTP over UDP; `None` answers UDP SETUPs with 461.
    pub udp_ports: Option<(u16, u16)>,
}

impl Default for RtspServerConfig {
    fn default() -> Self {
        Self {
            limits: RtspLimits::default(),
            max_tracks: 4,
            session_timeout_ms: 60_000,
            setup_timeout_ms: 15_000,
            describe_timeout_ms: 10_000,
            sender_report_interval_ms: 5_000,
            ntp_epoch_offset_micros: 0,
            mtu: DEFAULT_MTU,
            max_held_frames: 1024,
            max_held_bytes: 16 << 20,
            max_frame_bytes: DEFAULT_MAX_ACCESS_UNIT,
            max_queued_requests: 8,
            max_queued_bytes: 1 << 20,
            udp_ports: None,
        }
    }
}

/// Why an RTSP session failed; the connection is closed with this as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtspServerError {
    /// The input is not RTSP, or exceeded a bound.
    #[error("RTSP input: {0}")]
    Message(#[from] RtspError),
    /// The peer broke the protocol in a way no response can answer.
    #[error("protocol: {0}")]
    Protocol(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before DESCRIBE or ANNOUNCE.
    Init,
    /// DESCRIBE waits for the server's answer.
    DescribeRequested,
    /// The server accepted; the DESCRIBE answer waits for the track configurations.
    DescribeAccepted {
        since: Millis,
    },
    /// DESCRIBE answered: SETUP and PLAY.
    Described,
    Playing,
    Paused,
    /// ANNOUNCE waits for the server's answer.
    AnnounceRequested,
    /// ANNOUNCE accepted: SETUP and RECORD.
    Announced,
    Recording,
    /// Torn down or refused; nothing more is served.
    Done,
}

impl State {
    fn is_player(self) -> bool {
        matches!(
            self,
            State::DescribeAccepted { .. } | State::Described | State::Playing | State::Paused
        )
    }

    fn is_publisher(self) -> bool {
        matches!(self, State::Announced | State::Recording)
    }
}

/// A request whose answer waits for the server.
#[derive(Debug)]
enum Pending {
    /// DESCRIBE or ANNOUNCE: the server accepts or refuses the stream.
    Stream(Request),
    /// A SETUP over UDP: the server routes the client's ports here or refuses them.
    Ports(PortsSetup),
}

/// A UDP SETUP held until the server answers [`SessionEvent::DatagramPortsRequested`];
/// nothing is recorded for its track until then.
#[derive(Debug)]
struct PortsSetup {
    request: Request,
    /// The track it sets up: an index into the published tracks (`publishing`) or the
    /// played ones.
    track: usize,
    publishing: bool,
    rtp: u16,
    rtcp: u16,
    /// The `Transport` of the answer.
    answer: Transport,
}

/// A packetizer for one track a player receives.
#[derive(Debug)]
enum Packetizer {
    H264(H264Packetizer),
    H265(H265Packetizer),
    Aac(AacPacketizer),
}

impl Packetizer {
    fn new(config: &TrackConfig, packetizer: &PacketizerConfig) -> Self {
        match config {
            TrackConfig::Avc(avc) => {
                let mut inner = H264Packetizer::new(packetizer.clone());
                inner.set_config(avc);
                Packetizer::H264(inner)
            }
            TrackConfig::Hevc(hevc) => {
                let mut inner = H265Packetizer::new(packetizer.clone());
                inner.set_config(hevc);
                Packetizer::H265(inner)
            }
            TrackConfig::Aac(aac) => {
                Packetizer::Aac(AacPacketizer::new(packetizer, aac.sample_rate))
            }
        }
    }

    fn set_config(&mut self, config: &TrackConfig) {
        match (self, config) {
            (Packetizer::H264(inner), TrackConfig::Avc(avc)) => inner.set_config(avc),
            (Packetizer::H265(inner), TrackConfig::Hevc(hevc)) => inner.set_config(hevc),
            _ => {}
        }
    }

    fn packetize(
        &mut self,
        frame: &Frame,
        arena: &mut BytesMut,
        out: &mut Vec<RtpPacketOut>,
    ) -> Result<(), RtpError> {
        match self {
            Packetizer::H264(inner) => inner.packetize(frame, arena, out),
            Packetizer::H265(inner) => inner.packetize(frame, arena, out),
            Packetizer::Aac(inner) => inner.packetize(frame, arena, out),
        }
    }

    fn next_sequence(&self) -> u16 {
        match self {
            Packetizer::H264(inner) => inner.next_sequence(),
            Packetizer::H265(inner) => inner.next_sequence(),
            Packetizer::Aac(inner) => inner.next_sequence(),
        }
    }

    fn clock(&self) -> &RtpClock {
        match self {
            Packetizer::H264(inner) => inner.clock(),
            Packetizer::H265(inner) => inner.clock(),
            Packetizer::Aac(inner) => inner.clock(),
        }
    }
}

/// Where one track's RTP and RTCP travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Interleaved on the RTSP connection on these RTP and RTCP channels.
    Interleaved(u8, u8),
    /// UDP between the server's port pair and these client RTP and RTCP ports.
    Udp(u16, u16),
}

impl Delivery {
    /// Whether this track uses `port` (a channel or a UDP port), and if so whether as RTCP.
    fn uses(self, port: u16, udp: bool) -> Option<bool> {
        let (rtp, rtcp) = match self {
            Delivery::Interleaved(rtp, rtcp) if !udp => (u16::from(rtp), u16::from(rtcp)),
            Delivery::Udp(rtp, rtcp) if udp => (rtp, rtcp),
            _ => return None,
        };
        (port == rtp || port == rtcp).then_some(port == rtcp)
    }

    /// Whether two tracks' deliveries would share a channel or port.
    fn overlaps(self, other: Delivery) -> bool {
        match other {
            Delivery::Interleaved(rtp, rtcp) => {
                self.uses(u16::from(rtp), false).is_some()
                    || self.uses(u16::from(rtcp), false).is_some()
            }
            Delivery::Udp(rtp, rtcp) => {
                self.uses(rtp, true).is_some() || self.uses(rtcp, true).is_some()
            }
        }
    }
}

/// One track of the SDP we answered DESCRIBE with.
#[derive(Debug)]
struct OutTrack {
    config: TrackConfig,
    packetizer: Packetizer,
    ssrc: u32,
    /// The path its SETUP URL resolves to.
    control_path: String,
    /// After SETUP: the URL used (for RTP-Info) and where its packets go.
    setup: Option<(String, Delivery)>,
    packets: u32,
    octets: u32,
}

/// A depacketizer for one track a publisher sends.
#[derive(Debug)]
enum Depacketizer {
    H264(H264Depacketizer),
    H265(H265Depacketizer),
    Aac(AacDepacketizer),
}

/// The codecs a publisher's track may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InCodec {
    H264,
    H265,
    Aac,
}

/// One media section of the SDP a publisher announced.
#[derive(Debug)]
struct InTrack {
    /// `None` for a codec we do not carry: its data is dropped.
    codec: Option<InCodec>,
    clock_rate: u32,
    config: Option<TrackConfig>,
    control_path: String,
    /// After SETUP: where its packets come from.
    delivery: Option<Delivery>,
    /// Created at the first RTP packet, when the timeline origin can be chosen.
    depacketizer: Option<Depacketizer>,
    /// The first sender report's NTP time (ms) and RTP timestamp.
    sender_report: Option<(i64, u32)>,
    /// The depacketizer's parameter-set generation last turned into a configuration.
    generation: u64,
    /// Video only: decode times for frames that RTP gives presentation times alone.
    dts: Option<DtsGenerator>,
    /// Reception statistics for our receiver reports.
    stats: ReceiverStats,
    /// Our SSRC as the receiver of this track.
    ssrc: u32,
    /// RTP that arrived before this track's first sender report while another track's
    /// report had already set the timeline (see [`MAX_RTP_BEFORE_REPORT`]).
    early_rtp: Vec<Bytes>,
    /// False once the track stopped waiting for its first sender report.
    report_awaited: bool,
}

/// One server-side RTSP connection.
#[derive(Debug)]
pub struct RtspServerSession {
    config: RtspServerConfig,
    decoder: RtspDecoder,
    session_id: String,
    /// State of the generator for SSRCs, sequence numbers and timestamps.
    random: u64,
    state: State,
    /// `app/stream` of the DESCRIBE or ANNOUNCE.
    stream_path: String,
    /// The request waiting for the server.
    pending: Option<Pending>,
    /// What arrived while `pending` waits, answered in order once it has been.
    queued: VecDeque<Input>,
    queued_requests: usize,
    queued_bytes: usize,
    events: VecDeque<SessionEvent>,
    out: OutQueue,
    datagrams: DatagramQueue,
    arena: BytesMut,
    now: Millis,
    started: Millis,
    last_activity: Millis,
    failed: Latch<RtspServerError>,
    closed: bool,
    // Playing.
    configs: Vec<TrackConfig>,
    out_tracks: Vec<OutTrack>,
    held: VecDeque<Frame>,
    held_bytes: usize,
    need_keyframe: bool,
    latest_dts: Option<i64>,
    /// `now` and media time at PLAY, the line sender reports map NTP to RTP on.
    anchor: (Millis, i64),
    next_report: Option<Millis>,
    packets: Vec<RtpPacketOut>,
    // Publishing.
    in_tracks: Vec<InTrack>,
    /// Audio frames kept back while a video track's DTS generator holds frames, so frames
    /// still go to the server in decode order across tracks.
    held_audio: VecDeque<Frame>,
    /// Reused buffer of frames leaving a DTS generator.
    released: Vec<Frame>,
    /// The publisher's NTP time (ms) that is 0 on our timeline, once a report has set it.
    ntp_base_ms: Option<i64>,
}

impl RtspServerSession {
    /// A session for a connection accepted at `now`. `random` seeds the session identifier
    /// (its low 32 bits in hexadecimal), SSRCs, first sequence numbers and RTP timestamps;
    /// the core has no RNG, so pass any per-connection unpredictable value.
    pub fn new(config: RtspServerConfig, now: Millis, random: u64) -> Self {
        Self {
            decoder: RtspDecoder::new(config.limits),
            config,
            session_id: format!("{:08X}", random as u32),
            random,
            state: State::Init,
            stream_path: String::new(),
            pending: None,
            queued: VecDeque::new(),
            queued_requests: 0,
            queued_bytes: 0,
            events: VecDeque::new(),
            out: OutQueue::new(),
            datagrams: DatagramQueue::new(),
            arena: BytesMut::new(),
            now,
            started: now,
            last_activity: now,
            failed: Latch::new(),
            closed: false,
            configs: Vec::new(),
            out_tracks: Vec::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            need_keyframe: true,
            latest_dts: None,
            anchor: (now, 0),
            next_report: None,
            packets: Vec::new(),
            in_tracks: Vec::new(),
            held_audio: VecDeque::new(),
            released: Vec::new(),
            ntp_base_ms: None,
        }
    }

    /// The session identifier sent in `Session` headers.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: spreads one seed over many well-mixed values.
        self.random = self.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn process(&mut self, input: &mut BytesMut) -> Result<(), RtspServerError> {
        while !self.closed {
            let Some(item) = self.decoder.decode(input)? else {
                break;
            };
            if self.pending.is_some() || !self.queued.is_empty() {
                self.queue(item)?;
            } else {
                self.on_input(item);
            }
        }
        if self.closed {
            input.clear();
        }
        Ok(())
    }

    /// Keeps an input that arrived while a request waits for the server (clients normally
    /// wait for the answer; this keeps a pipelining one's order).
    fn queue(&mut self, item: Input) -> Result<(), RtspServerError> {
        let (requests, bytes) = match &item {
            Input::Request(request) => (1, request.body.len()),
            Input::Response(_) => return Ok(()),
            Input::Interleaved { payload, .. } => (0, payload.len()),
        };
        self.queued_requests += requests;
        self.queued_bytes += bytes;
        if self.queued_requests > self.config.max_queued_requests
            || self.queued_bytes > self.config.max_queued_bytes
        {
            return Err(RtspServerError::Protocol(
                "too much input while a request waits for the server",
            ));
        }
        self.queued.push_back(item);
        Ok(())
    }

    fn on_input(&mut self, item: Input) {
        match item {
            Input::Request(request) => self.on_request(request),
            // We send no requests, so responses answer nothing.
            Input::Response(_) => {}
            Input::Interleaved { channel, payload } => self.on_interleaved(channel, payload),
        }
    }

    /// Acts on what arrived while DESCRIBE or ANNOUNCE waited.
    fn run_queued(&mut self) {
        while self.pending.is_none() && !self.closed {
            let Some(item) = self.queued.pop_front() else {
                break;
            };
            self.on_input(item);
        }
        if self.queued.is_empty() {
            self.queued_requests = 0;
            self.queued_bytes = 0;
        }
    }

    fn on_request(&mut self, request: Request) {
        match request.method {
            Method::Options => {
                let response = reply(&request, 200, "OK").header("Public", PUBLIC);
                self.respond(&response);
            }
            Method::Describe => self.on_describe(request),
            Method::Announce => self.on_announce(request),
            Method::Setup => self.on_setup(request),
            Method::Play => self.on_play(&request),
            Method::Pause => self.on_pause(&request),
            Method::Record => self.on_record(&request),
            Method::Teardown => self.on_teardown(&request),
            Method::GetParameter | Method::SetParameter => {
                if let Some(response) = self.check_session(&request) {
                    self.respond(&response);
                } else {
                    self.respond(&reply(&request, 200, "OK"));
                }
            }
            _ => self.respond(&reply(&request, 501, "Not Implemented")),
        }
    }

    fn respond(&mut self, response: &Response) {
        response.encode(&mut self.arena);
        self.out.push(self.arena.split().freeze());
    }

    /// The error response for a request naming another session, if it does.
    fn check_session(&self, request: &Request) -> Option<Response> {
        match request.session() {
            Some(id) if id != self.session_id => Some(reply(request, 454, "Session Not Found")),
            _ => None,
        }
    }

    /// The error response for a request outside this session's stream, or in the wrong
    /// session, if it is.
    fn check_target(&self, request: &Request) -> Option<Response> {
        if let Some(response) = self.check_session(request) {
            return Some(response);
        }
        let path = url_path(&request.uri);
        let inside = path == self.stream_path
            || path
                .strip_prefix(self.stream_path.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        (!inside).then(|| reply(request, 454, "Session Not Found"))
    }

    fn with_session(&self, response: Response) -> Response {
        let mut response = response;
        let value = format!(
            "{};timeout={}",
            self.session_id,
            self.config.session_timeout_ms / 1000
        );
        response.headers.set("Session", &value);
        response
    }

    fn on_describe(&mut self, request: Request) {
        if self.state != State::Init {
            return self.respond(&reply(&request, 455, "Method Not Valid in This State"));
        }
        self.ask_server(request, State::DescribeRequested);
    }

    /// Holds `request` for the server's answer and asks for its stream; a path that is not a
    /// stream key is refused at once.
    fn ask_server(&mut self, request: Request, state: State) {
        // `url_path` has already cut any query string.
        let path = url_path(&request.uri);
        let (app, stream) = path.split_once('/').unwrap_or((path, ""));
        let key = StreamKey::parse(app, stream);
        self.stream_path = String::from(path);
        self.state = state;
        self.pending = Some(Pending::Stream(request));
        let kind = if state == State::DescribeRequested {
            RequestKind::Play
        } else {
            RequestKind::Publish
        };
        match key {
            Ok(key) => self.events.push_back(match kind {
                RequestKind::Play => SessionEvent::PlayRequested { key },
                _ => SessionEvent::PublishRequested { key },
            }),
            Err(error) => {
                self.events.push_back(SessionEvent::BadStreamName {
                    request: kind,
                    error,
                });
                self.reject(Rejection::BadName);
            }
        }
    }

    /// The DESCRIBE or ANNOUNCE waiting for the server, taken out of `pending`.
    fn take_stream_request(&mut self) -> Option<Request> {
        match self.pending.take() {
            Some(Pending::Stream(request)) => Some(request),
            other => {
                self.pending = other;
                None
            }
        }
    }

    /// The UDP SETUP waiting for the server, taken out of `pending`.
    fn take_ports_setup(&mut self) -> Option<PortsSetup> {
        match self.pending.take() {
            Some(Pending::Ports(setup)) => Some(setup),
            other => {
                self.pending = other;
                None
            }
        }
    }

    /// Whether a UDP SETUP waits for the server (no deadline runs meanwhile).
    fn ports_pending(&self) -> bool {
        matches!(self.pending, Some(Pending::Ports(_)))
    }

    fn on_announce(&mut self, request: Request) {
        if self.state != State::Init {
            return self.respond(&reply(&request, 455, "Method Not Valid in This State"));
        }
        let sdp = match SessionDescription::parse(&request.body) {
            Ok(sdp) => sdp,
            Err(_) => return self.respond(&reply(&request, 400, "Bad Request (SDP)")),
        };
        if sdp.media.len() > self.config.max_tracks {
            return self.respond(&reply(&request, 400, "Bad Request (too many tracks)"));
        }
        let base = base_url(&request.uri);
        let tracks: Vec<InTrack> = sdp
            .media
            .iter()
            .map(|media| in_track(media, &base))
            .collect();
        if tracks.iter().all(|track| track.codec.is_none()) {
            return self.respond(&reply(&request, 415, "Unsupported Media Type"));
        }
        self.in_tracks = tracks;
        for index in 0..self.in_tracks.len() {
            let ssrc = self.next_random() as u32;
            if let Some(track) = self.in_tracks.get_mut(index) {
                track.ssrc = ssrc;
            }
        }
        self.ask_server(request, State::AnnounceRequested);
    }

    fn on_setup(&mut self, request: Request) {
        if let Some(response) = self.check_target(&request) {
            return self.respond(&response);
        }
        let publishing = match self.state {
            State::Described => false,
            State::Announced => true,
            _ => return self.respond(&reply(&request, 455, "Method Not Valid in This State")),
        };
        let transport = request
            .headers
            .get("Transport")
            .and_then(|value| Transport::parse_first_supported(value).ok());
        let udp_ports = self.config.udp_ports;
        let Some(transport) = transport.filter(|t| match t.lower {
            LowerTransport::Tcp => true,
            LowerTransport::Udp => t.unicast && t.client_port.is_some() && udp_ports.is_some(),
        }) else {
            return self.respond(&reply(&request, 461, "Unsupported Transport"));
        };
        let path = url_path(&request.uri);
        let index = if publishing {
            let tracks = self.in_tracks.iter();
            select_track(
                path,
                tracks.map(|t| (t.control_path.as_str(), t.delivery.is_some())),
            )
        } else {
            let tracks = self.out_tracks.iter();
            select_track(
                path,
                tracks.map(|t| (t.control_path.as_str(), t.setup.is_some())),
            )
        };
        let Some(index) = index else {
            return self.respond(&reply(&request, 404, "Not Found (no such track)"));
        };
        let mut answer = Transport::new(transport.lower);
        let delivery = match (transport.lower, transport.client_port, udp_ports) {
            (LowerTransport::Udp, Some((rtp, rtcp)), Some(server)) => {
                answer.client_port = Some((rtp, rtcp));
                answer.server_port = Some(server);
                Delivery::Udp(rtp, rtcp)
            }
            _ => {
                let default = u8::try_from(index * 2).unwrap_or(0);
                let (rtp, rtcp) = transport
                    .interleaved
                    .unwrap_or((default, default.saturating_add(1)));
                answer.interleaved = Some((rtp, rtcp));
                Delivery::Interleaved(rtp, rtcp)
            }
        };
        let clash = if publishing {
            self.in_tracks
                .iter()
                .enumerate()
                .any(|(i, t)| i != index && t.delivery.is_some_and(|d| d.overlaps(delivery)))
        } else {
            self.out_tracks.iter().enumerate().any(|(i, t)| {
                i != index && t.setup.as_ref().is_some_and(|s| s.1.overlaps(delivery))
            })
        };
        let one_port = match delivery {
            Delivery::Interleaved(rtp, rtcp) => rtp == rtcp,
            Delivery::Udp(rtp, rtcp) => rtp == rtcp,
        };
        if clash || one_port {
            return self.respond(&reply(
                &request,
                400,
                "Bad Request (channels or ports in use)",
            ));
        }
        match delivery {
            Delivery::Udp(rtp, rtcp) => {
                // The ports may be routed to another session: the server decides, and what
                // arrives meanwhile waits behind this SETUP.
                self.pending = Some(Pending::Ports(PortsSetup {
                    request,
                    track: index,
                    publishing,
                    rtp,
                    rtcp,
                    answer,
                }));
                self.events
                    .push_back(SessionEvent::DatagramPortsRequested { rtp, rtcp });
            }
            Delivery::Interleaved(..) => {
                self.finish_setup(&request, index, publishing, delivery, answer);
            }
        }
    }

    /// Records where track `index` travels and answers its SETUP.
    fn finish_setup(
        &mut self,
        request: &Request,
        index: usize,
        publishing: bool,
        delivery: Delivery,
        mut answer: Transport,
    ) {
        if publishing {
            answer.mode = Some(TransportMode::Record);
            if let Some(track) = self.in_tracks.get_mut(index) {
                track.delivery = Some(delivery);
            }
        } else if let Some(track) = self.out_tracks.get_mut(index) {
            answer.ssrc = Some(track.ssrc);
            track.setup = Some((request.uri.clone(), delivery));
        }
        let response = reply(request, 200, "OK").header("Transport", &answer.to_string());
        let response = self.with_session(response);
        self.respond(&response);
    }

    fn on_play(&mut self, request: &Request) {
        if let Some(response) = self.check_target(request) {
            return self.respond(&response);
        }
        let ready = matches!(
            self.state,
            State::Described | State::Paused | State::Playing
        ) && self.out_tracks.iter().any(|t| t.setup.is_some());
        if !ready {
            return self.respond(&reply(request, 455, "Method Not Valid in This State"));
        }
        let start = self
            .held
            .front()
            .map(|frame| frame.dts)
            .or(self.latest_dts)
            .unwrap_or(0);
        let entries: Vec<RtpInfo> = self
            .out_tracks
            .iter()
            .filter_map(|track| {
                let (url, _) = track.setup.as_ref()?;
                Some(RtpInfo {
                    url: url.clone(),
                    seq: Some(track.packetizer.next_sequence()),
                    rtptime: Some(track.packetizer.clock().timestamp(start)),
                })
            })
            .collect();
        let response = reply(request, 200, "OK")
            .header("Range", "npt=0.000-")
            .header("RTP-Info", &RtpInfo::header_value(&entries));
        let response = self.with_session(response);
        self.respond(&response);
        if self.state != State::Playing {
            self.state = State::Playing;
            self.anchor = (self.now, start);
            self.send_reports();
            let held: Vec<Frame> = self.held.drain(..).collect();
            self.held_bytes = 0;
            for frame in &held {
                self.send_frame(frame);
            }
        }
    }

    fn on_pause(&mut self, request: &Request) {
        if let Some(response) = self.check_target(request) {
            return self.respond(&response);
        }
        match self.state {
            State::Playing => {
                self.state = State::Paused;
                self.need_keyframe = true;
                self.next_report = None;
            }
            State::Described | State::Paused => {}
            _ => return self.respond(&reply(request, 455, "Method Not Valid in This State")),
        }
        self.respond(&reply(request, 200, "OK"));
    }

    fn on_record(&mut self, request: &Request) {
        if let Some(response) = self.check_target(request) {
            return self.respond(&response);
        }
        let ready =
            self.state == State::Announced && self.in_tracks.iter().any(|t| t.delivery.is_some());
        if !ready {
            return self.respond(&reply(request, 455, "Method Not Valid in This State"));
        }
        self.state = State::Recording;
        // From here only RTP counts as progress; the clock starts at RECORD.
        self.last_activity = self.now;
        self.next_report = Some(self.now + self.config.sender_report_interval_ms);
        let response = self.with_session(reply(request, 200, "OK"));
        self.respond(&response);
    }

    fn on_teardown(&mut self, request: &Request) {
        if let Some(response) = self.check_session(request) {
            return self.respond(&response);
        }
        self.respond(&reply(request, 200, "OK"));
        self.stop();
        self.close("teardown");
    }

    /// Tells the server that publishing or playing has stopped, if it had started.
    fn stop(&mut self) {
        if self.state.is_player() {
            self.events.push_back(SessionEvent::PlayStopped);
        } else if self.state.is_publisher() {
            self.flush_depacketizers();
            self.events.push_back(SessionEvent::PublishStopped);
        }
        self.state = State::Done;
    }

    fn close(&mut self, reason: &'static str) {
        if !self.closed {
            self.closed = true;
            self.state = State::Done;
            self.pending = None;
            self.queued.clear();
            self.events.push_back(SessionEvent::Closed { reason });
        }
    }

    // ----- playing -----

    fn has_video(&self) -> bool {
        let kinds = self.configs.iter().map(TrackConfig::kind);
        let mut kinds = kinds.chain(self.out_tracks.iter().map(|t| t.config.kind()));
        kinds.any(|kind| kind == MediaKind::Video)
    }

    /// Whether a frame may go out now: after a start, pause or overflow, everything waits for
    /// a video keyframe (when there is video).
    fn passes_keyframe_gate(&mut self, frame: &Frame) -> bool {
        if self.need_keyframe {
            if self.has_video() && !(frame.kind() == MediaKind::Video && frame.keyframe) {
                return false;
            }
            self.need_keyframe = false;
        }
        true
    }

    fn hold(&mut self, frame: &Frame) {
        let full = self.held.len() >= self.config.max_held_frames
            || self.held_bytes + frame.payload.len() > self.config.max_held_bytes;
        if full {
            // Better to restart at the next keyframe than to start with a gap.
            self.held.clear();
            self.held_bytes = 0;
            self.need_keyframe = true;
        }
        if self.passes_keyframe_gate(frame) {
            self.held_bytes += frame.payload.len();
            self.held.push_back(frame.clone());
        }
    }

    fn answer_describe(&mut self) {
        let Some(request) = self.take_stream_request() else {
            return;
        };
        if self.configs.is_empty() {
            self.respond(&reply(&request, 404, "Not Found (no playable tracks)"));
            self.stop();
            self.close("no playable tracks");
            return;
        }
        // Video first, as players list it.
        self.configs
            .sort_by_key(|config| config.kind() != MediaKind::Video);
        let configs = core::mem::take(&mut self.configs);
        let base = base_url(&request.uri);
        let sdp = SessionDescription::from_tracks(&configs, SERVER_NAME);
        for (config, media) in configs.into_iter().zip(&sdp.media) {
            let random = self.next_random();
            let packetizer = PacketizerConfig {
                payload_type: media.payload_type,
                ssrc: random as u32,
                initial_sequence: (random >> 32) as u16,
                initial_timestamp: self.next_random() as u32,
                mtu: self.config.mtu,
                insert_parameter_sets: true,
            };
            self.out_tracks.push(OutTrack {
                packetizer: Packetizer::new(&config, &packetizer),
                config,
                ssrc: packetizer.ssrc,
                control_path: String::from(url_path(&media.control_url(&base))),
                setup: None,
                packets: 0,
                octets: 0,
            });
        }
        let body = Bytes::from(sdp.to_string());
        let response = reply(&request, 200, "OK")
            .header("Content-Base", &base)
            .header("Content-Type", "application/sdp")
            .body(body);
        self.respond(&response);
        self.state = State::Described;
        self.run_queued();
    }

    fn collect_for_describe(&mut self, media: &Media) {
        match media {
            Media::Config(config) => {
                self.configs.retain(|known| known.kind() != config.kind());
                self.configs.push(config.clone());
                let kinds = |kind| self.configs.iter().any(|c| c.kind() == kind);
                if kinds(MediaKind::Video) && kinds(MediaKind::Audio) {
                    self.answer_describe();
                }
            }
            Media::Frame(frame) => {
                if self.configs.iter().any(|c| c.codec() == frame.codec) {
                    self.hold(frame);
                    self.answer_describe();
                }
            }
            Media::Metadata(_) => {}
        }
    }

    fn update_config(&mut self, config: &TrackConfig) {
        for track in &mut self.out_tracks {
            if track.config.codec() == config.codec() {
                track.packetizer.set_config(config);
                track.config = config.clone();
            }
        }
    }

    fn send_frame(&mut self, frame: &Frame) {
        if !self.passes_keyframe_gate(frame) {
            return;
        }
        let Some(track) = self
            .out_tracks
            .iter_mut()
            .find(|t| t.config.codec() == frame.codec)
        else {
            return;
        };
        let Some((_, delivery)) = track.setup else {
            return;
        };
        self.packets.clear();
        // A frame the packetizer cannot carry (malformed length prefixes, AAC over 8 KiB) is
        // dropped: a live player can only be offered the next one.
        if track
            .packetizer
            .packetize(frame, &mut self.arena, &mut self.packets)
            .is_err()
        {
            return;
        }
        for packet in &self.packets {
            let len = packet.len();
            queue_packet(
                &mut self.out,
                &mut self.datagrams,
                &mut self.arena,
                delivery,
                UdpChannel::Rtp,
                &packet.segments,
            );
            track.packets = track.packets.wrapping_add(1);
            let payload = len.saturating_sub(RTP_HEADER_LEN);
            track.octets = track.octets.wrapping_add(payload as u32);
        }
    }

    /// Queues one RTCP compound packet (built by `write`) for a track.
    fn queue_rtcp(&mut self, delivery: Delivery, write: impl FnOnce(&mut BytesMut)) {
        self.arena.reserve(128);
        write(&mut self.arena);
        let packet = self.arena.split().freeze();
        queue_packet(
            &mut self.out,
            &mut self.datagrams,
            &mut self.arena,
            delivery,
            UdpChannel::Rtcp,
            core::slice::from_ref(&packet),
        );
    }

    /// Sends a sender report for every set-up track; all on the same NTP ↔ media-time line.
    fn send_reports(&mut self) {
        let (anchor_now, anchor_media) = self.anchor;
        let elapsed = i64::try_from(self.now.saturating_since(anchor_now)).unwrap_or(i64::MAX);
        let media_now = anchor_media.saturating_add(elapsed);
        let micros = self
            .config
            .ntp_epoch_offset_micros
            .saturating_add(self.now.0.saturating_mul(1000));
        let ntp = NtpTimestamp::from_unix_micros(micros);
        for track in &self.out_tracks {
            if let Some((_, delivery)) = track.setup {
                let report = SenderReport {
                    ssrc: track.ssrc,
                    ntp,
                    rtp_timestamp: track.packetizer.clock().timestamp(media_now),
                    packet_count: track.packets,
                    octet_count: track.octets,
                    reports: Vec::new(),
                };
                let output = (&mut self.out, &mut self.datagrams, &mut self.arena);
                queue_report(output, delivery, track.ssrc, |out| report.encode(out));
            }
        }
        self.next_report = Some(self.now + self.config.sender_report_interval_ms);
    }

    fn send_byes(&mut self) {
        let byes: Vec<(Delivery, u32)> = self
            .out_tracks
            .iter()
            .filter_map(|t| t.setup.as_ref().map(|(_, delivery)| (*delivery, t.ssrc)))
            .collect();
        for (delivery, ssrc) in byes {
            self.queue_rtcp(delivery, |out| {
                Bye {
                    sources: alloc::vec![ssrc],
                    reason: None,
                }
                .encode(out);
            });
        }
    }

    // ----- publishing -----

    fn on_interleaved(&mut self, channel: u8, payload: Bytes) {
        self.on_track_data(u16::from(channel), false, payload);
    }

    /// RTP or RTCP from the peer on `port` (an interleaved channel, or a UDP port).
    fn on_track_data(&mut self, port: u16, udp: bool, payload: Bytes) {
        if !matches!(self.state, State::Recording | State::Announced) {
            // A player's receiver reports, or data before SETUP: nothing to act on.
            return;
        }
        let found = self.in_tracks.iter().enumerate().find_map(|(i, t)| {
            let rtcp = t.delivery?.uses(port, udp)?;
            Some((i, rtcp))
        });
        match found {
            Some((index, true)) => self.on_rtcp(index, &payload),
            Some((index, false)) if self.state == State::Recording => {
                // Media is a recording publisher's only progress (see the module docs).
                if RtpPacket::parse(&payload).is_ok() {
                    self.last_activity = self.now;
                }
                self.on_rtp(index, &payload);
            }
            _ => {}
        }
    }

    fn on_rtcp(&mut self, index: usize, payload: &Bytes) {
        // Malformed RTCP costs nothing but itself: it only refines the timeline.
        let Ok(packets) = rtcp::parse_compound(payload) else {
            return;
        };
        for packet in packets {
            match packet {
                RtcpPacket::SenderReport(report) => {
                    let ntp_ms = i64::try_from(report.ntp.to_unix_micros() / 1000).unwrap_or(0);
                    let mut early = Vec::new();
                    if let Some(track) = self.in_tracks.get_mut(index) {
                        track.stats.on_sender_report(&report, self.now);
                        if track.depacketizer.is_none() {
                            track.sender_report = Some((ntp_ms, report.rtp_timestamp));
                            early = core::mem::take(&mut track.early_rtp);
                        }
                    }
                    // The RTP that overtook this report now maps onto the shared timeline.
                    for payload in &early {
                        self.on_rtp(index, payload);
                    }
                }
                // The publisher's source leaves (ffmpeg says so just before its TEARDOWN):
                // the frames still held for this track go out now rather than at the end.
                RtcpPacket::Bye(_) => self.flush_track(index),
                _ => {}
            }
        }
    }

    fn on_rtp(&mut self, index: usize, payload: &Bytes) {
        if self.hold_until_report(index, payload) {
            return;
        }
        // A malformed packet is dropped alone; the depacketizer resynchronises at the next
        // keyframe if it took part of a frame with it.
        let Ok(packet) = RtpPacket::parse(payload) else {
            return;
        };
        let max_frame = self.config.max_frame_bytes;
        let ntp_base = &mut self.ntp_base_ms;
        let Some(track) = self.in_tracks.get_mut(index) else {
            return;
        };
        track.stats.on_packet(&packet.header, self.now);
        let Some(codec) = track.codec else {
            return;
        };
        let depacketizer = track.depacketizer.get_or_insert_with(|| {
            // With a sender report the timeline is the publisher's NTP clock, which keeps the
            // tracks aligned. Its zero lies `SENDER_REPORT_TIMELINE_MARGIN_MS` before the first
            // packet mapped this way, so a track whose first frame belongs slightly earlier
            // (audio primed ahead of video, say) keeps its true offset instead of going
            // negative: RTMP and FLV carry unsigned times. A track that would still start
            // before the zero starts at it. Without a report, the track starts at 0.
            let timestamp = packet.header.timestamp;
            let origin = match track.sender_report {
                Some((ntp_ms, rtp)) => {
                    let clock = RtpClock::new(track.clock_rate, None);
                    let since_report = i64::from(timestamp.wrapping_sub(rtp) as i32);
                    let packet_ntp = ntp_ms.saturating_add(clock.ticks_to_millis(since_report));
                    let zero = *ntp_base
                        .get_or_insert(packet_ntp.saturating_sub(SENDER_REPORT_TIMELINE_MARGIN_MS));
                    if packet_ntp < zero {
                        timestamp
                    } else {
                        let ticks = clock.millis_to_ticks(ntp_ms.saturating_sub(zero));
                        // Modulo 2^32, as RTP timestamps are.
                        rtp.wrapping_sub(ticks as u32)
                    }
                }
                None => timestamp,
            };
            let config = DepacketizerConfig {
                timestamp_origin: Some(origin),
                max_access_unit: max_frame,
                ..DepacketizerConfig::default()
            };
            match codec {
                InCodec::H264 => Depacketizer::H264(H264Depacketizer::new(&config)),
                InCodec::H265 => Depacketizer::H265(H265Depacketizer::new(&config)),
                InCodec::Aac => Depacketizer::Aac(AacDepacketizer::new(&config, track.clock_rate)),
            }
        });
        // Errors describe this packet only; the depacketizer stays usable.
        let _ = match depacketizer {
            Depacketizer::H264(inner) => inner.push(packet),
            Depacketizer::H265(inner) => inner.push(packet),
            Depacketizer::Aac(inner) => inner.push(packet),
        };
        self.pull_frames(index);
    }

    /// Keeps a track's first RTP back while another track's sender report has set the
    /// timeline and this track's own report has not arrived: mapped without it, the track
    /// would start on a timeline of its own, a second or more off the others. Returns whether
    /// the packet was kept. When too many wait, they go through without a report.
    fn hold_until_report(&mut self, index: usize, payload: &Bytes) -> bool {
        let timeline_set = self.ntp_base_ms.is_some();
        let Some(track) = self.in_tracks.get_mut(index) else {
            return false;
        };
        let waiting = timeline_set
            && track.report_awaited
            && track.depacketizer.is_none()
            && track.sender_report.is_none();
        if !waiting {
            return false;
        }
        if track.early_rtp.len() < MAX_RTP_BEFORE_REPORT {
            track.early_rtp.push(payload.clone());
            return true;
        }
        self.release_early_rtp(index);
        false
    }

    /// Passes on a track's held RTP, in order, without waiting for its sender report any
    /// longer (the track then starts at its first packet).
    fn release_early_rtp(&mut self, index: usize) {
        let Some(track) = self.in_tracks.get_mut(index) else {
            return;
        };
        track.report_awaited = false;
        let early = core::mem::take(&mut track.early_rtp);
        for payload in &early {
            self.on_rtp(index, payload);
        }
    }

    fn pull_frames(&mut self, index: usize) {
        loop {
            let Some(track) = self.in_tracks.get_mut(index) else {
                return;
            };
            let frame = match &mut track.depacketizer {
                Some(Depacketizer::H264(inner)) => inner.pull(),
                Some(Depacketizer::H265(inner)) => inner.pull(),
                Some(Depacketizer::Aac(inner)) => inner.pull(),
                None => None,
            };
            let Some(frame) = frame else {
                return;
            };
            if let Some(config) = in_band_config(track) {
                // Frames still waiting for their decode time belong before the new
                // configuration.
                self.release_frames(index, true);
                self.events
                    .push_back(SessionEvent::Media(Media::Config(config)));
            }
            self.emit_frame(index, frame);
        }
    }

    /// Passes a depacketized frame on: video through its track's DTS generator, audio held
    /// back while a generator holds video, so the server gets frames in decode order.
    fn emit_frame(&mut self, index: usize, frame: Frame) {
        let Some(track) = self.in_tracks.get_mut(index) else {
            return;
        };
        if let Some(dts) = &mut track.dts {
            dts.push(frame);
            return self.release_frames(index, false);
        }
        if self.video_held() {
            // A generator holds at most a few frames; this bound only guards against a
            // video track that stopped mid-hold.
            if self.held_audio.len() >= MAX_HELD_AUDIO {
                if let Some(oldest) = self.held_audio.pop_front() {
                    self.events
                        .push_back(SessionEvent::Media(Media::Frame(oldest)));
                }
            }
            self.held_audio.push_back(frame);
        } else {
            self.events
                .push_back(SessionEvent::Media(Media::Frame(frame)));
        }
    }

    /// Whether a video track's DTS generator holds frames.
    fn video_held(&self) -> bool {
        self.in_tracks
            .iter()
            .any(|t| t.dts.as_ref().is_some_and(|dts| dts.held() > 0))
    }

    /// Emits what track `index`'s DTS generator has given decode times (all it holds with
    /// `flush`), each after the held audio that decodes strictly before it; then, if no video is held
    /// any more, the rest of the held audio.
    fn release_frames(&mut self, index: usize, flush: bool) {
        let mut released = core::mem::take(&mut self.released);
        if let Some(dts) = self.in_tracks.get_mut(index).and_then(|t| t.dts.as_mut()) {
            if flush {
                dts.flush();
            }
            released.extend(core::iter::from_fn(|| dts.pop()));
        }
        for frame in released.drain(..) {
            // Audio at the same time as a video frame goes after it, as muxers interleave
            // (and a player joining at a keyframe then gets that audio frame too).
            while let Some(audio) = self.held_audio.pop_front() {
                if audio.dts >= frame.dts {
                    self.held_audio.push_front(audio);
                    break;
                }
                self.events
                    .push_back(SessionEvent::Media(Media::Frame(audio)));
            }
            self.events
                .push_back(SessionEvent::Media(Media::Frame(frame)));
        }
        self.released = released;
        if !self.video_held() {
            for audio in self.held_audio.drain(..) {
                self.events
                    .push_back(SessionEvent::Media(Media::Frame(audio)));
            }
        }
    }

    fn flush_depacketizers(&mut self) {
        for index in 0..self.in_tracks.len() {
            self.flush_track(index);
        }
    }

    /// Passes on every frame a publisher's track still holds: the depacketizer's last access
    /// unit and the frames waiting for decode times.
    fn flush_track(&mut self, index: usize) {
        self.release_early_rtp(index);
        if let Some(track) = self.in_tracks.get_mut(index) {
            let _ = match &mut track.depacketizer {
                Some(Depacketizer::H264(inner)) => inner.flush(),
                Some(Depacketizer::H265(inner)) => inner.flush(),
                Some(Depacketizer::Aac(inner)) => inner.flush(),
                None => Ok(()),
            };
        }
        self.pull_frames(index);
        self.release_frames(index, true);
    }

    /// Sends a receiver report for every track being received, about as often as sender
    /// reports go to players.
    fn send_receiver_reports(&mut self) {
        for track in &mut self.in_tracks {
            let Some(delivery) = track.delivery else {
                continue;
            };
            if let Some(block) = track.stats.report_block(self.now) {
                let report = ReceiverReport {
                    ssrc: track.ssrc,
                    reports: alloc::vec![block],
                };
                let output = (&mut self.out, &mut self.datagrams, &mut self.arena);
                queue_report(output, delivery, track.ssrc, |out| report.encode(out));
            }
        }
        self.next_report = Some(self.now + self.config.sender_report_interval_ms);
    }

    fn reject_status(&self, why: Rejection) -> (u16, &'static str) {
        match (self.state, why) {
            (_, Rejection::NotFound) => (404, "Not Found"),
            // Ports in use cannot concern a DESCRIBE or ANNOUNCE; it is the server's refusal
            // all the same.
            (_, Rejection::Unavailable | Rejection::PortsInUse) => (503, "Service Unavailable"),
            (State::AnnounceRequested, Rejection::AlreadyPublishing) => {
                (406, "Not Acceptable (stream already publishing)")
            }
            _ => (400, "Bad Request (invalid stream name)"),
        }
    }
}

/// Queues one RTP or RTCP packet for a track: behind an interleave header on the connection,
/// or as a datagram. Either way the payload segments are shared, not copied.
fn queue_packet(
    out: &mut OutQueue,
    datagrams: &mut DatagramQueue,
    arena: &mut BytesMut,
    delivery: Delivery,
    channel: UdpChannel,
    segments: &[Bytes],
) {
    let rtcp = channel == UdpChannel::Rtcp;
    match delivery {
        Delivery::Interleaved(rtp_channel, rtcp_channel) => {
            let len = segments.iter().map(Bytes::len).sum();
            let channel = if rtcp { rtcp_channel } else { rtp_channel };
            let Some(header) = super::message::interleaved_header(channel, len) else {
                return;
            };
            arena.reserve(header.len());
            arena.put_slice(&header);
            out.push(arena.split().freeze());
            for segment in segments {
                out.push(segment.clone());
            }
        }
        Delivery::Udp(rtp_port, rtcp_port) => datagrams.push(Datagram {
            channel,
            port: if rtcp { rtcp_port } else { rtp_port },
            segments: segments.iter().cloned().collect(),
        }),
    }
}

/// Queues an RTCP report for a track, with the SDES CNAME every compound report carries.
fn queue_report(
    (out, datagrams, arena): (&mut OutQueue, &mut DatagramQueue, &mut BytesMut),
    delivery: Delivery,
    ssrc: u32,
    encode: impl FnOnce(&mut BytesMut),
) {
    arena.reserve(128);
    encode(arena);
    rtcp::encode_sdes_cname(arena, ssrc, SERVER_NAME.as_bytes());
    let packet = arena.split().freeze();
    let packet = core::slice::from_ref(&packet);
    queue_packet(out, datagrams, arena, delivery, UdpChannel::Rtcp, packet);
}

/// A response to `request` with our `Server` header.
fn reply(request: &Request, status: u16, reason: &str) -> Response {
    Response::to(request, status, reason).header("Server", SERVER_NAME)
}

/// The path of an RTSP URL: no scheme, authority, query or surrounding slashes.
fn url_path(uri: &str) -> &str {
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    let path = match uri.find("://") {
        Some(at) => {
            let rest = uri.get(at + 3..).unwrap_or_default();
            rest.find('/')
                .and_then(|slash| rest.get(slash..))
                .unwrap_or_default()
        }
        None => uri,
    };
    path.trim_matches('/')
}

/// The request URL without query, ending in one `/`, as `Content-Base` and the base of
/// relative track controls.
fn base_url(uri: &str) -> String {
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    let mut base = String::from(uri.trim_end_matches('/'));
    base.push('/');
    base
}

/// The track a SETUP URL path names: the one whose control resolves to it (preferring one not
/// set up yet), else the number at the end of `trackID=N`-style controls other servers give.
fn select_track<'a>(
    path: &str,
    tracks: impl Iterator<Item = (&'a str, bool)> + Clone,
) -> Option<usize> {
    let mut matching = tracks
        .clone()
        .enumerate()
        .filter(|(_, (control, _))| *control == path);
    let first = matching.clone().next().map(|(i, _)| i);
    if let Some((index, _)) = matching.find(|(_, (_, set_up))| !set_up) {
        return Some(index);
    }
    if first.is_some() {
        return first;
    }
    let last = path.rsplit('/').next().unwrap_or(path);
    let (_, number) = last.split_once('=')?;
    let index: usize = number.parse().ok()?;
    (index < tracks.count()).then_some(index)
}

/// A publisher's track from its media section.
fn in_track(media: &MediaDescription, base: &str) -> InTrack {
    let (codec, config) = match &media.codec {
        SdpCodec::H264 { .. } => (Some(InCodec::H264), media.track_config()),
        SdpCodec::H265 { vps, sps, pps } => {
            let config = match (vps.first(), sps.first(), pps.first()) {
                (Some(vps), Some(sps), Some(pps)) => {
                    HevcConfig::from_parameter_sets(vps.clone(), sps.clone(), pps.clone())
                        .ok()
                        .map(TrackConfig::Hevc)
                }
                _ => None,
            };
            (Some(InCodec::H265), config)
        }
        SdpCodec::Aac { .. } if media.clock_rate > 0 => (Some(InCodec::Aac), media.track_config()),
        _ => (None, None),
    };
    let clock_rate = match (codec, media.clock_rate) {
        (Some(InCodec::H264 | InCodec::H265), _) | (_, 0) => VIDEO_CLOCK_RATE,
        (_, rate) => rate,
    };
    InTrack {
        codec,
        clock_rate,
        config,
        control_path: String::from(url_path(&media.control_url(base))),
        delivery: None,
        depacketizer: None,
        sender_report: None,
        generation: 0,
        dts: matches!(codec, Some(InCodec::H264 | InCodec::H265)).then(DtsGenerator::new),
        stats: ReceiverStats::new(clock_rate),
        ssrc: 0,
        early_rtp: Vec::new(),
        report_awaited: true,
    }
}

/// A new configuration when the parameter sets seen in-band differ from the track's.
fn in_band_config(track: &mut InTrack) -> Option<TrackConfig> {
    let sets = match &track.depacketizer {
        Some(Depacketizer::H264(inner)) => inner.parameter_sets(),
        Some(Depacketizer::H265(inner)) => inner.parameter_sets(),
        _ => return None,
    };
    if sets.generation == track.generation {
        return None;
    }
    track.generation = sets.generation;
    let config = match (track.codec, &sets.vps, &sets.sps, &sets.pps) {
        (Some(InCodec::H264), _, Some(sps), Some(pps)) => {
            AvcConfig::from_parameter_sets(sps.clone(), pps.clone())
                .ok()
                .map(TrackConfig::Avc)
        }
        (Some(InCodec::H265), Some(vps), Some(sps), Some(pps)) => {
            HevcConfig::from_parameter_sets(vps.clone(), sps.clone(), pps.clone())
                .ok()
                .map(TrackConfig::Hevc)
        }
        _ => None,
    }?;
    if track.config.as_ref() == Some(&config) {
        return None;
    }
    track.config = Some(config.clone());
    Some(config)
}

impl LiveSession for RtspServerSession {
    type Error = RtspServerError;

    fn handle_input(&mut self, now: Millis, input: &mut BytesMut) -> Result<(), RtspServerError> {
        self.failed.check()?;
        self.now = now;
        if self.state != State::Recording {
            // A request (or RTCP) is progress for every session but a recording one.
            self.last_activity = now;
        }
        if self.closed {
            input.clear();
            return Ok(());
        }
        let result = self.process(input);
        if result.is_err() {
            self.stop();
            self.close("malformed input");
        }
        self.failed.record(result)
    }

    fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn accept_publish(&mut self) {
        if self.state != State::AnnounceRequested {
            return;
        }
        let Some(request) = self.take_stream_request() else {
            return;
        };
        self.state = State::Announced;
        self.respond(&reply(&request, 200, "OK"));
        for track in &self.in_tracks {
            if let Some(config) = &track.config {
                self.events
                    .push_back(SessionEvent::Media(Media::Config(config.clone())));
            }
        }
        self.run_queued();
    }

    fn accept_play(&mut self) {
        if self.state == State::DescribeRequested {
            self.state = State::DescribeAccepted { since: self.now };
        }
    }

    fn reject(&mut self, why: Rejection) {
        if let Some(setup) = self.take_ports_setup() {
            // Nothing was recorded for the track; the client may try again over TCP.
            let (status, reason) = match why {
                Rejection::Unavailable => (503, "Service Unavailable"),
                _ => (461, "Unsupported Transport"),
            };
            self.respond(&reply(&setup.request, status, reason));
            self.run_queued();
            return;
        }
        if !matches!(
            self.state,
            State::DescribeRequested | State::AnnounceRequested
        ) {
            return;
        }
        let (status, reason) = self.reject_status(why);
        if let Some(request) = self.take_stream_request() {
            self.respond(&reply(&request, status, reason));
        }
        self.close(reason);
    }

    fn accept_datagram_ports(&mut self) {
        let Some(setup) = self.take_ports_setup() else {
            return;
        };
        let delivery = Delivery::Udp(setup.rtp, setup.rtcp);
        let request = &setup.request;
        self.finish_setup(
            request,
            setup.track,
            setup.publishing,
            delivery,
            setup.answer,
        );
        self.run_queued();
    }

    fn send_media(&mut self, media: &Media) {
        if let Media::Frame(frame) = media {
            if self.state.is_player() {
                self.latest_dts = Some(frame.dts);
            }
        }
        match self.state {
            State::DescribeAccepted { .. } => self.collect_for_describe(media),
            State::Described | State::Playing | State::Paused => match media {
                Media::Config(config) => self.update_config(config),
                Media::Frame(frame) if self.state == State::Described => self.hold(frame),
                Media::Frame(frame) if self.state == State::Playing => self.send_frame(frame),
                _ => {}
            },
            _ => {}
        }
    }

    fn end_of_stream(&mut self) {
        match self.state {
            State::DescribeAccepted { .. } => {
                if let Some(request) = self.take_stream_request() {
                    self.respond(&reply(&request, 404, "Not Found"));
                }
                self.close("stream ended");
            }
            State::Described | State::Playing | State::Paused => {
                self.send_byes();
                self.close("stream ended");
            }
            _ => {}
        }
    }

    fn transmit(&mut self) -> &mut OutQueue {
        &mut self.out
    }

    fn datagrams(&mut self) -> Option<&mut DatagramQueue> {
        Some(&mut self.datagrams)
    }

    fn handle_datagram(
        &mut self,
        now: Millis,
        channel: UdpChannel,
        from_port: u16,
        payload: Bytes,
    ) {
        if self.closed {
            return;
        }
        let known = self
            .in_tracks
            .iter()
            .filter_map(|t| t.delivery)
            .chain(
                self.out_tracks
                    .iter()
                    .filter_map(|t| t.setup.as_ref().map(|s| s.1)),
            )
            .any(|delivery| delivery.uses(from_port, true) == Some(channel == UdpChannel::Rtcp));
        if !known {
            return;
        }
        // A player's receiver reports keep its session alive, as requests do; a recording
        // publisher's RTP does so in `on_track_data`.
        self.now = now;
        if self.state != State::Recording {
            self.last_activity = now;
        }
        self.on_track_data(from_port, true, payload);
    }

    fn poll_timeout(&self) -> Option<Millis> {
        let idle = self.last_activity + self.config.session_timeout_ms;
        match self.state {
            _ if self.closed || self.ports_pending() => None,
            State::Init => Some(self.started + self.config.setup_timeout_ms),
            State::DescribeRequested | State::AnnounceRequested | State::Done => None,
            State::DescribeAccepted { since } => {
                Some(idle.min(since + self.config.describe_timeout_ms))
            }
            State::Playing | State::Recording => {
                Some(self.next_report.map_or(idle, |report| report.min(idle)))
            }
            _ => Some(idle),
        }
    }

    fn handle_timeout(&mut self, now: Millis) {
        self.now = now;
        if self.closed {
            return;
        }
        if self.state == State::Init && now >= self.started + self.config.setup_timeout_ms {
            return self.close("setup timeout");
        }
        if matches!(
            self.state,
            State::DescribeRequested | State::AnnounceRequested
        ) || self.ports_pending()
        {
            return;
        }
        if now >= self.last_activity + self.config.session_timeout_ms {
            self.stop();
            return self.close("session timeout");
        }
        if let State::DescribeAccepted { since } = self.state {
            if now >= since + self.config.describe_timeout_ms {
                self.answer_describe();
            }
        }
        if self.next_report.is_some_and(|at| now >= at) {
            match self.state {
                State::Playing => self.send_reports(),
                State::Recording => self.send_receiver_reports(),
                _ => {}
            }
        }
    }

    fn phase(&self) -> Phase {
        match self.state {
            State::Playing | State::Recording => Phase::Media,
            _ => Phase::Setup,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_and_stream_names() {
        assert_eq!(url_path("rtsp://127.0.0.1:8554/live/x"), "live/x");
        assert_eq!(url_path("rtsp://h/live/x/?token=1"), "live/x");
        assert_eq!(url_path("RTSP://h:1/live/x/trackID=1"), "live/x/trackID=1");
        assert_eq!(url_path("rtsp://h"), "");
        assert_eq!(url_path("*"), "*");
        assert_eq!(base_url("rtsp://h/live/x?a=b"), "rtsp://h/live/x/");
    }

    #[test]
    fn tracks_are_selected_by_control_or_trailing_number() {
        let tracks = [("live/x/trackID=0", false), ("live/x/trackID=1", false)];
        assert_eq!(
            select_track("live/x/trackID=1", tracks.iter().copied()),
            Some(1)
        );
        assert_eq!(
            select_track("live/x/streamid=0", tracks.iter().copied()),
            Some(0)
        );
        assert_eq!(
            select_track("live/x/streamid=2", tracks.iter().copied()),
            None
        );
        assert_eq!(select_track("live/x", tracks.iter().copied()), None);
        // Controls that all resolve to the aggregate URL are taken in order.
        let same = [("live/x", true), ("live/x", false)];
        assert_eq!(select_track("live/x", same.iter().copied()), Some(1));
    }
}
