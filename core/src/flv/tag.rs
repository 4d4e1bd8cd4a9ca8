//! Tag bodies: the bytes after the 11-byte tag header, identical to RTMP message payloads of
//! types 8, 9 and 18.

use arrayvec::ArrayVec;
use bytes::{BufMut, Bytes, BytesMut};

use super::{FlvError, TagType};
use crate::amf0;
use crate::media::{AacConfig, AvcConfig, Codec, Frame, HevcConfig, Media, Metadata, TrackConfig};
use crate::wire::Reader;

/// Legacy video codec id of H.264.
pub const CODEC_ID_AVC: u8 = 7;
/// Legacy (non-standard but widespread) video codec id of H.265.
pub const CODEC_ID_HEVC: u8 = 12;
/// Sound format of AAC.
pub const SOUND_FORMAT_AAC: u8 = 10;
/// The first audio byte for AAC: format 10, and the rate/size/channel bits the specification
/// fixes for AAC (44 kHz, 16-bit, stereo) whatever the real configuration.
pub const AAC_SOUND_BYTE: u8 = 0xaf;

/// Frame type of a key frame.
const FRAME_TYPE_KEY: u8 = 1;
/// Frame type of an inter frame.
const FRAME_TYPE_INTER: u8 = 2;
/// Frame type of a video info / command frame, which carries no picture.
const FRAME_TYPE_COMMAND: u8 = 5;

/// Enhanced RTMP: the `IsExHeader` bit of the first video byte.
const EX_HEADER: u8 = 0x80;
/// Enhanced RTMP video packet types.
const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES: u8 = 1;
const PACKET_CODED_FRAMES_X: u8 = 3;

/// Legacy AVC / AAC packet types.
const PACKET_SEQUENCE_HEADER: u8 = 0;
const PACKET_RAW: u8 = 1;

const FOURCC_HEVC: [u8; 4] = *b"hvc1";
const FOURCC_AVC: [u8; 4] = *b"avc1";

/// Largest body header we write: enhanced video, 1 + FourCC + SI24 composition time.
const MAX_BODY_HEADER: usize = 8;

/// Parses one tag body into the media item it carries.
///
/// Returns `Ok(None)` for well-formed tags we do not carry (other codecs, end-of-sequence,
/// enhanced RTMP metadata and multitrack packets, command frames, script data other than
/// `onMetaData`). Payloads and configuration records are zero-copy slices of `body`.
pub fn parse_tag_body(
    tag_type: TagType,
    timestamp: u32,
    body: Bytes,
) -> Result<Option<Media>, FlvError> {
    match tag_type {
        TagType::Audio => parse_audio(timestamp, &body),
        TagType::Video => parse_video(timestamp, &body),
        TagType::Script => parse_script(&body),
    }
}

fn truncated(what: &'static str, reader: &Reader<'_>) -> FlvError {
    FlvError::Truncated {
        what,
        offset: reader.offset() as u64,
    }
}

fn parse_audio(timestamp: u32, body: &Bytes) -> Result<Option<Media>, FlvError> {
    let mut reader = Reader::new(body);
    let first = reader
        .u8()
        .ok_or_else(|| truncated("audio tag header", &reader))?;
    if first >> 4 != SOUND_FORMAT_AAC {
        return Ok(None);
    }
    let packet_type = reader
        .u8()
        .ok_or_else(|| truncated("AAC packet type", &reader))?;
    let rest = body.slice(reader.offset()..);
    match packet_type {
        PACKET_SEQUENCE_HEADER => {
            let config = AacConfig::parse(rest).map_err(|source| FlvError::Config {
                what: "AAC sequence header",
                source,
            })?;
            Ok(Some(Media::Config(TrackConfig::Aac(config))))
        }
        PACKET_RAW => Ok(Some(Media::Frame(Frame {
            codec: Codec::Aac,
            dts: i64::from(timestamp),
            pts: i64::from(timestamp),
            keyframe: true,
            payload: rest,
        }))),
        _ => Ok(None),
    }
}

fn parse_video(timestamp: u32, body: &Bytes) -> Result<Option<Media>, FlvError> {
    let mut reader = Reader::new(body);
    let first = reader
        .u8()
        .ok_or_else(|| truncated("video tag header", &reader))?;
    if first & EX_HEADER != 0 {
        return parse_enhanced_video(first, timestamp, body, reader);
    }
    let frame_type = first >> 4;
    let codec = match first & 0x0f {
        CODEC_ID_AVC => Codec::H264,
        CODEC_ID_HEVC => Codec::H265,
        _ => return Ok(None),
    };
    if frame_type == FRAME_TYPE_COMMAND {
        return Ok(None);
    }
    let packet_type = reader
        .u8()
        .ok_or_else(|| truncated("video packet type", &reader))?;
    let cts = read_si24(&mut reader)?;
    let rest = body.slice(reader.offset()..);
    match packet_type {
        PACKET_SEQUENCE_HEADER => video_config(codec, rest),
        PACKET_RAW => Ok(Some(video_frame(codec, timestamp, cts, frame_type, rest))),
        _ => Ok(None),
    }
}

fn parse_enhanced_video(
    first: u8,
    timestamp: u32,
    body: &Bytes,
    mut reader: Reader<'_>,
) -> Result<Option<Media>, FlvError> {
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0f;
    // Only these three carry something we forward; checking before the FourCC matters because
    // multitrack and ModEx packets put other fields where the FourCC would be.
    if !matches!(
        packet_type,
        PACKET_SEQUENCE_START | PACKET_CODED_FRAMES | PACKET_CODED_FRAMES_X
    ) || frame_type == FRAME_TYPE_COMMAND
    {
        return Ok(None);
    }
    let fourcc = reader
        .array::<4>()
        .ok_or_else(|| truncated("enhanced video FourCC", &reader))?;
    let codec = match fourcc {
        FOURCC_HEVC => Codec::H265,
        FOURCC_AVC => Codec::H264,
        _ => return Ok(None),
    };
    let cts = if packet_type == PACKET_CODED_FRAMES {
        read_si24(&mut reader)?
    } else {
        0
    };
    let rest = body.slice(reader.offset()..);
    if packet_type == PACKET_SEQUENCE_START {
        video_config(codec, rest)
    } else {
        Ok(Some(video_frame(codec, timestamp, cts, frame_type, rest)))
    }
}

fn read_si24(reader: &mut Reader<'_>) -> Result<i32, FlvError> {
    let raw = reader
        .u24_be()
        .ok_or_else(|| truncated("composition time", reader))?;
    // Shift the sign bit of the 24-bit field into bit 31, then back with sign extension.
    Ok(((raw << 8) as i32) >> 8)
}

fn video_config(codec: Codec, record: Bytes) -> Result<Option<Media>, FlvError> {
    let config = match codec {
        Codec::H265 => HevcConfig::parse(record)
            .map(TrackConfig::Hevc)
            .map_err(|source| FlvError::Config {
                what: "HEVC sequence header",
                source,
            })?,
        _ => AvcConfig::parse(record)
            .map(TrackConfig::Avc)
            .map_err(|source| FlvError::Config {
                what: "AVC sequence header",
                source,
            })?,
    };
    Ok(Some(Media::Config(config)))
}

fn video_frame(codec: Codec, timestamp: u32, cts: i32, frame_type: u8, payload: Bytes) -> Media {
    let dts = i64::from(timestamp);
    Media::Frame(Frame {
        codec,
        dts,
        pts: dts + i64::from(cts),
        keyframe: frame_type == FRAME_TYPE_KEY,
        payload,
    })
}

fn parse_script(body: &Bytes) -> Result<Option<Media>, FlvError> {
    let mut reader = Reader::new(body);
    let mut start = 0;
    let mut name = amf0::decode(&mut reader)?;
    // A publisher sends `@setDataFrame, onMetaData, {...}`; players and files expect it
    // without the prefix.
    if name.as_str() == Some("@setDataFrame") {
        start = reader.offset();
        name = amf0::decode(&mut reader)?;
    }
    if name.as_str() != Some("onMetaData") || reader.is_empty() {
        return Ok(None);
    }
    amf0::decode(&mut reader)?;
    Ok(Some(Media::Metadata(Metadata {
        amf0: body.slice(start..reader.offset()),
    })))
}

/// A tag body ready to send: a small header built in an arena and the payload by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagBody {
    /// Which kind of tag (or RTMP message type) this is.
    pub tag_type: TagType,
    /// Timestamp in milliseconds: the frame's dts wrapped to 32 bits, 0 for configurations
    /// and metadata.
    pub timestamp: u32,
    /// The codec-specific bytes before the payload (empty for script data).
    pub header: Bytes,
    /// The frame payload, configuration record or metadata, shared with the media item.
    pub payload: Bytes,
}

impl TagBody {
    /// Total body length: header plus payload.
    pub fn len(&self) -> usize {
        self.header.len() + self.payload.len()
    }

    /// True when the body has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds the tag body for a media item: the header in `arena`, the payload zero-copy.
///
/// H.264 uses the legacy AVC layout; H.265 uses enhanced RTMP (`hvc1`, CodedFrames with a
/// composition time) since that is what current ffmpeg, OBS and players expect. Composition
/// offsets outside the signed 24-bit range are clamped.
pub fn tag_body(media: &Media, arena: &mut BytesMut) -> TagBody {
    let parts = body_parts(media);
    let header = if parts.header.is_empty() {
        Bytes::new()
    } else {
        arena.reserve(parts.header.len());
        arena.put_slice(&parts.header);
        arena.split().freeze()
    };
    TagBody {
        tag_type: parts.tag_type,
        timestamp: parts.timestamp,
        header,
        payload: parts.payload,
    }
}

/// A tag body before its header is placed anywhere, so the muxer can write the header into
/// the same arena block as the tag header.
pub(super) struct BodyParts {
    pub tag_type: TagType,
    pub timestamp: u32,
    pub header: ArrayVec<u8, MAX_BODY_HEADER>,
    pub payload: Bytes,
}

pub(super) fn body_parts(media: &Media) -> BodyParts {
    let mut header = ArrayVec::new();
    let (tag_type, timestamp, payload) = match media {
        Media::Config(config) => {
            let tag_type = match config {
                TrackConfig::Avc(_) => {
                    put(
                        &mut header,
                        &[(FRAME_TYPE_KEY << 4) | CODEC_ID_AVC, PACKET_SEQUENCE_HEADER],
                    );
                    put(&mut header, &[0, 0, 0]);
                    TagType::Video
                }
                TrackConfig::Hevc(_) => {
                    put(
                        &mut header,
                        &[EX_HEADER | (FRAME_TYPE_KEY << 4) | PACKET_SEQUENCE_START],
                    );
                    put(&mut header, &FOURCC_HEVC);
                    TagType::Video
                }
                TrackConfig::Aac(_) => {
                    put(&mut header, &[AAC_SOUND_BYTE, PACKET_SEQUENCE_HEADER]);
                    TagType::Audio
                }
            };
            (tag_type, 0, config.record().clone())
        }
        Media::Metadata(metadata) => (TagType::Script, 0, metadata.amf0.clone()),
        Media::Frame(frame) => {
            let frame_type = if frame.keyframe {
                FRAME_TYPE_KEY
            } else {
                FRAME_TYPE_INTER
            };
            let cts = si24(frame.composition_offset());
            let tag_type = match frame.codec {
                Codec::H264 => {
                    put(&mut header, &[(frame_type << 4) | CODEC_ID_AVC, PACKET_RAW]);
                    put(&mut header, &cts);
                    TagType::Video
                }
                Codec::H265 => {
                    put(
                        &mut header,
                        &[EX_HEADER | (frame_type << 4) | PACKET_CODED_FRAMES],
                    );
                    put(&mut header, &FOURCC_HEVC);
                    put(&mut header, &cts);
                    TagType::Video
                }
                Codec::Aac => {
                    put(&mut header, &[AAC_SOUND_BYTE, PACKET_RAW]);
                    TagType::Audio
                }
            };
            // Wrapping is the FLV and RTMP convention for timestamps past 2^32 ms.
            (tag_type, frame.dts as u32, frame.payload.clone())
        }
    };
    BodyParts {
        tag_type,
        timestamp,
        header,
        payload,
    }
}

/// Appends to a fixed-capacity header; every caller stays within [`MAX_BODY_HEADER`].
fn put(header: &mut ArrayVec<u8, MAX_BODY_HEADER>, bytes: &[u8]) {
    for &byte in bytes {
        let _ = header.try_push(byte);
    }
}

/// The signed 24-bit big-endian encoding of a composition offset, clamped to range.
fn si24(offset: i64) -> [u8; 3] {
    let clamped = offset.clamp(-(1 << 23), (1 << 23) - 1) as i32;
    let [_, a, b, c] = clamped.to_be_bytes();
    [a, b, c]
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    pub(crate) fn avc_record() -> Bytes {
        AvcConfig::from_parameter_sets(
            Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac]),
            Bytes::from_static(&[0x68, 0xeb]),
        )
        .unwrap()
        .record
    }

    pub(crate) fn hevc_record() -> Bytes {
        let mut record = vec![
            1u8, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0,
            0, 0x0f, 3,
        ];
        for (kind, nal) in [
            (32u8, &[0x40u8, 0x01, 0x0c][..]),
            (33, &[0x42, 0x01, 0x01]),
            (34, &[0x44, 0x01, 0xc1]),
        ] {
            record.extend_from_slice(&[0x80 | kind, 0, 1, 0, nal.len() as u8]);
            record.extend_from_slice(nal);
        }
        Bytes::from(record)
    }

    fn body(parts: &[&[u8]]) -> Bytes {
        Bytes::from(parts.concat())
    }

    fn frame(media: Option<Media>) -> Frame {
        match media {
            Some(Media::Frame(frame)) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn legacy_avc_sequence_header_and_frames() {
        let record = avc_record();
        let media = parse_tag_body(TagType::Video, 0, body(&[&[0x17, 0, 0, 0, 0], &record]))
            .unwrap()
            .unwrap();
        assert_eq!(
            media,
            Media::Config(TrackConfig::Avc(AvcConfig::parse(record).unwrap()))
        );

        let nal = [0, 0, 0, 2, 0x65, 0x88];
        let tag = body(&[&[0x17, 1, 0, 0, 80], &nal]);
        let key = frame(parse_tag_body(TagType::Video, 1000, tag.clone()).unwrap());
        assert_eq!(key.codec, Codec::H264);
        assert_eq!((key.dts, key.pts, key.keyframe), (1000, 1080, true));
        assert_eq!(key.payload.as_ref(), &nal);
        // Zero copy: the payload points into the tag body.
        assert_eq!(key.payload.as_ptr(), tag[5..].as_ptr());

        // Negative composition time (-2 as SI24), inter frame.
        let inter = frame(
            parse_tag_body(
                TagType::Video,
                40,
                body(&[&[0x27, 1, 0xff, 0xff, 0xfe], &nal]),
            )
            .unwrap(),
        );
        assert_eq!((inter.dts, inter.pts, inter.keyframe), (40, 38, false));

        // End of sequence and other codecs are not carried.
        assert_eq!(
            parse_tag_body(TagType::Video, 0, body(&[&[0x17, 2, 0, 0, 0]])).unwrap(),
            None
        );
        assert_eq!(
            parse_tag_body(TagType::Video, 0, body(&[&[0x12, 0, 0]])).unwrap(),
            None
        );
    }

    #[test]
    fn legacy_hevc_codec_id_twelve() {
        let record = hevc_record();
        let media = parse_tag_body(TagType::Video, 0, body(&[&[0x1c, 0, 0, 0, 0], &record]))
            .unwrap()
            .unwrap();
        assert_eq!(
            media,
            Media::Config(TrackConfig::Hevc(HevcConfig::parse(record).unwrap()))
        );
        let nal = [0, 0, 0, 3, 0x26, 0x01, 0xaf];
        let key =
            frame(parse_tag_body(TagType::Video, 5, body(&[&[0x1c, 1, 0, 0, 33], &nal])).unwrap());
        assert_eq!(key.codec, Codec::H265);
        assert_eq!((key.dts, key.pts, key.keyframe), (5, 38, true));
        assert_eq!(key.payload.as_ref(), &nal);
    }

    #[test]
    fn enhanced_rtmp_hvc1() {
        let record = hevc_record();
        let media = parse_tag_body(TagType::Video, 0, body(&[&[0x90], b"hvc1", &record]))
            .unwrap()
            .unwrap();
        assert_eq!(
            media,
            Media::Config(TrackConfig::Hevc(HevcConfig::parse(record).unwrap()))
        );

        let nal = [0, 0, 0, 1, 0x02];
        // CodedFrames, inter frame, cts 66.
        let coded = frame(
            parse_tag_body(
                TagType::Video,
                100,
                body(&[&[0xa1], b"hvc1", &[0, 0, 66], &nal]),
            )
            .unwrap(),
        );
        assert_eq!(coded.codec, Codec::H265);
        assert_eq!((coded.dts, coded.pts, coded.keyframe), (100, 166, false));
        assert_eq!(coded.payload.as_ref(), &nal);
        // CodedFramesX: no composition time field.
        let coded_x =
            frame(parse_tag_body(TagType::Video, 100, body(&[&[0x93], b"hvc1", &nal])).unwrap());
        assert_eq!(
            (coded_x.dts, coded_x.pts, coded_x.keyframe),
            (100, 100, true)
        );
        assert_eq!(coded_x.payload.as_ref(), &nal);
        // avc1 is accepted too.
        let avc = frame(
            parse_tag_body(
                TagType::Video,
                1,
                body(&[&[0x91], b"avc1", &[0, 0, 0], &nal]),
            )
            .unwrap(),
        );
        assert_eq!(avc.codec, Codec::H264);
        // Sequence end, metadata, unknown FourCC, command frames: nothing to carry.
        for tag in [
            body(&[&[0x92], b"hvc1"]),
            body(&[&[0x94], b"hvc1", &[0x02, 0, 0]]),
            body(&[&[0x91], b"av01", &[0, 0, 0], &nal]),
            body(&[&[0xd1], &[0x00]]),
            body(&[&[0x96], &[0x00, 0x01]]),
        ] {
            assert_eq!(parse_tag_body(TagType::Video, 0, tag).unwrap(), None);
        }
        // Truncated FourCC is an error.
        assert!(matches!(
            parse_tag_body(TagType::Video, 0, body(&[&[0x91], b"hv"])),
            Err(FlvError::Truncated { offset: 1, .. })
        ));
    }

    #[test]
    fn aac_config_and_raw_frames() {
        let media = parse_tag_body(TagType::Audio, 0, body(&[&[0xaf, 0, 0x12, 0x10]]))
            .unwrap()
            .unwrap();
        let Media::Config(TrackConfig::Aac(config)) = media else {
            panic!("expected AAC config");
        };
        assert_eq!(
            (config.object_type, config.sample_rate, config.channels),
            (2, 44100, 2)
        );

        let raw =
            frame(parse_tag_body(TagType::Audio, 23, body(&[&[0xaf, 1, 0x21, 0x10]])).unwrap());
        assert_eq!(raw.codec, Codec::Aac);
        assert_eq!((raw.dts, raw.pts, raw.keyframe), (23, 23, true));
        assert_eq!(raw.payload.as_ref(), &[0x21, 0x10]);

        // MP3 is not carried; a bare AAC byte is truncated.
        assert_eq!(
            parse_tag_body(TagType::Audio, 0, body(&[&[0x2f, 0xff]])).unwrap(),
            None
        );
        assert!(matches!(
            parse_tag_body(TagType::Audio, 0, body(&[&[0xaf]])),
            Err(FlvError::Truncated { .. })
        ));
        assert!(matches!(
            parse_tag_body(TagType::Audio, 0, body(&[&[0xaf, 0]])),
            Err(FlvError::Config { .. })
        ));
    }

    fn on_metadata() -> Vec<u8> {
        let mut amf = Vec::new();
        amf0::encode(&"onMetaData".into(), &mut amf);
        amf0::encode(
            &amf0::Amf0Value::EcmaArray(vec![("width".into(), 1280.0.into())]),
            &mut amf,
        );
        amf
    }

    #[test]
    fn on_metadata_with_and_without_set_data_frame() {
        let amf = on_metadata();
        let plain = parse_tag_body(TagType::Script, 0, Bytes::from(amf.clone())).unwrap();
        assert_eq!(
            plain,
            Some(Media::Metadata(Metadata {
                amf0: Bytes::from(amf.clone())
            }))
        );

        let mut prefixed = Vec::new();
        amf0::encode(&"@setDataFrame".into(), &mut prefixed);
        prefixed.extend_from_slice(&amf);
        // Trailing values after the properties are not part of the metadata.
        prefixed.push(amf0::MARKER_NULL);
        let stripped = parse_tag_body(TagType::Script, 0, Bytes::from(prefixed)).unwrap();
        assert_eq!(
            stripped,
            Some(Media::Metadata(Metadata {
                amf0: Bytes::from(amf)
            }))
        );

        let mut cue = Vec::new();
        amf0::encode(&"onCuePoint".into(), &mut cue);
        amf0::encode(&amf0::Amf0Value::Null, &mut cue);
        assert_eq!(
            parse_tag_body(TagType::Script, 0, Bytes::from(cue)).unwrap(),
            None
        );
        assert!(matches!(
            parse_tag_body(TagType::Script, 0, Bytes::from_static(&[0x11])),
            Err(FlvError::Amf0 { .. })
        ));
    }

    #[test]
    fn tag_bodies_parse_back_to_the_same_media() {
        let mut arena = BytesMut::new();
        let items = [
            Media::Config(TrackConfig::Avc(AvcConfig::parse(avc_record()).unwrap())),
            Media::Config(TrackConfig::Hevc(HevcConfig::parse(hevc_record()).unwrap())),
            Media::Config(TrackConfig::Aac(AacConfig::new(2, 48000, 2).unwrap())),
            Media::Metadata(Metadata {
                amf0: Bytes::from(on_metadata()),
            }),
            Media::Frame(Frame {
                codec: Codec::H264,
                dts: 1 << 32 | 7,
                pts: (1 << 32 | 7) - 100,
                keyframe: false,
                payload: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            }),
            Media::Frame(Frame {
                codec: Codec::H265,
                dts: 10,
                pts: 50,
                keyframe: true,
                payload: Bytes::from_static(&[0, 0, 0, 1, 0x26]),
            }),
            Media::Frame(Frame {
                codec: Codec::Aac,
                dts: 20,
                pts: 20,
                keyframe: true,
                payload: Bytes::from_static(&[0x21]),
            }),
        ];
        for media in &items {
            let tag = tag_body(media, &mut arena);
            let whole = Bytes::from([tag.header.as_ref(), tag.payload.as_ref()].concat());
            assert_eq!(whole.len(), tag.len());
            let parsed = parse_tag_body(tag.tag_type, tag.timestamp, whole)
                .unwrap()
                .unwrap();
            let expected = match media {
                // The timestamp wraps to 32 bits.
                Media::Frame(frame) => Media::Frame(Frame {
                    dts: frame.dts & 0xffff_ffff,
                    pts: (frame.dts & 0xffff_ffff) + frame.composition_offset(),
                    ..frame.clone()
                }),
                other => other.clone(),
            };
            assert_eq!(parsed, expected);
        }
    }

    #[test]
    fn body_headers_have_the_documented_layout() {
        let mut arena = BytesMut::new();
        let h265 = Media::Frame(Frame {
            codec: Codec::H265,
            dts: 0,
            pts: 1 << 30,
            keyframe: true,
            payload: Bytes::from_static(&[1]),
        });
        let tag = tag_body(&h265, &mut arena);
        // Clamped to the largest SI24.
        assert_eq!(
            tag.header.as_ref(),
            &[0x91, b'h', b'v', b'c', b'1', 0x7f, 0xff, 0xff]
        );
        let aac = Media::Config(TrackConfig::Aac(AacConfig::new(2, 44100, 2).unwrap()));
        let tag = tag_body(&aac, &mut arena);
        assert_eq!(tag.header.as_ref(), &[0xaf, 0]);
        assert_eq!(tag.payload.as_ref(), &[0x12, 0x10]);
    }

    #[test]
    fn si24_sign_extends() {
        let mut reader = Reader::new(&[0x80, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(read_si24(&mut reader).unwrap(), -(1 << 23));
        assert_eq!(read_si24(&mut reader).unwrap(), (1 << 23) - 1);
        assert_eq!(read_si24(&mut reader).unwrap(), -1);
        assert_eq!(si24(-1), [0xff, 0xff, 0xff]);
    }
}
