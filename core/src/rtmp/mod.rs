//! RTMP: the handshake, the chunk stream and protocol control messages.
//!
//! The layers stack the way the bytes flow:
//!
//! 1. [`handshake`]: C0/C1/C2 and S0/S1/S2, plain or with the digest ("complex") scheme that
//!    Flash players, ffmpeg and librtmp use. Bytes left over after it belong to the chunk stream.
//! 2. [`chunk`]: splitting messages into chunks and reassembling them, with per chunk stream
//!    header compression. [`chunk::ChunkDecoder::decode`] yields one message at a time so the
//!    session can apply a Set Chunk Size before the next chunk is read.
//! 3. [`message`]: message type ids, protocol control messages and user control events, and the
//!    acknowledgement window bookkeeping.
//!
//! Sessions (publish/play command flow) are built on top of these.

pub mod chunk;
pub mod client;
pub mod command;
pub mod handshake;
pub mod message;
pub mod server;

pub use chunk::{ChunkDecoder, ChunkEncoder, ChunkError, Message, MessageHeader};
pub use handshake::{ClientHandshake, HandshakeError, HandshakeProgress, ServerHandshake};
pub use message::{AckTracker, ControlMessage, MessageError, UserControlEvent, MIN_ACK_WINDOW};
