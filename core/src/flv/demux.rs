//! Incremental FLV demuxer: bytes in as they arrive, media items out.

use alloc::collections::VecDeque;
use bytes::{Buf, BytesMut};

use super::tag::parse_tag_body;
use super::{FlvError, TagType, FILE_HEADER_LEN, MAX_TAG_DATA_SIZE, TAG_HEADER_LEN};
use crate::latch::Latch;
use crate::media::Media;
use crate::wire::Reader;

/// Default bound on one tag's body (16 MiB, the format's own maximum).
pub const DEFAULT_MAX_TAG_SIZE: usize = MAX_TAG_DATA_SIZE;

/// Tag-type bits of the tag header's first byte; the bit above them marks an encrypted tag.
const TAG_TYPE_MASK: u8 = 0x1f;
const TAG_FILTER: u8 = 0x20;

/// What the file header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    /// The version byte (1 for every FLV in existence).
    pub version: u8,
    /// The audio flag.
    pub has_audio: bool,
    /// The video flag.
    pub has_video: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FileHeader,
    /// Bytes between the file header and PreviousTagSize0 still to skip.
    Skip(u64),
    PreviousTagSize,
    Tag,
}

/// Reads an FLV stream split into reads of any size.
///
/// Feed bytes with [`handle_input`](Self::handle_input), which consumes every complete tag
/// from the front of the buffer and leaves a partial one for the next call; then drain
/// [`poll_media`](Self::poll_media). Tag bodies are `split_to(..).freeze()` from the input
/// buffer, so payloads are never copied.
///
/// Framing errors (bad signature, a tag above the size limit) are returned by `handle_input`
/// and latch: the stream position is lost, so every later call returns the same error. A tag
/// whose body is malformed (say, an unparsable sequence header) is consumed and reported in
/// order as an `Err` item from `poll_media`; the stream continues after it.
#[derive(Debug)]
pub struct FlvDemuxer {
    state: State,
    max_tag_size: usize,
    /// Stream offset of the front of the input buffer, for error messages.
    position: u64,
    header: Option<FlvHeader>,
    ready: VecDeque<Result<Media, FlvError>>,
    failed: Latch<FlvError>,
}

impl Default for FlvDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvDemuxer {
    /// A demuxer that accepts tags up to [`DEFAULT_MAX_TAG_SIZE`].
    pub fn new() -> Self {
        Self::with_max_tag_size(DEFAULT_MAX_TAG_SIZE)
    }

    /// A demuxer that refuses tags whose declared body size exceeds `max_tag_size`.
    pub fn with_max_tag_size(max_tag_size: usize) -> Self {
        Self {
            state: State::FileHeader,
            max_tag_size,
            position: 0,
            header: None,
            ready: VecDeque::new(),
            failed: Latch::new(),
        }
    }

    /// The file header, once it has been read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// Bytes consumed from the stream so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Consumes every complete piece of `input` from its front; an incomplete tag stays in
    /// `input` for the next call, with the next read appended to it.
    pub fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), FlvError> {
        self.failed.check()?;
        let result = self.consume(input);
        self.failed.record(result)
    }

    /// The next media item, or the error of a tag that could not be parsed, in stream order.
    pub fn poll_media(&mut self) -> Option<Result<Media, FlvError>> {
        self.ready.pop_front()
    }

    fn advance(&mut self, input: &mut BytesMut, len: usize) {
        input.advance(len);
        self.position += len as u64;
    }

    fn consume(&mut self, input: &mut BytesMut) -> Result<(), FlvError> {
        loop {
            match self.state {
                State::FileHeader => {
                    let Some(bytes) = input.get(..FILE_HEADER_LEN) else {
                        return Ok(());
                    };
                    let mut reader = Reader::new(bytes);
                    let (signature, version, flags, data_offset) = (
                        reader.array::<3>(),
                        reader.u8(),
                        reader.u8(),
                        reader.u32_be(),
                    );
                    let (Some(signature), Some(version), Some(flags), Some(data_offset)) =
                        (signature, version, flags, data_offset)
                    else {
                        return Ok(());
                    };
                    if &signature != b"FLV" {
                        return Err(FlvError::Signature);
                    }
                    let Some(extra) = data_offset.checked_sub(FILE_HEADER_LEN as u32) else {
                        return Err(FlvError::DataOffset { data_offset });
                    };
                    self.header = Some(FlvHeader {
                        version,
                        has_audio: flags & 0x04 != 0,
                        has_video: flags & 0x01 != 0,
                    });
                    self.advance(input, FILE_HEADER_LEN);
                    self.state = State::Skip(u64::from(extra));
                }
                State::Skip(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    self.advance(input, take);
                    let left = left - take as u64;
                    if left > 0 {
                        self.state = State::Skip(left);
                        return Ok(());
                    }
                    self.state = State::PreviousTagSize;
                }
                State::PreviousTagSize => {
                    // Not checked: writers get it wrong often enough that checking it would
                    // only reject playable streams.
                    if input.len() < 4 {
                        return Ok(());
                    }
                    self.advance(input, 4);
                    self.state = State::Tag;
                }
                State::Tag => {
                    let Some(bytes) = input.get(..TAG_HEADER_LEN) else {
                        return Ok(());
                    };
                    let mut reader = Reader::new(bytes);
                    let (Some(kind), Some(size), Some(low), Some(ext)) =
                        (reader.u8(), reader.u24_be(), reader.u24_be(), reader.u8())
                    else {
                        return Ok(());
                    };
                    let size = size as usize;
                    if size > self.max_tag_size {
                        return Err(FlvError::TagTooLarge {
                            len: size,
                            max: self.max_tag_size,
                            offset: self.position,
                        });
                    }
                    // No reserve for the declared size: a peer that declares a large tag and
                    // then stalls must not make us hold the memory.
                    if input.len() < TAG_HEADER_LEN + size {
                        return Ok(());
                    }
                    let timestamp = (u32::from(ext) << 24) | low;
                    let tag_offset = self.position;
                    self.advance(input, TAG_HEADER_LEN);
                    let body = input.split_to(size).freeze();
                    self.position += size as u64;
                    self.state = State::PreviousTagSize;
                    if kind & TAG_FILTER != 0 {
                        continue;
                    }
                    let Some(tag_type) = TagType::from_u8(kind & TAG_TYPE_MASK) else {
                        continue;
                    };
                    match parse_tag_body(tag_type, timestamp, body) {
                        Ok(Some(media)) => self.ready.push_back(Ok(media)),
                        Ok(None) => {}
                        Err(error) => self.ready.push_back(Err(locate(error, tag_offset))),
                    }
                }
            }
        }
    }
}

/// Turns an offset within a tag body into a stream offset.
fn locate(error: FlvError, tag_offset: u64) -> FlvError {
    match error {
        FlvError::Truncated { what, offset } => FlvError::Truncated {
            what,
            offset: tag_offset + TAG_HEADER_LEN as u64 + offset,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tag::tests::{avc_record, hevc_record};
    use super::super::FlvMuxer;
    use super::*;
    use crate::amf0::{self, Amf0Value};
    use crate::media::{AacConfig, AvcConfig, Codec, Frame, HevcConfig, Metadata, TrackConfig};
    use crate::outq::OutQueue;
    use alloc::vec;
    use alloc::vec::Vec;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn demux_in_reads(
        stream: &[u8],
        reads: &[usize],
    ) -> (Vec<Result<Media, FlvError>>, Option<FlvError>) {
        let mut demuxer = FlvDemuxer::new();
        let mut input = BytesMut::new();
        let mut items = Vec::new();
        let mut rest = stream;
        let mut reads = reads.iter().cycle();
        let mut error = None;
        while !rest.is_empty() {
            let n = reads
                .next()
                .copied()
                .unwrap_or(rest.len())
                .clamp(1, rest.len());
            input.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            let result = demuxer.handle_input(&mut input);
            items.extend(core::iter::from_fn(|| demuxer.poll_media()));
            if let Err(e) = result {
                error = Some(e);
                break;
            }
        }
        (items, error)
    }

    fn tag(kind: u8, timestamp: u32, body: &[u8]) -> Vec<u8> {
        let size = (body.len() as u32).to_be_bytes();
        let ts = timestamp.to_be_bytes();
        let mut tag = vec![
            kind, size[1], size[2], size[3], ts[1], ts[2], ts[3], ts[0], 0, 0, 0,
        ];
        tag.extend_from_slice(body);
        tag.extend_from_slice(&((body.len() + 11) as u32).to_be_bytes());
        tag
    }

    #[test]
    fn reads_a_hand_built_file_with_a_longer_header() {
        let mut file = b"FLV\x01\x05\x00\x00\x00\x0c".to_vec();
        file.extend_from_slice(&[0xee; 3]); // data offset 12: three bytes to skip
        file.extend_from_slice(&[0, 0, 0, 0]);
        file.extend(tag(
            9,
            0,
            &[&[0x17, 0, 0, 0, 0][..], &avc_record()].concat(),
        ));
        file.extend(tag(9, 0x0100_0002, &[0x17, 1, 0, 0, 40, 0, 0, 0, 1, 0x65]));
        file.extend(tag(0x28, 0, &[0xaf, 1, 0])); // encrypted: skipped
        file.extend(tag(15, 0, &[1, 2, 3])); // unknown type: skipped
        file.extend(tag(8, 3, &[0xaf, 0])); // empty AudioSpecificConfig: reported, not fatal
        file.extend(tag(8, 5, &[0xaf, 1, 0x21]));

        for reads in [vec![file.len()], vec![1], vec![3, 7, 2]] {
            let (items, error) = demux_in_reads(&file, &reads);
            assert_eq!(error, None);
            assert_eq!(items.len(), 4, "reads {reads:?}");
            assert_eq!(
                items[0],
                Ok(Media::Config(TrackConfig::Avc(
                    AvcConfig::parse(avc_record()).unwrap()
                )))
            );
            let Ok(Media::Frame(frame)) = &items[1] else {
                panic!()
            };
            assert_eq!(
                (frame.dts, frame.pts, frame.keyframe),
                (0x0100_0002, 0x0100_002a, true)
            );
            assert_eq!(frame.payload.as_ref(), &[0, 0, 0, 1, 0x65]);
            assert!(matches!(items[2], Err(FlvError::Config { .. })));
            let Ok(Media::Frame(audio)) = &items[3] else {
                panic!()
            };
            assert_eq!((audio.codec, audio.dts), (Codec::Aac, 5));
        }
    }

    #[test]
    fn framing_errors_latch() {
        let mut demuxer = FlvDemuxer::new();
        let mut input = BytesMut::from(&b"FLX\x01\x05\x00\x00\x00\x09"[..]);
        assert_eq!(demuxer.handle_input(&mut input), Err(FlvError::Signature));
        let mut more = BytesMut::from(&b"FLV\x01\x05\x00\x00\x00\x09"[..]);
        assert_eq!(demuxer.handle_input(&mut more), Err(FlvError::Signature));

        let mut demuxer = FlvDemuxer::new();
        let mut input = BytesMut::from(&b"FLV\x01\x05\x00\x00\x00\x08"[..]);
        assert_eq!(
            demuxer.handle_input(&mut input),
            Err(FlvError::DataOffset { data_offset: 8 })
        );
    }

    #[test]
    fn oversized_tag_is_an_error_before_any_allocation() {
        let mut demuxer = FlvDemuxer::with_max_tag_size(1000);
        let mut input = BytesMut::from(&b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"[..]);
        input.extend_from_slice(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        let capacity = input.capacity();
        assert_eq!(
            demuxer.handle_input(&mut input),
            Err(FlvError::TagTooLarge {
                len: 0xff_ffff,
                max: 1000,
                offset: 13
            })
        );
        assert!(input.capacity() <= capacity);
        assert_eq!(demuxer.header().map(|h| h.has_audio), Some(true));
    }

    #[test]
    fn payloads_are_slices_of_the_input() {
        let mut file = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        file.extend(tag(9, 0, &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]));
        let mut input = BytesMut::from(&file[..]);
        let base = input.as_ptr() as usize;
        let mut demuxer = FlvDemuxer::new();
        demuxer.handle_input(&mut input).unwrap();
        let Some(Ok(Media::Frame(frame))) = demuxer.poll_media() else {
            panic!()
        };
        assert_eq!(frame.payload.as_ptr() as usize, base + 13 + 11 + 5);
        assert!(input.is_empty());
        assert_eq!(demuxer.position(), file.len() as u64);
    }

    fn arb_media() -> impl Strategy<Value = Media> {
        let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
        let avc = (bytes(12), bytes(8)).prop_map(|(sps_tail, pps)| {
            let mut sps = vec![0x67, 0x64, 0x00, 0x1f];
            sps.extend(sps_tail);
            let mut pps_nal = vec![0x68];
            pps_nal.extend(pps);
            Media::Config(TrackConfig::Avc(
                AvcConfig::from_parameter_sets(Bytes::from(sps), Bytes::from(pps_nal)).unwrap(),
            ))
        });
        let hevc = Just(Media::Config(TrackConfig::Hevc(
            HevcConfig::parse(hevc_record()).unwrap(),
        )));
        let aac = (
            proptest::sample::select(&crate::media::aac::SAMPLE_RATES[..]),
            1u8..8,
        )
            .prop_map(|(rate, channels)| {
                Media::Config(TrackConfig::Aac(AacConfig::new(2, rate, channels).unwrap()))
            });
        let metadata =
            proptest::collection::vec(("[a-z]{1,8}", any::<f64>()), 0..5).prop_map(|properties| {
                let mut amf = Vec::new();
                amf0::encode(&"onMetaData".into(), &mut amf);
                amf0::encode(
                    &Amf0Value::EcmaArray(
                        properties
                            .into_iter()
                            .map(|(k, v)| (k, Amf0Value::Number(v)))
                            .collect(),
                    ),
                    &mut amf,
                );
                Media::Metadata(Metadata {
                    amf0: Bytes::from(amf),
                })
            });
        let video = (
            prop_oneof![Just(Codec::H264), Just(Codec::H265)],
            0..=i64::from(u32::MAX),
            -(1i64 << 23)..(1i64 << 23),
            any::<bool>(),
            bytes(64),
        )
            .prop_map(|(codec, dts, cts, keyframe, payload)| {
                Media::Frame(Frame {
                    codec,
                    dts,
                    pts: dts + cts,
                    keyframe,
                    payload: Bytes::from(payload),
                })
            });
        let audio = (0..=i64::from(u32::MAX), bytes(32)).prop_map(|(dts, payload)| {
            Media::Frame(Frame {
                codec: Codec::Aac,
                dts,
                pts: dts,
                keyframe: true,
                payload: Bytes::from(payload),
            })
        });
        prop_oneof![1 => avc, 1 => hevc, 1 => aac, 1 => metadata, 3 => video, 3 => audio]
    }

    proptest! {
        #[test]
        fn mux_then_demux_is_identity_for_any_read_split(
            items in proptest::collection::vec(arb_media(), 0..24),
            reads in proptest::collection::vec(1usize..200, 1..16),
        ) {
            let mut muxer = FlvMuxer::new(true, true);
            let mut arena = BytesMut::new();
            let mut out = OutQueue::new();
            muxer.write_header(&mut arena, &mut out);
            for media in &items {
                muxer.write_media(media, &mut arena, &mut out).unwrap();
            }
            muxer.flush(&mut arena, &mut out);
            let stream: Vec<u8> = out.segments().flat_map(|s| s.iter().copied()).collect();

            let (demuxed, error) = demux_in_reads(&stream, &reads);
            prop_assert_eq!(error, None);
            let demuxed: Vec<Media> = demuxed.into_iter().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(demuxed, items);
        }

        #[test]
        fn demuxer_never_panics_and_splits_do_not_matter(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            valid_header in any::<bool>(),
            reads in proptest::collection::vec(1usize..64, 1..8),
        ) {
            let mut stream = if valid_header {
                b"FLV\x01\x05\x00\x00\x00\x09".to_vec()
            } else {
                Vec::new()
            };
            stream.extend_from_slice(&body);
            let whole = demux_in_reads(&stream, &[stream.len().max(1)]);
            let split = demux_in_reads(&stream, &reads);
            prop_assert_eq!(whole, split);
        }

        #[test]
        fn demuxer_survives_tags_with_arbitrary_bodies(
            tags in proptest::collection::vec((prop_oneof![Just(8u8), Just(9), Just(18)], any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..16),
            reads in proptest::collection::vec(1usize..64, 1..8),
        ) {
            let mut stream = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
            for (kind, timestamp, body) in &tags {
                stream.extend(tag(*kind, *timestamp, body));
            }
            let whole = demux_in_reads(&stream, &[stream.len()]);
            let split = demux_in_reads(&stream, &reads);
            prop_assert_eq!(whole.1.clone(), None);
            prop_assert_eq!(whole, split);
        }
    }
}
