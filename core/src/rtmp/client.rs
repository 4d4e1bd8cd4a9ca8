//! The client side of an RTMP connection, for publishing to or playing from another server
//! (tests, pull and relay).
//!
//! The session runs the flow ffmpeg and OBS use: C0/C1 → `connect` → on
//! `NetConnection.Connect.Success`, for publishing `releaseStream`, `FCPublish`,
//! `createStream` and `publish(name, "live")`; for playing `createStream`, `play(name, -2000)`
//! and a Set Buffer Length. It answers the server's control messages on its own (Window
//! Acknowledgement Size, Set Peer Bandwidth, Set Chunk Size, Ping Request) and reports what
//! matters to the application as [`ClientEvent`]s.
//!
//! Like the server session it does no I/O: feed received bytes to
//! [`RtmpClientSession::handle_input`], then drain [`RtmpClientSession::poll_event`] and write
//! out [`RtmpClientSession::transmit`].

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::chunk::{Message, DEFAULT_CHUNK_SIZE};
use super::command::{encode_command, read_media, ChunkLink, Command, CSID_COMMAND, CSID_STREAM};
use super::handshake::ClientHandshake;
use super::message::{types, ControlMessage, UserControlEvent};
use super::server::RtmpError;
use crate::amf0::Amf0Value;
use crate::latch::Latch;
use crate::media::Media;
use crate::outq::OutQueue;
use crate::time::Millis;

/// Why a client session failed. The failure modes are those of the server session (a
/// malformed handshake, chunk stream, control or command message, or media), so the type is
/// shared.
pub type RtmpClientError = RtmpError;

/// `flashVer` a publisher announces; servers recognise the FMLE form as an encoder.
const FLASH_VER_PUBLISH: &str = "FMLE/3.0 (compatible; mediakit)";
/// `flashVer` a player announces, the one ffmpeg and librtmp send on Linux.
const FLASH_VER_PLAY: &str = "LNX 9,0,124,2";
/// Start argument of `play`: -2 seconds means "live if there is one, else recorded", as
/// ffmpeg sends it by default.
const PLAY_START_MS: f64 = -2000.0;

/// Whether the client sends a stream or receives one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    /// Publish a stream to the server.
    Publish,
    /// Play a stream from the server.
    Play,
}

/// Where to connect and how; build with [`RtmpClientConfig::new`] or
/// [`RtmpClientConfig::from_url`] and adjust the limits as needed.
#[derive(Debug, Clone)]
pub struct RtmpClientConfig {
    /// Application name (`live` in `rtmp://host/live/stream`).
    pub app: String,
    /// Stream name, with any query string (tokens) the server expects.
    pub stream: String,
    /// The `tcUrl` of `connect`: `rtmp://host[:port]/app`.
    pub tc_url: String,
    /// Publish or play.
    pub mode: ClientMode,
    /// The chunk size we send with, announced right after the handshake.
    pub chunk_size: u32,
    /// The largest message length the server may declare.
    pub max_message_len: u32,
    /// The session closes if publishing or playing has not started by then, in milliseconds.
    pub setup_timeout_ms: u64,
    /// A player that receives nothing for this long is closed, in milliseconds (0: never).
    pub idle_timeout_ms: u64,
    /// The buffer length a player announces with Set Buffer Length, in milliseconds.
    pub buffer_ms: u32,
}

impl RtmpClientConfig {
    /// A configuration with default limits.
    pub fn new(
        mode: ClientMode,
        app: impl Into<String>,
        stream: impl Into<String>,
        tc_url: impl Into<String>,
    ) -> Self {
        Self {
            app: app.into(),
            stream: stream.into(),
            tc_url: tc_url.into(),
            mode,
            chunk_size: 60_000,
            max_message_len: 8 << 20,
            setup_timeout_ms: 15_000,
            idle_timeout_ms: 20_000,
            buffer_ms: 1_000,
        }
    }

    /// A configuration for `rtmp://host[:port]/app/stream[?query]`: the first path segment is
    /// the application, the rest the stream name (which may contain further slashes).
    /// Returns `None` when the URL is not `rtmp://` or lacks an application or stream.
    pub fn from_url(url: &str, mode: ClientMode) -> Option<Self> {
        let rest = url.strip_prefix("rtmp://")?;
        let (host, path) = rest.split_once('/')?;
        let (app, stream) = path.split_once('/')?;
        if host.is_empty() || app.is_empty() || stream.is_empty() {
            return None;
        }
        let tc_url = alloc::format!("rtmp://{host}/{app}");
        Some(Self::new(mode, app, stream, tc_url))
    }
}

/// What happened on a client session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted the publish (`NetStream.Publish.Start`): media may be sent now.
    Publishing,
    /// The server started the play (`NetStream.Play.Start`): media follows.
    Playing,
    /// A media item received while playing.
    Media(Media),
    /// The played stream ended (`NetStream.Play.Stop`, `UnpublishNotify` or Stream EOF).
    StreamEnded,
    /// The server refused the connection, the publish or the play; [`ClientEvent::Closed`]
    /// follows.
    Rejected {
        /// The status code (`NetStream.Publish.BadName`, `NetStream.Play.StreamNotFound`,
        /// `NetConnection.Connect.Rejected`, ...).
        code: String,
        /// The server's description.
        description: String,
    },
    /// The session has finished; close the connection once `transmit` is flushed.
    Closed {
        /// Why, for the log line.
        reason: &'static str,
    },
}

/// The calls we made and wait for a `_result` or `_error` to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Connect,
    CreateStream,
    /// Calls whose failure servers report for harmless reasons (nothing to release).
    Advisory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    CreatingStream,
    Starting {
        stream_id: u32,
    },
    Publishing {
        stream_id: u32,
    },
    Playing {
        stream_id: u32,
    },
    /// The played stream ended; the connection stays until the application stops it.
    Ended {
        stream_id: u32,
    },
    Closed,
}

/// One client-side RTMP connection.
#[derive(Debug)]
pub struct RtmpClientSession {
    config: RtmpClientConfig,
    handshake: ClientHandshake,
    state: State,
    link: ChunkLink,
    events: VecDeque<ClientEvent>,
    /// The window we last announced, so a repeated Set Peer Bandwidth is not answered again.
    announced_window: u32,
    pending: Vec<(f64, Call)>,
    next_transaction: f64,
    started: Millis,
    last_input: Millis,
    failed: Latch<RtmpClientError>,
}

impl RtmpClientSession {
    /// A session for a connection opened at `now`; C0+C1 are queued in
    /// [`RtmpClientSession::transmit`] at once. `seed` seeds the handshake's random bytes.
    pub fn new(config: RtmpClientConfig, now: Millis, seed: u64) -> Self {
        let mut handshake = ClientHandshake::from_seed(seed, now.0 as u32);
        let mut link = ChunkLink::new(config.max_message_len);
        if let Some(c0c1) = handshake.take_output() {
            link.out.push(c0c1);
        }
        Self {
            link,
            config,
            handshake,
            state: State::Handshake,
            events: VecDeque::new(),
            announced_window: 0,
            pending: Vec::new(),
            next_transaction: 1.0,
            started: now,
            last_input: now,
            failed: Latch::new(),
        }
    }

    /// The message stream id the server gave us, once `createStream` has been answered.
    pub fn stream_id(&self) -> Option<u32> {
        match self.state {
            State::Starting { stream_id }
            | State::Publishing { stream_id }
            | State::Playing { stream_id }
            | State::Ended { stream_id } => Some(stream_id),
            _ => None,
        }
    }

    /// True once the server accepted the publish and until the session stops.
    pub fn is_publishing(&self) -> bool {
        matches!(self.state, State::Publishing { .. })
    }

    /// True once the session has finished (stopped, rejected, timed out).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Consumes bytes received from the server (all of them, or leaves an incomplete tail).
    ///
    /// Errors are fatal and latch: later calls return the same error. Replies already queued
    /// (acknowledgements, pongs) stay in `transmit`.
    pub fn handle_input(
        &mut self,
        now: Millis,
        input: &mut BytesMut,
    ) -> Result<(), RtmpClientError> {
        self.failed.check()?;
        if !input.is_empty() {
            self.last_input = now;
        }
        if self.state == State::Closed {
            input.clear();
            return Ok(());
        }
        let result = self.process(now, input);
        self.failed.record(result)
    }

    /// The next event to act on.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The bytes waiting to be sent.
    pub fn transmit(&mut self) -> &mut OutQueue {
        &mut self.link.out
    }

    /// Queues one media item while publishing; returns false (and queues nothing) otherwise.
    /// Metadata goes out as `@setDataFrame` + `onMetaData` so the server keeps it for players.
    pub fn send_media(&mut self, media: &Media) -> bool {
        let State::Publishing { stream_id } = self.state else {
            return false;
        };
        if let Err(error) = self.link.write_media(stream_id, media, true) {
            // Only a message over the chunk layer's 16 MiB limit fails; the stream cannot go
            // on without it.
            self.failed.set(error.into());
            self.close("media message too large");
            return false;
        }
        true
    }

    /// Ends the publish (`FCUnpublish`, `deleteStream`) or the play (`deleteStream`) and
    /// finishes the session: [`ClientEvent::Closed`] follows; close the connection once
    /// `transmit` is flushed.
    pub fn stop(&mut self) {
        let stream_id = self.stream_id();
        if let Some(stream_id) = stream_id {
            let name = self.config.stream.clone();
            let mut result = Ok(());
            if self.config.mode == ClientMode::Publish {
                result = self.call(
                    "FCUnpublish",
                    Call::Advisory,
                    &[Amf0Value::Null, Amf0Value::String(name)],
                );
            }
            let result = result.and_then(|()| {
                self.call(
                    "deleteStream",
                    Call::Advisory,
                    &[Amf0Value::Null, Amf0Value::Number(f64::from(stream_id))],
                )
            });
            self.or_fail(result);
        }
        self.close("stopped");
    }

    /// The next deadline, if any: the setup timeout until publishing or playing starts, then
    /// the idle timeout while playing.
    pub fn poll_timeout(&self) -> Option<Millis> {
        match self.state {
            State::Closed | State::Publishing { .. } | State::Ended { .. } => None,
            State::Playing { .. } if self.config.idle_timeout_ms == 0 => None,
            State::Playing { .. } => Some(self.last_input + self.config.idle_timeout_ms),
            _ => Some(self.started + self.config.setup_timeout_ms),
        }
    }

    /// Called at or after the deadline from `poll_timeout`.
    pub fn handle_timeout(&mut self, now: Millis) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                let reason = if matches!(self.state, State::Playing { .. }) {
                    "idle timeout"
                } else {
                    "setup timeout"
                };
                self.close(reason);
            }
        }
    }

    fn process(&mut self, now: Millis, input: &mut BytesMut) -> Result<(), RtmpClientError> {
        if self.state == State::Handshake {
            self.handshake.handle_input(input)?;
            if let Some(c2) = self.handshake.take_output() {
                self.link.out.push(c2);
            }
            if !self.handshake.is_done() {
                return Ok(());
            }
            self.connect()?;
        }
        loop {
            match self.link.next_message(input)? {
                Some(message) => self.on_message(now, message)?,
                None => return Ok(()),
            }
            if self.state == State::Closed {
                input.clear();
                return Ok(());
            }
        }
    }

    fn connect(&mut self) -> Result<(), RtmpClientError> {
        self.state = State::Connecting;
        if self.config.chunk_size != DEFAULT_CHUNK_SIZE {
            let size = ControlMessage::SetChunkSize(self.config.chunk_size);
            self.link.write_control(&size)?;
        }
        let flash_ver = match self.config.mode {
            ClientMode::Publish => FLASH_VER_PUBLISH,
            ClientMode::Play => FLASH_VER_PLAY,
        };
        let mut properties: Vec<(String, Amf0Value)> = [
            ("app", Amf0Value::string(self.config.app.as_str())),
            ("type", Amf0Value::string("nonprivate")),
            ("flashVer", Amf0Value::string(flash_ver)),
            ("tcUrl", Amf0Value::string(self.config.tc_url.as_str())),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
        if self.config.mode == ClientMode::Play {
            properties.extend(
                [
                    ("fpad", Amf0Value::Boolean(false)),
                    ("capabilities", Amf0Value::Number(15.0)),
                    ("audioCodecs", Amf0Value::Number(4071.0)),
                    ("videoCodecs", Amf0Value::Number(252.0)),
                    ("videoFunction", Amf0Value::Number(1.0)),
                    // Enhanced RTMP: we can play HEVC in the `hvc1` form.
                    (
                        "fourCcList",
                        Amf0Value::StrictArray(alloc::vec![
                            Amf0Value::string("avc1"),
                            Amf0Value::string("hvc1"),
                        ]),
                    ),
                ]
                .into_iter()
                .map(|(key, value)| (key.to_string(), value)),
            );
        }
        self.call("connect", Call::Connect, &[Amf0Value::Object(properties)])
    }

    fn on_message(&mut self, now: Millis, message: Message) -> Result<(), RtmpClientError> {
        let header = message.header;
        match header.type_id {
            type_id if ControlMessage::is_control(type_id) => {
                self.on_control(now, ControlMessage::parse(type_id, &message.payload)?)
            }
            types::COMMAND_AMF0 | types::COMMAND_AMF3 => {
                let command =
                    Command::decode(&message.payload, header.type_id == types::COMMAND_AMF3)?;
                self.on_command(&command)
            }
            types::AUDIO
            | types::VIDEO
            | types::DATA_AMF0
            | types::DATA_AMF3
            | types::AGGREGATE => {
                if self.state
                    == (State::Playing {
                        stream_id: header.stream_id,
                    })
                {
                    let events = &mut self.events;
                    read_media(&message, |media| {
                        events.push_back(ClientEvent::Media(media));
                    })?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_control(&mut self, now: Millis, control: ControlMessage) -> Result<(), RtmpClientError> {
        match self.link.handle_control(now, control)? {
            Some(ControlMessage::SetPeerBandwidth { window, .. }) => {
                self.announce_window(window)?
            }
            Some(ControlMessage::UserControl(UserControlEvent::StreamEof { stream_id })) => {
                self.stream_ended(stream_id);
            }
            _ => {}
        }
        Ok(())
    }

    fn on_command(&mut self, command: &Command) -> Result<(), RtmpClientError> {
        match command.name.as_str() {
            "_result" => match self.take_call(command.transaction) {
                Some(Call::Connect) if self.state == State::Connecting => self.on_connected(),
                Some(Call::CreateStream) if self.state == State::CreatingStream => {
                    let stream_id = command
                        .args
                        .iter()
                        .find_map(Amf0Value::as_number)
                        // A whole number in u32 range (checked by round trip: `f64::fract` needs std).
                        .filter(|id| {
                            (0.0..=f64::from(u32::MAX)).contains(id) && f64::from(*id as u32) == *id
                        })
                        .ok_or(RtmpError::Protocol(
                            "createStream result without a stream id",
                        ))?;
                    self.on_stream_created(stream_id as u32)
                }
                _ => Ok(()),
            },
            "_error" => {
                if let Some(Call::Connect | Call::CreateStream) =
                    self.take_call(command.transaction)
                {
                    self.reject(command, "NetConnection.Call.Failed");
                }
                Ok(())
            }
            "onStatus" => {
                self.on_status(command);
                Ok(())
            }
            // `onBWDone`, `onFCPublish`, `|RtmpSampleAccess`, ...: nothing to do.
            _ => Ok(()),
        }
    }

    fn on_connected(&mut self) -> Result<(), RtmpClientError> {
        self.state = State::CreatingStream;
        if self.config.mode == ClientMode::Publish {
            // Some servers only accept a republish after these; their answers do not matter.
            let name = Amf0Value::string(self.config.stream.as_str());
            self.call(
                "releaseStream",
                Call::Advisory,
                &[Amf0Value::Null, name.clone()],
            )?;
            self.call("FCPublish", Call::Advisory, &[Amf0Value::Null, name])?;
        }
        self.call("createStream", Call::CreateStream, &[Amf0Value::Null])
    }

    fn on_stream_created(&mut self, stream_id: u32) -> Result<(), RtmpClientError> {
        self.state = State::Starting { stream_id };
        let name = Amf0Value::string(self.config.stream.as_str());
        let (command, start) = match self.config.mode {
            ClientMode::Publish => ("publish", Amf0Value::string("live")),
            ClientMode::Play => ("play", Amf0Value::Number(PLAY_START_MS)),
        };
        let transaction = self.transaction();
        let body = encode_command(command, transaction, &[Amf0Value::Null, name, start]);
        self.send(CSID_STREAM, stream_id, body)?;
        if self.config.mode == ClientMode::Play {
            let buffer = UserControlEvent::SetBufferLength {
                stream_id,
                buffer_ms: self.config.buffer_ms,
            };
            self.link
                .write_control(&ControlMessage::UserControl(buffer))?;
        }
        Ok(())
    }

    fn on_status(&mut self, command: &Command) {
        let code = command.info_str("code").unwrap_or_default();
        if command.info_str("level") == Some("error") {
            self.reject(command, "NetStream.Failed");
            return;
        }
        match (self.state, code) {
            (State::Starting { stream_id }, "NetStream.Publish.Start")
                if self.config.mode == ClientMode::Publish =>
            {
                self.state = State::Publishing { stream_id };
                self.events.push_back(ClientEvent::Publishing);
            }
            (State::Starting { stream_id }, "NetStream.Play.Start")
                if self.config.mode == ClientMode::Play =>
            {
                self.state = State::Playing { stream_id };
                self.events.push_back(ClientEvent::Playing);
            }
            (
                State::Playing { stream_id },
                "NetStream.Play.Stop"
                | "NetStream.Play.UnpublishNotify"
                | "NetStream.Play.Complete",
            ) => self.stream_ended(stream_id),
            _ => {}
        }
    }

    fn stream_ended(&mut self, stream_id: u32) {
        if self.state == (State::Playing { stream_id }) {
            self.state = State::Ended { stream_id };
            self.events.push_back(ClientEvent::StreamEnded);
        }
    }

    fn reject(&mut self, command: &Command, default_code: &str) {
        let code = command.info_str("code").unwrap_or(default_code).to_string();
        let description = command
            .info_str("description")
            .unwrap_or_default()
            .to_string();
        self.events
            .push_back(ClientEvent::Rejected { code, description });
        self.close("rejected");
    }

    /// Sends a connection-level command (message stream 0) and remembers what its answer
    /// will be to.
    fn call(
        &mut self,
        name: &str,
        call: Call,
        values: &[Amf0Value],
    ) -> Result<(), RtmpClientError> {
        let transaction = self.transaction();
        self.pending.push((transaction, call));
        let body = encode_command(name, transaction, values);
        self.send(CSID_COMMAND, 0, body)
    }

    fn transaction(&mut self) -> f64 {
        let transaction = self.next_transaction;
        self.next_transaction += 1.0;
        transaction
    }

    fn take_call(&mut self, transaction: f64) -> Option<Call> {
        let index = self.pending.iter().position(|(t, _)| *t == transaction)?;
        Some(self.pending.swap_remove(index).1)
    }

    fn send(&mut self, csid: u32, stream_id: u32, body: Bytes) -> Result<(), RtmpClientError> {
        self.link
            .write(csid, types::COMMAND_AMF0, stream_id, body)?;
        Ok(())
    }

    fn announce_window(&mut self, window: u32) -> Result<(), RtmpClientError> {
        if window != self.announced_window {
            self.announced_window = window;
            self.link
                .write_control(&ControlMessage::WindowAckSize(window))?;
        }
        Ok(())
    }

    fn close(&mut self, reason: &'static str) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events.push_back(ClientEvent::Closed { reason });
        }
    }

    fn or_fail(&mut self, result: Result<(), RtmpClientError>) {
        if let Err(error) = result {
            self.failed.set(error);
            self.close("internal encoding error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outq::OutQueue;
    use crate::rtmp::chunk::{ChunkDecoder, ChunkEncoder, MessageHeader};
    use crate::rtmp::handshake::ServerHandshake;
    use crate::rtmp::message::{BandwidthLimit, MIN_ACK_WINDOW};
    use alloc::vec;

    /// A hand-driven server: its handshake, and a chunk encoder and decoder for messages we
    /// script one by one.
    struct FakeServer {
        handshake: ServerHandshake,
        encoder: ChunkEncoder,
        decoder: ChunkDecoder,
        out: OutQueue,
        rx: BytesMut,
    }

    impl FakeServer {
        fn new() -> Self {
            Self {
                handshake: ServerHandshake::from_seed(9, 0),
                encoder: ChunkEncoder::new(),
                decoder: ChunkDecoder::new(1 << 20),
                out: OutQueue::new(),
                rx: BytesMut::new(),
            }
        }

        /// Reads what the client sent; returns the messages after the handshake, applying
        /// the client's Set Chunk Size as it goes.
        fn receive(&mut self, client: &mut RtmpClientSession) -> Vec<Message> {
            let out = client.transmit();
            for segment in out.segments() {
                self.rx.extend_from_slice(segment);
            }
            out.advance(out.queued_bytes());
            if !self.handshake.is_done() {
                self.handshake.handle_input(&mut self.rx).unwrap();
                while let Some(reply) = self.handshake.take_output() {
                    self.out.push(reply);
                }
            }
            let mut messages = Vec::new();
            while let Some(message) = self.decoder.decode(&mut self.rx).unwrap() {
                if message.header.type_id == types::SET_CHUNK_SIZE {
                    let Ok(ControlMessage::SetChunkSize(size)) =
                        ControlMessage::parse(types::SET_CHUNK_SIZE, &message.payload)
                    else {
                        panic!("bad Set Chunk Size");
                    };
                    self.decoder.set_chunk_size(size).unwrap();
                }
                messages.push(message);
            }
            messages
        }

        fn control(&mut self, control: ControlMessage) {
            self.encoder.write_control(&control, &mut self.out).unwrap();
        }

        fn command(&mut self, stream_id: u32, name: &str, transaction: f64, values: &[Amf0Value]) {
            let header = MessageHeader {
                csid: CSID_COMMAND,
                timestamp: 0,
                type_id: types::COMMAND_AMF0,
                stream_id,
            };
            let body = encode_command(name, transaction, values);
            self.encoder.write(&header, &[body], &mut self.out).unwrap();
        }

        fn status(&mut self, stream_id: u32, level: &str, code: &str) {
            let body = crate::rtmp::command::on_status(level, code, "test");
            let header = MessageHeader {
                csid: CSID_STREAM,
                timestamp: 0,
                type_id: types::COMMAND_AMF0,
                stream_id,
            };
            self.encoder.write(&header, &[body], &mut self.out).unwrap();
        }

        /// Delivers everything queued to the client in one read.
        fn send(&mut self, client: &mut RtmpClientSession, now: u64) -> Result<(), RtmpError> {
            let mut input = BytesMut::new();
            for segment in self.out.segments() {
                input.extend_from_slice(segment);
            }
            self.out.advance(self.out.queued_bytes());
            client.handle_input(Millis(now), &mut input)
        }
    }

    fn commands(messages: &[Message]) -> Vec<Command> {
        messages
            .iter()
            .filter(|m| m.header.type_id == types::COMMAND_AMF0)
            .map(|m| Command::decode(&m.payload, false).unwrap())
            .collect()
    }

    fn controls(messages: &[Message]) -> Vec<ControlMessage> {
        messages
            .iter()
            .filter(|m| ControlMessage::is_control(m.header.type_id))
            .map(|m| ControlMessage::parse(m.header.type_id, &m.payload).unwrap())
            .collect()
    }

    fn events(client: &mut RtmpClientSession) -> Vec<ClientEvent> {
        core::iter::from_fn(|| client.poll_event()).collect()
    }

    /// Runs a client through the handshake; returns it with the server and the connect.
    fn connected(mode: ClientMode) -> (RtmpClientSession, FakeServer, Command) {
        let config =
            RtmpClientConfig::from_url("rtmp://example.com:1935/live/cam?t=1", mode).unwrap();
        let mut client = RtmpClientSession::new(config, Millis(0), 4);
        let mut server = FakeServer::new();
        assert!(server.receive(&mut client).is_empty());
        server.send(&mut client, 1).unwrap();
        let messages = server.receive(&mut client);
        assert_eq!(
            controls(&messages),
            vec![ControlMessage::SetChunkSize(60_000)]
        );
        let mut commands = commands(&messages);
        assert_eq!(commands.len(), 1);
        (client, server, commands.remove(0))
    }

    #[test]
    fn url_splits_into_app_stream_and_tc_url() {
        let config =
            RtmpClientConfig::from_url("rtmp://h:1935/live/a/b?x=1", ClientMode::Play).unwrap();
        assert_eq!(config.app, "live");
        assert_eq!(config.stream, "a/b?x=1");
        assert_eq!(config.tc_url, "rtmp://h:1935/live");
        for bad in [
            "http://h/live/s",
            "rtmp://h/live",
            "rtmp://h/live/",
            "rtmp:///live/s",
        ] {
            assert!(
                RtmpClientConfig::from_url(bad, ClientMode::Play).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn connect_carries_app_and_tc_url() {
        let (_, _, connect) = connected(ClientMode::Publish);
        assert_eq!(connect.name, "connect");
        assert_eq!(connect.transaction, 1.0);
        assert_eq!(
            connect.object.get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
        assert_eq!(
            connect.object.get("tcUrl").and_then(Amf0Value::as_str),
            Some("rtmp://example.com:1935/live")
        );
        assert_eq!(
            connect.object.get("flashVer").and_then(Amf0Value::as_str),
            Some(FLASH_VER_PUBLISH)
        );
    }

    #[test]
    fn answers_the_servers_control_messages() {
        let (mut client, mut server, _) = connected(ClientMode::Publish);
        // Below the floor: the client acknowledges every MIN_ACK_WINDOW bytes instead.
        server.control(ControlMessage::WindowAckSize(1_000));
        server.control(ControlMessage::SetPeerBandwidth {
            window: 5_000,
            limit: BandwidthLimit::Dynamic,
        });
        server.control(ControlMessage::SetChunkSize(4_096));
        server.control(ControlMessage::UserControl(UserControlEvent::PingRequest {
            timestamp: 77,
        }));
        // Large enough to need the new chunk size, and to pass the acknowledgement window.
        let padding = Amf0Value::string("x".repeat(6_000));
        server.command(0, "onBWDone", 0.0, &[Amf0Value::Null, padding]);
        server.send(&mut client, 2).unwrap();
        let sent = controls(&server.receive(&mut client));
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert_eq!(sent[0], ControlMessage::WindowAckSize(5_000));
        assert_eq!(
            sent[1],
            ControlMessage::UserControl(UserControlEvent::PingResponse { timestamp: 77 })
        );
        let ControlMessage::Acknowledgement { sequence } = sent[2] else {
            panic!("expected an acknowledgement, got {:?}", sent[2]);
        };
        assert!(sequence > MIN_ACK_WINDOW);
        // The same bandwidth again needs no answer.
        server.control(ControlMessage::SetPeerBandwidth {
            window: 5_000,
            limit: BandwidthLimit::Hard,
        });
        server.send(&mut client, 3).unwrap();
        assert!(server.receive(&mut client).is_empty());
        assert!(events(&mut client).is_empty());
    }

    #[test]
    fn publish_flow_and_harmless_errors() {
        let (mut client, mut server, connect) = connected(ClientMode::Publish);
        server.command(0, "_result", connect.transaction, &[Amf0Value::Null]);
        server.send(&mut client, 2).unwrap();
        let calls = commands(&server.receive(&mut client));
        let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["releaseStream", "FCPublish", "createStream"]);
        assert_eq!(calls[0].first_string_arg(), Some("cam?t=1"));
        // A server with nothing to release says so; that is not a failure.
        server.command(0, "_error", calls[0].transaction, &[Amf0Value::Null]);
        server.command(
            0,
            "_result",
            calls[2].transaction,
            &[Amf0Value::Null, Amf0Value::Number(7.0)],
        );
        server.send(&mut client, 3).unwrap();
        let messages = server.receive(&mut client);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].header.stream_id, 7);
        let publish = Command::decode(&messages[0].payload, false).unwrap();
        assert_eq!(publish.name, "publish");
        assert_eq!(
            publish.args,
            vec![Amf0Value::string("cam?t=1"), Amf0Value::string("live")]
        );
        assert_eq!(client.stream_id(), Some(7));
        assert!(events(&mut client).is_empty());

        server.status(7, "status", "NetStream.Publish.Start");
        server.send(&mut client, 4).unwrap();
        assert_eq!(events(&mut client), vec![ClientEvent::Publishing]);
        assert_eq!(client.poll_timeout(), None);

        client.stop();
        let calls = commands(&server.receive(&mut client));
        let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["FCUnpublish", "deleteStream"]);
        assert_eq!(calls[1].args, vec![Amf0Value::Number(7.0)]);
        assert_eq!(
            events(&mut client),
            vec![ClientEvent::Closed { reason: "stopped" }]
        );
    }

    #[test]
    fn connect_error_is_a_rejection() {
        let (mut client, mut server, connect) = connected(ClientMode::Play);
        let info = crate::rtmp::command::status_object(
            "error",
            "NetConnection.Connect.Rejected",
            "bad token",
        );
        server.command(0, "_error", connect.transaction, &[Amf0Value::Null, info]);
        server.send(&mut client, 2).unwrap();
        assert_eq!(
            events(&mut client),
            vec![
                ClientEvent::Rejected {
                    code: "NetConnection.Connect.Rejected".into(),
                    description: "bad token".into()
                },
                ClientEvent::Closed { reason: "rejected" }
            ]
        );
        assert!(server.receive(&mut client).is_empty());
    }

    /// Plays up to `Playing` on stream 1.
    fn playing() -> (RtmpClientSession, FakeServer) {
        let (mut client, mut server, connect) = connected(ClientMode::Play);
        server.command(0, "_result", connect.transaction, &[Amf0Value::Null]);
        server.send(&mut client, 2).unwrap();
        let create = commands(&server.receive(&mut client)).remove(0);
        assert_eq!(create.name, "createStream");
        server.command(
            0,
            "_result",
            create.transaction,
            &[Amf0Value::Null, Amf0Value::Number(1.0)],
        );
        server.send(&mut client, 3).unwrap();
        let messages = server.receive(&mut client);
        let play = commands(&messages).remove(0);
        assert_eq!(play.name, "play");
        assert_eq!(
            play.args,
            vec![Amf0Value::string("cam?t=1"), Amf0Value::Number(-2000.0)]
        );
        assert_eq!(
            controls(&messages),
            vec![ControlMessage::UserControl(
                UserControlEvent::SetBufferLength {
                    stream_id: 1,
                    buffer_ms: 1_000
                }
            )]
        );
        server.status(1, "status", "NetStream.Play.Reset");
        server.status(1, "status", "NetStream.Play.Start");
        server.send(&mut client, 4).unwrap();
        assert_eq!(events(&mut client), vec![ClientEvent::Playing]);
        (client, server)
    }

    #[test]
    fn aggregate_messages_become_media_with_shifted_times() {
        let (mut client, mut server) = playing();
        let mut aggregate = Vec::new();
        for (time, body) in [(1_000u32, &[0xaf, 1, 0x11][..]), (1_023, &[0xaf, 1, 0x22])] {
            let size = body.len() as u32;
            aggregate.push(8);
            aggregate.extend_from_slice(&size.to_be_bytes()[1..]);
            aggregate.extend_from_slice(&time.to_be_bytes()[1..]);
            aggregate.push((time >> 24) as u8);
            aggregate.extend_from_slice(&[0, 0, 0]);
            aggregate.extend_from_slice(body);
            aggregate.extend_from_slice(&(11 + size).to_be_bytes());
        }
        let header = MessageHeader {
            csid: 7,
            timestamp: 50,
            type_id: types::AGGREGATE,
            stream_id: 1,
        };
        server
            .encoder
            .write(&header, &[Bytes::from(aggregate)], &mut server.out)
            .unwrap();
        server.send(&mut client, 5).unwrap();
        let times: Vec<(i64, u8)> = events(&mut client)
            .into_iter()
            .map(|event| match event {
                ClientEvent::Media(Media::Frame(frame)) => (frame.dts, frame.payload[0]),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(times, [(50, 0x11), (73, 0x22)]);
    }

    #[test]
    fn stream_eof_ends_the_stream_once() {
        let (mut client, mut server) = playing();
        server.control(ControlMessage::UserControl(UserControlEvent::StreamEof {
            stream_id: 2,
        }));
        server.send(&mut client, 5).unwrap();
        assert!(events(&mut client).is_empty(), "another stream's EOF");
        server.control(ControlMessage::UserControl(UserControlEvent::StreamEof {
            stream_id: 1,
        }));
        server.status(1, "status", "NetStream.Play.Stop");
        server.send(&mut client, 6).unwrap();
        assert_eq!(events(&mut client), vec![ClientEvent::StreamEnded]);
        assert_eq!(client.poll_timeout(), None);
    }

    #[test]
    fn create_stream_result_without_an_id_is_an_error() {
        let (mut client, mut server, connect) = connected(ClientMode::Play);
        server.command(0, "_result", connect.transaction, &[Amf0Value::Null]);
        server.send(&mut client, 2).unwrap();
        let create = commands(&server.receive(&mut client)).remove(0);
        server.command(
            0,
            "_result",
            create.transaction,
            &[Amf0Value::Null, Amf0Value::Number(-1.5)],
        );
        let error = server.send(&mut client, 3).unwrap_err();
        assert_eq!(
            error,
            RtmpError::Protocol("createStream result without a stream id")
        );
        assert_eq!(
            client.handle_input(Millis(4), &mut BytesMut::from(&b"x"[..])),
            Err(error)
        );
    }
}
