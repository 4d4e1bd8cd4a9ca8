//! # mediakit-core
//!
//! Sans-IO protocol state machines for a live media server: the media model, AMF0, RTMP
//! (handshake, chunk stream, server and client sessions), FLV, HTTP request heads and the hub
//! that fans one publisher out to many players.
//!
//! Nothing here performs I/O, starts a thread or reads a clock. Bytes from the network go in
//! through `handle_input`-style methods, time goes in as a [`Millis`] argument, and what must be
//! sent comes out as `bytes::Bytes` segments in an [`OutQueue`], ready for a vectored write.
//!
//! Input from the network is untrusted: every length a peer declares is checked against a
//! configured bound before anything is allocated for it, and malformed input is reported as an
//! error value, never a panic.
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

pub mod amf0;
pub mod flv;
pub mod http;
pub mod http_flv;
pub mod hub;
pub mod media;
pub mod outq;
pub mod rtmp;
pub mod session;
pub mod time;
pub mod wire;

pub use outq::OutQueue;
pub use time::Millis;
