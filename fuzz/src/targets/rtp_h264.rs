//! Fuzz body for the H.264 RTP depacketizer, and the NAL-format checks it shares with H.265.

use bytes::{Bytes, BytesMut};
use mediakit_core::media::nal::length_prefixed;
use mediakit_core::media::Frame;
use mediakit_core::rtp::{
    DepacketizerConfig, NalDepacketizer, NalFormat, NalPacketizer, PacketizerConfig, RtpPacket,
    H264,
};

/// Splits fuzz input into the round-trip MTU (byte 0) and RTP packets (records of a
/// big-endian u16 length and the packet bytes; a short last record is taken as it is).
pub(crate) fn records(data: &[u8]) -> (usize, Vec<Bytes>) {
    let Some((&first, mut rest)) = data.split_first() else {
        return (200, Vec::new());
    };
    let mut packets = Vec::new();
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (packet, next) = tail.split_at(len);
        packets.push(Bytes::copy_from_slice(packet));
        rest = next;
    }
    (200 + 5 * usize::from(first), packets)
}

/// Whether frame times are close enough to 0 ms and to each other that stamping them again
/// at up to 90 kHz from origin 0 keeps unwrapping unambiguous (under 2^30 ticks).
pub(crate) fn times_are_close(frames: &[Frame]) -> bool {
    const LIMIT: u64 = 10_000_000;
    frames.first().is_none_or(|f| f.pts.unsigned_abs() < LIMIT)
        && frames
            .windows(2)
            .all(|pair| (pair[1].pts - pair[0].pts).unsigned_abs() < LIMIT)
}

fn depacketize<F: NalFormat>(
    packets: impl IntoIterator<Item = Bytes>,
    origin: Option<u32>,
) -> Vec<Frame> {
    let mut depacketizer = NalDepacketizer::<F>::new(&DepacketizerConfig {
        timestamp_origin: origin,
        ..DepacketizerConfig::default()
    });
    for packet in packets {
        if let Ok(packet) = RtpPacket::parse(&packet) {
            let _ = depacketizer.push(packet);
        }
    }
    let _ = depacketizer.flush();
    std::iter::from_fn(|| depacketizer.pull()).collect()
}

/// Pushes arbitrary packets; every frame out must be well-formed, and packetizing the frames
/// again and depacketizing the result must give the same frames.
pub(crate) fn nal_target<F: NalFormat>(data: &[u8]) {
    let (mtu, packets) = records(data);
    let frames = depacketize::<F>(packets, None);
    for frame in &frames {
        let nals: Vec<Bytes> = length_prefixed(&frame.payload, 4)
            .collect::<Result<_, _>>()
            .expect("frames are length-prefixed");
        assert!(!nals.is_empty());
        assert_eq!(frame.keyframe, nals.iter().any(|nal| F::is_keyframe(nal)));
        assert_eq!(frame.dts, frame.pts);
    }
    if frames.is_empty() || !times_are_close(&frames) {
        return;
    }
    let mut packetizer = NalPacketizer::<F>::new(PacketizerConfig {
        mtu,
        insert_parameter_sets: false,
        ..PacketizerConfig::default()
    });
    let (mut arena, mut out) = (BytesMut::new(), Vec::new());
    for frame in &frames {
        packetizer
            .packetize(frame, &mut arena, &mut out)
            .expect("depacketized frames packetize");
    }
    let again = depacketize::<F>(out.iter().map(|packet| packet.to_bytes()), Some(0));
    assert_eq!(
        again, frames,
        "packetize(depacketize(x)) changed the frames"
    );
}

/// H.264: see [`nal_target`].
pub fn rtp_h264(data: &[u8]) {
    nal_target::<H264>(data);
}
