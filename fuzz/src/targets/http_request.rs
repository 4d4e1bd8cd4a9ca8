//! Fuzz body for the HTTP request head parser and the HTTP-FLV session that uses it.

use bytes::BytesMut;
use mediakit_core::http::parse_request_head;
use mediakit_core::http_flv::HttpFlvSession;
use mediakit_core::session::{LiveSession, Rejection, SessionEvent};
use mediakit_core::Millis;

/// Parses arbitrary bytes as a request head, then drives a session with them in reads of a
/// fuzzer-chosen size: the parse must agree however the input is split, and the session must
/// end every request with a play request or a closed connection, never a panic.
pub fn http_request(data: &[u8]) {
    let whole = parse_request_head(data);
    if let Ok(Some((_, consumed))) = &whole {
        assert!(*consumed <= data.len());
    }
    let (read_size, input) = crate::read_sizes(data);
    let mut session = HttpFlvSession::new(Millis(0));
    let mut buffer = BytesMut::new();
    for piece in input.chunks(read_size) {
        buffer.extend_from_slice(piece);
        if session.handle_input(Millis(1), &mut buffer).is_err() {
            return;
        }
        while let Some(event) = session.poll_event() {
            if let SessionEvent::PlayRequested { app, stream } = event {
                assert!(!app.is_empty() && !stream.is_empty());
                session.reject(Rejection::NotFound);
            }
        }
        assert!(buffer.len() <= mediakit_core::http::MAX_HEAD_BYTES + read_size);
    }
}
