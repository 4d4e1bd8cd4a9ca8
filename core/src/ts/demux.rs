//! The transport stream demuxer: 188-byte packets in, PES packets of each elementary stream
//! out.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use arrayvec::ArrayVec;
use bytes::{Bytes, BytesMut};

use super::packet::PacketHeader;
use super::pes::{parse_header, PesHeaderError};
use super::psi::{parse_pat, parse_pmt, MAX_PMT_STREAMS, MAX_SECTION_LENGTH};
use super::{stream_type_codec, TsError, NULL_PID, PACKET_LEN, PAT_PID, SYNC_BYTE};
use crate::media::Codec;

/// Limits of a demuxer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsDemuxConfig {
    /// The largest PES packet (header included) reassembled; a larger one is dropped with a
    /// [`TsError::TooLarge`] and the stream resumes at its PID's next PES.
    pub max_pes_size: usize,
    /// Reports (PES packets and errors) held until polled; past this, errors are only counted
    /// and PES packets dropped, so a caller that never polls holds bounded memory.
    pub max_queued: usize,
}

impl Default for TsDemuxConfig {
    fn default() -> Self {
        Self {
            max_pes_size: 8 << 20,
            max_queued: 1024,
        }
    }
}

/// One reassembled PES packet of an elementary stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PesPacket {
    /// The PID it came on.
    pub pid: u16,
    /// The stream_type the PMT gave that PID.
    pub stream_type: u8,
    /// The PES stream_id.
    pub stream_id: u8,
    /// Presentation timestamp, 90 kHz ticks (33 bits).
    pub pts: Option<u64>,
    /// Decode timestamp, 90 kHz ticks; `None` when it equals the PTS.
    pub dts: Option<u64>,
    /// random_access_indicator of the packet that started the PES.
    pub random_access: bool,
    /// The elementary stream bytes (Annex-B video, ADTS audio, ...).
    pub payload: Bytes,
    /// Stream offset of the packet that started the PES.
    pub offset: u64,
}

impl PesPacket {
    /// The codec of its stream type, if one this crate handles.
    pub fn codec(&self) -> Option<Codec> {
        stream_type_codec(self.stream_type)
    }

    /// The DTS, or the PTS when no DTS was sent.
    pub fn decode_ticks(&self) -> Option<u64> {
        self.dts.or(self.pts)
    }
}

/// Counters of what the demuxer survived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DemuxStats {
    /// Packets read.
    pub packets: u64,
    /// Times the stream lost packet alignment and bytes were skipped to the next sync byte.
    pub sync_losses: u64,
    /// Bytes skipped while resynchronising.
    pub skipped_bytes: u64,
    /// Packets whose continuity counter did not follow the previous one on their PID.
    pub continuity_errors: u64,
    /// Packets flagged with transport_error_indicator, or with an unreadable header.
    pub bad_packets: u64,
    /// PES packets dropped: damaged by a continuity error, too large, or malformed.
    pub dropped_pes: u64,
    /// Reports dropped because the caller did not poll.
    pub dropped_reports: u64,
}

/// A PSI section being collected from the packets of one PID.
#[derive(Debug, Clone, Default)]
struct SectionBuffer {
    data: Vec<u8>,
    active: bool,
    last_cc: Option<u8>,
}

impl SectionBuffer {
    fn reset(&mut self) {
        self.data.clear();
        self.active = false;
        self.last_cc = None;
    }

    /// Appends payload bytes; returns the complete section once its length is reached.
    fn extend(&mut self, bytes: &[u8]) -> Option<Result<Vec<u8>, ()>> {
        if !self.active {
            return None;
        }
        let room = (3 + MAX_SECTION_LENGTH).saturating_sub(self.data.len());
        self.data
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        let [table_id, hi, lo] = *self.data.first_chunk::<3>()?;
        if table_id == 0xff {
            // Stuffing: no section follows in this packet.
            self.reset_data();
            return None;
        }
        let length = usize::from(u16::from_be_bytes([hi & 0x0f, lo]));
        if length > MAX_SECTION_LENGTH {
            self.reset_data();
            return Some(Err(()));
        }
        if self.data.len() < 3 + length {
            return None;
        }
        self.active = false;
        self.data.truncate(3 + length);
        Some(Ok(core::mem::take(&mut self.data)))
    }

    fn reset_data(&mut self) {
        self.data.clear();
        self.active = false;
    }
}

/// Reassembly state of one elementary stream.
#[derive(Debug, Clone)]
struct Stream {
    pid: u16,
    stream_type: u8,
    buffer: BytesMut,
    /// Whether a PES is being collected (false while skipping to the next PES start).
    active: bool,
    /// Total PES size from its PES_packet_length, if bounded.
    expected: Option<usize>,
    random_access: bool,
    offset: u64,
    last_cc: Option<u8>,
}

/// Reassembles the PES packets of every elementary stream of the first program.
///
/// Feed it bytes with [`TsDemuxer::push`] in reads of any size and drain
/// [`TsDemuxer::poll`] after each. It finds packet alignment by the sync byte (also after
/// garbage), learns the PIDs from PAT and PMT (CRC checked), and reports damage as values:
/// nothing is fatal, memory is bounded by [`TsDemuxConfig`], and no input makes it panic.
/// A video PES of unbounded length ends at the next PES start on its PID or at
/// [`TsDemuxer::flush`].
#[derive(Debug, Clone)]
pub struct TsDemuxer {
    config: TsDemuxConfig,
    /// Bytes of a packet split across reads (always starting with the sync byte).
    partial: ArrayVec<u8, PACKET_LEN>,
    /// Stream offset of the next input byte.
    offset: u64,
    in_sync: bool,
    pat: SectionBuffer,
    pmt_pid: Option<u16>,
    pmt: SectionBuffer,
    pcr_pid: Option<u16>,
    streams: ArrayVec<Stream, MAX_PMT_STREAMS>,
    reports: VecDeque<Result<PesPacket, TsError>>,
    stats: DemuxStats,
}

impl Default for TsDemuxer {
    fn default() -> Self {
        Self::new(TsDemuxConfig::default())
    }
}

impl TsDemuxer {
    /// A demuxer that has seen no table yet.
    pub fn new(config: TsDemuxConfig) -> Self {
        Self {
            config,
            partial: ArrayVec::new(),
            offset: 0,
            in_sync: true,
            pat: SectionBuffer::default(),
            pmt_pid: None,
            pmt: SectionBuffer::default(),
            pcr_pid: None,
            streams: ArrayVec::new(),
            reports: VecDeque::new(),
            stats: DemuxStats::default(),
        }
    }

    /// What has been counted so far.
    pub fn stats(&self) -> &DemuxStats {
        &self.stats
    }

    /// The PMT PID announced by the PAT, once seen.
    pub fn pmt_pid(&self) -> Option<u16> {
        self.pmt_pid
    }

    /// The PCR PID announced by the PMT, once seen.
    pub fn pcr_pid(&self) -> Option<u16> {
        self.pcr_pid
    }

    /// The elementary streams of the current PMT as (PID, stream_type).
    pub fn streams(&self) -> impl Iterator<Item = (u16, u8)> + '_ {
        self.streams.iter().map(|s| (s.pid, s.stream_type))
    }

    /// The next complete PES packet or a report of damage, in stream order.
    pub fn poll(&mut self) -> Option<Result<PesPacket, TsError>> {
        self.reports.pop_front()
    }

    /// Reads `input`, any number of bytes, continuing where the previous read stopped.
    pub fn push(&mut self, input: &[u8]) {
        let mut rest = input;
        while !rest.is_empty() {
            if self.partial.is_empty() {
                if rest.first() != Some(&SYNC_BYTE) {
                    let skip = rest
                        .iter()
                        .position(|&b| b == SYNC_BYTE)
                        .unwrap_or(rest.len());
                    if self.in_sync {
                        self.in_sync = false;
                        self.stats.sync_losses += 1;
                    }
                    self.stats.skipped_bytes += skip as u64;
                    self.offset += skip as u64;
                    rest = rest.get(skip..).unwrap_or_default();
                    continue;
                }
                self.in_sync = true;
                if let Some((packet, tail)) = rest.split_first_chunk::<PACKET_LEN>() {
                    self.handle_packet(packet);
                    self.offset += PACKET_LEN as u64;
                    rest = tail;
                    continue;
                }
            }
            let take = (PACKET_LEN - self.partial.len()).min(rest.len());
            let (head, tail) = rest.split_at(take);
            // Cannot fail: `take` is at most the room left.
            let _ = self.partial.try_extend_from_slice(head);
            rest = tail;
            if let Ok(packet) = <[u8; PACKET_LEN]>::try_from(self.partial.as_slice()) {
                self.partial.clear();
                self.handle_packet(&packet);
                self.offset += PACKET_LEN as u64;
            }
        }
    }

    /// Ends every PES in progress (the input has ended): unbounded ones are emitted, bounded
    /// ones that are incomplete are reported as truncated.
    pub fn flush(&mut self) {
        for index in 0..self.streams.len() {
            self.finish(index);
        }
    }

    fn report(&mut self, report: Result<PesPacket, TsError>) {
        if self.reports.len() >= self.config.max_queued {
            self.stats.dropped_reports += 1;
            return;
        }
        self.reports.push_back(report);
    }

    fn handle_packet(&mut self, packet: &[u8; PACKET_LEN]) {
        self.stats.packets += 1;
        let offset = self.offset;
        let header = match PacketHeader::parse(packet, offset) {
            Ok(header) => header,
            Err(_) => {
                self.stats.bad_packets += 1;
                return;
            }
        };
        if header.transport_error {
            self.stats.bad_packets += 1;
            return;
        }
        if header.pid == NULL_PID || !header.has_payload {
            return;
        }
        let payload = packet.get(header.payload_offset..).unwrap_or_default();
        let discontinuity = header.adaptation.is_some_and(|a| a.discontinuity);
        if header.pid == PAT_PID {
            if let Some(section) = self.section(header, payload, discontinuity, false) {
                match parse_pat(&section, header.pid, offset) {
                    Ok(Some(pmt_pid)) if Some(pmt_pid) != self.pmt_pid => {
                        self.pmt_pid = Some(pmt_pid);
                        self.pmt.reset();
                    }
                    Ok(_) => {}
                    Err(error) => self.report(Err(error)),
                }
            }
        } else if Some(header.pid) == self.pmt_pid {
            if let Some(section) = self.section(header, payload, discontinuity, true) {
                match parse_pmt(&section, header.pid, offset) {
                    Ok(Some(pmt)) => self.apply_pmt(pmt.pcr_pid, &pmt.streams),
                    Ok(None) => {}
                    Err(error) => self.report(Err(error)),
                }
            }
        } else if let Some(index) = self.streams.iter().position(|s| s.pid == header.pid) {
            self.handle_pes_packet(index, header, payload, discontinuity);
        }
    }

    /// Feeds one packet to the PAT or PMT section buffer; returns a completed section.
    fn section(
        &mut self,
        header: PacketHeader,
        payload: &[u8],
        discontinuity: bool,
        pmt: bool,
    ) -> Option<Vec<u8>> {
        let buffer = if pmt { &mut self.pmt } else { &mut self.pat };
        let expected = buffer.last_cc.map(|cc| (cc + 1) & 0x0f);
        let cc = header.continuity_counter;
        if buffer.last_cc == Some(cc) && !discontinuity {
            // A duplicate packet (§2.4.3.3): ignore it.
            return None;
        }
        buffer.last_cc = Some(cc);
        if expected.is_some_and(|e| e != cc) && !discontinuity {
            self.stats.continuity_errors += 1;
            buffer.reset_data();
        }
        let mut complete = None;
        if header.payload_unit_start {
            let (&pointer, after) = payload.split_first()?;
            let pointer = usize::from(pointer);
            // The bytes before the pointer end the previous section.
            if let Some(Ok(section)) = buffer.extend(after.get(..pointer).unwrap_or(after)) {
                complete = Some(section);
            }
            buffer.data.clear();
            buffer.active = true;
            if let Some(Ok(section)) = buffer.extend(after.get(pointer..).unwrap_or_default()) {
                // Only one section per packet is read; PAT and PMT are one section each.
                complete = Some(section);
            }
        } else if let Some(Ok(section)) = buffer.extend(payload) {
            complete = Some(section);
        }
        complete
    }

    fn apply_pmt(&mut self, pcr_pid: u16, streams: &[super::psi::PmtStream]) {
        self.pcr_pid = Some(pcr_pid);
        // A stream that goes away or changes codec ends its PES as it was.
        for index in 0..self.streams.len() {
            let Some(stream) = self.streams.get(index) else {
                continue;
            };
            let kept = streams
                .iter()
                .any(|e| e.pid == stream.pid && e.stream_type == stream.stream_type);
            if !kept {
                self.finish(index);
            }
        }
        let mut next: ArrayVec<Stream, MAX_PMT_STREAMS> = ArrayVec::new();
        for entry in streams {
            if entry.pid == PAT_PID || Some(entry.pid) == self.pmt_pid || entry.pid == NULL_PID {
                continue;
            }
            if next.iter().any(|s| s.pid == entry.pid) {
                continue;
            }
            let stream = match self.streams.iter().position(|s| s.pid == entry.pid) {
                Some(index) => {
                    let mut stream = self.streams.remove(index);
                    stream.stream_type = entry.stream_type;
                    stream
                }
                None => Stream {
                    pid: entry.pid,
                    stream_type: entry.stream_type,
                    buffer: BytesMut::new(),
                    active: false,
                    expected: None,
                    random_access: false,
                    offset: 0,
                    last_cc: None,
                },
            };
            // Cannot overflow: both hold at most MAX_PMT_STREAMS entries.
            let _ = next.try_push(stream);
        }
        self.streams = next;
    }

    fn handle_pes_packet(
        &mut self,
        index: usize,
        header: PacketHeader,
        payload: &[u8],
        discontinuity: bool,
    ) {
        let max = self.config.max_pes_size;
        let offset = self.offset;
        let Some(stream) = self.streams.get_mut(index) else {
            return;
        };
        let cc = header.continuity_counter;
        if stream.last_cc == Some(cc) && !discontinuity {
            return;
        }
        let expected = stream.last_cc.map(|last| (last + 1) & 0x0f);
        stream.last_cc = Some(cc);
        if expected.is_some_and(|e| e != cc) && !discontinuity {
            self.stats.continuity_errors += 1;
            if stream.active {
                // A packet of this PES was lost: it cannot be decoded, drop it.
                stream.active = false;
                stream.buffer.clear();
                self.stats.dropped_pes += 1;
            }
        }
        if header.payload_unit_start {
            self.finish(index);
            let Some(stream) = self.streams.get_mut(index) else {
                return;
            };
            stream.buffer.clear();
            stream.active = true;
            stream.expected = None;
            stream.random_access = header.adaptation.is_some_and(|a| a.random_access);
            stream.offset = offset;
        }
        let Some(stream) = self.streams.get_mut(index) else {
            return;
        };
        if !stream.active {
            return;
        }
        let len = stream.buffer.len() + payload.len();
        if len > max {
            stream.active = false;
            stream.buffer.clear();
            self.stats.dropped_pes += 1;
            self.report(Err(TsError::TooLarge {
                what: "PES packet",
                len,
                max,
                offset,
            }));
            return;
        }
        stream.buffer.extend_from_slice(payload);
        if stream.expected.is_none() {
            if let Some(&[_, _, _, _, hi, lo]) = stream.buffer.first_chunk::<6>() {
                let length = usize::from(u16::from_be_bytes([hi, lo]));
                stream.expected = (length != 0).then_some(6 + length);
            }
        }
        if stream.expected.is_some_and(|n| stream.buffer.len() >= n) {
            self.finish(index);
        }
    }

    /// Ends the PES being collected on stream `index`, reporting it or why it is unusable.
    fn finish(&mut self, index: usize) {
        let Some(stream) = self.streams.get_mut(index) else {
            return;
        };
        if !stream.active {
            return;
        }
        stream.active = false;
        let pid = stream.pid;
        let offset = stream.offset;
        let mut data = stream.buffer.split();
        if let Some(expected) = stream.expected {
            if data.len() < expected {
                self.stats.dropped_pes += 1;
                self.report(Err(TsError::Truncated {
                    what: "PES packet",
                    pid,
                    offset,
                }));
                return;
            }
            // Bytes after a bounded PES in its last packet are not part of it.
            data.truncate(expected);
        }
        let data = data.freeze();
        let packet = match parse_header(&data) {
            Ok(header) if header.payload_offset <= data.len() => Ok(PesPacket {
                pid,
                stream_type: stream.stream_type,
                stream_id: header.stream_id,
                pts: header.pts,
                dts: header.dts,
                random_access: stream.random_access,
                payload: data.slice(header.payload_offset..),
                offset,
            }),
            Ok(_) | Err(PesHeaderError::Truncated) => Err(TsError::Truncated {
                what: "PES header",
                pid,
                offset,
            }),
            Err(PesHeaderError::Invalid) => Err(TsError::Invalid {
                what: "PES header",
                pid,
                offset,
            }),
        };
        if packet.is_err() {
            self.stats.dropped_pes += 1;
        }
        self.report(packet);
    }
}
