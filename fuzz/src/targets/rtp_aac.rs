//! Fuzz body for the AAC (RFC 3640) RTP depacketizer.

use bytes::{Bytes, BytesMut};
use mediakit_core::media::Frame;
use mediakit_core::rtp::aac::MAX_AU_SIZE;
use mediakit_core::rtp::{
    AacDepacketizer, AacPacketizer, DepacketizerConfig, PacketizerConfig, RtpPacket,
};

use super::rtp_h264::{records, times_are_close};

const SAMPLE_RATE: u32 = 48_000;

fn depacketize(packets: impl IntoIterator<Item = Bytes>, origin: Option<u32>) -> Vec<Frame> {
    let config = DepacketizerConfig {
        timestamp_origin: origin,
        ..DepacketizerConfig::default()
    };
    let mut depacketizer = AacDepacketizer::new(&config, SAMPLE_RATE);
    for packet in packets {
        if let Ok(packet) = RtpPacket::parse(&packet) {
            let _ = depacketizer.push(packet);
        }
    }
    let _ = depacketizer.flush();
    std::iter::from_fn(|| depacketizer.pull()).collect()
}

/// Arbitrary packets in; frames out are bounded and non-empty, and survive a round trip
/// through the packetizer unchanged.
pub fn rtp_aac(data: &[u8]) {
    let (mtu, packets) = records(data);
    let frames = depacketize(packets, None);
    for frame in &frames {
        assert!(!frame.payload.is_empty() && frame.payload.len() <= MAX_AU_SIZE);
    }
    if !times_are_close(&frames) {
        return;
    }
    let config = PacketizerConfig {
        mtu,
        ..PacketizerConfig::default()
    };
    let mut packetizer = AacPacketizer::new(&config, SAMPLE_RATE);
    let (mut arena, mut out) = (BytesMut::new(), Vec::new());
    for frame in &frames {
        packetizer
            .packetize(frame, &mut arena, &mut out)
            .expect("depacketized frames packetize");
    }
    let again = depacketize(out.iter().map(|packet| packet.to_bytes()), Some(0));
    assert_eq!(
        again, frames,
        "packetize(depacketize(x)) changed the frames"
    );
}
