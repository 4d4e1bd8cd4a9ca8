//! Fuzz body for the compound RTCP parser and writers.

use bytes::{Bytes, BytesMut};
use mediakit_core::rtcp::{parse_compound, RtcpPacket, MAX_PACKETS};

/// Parses arbitrary bytes as a compound RTCP packet; reports that parse must write out to
/// bytes that parse back to the same report.
pub fn rtcp(data: &[u8]) {
    let Ok(packets) = parse_compound(&Bytes::copy_from_slice(data)) else {
        return;
    };
    assert!(packets.len() <= MAX_PACKETS);
    for packet in packets {
        let mut out = BytesMut::new();
        match &packet {
            RtcpPacket::SenderReport(sr) => sr.encode(&mut out),
            RtcpPacket::ReceiverReport(rr) => rr.encode(&mut out),
            RtcpPacket::Bye(bye) => bye.encode(&mut out),
            _ => continue,
        }
        let again = parse_compound(&out.freeze()).expect("a written report parses");
        assert_eq!(again, [packet]);
    }
}
