//! Fuzz target bodies, as plain functions so the seed corpora can be replayed by a stable
//! `cargo test` (see `tests/replay_corpora.rs`) as well as fuzzed by cargo-fuzz.
//!
//! Each body feeds arbitrary bytes to one parser or session and asserts its invariants; a
//! panic is a bug, never acceptable behaviour on bad input.

mod targets;

pub use targets::amf0::amf0;
pub use targets::flv_demux::flv_demux;
pub use targets::http_request::http_request;
pub use targets::rtcp::rtcp;
pub use targets::rtmp_chunk::rtmp_chunk;
pub use targets::rtmp_client::rtmp_client;
pub use targets::rtmp_handshake::rtmp_handshake;
pub use targets::rtmp_session::rtmp_session;
pub use targets::rtp_aac::rtp_aac;
pub use targets::rtp_h264::rtp_h264;
pub use targets::rtp_h265::rtp_h265;
pub use targets::rtsp_message::rtsp_message;
pub use targets::rtsp_session::rtsp_session;
pub use targets::sdp::sdp;
pub use targets::ts_demux::ts_demux;

/// Every target: its corpus directory name and body.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("amf0", amf0),
    ("flv_demux", flv_demux),
    ("http_request", http_request),
    ("rtcp", rtcp),
    ("rtmp_chunk", rtmp_chunk),
    ("rtmp_client", rtmp_client),
    ("rtmp_handshake", rtmp_handshake),
    ("rtmp_session", rtmp_session),
    ("rtsp_message", rtsp_message),
    ("rtsp_session", rtsp_session),
    ("sdp", sdp),
    ("rtp_aac", rtp_aac),
    ("rtp_h264", rtp_h264),
    ("rtp_h265", rtp_h265),
    ("ts_demux", ts_demux),
];

/// Splits `data` into reads: the first byte (if any) picks a read size, so the fuzzer explores
/// how sessions behave when input arrives in pieces.
pub fn read_sizes(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (usize::from(*first % 64) + 1, rest),
        None => (1, data),
    }
}
