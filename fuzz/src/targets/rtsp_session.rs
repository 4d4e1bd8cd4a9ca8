//! Fuzz body for the RTSP server session: requests, SDP, interleaved RTP and RTCP, RTP and
//! RTCP datagrams over UDP (their ports routed or refused), in both the publish and the play
//! flow.

use bytes::{Bytes, BytesMut};
use mediakit_core::datagram::UdpChannel;
use mediakit_core::rtsp::{RtspLimits, RtspServerConfig, RtspServerSession};
use mediakit_core::session::{LiveSession, Rejection, SessionEvent};
use mediakit_core::Millis;

/// The seed whose session id is the `12345678` that the ffmpeg captures in the seeds echo.
const SEED: u64 = 0x1234_5678;

/// Drives a server session with arbitrary bytes in fuzzer-chosen reads, accepting every
/// publish and play and feeding players media, so the deepest states are reached. Errors
/// latch; nothing may panic.
pub fn rtsp_session(data: &[u8]) {
    let config = RtspServerConfig {
        limits: RtspLimits {
            max_head_bytes: 2048,
            max_headers: 16,
            max_body_bytes: 4096,
        },
        max_frame_bytes: 64 * 1024,
        udp_ports: Some((30_000, 30_001)),
        ..RtspServerConfig::default()
    };
    let mut session = RtspServerSession::new(config, Millis(0), SEED);
    let media = super::fixture::snapshot();
    let mut playing = false;
    // The client ports the session announced: each read is also sent as a datagram from
    // them, so UDP ingest sees the same arbitrary bytes.
    let mut ports: Option<(u16, u16)> = None;
    let (read_size, input) = crate::read_sizes(data);
    let mut buffer = BytesMut::new();
    for (i, piece) in input.chunks(read_size).enumerate() {
        let now = Millis(i as u64 * 100);
        buffer.extend_from_slice(piece);
        if session.handle_input(now, &mut buffer).is_err() {
            assert!(session.handle_input(now, &mut BytesMut::new()).is_err());
            return;
        }
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::PublishRequested { .. } => session.accept_publish(),
                SessionEvent::PlayRequested { .. } => {
                    session.accept_play();
                    playing = true;
                }
                SessionEvent::Closed { .. } => return,
                SessionEvent::DatagramPortsRequested { rtp, rtcp } => {
                    // Routed or refused by the read size, so both answers are exercised.
                    if read_size % 2 == 0 {
                        session.accept_datagram_ports();
                        ports = Some((rtp, rtcp));
                    } else {
                        session.reject(Rejection::PortsInUse);
                    }
                }
                _ => {}
            }
        }
        if let Some((rtp, rtcp)) = ports {
            let (channel, port) = if i % 2 == 0 {
                (UdpChannel::Rtp, rtp)
            } else {
                (UdpChannel::Rtcp, rtcp)
            };
            session.handle_datagram(now, channel, port, Bytes::copy_from_slice(piece));
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
        let written = out.queued_bytes();
        out.advance(written);
        if let Some(datagrams) = session.datagrams() {
            datagrams.clear();
        }
    }
    session.handle_timeout(Millis(u64::MAX / 2));
}
