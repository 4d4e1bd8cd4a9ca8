//! What H.264 (RFC 6184) and H.265 (RFC 7798) packetization share: single NAL unit packets,
//! aggregation packets (STAP-A / AP) and fragmentation units (FU-A / FU). The codec files
//! supply the header layouts through [`NalFormat`]; the packetizer and depacketizer here do
//! the rest.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use super::clock::RtpClock;
use super::reorder::{Ordered, ReorderBuffer};
use super::{
    header_segment, DepacketizerConfig, HeaderSource, PacketizerConfig, RtpError, RtpPacket,
    RtpPacketOut, VIDEO_CLOCK_RATE,
};
use crate::media::nal::length_prefixed;
use crate::media::{Codec, Frame};

/// Which parameter set a NAL unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterSetKind {
    /// H.265 video parameter set.
    Vps,
    /// Sequence parameter set.
    Sps,
    /// Picture parameter set.
    Pps,
}

/// The NAL units one RTP payload carries, as ranges of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadUnits {
    /// Whole NAL units: a single NAL unit packet or an aggregation packet.
    Whole(SmallVec<[Range<usize>; 8]>),
    /// A piece of one NAL unit.
    Fragment {
        /// The S bit: this piece begins the NAL unit.
        start: bool,
        /// The E bit: this piece ends it.
        end: bool,
        /// The NAL unit header rebuilt from the fragmentation headers (the first
        /// [`NalFormat::NAL_HEADER_LEN`] bytes are used).
        nal_header: [u8; 2],
        /// The piece of NAL unit payload (after its header).
        data: Range<usize>,
    },
}

/// A NAL-based RTP payload format: the codec-specific bits of packetizing and depacketizing.
pub trait NalFormat: core::fmt::Debug {
    /// The codec of the frames.
    const CODEC: Codec;
    /// Name used in errors.
    const NAME: &'static str;
    /// Bytes in a NAL unit header.
    const NAL_HEADER_LEN: usize;
    /// Bytes of payload header an aggregation packet starts with.
    const AGGREGATION_HEADER_LEN: usize;
    /// Bytes of payload header before each fragment's data.
    const FRAGMENT_HEADER_LEN: usize;

    /// Whether this NAL unit makes its access unit a random-access point.
    fn is_keyframe(nal: &[u8]) -> bool;
    /// Which parameter set this NAL unit is, if any.
    fn parameter_set(nal: &[u8]) -> Option<ParameterSetKind>;
    /// Whether only the first NAL unit of an access unit can be this one (an access unit
    /// delimiter, or the parameter set that comes first).
    fn begins_access_unit(nal: &[u8]) -> bool;
    /// A looser [`NalFormat::begins_access_unit`] for streams without in-band parameter sets:
    /// also SEI and the first slice of a picture (needs the first byte after the header).
    fn may_begin_access_unit(nal: &[u8]) -> bool;
    /// Whether a NAL unit of this header can travel in a single NAL unit packet: its type is
    /// not one the payload format reserves, and the header is whole.
    fn is_single_nal(nal: &[u8]) -> bool;
    /// Writes an aggregation packet's payload header for these NAL units.
    fn write_aggregation_header(nals: &[Bytes], out: &mut BytesMut);
    /// Writes the fragmentation headers for a piece of the NAL unit with this header.
    fn write_fragment_header(nal_header: &[u8], start: bool, end: bool, out: &mut BytesMut);
    /// Splits a received payload into NAL units or a fragment.
    fn parse_payload(payload: &[u8]) -> Result<PayloadUnits, RtpError>;
}

/// Reads the 16-bit-size-prefixed NAL units of an aggregation packet after its header (no
/// DON fields: `sprop-max-don-diff` 0 / packetization-mode 1). Each unit must be one that
/// could travel alone (no aggregation packet inside another).
pub(crate) fn aggregated_units<F: NalFormat>(
    payload: &[u8],
    what: &'static str,
) -> Result<PayloadUnits, RtpError> {
    let mut reader = crate::wire::Reader::new(payload);
    let mut units = SmallVec::new();
    reader
        .skip(F::AGGREGATION_HEADER_LEN)
        .ok_or(RtpError::Truncated {
            what,
            offset: payload.len(),
        })?;
    while !reader.is_empty() {
        let offset = reader.offset();
        let truncated = RtpError::Truncated { what, offset };
        let len = usize::from(reader.u16_be().ok_or(truncated.clone())?);
        let range = reader.take_range(len).ok_or(truncated)?;
        if !F::is_single_nal(payload.get(range.clone()).unwrap_or_default()) {
            return Err(RtpError::Invalid { what, offset });
        }
        units.push(range);
    }
    Ok(PayloadUnits::Whole(units))
}

/// Checks a fragmentation unit's rebuilt NAL unit header and wraps it up.
pub(crate) fn fragment<F: NalFormat>(
    fu_header: u8,
    nal_header: [u8; 2],
    data: Range<usize>,
    what: &'static str,
) -> Result<PayloadUnits, RtpError> {
    if !F::is_single_nal(&nal_header) {
        return Err(RtpError::Invalid { what, offset: 1 });
    }
    Ok(PayloadUnits::Fragment {
        start: fu_header & 0x80 != 0,
        end: fu_header & 0x40 != 0,
        nal_header,
        data,
    })
}

/// Packetizes length-prefixed access units into RTP packets (see the module docs).
#[derive(Debug, Clone)]
pub struct NalPacketizer<F> {
    config: PacketizerConfig,
    headers: HeaderSource,
    parameter_sets: Vec<Bytes>,
    format: PhantomData<F>,
}

impl<F: NalFormat> NalPacketizer<F> {
    /// A packetizer for one video track.
    pub fn new(config: PacketizerConfig) -> Self {
        Self {
            headers: HeaderSource::new(&config, VIDEO_CLOCK_RATE),
            config,
            parameter_sets: Vec::new(),
            format: PhantomData,
        }
    }

    /// Sets the parameter sets sent before keyframes that lack their own (in decoding order:
    /// VPS, SPS, PPS), when the config asks for it.
    pub fn set_parameter_sets(&mut self, sets: impl IntoIterator<Item = Bytes>) {
        self.parameter_sets = sets.into_iter().filter(|set| !set.is_empty()).collect();
    }

    /// The sequence number of the next packet (for RTP-Info).
    pub fn next_sequence(&self) -> u16 {
        self.headers.sequence()
    }

    /// The mapping from media time to RTP timestamps (for RTP-Info and sender reports).
    pub fn clock(&self) -> &RtpClock {
        self.headers.clock()
    }

    /// Appends the packets of one access unit to `out`. Headers go into `arena`; the payload
    /// segments are slices of `frame.payload`. The RTP timestamp is taken from `frame.pts`.
    pub fn packetize(
        &mut self,
        frame: &Frame,
        arena: &mut BytesMut,
        out: &mut Vec<RtpPacketOut>,
    ) -> Result<(), RtpError> {
        let mut nals: SmallVec<[Bytes; 16]> = SmallVec::new();
        for nal in length_prefixed(&frame.payload, 4) {
            let nal = nal.map_err(|_| RtpError::Invalid {
                what: "length-prefixed access unit",
                offset: 0,
            })?;
            if !nal.is_empty() {
                nals.push(nal);
            }
        }
        if self.config.insert_parameter_sets
            && frame.keyframe
            && !nals.iter().any(|nal| F::parameter_set(nal).is_some())
        {
            nals.insert_many(0, self.parameter_sets.iter().cloned());
        }
        let timestamp = self.headers.clock().timestamp(frame.pts);
        let max = self.config.max_payload();
        let mut index = 0;
        while let Some(nal) = nals.get(index) {
            if nal.len() > max {
                let last = index + 1 == nals.len();
                self.fragment(nal, last, timestamp, arena, out);
                index += 1;
                continue;
            }
            // Gather following NAL units while they fit one aggregation packet.
            let mut end = index;
            let mut size = F::AGGREGATION_HEADER_LEN;
            while let Some(next) = nals.get(end) {
                size += 2 + next.len();
                if size > max {
                    break;
                }
                end += 1;
            }
            let last = end.max(index + 1) == nals.len();
            match nals.get(index..end) {
                Some(group) if group.len() >= 2 => {
                    self.aggregate(group, last, timestamp, arena, out);
                    index = end;
                }
                _ => {
                    let header = self.headers.next(last, timestamp);
                    let first = header_segment(&header, arena, 0, |_| {});
                    out.push(RtpPacketOut {
                        header,
                        segments: SmallVec::from_iter([first, nal.clone()]),
                    });
                    index += 1;
                }
            }
        }
        Ok(())
    }

    fn aggregate(
        &mut self,
        nals: &[Bytes],
        last: bool,
        timestamp: u32,
        arena: &mut BytesMut,
        out: &mut Vec<RtpPacketOut>,
    ) {
        let header = self.headers.next(last, timestamp);
        let mut segments = SmallVec::new();
        for (i, nal) in nals.iter().enumerate() {
            // The packetizer only aggregates units that fit one packet, so sizes fit u16.
            let size = u16::try_from(nal.len()).unwrap_or(u16::MAX);
            let prefix = if i == 0 {
                header_segment(&header, arena, F::AGGREGATION_HEADER_LEN + 2, |arena| {
                    F::write_aggregation_header(nals, arena);
                    arena.put_u16(size);
                })
            } else {
                arena.reserve(2);
                arena.put_u16(size);
                arena.split().freeze()
            };
            segments.push(prefix);
            segments.push(nal.clone());
        }
        out.push(RtpPacketOut { header, segments });
    }

    fn fragment(
        &mut self,
        nal: &Bytes,
        last: bool,
        timestamp: u32,
        arena: &mut BytesMut,
        out: &mut Vec<RtpPacketOut>,
    ) {
        let nal_header = nal.get(..F::NAL_HEADER_LEN).unwrap_or_default();
        let chunk = self.config.max_payload() - F::FRAGMENT_HEADER_LEN;
        let data_len = nal.len().saturating_sub(F::NAL_HEADER_LEN);
        let mut offset = 0;
        while offset < data_len {
            let end = (offset + chunk).min(data_len);
            let (start, stop) = (offset == 0, end == data_len);
            let header = self.headers.next(last && stop, timestamp);
            let first = header_segment(&header, arena, F::FRAGMENT_HEADER_LEN, |arena| {
                F::write_fragment_header(nal_header, start, stop, arena);
            });
            let data = nal.slice(F::NAL_HEADER_LEN + offset..F::NAL_HEADER_LEN + end);
            out.push(RtpPacketOut {
                header,
                segments: SmallVec::from_iter([first, data]),
            });
            offset = end;
        }
    }
}

/// The parameter sets last seen in-band, each as sent (no start code or length prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterSets {
    /// H.265 video parameter set.
    pub vps: Option<Bytes>,
    /// Sequence parameter set.
    pub sps: Option<Bytes>,
    /// Picture parameter set.
    pub pps: Option<Bytes>,
    /// Incremented each time one of them changes, so a session can tell when to rebuild the
    /// decoder configuration record.
    pub generation: u64,
}

/// The access unit being reassembled.
#[derive(Debug, Default)]
struct AccessUnit {
    /// Length-prefixed NAL units so far.
    data: BytesMut,
    /// The RTP timestamp, while an access unit is open.
    timestamp: Option<u32>,
    keyframe: bool,
    /// Something of it was lost or malformed: it will be dropped.
    damaged: bool,
    /// Where the length prefix of a NAL unit being defragmented sits in `data`.
    fragment_at: Option<usize>,
    /// The unit follows a loss, so its first NAL unit must show it is the first.
    check_start: bool,
}

/// Reassembles RTP packets into length-prefixed access units (see the module docs).
///
/// Frames come out in RTP (decoding) order with `dts == pts`, both from the RTP timestamp:
/// RTP carries no decoding time.
#[derive(Debug)]
pub struct NalDepacketizer<F> {
    max_access_unit: usize,
    reorder: ReorderBuffer,
    clock: RtpClock,
    unit: AccessUnit,
    /// Packets were lost since the last one processed.
    gap: bool,
    need_keyframe: bool,
    /// The stream has carried parameter sets in-band, so a keyframe after a loss must start
    /// with them (or an access unit delimiter) rather than with an SEI or its first slice.
    in_band_parameter_sets: bool,
    parameter_sets: ParameterSets,
    ready: VecDeque<Frame>,
    format: PhantomData<F>,
}

impl<F: NalFormat> NalDepacketizer<F> {
    /// A depacketizer for one video track.
    pub fn new(config: &DepacketizerConfig) -> Self {
        Self {
            max_access_unit: config.max_access_unit,
            reorder: ReorderBuffer::new(config.reorder_window),
            clock: RtpClock::new(VIDEO_CLOCK_RATE, config.timestamp_origin),
            // The first packet is trusted to begin an access unit: a publisher over TCP starts
            // clean, and a keyframe is required first anyway.
            unit: AccessUnit::default(),
            gap: false,
            need_keyframe: true,
            in_band_parameter_sets: false,
            parameter_sets: ParameterSets::default(),
            ready: VecDeque::new(),
            format: PhantomData,
        }
    }

    /// Takes one received packet, in arrival order. An error describes this packet (the
    /// access unit it belonged to is dropped); the depacketizer remains usable.
    pub fn push(&mut self, packet: RtpPacket) -> Result<(), RtpError> {
        self.reorder.insert(packet);
        self.drain_reorder()
    }

    /// The next complete access unit, if any.
    pub fn pull(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// End of stream (or a timeout decided by the caller): releases packets held for
    /// reordering and finishes the open access unit if it is whole.
    pub fn flush(&mut self) -> Result<(), RtpError> {
        self.reorder.flush();
        let result = self.drain_reorder();
        self.finish();
        result
    }

    /// The parameter sets seen in-band so far.
    pub fn parameter_sets(&self) -> &ParameterSets {
        &self.parameter_sets
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
                    self.gap = true;
                    self.need_keyframe = true;
                }
                Ordered::Packet(packet) => {
                    if let Err(error) = self.process(&packet) {
                        result = result.and(Err(error));
                    }
                }
            }
        }
        result
    }

    fn process(&mut self, packet: &RtpPacket) -> Result<(), RtpError> {
        let timestamp = packet.header.timestamp;
        if self.unit.timestamp != Some(timestamp) {
            if self.unit.timestamp.is_some() {
                // A loss before a new timestamp may have taken the open unit's tail.
                self.unit.damaged |= self.gap;
                self.finish();
            }
            self.unit.timestamp = Some(timestamp);
            self.unit.check_start |= self.gap;
        } else {
            // Lost packets between two of the same timestamp were part of this unit.
            self.unit.damaged |= self.gap;
        }
        self.gap = false;
        let result = match F::parse_payload(&packet.payload) {
            Ok(PayloadUnits::Whole(ranges)) => ranges.into_iter().try_for_each(|range| {
                self.whole_nal(packet.payload.get(range).unwrap_or_default())
            }),
            Ok(PayloadUnits::Fragment {
                start,
                end,
                nal_header,
                data,
            }) => {
                let header = nal_header.get(..F::NAL_HEADER_LEN).unwrap_or_default();
                let data = packet.payload.get(data).unwrap_or_default();
                self.fragment(start, end, header, data)
            }
            Err(error) => Err(error),
        };
        if result.is_err() {
            self.damage();
        }
        if packet.header.marker {
            self.finish();
        }
        result
    }

    fn damage(&mut self) {
        self.unit.damaged = true;
        self.unit.data.clear();
        self.unit.fragment_at = None;
    }

    /// Checks the first NAL unit of a unit that follows a loss.
    fn check_start(&mut self, nal: &[u8]) {
        if core::mem::take(&mut self.unit.check_start) {
            let first = F::begins_access_unit(nal)
                || (!self.in_band_parameter_sets && F::may_begin_access_unit(nal));
            if !first {
                self.damage();
            }
        }
    }

    fn append(&mut self, pieces: &[&[u8]]) -> Result<(), RtpError> {
        let len = self.unit.data.len() + pieces.iter().map(|piece| piece.len()).sum::<usize>();
        if len > self.max_access_unit {
            return Err(RtpError::TooLarge {
                what: "access unit",
                len,
                max: self.max_access_unit,
            });
        }
        for piece in pieces {
            self.unit.data.extend_from_slice(piece);
        }
        Ok(())
    }

    fn whole_nal(&mut self, nal: &[u8]) -> Result<(), RtpError> {
        if self.unit.fragment_at.is_some() {
            // A fragmented unit was cut short.
            self.damage();
        }
        self.check_start(nal);
        if self.unit.damaged {
            return Ok(());
        }
        let len = u32::try_from(nal.len()).unwrap_or(u32::MAX).to_be_bytes();
        self.append(&[&len[..], nal])?;
        self.unit.keyframe |= F::is_keyframe(nal);
        Ok(())
    }

    fn fragment(
        &mut self,
        start: bool,
        end: bool,
        nal_header: &[u8],
        data: &[u8],
    ) -> Result<(), RtpError> {
        if start {
            if self.unit.fragment_at.is_some() {
                self.damage();
            }
            let mut first_bytes: SmallVec<[u8; 4]> = SmallVec::from_slice(nal_header);
            first_bytes.extend_from_slice(data.get(..2).unwrap_or(data));
            self.check_start(&first_bytes);
            if self.unit.damaged {
                return Ok(());
            }
            let at = self.unit.data.len();
            self.append(&[&[0u8; 4][..], nal_header, data])?;
            self.unit.fragment_at = Some(at);
            // The start piece's header is the one kept; later pieces' copies may disagree.
            self.unit.keyframe |= F::is_keyframe(nal_header);
        } else {
            if self.unit.fragment_at.is_none() {
                // The start fragment is missing.
                self.damage();
            }
            if self.unit.damaged {
                return Ok(());
            }
            self.append(&[data])?;
        }
        if let (true, Some(at)) = (end, self.unit.fragment_at) {
            let len = self.unit.data.len() - at - 4;
            if let Some(prefix) = self.unit.data.get_mut(at..at + 4) {
                prefix.copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
            }
            self.unit.fragment_at = None;
        }
        Ok(())
    }

    /// Closes the open access unit, emitting it if it is whole and decodable.
    fn finish(&mut self) {
        let unit = core::mem::take(&mut self.unit);
        let Some(timestamp) = unit.timestamp else {
            self.unit.check_start = unit.check_start;
            return;
        };
        let millis = self.clock.millis(timestamp);
        let whole = !unit.damaged && unit.fragment_at.is_none() && !unit.data.is_empty();
        if !whole || (self.need_keyframe && !unit.keyframe) {
            return;
        }
        self.need_keyframe = false;
        let payload = unit.data.freeze();
        self.capture_parameter_sets(&payload);
        self.ready.push_back(Frame {
            codec: F::CODEC,
            dts: millis,
            pts: millis,
            keyframe: unit.keyframe,
            payload,
        });
    }

    fn capture_parameter_sets(&mut self, payload: &Bytes) {
        let mut changed = false;
        for nal in length_prefixed(payload, 4).flatten() {
            let slot = match F::parameter_set(&nal) {
                Some(ParameterSetKind::Vps) => &mut self.parameter_sets.vps,
                Some(ParameterSetKind::Sps) => &mut self.parameter_sets.sps,
                Some(ParameterSetKind::Pps) => &mut self.parameter_sets.pps,
                None => continue,
            };
            self.in_band_parameter_sets = true;
            if slot.as_ref() != Some(&nal) {
                *slot = Some(nal);
                changed = true;
            }
        }
        if changed {
            self.parameter_sets.generation += 1;
        }
    }
}

/// Generators and checks shared by the H.264 and H.265 tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::rtp::{PacketizerConfig, RtpHeader};
    use alloc::vec;
    use proptest::prelude::*;

    /// A NAL unit of a generated frame; the codec's test turns it into bytes.
    #[derive(Debug, Clone)]
    pub(crate) enum NalSpec {
        Vps(Vec<u8>),
        Sps(Vec<u8>),
        Pps(Vec<u8>),
        Slice {
            keyframe: bool,
            first: bool,
            body: Vec<u8>,
        },
    }

    /// A generated stream: frames as NAL specs with their time steps, and packetizer settings.
    #[derive(Debug, Clone)]
    pub(crate) struct StreamCase {
        frames: Vec<(bool, Vec<NalSpec>)>,
        steps: Vec<i64>,
        start: i64,
        mtu: usize,
        initial_sequence: u16,
        initial_timestamp: u32,
    }

    /// A stream plus how to damage its middle: per packet an action (0 drop, 1 duplicate,
    /// otherwise keep) and a reordering displacement.
    #[derive(Debug, Clone)]
    pub(crate) struct LossyCase {
        stream: StreamCase,
        /// Index of the keyframe from which on everything is delivered intact.
        tail: usize,
        damage: Vec<(u8, usize)>,
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(any::<u8>(), 0..2500),
        ]
    }

    fn frame(keyframe: bool) -> impl Strategy<Value = (bool, Vec<NalSpec>)> {
        let sets = (
            proptest::collection::vec(any::<u8>(), 1..20),
            proptest::collection::vec(any::<u8>(), 3..30),
            proptest::collection::vec(any::<u8>(), 1..10),
        );
        (sets, proptest::collection::vec(body(), 1..4)).prop_map(move |((v, s, p), bodies)| {
            let mut nals = Vec::new();
            if keyframe {
                nals.extend([NalSpec::Vps(v), NalSpec::Sps(s), NalSpec::Pps(p)]);
            }
            for (i, body) in bodies.into_iter().enumerate() {
                nals.push(NalSpec::Slice {
                    keyframe,
                    first: i == 0,
                    body,
                });
            }
            (keyframe, nals)
        })
    }

    pub(crate) fn stream() -> impl Strategy<Value = StreamCase> {
        let frames = proptest::collection::vec(any::<bool>(), 1..12).prop_flat_map(|keys| {
            keys.into_iter()
                .enumerate()
                .map(|(i, key)| frame(i == 0 || key))
                .collect::<Vec<_>>()
        });
        (
            frames,
            proptest::collection::vec(1i64..100, 12),
            0i64..20_000_000,
            200usize..=1500,
            any::<u16>(),
            any::<u32>(),
        )
            .prop_map(
                |(frames, steps, start, mtu, initial_sequence, initial_timestamp)| StreamCase {
                    frames,
                    steps,
                    start,
                    mtu,
                    initial_sequence,
                    initial_timestamp,
                },
            )
    }

    pub(crate) fn lossy_stream() -> impl Strategy<Value = LossyCase> {
        stream()
            .prop_filter("needs two frames", |case| case.frames.len() >= 2)
            .prop_flat_map(|stream| {
                let n = stream.frames.len();
                (
                    Just(stream),
                    1..n,
                    proptest::collection::vec((0u8..10, 0usize..8), 1..300),
                )
            })
            .prop_map(|(mut stream, tail, damage)| {
                // The tail starts with a keyframe, with its parameter sets.
                let old = core::mem::take(&mut stream.frames[tail].1);
                let bodies: Vec<Vec<u8>> = old
                    .into_iter()
                    .filter_map(|nal| match nal {
                        NalSpec::Slice { body, .. } => Some(body),
                        _ => None,
                    })
                    .collect();
                let mut nals = vec![
                    NalSpec::Vps(vec![1, 2]),
                    NalSpec::Sps(vec![3, 4, 5]),
                    NalSpec::Pps(vec![6]),
                ];
                for (i, body) in bodies.into_iter().enumerate() {
                    nals.push(NalSpec::Slice {
                        keyframe: true,
                        first: i == 0,
                        body,
                    });
                }
                stream.frames[tail] = (true, nals);
                LossyCase {
                    stream,
                    tail,
                    damage,
                }
            })
    }

    fn frames<F: NalFormat>(case: &StreamCase, nal: fn(&NalSpec) -> Vec<u8>) -> Vec<Frame> {
        let mut pts = case.start;
        case.frames
            .iter()
            .zip(case.steps.iter().cycle())
            .map(|((keyframe, nals), step)| {
                let units: Vec<Vec<u8>> = nals.iter().map(nal).filter(|u| !u.is_empty()).collect();
                let frame = Frame {
                    codec: F::CODEC,
                    dts: pts,
                    pts,
                    keyframe: *keyframe,
                    payload: crate::media::nal::to_length_prefixed(units.iter().map(|u| &u[..])),
                };
                pts += step;
                frame
            })
            .collect()
    }

    /// Packetizes every frame; returns the packets and, per frame, its first packet's index.
    fn packetize<F: NalFormat>(case: &StreamCase, frames: &[Frame]) -> (Vec<Bytes>, Vec<usize>) {
        let mut packetizer = NalPacketizer::<F>::new(PacketizerConfig {
            mtu: case.mtu,
            initial_sequence: case.initial_sequence,
            initial_timestamp: case.initial_timestamp,
            ..PacketizerConfig::default()
        });
        let (mut arena, mut out, mut starts) = (BytesMut::new(), Vec::new(), Vec::new());
        for frame in frames {
            starts.push(out.len());
            packetizer.packetize(frame, &mut arena, &mut out).unwrap();
            assert_payload_is_borrowed(&out[*starts.last().unwrap()..], &frame.payload);
        }
        for packet in &out {
            assert!(packet.len() <= case.mtu, "{} > {}", packet.len(), case.mtu);
        }
        (out.iter().map(RtpPacketOut::to_bytes).collect(), starts)
    }

    fn depacketizer<F: NalFormat>(case: &StreamCase) -> NalDepacketizer<F> {
        NalDepacketizer::new(&DepacketizerConfig {
            timestamp_origin: Some(case.initial_timestamp),
            ..DepacketizerConfig::default()
        })
    }

    fn drain<F: NalFormat>(depacketizer: &mut NalDepacketizer<F>) -> Vec<Frame> {
        core::iter::from_fn(|| depacketizer.pull()).collect()
    }

    /// A parsed packet with these header fields (payload type 96, SSRC 1).
    pub(crate) fn rtp(sequence: u16, timestamp: u32, marker: bool, payload: &[u8]) -> RtpPacket {
        let mut packet = vec![0x80, (u8::from(marker) << 7) | 96];
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0, 1]);
        packet.extend_from_slice(payload);
        RtpPacket::parse(&Bytes::from(packet)).unwrap()
    }

    /// An access unit of these NAL units with 4-byte length prefixes.
    pub(crate) fn length_prefixed(nals: &[&[u8]]) -> Bytes {
        crate::media::nal::to_length_prefixed(nals.iter().copied())
    }

    /// The properties every NAL format must have, as tests in the calling module, plus an
    /// ignored test that writes the format's fuzz seed corpus.
    macro_rules! nal_format_properties {
        ($format:ty, $nal:expr, $corpus:literal, $write_corpus:ident) => {
            proptest::proptest! {
                #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

                #[test]
                fn packetize_then_depacketize_is_the_identity(case in testing::stream()) {
                    testing::check_identity::<$format>(&case, $nal);
                }

                #[test]
                fn loss_reordering_and_duplicates_never_corrupt(case in testing::lossy_stream()) {
                    testing::check_lossy::<$format>(&case, $nal);
                }

                #[test]
                fn garbage_never_panics(packets in proptest::collection::vec(
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..40)) {
                    testing::push_garbage::<$format>(&packets);
                }
            }

            #[cfg(feature = "std")]
            #[test]
            #[ignore]
            fn $write_corpus() {
                testing::write_corpus::<$format>($corpus, $nal);
            }
        };
    }
    pub(crate) use nal_format_properties;

    /// Asserts that every segment after each packet's header lies inside `payload`.
    pub(crate) fn assert_payload_is_borrowed(packets: &[RtpPacketOut], payload: &Bytes) {
        let range = payload.as_ptr_range();
        for packet in packets {
            for segment in packet.segments.iter().skip(1).filter(|s| s.len() > 2) {
                let inner = segment.as_ptr_range();
                assert!(
                    range.start <= inner.start && inner.end <= range.end,
                    "a payload segment was copied"
                );
            }
        }
    }

    pub(crate) fn check_identity<F: NalFormat>(case: &StreamCase, nal: fn(&NalSpec) -> Vec<u8>) {
        let frames = frames::<F>(case, nal);
        let (packets, _) = packetize::<F>(case, &frames);
        let mut depacketizer = depacketizer::<F>(case);
        for packet in &packets {
            depacketizer
                .push(RtpPacket::parse(packet).unwrap())
                .unwrap();
        }
        // Every frame ends with a marker: nothing may wait for a flush.
        assert_eq!(drain(&mut depacketizer), frames);
        depacketizer.flush().unwrap();
        assert_eq!(depacketizer.pull(), None);
    }

    pub(crate) fn check_lossy<F: NalFormat>(case: &LossyCase, nal: fn(&NalSpec) -> Vec<u8>) {
        let frames = frames::<F>(&case.stream, nal);
        let (packets, starts) = packetize::<F>(&case.stream, &frames);
        let (first_end, tail_start) = (starts[1], starts[case.tail]);
        // The first frame arrives intact (see the depacketizer on joining mid-stream), the
        // middle is damaged, the tail from a keyframe on arrives intact.
        let mut middle: Vec<(usize, &Bytes)> = Vec::new();
        let mut damage = case.damage.iter().cycle();
        for packet in &packets[first_end..tail_start] {
            let &(action, displacement) = damage.next().unwrap();
            let position = middle.len() + displacement;
            match action {
                0 => {}
                1 => middle.extend([(position, packet), (position + 3, packet)]),
                _ => middle.push((position, packet)),
            }
        }
        middle.sort_by_key(|(position, _)| *position);
        let arrival = packets[..first_end]
            .iter()
            .chain(middle.into_iter().map(|(_, packet)| packet))
            .chain(&packets[tail_start..]);
        let mut depacketizer = depacketizer::<F>(&case.stream);
        for packet in arrival {
            depacketizer
                .push(RtpPacket::parse(packet).unwrap())
                .unwrap();
        }
        depacketizer.flush().unwrap();
        let out = drain(&mut depacketizer);
        // Every frame out is one that was sent, in order, and the tail is complete.
        let mut next = 0;
        for frame in &out {
            let found = frames[next..].iter().position(|sent| sent == frame);
            let Some(offset) = found else {
                panic!("emitted a frame that was not sent: {frame:?}");
            };
            next += offset + 1;
        }
        assert!(
            out.ends_with(&frames[case.tail..]),
            "did not resume at the keyframe"
        );
        assert_eq!(out.first(), frames.first());
    }

    pub(crate) fn push_garbage<F: NalFormat>(packets: &[Vec<u8>]) {
        let mut depacketizer = NalDepacketizer::<F>::new(&DepacketizerConfig::default());
        for (i, payload) in packets.iter().enumerate() {
            let header = RtpHeader {
                marker: payload.first().is_some_and(|b| b & 1 == 1),
                sequence: (i as u16).wrapping_mul(if i % 5 == 0 { 7 } else { 1 }),
                timestamp: (i / 3) as u32 * 3000,
                ..RtpHeader::default()
            };
            let _ = depacketizer.push(RtpPacket {
                header,
                payload: Bytes::copy_from_slice(payload),
            });
        }
        let _ = depacketizer.flush();
        while let Some(frame) = depacketizer.pull() {
            let nals: Vec<Bytes> = super::length_prefixed(&frame.payload, 4)
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(!nals.is_empty());
            assert_eq!(frame.keyframe, nals.iter().any(|nal| F::is_keyframe(nal)));
        }
    }

    /// Writes seed files for a NAL fuzz target: byte 0 picks the round-trip MTU, then
    /// records of a big-endian u16 length and one RTP packet.
    #[cfg(feature = "std")]
    pub(crate) fn write_corpus<F: NalFormat>(name: &str, nal: fn(&NalSpec) -> Vec<u8>) {
        extern crate std;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let key = |body: Vec<u8>| {
            (
                true,
                vec![
                    NalSpec::Vps(vec![0x0c, 1]),
                    NalSpec::Sps(vec![0x64, 0, 0x1f]),
                    NalSpec::Pps(vec![0xeb]),
                    NalSpec::Slice {
                        keyframe: true,
                        first: true,
                        body,
                    },
                ],
            )
        };
        let delta = |body: Vec<u8>| {
            (
                false,
                vec![
                    NalSpec::Slice {
                        keyframe: false,
                        first: true,
                        body: body.clone(),
                    },
                    NalSpec::Slice {
                        keyframe: false,
                        first: false,
                        body,
                    },
                ],
            )
        };
        let cases = [
            (
                "keyframe_fragmented",
                vec![key(vec![0x55; 700]), delta(vec![1; 30])],
                300,
            ),
            (
                "aggregated_small",
                vec![key(vec![2; 10]), delta(vec![3; 5]), delta(vec![4; 5])],
                1400,
            ),
            (
                "wrap_around",
                vec![key(vec![5; 90]), delta(vec![6; 400]), key(vec![7; 20])],
                200,
            ),
        ];
        for (file, frames_spec, mtu) in cases {
            let case = StreamCase {
                frames: frames_spec,
                steps: vec![40],
                start: 0,
                mtu,
                initial_sequence: 65534,
                initial_timestamp: u32::MAX - 3000,
            };
            let (packets, _) = packetize::<F>(&case, &frames::<F>(&case, nal));
            let mut data = vec![((mtu - 200) / 5).min(255) as u8];
            for packet in packets {
                data.extend_from_slice(&(packet.len() as u16).to_be_bytes());
                data.extend_from_slice(&packet);
            }
            std::fs::write(dir.join(file), data).unwrap();
        }
    }
}
