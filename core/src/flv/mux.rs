//! FLV file muxer: what an HTTP-FLV response body is.

use bytes::{BufMut, BytesMut};

use super::tag::{body_parts, BodyParts};
use super::{FlvError, FILE_HEADER_LEN, MAX_TAG_DATA_SIZE, TAG_HEADER_LEN};
use crate::media::Media;
use crate::outq::OutQueue;

/// The file header's flag bit announcing audio tags.
const FLAG_AUDIO: u8 = 0x04;
/// The file header's flag bit announcing video tags.
const FLAG_VIDEO: u8 = 0x01;

/// Writes an FLV stream as `Bytes` segments: headers from the arena, payloads by reference.
///
/// Each tag ends with a 4-byte PreviousTagSize. To save an iovec per tag, that trailer is held
/// back and written in the same arena block as the next tag's headers, so a tag costs two
/// segments (headers, payload) instead of three. The price is that the last tag of a batch is
/// incomplete until [`FlvMuxer::flush`] writes its trailer: **call `flush` after writing a
/// batch and before handing the queue to the socket**, or players (ffmpeg, flv.js, which wait
/// for the trailer) lag one tag behind.
#[derive(Debug, Clone)]
pub struct FlvMuxer {
    flags: u8,
    header_written: bool,
    /// PreviousTagSize not yet written.
    pending_trailer: Option<u32>,
    /// Timestamp given to configurations and metadata, which have none of their own, so the
    /// file's timestamps never jump back to zero mid-stream.
    last_timestamp: u32,
}

impl FlvMuxer {
    /// A muxer whose file header announces the given tracks.
    pub fn new(has_audio: bool, has_video: bool) -> Self {
        let mut flags = 0;
        if has_audio {
            flags |= FLAG_AUDIO;
        }
        if has_video {
            flags |= FLAG_VIDEO;
        }
        Self {
            flags,
            header_written: false,
            pending_trailer: None,
            last_timestamp: 0,
        }
    }

    /// Writes the file header and PreviousTagSize0 now, unless already written. Media writes
    /// do this themselves; call it to start an HTTP-FLV response before the first media item.
    pub fn write_header(&mut self, arena: &mut BytesMut, out: &mut OutQueue) {
        if self.header_written {
            return;
        }
        arena.reserve(FILE_HEADER_LEN + 4);
        self.put_header_and_trailer(arena);
        out.push(arena.split().freeze());
    }

    /// Appends one media item as a tag. Nothing is written (and an error returned) if the tag
    /// body would not fit the 24-bit size field.
    pub fn write_media(
        &mut self,
        media: &Media,
        arena: &mut BytesMut,
        out: &mut OutQueue,
    ) -> Result<(), FlvError> {
        let mut parts = body_parts(media);
        if matches!(media, Media::Frame(_)) {
            self.last_timestamp = parts.timestamp;
        } else {
            parts.timestamp = self.last_timestamp;
        }
        self.write_parts(parts, arena, out)
    }

    /// Writes the trailer of the last tag, completing the stream written so far.
    pub fn flush(&mut self, arena: &mut BytesMut, out: &mut OutQueue) {
        if let Some(size) = self.pending_trailer.take() {
            arena.reserve(4);
            arena.put_u32(size);
            out.push(arena.split().freeze());
        }
    }

    fn write_parts(
        &mut self,
        parts: BodyParts,
        arena: &mut BytesMut,
        out: &mut OutQueue,
    ) -> Result<(), FlvError> {
        let data_size = parts.header.len() + parts.payload.len();
        if data_size > MAX_TAG_DATA_SIZE {
            return Err(FlvError::TagTooLarge {
                len: data_size,
                max: MAX_TAG_DATA_SIZE,
                offset: 0,
            });
        }
        arena.reserve(FILE_HEADER_LEN + 4 + TAG_HEADER_LEN + parts.header.len());
        self.put_header_and_trailer(arena);
        let [_, size_hi, size_mid, size_lo] = (data_size as u32).to_be_bytes();
        let [ts_ext, ts_hi, ts_mid, ts_lo] = parts.timestamp.to_be_bytes();
        arena.put_slice(&[
            parts.tag_type.as_u8(),
            size_hi,
            size_mid,
            size_lo,
            ts_hi,
            ts_mid,
            ts_lo,
            ts_ext,
            0,
            0,
            0,
        ]);
        arena.put_slice(&parts.header);
        out.push(arena.split().freeze());
        out.push(parts.payload);
        self.pending_trailer = Some((TAG_HEADER_LEN + data_size) as u32);
        Ok(())
    }

    /// Puts the file header (first time only) and any pending trailer into the arena.
    fn put_header_and_trailer(&mut self, arena: &mut BytesMut) {
        if !self.header_written {
            self.header_written = true;
            arena.put_slice(b"FLV");
            arena.put_u8(1);
            arena.put_u8(self.flags);
            arena.put_u32(FILE_HEADER_LEN as u32);
            self.pending_trailer = Some(0);
        }
        if let Some(size) = self.pending_trailer.take() {
            arena.put_u32(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, Frame};
    use alloc::vec::Vec;
    use bytes::Bytes;

    fn drain(out: &OutQueue) -> Vec<u8> {
        out.segments().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn writes_header_tags_and_trailers() {
        let mut muxer = FlvMuxer::new(true, true);
        let mut arena = BytesMut::new();
        let mut out = OutQueue::new();
        let payload = Bytes::from_static(&[0x21, 0x22, 0x23]);
        let frame = Media::Frame(Frame {
            codec: Codec::Aac,
            dts: 0x0123_4567,
            pts: 0x0123_4567,
            keyframe: true,
            payload: payload.clone(),
        });
        muxer.write_media(&frame, &mut arena, &mut out).unwrap();
        // Header block (file header, PreviousTagSize0, tag header, body header) + payload.
        assert_eq!(out.segment_count(), 2);
        let segments: Vec<&[u8]> = out.segments().collect();
        assert_eq!(
            segments[1].as_ptr(),
            payload.as_ptr(),
            "payload is not copied"
        );
        muxer.flush(&mut arena, &mut out);
        muxer.flush(&mut arena, &mut out);
        assert_eq!(
            drain(&out),
            [
                &b"FLV\x01\x05\x00\x00\x00\x09"[..],
                &[0, 0, 0, 0],
                &[8, 0, 0, 5, 0x23, 0x45, 0x67, 0x01, 0, 0, 0],
                &[0xaf, 1, 0x21, 0x22, 0x23],
                &[0, 0, 0, 16],
            ]
            .concat()
        );
    }

    #[test]
    fn trailer_shares_a_segment_with_the_next_tag_header() {
        let mut muxer = FlvMuxer::new(false, true);
        let mut arena = BytesMut::new();
        let mut out = OutQueue::new();
        muxer.write_header(&mut arena, &mut out);
        muxer.write_header(&mut arena, &mut out);
        assert_eq!(drain(&out), b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00");
        out.clear();
        let frame = |dts| {
            Media::Frame(Frame {
                codec: Codec::H264,
                dts,
                pts: dts,
                keyframe: false,
                payload: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            })
        };
        muxer.write_media(&frame(0), &mut arena, &mut out).unwrap();
        muxer.write_media(&frame(40), &mut arena, &mut out).unwrap();
        let segments: Vec<&[u8]> = out.segments().collect();
        assert_eq!(segments.len(), 4);
        // The second tag's header block starts with the first tag's PreviousTagSize.
        assert_eq!(segments[2][..4], [0, 0, 0, 11 + 10]);
        assert_eq!(segments[2][4], 9);
    }

    #[test]
    fn oversized_tag_is_refused_without_output() {
        let mut muxer = FlvMuxer::new(true, false);
        let mut arena = BytesMut::new();
        let mut out = OutQueue::new();
        let big = Media::Frame(Frame {
            codec: Codec::Aac,
            dts: 0,
            pts: 0,
            keyframe: true,
            payload: Bytes::from(alloc::vec![0u8; MAX_TAG_DATA_SIZE]),
        });
        assert!(matches!(
            muxer.write_media(&big, &mut arena, &mut out),
            Err(FlvError::TagTooLarge { .. })
        ));
        assert!(out.is_empty());
    }
}
