//! Fuzz body for the RTMP server session: handshake, chunk stream, commands and media.

use bytes::BytesMut;
use mediakit_core::rtmp::server::{RtmpServerConfig, RtmpServerSession};
use mediakit_core::session::{LiveSession, SessionEvent};
use mediakit_core::Millis;

/// The most a session may hold for unparsed input before it must have failed.
const MAX_MESSAGE: u32 = 64 * 1024;

/// Drives a server session with arbitrary bytes in fuzzer-chosen reads, accepting every
/// publish and play it asks for so the deepest states are reached. Once past the handshake
/// the fuzzer's bytes are chunk data, so the seeds start with a valid C0+C1+C2.
pub fn rtmp_session(data: &[u8]) {
    let config = RtmpServerConfig {
        max_message_len: MAX_MESSAGE,
        ..RtmpServerConfig::default()
    };
    let mut session = RtmpServerSession::new(config, Millis(0), 7);
    let (read_size, input) = crate::read_sizes(data);
    let mut buffer = BytesMut::new();
    for (i, piece) in input.chunks(read_size).enumerate() {
        buffer.extend_from_slice(piece);
        if session.handle_input(Millis(i as u64), &mut buffer).is_err() {
            // Errors latch: the same input fails again.
            assert!(session
                .handle_input(Millis(i as u64), &mut BytesMut::new())
                .is_err());
            return;
        }
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::PublishRequested { .. } => session.accept_publish(),
                SessionEvent::PlayRequested { .. } => session.accept_play(),
                SessionEvent::Closed { .. } => return,
                _ => {}
            }
        }
        let out = session.transmit();
        let written = out.queued_bytes();
        out.advance(written);
    }
    session.handle_timeout(Millis(u64::MAX / 2));
}
