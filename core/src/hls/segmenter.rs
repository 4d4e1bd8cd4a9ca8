//! The segmenter state machine: media in, segments and playlists out.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};

use super::{playlist, HlsConfig, Segment, MAX_TIMESTAMP_STEP_MS, TIMESTAMP_JITTER_MS};
use crate::media::{Frame, Media, MediaKind};
use crate::outq::OutQueue;
use crate::ts::{TsError, TsMuxer, WriteOutcome, PACKET_LEN};

/// The partial segment's buffer is replaced rather than kept once it is this large and more
/// than twice what the last segment needed (one huge segment should not pin its size forever).
const SHRINK_ABOVE: usize = 4 << 20;

/// Measures elapsed time on the clock track from DTS steps (see the module docs of
/// [`crate::hls`]).
#[derive(Debug, Clone, Default)]
struct Clock {
    /// The highest DTS of the current time base.
    last: Option<i64>,
    /// The last regular step, standing in for the duration of the last frame when a segment
    /// is closed with no frame after it.
    last_step: u64,
}

impl Clock {
    /// How far `dts` moves the clock: the step from the previous frame, 0 for jitter or a new
    /// time base.
    fn step(&mut self, dts: i64) -> u64 {
        let Some(last) = self.last else {
            self.last = Some(dts);
            return 0;
        };
        let delta = dts.saturating_sub(last);
        if !(-TIMESTAMP_JITTER_MS..=MAX_TIMESTAMP_STEP_MS).contains(&delta) {
            self.last = Some(dts);
            0
        } else if delta < 0 {
            0
        } else {
            self.last = Some(dts);
            self.last_step = delta.unsigned_abs();
            self.last_step
        }
    }
}

/// Cuts one stream into MPEG-TS segments and keeps its live playlist (see [`crate::hls`]).
///
/// Driving it: feed every [`Media`] of the publisher to [`HlsSegmenter::push`]; when it
/// returns a [`Segment`], a segment was closed and [`HlsSegmenter::playlist`] changed, so
/// copy the snapshot (playlist and segment, both `Bytes`) to wherever HTTP handlers read it.
/// Call [`HlsSegmenter::restart`] when a new publisher takes over the stream name and
/// [`HlsSegmenter::finish`] when the publisher leaves.
#[derive(Debug)]
pub struct HlsSegmenter {
    config: HlsConfig,
    muxer: TsMuxer,
    arena: BytesMut,
    /// The muxer's output for one frame, before it is known which segment it starts.
    frame_out: OutQueue,
    tables_out: OutQueue,
    /// The segment being filled, reused from segment to segment.
    partial: BytesMut,
    partial_frames: usize,
    partial_first_dts: i64,
    partial_elapsed_ms: u64,
    partial_discontinuity: bool,
    partial_independent: bool,
    clock: Clock,
    continuity: Continuity,
    /// Frames are dropped until a video keyframe after a (re)start of a stream with video.
    awaiting_keyframe: bool,
    /// The next segment follows a restart.
    discontinuity_due: bool,
    /// The publisher left: the playlist ends with `EXT-X-ENDLIST` until the stream goes on.
    ended: bool,
    next_sequence: u64,
    /// Closed segments, oldest first, with consecutive sequence numbers.
    segments: VecDeque<Segment>,
    stored_bytes: usize,
    /// Segments with a discontinuity ever closed (listed or not).
    discontinuities: u64,
    playlist: Option<Bytes>,
}

impl HlsSegmenter {
    /// A segmenter with no tracks and no segments yet.
    pub fn new(config: HlsConfig) -> Self {
        Self {
            muxer: TsMuxer::new(config.ts.clone()),
            config,
            arena: BytesMut::new(),
            frame_out: OutQueue::new(),
            tables_out: OutQueue::new(),
            partial: BytesMut::new(),
            partial_frames: 0,
            partial_first_dts: 0,
            partial_elapsed_ms: 0,
            partial_discontinuity: false,
            partial_independent: true,
            clock: Clock::default(),
            continuity: Continuity::default(),
            awaiting_keyframe: true,
            discontinuity_due: false,
            ended: false,
            next_sequence: 0,
            segments: VecDeque::new(),
            stored_bytes: 0,
            discontinuities: 0,
            playlist: None,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &HlsConfig {
        &self.config
    }

    /// Feeds one media item: track configurations go to the muxer, frames into the current
    /// segment, metadata is ignored. Returns the segment this closed, if any (at most one:
    /// the frame starts the next segment).
    ///
    /// On error (a configuration the TS mapping cannot carry, a frame whose NAL length
    /// prefixes are broken) nothing is written and the stream goes on; the caller logs it.
    pub fn push(&mut self, media: &Media) -> Result<Option<Segment>, TsError> {
        match media {
            Media::Config(config) => self.muxer.set_config(config).map(|()| None),
            Media::Metadata(_) => Ok(None),
            Media::Frame(frame) => self.push_frame(frame),
        }
    }

    fn push_frame(&mut self, frame: &Frame) -> Result<Option<Segment>, TsError> {
        let has_video = self.muxer.has_track(MediaKind::Video);
        let video_keyframe = frame.kind() == MediaKind::Video && frame.keyframe;
        if has_video && self.awaiting_keyframe && !video_keyframe {
            return Ok(None);
        }
        self.frame_out.clear();
        let outcome = self
            .muxer
            .write_frame(frame, &mut self.arena, &mut self.frame_out)?;
        let WriteOutcome::Written { bytes, tables } = outcome else {
            return Ok(None);
        };
        if video_keyframe {
            self.awaiting_keyframe = false;
        }
        let clock_kind = if has_video {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        let on_clock = frame.kind() == clock_kind;
        let step = if on_clock {
            self.clock.step(frame.dts)
        } else {
            0
        };

        let mut closed = None;
        if self.partial_frames > 0 {
            // A stream with video cuts only before keyframes; an audio-only one anywhere.
            let cut_point = on_clock && (video_keyframe || !has_video);
            let elapsed = self.partial_elapsed_ms.saturating_add(step);
            let timed = cut_point && elapsed >= self.config.target_duration_ms;
            let full = self.partial.len().saturating_add(bytes) > self.config.max_segment_bytes;
            if timed || full {
                closed = Some(self.close(elapsed));
            } else {
                self.partial_elapsed_ms = elapsed;
            }
        }

        if self.partial_frames == 0 {
            self.partial_first_dts = frame.dts;
            self.partial_elapsed_ms = 0;
            self.partial_discontinuity = core::mem::take(&mut self.discontinuity_due);
            self.partial_independent = video_keyframe || !has_video;
            if !tables {
                // Every segment must decode on its own; the muxer only writes the tables on
                // its own schedule (before keyframes, or every second of audio).
                self.tables_out.clear();
                self.muxer
                    .write_tables(&mut self.arena, &mut self.tables_out);
                append(
                    &mut self.partial,
                    &mut self.tables_out,
                    &mut self.continuity,
                );
            }
        }
        append(&mut self.partial, &mut self.frame_out, &mut self.continuity);
        self.partial_frames += 1;
        Ok(closed)
    }

    /// A new publisher takes over the stream: closes the current segment (if it holds
    /// anything) and returns it, resets the muxer (new configurations follow; timestamps may
    /// start over) and marks the next segment as a discontinuity. Sequence numbers go on.
    pub fn restart(&mut self) -> Option<Segment> {
        let closed = self.finish();
        self.muxer = TsMuxer::new(self.config.ts.clone());
        self.clock = Clock::default();
        if self.next_sequence > 0 {
            self.discontinuity_due = true;
        }
        self.ended = false;
        if self.playlist.is_some() {
            self.render();
        }
        closed
    }

    /// The publisher left: closes the current segment (if it holds anything) so that its
    /// content is served, returns it, and ends the playlist with `EXT-X-ENDLIST` so players
    /// finish rather than poll. Frames pushed later start a new segment at a keyframe (and
    /// drop the end tag); call [`HlsSegmenter::restart`] first if they come from a new
    /// publisher.
    ///
    /// The buffers kept for the next frames are given back (see
    /// [`HlsSegmenter::buffered_capacity`]): a finished segmenter may be kept a while for a
    /// publisher that may never return, and should then hold only its segments.
    pub fn finish(&mut self) -> Option<Segment> {
        self.awaiting_keyframe = true;
        self.ended = true;
        let closed = if self.partial_frames == 0 {
            if self.playlist.is_some() {
                self.render();
            }
            None
        } else {
            // No next frame tells where this one ends: count the last frame as long as the
            // step before it.
            let duration = self.partial_elapsed_ms.saturating_add(self.clock.last_step);
            Some(self.close(duration))
        };
        self.partial = BytesMut::new();
        self.arena = BytesMut::new();
        self.frame_out = OutQueue::new();
        self.tables_out = OutQueue::new();
        closed
    }

    /// Turns the partial segment into a stored one, applies the retention limits and renders
    /// the playlist.
    fn close(&mut self, duration_ms: u64) -> Segment {
        // The one copy of a segment: made once per stream when it closes, into an allocation
        // of exactly its size that every player then shares by reference count. Copying
        // (rather than freezing the partial buffer) keeps stored memory equal to what the
        // budget counts, and lets the partial buffer be reused.
        let bytes = Bytes::copy_from_slice(&self.partial);
        if self.partial_frames > 0 && !self.awaiting_keyframe {
            // Media after a `finish`: the stream goes on.
            self.ended = false;
        }
        self.partial.clear();
        if self.partial.capacity() > SHRINK_ABOVE && self.partial.capacity() / 2 > bytes.len() {
            self.partial = BytesMut::new();
        }
        let segment = Segment {
            sequence: self.next_sequence,
            duration_ms,
            first_dts: self.partial_first_dts,
            discontinuity: self.partial_discontinuity,
            independent: self.partial_independent,
            bytes,
        };
        self.next_sequence += 1;
        self.partial_frames = 0;
        self.partial_elapsed_ms = 0;
        if segment.discontinuity {
            self.discontinuities += 1;
        }
        self.stored_bytes += segment.bytes.len();
        self.segments.push_back(segment.clone());
        self.evict();
        self.render();
        segment
    }

    fn window(&self) -> usize {
        self.config.window.max(1)
    }

    fn evict(&mut self) {
        let keep = self.window().saturating_add(self.config.extra_segments);
        while self.segments.len() > keep
            || (self.stored_bytes > self.config.max_stream_bytes && self.segments.len() > 1)
        {
            if let Some(oldest) = self.segments.pop_front() {
                self.stored_bytes -= oldest.bytes.len();
            }
        }
    }

    /// Drops the oldest segments while the stored ones hold more than `max_bytes` and more
    /// than one is stored (the newest always stays, as with
    /// [`HlsConfig::max_stream_bytes`]), and renders the playlist again if any went: it lists
    /// only segments that can be fetched. This is for a budget shared by many streams, which
    /// one segmenter cannot see. Returns how many were dropped.
    pub fn trim_to(&mut self, max_bytes: usize) -> usize {
        let mut dropped = 0;
        while self.stored_bytes > max_bytes && self.segments.len() > 1 {
            if let Some(oldest) = self.segments.pop_front() {
                self.stored_bytes -= oldest.bytes.len();
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.render();
        }
        dropped
    }

    fn render(&mut self) {
        let listed: Vec<&Segment> = self.listed().collect();
        let listed_discontinuities = listed.iter().filter(|s| s.discontinuity).count() as u64;
        self.playlist = Some(playlist::render(
            &listed,
            self.config.target_duration_ms,
            self.discontinuities - listed_discontinuities,
            self.ended,
        ));
    }

    /// The live playlist (`index.m3u8`), regenerated when a segment closes; `None` until the
    /// first one has.
    pub fn playlist(&self) -> Option<Bytes> {
        self.playlist.clone()
    }

    /// A stored segment by sequence number (see [`super::parse_segment_name`]): every segment
    /// the playlist lists, and a few older ones.
    pub fn segment(&self, sequence: u64) -> Option<&Segment> {
        let first = self.segments.front()?.sequence;
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        self.segments.get(index)
    }

    /// Every stored segment, oldest first.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &Segment> + ExactSizeIterator {
        self.segments.iter()
    }

    /// The segments the playlist lists, oldest first.
    pub fn listed(&self) -> impl DoubleEndedIterator<Item = &Segment> + ExactSizeIterator {
        let skip = self.segments.len().saturating_sub(self.window());
        self.segments.range(skip..)
    }

    /// The `EXT-X-MEDIA-SEQUENCE` of the playlist: the first listed segment's sequence
    /// number (the next one to be closed while none is).
    pub fn media_sequence(&self) -> u64 {
        self.listed()
            .next()
            .map_or(self.next_sequence, |segment| segment.sequence)
    }

    /// The sequence number the segment being filled will get.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Bytes of all stored segments (bounded by [`HlsConfig::max_stream_bytes`] unless a
    /// single segment is larger).
    pub fn stored_bytes(&self) -> usize {
        self.stored_bytes
    }

    /// Bytes of the segment being filled.
    pub fn partial_bytes(&self) -> usize {
        self.partial.len()
    }

    /// Bytes allocated beyond the stored segments: the buffer of the segment being filled
    /// and the muxer's output buffer, kept from frame to frame so that steady-state
    /// segmenting does not allocate. Zero after [`HlsSegmenter::finish`].
    pub fn buffered_capacity(&self) -> usize {
        self.partial.capacity() + self.arena.capacity()
    }
}

/// The continuity counters of the stream as players see it, across muxers.
///
/// A restart replaces the muxer, whose counters start again at 0; a player that feeds
/// segments to one demuxer across `EXT-X-DISCONTINUITY` (ffmpeg does) would see a continuity
/// error and drop the PES in progress. So the counters are renumbered while the packets are
/// copied anyway: every packet the muxer writes carries payload, so each increments its
/// PID's counter, and renumbering keeps the stream continuous from the first segment on.
#[derive(Debug, Clone, Default)]
struct Continuity {
    /// (PID, next counter) of the few PIDs a muxer uses.
    next: Vec<(u16, u8)>,
}

impl Continuity {
    fn renumber(&mut self, packets: &mut [u8]) {
        for packet in packets.chunks_exact_mut(PACKET_LEN) {
            let [_, pid_high, pid_low, flags, ..] = packet else {
                continue;
            };
            let pid = u16::from_be_bytes([*pid_high & 0x1f, *pid_low]);
            let entry = match self.next.iter_mut().find(|(p, _)| *p == pid) {
                Some(entry) => entry,
                None => {
                    self.next.push((pid, *flags & 0x0f));
                    match self.next.last_mut() {
                        Some(entry) => entry,
                        None => continue,
                    }
                }
            };
            *flags = (*flags & 0xf0) | entry.1;
            entry.1 = (entry.1 + 1) & 0x0f;
        }
    }
}

/// Copies what the muxer queued for one frame into the partial segment.
fn append(partial: &mut BytesMut, queue: &mut OutQueue, continuity: &mut Continuity) {
    let start = partial.len();
    partial.reserve(queue.queued_bytes());
    for piece in queue.segments() {
        partial.extend_from_slice(piece);
    }
    queue.clear();
    if let Some(packets) = partial.get_mut(start..) {
        continuity.renumber(packets);
    }
}
