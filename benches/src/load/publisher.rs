//! The publisher: the core's RTMP client session over a blocking socket, sending the synthetic
//! stream paced in real time.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mediakit_core::media::{Frame, Media};
use mediakit_core::rtmp::client::{ClientEvent, ClientMode, RtmpClientConfig, RtmpClientSession};

use super::net::{connect, flush, read_some, Control};
use crate::{aac_config, aac_frame, avc_config, h264_frame, AAC_FRAME_SIZE};

/// Frames per second of the load stream's video.
pub const FPS: i64 = 30;
/// Milliseconds one GOP of the load stream lasts (a keyframe every second).
pub const GOP_MILLIS: i64 = 1_000;
/// Size of the IDR frame that opens each GOP.
const IDR_SIZE: usize = 150_000;
/// Size of every fourth P-frame.
const LARGE_P_SIZE: usize = 24_000;
/// Size of the other P-frames.
const SMALL_P_SIZE: usize = 8_000;

/// One second of the load stream: a one-second GOP of H.264 at 30 fps (one 150 KB IDR, then
/// P-frames of 24 KB every fourth frame and 8 KB otherwise: 494 KB, about 4 Mbit/s) with AAC-LC
/// at 44.1 kHz (300-byte frames, about 100 kbit/s), interleaved by dts, the IDR first. Built from
/// the crate's fixtures; the lengths differ from [`crate::gop`], which models a 3 Mbit/s stream
/// with a two-second GOP.
pub fn live_gop() -> Vec<Frame> {
    let frames_per_gop = FPS * GOP_MILLIS / 1_000;
    let video = (0..frames_per_gop).map(|i| {
        let size = match i {
            0 => IDR_SIZE,
            i if i % 4 == 0 => LARGE_P_SIZE,
            _ => SMALL_P_SIZE,
        };
        h264_frame(size, i == 0, i * 1_000 / FPS)
    });
    // 1024 samples per AAC frame at 44.1 kHz.
    let audio = (0..)
        .map(|i: i64| i * 1024 * 1000 / 44_100)
        .take_while(|dts| *dts < GOP_MILLIS)
        .map(|dts| aac_frame(AAC_FRAME_SIZE, dts));
    let mut frames: Vec<Frame> = video.chain(audio).collect();
    // Stable: video stays ahead of audio at equal dts, so the IDR comes first.
    frames.sort_by_key(|frame| frame.dts);
    frames
}

/// What the main thread sees of the publisher.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Set once the server accepted the publish and the configurations are sent.
    pub publishing: AtomicBool,
    /// Bytes written to the socket so far.
    pub bytes: AtomicU64,
}

/// Publishes `live/{name}` to `addr` until `control` says stop: the configurations first, then
/// [`live_gop`] over and over, its timestamps advancing by [`GOP_MILLIS`] each round, every
/// frame written when its dts is due on the wall clock.
pub fn publish(
    addr: SocketAddr,
    name: &str,
    stats: &PublisherStats,
    control: &Control,
) -> Result<(), String> {
    let url = format!("rtmp://{addr}/live/{name}");
    let config = RtmpClientConfig::from_url(&url, ClientMode::Publish)
        .ok_or_else(|| format!("bad URL {url}"))?;
    let mut stream = connect(addr)?;
    let mut session = RtmpClientSession::new(config, control.now(), 0x5eed);
    let mut rx = BytesMut::with_capacity(16 * 1024);
    let mut buf = vec![0u8; 16 * 1024];

    while !session.is_publishing() {
        if control.should_stop() {
            return Err("the publish did not start before the deadline".into());
        }
        let written = flush(session.transmit(), &mut stream, control)?;
        stats.bytes.fetch_add(written, Ordering::Relaxed);
        if let Some(n) = read_some(&mut stream, &mut buf)? {
            rx.extend_from_slice(&buf[..n]);
        }
        handle_input(&mut session, &mut rx, control)?;
        session.handle_timeout(control.now());
    }

    for config in [avc_config(), aac_config()] {
        session.send_media(&config);
    }
    let written = flush(session.transmit(), &mut stream, control)?;
    stats.bytes.fetch_add(written, Ordering::Relaxed);
    stats.publishing.store(true, Ordering::Relaxed);

    let gop = live_gop();
    let start = Instant::now();
    let result = send_paced(
        &gop,
        start,
        &mut session,
        &mut stream,
        stats,
        control,
        (&mut rx, &mut buf),
    );
    // A polite end, so the server sees an unpublish rather than a reset; failures here do not
    // matter any more.
    session.stop();
    let _ = flush(session.transmit(), &mut stream, control);
    result
}

fn send_paced(
    gop: &[Frame],
    start: Instant,
    session: &mut RtmpClientSession,
    stream: &mut TcpStream,
    stats: &PublisherStats,
    control: &Control,
    (rx, buf): (&mut BytesMut, &mut [u8]),
) -> Result<(), String> {
    for round in 0i64.. {
        let offset = round * GOP_MILLIS;
        for frame in gop {
            let dts = frame.dts + offset;
            let due = start + Duration::from_millis(u64::try_from(dts).unwrap_or(0));
            loop {
                if control.should_stop() {
                    return Ok(());
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(super::net::POLL_INTERVAL));
            }
            let frame = Frame {
                dts,
                pts: frame.pts + offset,
                ..frame.clone()
            };
            if !session.send_media(&Media::Frame(frame)) {
                return Err("the session stopped publishing".into());
            }
            let written = flush(session.transmit(), stream, control)?;
            stats.bytes.fetch_add(written, Ordering::Relaxed);
            drain_replies(session, stream, rx, buf, control)?;
        }
    }
    Ok(())
}

/// Reads whatever the server sent (acknowledgements, pings) without blocking, so the session
/// answers it with the next flush.
fn drain_replies(
    session: &mut RtmpClientSession,
    stream: &mut TcpStream,
    rx: &mut BytesMut,
    buf: &mut [u8],
    control: &Control,
) -> Result<(), String> {
    stream
        .set_nonblocking(true)
        .map_err(|error| format!("set_nonblocking: {error}"))?;
    let mut result = Ok(());
    loop {
        match read_some(stream, buf) {
            Ok(Some(n)) => rx.extend_from_slice(&buf[..n]),
            Ok(None) => break,
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    stream
        .set_nonblocking(false)
        .map_err(|error| format!("set_nonblocking: {error}"))?;
    result?;
    handle_input(session, rx, control)
}

fn handle_input(
    session: &mut RtmpClientSession,
    rx: &mut BytesMut,
    control: &Control,
) -> Result<(), String> {
    session
        .handle_input(control.now(), rx)
        .map_err(|error| format!("publisher session: {error}"))?;
    while let Some(event) = session.poll_event() {
        match event {
            ClientEvent::Rejected { code, description } => {
                return Err(format!("publish rejected: {code} ({description})"))
            }
            ClientEvent::Closed { reason } => return Err(format!("publisher closed: {reason}")),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mediakit_core::media::Codec;

    #[test]
    fn the_live_gop_is_one_second_of_about_four_megabits_opening_with_the_idr() {
        let gop = live_gop();
        assert!(gop[0].keyframe && gop[0].codec == Codec::H264);
        assert_eq!(gop.iter().filter(|f| f.codec == Codec::H264).count(), 30);
        assert_eq!(gop.iter().filter(|f| f.codec == Codec::Aac).count(), 44);
        assert!(gop.windows(2).all(|w| w[0].dts <= w[1].dts));
        assert!(gop.iter().all(|f| f.dts < GOP_MILLIS));
        let bits: usize = gop.iter().map(|f| f.payload.len() * 8).sum();
        assert!((3_900_000..4_300_000).contains(&bits), "{bits} bit/s");
    }
}
