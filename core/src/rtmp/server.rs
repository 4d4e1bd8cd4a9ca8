//! The server side of an RTMP connection: handshake, chunk stream, and the NetConnection /
//! NetStream command flow for publishing and playing, as OBS, ffmpeg and Flash-era players
//! expect it.
//!
//! The session asks the server before it accepts anything: a `publish` becomes
//! [`SessionEvent::PublishRequested`], a `play` becomes [`SessionEvent::PlayRequested`], and
//! the answer comes back through [`LiveSession::accept_publish`], [`LiveSession::accept_play`]
//! or [`LiveSession::reject`], which send the `onStatus` replies clients wait for. A name that
//! is not a valid [`StreamKey`] is refused by the session itself
//! ([`SessionEvent::BadStreamName`]).
//!
//! Deadlines count only progress that matters: a connection that is neither publishing nor
//! playing is closed [`RtmpServerConfig::setup_timeout_ms`] after it became so (at connect,
//! or when its publish or play ended), and a publisher
//! [`RtmpServerConfig::publish_idle_timeout_ms`] after its last media message; pings,
//! acknowledgements and commands keep nothing alive. Players and requests waiting for the
//! server have no deadline here: the server bounds its waits and stalled sends.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use bytes::{Bytes, BytesMut};

use super::chunk::ChunkError;
use super::command::{
    encode_command, encode_command_data, on_status, read_media, status_object, ChunkLink, Command,
    CommandError, CSID_COMMAND, CSID_STREAM,
};
use super::handshake::{HandshakeError, ServerHandshake};
use super::message::{types, BandwidthLimit, ControlMessage, MessageError, UserControlEvent};
use super::Message;
use crate::amf0::Amf0Value;
use crate::flv::FlvError;
use crate::key::{strip_query, StreamKey};
use crate::latch::Latch;
use crate::media::Media;
use crate::outq::OutQueue;
use crate::session::{LiveSession, Phase, Rejection, RequestKind, SessionEvent};
use crate::time::Millis;

/// The acknowledgement window and peer bandwidth we announce.
const WINDOW: u32 = 2_500_000;

/// Limits and settings of one server session.
#[derive(Debug, Clone)]
pub struct RtmpServerConfig {
    /// The chunk size we send with (announced right after `connect`).
    pub chunk_size: u32,
    /// The largest message length a peer may declare.
    pub max_message_len: u32,
    /// A connection that is neither publishing nor playing (nor waiting for the server to
    /// answer a publish or play) is closed this long after it became so, in milliseconds.
    pub setup_timeout_ms: u64,
    /// A publisher that sends no media message for this long is closed, in milliseconds.
    pub publish_idle_timeout_ms: u64,
}

impl Default for RtmpServerConfig {
    fn default() -> Self {
        Self {
            chunk_size: 60_000,
            max_message_len: 8 << 20,
            setup_timeout_ms: 15_000,
            publish_idle_timeout_ms: 20_000,
        }
    }
}

/// Why an RTMP session failed; the connection is closed with this as the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// The handshake was malformed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream was malformed or exceeded a limit.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A protocol control message was malformed.
    #[error("control message: {0}")]
    Control(#[from] MessageError),
    /// A command message was malformed.
    #[error("command: {0}")]
    Command(#[from] CommandError),
    /// An audio, video or data message could not be read.
    #[error("media: {0}")]
    Media(#[from] FlvError),
    /// The peer broke the command flow.
    #[error("protocol: {0}")]
    Protocol(&'static str),
}

#[derive(Debug)]
enum Stage {
    Handshake(ServerHandshake),
    Chunks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    PublishPending { stream_id: u32 },
    Publishing { stream_id: u32 },
    PlayPending { stream_id: u32 },
    Playing { stream_id: u32 },
}

/// One server-side RTMP connection.
#[derive(Debug)]
pub struct RtmpServerSession {
    config: RtmpServerConfig,
    stage: Stage,
    link: ChunkLink,
    events: VecDeque<SessionEvent>,
    app: Option<String>,
    /// The stream of the current (or last) publish or play.
    key: Option<StreamKey>,
    next_stream_id: u32,
    mode: Mode,
    /// The latest time passed in.
    now: Millis,
    /// When the connection last became idle (neither publishing nor playing).
    idle_since: Millis,
    /// When the publisher last sent a media message.
    last_media: Millis,
    failed: Latch<RtmpError>,
    closed: bool,
    /// Media that arrived after `publish` but before the server answered it (encoders may
    /// send it without waiting for `NetStream.Publish.Start`); released on accept.
    held: VecDeque<Media>,
    held_bytes: usize,
}

/// The most media held for a publish the server has not answered yet.
const MAX_HELD_BYTES: usize = 8 << 20;

impl RtmpServerSession {
    /// A session for a connection accepted at `now`. `random` seeds the handshake's random
    /// bytes (the core has no RNG; any per-connection unpredictable value will do).
    pub fn new(config: RtmpServerConfig, now: Millis, random: u64) -> Self {
        Self {
            link: ChunkLink::new(config.max_message_len),
            config,
            stage: Stage::Handshake(ServerHandshake::from_seed(random, now.0 as u32)),
            events: VecDeque::new(),
            app: None,
            key: None,
            next_stream_id: 1,
            mode: Mode::Idle,
            now,
            idle_since: now,
            last_media: now,
            failed: Latch::new(),
            closed: false,
            held: VecDeque::new(),
            held_bytes: 0,
        }
    }

    fn process(&mut self, input: &mut BytesMut) -> Result<(), RtmpError> {
        if let Stage::Handshake(handshake) = &mut self.stage {
            handshake.handle_input(input)?;
            while let Some(reply) = handshake.take_output() {
                self.link.out.push(reply);
            }
            if !handshake.is_done() {
                return Ok(());
            }
            self.stage = Stage::Chunks;
        }
        loop {
            match self.link.next_message(input)? {
                Some(message) => self.on_message(message)?,
                None => return Ok(()),
            }
            if self.closed {
                return Ok(());
            }
        }
    }

    fn on_message(&mut self, message: Message) -> Result<(), RtmpError> {
        let header = message.header;
        match header.type_id {
            type_id if ControlMessage::is_control(type_id) => {
                // The server has nothing to add to what the link answers itself.
                let control = ControlMessage::parse(type_id, &message.payload)?;
                self.link.handle_control(self.now, control)?;
                Ok(())
            }
            types::COMMAND_AMF0 | types::COMMAND_AMF3 => {
                let command =
                    Command::decode(&message.payload, header.type_id == types::COMMAND_AMF3)?;
                self.on_command(command, header.stream_id)
            }
            types::AUDIO
            | types::VIDEO
            | types::DATA_AMF0
            | types::DATA_AMF3
            | types::AGGREGATE => {
                match self.mode {
                    Mode::Publishing { .. } => {
                        self.last_media = self.now;
                        let events = &mut self.events;
                        read_media(&message, |media| {
                            events.push_back(SessionEvent::Media(media));
                        })?;
                    }
                    Mode::PublishPending { .. } => {
                        let (held, held_bytes) = (&mut self.held, &mut self.held_bytes);
                        read_media(&message, |media| {
                            *held_bytes += media.byte_size();
                            held.push_back(media);
                        })?;
                        if self.held_bytes > MAX_HELD_BYTES {
                            return Err(RtmpError::Protocol(
                                "too much media before the publish was answered",
                            ));
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_command(&mut self, command: Command, stream_id: u32) -> Result<(), RtmpError> {
        match command.name.as_str() {
            "connect" => self.on_connect(&command),
            "createStream" => {
                let id = self.next_stream_id;
                self.next_stream_id = self.next_stream_id.saturating_add(1);
                self.reply(
                    command.transaction,
                    &[Amf0Value::Null, Amf0Value::Number(f64::from(id))],
                )
            }
            "publish" | "play" => {
                let Some(app) = self.app.clone() else {
                    return Err(RtmpError::Protocol("publish or play before connect"));
                };
                if !matches!(self.mode, Mode::Idle) {
                    return Err(RtmpError::Protocol(
                        "publish or play while already publishing or playing",
                    ));
                }
                let name = command
                    .first_string_arg()
                    .map(strip_query)
                    .unwrap_or_default();
                let (request, mode) = if command.name == "publish" {
                    (RequestKind::Publish, Mode::PublishPending { stream_id })
                } else {
                    (RequestKind::Play, Mode::PlayPending { stream_id })
                };
                self.mode = mode;
                match StreamKey::parse(&app, name) {
                    Ok(key) => {
                        self.key = Some(key.clone());
                        self.events.push_back(match request {
                            RequestKind::Publish => SessionEvent::PublishRequested { key },
                            _ => SessionEvent::PlayRequested { key },
                        });
                    }
                    Err(error) => {
                        self.events
                            .push_back(SessionEvent::BadStreamName { request, error });
                        self.reject(Rejection::BadName);
                    }
                }
                Ok(())
            }
            "FCUnpublish" | "deleteStream" | "closeStream" => {
                match self.mode {
                    Mode::Publishing { stream_id } | Mode::PublishPending { stream_id } => {
                        if command.name == "FCUnpublish" {
                            self.status(
                                stream_id,
                                "status",
                                "NetStream.Unpublish.Success",
                                "stream unpublished",
                            )?;
                        }
                        self.become_idle();
                        self.events.push_back(SessionEvent::PublishStopped);
                    }
                    Mode::Playing { .. } | Mode::PlayPending { .. } => {
                        self.become_idle();
                        self.events.push_back(SessionEvent::PlayStopped);
                    }
                    Mode::Idle => {}
                }
                Ok(())
            }
            "releaseStream" | "FCPublish" | "getStreamLength" | "FCSubscribe" | "_checkbw"
            | "checkBandwidth" => self.reply(
                command.transaction,
                &[Amf0Value::Null, Amf0Value::Undefined],
            ),
            // Replies to our own calls and calls we have nothing to say to.
            _ => Ok(()),
        }
    }

    fn on_connect(&mut self, command: &Command) -> Result<(), RtmpError> {
        if self.app.is_some() {
            return Err(RtmpError::Protocol("second connect"));
        }
        let app = command
            .object
            .get("app")
            .and_then(Amf0Value::as_str)
            .unwrap_or_default();
        let app = strip_query(app).trim_matches('/');
        self.app = Some(app.to_string());
        let encoding = command
            .object
            .get("objectEncoding")
            .and_then(Amf0Value::as_number)
            .unwrap_or(0.0);
        self.link
            .write_control(&ControlMessage::WindowAckSize(WINDOW))?;
        let bandwidth = ControlMessage::SetPeerBandwidth {
            window: WINDOW,
            limit: BandwidthLimit::Dynamic,
        };
        self.link.write_control(&bandwidth)?;
        self.link
            .write_control(&ControlMessage::SetChunkSize(self.config.chunk_size))?;
        let properties = Amf0Value::object([
            ("fmsVer", Amf0Value::string("FMS/3,0,1,123")),
            ("capabilities", Amf0Value::Number(31.0)),
        ]);
        let mut info = status_object(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        );
        if let Amf0Value::Object(fields) = &mut info {
            fields.push(("objectEncoding".into(), Amf0Value::Number(encoding)));
        }
        self.reply(command.transaction, &[properties, info])
    }

    fn reply(&mut self, transaction: f64, values: &[Amf0Value]) -> Result<(), RtmpError> {
        if transaction == 0.0 {
            return Ok(());
        }
        let body = encode_command("_result", transaction, values);
        self.send_message(CSID_COMMAND, types::COMMAND_AMF0, 0, body)
    }

    fn status(
        &mut self,
        stream_id: u32,
        level: &str,
        code: &str,
        description: &str,
    ) -> Result<(), RtmpError> {
        let body = on_status(level, code, description);
        self.send_message(CSID_STREAM, types::COMMAND_AMF0, stream_id, body)
    }

    fn send_message(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        body: Bytes,
    ) -> Result<(), RtmpError> {
        self.link.write(csid, type_id, stream_id, body)?;
        Ok(())
    }

    fn user_control(&mut self, event: UserControlEvent) -> Result<(), RtmpError> {
        self.link
            .write_control(&ControlMessage::UserControl(event))?;
        Ok(())
    }

    /// Leaves publishing or playing; the setup deadline starts again from here.
    fn become_idle(&mut self) {
        self.mode = Mode::Idle;
        self.idle_since = self.now;
        self.held.clear();
        self.held_bytes = 0;
    }

    /// The stream name for status descriptions.
    fn stream_name(&self) -> &str {
        self.key.as_ref().map_or("", StreamKey::stream)
    }

    fn close(&mut self, reason: &'static str) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(SessionEvent::Closed { reason });
        }
    }

    /// Runs a reply step; an encoding failure (which only our own oversize output could
    /// cause) ends the session rather than panicking.
    fn or_fail(&mut self, result: Result<(), RtmpError>) {
        if let Err(error) = result {
            self.failed.set(error);
            self.close("internal encoding error");
        }
    }

    fn accept_play_replies(&mut self, stream_id: u32) -> Result<(), RtmpError> {
        let description = alloc::format!("playing {}", self.stream_name());
        self.user_control(UserControlEvent::StreamBegin { stream_id })?;
        self.status(stream_id, "status", "NetStream.Play.Reset", &description)?;
        self.status(stream_id, "status", "NetStream.Play.Start", &description)?;
        let access = encode_command_data(
            "|RtmpSampleAccess",
            &[Amf0Value::Boolean(true), Amf0Value::Boolean(true)],
        );
        self.send_message(CSID_STREAM, types::DATA_AMF0, stream_id, access)?;
        let data_start = encode_command_data(
            "onStatus",
            &[Amf0Value::object([(
                "code",
                Amf0Value::string("NetStream.Data.Start"),
            )])],
        );
        self.send_message(CSID_STREAM, types::DATA_AMF0, stream_id, data_start)
    }

    fn end_of_stream_replies(&mut self, stream_id: u32) -> Result<(), RtmpError> {
        let description = alloc::format!("{} ended", self.stream_name());
        self.status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            &description,
        )?;
        self.user_control(UserControlEvent::StreamEof { stream_id })?;
        self.status(stream_id, "status", "NetStream.Play.Stop", &description)
    }

    fn write_media(&mut self, stream_id: u32, media: &Media) -> Result<(), RtmpError> {
        self.link.write_media(stream_id, media, false)?;
        Ok(())
    }
}

impl LiveSession for RtmpServerSession {
    type Error = RtmpError;

    fn handle_input(&mut self, now: Millis, input: &mut BytesMut) -> Result<(), RtmpError> {
        self.failed.check()?;
        self.now = self.now.max(now);
        if self.closed {
            input.clear();
            return Ok(());
        }
        let result = self.process(input);
        self.failed.record(result)
    }

    fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn accept_publish(&mut self) {
        if let Mode::PublishPending { stream_id } = self.mode {
            self.mode = Mode::Publishing { stream_id };
            // Media held while the server decided counts as sent now.
            self.last_media = self.now;
            let description = alloc::format!("{} is now published", self.stream_name());
            let result = self
                .user_control(UserControlEvent::StreamBegin { stream_id })
                .and_then(|()| {
                    self.status(stream_id, "status", "NetStream.Publish.Start", &description)
                });
            self.or_fail(result);
            self.held_bytes = 0;
            let held = self.held.drain(..).map(SessionEvent::Media);
            self.events.extend(held);
        }
    }

    fn accept_play(&mut self) {
        if let Mode::PlayPending { stream_id } = self.mode {
            self.mode = Mode::Playing { stream_id };
            let result = self.accept_play_replies(stream_id);
            self.or_fail(result);
        }
    }

    fn reject(&mut self, why: Rejection) {
        let (stream_id, code, description) = match (self.mode, why) {
            (Mode::PublishPending { stream_id }, Rejection::AlreadyPublishing) => (
                stream_id,
                "NetStream.Publish.BadName",
                "stream is already being published",
            ),
            (Mode::PublishPending { stream_id }, Rejection::BadName) => (
                stream_id,
                "NetStream.Publish.BadName",
                "invalid stream name",
            ),
            (Mode::PublishPending { stream_id }, _) => {
                (stream_id, "NetStream.Publish.Rejected", "publish rejected")
            }
            // Ports in use cannot concern a play over RTMP; it is the server's refusal all
            // the same.
            (Mode::PlayPending { stream_id }, Rejection::Unavailable | Rejection::PortsInUse) => {
                (stream_id, "NetStream.Play.Failed", "play rejected")
            }
            (Mode::PlayPending { stream_id }, _) => {
                (stream_id, "NetStream.Play.StreamNotFound", "no such stream")
            }
            _ => return,
        };
        self.become_idle();
        let result = self.status(stream_id, "error", code, description);
        self.or_fail(result);
        self.close(code);
    }

    fn send_media(&mut self, media: &Media) {
        if let Mode::Playing { stream_id } = self.mode {
            let result = self.write_media(stream_id, media);
            self.or_fail(result);
        }
    }

    fn end_of_stream(&mut self) {
        if let Mode::Playing { stream_id } = self.mode {
            self.become_idle();
            let result = self.end_of_stream_replies(stream_id);
            self.or_fail(result);
            self.close("stream ended");
        }
    }

    fn transmit(&mut self) -> &mut OutQueue {
        &mut self.link.out
    }

    fn poll_timeout(&self) -> Option<Millis> {
        match self.mode {
            _ if self.closed => None,
            Mode::Publishing { .. } => Some(self.last_media + self.config.publish_idle_timeout_ms),
            Mode::Playing { .. } | Mode::PlayPending { .. } | Mode::PublishPending { .. } => None,
            Mode::Idle => Some(self.idle_since + self.config.setup_timeout_ms),
        }
    }

    fn handle_timeout(&mut self, now: Millis) {
        self.now = self.now.max(now);
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                let reason = if matches!(self.mode, Mode::Publishing { .. }) {
                    "publisher idle timeout"
                } else {
                    "setup timeout"
                };
                self.close(reason);
            }
        }
    }

    fn phase(&self) -> Phase {
        match self.mode {
            Mode::Publishing { .. } | Mode::Playing { .. } => Phase::Media,
            _ => Phase::Setup,
        }
    }
}
