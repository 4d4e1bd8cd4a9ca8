//! Fuzz body for the HTTP request head parser and the HTTP session that uses it: live FLV and
//! TS bodies, HLS playlists and segments.

use bytes::{Bytes, BytesMut};
use mediakit_core::http::{parse_request_head, playlist_resource, segment_resource};
use mediakit_core::http_live::HttpLiveSession;
use mediakit_core::session::{LiveSession, Rejection, SessionEvent};
use mediakit_core::Millis;

/// Parses arbitrary bytes as a request head, then drives a session with them in reads of a
/// fuzzer-chosen size, answering as a server would: plays are accepted and fed media, the
/// playlist is served, segments are served or refused by name. The parse must agree however
/// the input is split, every answer must be well-formed HTTP, and nothing may panic.
pub fn http_request(data: &[u8]) {
    let whole = parse_request_head(data);
    if let Ok(Some((_, consumed))) = &whole {
        assert!(*consumed <= data.len());
    }
    let (read_size, input) = crate::read_sizes(data);
    let mut session = HttpLiveSession::new(Millis(0));
    let media = super::fixture::snapshot();
    let mut playing = false;
    let mut closed = false;
    let mut buffer = BytesMut::new();
    let mut wire_start = Vec::new();
    for (i, piece) in input.chunks(read_size).enumerate() {
        let now = Millis(i as u64 * 1000);
        buffer.extend_from_slice(piece);
        if session.handle_input(now, &mut buffer).is_err() {
            return;
        }
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::PlayRequested { .. } => {
                    if read_size % 3 == 0 {
                        session.reject(Rejection::NotFound);
                    } else {
                        session.accept_play();
                        playing = true;
                    }
                }
                SessionEvent::ResourceRequested { name, .. } => {
                    assert!(name.ends_with(".m3u8") || name.ends_with(".ts"));
                    let body = Bytes::from(name.clone().into_bytes());
                    if name.ends_with(".m3u8") {
                        session.serve_resource(playlist_resource(body));
                    } else if read_size % 2 == 0 {
                        session.serve_resource(segment_resource(body));
                    } else {
                        session.reject(Rejection::Unavailable);
                    }
                }
                SessionEvent::Closed { .. } => closed = true,
                _ => {}
            }
        }
        if playing {
            for item in &media {
                session.send_media(item);
            }
        }
        if session.poll_timeout().is_some_and(|at| at <= now) {
            session.handle_timeout(now);
        }
        let out = session.transmit();
        if wire_start.len() < 16 {
            wire_start.extend(out.segments().flatten().copied().take(16));
        }
        let written = out.queued_bytes();
        out.advance(written);
        assert!(buffer.len() <= mediakit_core::http::MAX_HEAD_BYTES + read_size);
    }
    if !wire_start.is_empty() {
        assert!(wire_start.starts_with(b"HTTP/1.1 "));
    }
    if playing && !closed {
        session.end_of_stream();
        assert!(matches!(
            session.poll_event(),
            Some(SessionEvent::Closed { .. })
        ));
    }
    session.handle_timeout(Millis(u64::MAX / 2));
}
