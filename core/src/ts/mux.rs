//! The transport stream muxer: what an HTTP-TS response body and an HLS segment are.

use alloc::vec::Vec;
use core::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::packet::{put_header, HeaderSpec, PCR_LEN};
use super::psi::{put_pat, put_pmt, PmtStream};
use super::{
    pes, stream_type, unwrapped_ticks, TsError, DEFAULT_AUDIO_PID, DEFAULT_PMT_PID,
    DEFAULT_TIMESTAMP_OFFSET_MS, DEFAULT_VIDEO_PID, NULL_PID, PACKET_BODY_LEN, PACKET_LEN, PAT_PID,
    STREAM_ID_AUDIO, STREAM_ID_VIDEO, TIMESTAMP_MASK,
};
use crate::media::{avc, hevc, nal, Codec, Frame, Media, MediaKind, TrackConfig};
use crate::outq::OutQueue;

/// H.264 access unit delimiter with a 4-byte start code; primary_pic_type 7 (any slice type).
const AUD_H264: &[u8] = &[0, 0, 0, 1, 0x09, 0xf0];
/// H.265 access unit delimiter (NAL type 35, layer 0, tid 1); pic_type 2 (any).
const AUD_H265: &[u8] = &[0, 0, 0, 1, 0x46, 0x01, 0x50];
const START_CODE: &[u8] = &[0, 0, 0, 1];
const NAL_AUD_H264: u8 = 9;
const NAL_AUD_H265: u8 = 35;
/// Bytes of an ADTS header without CRC.
const ADTS_HEADER_LEN: usize = 7;
/// ADTS frame_length is 13 bits and includes the header.
const MAX_ADTS_FRAME_LEN: usize = (1 << 13) - 1;
/// Adaptation field bytes for flags and a PCR: length byte, flags, PCR.
const AF_WITH_PCR: usize = 2 + PCR_LEN;
/// Adaptation field bytes for flags only.
const AF_FLAGS_ONLY: usize = 2;
/// Worst-case arena bytes per packet besides copied payload: header plus a PCR field.
const PACKET_OVERHEAD_MAX: usize = 4 + AF_WITH_PCR;

/// Where the muxer puts things and how it maps time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsMuxerConfig {
    /// The PID of the program map table.
    pub pmt_pid: u16,
    /// The video elementary stream's PID (and the PCR PID when there is video).
    pub video_pid: u16,
    /// The audio elementary stream's PID (the PCR PID of an audio-only stream).
    pub audio_pid: u16,
    /// Added to every millisecond timestamp before conversion to 90 kHz (see the module docs
    /// of [`crate::ts`]).
    pub timestamp_offset_ms: i64,
    /// The PCR is the DTS of the frame that carries it minus this much, so that a decoder
    /// holds every frame (including audio interleaved slightly behind video) before its DTS.
    pub pcr_lead_ms: i64,
    /// For a stream without video, PAT and PMT are repeated when at least this many
    /// milliseconds of audio went by since they were last written (with video they precede
    /// every keyframe).
    pub audio_only_table_interval_ms: i64,
}

impl Default for TsMuxerConfig {
    fn default() -> Self {
        Self {
            pmt_pid: DEFAULT_PMT_PID,
            video_pid: DEFAULT_VIDEO_PID,
            audio_pid: DEFAULT_AUDIO_PID,
            timestamp_offset_ms: DEFAULT_TIMESTAMP_OFFSET_MS,
            pcr_lead_ms: 400,
            audio_only_table_interval_ms: 1_000,
        }
    }
}

/// What [`TsMuxer::write_frame`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteOutcome {
    /// The frame was written as one PES packet.
    Written {
        /// Bytes queued, tables included (a multiple of 188).
        bytes: usize,
        /// Whether PAT and PMT were written before it.
        tables: bool,
    },
    /// The frame was dropped: no configuration for its codec has arrived (yet).
    NoConfig,
}

#[derive(Debug, Clone)]
struct VideoTrack {
    codec: Codec,
    nal_length_size: u8,
    /// The configuration's parameter sets in Annex-B form, ready to slice in front of
    /// keyframes that lack them.
    parameter_sets: Bytes,
}

#[derive(Debug, Clone, Copy)]
struct AudioTrack {
    /// The first 4 bytes of the ADTS header with frame_length zero; the length is OR-ed in.
    adts_fixed: [u8; 4],
}

/// One run of PES bytes: copied from the muxer's scratch buffer, or sliced from a payload.
#[derive(Debug, Clone)]
enum Piece {
    Copy(Range<usize>),
    Slice(Bytes),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Copy(range) => range.len(),
            Piece::Slice(bytes) => bytes.len(),
        }
    }
}

/// Per-PES packetization parameters.
#[derive(Debug, Clone, Copy)]
struct PesSpec {
    pid: u16,
    pcr_base: Option<u64>,
    discontinuity: bool,
    random_access: bool,
}

/// Writes a transport stream as `Bytes` segments: packet, PES and ADTS headers, start codes
/// and delimiters from the arena, NAL units and AAC frames by reference.
///
/// A packet is usually two segments (header, payload slice); where a NAL unit ends inside a
/// packet, the next start code joins the header segment of that packet or stands between the
/// two slices. Every segment boundary is a byte boundary of the stream: the concatenation of
/// all segments is the transport stream.
///
/// Driving it: feed [`Media`] in publisher order with [`TsMuxer::write_media`] (or configs and
/// frames separately). PAT and PMT go out before the first frame, before every video
/// keyframe, after a PMT change, and every [`TsMuxerConfig::audio_only_table_interval_ms`]
/// of an audio-only stream. An HLS segmenter cuts before a keyframe (which brings its own
/// tables) and may call [`TsMuxer::write_tables`] to start any segment explicitly; continuity
/// counters simply carry on across segments.
#[derive(Debug, Clone)]
pub struct TsMuxer {
    config: TsMuxerConfig,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    /// The codecs of the PMT last written (video, audio) and its version.
    written_pmt: Option<(Option<Codec>, Option<Codec>)>,
    pmt_version: u8,
    /// Set when the PMT changed or nothing was written yet.
    tables_due: bool,
    last_tables_dts: Option<i64>,
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    /// The last PCR base, before the 33-bit wrap.
    last_pcr: Option<i64>,
    /// Reused per frame so that steady-state muxing does not allocate.
    pieces: Vec<Piece>,
    scratch: BytesMut,
}

impl Default for TsMuxer {
    fn default() -> Self {
        Self::new(TsMuxerConfig::default())
    }
}

impl TsMuxer {
    /// A muxer with no tracks configured yet.
    pub fn new(config: TsMuxerConfig) -> Self {
        Self {
            config,
            video: None,
            audio: None,
            written_pmt: None,
            pmt_version: 0,
            tables_due: true,
            last_tables_dts: None,
            cc_pat: 0,
            cc_pmt: 0,
            cc_video: 0,
            cc_audio: 0,
            last_pcr: None,
            pieces: Vec::new(),
            scratch: BytesMut::new(),
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &TsMuxerConfig {
        &self.config
    }

    /// The version_number of the PMT (bumped, modulo 32, whenever its streams change).
    pub fn pmt_version(&self) -> u8 {
        self.pmt_version
    }

    /// The PID carrying the PCR: the video PID if a video track is configured, else audio.
    pub fn pcr_pid(&self) -> u16 {
        match (&self.video, &self.audio) {
            (Some(_), _) => self.config.video_pid,
            (None, Some(_)) => self.config.audio_pid,
            (None, None) => NULL_PID,
        }
    }

    /// Whether a configuration for the video or audio track has arrived.
    pub fn has_track(&self, kind: MediaKind) -> bool {
        match kind {
            MediaKind::Video => self.video.is_some(),
            MediaKind::Audio => self.audio.is_some(),
        }
    }

    /// Writes one media item: configurations update the tracks, frames become PES packets,
    /// metadata has no place in a transport stream and is ignored.
    pub fn write_media(
        &mut self,
        media: &Media,
        arena: &mut BytesMut,
        out: &mut OutQueue,
    ) -> Result<WriteOutcome, TsError> {
        match media {
            Media::Config(config) => self.set_config(config).map(|()| WriteOutcome::Written {
                bytes: 0,
                tables: false,
            }),
            Media::Metadata(_) => Ok(WriteOutcome::Written {
                bytes: 0,
                tables: false,
            }),
            Media::Frame(frame) => self.write_frame(frame, arena, out),
        }
    }

    /// Installs a track configuration. A new track or a codec change bumps the PMT version
    /// and writes the tables before the next frame; new parameter sets of the same codec are
    /// simply used from the next keyframe on. On error the track is left as it was.
    pub fn set_config(&mut self, config: &TrackConfig) -> Result<(), TsError> {
        match config {
            TrackConfig::Avc(avc) => {
                let sets = avc.sps.iter().chain(&avc.pps);
                self.set_video(Codec::H264, avc.nal_length_size, annex_b(sets))
            }
            TrackConfig::Hevc(hevc) => {
                let sets = hevc.vps.iter().chain(&hevc.sps).chain(&hevc.pps);
                self.set_video(Codec::H265, hevc.nal_length_size, annex_b(sets))
            }
            TrackConfig::Aac(aac) => {
                // ADTS profile is object type - 1 in two bits: Main, LC, SSR, LTP only.
                if !(1..=4).contains(&aac.object_type) {
                    return Err(TsError::Unsupported {
                        what: "AAC object type in ADTS",
                        value: u32::from(aac.object_type),
                    });
                }
                let index = aac.sample_rate_index().ok_or(TsError::Unsupported {
                    what: "AAC sampling rate in ADTS",
                    value: aac.sample_rate,
                })?;
                if aac.channels > 7 {
                    return Err(TsError::Unsupported {
                        what: "AAC channel configuration in ADTS",
                        value: u32::from(aac.channels),
                    });
                }
                let profile = aac.object_type - 1;
                let channels = aac.channels;
                // syncword, MPEG-4, layer 0, no CRC; profile, sampling index, private 0,
                // channel configuration (3 bits across two bytes), original/home/copyright 0.
                let adts_fixed = [
                    0xff,
                    0xf1,
                    (profile << 6) | (index << 2) | (channels >> 2),
                    (channels & 0x03) << 6,
                ];
                self.audio = Some(AudioTrack { adts_fixed });
                self.check_pmt();
                Ok(())
            }
        }
    }

    fn set_video(&mut self, codec: Codec, length_size: u8, sets: Bytes) -> Result<(), TsError> {
        if !(1..=4).contains(&length_size) {
            return Err(TsError::Unsupported {
                what: "NAL unit length size",
                value: u32::from(length_size),
            });
        }
        self.video = Some(VideoTrack {
            codec,
            nal_length_size: length_size,
            parameter_sets: sets,
        });
        self.check_pmt();
        Ok(())
    }

    fn streams(&self) -> (Option<Codec>, Option<Codec>) {
        (
            self.video.as_ref().map(|video| video.codec),
            self.audio.map(|_| Codec::Aac),
        )
    }

    /// Bumps the PMT version if its content differs from what players last saw.
    fn check_pmt(&mut self) {
        let streams = self.streams();
        if let Some(written) = self.written_pmt {
            if written != streams {
                self.pmt_version = (self.pmt_version + 1) & 0x1f;
                self.tables_due = true;
            }
        }
    }

    /// Writes PAT and PMT now, as the first two packets of whatever comes next (an HLS
    /// segmenter calls this at the start of each segment).
    pub fn write_tables(&mut self, arena: &mut BytesMut, out: &mut OutQueue) {
        arena.reserve(2 * PACKET_LEN);
        self.put_tables(arena);
        flush_arena(arena, out);
    }

    fn put_tables(&mut self, arena: &mut BytesMut) {
        let mut streams = arrayvec::ArrayVec::<PmtStream, 2>::new();
        let (video, audio) = self.streams();
        if let Some(codec) = video {
            streams.push(PmtStream {
                stream_type: stream_type(codec),
                pid: self.config.video_pid,
            });
        }
        if let Some(codec) = audio {
            streams.push(PmtStream {
                stream_type: stream_type(codec),
                pid: self.config.audio_pid,
            });
        }
        let pcr_pid = self.pcr_pid();
        let version = self.pmt_version;
        let pmt_pid = self.config.pmt_pid;
        put_section_packet(arena, PAT_PID, &mut self.cc_pat, |arena| {
            put_pat(arena, pmt_pid, 0)
        });
        put_section_packet(arena, pmt_pid, &mut self.cc_pmt, |arena| {
            put_pmt(arena, pcr_pid, &streams, version)
        });
        self.written_pmt = Some((video, audio));
        self.tables_due = false;
    }

    /// Writes one frame as a PES packet (preceded by PAT and PMT where due). Nothing is
    /// written if the frame cannot be (a truncated NAL unit length, an oversized AAC frame),
    /// and frames of a codec with no configuration are dropped with
    /// [`WriteOutcome::NoConfig`].
    pub fn write_frame(
        &mut self,
        frame: &Frame,
        arena: &mut BytesMut,
        out: &mut OutQueue,
    ) -> Result<WriteOutcome, TsError> {
        self.pieces.clear();
        self.scratch.clear();
        let result = self.write_pes(frame, arena, out);
        // Drop the payload references now rather than keep them until the next frame.
        self.pieces.clear();
        result
    }

    fn write_pes(
        &mut self,
        frame: &Frame,
        arena: &mut BytesMut,
        out: &mut OutQueue,
    ) -> Result<WriteOutcome, TsError> {
        let offset = self.config.timestamp_offset_ms;
        let dts = unwrapped_ticks(frame.dts, offset);
        let pts = unwrapped_ticks(frame.pts, offset);
        let pts_wrapped = pts.rem_euclid(1 << 33) as u64;
        let dts_field = (pts != dts).then_some(dts.rem_euclid(1 << 33) as u64);
        let (pid, random_access) = match frame.codec.kind() {
            MediaKind::Video => {
                let Some(video) = self.video.as_ref().filter(|v| v.codec == frame.codec) else {
                    return Ok(WriteOutcome::NoConfig);
                };
                build_video(
                    video,
                    frame,
                    pts_wrapped,
                    dts_field,
                    &mut self.pieces,
                    &mut self.scratch,
                )?;
                (self.config.video_pid, frame.keyframe)
            }
            MediaKind::Audio => {
                let Some(audio) = self.audio else {
                    return Ok(WriteOutcome::NoConfig);
                };
                build_audio(
                    &audio,
                    frame,
                    pts_wrapped,
                    dts_field,
                    &mut self.pieces,
                    &mut self.scratch,
                )?;
                (self.config.audio_pid, true)
            }
        };

        let tables = self.tables_due
            || match (self.video.is_some(), frame.kind()) {
                (true, MediaKind::Video) => frame.keyframe,
                (true, MediaKind::Audio) => false,
                (false, _) => self.last_tables_dts.is_none_or(|last| {
                    frame.dts.saturating_sub(last) >= self.config.audio_only_table_interval_ms
                        || frame.dts < last
                }),
            };

        let mut spec = PesSpec {
            pid,
            pcr_base: None,
            discontinuity: false,
            random_access,
        };
        if pid == self.pcr_pid() {
            let mut pcr = dts.saturating_sub(self.config.pcr_lead_ms.saturating_mul(90));
            match self.last_pcr {
                // A jump back of more than a second is a new time base, not jitter: say so
                // rather than hold the PCR above every DTS that follows.
                Some(last) if pcr < last.saturating_sub(super::CLOCK_HZ) => {
                    spec.discontinuity = true;
                }
                Some(last) => pcr = pcr.max(last),
                None => {}
            }
            self.last_pcr = Some(pcr);
            spec.pcr_base = Some(pcr.rem_euclid(1 << 33) as u64 & TIMESTAMP_MASK);
        }

        let total: usize = self.pieces.iter().map(Piece::len).sum();
        let packets = total.div_ceil(PACKET_BODY_LEN - AF_WITH_PCR).max(1);
        let before = out.queued_bytes();
        arena.reserve(
            2 * PACKET_LEN + packets * PACKET_OVERHEAD_MAX + PACKET_BODY_LEN + self.scratch.len(),
        );
        if tables {
            self.put_tables(arena);
            self.last_tables_dts = Some(frame.dts);
        }
        let cc = match frame.kind() {
            MediaKind::Video => &mut self.cc_video,
            MediaKind::Audio => &mut self.cc_audio,
        };
        packetize(&self.pieces, &self.scratch, spec, cc, total, arena, out);
        flush_arena(arena, out);
        Ok(WriteOutcome::Written {
            bytes: out.queued_bytes() - before,
            tables,
        })
    }
}

/// Pushes what the arena holds as one segment.
fn flush_arena(arena: &mut BytesMut, out: &mut OutQueue) {
    if !arena.is_empty() {
        out.push(arena.split().freeze());
    }
}

/// Joins parameter sets into one Annex-B buffer (once per configuration, not per frame).
fn annex_b<'a>(sets: impl Iterator<Item = &'a Bytes>) -> Bytes {
    let mut buffer = BytesMut::new();
    for set in sets.filter(|set| !set.is_empty()) {
        buffer.put_slice(START_CODE);
        buffer.put_slice(set);
    }
    buffer.freeze()
}

/// Appends bytes to be copied, extending the previous copy run when it is adjacent.
fn push_copy(pieces: &mut Vec<Piece>, scratch: &mut BytesMut, bytes: &[u8]) {
    let start = scratch.len();
    scratch.put_slice(bytes);
    mark_copy(pieces, start, scratch.len());
}

/// Records `scratch[start..end]` as a run to copy, merged with an adjacent previous run.
fn mark_copy(pieces: &mut Vec<Piece>, start: usize, end: usize) {
    if let Some(Piece::Copy(range)) = pieces.last_mut() {
        if range.end == start {
            range.end = end;
            return;
        }
    }
    pieces.push(Piece::Copy(start..end));
}

/// Lays out a video PES: header, AUD, parameter sets for a keyframe that lacks them, then
/// every NAL unit behind a start code. Fails before anything is written if the payload's
/// length prefixes are broken.
fn build_video(
    video: &VideoTrack,
    frame: &Frame,
    pts: u64,
    dts: Option<u64>,
    pieces: &mut Vec<Piece>,
    scratch: &mut BytesMut,
) -> Result<(), TsError> {
    let h265 = video.codec == Codec::H265;
    let unit_type = |unit: &Bytes| {
        unit.first()
            .map(|&h| if h265 { hevc::nal_type(h) } else { h & 0x1f })
    };
    let mut in_band_sets = false;
    for unit in nal::length_prefixed(&frame.payload, video.nal_length_size) {
        let unit = unit?;
        in_band_sets |= match unit_type(&unit) {
            Some(t) if h265 => t == hevc::NAL_VPS || t == hevc::NAL_SPS,
            Some(t) => t == avc::NAL_SPS,
            None => false,
        };
    }
    let start = scratch.len();
    pes::put_header(scratch, STREAM_ID_VIDEO, 0, pts, dts, true);
    mark_copy(pieces, start, scratch.len());
    push_copy(pieces, scratch, if h265 { AUD_H265 } else { AUD_H264 });
    if frame.keyframe && !in_band_sets && !video.parameter_sets.is_empty() {
        pieces.push(Piece::Slice(video.parameter_sets.clone()));
    }
    for unit in nal::length_prefixed(&frame.payload, video.nal_length_size) {
        let unit = unit?;
        let aud = if h265 { NAL_AUD_H265 } else { NAL_AUD_H264 };
        if unit.is_empty() || unit_type(&unit) == Some(aud) {
            continue;
        }
        push_copy(pieces, scratch, START_CODE);
        pieces.push(Piece::Slice(unit));
    }
    Ok(())
}

/// Lays out an audio PES: header with the exact length, ADTS header, the raw AAC frame.
fn build_audio(
    audio: &AudioTrack,
    frame: &Frame,
    pts: u64,
    dts: Option<u64>,
    pieces: &mut Vec<Piece>,
    scratch: &mut BytesMut,
) -> Result<(), TsError> {
    let adts_len = ADTS_HEADER_LEN + frame.payload.len();
    if adts_len > MAX_ADTS_FRAME_LEN {
        return Err(TsError::TooLarge {
            what: "AAC frame in ADTS",
            len: adts_len,
            max: MAX_ADTS_FRAME_LEN,
            offset: 0,
        });
    }
    let header_len = pes::header_len(dts.is_some());
    // PES_packet_length counts from after itself; at most 8191 + 19, well within 16 bits.
    let pes_length = (header_len - 6 + adts_len) as u16;
    let [a, b, c, d] = audio.adts_fixed;
    let len = adts_len as u16;
    let adts = [
        a,
        b,
        c,
        d | (len >> 11) as u8,
        (len >> 3) as u8,
        ((len as u8 & 0x07) << 5) | 0x1f,
        0xfc,
    ];
    let start = scratch.len();
    pes::put_header(scratch, STREAM_ID_AUDIO, pes_length, pts, dts, true);
    scratch.put_slice(&adts);
    mark_copy(pieces, start, scratch.len());
    pieces.push(Piece::Slice(frame.payload.clone()));
    Ok(())
}

/// Writes one PSI section as a packet padded with 0xFF (the section fits one packet: the
/// muxer's PMT lists at most two streams).
fn put_section_packet(
    arena: &mut BytesMut,
    pid: u16,
    cc: &mut u8,
    put_section: impl FnOnce(&mut BytesMut),
) {
    let start = arena.len();
    put_header(
        arena,
        &HeaderSpec {
            pid,
            start: true,
            continuity_counter: *cc,
            ..HeaderSpec::default()
        },
    );
    *cc = (*cc + 1) & 0x0f;
    // pointer_field: the section starts right after it.
    arena.put_u8(0);
    put_section(arena);
    let used = arena.len() - start;
    arena.put_bytes(0xff, PACKET_LEN.saturating_sub(used));
}

/// Cuts the PES laid out in `pieces` into packets: headers and copied runs go into the
/// arena, sliced runs are pushed as their own segments after flushing the arena.
fn packetize(
    pieces: &[Piece],
    scratch: &[u8],
    spec: PesSpec,
    cc: &mut u8,
    total: usize,
    arena: &mut BytesMut,
    out: &mut OutQueue,
) {
    let mut remaining = total;
    let mut first = true;
    let mut index = 0;
    let mut within = 0;
    while remaining > 0 {
        let mut header = HeaderSpec {
            pid: spec.pid,
            start: first,
            continuity_counter: *cc,
            ..HeaderSpec::default()
        };
        if first {
            header.pcr_base = spec.pcr_base;
            header.random_access = spec.random_access;
            header.discontinuity = spec.discontinuity;
            header.adaptation_len = if spec.pcr_base.is_some() {
                AF_WITH_PCR
            } else if spec.random_access || spec.discontinuity {
                AF_FLAGS_ONLY
            } else {
                0
            };
        }
        let capacity = PACKET_BODY_LEN - header.adaptation_len;
        // The last packet of the PES is filled with adaptation field stuffing.
        header.adaptation_len += capacity.saturating_sub(remaining);
        let take = PACKET_BODY_LEN - header.adaptation_len;
        put_header(arena, &header);
        *cc = (*cc + 1) & 0x0f;
        first = false;
        remaining -= take;

        let mut need = take;
        while need > 0 {
            let Some(piece) = pieces.get(index) else {
                break;
            };
            let n = (piece.len() - within).min(need);
            match piece {
                Piece::Copy(range) => {
                    let from = range.start + within;
                    arena.put_slice(scratch.get(from..from + n).unwrap_or_default());
                }
                Piece::Slice(bytes) => {
                    flush_arena(arena, out);
                    out.push(bytes.slice(within..within + n));
                }
            }
            within += n;
            need -= n;
            if within == piece.len() {
                index += 1;
                within = 0;
            }
        }
    }
}
