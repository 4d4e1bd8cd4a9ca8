//! Fuzz body for the HTTP request head parser and the HTTP session that uses it: live FLV and
//! TS bodies, HLS playlists and segments.

use bytes::{Bytes, BytesMut};
use mediakit_core::http::{parse_request_head, playlist_resource, segment_resource};
use mediakit_core::http_live::HttpLiveSession;
use mediakit_core::media::nal::to_length_prefixed;
use mediakit_core::media::{AacConfig, AvcConfig, Codec, Frame, Media, TrackConfig};
use mediakit_core::session::{LiveSession, Rejection, SessionEvent};
use mediakit_core::Millis;

/// What a player is sent once its play is accepted: configurations then a keyframe.
fn snapshot() -> [Media; 4] {
    let sps: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50];
    let pps: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];
    let avc = AvcConfig::from_parameter_sets(Bytes::from_static(sps), Bytes::from_static(pps));
    let aac = AacConfig::new(2, 44_100, 2);
    let (Ok(avc), Ok(aac)) = (avc, aac) else {
        unreachable!("fixed configurations are valid");
    };
    let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    [
        Media::Config(TrackConfig::Avc(avc)),
        Media::Config(TrackConfig::Aac(aac)),
        Media::Frame(Frame {
            codec: Codec::H264,
            dts: 0,
            pts: 0,
            keyframe: true,
            payload: to_length_prefixed([idr]),
        }),
        Media::Frame(Frame {
            codec: Codec::Aac,
            dts: 10,
            pts: 10,
            keyframe: true,
            payload: Bytes::from_static(&[0x21, 0x10, 0x04]),
        }),
    ]
}

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
    let media = snapshot();
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
                SessionEvent::PlayRequested { app, stream } => {
                    assert!(!app.is_empty() && !stream.is_empty());
                    if read_size % 3 == 0 {
                        session.reject(Rejection::NotFound);
                    } else {
                        session.accept_play();
                        playing = true;
                    }
                }
                SessionEvent::ResourceRequested { app, stream, name } => {
                    assert!(!app.is_empty() && !stream.is_empty());
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
