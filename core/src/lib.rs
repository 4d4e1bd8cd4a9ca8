//! # mediakit-core
//!
//! Sans-IO protocol state machines for a live media server, and the policy a server built on
//! them applies:
//!
//! - media and protocols: the media model, AMF0, RTMP (handshake, chunk stream, server and
//!   client sessions), FLV, HTTP request heads and the HTTP live session (HTTP-FLV, HTTP-TS,
//!   HLS documents), RTSP (messages, transport headers, a server session over TCP interleaved
//!   and UDP), SDP, RTP packetizers and depacketizers (H.264, H.265, AAC), RTCP, datagrams for
//!   RTP over UDP, MPEG-TS mux/demux, the HLS segmenter and catalog;
//! - the hub that fans one publisher out to many players (GOP cache, bounded player queues,
//!   the stream registry, cross-worker forwarding);
//! - every decision a server makes about time and limits: waits for a stream or a playlist
//!   ([`wait`]), per-connection defences ([`guard`]: send progress, backpressure), connection
//!   admission ([`admission`]), UDP routes ([`datagram`]), how much one wake-up may do
//!   ([`budget`]), rate limits and log gating ([`limit`]).
//!
//! Nothing here performs I/O, starts a thread or reads a clock. Bytes from the network go in
//! through `handle_input`-style methods, time goes in as a [`Millis`] argument, and what must be
//! sent comes out as `bytes::Bytes` segments in an [`OutQueue`], ready for a vectored write.
//!
//! Input from the network is untrusted: every length a peer declares is checked against a
//! configured bound before anything is allocated for it, and malformed input is reported as an
//! error value, never a panic.
//!
//! ## A complete run loop
//!
//! An RTMP ingest over a blocking `std::net::TcpStream`: the session answers the handshake
//! and the command flow, asks before accepting a publish, and hands out frames. A runtime
//! does the same with non-blocking sockets and vectored writes (see `mediakit-tokio`).
//!
//! ```no_run
//! # #[cfg(feature = "std")]
//! # fn main() -> std::io::Result<()> {
//! use std::io::{Read, Write};
//! use std::net::TcpListener;
//!
//! use bytes::BytesMut;
//! use mediakit_core::media::Media;
//! use mediakit_core::rtmp::server::{RtmpServerConfig, RtmpServerSession};
//! use mediakit_core::session::{LiveSession, Rejection, SessionEvent};
//! use mediakit_core::Millis;
//!
//! let start = std::time::Instant::now();
//! let now = || Millis(start.elapsed().as_millis() as u64);
//! let listener = TcpListener::bind("127.0.0.1:1935")?;
//! let (mut socket, peer) = listener.accept()?;
//! let mut session = RtmpServerSession::new(RtmpServerConfig::default(), now(), 0x5eed);
//! let mut input = BytesMut::new();
//! let mut read_buffer = vec![0u8; 64 * 1024];
//! loop {
//!     // 1. Input.
//!     let read = socket.read(&mut read_buffer)?;
//!     if read == 0 {
//!         break;
//!     }
//!     input.extend_from_slice(&read_buffer[..read]);
//!     if let Err(error) = session.handle_input(now(), &mut input) {
//!         eprintln!("{peer}: closing: {error}");
//!         break;
//!     }
//!     // 2. Events.
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             SessionEvent::PublishRequested { key } => {
//!                 println!("{peer} publishes {key}");
//!                 session.accept_publish();
//!             }
//!             SessionEvent::PlayRequested { .. } => session.reject(Rejection::NotFound),
//!             SessionEvent::Media(Media::Frame(frame)) => {
//!                 println!("{:?} dts {} ms, {} bytes", frame.codec, frame.dts, frame.payload.len());
//!             }
//!             SessionEvent::Closed { reason } => {
//!                 println!("{peer}: {reason}");
//!                 return Ok(());
//!             }
//!             _ => {}
//!         }
//!     }
//!     // 3. Output: the queue holds `Bytes` segments for one vectored write.
//!     let out = session.transmit();
//!     for segment in out.segments() {
//!         socket.write_all(segment)?;
//!     }
//!     let written = out.queued_bytes();
//!     out.advance(written);
//! }
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "std"))]
//! # fn main() {}
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod admission;
pub mod amf0;
pub mod budget;
pub mod datagram;
pub mod flv;
pub mod guard;
pub mod hls;
pub mod http;
pub mod http_live;
pub mod hub;
pub mod key;
pub mod latch;
pub mod limit;
pub mod media;
pub mod outq;
pub mod rtcp;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub mod sdp;
pub mod session;
pub mod time;
pub mod ts;
pub mod wait;
pub mod wire;

pub use outq::OutQueue;
pub use time::Millis;
