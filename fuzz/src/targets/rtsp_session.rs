//! Fuzz body for the RTSP server session: requests, SDP, interleaved RTP and RTCP, RTP and
//! RTCP datagrams over UDP, in both the publish and the play flow.

use bytes::{Bytes, BytesMut};
use mediakit_core::datagram::UdpChannel;
use mediakit_core::media::nal::to_length_prefixed;
use mediakit_core::media::{AacConfig, AvcConfig, Codec, Frame, Media, TrackConfig};
use mediakit_core::rtsp::{RtspLimits, RtspServerConfig, RtspServerSession};
use mediakit_core::session::{LiveSession, SessionEvent};
use mediakit_core::Millis;

/// The seed whose session id is the `12345678` that the ffmpeg captures in the seeds echo.
const SEED: u64 = 0x1234_5678;

/// What a player is sent once its DESCRIBE is accepted: configurations then a keyframe.
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
    let media = snapshot();
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
                SessionEvent::DatagramPortsAnnounced { rtp, rtcp } => ports = Some((rtp, rtcp)),
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
