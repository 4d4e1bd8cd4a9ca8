//! A synthetic, deterministic H.264 + AAC source whose every frame says who it is.
//!
//! Frames have realistic sizes (large keyframes, small inter frames, small audio frames,
//! drawn from a seeded generator) and payloads that encode their track, their sequence number
//! on that track and their own length, followed by filler computed from the sequence number.
//! A player can therefore check each frame it receives for identity, order and integrity
//! without knowing the run that produced it. The filler never contains a zero byte, so a
//! payload cannot look like an Annex-B start code when a muxer converts it.

use bytes::{BufMut, Bytes, BytesMut};
use mediakit_core::media::{AacConfig, AvcConfig, Codec, Frame, Media, MediaKind, TrackConfig};

use crate::rng::SimRng;

/// The marker that starts every synthetic frame's header.
const MAGIC: &[u8; 2] = b"MK";
/// Magic, track byte, sequence number (u64) and payload length (u32).
const HEADER_LEN: usize = 2 + 1 + 8 + 4;
/// A video payload's NAL length prefix and NAL header before the synthetic header.
const NAL_PREFIX_LEN: usize = 5;
/// NAL header of an IDR slice (nal_ref_idc 3, type 5) and of a non-IDR slice (2, type 1).
const NAL_IDR: u8 = 0x65;
const NAL_SLICE: u8 = 0x41;
/// AAC frames are 1024 samples at this rate.
pub const AUDIO_RATE: u32 = 48_000;
const SAMPLES_PER_AUDIO_FRAME: u64 = 1024;

/// A 1280x720 High-profile SPS and its PPS, as x264 writes them.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// Identifies a synthetic frame: its track and its sequence number on that track (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameId {
    /// Video or audio.
    pub kind: Track,
    /// The frame's number on its track.
    pub seq: u64,
}

/// The two tracks of the synthetic source (`MediaKind` without the `non_exhaustive` codec
/// baggage, and ordered so traces sort video first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Track {
    /// H.264.
    Video,
    /// AAC.
    Audio,
}

impl Track {
    fn byte(self) -> u8 {
        match self {
            Track::Video => b'V',
            Track::Audio => b'A',
        }
    }
}

/// Why a received frame is not the one the source sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The payload does not start with the synthetic header.
    #[error("{codec:?} frame of {len} bytes: no synthetic header")]
    NoHeader {
        /// The frame's codec.
        codec: Codec,
        /// The payload's length.
        len: usize,
    },
    /// The header names a length other than the payload's.
    #[error("{id:?}: payload of {actual} bytes, header says {declared}")]
    Length {
        /// The frame the header names.
        id: FrameId,
        /// The length in the header.
        declared: usize,
        /// The payload's length.
        actual: usize,
    },
    /// A filler byte differs from what the sequence number gives.
    #[error("{id:?}: byte {offset} corrupted")]
    Corrupted {
        /// The frame the header names.
        id: FrameId,
        /// The offset in the payload.
        offset: usize,
    },
    /// The keyframe flag, NAL type or codec disagrees with the frame's sequence number.
    #[error("{id:?}: wrong {what}")]
    Mismatch {
        /// The frame the header names.
        id: FrameId,
        /// What disagrees.
        what: &'static str,
    },
}

/// The shape of the synthetic stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSpec {
    /// Video frames per second.
    pub fps: u32,
    /// Video frames per GOP: frame `n` is a keyframe when `n % keyframe_interval == 0`.
    pub keyframe_interval: u32,
    /// Whether an AAC track (48 kHz, stereo) is interleaved with the video.
    pub audio: bool,
    /// Range of keyframe payload sizes in bytes.
    pub keyframe_bytes: (usize, usize),
    /// Range of inter-frame payload sizes in bytes.
    pub frame_bytes: (usize, usize),
    /// Range of audio frame payload sizes in bytes.
    pub audio_bytes: (usize, usize),
    /// Seeds the frame sizes.
    pub seed: u64,
}

impl Default for MediaSpec {
    /// 25 fps with a keyframe every 2 s, roughly 1.5 Mbit/s of video plus AAC.
    fn default() -> Self {
        Self {
            fps: 25,
            keyframe_interval: 50,
            audio: true,
            keyframe_bytes: (20_000, 40_000),
            frame_bytes: (2_000, 8_000),
            audio_bytes: (200, 400),
            seed: 0,
        }
    }
}

impl MediaSpec {
    /// The decode time in milliseconds of frame `id`, from the start of the stream.
    pub fn dts(&self, id: FrameId) -> i64 {
        let ms = match id.kind {
            Track::Video => id.seq * 1000 / u64::from(self.fps.max(1)),
            Track::Audio => id.seq * SAMPLES_PER_AUDIO_FRAME * 1000 / u64::from(AUDIO_RATE),
        };
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// Whether frame `id` is a keyframe (every audio frame is).
    pub fn is_keyframe(&self, id: FrameId) -> bool {
        match id.kind {
            Track::Video => id.seq % u64::from(self.keyframe_interval.max(1)) == 0,
            Track::Audio => true,
        }
    }

    /// The configuration items that start the stream: the AVC record, then (with audio) the
    /// AAC AudioSpecificConfig.
    pub fn configs(&self) -> Vec<Media> {
        let mut configs = Vec::new();
        if let Ok(avc) =
            AvcConfig::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
        {
            configs.push(Media::Config(TrackConfig::Avc(avc)));
        }
        if self.audio {
            if let Ok(aac) = AacConfig::new(2, AUDIO_RATE, 2) {
                configs.push(Media::Config(TrackConfig::Aac(aac)));
            }
        }
        configs
    }

    /// The payload of frame `id` with `len` bytes (at least the header's length).
    pub fn payload(&self, id: FrameId, len: usize) -> Bytes {
        let prefix = match id.kind {
            Track::Video => NAL_PREFIX_LEN,
            Track::Audio => 0,
        };
        let len = len.max(prefix + HEADER_LEN);
        let mut payload = BytesMut::with_capacity(len);
        if id.kind == Track::Video {
            payload.put_u32(u32::try_from(len - 4).unwrap_or(u32::MAX));
            payload.put_u8(if self.is_keyframe(id) {
                NAL_IDR
            } else {
                NAL_SLICE
            });
        }
        payload.put_slice(MAGIC);
        payload.put_u8(id.kind.byte());
        payload.put_u64(id.seq);
        payload.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        for offset in payload.len()..len {
            payload.put_u8(filler(id, offset));
        }
        payload.freeze()
    }

    /// Which synthetic frame `frame` is, after checking its every byte, its codec and its
    /// keyframe flag. (Timestamps are checked over a whole stream by the client log, since a
    /// server may shift them.)
    pub fn check(&self, frame: &Frame) -> Result<FrameId, FrameError> {
        let payload = &frame.payload;
        let no_header = || FrameError::NoHeader {
            codec: frame.codec,
            len: payload.len(),
        };
        let (kind, start) = match frame.codec {
            Codec::H264 => (Track::Video, NAL_PREFIX_LEN),
            Codec::Aac => (Track::Audio, 0),
            _ => return Err(no_header()),
        };
        let field = |from: usize, len: usize| payload.get(start + from..start + from + len);
        let array8 = field(3, 8).and_then(|b| <[u8; 8]>::try_from(b).ok());
        let array4 = field(11, 4).and_then(|b| <[u8; 4]>::try_from(b).ok());
        let (Some(magic), Some(track), Some(seq), Some(len)) =
            (field(0, 2), field(2, 1), array8, array4)
        else {
            return Err(no_header());
        };
        if magic != MAGIC || track != [kind.byte()] {
            return Err(no_header());
        }
        let seq = u64::from_be_bytes(seq);
        let declared = u32::from_be_bytes(len) as usize;
        let id = FrameId { kind, seq };
        if declared != payload.len() {
            return Err(FrameError::Length {
                id,
                declared,
                actual: payload.len(),
            });
        }
        if kind == Track::Video {
            let keyframe = self.is_keyframe(id);
            let nal_len = payload
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes);
            if nal_len != Some(u32::try_from(payload.len() - 4).unwrap_or(u32::MAX)) {
                return Err(FrameError::Mismatch {
                    id,
                    what: "NAL length",
                });
            }
            let nal_header = if keyframe { NAL_IDR } else { NAL_SLICE };
            if payload.get(4) != Some(&nal_header) {
                return Err(FrameError::Mismatch {
                    id,
                    what: "NAL type",
                });
            }
            if frame.keyframe != keyframe {
                return Err(FrameError::Mismatch {
                    id,
                    what: "keyframe flag",
                });
            }
        }
        let body = start + HEADER_LEN;
        if let Some(offset) =
            (body..payload.len()).find(|&i| payload.get(i) != Some(&filler(id, i)))
        {
            return Err(FrameError::Corrupted { id, offset });
        }
        Ok(id)
    }
}

/// The filler byte at `offset` of frame `id`'s payload: never zero.
fn filler(id: FrameId, offset: usize) -> u8 {
    let mixed = id
        .seq
        .wrapping_mul(131)
        .wrapping_add(offset as u64 * 7)
        .wrapping_add(u64::from(id.kind.byte()));
    1 + (mixed % 251) as u8
}

/// Produces the synthetic stream's frames in decode order (video first at equal times).
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    spec: MediaSpec,
    sizes: SimRng,
    next_video: u64,
    next_audio: u64,
}

impl SyntheticSource {
    /// A source at the start of the stream.
    pub fn new(spec: MediaSpec) -> Self {
        let sizes = SimRng::new(spec.seed);
        Self {
            spec,
            sizes,
            next_video: 0,
            next_audio: 0,
        }
    }

    /// The stream's shape.
    pub fn spec(&self) -> &MediaSpec {
        &self.spec
    }

    /// The frame [`SyntheticSource::next_frame`] returns next, without its payload.
    pub fn peek(&self) -> FrameId {
        let video = FrameId {
            kind: Track::Video,
            seq: self.next_video,
        };
        let audio = FrameId {
            kind: Track::Audio,
            seq: self.next_audio,
        };
        if self.spec.audio && self.spec.dts(audio) < self.spec.dts(video) {
            audio
        } else {
            video
        }
    }

    /// The next frame in decode order.
    pub fn next_frame(&mut self) -> Frame {
        let id = self.peek();
        let (low, high) = match id.kind {
            Track::Video if self.spec.is_keyframe(id) => self.spec.keyframe_bytes,
            Track::Video => self.spec.frame_bytes,
            Track::Audio => self.spec.audio_bytes,
        };
        let len = self.sizes.range(low as u64, high as u64 + 1) as usize;
        match id.kind {
            Track::Video => self.next_video += 1,
            Track::Audio => self.next_audio += 1,
        }
        let dts = self.spec.dts(id);
        Frame {
            codec: match id.kind {
                Track::Video => Codec::H264,
                Track::Audio => Codec::Aac,
            },
            dts,
            pts: dts,
            keyframe: self.spec.is_keyframe(id),
            payload: self.spec.payload(id, len),
        }
    }
}

/// The track a media item belongs to, for configs as for frames.
pub fn track_of(kind: MediaKind) -> Track {
    match kind {
        MediaKind::Video => Track::Video,
        MediaKind::Audio => Track::Audio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_come_in_decode_order_with_keyframes_every_interval() {
        let mut source = SyntheticSource::new(MediaSpec::default());
        let frames: Vec<Frame> = (0..200).map(|_| source.next_frame()).collect();
        assert!(frames.windows(2).all(|w| w[0].dts <= w[1].dts));
        let spec = MediaSpec::default();
        let ids: Vec<FrameId> = frames.iter().map(|f| spec.check(f).unwrap()).collect();
        let video: Vec<u64> = ids
            .iter()
            .filter(|id| id.kind == Track::Video)
            .map(|id| id.seq)
            .collect();
        assert_eq!(video, (0..video.len() as u64).collect::<Vec<_>>());
        assert!(frames[0].keyframe && frames[0].codec == Codec::H264);
        let keyframes = frames
            .iter()
            .filter(|f| f.codec == Codec::H264 && f.keyframe)
            .count();
        assert_eq!(keyframes, video.len().div_ceil(50));
        // 48 kHz AAC: 46.875 frames a second beside 25 video frames.
        let audio = ids.len() - video.len();
        assert!((audio as f64 / video.len() as f64 - 1.875).abs() < 0.05);
    }

    #[test]
    fn sizes_follow_the_seed() {
        let sizes = |seed| {
            let mut source = SyntheticSource::new(MediaSpec {
                seed,
                ..MediaSpec::default()
            });
            (0..20)
                .map(|_| source.next_frame().payload.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(1), sizes(1));
        assert_ne!(sizes(1), sizes(2));
        assert!((20_000..=40_000).contains(&sizes(1)[0]));
    }

    #[test]
    fn a_damaged_frame_is_caught() {
        let spec = MediaSpec::default();
        let mut source = SyntheticSource::new(spec.clone());
        let frame = source.next_frame();
        let mut bytes = frame.payload.to_vec();
        bytes[1000] ^= 1;
        let damaged = Frame {
            payload: Bytes::from(bytes),
            ..frame.clone()
        };
        assert!(matches!(
            spec.check(&damaged),
            Err(FrameError::Corrupted { offset: 1000, .. })
        ));
        let truncated = Frame {
            payload: frame.payload.slice(..frame.payload.len() - 1),
            ..frame.clone()
        };
        assert!(matches!(
            spec.check(&truncated),
            Err(FrameError::Length { .. })
        ));
        let unflagged = Frame {
            keyframe: false,
            ..frame
        };
        assert!(matches!(
            spec.check(&unflagged),
            Err(FrameError::Mismatch {
                what: "keyframe flag",
                ..
            })
        ));
    }

    #[test]
    fn configs_parse_as_the_core_reads_them() {
        let configs = MediaSpec::default().configs();
        assert_eq!(configs.len(), 2);
        let Media::Config(TrackConfig::Avc(avc)) = &configs[0] else {
            panic!("{configs:?}")
        };
        assert_eq!(AvcConfig::parse(avc.record.clone()).unwrap(), *avc);
    }

    proptest! {
        #[test]
        fn every_payload_checks_and_has_no_zero_filler(
            seq in 0u64..1_000_000,
            video: bool,
            len in 0usize..5_000,
        ) {
            let spec = MediaSpec::default();
            let kind = if video { Track::Video } else { Track::Audio };
            let id = FrameId { kind, seq };
            let payload = spec.payload(id, len);
            let frame = Frame {
                codec: if video { Codec::H264 } else { Codec::Aac },
                dts: spec.dts(id),
                pts: spec.dts(id),
                keyframe: spec.is_keyframe(id),
                payload: payload.clone(),
            };
            prop_assert_eq!(spec.check(&frame), Ok(id));
            let body = if video { NAL_PREFIX_LEN + HEADER_LEN } else { HEADER_LEN };
            prop_assert!(payload[body..].iter().all(|b| *b != 0));
        }
    }
}
