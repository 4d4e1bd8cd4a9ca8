//! AAC over RTP (RFC 3640 `mpeg4-generic`, mode AAC-hbr): an AU-headers section of 16-bit
//! headers (13-bit AU size, 3-bit index / index-delta) before the access units.
//!
//! We send one AU per packet, fragmented over several packets when it does not fit (§3.2.3:
//! every fragment carries the whole AU's size; the marker is on the last). We receive any
//! number of AUs per packet, and fragmented AUs.

use alloc::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use super::clock::RtpClock;
use super::reorder::{Ordered, ReorderBuffer};
use super::{
    header_segment, DepacketizerConfig, HeaderSource, PacketizerConfig, RtpError, RtpPacket,
    RtpPacketOut,
};
use crate::media::{Codec, Frame};
use crate::wire::Reader;

/// `sizeLength` of AAC-hbr (RFC 3640 §3.3.6).
pub const SIZE_LENGTH: u32 = 13;
/// `indexLength` and `indexDeltaLength` of AAC-hbr.
pub const INDEX_LENGTH: u32 = 3;
/// Bytes of one AU header.
pub const AU_HEADER_LEN: usize = 2;
/// The largest AU a 13-bit size can describe.
pub const MAX_AU_SIZE: usize = (1 << SIZE_LENGTH) - 1;
/// Samples per AAC frame, the RTP timestamp step between AUs of one packet.
pub const SAMPLES_PER_FRAME: u32 = 1024;

/// Packetizes raw AAC frames (see the module docs).
#[derive(Debug, Clone)]
pub struct AacPacketizer {
    max_payload: usize,
    headers: HeaderSource,
}

impl AacPacketizer {
    /// A packetizer for one AAC track whose RTP clock is its sampling rate.
    pub fn new(config: &PacketizerConfig, sample_rate: u32) -> Self {
        Self {
            max_payload: config.max_payload(),
            headers: HeaderSource::new(config, sample_rate),
        }
    }

    /// The sequence number of the next packet (for RTP-Info).
    pub fn next_sequence(&self) -> u16 {
        self.headers.sequence()
    }

    /// The mapping from media time to RTP timestamps.
    pub fn clock(&self) -> &RtpClock {
        self.headers.clock()
    }

    /// Appends the packets of one AAC frame to `out`, timestamped from `frame.dts`. The
    /// payload segments are slices of `frame.payload`.
    pub fn packetize(
        &mut self,
        frame: &Frame,
        arena: &mut BytesMut,
        out: &mut alloc::vec::Vec<RtpPacketOut>,
    ) -> Result<(), RtpError> {
        let size = frame.payload.len();
        if size > MAX_AU_SIZE {
            return Err(RtpError::TooLarge {
                what: "AAC access unit",
                len: size,
                max: MAX_AU_SIZE,
            });
        }
        let timestamp = self.headers.clock().timestamp(frame.dts);
        let chunk = self.max_payload - 2 - AU_HEADER_LEN;
        let mut offset = 0;
        while offset < size {
            let end = (offset + chunk).min(size);
            let header = self.headers.next(end == size, timestamp);
            let first = header_segment(&header, arena, 2 + AU_HEADER_LEN, |arena| {
                arena.put_u16(16);
                // Index 0; the size fits 13 bits (checked above).
                arena.put_u16((size as u16) << INDEX_LENGTH);
            });
            out.push(RtpPacketOut {
                header,
                segments: SmallVec::from_iter([first, frame.payload.slice(offset..end)]),
            });
            offset = end;
        }
        Ok(())
    }
}

/// An AU arriving in pieces.
#[derive(Debug)]
struct Fragment {
    timestamp: u32,
    size: usize,
    data: BytesMut,
}

/// Reassembles AAC frames from RTP packets (see the module docs).
#[derive(Debug)]
pub struct AacDepacketizer {
    reorder: ReorderBuffer,
    clock: RtpClock,
    fragment: Option<Fragment>,
    /// After a loss, fragments are dropped up to the end of the AU they belong to.
    resync: bool,
    ready: VecDeque<Frame>,
}

impl AacDepacketizer {
    /// A depacketizer for one AAC track whose RTP clock is its sampling rate.
    pub fn new(config: &DepacketizerConfig, sample_rate: u32) -> Self {
        Self {
            reorder: ReorderBuffer::new(config.reorder_window),
            clock: RtpClock::new(sample_rate, config.timestamp_origin),
            fragment: None,
            resync: false,
            ready: VecDeque::new(),
        }
    }

    /// Takes one received packet, in arrival order. An error describes this packet only.
    pub fn push(&mut self, packet: RtpPacket) -> Result<(), RtpError> {
        self.reorder.insert(packet);
        self.drain_reorder()
    }

    /// The next AAC frame, if any.
    pub fn pull(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// End of stream: releases packets held for reordering.
    pub fn flush(&mut self) -> Result<(), RtpError> {
        self.reorder.flush();
        self.drain_reorder()
    }

    /// The mapping of RTP timestamps to frame times.
    pub fn clock(&self) -> &RtpClock {
        &self.clock
    }

    fn drain_reorder(&mut self) -> Result<(), RtpError> {
        let mut result = Ok(());
        while let Some(item) = self.reorder.pop() {
            match item {
                Ordered::Lost(_) => {
                    self.fragment = None;
                    self.resync = true;
                }
                Ordered::Packet(packet) => {
                    if let Err(error) = self.process(&packet) {
                        self.fragment = None;
                        result = result.and(Err(error));
                    }
                }
            }
        }
        result
    }

    fn process(&mut self, packet: &RtpPacket) -> Result<(), RtpError> {
        const WHAT: &str = "AAC AU headers";
        let payload = &packet.payload;
        let mut reader = Reader::new(payload);
        let bits = reader.u16_be().ok_or(RtpError::Truncated {
            what: WHAT,
            offset: 0,
        })?;
        if bits == 0 || bits % 16 != 0 {
            return Err(RtpError::Invalid {
                what: WHAT,
                offset: 0,
            });
        }
        let count = usize::from(bits / 16);
        let headers = reader
            .take(count * AU_HEADER_LEN)
            .ok_or(RtpError::Truncated {
                what: WHAT,
                offset: 2,
            })?;
        let sizes = headers.chunks_exact(AU_HEADER_LEN).map(|h| {
            usize::from(u16::from_be_bytes(h.try_into().unwrap_or_default()) >> INDEX_LENGTH)
        });
        let timestamp = packet.header.timestamp;
        if let (1, Some(size)) = (count, sizes.clone().next()) {
            if size > reader.remaining() {
                let data = reader.rest();
                return self.fragment_piece(timestamp, size, data, packet.header.marker);
            }
        }
        self.fragment = None;
        self.resync = false;
        let mut step = 0u32;
        for size in sizes {
            let range = reader.take_range(size).ok_or(RtpError::Truncated {
                what: "AAC access unit",
                offset: reader.offset(),
            })?;
            if !range.is_empty() {
                self.emit(timestamp.wrapping_add(step), payload.slice(range));
            }
            step = step.wrapping_add(SAMPLES_PER_FRAME);
        }
        Ok(())
    }

    fn fragment_piece(
        &mut self,
        timestamp: u32,
        size: usize,
        data: &[u8],
        marker: bool,
    ) -> Result<(), RtpError> {
        if self.resync {
            // Mid-AU after a loss: wait for the piece that ends it.
            self.resync = !marker;
            return Ok(());
        }
        let fragment = match &mut self.fragment {
            Some(f) if f.timestamp == timestamp && f.size == size => f,
            _ => self.fragment.insert(Fragment {
                timestamp,
                size,
                data: BytesMut::with_capacity(size),
            }),
        };
        if fragment.data.len() + data.len() > size {
            return Err(RtpError::Invalid {
                what: "AAC fragment",
                offset: 0,
            });
        }
        fragment.data.extend_from_slice(data);
        if fragment.data.len() == size {
            if let Some(done) = self.fragment.take() {
                self.emit(done.timestamp, done.data.freeze());
            }
        } else if marker {
            // The last piece came and the AU is still short.
            self.fragment = None;
        }
        Ok(())
    }

    fn emit(&mut self, timestamp: u32, payload: Bytes) {
        let millis = self.clock.millis(timestamp);
        self.ready.push_back(Frame {
            codec: Codec::Aac,
            dts: millis,
            pts: millis,
            keyframe: true,
            payload,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::nal::testing::{assert_payload_is_borrowed, rtp};
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn aac(dts: i64, payload: Vec<u8>) -> Frame {
        Frame {
            codec: Codec::Aac,
            dts,
            pts: dts,
            keyframe: true,
            payload: Bytes::from(payload),
        }
    }

    #[test]
    fn two_access_units_in_one_packet() {
        let config = DepacketizerConfig {
            timestamp_origin: Some(0),
            ..DepacketizerConfig::default()
        };
        let mut depacketizer = AacDepacketizer::new(&config, 48_000);
        let payload = [0x00, 0x20, 0x00, 0x18, 0x00, 0x10, 1, 2, 3, 4, 5];
        depacketizer.push(rtp(9, 48_000, true, &payload)).unwrap();
        assert_eq!(depacketizer.pull(), Some(aac(1000, vec![1, 2, 3])));
        assert_eq!(depacketizer.pull(), Some(aac(1021, vec![4, 5])));
        assert_eq!(depacketizer.pull(), None);
    }

    #[test]
    fn fragments_a_large_access_unit() {
        let config = PacketizerConfig {
            mtu: 64,
            initial_timestamp: 5,
            ..PacketizerConfig::default()
        };
        let mut packetizer = AacPacketizer::new(&config, 44_100);
        let frame = aac(0, (0..100).collect());
        let (mut arena, mut out) = (BytesMut::new(), Vec::new());
        packetizer.packetize(&frame, &mut arena, &mut out).unwrap();
        let bytes: Vec<Bytes> = out.iter().map(RtpPacketOut::to_bytes).collect();
        // 52 bytes of payload per packet: 4 of AU headers, then 48, 48 and 4 bytes of the AU.
        assert_eq!(bytes.len(), 3);
        for (packet, (range, marker)) in
            bytes
                .iter()
                .zip([(0..48, false), (48..96, false), (96..100, true)])
        {
            assert_eq!(packet[1], (u8::from(marker) << 7) | 96);
            assert_eq!(&packet[4..8], &5u32.to_be_bytes());
            assert_eq!(&packet[12..16], &[0x00, 0x10, 0x03, 0x20]);
            assert_eq!(packet[16..], frame.payload[range]);
        }
        assert_payload_is_borrowed(&out, &frame.payload);
        let mut depacketizer = AacDepacketizer::new(
            &DepacketizerConfig {
                timestamp_origin: Some(5),
                ..DepacketizerConfig::default()
            },
            44_100,
        );
        for packet in &bytes {
            depacketizer
                .push(RtpPacket::parse(packet).unwrap())
                .unwrap();
        }
        assert_eq!(depacketizer.pull(), Some(frame));
        assert!(packetizer
            .packetize(&aac(0, vec![0; MAX_AU_SIZE + 1]), &mut arena, &mut out)
            .is_err());
    }

    #[test]
    fn malformed_au_headers_are_errors() {
        let mut depacketizer = AacDepacketizer::new(&DepacketizerConfig::default(), 44_100);
        let bad: [&[u8]; 5] = [
            &[],
            &[0],
            &[0, 0],
            &[0, 15, 0],
            &[0, 32, 0, 0x18, 0, 0x10, 1],
        ];
        for (i, payload) in bad.iter().enumerate() {
            assert!(
                depacketizer.push(rtp(i as u16, 0, true, payload)).is_err(),
                "{payload:?}"
            );
        }
    }

    fn packetize_all(frames: &[Frame], mtu: usize, rate: u32, origin: u32) -> Vec<Bytes> {
        let config = PacketizerConfig {
            mtu,
            initial_timestamp: origin,
            initial_sequence: origin as u16,
            ..PacketizerConfig::default()
        };
        let mut packetizer = AacPacketizer::new(&config, rate);
        let (mut arena, mut out) = (BytesMut::new(), Vec::new());
        for frame in frames {
            packetizer.packetize(frame, &mut arena, &mut out).unwrap();
        }
        out.iter().map(RtpPacketOut::to_bytes).collect()
    }

    fn stream() -> impl Strategy<Value = (Vec<Frame>, usize, u32, u32)> {
        (
            proptest::collection::vec(
                (1i64..100, proptest::collection::vec(any::<u8>(), 1..2000)),
                1..20,
            ),
            200usize..=1500,
            proptest::sample::select(crate::media::aac::SAMPLE_RATES.to_vec()),
            any::<u32>(),
        )
            .prop_map(|(specs, mtu, rate, origin)| {
                let mut dts = 0;
                let frames = specs
                    .into_iter()
                    .map(|(step, payload)| {
                        dts += step;
                        aac(dts, payload)
                    })
                    .collect();
                (frames, mtu, rate, origin)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn packetize_then_depacketize_is_the_identity((frames, mtu, rate, origin) in stream()) {
            let packets = packetize_all(&frames, mtu, rate, origin);
            let config = DepacketizerConfig { timestamp_origin: Some(origin), ..DepacketizerConfig::default() };
            let mut depacketizer = AacDepacketizer::new(&config, rate);
            for packet in &packets {
                depacketizer.push(RtpPacket::parse(packet).unwrap()).unwrap();
            }
            let out: Vec<Frame> = core::iter::from_fn(|| depacketizer.pull()).collect();
            prop_assert_eq!(out, frames);
        }

        #[test]
        fn loss_reordering_and_duplicates_never_corrupt(
            (frames, mtu, rate, origin) in stream(),
            damage in proptest::collection::vec((0u8..10, 0usize..8), 1..100),
        ) {
            let packets = packetize_all(&frames, mtu, rate, origin);
            let mut arrival: Vec<(usize, &Bytes)> = Vec::new();
            for (packet, &(action, displacement)) in packets.iter().zip(damage.iter().cycle()) {
                let position = arrival.len() + displacement;
                match action {
                    0 => {}
                    1 => arrival.extend([(position, packet), (position + 2, packet)]),
                    _ => arrival.push((position, packet)),
                }
            }
            arrival.sort_by_key(|(position, _)| *position);
            let config = DepacketizerConfig { timestamp_origin: Some(origin), ..DepacketizerConfig::default() };
            let mut depacketizer = AacDepacketizer::new(&config, rate);
            for (_, packet) in arrival {
                depacketizer.push(RtpPacket::parse(packet).unwrap()).unwrap();
            }
            depacketizer.flush().unwrap();
            let mut next = 0;
            while let Some(frame) = depacketizer.pull() {
                let offset = frames[next..].iter().position(|sent| *sent == frame);
                prop_assert!(offset.is_some(), "emitted a frame that was not sent");
                next += offset.unwrap_or(0) + 1;
            }
        }

        #[test]
        fn garbage_never_panics(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..40)) {
            let mut depacketizer = AacDepacketizer::new(&DepacketizerConfig::default(), 48_000);
            for (i, payload) in packets.iter().enumerate() {
                let _ = depacketizer.push(rtp(i as u16, (i / 2) as u32, i % 3 == 0, payload));
            }
            let _ = depacketizer.flush();
            while let Some(frame) = depacketizer.pull() {
                prop_assert!(frame.payload.len() <= MAX_AU_SIZE);
            }
        }
    }

    /// Writes the seed corpus of the `rtp_aac` fuzz target (byte 0: round-trip MTU selector;
    /// then records of a big-endian u16 length and one RTP packet). Run with
    /// `cargo test -p mediakit-core write_rtp_aac_corpus -- --ignored`.
    #[cfg(feature = "std")]
    #[test]
    #[ignore]
    fn write_rtp_aac_corpus() {
        extern crate std;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rtp_aac");
        std::fs::create_dir_all(&dir).unwrap();
        let frames: Vec<Frame> = (0..4)
            .map(|i| aac(i * 23, vec![i as u8; 150 + 200 * i as usize]))
            .collect();
        for (name, mtu) in [("small_mtu_fragments", 200), ("one_au_per_packet", 1400)] {
            let mut data = vec![((mtu - 200) / 5) as u8];
            for packet in packetize_all(&frames, mtu, 44_100, u32::MAX - 2000) {
                data.extend_from_slice(&(packet.len() as u16).to_be_bytes());
                data.extend_from_slice(&packet);
            }
            std::fs::write(dir.join(name), data).unwrap();
        }
        // Two AUs in one packet, as other senders do.
        let two = [
            0x80, 0xe1, 0, 1, 0, 0, 4, 0, 0, 0, 0, 2, 0x00, 0x20, 0x00, 0x18, 0x00, 0x10, 1, 2, 3,
            4, 5,
        ];
        let mut data = vec![0, 0, two.len() as u8];
        data.extend_from_slice(&two);
        std::fs::write(dir.join("two_aus_per_packet"), data).unwrap();
    }
}
