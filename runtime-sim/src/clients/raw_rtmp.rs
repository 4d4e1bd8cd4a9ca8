//! An RTMP client driven by hand, message by message, for what the protocol-following
//! [`publish_rtmp`](super::publish_rtmp) and [`play_rtmp`](super::play_rtmp) never do: stop
//! after `connect`, ping in a loop without reading, or send names no encoder would.
//!
//! The handshake is the core's `ClientHandshake` and the chunk stream its `ChunkEncoder` and
//! `ChunkDecoder`; which messages go out, and when the client reads, is the test's choice.

use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use mediakit_core::amf0::Amf0Value;
use mediakit_core::rtmp::command::{encode_command, CSID_COMMAND, CSID_STREAM};
use mediakit_core::rtmp::message::types;
use mediakit_core::rtmp::{
    ChunkDecoder, ChunkEncoder, ClientHandshake, ControlMessage, Message, MessageHeader,
    UserControlEvent,
};
use mediakit_core::OutQueue;

use crate::{now, seed, TcpStream};

/// The largest message the client accepts from the server.
const MAX_MESSAGE: u32 = 16 << 20;

/// One hand-driven RTMP client connection.
#[derive(Debug)]
pub struct RawRtmp {
    stream: TcpStream,
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
    out: OutQueue,
    input: BytesMut,
    next_transaction: f64,
}

impl RawRtmp {
    /// Connects from `from` to `server` and completes the handshake (C0+C1, S0+S1+S2, C2);
    /// `receive_buffer` sets the bytes in flight toward the client from the start.
    pub async fn handshake(
        from: IpAddr,
        server: SocketAddr,
        receive_buffer: Option<usize>,
    ) -> io::Result<RawRtmp> {
        let stream = TcpStream::connect(from, server)?;
        if let Some(bytes) = receive_buffer {
            stream.set_receive_buffer(bytes)?;
        }
        let mut handshake = ClientHandshake::from_seed(seed(), now().0 as u32);
        let mut input = BytesMut::new();
        while !handshake.is_done() {
            if let Some(bytes) = handshake.take_output() {
                stream.write_all(&bytes).await?;
            }
            if stream.read_buf(&mut input).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            handshake
                .handle_input(&mut input)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
        }
        if let Some(c2) = handshake.take_output() {
            stream.write_all(&c2).await?;
        }
        Ok(RawRtmp {
            stream,
            encoder: ChunkEncoder::new(),
            decoder: ChunkDecoder::new(MAX_MESSAGE),
            out: OutQueue::new(),
            input,
            next_transaction: 1.0,
        })
    }

    /// The connection.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Queues a protocol or user control message (chunk stream 2); a Set Chunk Size also
    /// switches this client's encoder to the new size.
    pub fn queue_control(&mut self, control: &ControlMessage) {
        // Control payloads are a few bytes: nothing the encoder can refuse.
        let _ = self.encoder.write_control(control, &mut self.out);
    }

    /// Queues a Ping Request carrying `timestamp`.
    pub fn queue_ping(&mut self, timestamp: u32) {
        self.queue_control(&ControlMessage::UserControl(
            UserControlEvent::PingRequest { timestamp },
        ));
    }

    /// Queues an AMF0 command on message stream `stream_id` with the next transaction id,
    /// which it returns. An oversize body (over the chunk layer's 16 MiB) is not queued.
    pub fn queue_command(&mut self, name: &str, stream_id: u32, values: &[Amf0Value]) -> f64 {
        let transaction = self.next_transaction;
        self.next_transaction += 1.0;
        let body = encode_command(name, transaction, values);
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM
        };
        let header = MessageHeader {
            csid,
            timestamp: 0,
            type_id: types::COMMAND_AMF0,
            stream_id,
        };
        let _ = self.encoder.write(&header, &[body], &mut self.out);
        transaction
    }

    /// Queues `connect` to application `app`, as an encoder sends it.
    pub fn queue_connect(&mut self, app: &str) {
        let tc_url = format!("rtmp://{}/{app}", self.stream.peer_addr());
        let object = Amf0Value::object([
            ("app", Amf0Value::string(app)),
            ("type", Amf0Value::string("nonprivate")),
            (
                "flashVer",
                Amf0Value::string("FMLE/3.0 (compatible; mediakit-sim)"),
            ),
            ("tcUrl", Amf0Value::String(tc_url)),
        ]);
        self.queue_command("connect", 0, &[object]);
    }

    /// Queues `createStream` and `publish(name, "live")` on message stream 1 (the first one a
    /// server hands out), without waiting for the `createStream` answer.
    pub fn queue_publish(&mut self, name: &str) {
        self.queue_command("createStream", 0, &[Amf0Value::Null]);
        let values = [
            Amf0Value::Null,
            Amf0Value::string(name),
            Amf0Value::string("live"),
        ];
        self.queue_command("publish", 1, &values);
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.out.queued_bytes()
    }

    /// Writes what is queued as far as the connection takes it now; the bytes written.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut written = 0;
        while !self.out.is_empty() {
            match self.stream.try_send_queue(&mut self.out) {
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        Ok(written)
    }

    /// Writes everything queued, waiting for room.
    pub async fn send(&mut self) -> io::Result<()> {
        self.stream.send_queue(&mut self.out).await
    }

    /// The next message from the server, reading as needed; `None` once the server closed.
    /// Set Chunk Size messages are applied as they pass.
    pub async fn next_message(&mut self) -> io::Result<Option<Message>> {
        loop {
            if let Some(message) = self.decode()? {
                return Ok(Some(message));
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// The messages that have arrived, without waiting for more.
    pub fn try_messages(&mut self) -> io::Result<Vec<Message>> {
        loop {
            match self.stream.try_read_buf(&mut self.input) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        let mut messages = Vec::new();
        while let Some(message) = self.decode()? {
            messages.push(message);
        }
        Ok(messages)
    }

    /// Takes the next whole message off the input read so far, applying Set Chunk Size.
    fn decode(&mut self) -> io::Result<Option<Message>> {
        let decoded = self
            .decoder
            .decode(&mut self.input)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
        if let Some(message) = &decoded {
            if message.header.type_id == types::SET_CHUNK_SIZE {
                if let Ok(ControlMessage::SetChunkSize(size)) =
                    ControlMessage::parse(types::SET_CHUNK_SIZE, &message.payload)
                {
                    let _ = self.decoder.set_chunk_size(size);
                }
            }
        }
        Ok(decoded)
    }

    /// Reads and decodes until the server closes; returns the messages.
    pub async fn read_to_end(&mut self) -> io::Result<Vec<Message>> {
        let mut messages = Vec::new();
        while let Some(message) = self.next_message().await? {
            messages.push(message);
        }
        Ok(messages)
    }
}

/// The `code` of a status message (`onStatus` or `_result`), if it is one.
pub fn status_code(message: &Message) -> Option<String> {
    if ![types::COMMAND_AMF0, types::DATA_AMF0].contains(&message.header.type_id) {
        return None;
    }
    let values = mediakit_core::amf0::decode_all(&message.payload).ok()?;
    values
        .iter()
        .find_map(|value| value.get("code").and_then(Amf0Value::as_str))
        .map(str::to_owned)
}

/// The bytes a server's fresh chunk encoder writes for `controls` in order: what a peer
/// receives for them (a model for byte counts a test observes on the wire).
pub fn control_bytes(controls: &[ControlMessage]) -> usize {
    let mut encoder = ChunkEncoder::new();
    let mut out = OutQueue::new();
    for control in controls {
        let _ = encoder.write_control(control, &mut out);
    }
    out.queued_bytes()
}
