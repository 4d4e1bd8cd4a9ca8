//! What every server-side protocol session has in common, so a runtime can drive RTMP, RTSP
//! (over TCP and UDP) and HTTP (FLV, TS and HLS) connections with one loop.
//!
//! The runtime's loop, after each input, timeout or command:
//! 1. drain [`LiveSession::poll_event`] and act on each event (ask the hub, answer with
//!    `accept_*` / `reject`);
//! 2. write out [`LiveSession::transmit`] with a vectored write, advancing it by what the
//!    socket took;
//! 3. sleep until input, [`LiveSession::poll_timeout`], or media for a player.

use alloc::string::String;
use core::fmt;

use bytes::{Bytes, BytesMut};

use crate::datagram::{DatagramQueue, UdpChannel};
use crate::key::{KeyError, StreamKey};

use crate::media::Media;
use crate::outq::OutQueue;
use crate::time::Millis;

/// What a session asks of the server, or tells it.
///
/// Names arrive validated: a session parses what the peer sent into a [`StreamKey`] once, and
/// answers a name that is not one itself ([`SessionEvent::BadStreamName`]), so no event
/// carries text of the peer's choosing beyond a key's bounded parts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The peer wants to publish `key`; answer with `accept_publish` or `reject`.
    PublishRequested {
        /// The stream (any query string removed).
        key: StreamKey,
    },
    /// The peer wants to play `key`; answer with `accept_play` or `reject`.
    PlayRequested {
        /// The stream (any query string removed).
        key: StreamKey,
    },
    /// The peer asked for a document of `key` that the server serves whole (an HLS playlist
    /// or segment); answer with [`LiveSession::serve_resource`] or `reject`. The session waits
    /// as long as the server takes (e.g. for a first segment to exist).
    ResourceRequested {
        /// The stream (any query string removed).
        key: StreamKey,
        /// The document's name within the stream: the last path segment, e.g. `index.m3u8`,
        /// `hls.m3u8` or `123.ts`.
        name: String,
    },
    /// The peer named a stream that is not a valid [`StreamKey`]; the session has already
    /// answered with its protocol's bad-name reply and closes. For the log line: the error
    /// says what was wrong without repeating the name.
    BadStreamName {
        /// What the peer asked for.
        request: RequestKind,
        /// Why the name was refused.
        error: KeyError,
    },
    /// A publishing peer sent a media item.
    Media(Media),
    /// The publishing peer stopped publishing (the connection may stay open).
    PublishStopped,
    /// The playing peer stopped playing (the connection may stay open).
    PlayStopped,
    /// The peer asks to exchange datagrams from these ports at the connection's address (an
    /// RTSP SETUP over UDP), and its answer waits for the server's: route what arrives from
    /// them to [`LiveSession::handle_datagram`] and answer with
    /// [`LiveSession::accept_datagram_ports`], or refuse with
    /// `reject(`[`Rejection::PortsInUse`]`)` when they are routed to another session.
    DatagramPortsRequested {
        /// The peer's RTP port.
        rtp: u16,
        /// The peer's RTCP port.
        rtcp: u16,
    },
    /// The session has finished; close the connection once `transmit` is flushed.
    Closed {
        /// Why, for the log line.
        reason: &'static str,
    },
}

/// What kind of request named a stream, in [`SessionEvent::BadStreamName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Publishing (RTMP `publish`, RTSP ANNOUNCE).
    Publish,
    /// Playing (RTMP `play`, RTSP DESCRIBE, an HTTP live body).
    Play,
    /// A document served whole (an HLS playlist or segment).
    Resource,
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestKind::Publish => "publish",
            RequestKind::Play => "play",
            RequestKind::Resource => "resource",
        })
    }
}

/// Why the server refuses a request; each protocol maps it to its own answer (RTMP onStatus
/// codes, RTSP and HTTP status codes). A reason that does not fit the pending request is
/// answered as the nearest one that does (see each session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The stream is not live and did not become live within the wait.
    NotFound,
    /// Somebody is already publishing this name.
    AlreadyPublishing,
    /// The name is malformed.
    BadName,
    /// The server is at a configured limit.
    Unavailable,
    /// The datagram ports of [`SessionEvent::DatagramPortsRequested`] are already routed to
    /// another session (RTSP answers `461 Unsupported Transport`, and clients such as ffmpeg
    /// then retry over TCP).
    PortsInUse,
}

/// A document the server serves whole, in answer to [`SessionEvent::ResourceRequested`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// The body (shared, not copied).
    pub body: Bytes,
}

/// Whether a session is still setting up or carrying media; runtimes set socket options by
/// phase (TCP_NODELAY while handshaking, off with MSG_MORE once media flows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Handshake and command exchange.
    Setup,
    /// Media is flowing.
    Media,
}

/// A server-side protocol session driven by a runtime.
pub trait LiveSession {
    /// The error that ends the session.
    type Error: core::fmt::Display;

    /// Consumes bytes received from the peer (all of them, or leaves an incomplete tail).
    fn handle_input(&mut self, now: Millis, input: &mut BytesMut) -> Result<(), Self::Error>;
    /// The next event to act on.
    fn poll_event(&mut self) -> Option<SessionEvent>;
    /// Accepts the pending publish request.
    fn accept_publish(&mut self);
    /// Accepts the pending play request; media follows through `send_media`.
    fn accept_play(&mut self);
    /// Refuses the pending request.
    fn reject(&mut self, why: Rejection);
    /// Accepts the datagram ports of the pending [`SessionEvent::DatagramPortsRequested`]:
    /// the server has routed them here. Protocols without datagrams ignore it.
    fn accept_datagram_ports(&mut self) {}
    /// Answers the pending [`SessionEvent::ResourceRequested`] with the document. Protocols
    /// that never ask for resources ignore it.
    fn serve_resource(&mut self, resource: Resource) {
        let _ = resource;
    }
    /// Queues one media item for a playing peer.
    fn send_media(&mut self, media: &Media);
    /// Tells a playing peer the stream has ended.
    fn end_of_stream(&mut self);
    /// The bytes waiting to be sent.
    fn transmit(&mut self) -> &mut OutQueue;
    /// The next deadline, if any.
    fn poll_timeout(&self) -> Option<Millis>;
    /// Called at or after the deadline from `poll_timeout`.
    fn handle_timeout(&mut self, now: Millis);
    /// Setup or media phase.
    fn phase(&self) -> Phase;
    /// Datagrams waiting to be sent over the worker's UDP sockets, for protocols that use
    /// them (RTSP over UDP); `None` for the others.
    fn datagrams(&mut self) -> Option<&mut DatagramQueue> {
        None
    }
    /// Consumes one datagram the peer sent from `from_port` to the worker's `channel` socket.
    /// Protocols without datagrams ignore it.
    fn handle_datagram(
        &mut self,
        now: Millis,
        channel: UdpChannel,
        from_port: u16,
        payload: Bytes,
    ) {
        let _ = (now, channel, from_port, payload);
    }
}
