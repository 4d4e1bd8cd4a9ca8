//! Deterministic media fixtures shared by the mediakit-core benchmarks.
//!
//! The shapes follow a typical 720p live stream: H.264 at 30 fps with a two-second GOP (one
//! 200 KB IDR, P-frames of 30 KB every fourth frame and 2 KB otherwise, about 3 Mbit/s) and
//! AAC-LC at 44.1 kHz (1024-sample frames of 300 bytes, about 100 kbit/s). Payload bytes come
//! from a fixed-seed xorshift generator, so every run measures the same input.
#![warn(missing_docs)]

use bytes::{BufMut, Bytes, BytesMut};
use mediakit_core::flv::{tag_body, TagType};
use mediakit_core::media::{AacConfig, AvcConfig, Codec, Frame, Media, TrackConfig};
use mediakit_core::rtmp::MessageHeader;

pub mod load;

/// Size of an IDR frame in the GOP.
pub const IDR_FRAME_SIZE: usize = 200_000;
/// Size of every fourth P-frame.
pub const LARGE_P_FRAME_SIZE: usize = 30_000;
/// Size of the other P-frames.
pub const SMALL_P_FRAME_SIZE: usize = 2_000;
/// Size of an AAC frame.
pub const AAC_FRAME_SIZE: usize = 300;
/// Video frames in one GOP (two seconds at 30 fps).
pub const GOP_VIDEO_FRAMES: i64 = 60;
/// Milliseconds the GOP lasts.
pub const GOP_MILLIS: i64 = 2_000;

/// The RTMP chunk stream ids OBS and ffmpeg use for audio and video messages.
pub const CSID_AUDIO: u32 = 4;
/// See [`CSID_AUDIO`].
pub const CSID_VIDEO: u32 = 6;
/// Chunk stream for script data.
pub const CSID_DATA: u32 = 5;
/// The message stream id a publisher's media flows on.
pub const MEDIA_STREAM_ID: u32 = 1;

/// xorshift64: good enough to keep payloads from being trivially compressible and fully
/// reproducible without a dependency.
fn noise(len: usize, seed: u64) -> impl Iterator<Item = u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len).map(move |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    })
}

/// An H.264 access unit of exactly `size` bytes (`size >= 5`): one length-prefixed NAL unit,
/// IDR slice for a keyframe, non-IDR slice otherwise.
pub fn h264_frame(size: usize, keyframe: bool, dts: i64) -> Frame {
    assert!(
        size >= 5,
        "an H.264 frame needs a length prefix and a NAL header"
    );
    let nal_len = size - 4;
    let mut payload = BytesMut::with_capacity(size);
    payload.put_u32(nal_len as u32);
    payload.put_u8(if keyframe { 0x65 } else { 0x41 });
    payload.extend(noise(nal_len - 1, dts as u64 ^ size as u64));
    Frame {
        codec: Codec::H264,
        dts,
        pts: dts,
        keyframe,
        payload: payload.freeze(),
    }
}

/// A raw AAC frame of `size` bytes.
pub fn aac_frame(size: usize, dts: i64) -> Frame {
    Frame {
        codec: Codec::Aac,
        dts,
        pts: dts,
        keyframe: true,
        payload: Bytes::from_iter(noise(size, dts as u64 ^ 0xAAC)),
    }
}

/// The H.264 configuration (High profile, level 3.1) the stream starts with.
pub fn avc_config() -> Media {
    let sps = Bytes::from_static(&[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ]);
    let pps = Bytes::from_static(&[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
    let config = AvcConfig::from_parameter_sets(sps, pps).expect("fixed SPS/PPS are valid");
    Media::Config(TrackConfig::Avc(config))
}

/// The AAC-LC 44.1 kHz stereo configuration.
pub fn aac_config() -> Media {
    let config = AacConfig::new(2, 44_100, 2).expect("AAC-LC 44.1 kHz stereo is valid");
    Media::Config(TrackConfig::Aac(config))
}

/// What a player receives before any frame: the video and the audio configuration.
pub fn stream_start() -> Vec<Media> {
    vec![avc_config(), aac_config()]
}

/// The size of video frame `index` of a GOP.
fn video_frame_size(index: i64) -> usize {
    match index {
        0 => IDR_FRAME_SIZE,
        i if i % 4 == 0 => LARGE_P_FRAME_SIZE,
        _ => SMALL_P_FRAME_SIZE,
    }
}

/// One GOP (two seconds: 60 video frames, 87 audio frames) in publisher order, interleaved by
/// dts, starting with the IDR frame. Repeating it gives a steady live stream.
pub fn gop() -> Vec<Media> {
    let video = (0..GOP_VIDEO_FRAMES).map(|i| {
        let dts = i * 1000 / 30;
        h264_frame(video_frame_size(i), i == 0, dts)
    });
    // 1024 samples per AAC frame at 44.1 kHz.
    let audio = (0..)
        .map(|i: i64| i * 1024 * 1000 / 44_100)
        .take_while(|dts| *dts < GOP_MILLIS)
        .map(|dts| aac_frame(AAC_FRAME_SIZE, dts));
    let mut frames: Vec<Frame> = video.chain(audio).collect();
    // Stable sort keeps video ahead of audio at equal dts, so the IDR comes first.
    frames.sort_by_key(|frame| frame.dts);
    frames.into_iter().map(Media::Frame).collect()
}

/// The single messages the chunk benchmarks encode and decode, named for the report.
pub fn chunk_samples() -> Vec<(&'static str, Media)> {
    vec![
        (
            "video_2k",
            Media::Frame(h264_frame(SMALL_P_FRAME_SIZE, false, 0)),
        ),
        (
            "video_30k",
            Media::Frame(h264_frame(LARGE_P_FRAME_SIZE, false, 0)),
        ),
        (
            "video_200k",
            Media::Frame(h264_frame(IDR_FRAME_SIZE, true, 0)),
        ),
        ("aac_300", Media::Frame(aac_frame(AAC_FRAME_SIZE, 0))),
    ]
}

/// An RTMP media message as a session sends it: the FLV body header (5 bytes for H.264, 2 for
/// AAC) built in `arena`, followed by the payload shared with the frame.
pub fn rtmp_message(media: &Media, arena: &mut BytesMut) -> (MessageHeader, [Bytes; 2]) {
    let body = tag_body(media, arena);
    let csid = match body.tag_type {
        TagType::Audio => CSID_AUDIO,
        TagType::Video => CSID_VIDEO,
        TagType::Script => CSID_DATA,
    };
    let header = MessageHeader {
        csid,
        timestamp: body.timestamp,
        type_id: body.tag_type.as_u8(),
        stream_id: MEDIA_STREAM_ID,
    };
    (header, [body.header, body.payload])
}

/// The message length a [`rtmp_message`] carries.
pub fn body_len(body: &[Bytes]) -> usize {
    body.iter().map(Bytes::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gop_is_two_seconds_of_interleaved_media_starting_at_the_idr() {
        let gop = gop();
        let frames: Vec<&Frame> = gop
            .iter()
            .map(|m| match m {
                Media::Frame(f) => f,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(frames.iter().filter(|f| f.codec == Codec::H264).count(), 60);
        assert_eq!(frames.iter().filter(|f| f.codec == Codec::Aac).count(), 87);
        assert!(frames[0].keyframe && frames[0].payload.len() == IDR_FRAME_SIZE);
        assert!(frames.windows(2).all(|w| w[0].dts <= w[1].dts));
        assert_eq!(
            frames
                .iter()
                .filter(|f| f.keyframe && f.codec == Codec::H264)
                .count(),
            1
        );
    }

    #[test]
    fn frames_are_deterministic_and_length_prefixed() {
        let a = h264_frame(2000, false, 33);
        assert_eq!(a, h264_frame(2000, false, 33));
        assert_eq!(a.payload.len(), 2000);
        assert_eq!(&a.payload[..5], &[0, 0, 0x07, 0xcc, 0x41]);
        assert_ne!(a.payload, h264_frame(2000, false, 66).payload);
    }

    #[test]
    fn rtmp_messages_carry_the_flv_body_header_and_the_shared_payload() {
        let mut arena = BytesMut::new();
        let frame = h264_frame(2000, true, 40);
        let (header, body) = rtmp_message(&Media::Frame(frame.clone()), &mut arena);
        assert_eq!(header.type_id, 9);
        assert_eq!(header.timestamp, 40);
        assert_eq!(&body[0][..], &[0x17, 0x01, 0, 0, 0]);
        assert_eq!(body[1].as_ptr(), frame.payload.as_ptr());
        assert_eq!(body_len(&body), 2005);
        let (audio, body) = rtmp_message(&Media::Frame(aac_frame(300, 0)), &mut arena);
        assert_eq!((audio.csid, audio.type_id), (CSID_AUDIO, 8));
        assert_eq!(&body[0][..], &[0xaf, 0x01]);
    }
}
