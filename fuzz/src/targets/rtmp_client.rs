//! Fuzz body for the RTMP client session: the server's handshake reply, chunk stream, control
//! messages, command replies, status and media.

use bytes::{Bytes, BytesMut};
use mediakit_core::media::{AacConfig, Media, TrackConfig};
use mediakit_core::rtmp::client::{ClientEvent, ClientMode, RtmpClientConfig, RtmpClientSession};
use mediakit_core::Millis;

/// The most a session may hold for unparsed input before it must have failed.
const MAX_MESSAGE: u32 = 64 * 1024;

/// Drives a publishing and a playing client session with the same arbitrary server bytes in
/// fuzzer-chosen reads. The publisher sends a media item once the server accepts it, so the
/// output path runs too. The seeds start with a real server's S0+S1+S2 (the client does not
/// check S2 against C1, so any handshake reply gets past it).
pub fn rtmp_client(data: &[u8]) {
    for mode in [ClientMode::Publish, ClientMode::Play] {
        run(mode, data);
    }
}

fn run(mode: ClientMode, data: &[u8]) {
    let mut config = RtmpClientConfig::new(mode, "live", "cam?token=1", "rtmp://fuzz/live");
    config.max_message_len = MAX_MESSAGE;
    let mut session = RtmpClientSession::new(config, Millis(0), 7);
    let (read_size, input) = crate::read_sizes(data);
    let mut buffer = BytesMut::new();
    let audio = Media::Config(TrackConfig::Aac(
        AacConfig::parse(Bytes::from_static(&[0x12, 0x10])).expect("valid AAC config"),
    ));
    for (i, piece) in input.chunks(read_size).enumerate() {
        buffer.extend_from_slice(piece);
        if let Err(error) = session.handle_input(Millis(i as u64), &mut buffer) {
            // Errors latch.
            assert_eq!(
                session.handle_input(Millis(i as u64), &mut BytesMut::new()),
                Err(error)
            );
            return;
        }
        while let Some(event) = session.poll_event() {
            match event {
                // A later message in the same read may already have ended the publish.
                ClientEvent::Publishing => {
                    session.send_media(&audio);
                }
                ClientEvent::Closed { .. } => {
                    assert!(session.is_closed());
                    return;
                }
                _ => {}
            }
        }
        let out = session.transmit();
        let written = out.queued_bytes();
        out.advance(written);
    }
    session.handle_timeout(Millis(u64::MAX / 2));
    session.stop();
    assert!(session.is_closed());
}
