//! The server side of an HTTP connection: one request, for a live body (HTTP-FLV at
//! `/{app}/{stream}.flv`, HTTP-TS at `/{app}/{stream}.ts`) that lasts as long as the stream,
//! or for a document the server serves whole (an HLS playlist or segment at
//! `/{app}/{stream}/{name}`).
//!
//! Live bodies follow the play flow of every protocol ([`SessionEvent::PlayRequested`], then
//! `accept_play` and media); documents are asked for with [`SessionEvent::ResourceRequested`]
//! and answered with [`LiveSession::serve_resource`]. Either way the connection closes after
//! the one response (no keep-alive). A path whose app and stream are not a valid
//! [`StreamKey`] is answered 400 by the session itself ([`SessionEvent::BadStreamName`]).

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use bytes::{Buf, Bytes, BytesMut};

use crate::flv::FlvMuxer;
use crate::http::{self, BodyFraming, HttpError, LiveFormat, Method, Status, Target};
use crate::key::{strip_query, KeyError, StreamKey};
use crate::media::{Media, MediaKind};
use crate::outq::OutQueue;
use crate::session::{LiveSession, Phase, Rejection, RequestKind, Resource, SessionEvent};
use crate::time::Millis;
use crate::ts::TsMuxer;

/// How long a connection may take to send its request head, in milliseconds.
pub const DEFAULT_HEAD_TIMEOUT_MS: u64 = 15_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    AwaitingHead,
    PlayPending {
        format: LiveFormat,
        head_only: bool,
        framing: BodyFraming,
    },
    Playing {
        framing: BodyFraming,
    },
    /// Waiting, without a deadline, for the server to look the document up.
    ResourcePending {
        head_only: bool,
    },
    Done,
}

/// The muxer of a live body, one per player.
#[derive(Debug)]
enum BodyMuxer {
    Flv(FlvMuxer),
    Ts {
        muxer: TsMuxer,
        /// Video frames are held back until the first keyframe, which carries the tables and
        /// parameter sets a player needs to start decoding.
        keyframe_seen: bool,
    },
}

/// One HTTP connection of the live outputs.
#[derive(Debug)]
pub struct HttpLiveSession {
    mode: Mode,
    origin: Option<String>,
    out: OutQueue,
    /// Body bytes not yet framed as an HTTP chunk.
    body: OutQueue,
    arena: BytesMut,
    /// Set when a play is accepted.
    muxer: Option<BodyMuxer>,
    events: VecDeque<SessionEvent>,
    head_deadline: Millis,
}

impl HttpLiveSession {
    /// A session for a connection accepted at `now`, which must send its request head within
    /// [`DEFAULT_HEAD_TIMEOUT_MS`].
    pub fn new(now: Millis) -> Self {
        Self::with_head_timeout(now, DEFAULT_HEAD_TIMEOUT_MS)
    }

    /// A session for a connection accepted at `now`, closed if its request head is not
    /// complete `head_timeout_ms` later (a slow or silent client: slowloris).
    pub fn with_head_timeout(now: Millis, head_timeout_ms: u64) -> Self {
        Self {
            mode: Mode::AwaitingHead,
            origin: None,
            out: OutQueue::new(),
            body: OutQueue::new(),
            arena: BytesMut::new(),
            muxer: None,
            events: VecDeque::new(),
            head_deadline: now + head_timeout_ms,
        }
    }

    fn respond_and_close(&mut self, status: Status, body: &str, reason: &'static str) {
        http::write_simple_response(&mut self.arena, status, self.origin.as_deref(), body);
        self.out.push(self.arena.split().freeze());
        self.finish(reason);
    }

    /// Moves the body written since the last call into the output, as one HTTP chunk when the
    /// body is chunked. Called whenever the runtime is about to write, so media written in a
    /// burst shares one chunk header.
    fn frame_body(&mut self) {
        let Mode::Playing { framing } = self.mode else {
            return;
        };
        if let Some(BodyMuxer::Flv(muxer)) = &mut self.muxer {
            // The muxer holds each tag's trailer back to share a segment with the next tag's
            // header; release it so players are never a tag behind.
            muxer.flush(&mut self.arena, &mut self.body);
        }
        match framing {
            BodyFraming::Chunked => {
                http::move_as_chunk(&mut self.body, &mut self.arena, &mut self.out)
            }
            BodyFraming::UntilClose => self.out.append(&mut self.body),
        }
    }

    /// Asks the server for `key` (`mode` is the pending state), or refuses a name that is not
    /// a stream key at once.
    fn ask_server(&mut self, mode: Mode, key: Result<StreamKey, KeyError>, name: &str) {
        self.mode = mode;
        let request = if matches!(mode, Mode::ResourcePending { .. }) {
            RequestKind::Resource
        } else {
            RequestKind::Play
        };
        match key {
            Ok(key) => self.events.push_back(match request {
                RequestKind::Resource => SessionEvent::ResourceRequested {
                    key,
                    name: name.to_string(),
                },
                _ => SessionEvent::PlayRequested { key },
            }),
            Err(error) => {
                self.events
                    .push_back(SessionEvent::BadStreamName { request, error });
                self.reject(Rejection::BadName);
            }
        }
    }

    fn finish(&mut self, reason: &'static str) {
        if self.mode != Mode::Done {
            self.mode = Mode::Done;
            self.events.push_back(SessionEvent::Closed { reason });
        }
    }
}

impl LiveSession for HttpLiveSession {
    type Error = HttpError;

    fn handle_input(&mut self, _now: Millis, input: &mut BytesMut) -> Result<(), HttpError> {
        if self.mode != Mode::AwaitingHead {
            // One request per connection: anything after the head is ignored, never buffered.
            input.clear();
            return Ok(());
        }
        let Some((head, consumed)) = http::parse_request_head(input)? else {
            return Ok(());
        };
        input.advance(consumed);
        input.clear();
        self.origin = head.origin.clone();
        let head_only = head.method == Method::Head;
        match head.method {
            Method::Options => self.respond_and_close(Status::NoContent, "", "preflight answered"),
            Method::Other => self.respond_and_close(
                Status::MethodNotAllowed,
                "method not allowed\n",
                "method not allowed",
            ),
            Method::Get | Method::Head => match http::resolve_path(&head.path) {
                Some(Target::Live(live)) => {
                    let framing = if head.http10 {
                        BodyFraming::UntilClose
                    } else {
                        BodyFraming::Chunked
                    };
                    let mode = Mode::PlayPending {
                        format: live.format,
                        head_only,
                        framing,
                    };
                    let key = StreamKey::parse(live.app, strip_query(live.stream));
                    self.ask_server(mode, key, "");
                }
                Some(Target::Resource(resource)) => {
                    let mode = Mode::ResourcePending { head_only };
                    let key = StreamKey::parse(resource.app, strip_query(resource.stream));
                    self.ask_server(mode, key, resource.name);
                }
                None => self.respond_and_close(Status::NotFound, "not found\n", "no such path"),
            },
        }
        Ok(())
    }

    fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn accept_publish(&mut self) {}

    fn accept_play(&mut self) {
        let Mode::PlayPending {
            format,
            head_only,
            framing,
        } = self.mode
        else {
            return;
        };
        http::write_stream_head(
            &mut self.arena,
            format.content_type(),
            self.origin.as_deref(),
            framing,
        );
        self.out.push(self.arena.split().freeze());
        if head_only {
            self.finish("head request answered");
            return;
        }
        self.muxer = Some(match format {
            LiveFormat::Flv => {
                let mut muxer = FlvMuxer::new(true, true);
                muxer.write_header(&mut self.arena, &mut self.body);
                BodyMuxer::Flv(muxer)
            }
            LiveFormat::Ts => BodyMuxer::Ts {
                muxer: TsMuxer::default(),
                keyframe_seen: false,
            },
        });
        self.mode = Mode::Playing { framing };
    }

    fn reject(&mut self, why: Rejection) {
        if !matches!(
            self.mode,
            Mode::PlayPending { .. } | Mode::ResourcePending { .. }
        ) {
            return;
        }
        let (status, body, reason) = match why {
            Rejection::NotFound => (Status::NotFound, "stream not found\n", "stream not found"),
            Rejection::BadName => (
                Status::BadRequest,
                "invalid stream name\n",
                "invalid stream name",
            ),
            Rejection::AlreadyPublishing => (Status::Conflict, "conflict\n", "conflict"),
            // Ports in use cannot concern HTTP; it is the server's refusal all the same.
            Rejection::Unavailable | Rejection::PortsInUse => {
                (Status::ServiceUnavailable, "unavailable\n", "unavailable")
            }
        };
        self.respond_and_close(status, body, reason);
    }

    fn serve_resource(&mut self, resource: Resource) {
        let Mode::ResourcePending { head_only } = self.mode else {
            return;
        };
        http::write_resource_head(
            &mut self.arena,
            resource.content_type,
            resource.cache_control,
            resource.body.len(),
            self.origin.as_deref(),
        );
        self.out.push(self.arena.split().freeze());
        if !head_only {
            self.out.push(resource.body);
        }
        self.finish("resource served");
    }

    fn send_media(&mut self, media: &Media) {
        if !matches!(self.mode, Mode::Playing { .. }) {
            return;
        }
        match &mut self.muxer {
            Some(BodyMuxer::Flv(muxer)) => {
                // A body over the FLV tag limit cannot be framed; the muxer writes nothing for
                // it, and dropping that one item is all a player of a live stream can be
                // offered.
                let _ = muxer.write_media(media, &mut self.arena, &mut self.body);
            }
            Some(BodyMuxer::Ts {
                muxer,
                keyframe_seen,
            }) => {
                if let Media::Frame(frame) = media {
                    if frame.kind() == MediaKind::Video && !*keyframe_seen {
                        if !frame.keyframe {
                            return;
                        }
                        *keyframe_seen = muxer.has_track(MediaKind::Video);
                    }
                }
                // As for FLV: an item the muxer cannot carry (an unsupported AAC profile, a
                // truncated NAL unit length) is dropped and the stream goes on.
                let _ = muxer.write_media(media, &mut self.arena, &mut self.body);
            }
            None => {}
        }
    }

    fn end_of_stream(&mut self) {
        if let Mode::Playing { framing } = self.mode {
            self.frame_body();
            if framing == BodyFraming::Chunked {
                self.out.push(Bytes::from_static(http::LAST_CHUNK));
            }
            self.finish("stream ended");
        }
    }

    fn transmit(&mut self) -> &mut OutQueue {
        self.frame_body();
        &mut self.out
    }

    fn poll_timeout(&self) -> Option<Millis> {
        (self.mode == Mode::AwaitingHead).then_some(self.head_deadline)
    }

    fn handle_timeout(&mut self, now: Millis) {
        if self.mode == Mode::AwaitingHead && now >= self.head_deadline {
            self.finish("request head timeout");
        }
    }

    fn phase(&self) -> Phase {
        if matches!(self.mode, Mode::Playing { .. }) {
            Phase::Media
        } else {
            Phase::Setup
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{CACHE_PLAYLIST, CACHE_SEGMENT, CONTENT_TYPE_M3U8, CONTENT_TYPE_TS};
    use crate::media::nal::to_length_prefixed;
    use crate::media::{AacConfig, AvcConfig, Codec, Frame, TrackConfig};
    use crate::ts::{ms_to_ticks, TsDemuxer, DEFAULT_TIMESTAMP_OFFSET_MS};
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn drain(session: &mut HttpLiveSession) -> Vec<u8> {
        let out = session.transmit();
        let bytes: Vec<u8> = out.segments().flatten().copied().collect();
        let len = out.queued_bytes();
        out.advance(len);
        bytes
    }

    fn request(session: &mut HttpLiveSession, head: &str) -> Option<SessionEvent> {
        let mut input = BytesMut::from(head.as_bytes());
        session.handle_input(Millis(1), &mut input).unwrap();
        session.poll_event()
    }

    fn frame() -> Media {
        let payload = Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]);
        Media::Frame(Frame {
            codec: Codec::H264,
            dts: 40,
            pts: 40,
            keyframe: true,
            payload,
        })
    }

    #[test]
    fn http11_play_is_chunked_and_ends_with_the_last_chunk() {
        let mut session = HttpLiveSession::new(Millis(0));
        let event = request(
            &mut session,
            "GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(
            event,
            Some(SessionEvent::PlayRequested {
                key: StreamKey::parse("live", "cam").unwrap()
            })
        );
        session.accept_play();
        session.send_media(&frame());
        let wire = drain(&mut session);
        let text =
            core::str::from_utf8(&wire[..wire.iter().position(|&b| b == b'F').unwrap()]).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Transfer-Encoding: chunked\r\n"));
        assert!(text.contains("Content-Type: video/x-flv\r\n"));
        // The chunk that follows the head holds the FLV header and the tag, and its declared
        // size is exactly what follows it up to the closing CRLF.
        let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let body = &wire[head_end..];
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(core::str::from_utf8(&body[..line_end]).unwrap(), 16).unwrap();
        let chunk = &body[line_end + 2..];
        assert_eq!(chunk.len(), size + 2);
        assert!(chunk.starts_with(b"FLV\x01"));
        assert!(chunk.ends_with(b"\r\n"));
        session.end_of_stream();
        assert!(drain(&mut session).ends_with(b"0\r\n\r\n"));
        assert!(matches!(
            session.poll_event(),
            Some(SessionEvent::Closed { .. })
        ));
    }

    #[test]
    fn http10_play_is_delimited_by_close() {
        let mut session = HttpLiveSession::new(Millis(0));
        assert!(request(&mut session, "GET /live/cam.live.flv HTTP/1.0\r\n\r\n").is_some());
        session.accept_play();
        session.send_media(&frame());
        let wire = drain(&mut session);
        assert!(!wire.windows(8).any(|w| w == b"chunked\r"));
        let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(wire[head_end..].starts_with(b"FLV\x01"));
        session.end_of_stream();
        assert!(drain(&mut session).is_empty());
    }

    #[test]
    fn refusals_answer_and_close() {
        let cases = [
            ("GET /nothing HTTP/1.1\r\n\r\n", "HTTP/1.1 404"),
            ("DELETE /live/a.flv HTTP/1.1\r\n\r\n", "HTTP/1.1 405"),
            (
                "OPTIONS /live/a.flv HTTP/1.1\r\nOrigin: http://p\r\n\r\n",
                "HTTP/1.1 204",
            ),
        ];
        for (head, status) in cases {
            let mut session = HttpLiveSession::new(Millis(0));
            assert!(
                matches!(
                    request(&mut session, head),
                    Some(SessionEvent::Closed { .. })
                ),
                "{head}"
            );
            assert!(drain(&mut session).starts_with(status.as_bytes()), "{head}");
        }
        let mut session = HttpLiveSession::new(Millis(0));
        assert!(request(&mut session, "GET /live/a.flv HTTP/1.1\r\n\r\n").is_some());
        session.reject(Rejection::NotFound);
        assert!(drain(&mut session).starts_with(b"HTTP/1.1 404"));
        assert!(matches!(
            session.poll_event(),
            Some(SessionEvent::Closed { .. })
        ));
    }

    #[test]
    fn a_silent_connection_times_out() {
        let mut session = HttpLiveSession::new(Millis(0));
        let deadline = session.poll_timeout().unwrap();
        session.handle_timeout(deadline);
        assert!(matches!(
            session.poll_event(),
            Some(SessionEvent::Closed { .. })
        ));
    }

    /// Splits a response into its status line, its header fields and what follows the head.
    fn split_response(wire: &[u8]) -> (String, Vec<(String, String)>, Vec<u8>) {
        let end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = core::str::from_utf8(&wire[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().to_string();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(": ").unwrap();
                (name.to_string(), value.to_string())
            })
            .collect();
        (status, headers, wire[end + 4..].to_vec())
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Decodes a chunked body, checking that it ends with the last chunk.
    fn dechunk(mut body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(core::str::from_utf8(&body[..line_end]).unwrap(), 16)
                .unwrap();
            let rest = &body[line_end + 2..];
            if size == 0 {
                assert_eq!(rest, b"\r\n");
                return out;
            }
            out.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n");
            body = &rest[size + 2..];
        }
    }

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33, 0x44];
    const SLICE: &[u8] = &[0x41, 0x9a, 0x02, 0x03];
    const AAC_RAW: &[u8] = &[0x21, 0x10, 0x04, 0x60, 0x8c];

    fn video(dts: i64, keyframe: bool, nal: &'static [u8]) -> Frame {
        Frame {
            codec: Codec::H264,
            dts,
            pts: dts,
            keyframe,
            payload: to_length_prefixed([nal]),
        }
    }

    fn configs() -> [Media; 2] {
        let avc = AvcConfig::from_parameter_sets(Bytes::from_static(SPS), Bytes::from_static(PPS))
            .unwrap();
        [
            Media::Config(TrackConfig::Avc(avc)),
            Media::Config(TrackConfig::Aac(AacConfig::new(2, 44_100, 2).unwrap())),
        ]
    }

    #[test]
    fn http_ts_body_demuxes_back_to_the_frames_sent() {
        let mut session = HttpLiveSession::new(Millis(0));
        let event = request(
            &mut session,
            "GET /live/cam.live.ts?t=1 HTTP/1.1\r\nOrigin: http://p\r\n\r\n",
        );
        assert_eq!(
            event,
            Some(SessionEvent::PlayRequested {
                key: StreamKey::parse("live", "cam").unwrap()
            })
        );
        session.accept_play();
        // A delta frame before the first keyframe is useless to a joining player.
        session.send_media(&Media::Frame(video(0, false, SLICE)));
        for config in configs() {
            session.send_media(&config);
        }
        let keyframe = video(40, true, IDR);
        let audio = Frame {
            codec: Codec::Aac,
            dts: 45,
            pts: 45,
            keyframe: true,
            payload: Bytes::from_static(AAC_RAW),
        };
        session.send_media(&Media::Frame(keyframe.clone()));
        session.send_media(&Media::Frame(audio));
        session.send_media(&Media::Frame(video(80, false, SLICE)));
        // The IDR NAL unit goes out by reference, not copied.
        let nal_start = keyframe.payload.as_ptr() as usize + 4;
        assert!(session
            .transmit()
            .segments()
            .any(|segment| segment.as_ptr() as usize == nal_start));
        session.end_of_stream();
        let wire = drain(&mut session);
        let (status, headers, body) = split_response(&wire);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "Content-Type"), Some(CONTENT_TYPE_TS));
        assert_eq!(header(&headers, "Transfer-Encoding"), Some("chunked"));
        assert_eq!(
            header(&headers, "Access-Control-Allow-Origin"),
            Some("http://p")
        );
        let ts = dechunk(&body);
        assert_eq!(ts.len() % crate::ts::PACKET_LEN, 0);
        let mut demuxer = TsDemuxer::new(Default::default());
        demuxer.push(&ts);
        demuxer.flush();
        let mut packets = Vec::new();
        while let Some(report) = demuxer.poll() {
            packets.push(report.unwrap());
        }
        // Video PES packets are unbounded and complete only when the next one starts, so the
        // demuxer reports them out of stream order.
        packets.sort_by_key(|pes| pes.decode_ticks());
        let summary: Vec<(Option<Codec>, Option<u64>)> = packets
            .iter()
            .map(|pes| (pes.codec(), pes.decode_ticks()))
            .collect();
        let ticks = |ms| Some(ms_to_ticks(ms, DEFAULT_TIMESTAMP_OFFSET_MS));
        assert_eq!(
            summary,
            vec![
                (Some(Codec::H264), ticks(40)),
                (Some(Codec::Aac), ticks(45)),
                (Some(Codec::H264), ticks(80)),
            ]
        );
        let contains =
            |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
        // The keyframe carries its parameter sets, then the IDR, in Annex-B form.
        let first = &packets[0].payload;
        assert!(packets[0].random_access);
        assert!(contains(first, &[&[0, 0, 0, 1][..], SPS].concat()));
        assert!(first.ends_with(&[&[0, 0, 0, 1][..], IDR].concat()));
        assert!(packets[2].payload.ends_with(SLICE));
        // ADTS: 7-byte header (frame length includes it), then the raw frame.
        let adts = &packets[1].payload;
        assert_eq!(adts.len(), 7 + AAC_RAW.len());
        assert_eq!(&adts[7..], AAC_RAW);
        assert_eq!(&adts[..2], &[0xff, 0xf1]);
    }

    #[test]
    fn http10_ts_play_is_raw_packets_and_head_is_head_only() {
        let mut session = HttpLiveSession::new(Millis(0));
        assert!(request(&mut session, "GET /live/cam.ts HTTP/1.0\r\n\r\n").is_some());
        session.accept_play();
        for config in configs() {
            session.send_media(&config);
        }
        session.send_media(&Media::Frame(video(0, true, IDR)));
        let wire = drain(&mut session);
        let (_, headers, body) = split_response(&wire);
        assert_eq!(header(&headers, "Transfer-Encoding"), None);
        assert!(!body.is_empty() && body.len() % 188 == 0);
        assert_eq!(body[0], 0x47);

        let mut session = HttpLiveSession::new(Millis(0));
        assert!(request(&mut session, "HEAD /live/cam.ts HTTP/1.1\r\n\r\n").is_some());
        session.accept_play();
        session.send_media(&Media::Frame(video(0, true, IDR)));
        let wire = drain(&mut session);
        let (status, headers, body) = split_response(&wire);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "Content-Type"), Some(CONTENT_TYPE_TS));
        assert!(body.is_empty());
        assert!(matches!(
            session.poll_event(),
            Some(SessionEvent::Closed { .. })
        ));
    }

    fn resource_request(session: &mut HttpLiveSession, head: &str) -> (StreamKey, String) {
        match request(session, head) {
            Some(SessionEvent::ResourceRequested { key, name }) => (key, name),
            other => panic!("{head}: {other:?}"),
        }
    }

    #[test]
    fn resource_requests_name_the_stream_and_document() {
        let cases = [
            ("/live/cam/index.m3u8", ("live", "cam", "index.m3u8")),
            ("/live/cam/hls.m3u8?token=abc", ("live", "cam", "hls.m3u8")),
            ("/live/cam/123.ts", ("live", "cam", "123.ts")),
        ];
        for (path, (app, stream, name)) in cases {
            let mut session = HttpLiveSession::new(Millis(0));
            let head = alloc::format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            let (key, got) = resource_request(&mut session, &head);
            assert_eq!(
                (key.app(), key.stream(), got.as_str()),
                (app, stream, name),
                "{path}"
            );
            // Waiting for the server has no deadline, unlike waiting for the head.
            assert_eq!(session.poll_timeout(), None);
            session.handle_timeout(Millis(u64::MAX / 2));
            assert_eq!(session.poll_event(), None);
            assert!(drain(&mut session).is_empty());
        }
    }

    #[test]
    fn bad_stream_names_are_answered_400_by_the_session() {
        let long = "x".repeat(crate::hub::MAX_KEY_PART_LEN + 1);
        let cases = [
            (
                "GET /live/a/b/c/7.ts?x HTTP/1.1\r\n\r\n".to_string(),
                RequestKind::Resource,
            ),
            (
                alloc::format!("GET /live/{long}/index.m3u8 HTTP/1.1\r\n\r\n"),
                RequestKind::Resource,
            ),
            (
                alloc::format!("GET /live/{long}.flv HTTP/1.1\r\n\r\n"),
                RequestKind::Play,
            ),
            (
                "HEAD /live/a..b.ts HTTP/1.1\r\n\r\n".to_string(),
                RequestKind::Play,
            ),
        ];
        for (head, kind) in cases {
            let mut session = HttpLiveSession::new(Millis(0));
            let mut input = BytesMut::from(head.as_bytes());
            session.handle_input(Millis(1), &mut input).unwrap();
            let events: Vec<SessionEvent> = core::iter::from_fn(|| session.poll_event()).collect();
            match events.as_slice() {
                [SessionEvent::BadStreamName { request, .. }, SessionEvent::Closed { .. }] => {
                    assert_eq!(*request, kind, "{head}");
                }
                other => panic!("{head}: {other:?}"),
            }
            let wire = drain(&mut session);
            assert!(wire.starts_with(b"HTTP/1.1 400 "), "{head}");
            // The server has nothing left to answer.
            session.reject(Rejection::NotFound);
            session.accept_play();
            assert!(drain(&mut session).is_empty());
        }
    }

    #[test]
    fn served_resource_is_a_complete_response_with_the_body_by_reference() {
        let body = Bytes::from(Vec::from(&b"#EXTM3U\n#EXT-X-VERSION:3\n"[..]));
        let mut session = HttpLiveSession::new(Millis(0));
        resource_request(
            &mut session,
            "GET /live/cam/index.m3u8 HTTP/1.1\r\nOrigin: https://site\r\n\r\n",
        );
        // Commands for the other flow do nothing.
        session.accept_play();
        assert!(session.transmit().is_empty());
        session.serve_resource(http::playlist_resource(body.clone()));
        let out = session.transmit();
        assert_eq!(out.segment_count(), 2);
        let last = out.segments().last().unwrap();
        assert_eq!(last.as_ptr(), body.as_ptr());
        assert_eq!(last.len(), body.len());
        let wire = drain(&mut session);
        let (status, headers, rest) = split_response(&wire);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "Content-Type"), Some(CONTENT_TYPE_M3U8));
        assert_eq!(header(&headers, "Cache-Control"), Some(CACHE_PLAYLIST));
        assert_eq!(
            header(&headers, "Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(header(&headers, "Connection"), Some("close"));
        assert_eq!(
            header(&headers, "Access-Control-Allow-Origin"),
            Some("https://site")
        );
        assert_eq!(rest, &body[..]);
        assert_eq!(
            session.poll_event(),
            Some(SessionEvent::Closed {
                reason: "resource served"
            })
        );
        // Answered once: later commands change nothing.
        session.serve_resource(http::playlist_resource(body.clone()));
        session.reject(Rejection::NotFound);
        assert!(drain(&mut session).is_empty());
        assert_eq!(session.poll_event(), None);
    }

    #[test]
    fn head_of_a_resource_has_its_length_but_no_body() {
        let body = Bytes::from(vec![0x47; 188 * 3]);
        let mut session = HttpLiveSession::new(Millis(0));
        resource_request(&mut session, "HEAD /live/cam/9.ts HTTP/1.0\r\n\r\n");
        session.serve_resource(http::segment_resource(body.clone()));
        let wire = drain(&mut session);
        let (status, headers, rest) = split_response(&wire);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(header(&headers, "Content-Type"), Some(CONTENT_TYPE_TS));
        assert_eq!(header(&headers, "Cache-Control"), Some(CACHE_SEGMENT));
        assert_eq!(header(&headers, "Content-Length"), Some("564"));
        assert_eq!(header(&headers, "Access-Control-Allow-Origin"), Some("*"));
        assert!(rest.is_empty());
        assert!(matches!(
            session.poll_event(),
            Some(SessionEvent::Closed { .. })
        ));
    }

    #[test]
    fn rejected_resources_map_to_status_codes() {
        let cases = [
            (Rejection::NotFound, "HTTP/1.1 404 Not Found"),
            (Rejection::BadName, "HTTP/1.1 400 Bad Request"),
            (Rejection::AlreadyPublishing, "HTTP/1.1 409 Conflict"),
            (Rejection::Unavailable, "HTTP/1.1 503 Service Unavailable"),
        ];
        for (why, expected) in cases {
            let mut session = HttpLiveSession::new(Millis(0));
            resource_request(&mut session, "GET /live/cam/1.ts HTTP/1.1\r\n\r\n");
            session.reject(why);
            let wire = drain(&mut session);
            let (status, headers, body) = split_response(&wire);
            assert_eq!(status, expected);
            assert_eq!(
                header(&headers, "Content-Length"),
                Some(body.len().to_string().as_str())
            );
            assert!(matches!(
                session.poll_event(),
                Some(SessionEvent::Closed { .. })
            ));
        }
    }

    #[test]
    fn unknown_paths_and_methods_are_answered_at_once() {
        let cases = [
            ("GET /foo HTTP/1.1\r\n\r\n", "HTTP/1.1 404"),
            ("GET /a/b.mp4 HTTP/1.1\r\n\r\n", "HTTP/1.1 404"),
            ("GET /live/cam/ HTTP/1.1\r\n\r\n", "HTTP/1.1 404"),
            (
                "GET /live/../cam/index.m3u8 HTTP/1.1\r\n\r\n",
                "HTTP/1.1 404",
            ),
            ("GET /live//cam.ts HTTP/1.1\r\n\r\n", "HTTP/1.1 404"),
            ("POST /live/cam/index.m3u8 HTTP/1.1\r\n\r\n", "HTTP/1.1 405"),
            ("PUT /live/cam.ts HTTP/1.1\r\n\r\n", "HTTP/1.1 405"),
            (
                "OPTIONS /live/cam/index.m3u8 HTTP/1.1\r\n\r\n",
                "HTTP/1.1 204",
            ),
            ("OPTIONS /live/cam.ts HTTP/1.1\r\n\r\n", "HTTP/1.1 204"),
        ];
        for (head, status) in cases {
            let mut session = HttpLiveSession::new(Millis(0));
            assert!(
                matches!(
                    request(&mut session, head),
                    Some(SessionEvent::Closed { .. })
                ),
                "{head}"
            );
            let wire = drain(&mut session);
            assert!(wire.starts_with(status.as_bytes()), "{head}");
            let (_, headers, _) = split_response(&wire);
            assert!(header(&headers, "Access-Control-Allow-Origin").is_some());
        }
    }

    /// Feeds `input` in reads ending at `cuts`, answering every request as a server would, and
    /// returns the events and every byte written.
    fn drive(input: &[u8], cuts: &[usize]) -> (Vec<SessionEvent>, Vec<u8>) {
        let mut session = HttpLiveSession::new(Millis(0));
        let mut events = Vec::new();
        let mut wire = Vec::new();
        let mut buffer = BytesMut::new();
        let mut start = 0;
        let ends = cuts
            .iter()
            .map(|&cut| cut.min(input.len()))
            .chain([input.len()]);
        for end in ends {
            let end = end.max(start);
            buffer.extend_from_slice(&input[start..end]);
            start = end;
            if let Err(error) = session.handle_input(Millis(1), &mut buffer) {
                events.push(SessionEvent::Closed {
                    reason: if matches!(error, HttpError::Malformed(_)) {
                        "malformed"
                    } else {
                        "too large"
                    },
                });
                break;
            }
            while let Some(event) = session.poll_event() {
                match &event {
                    SessionEvent::PlayRequested { .. } => {
                        session.accept_play();
                        for config in configs() {
                            session.send_media(&config);
                        }
                        session.send_media(&Media::Frame(video(0, true, IDR)));
                    }
                    SessionEvent::ResourceRequested { name, .. } => {
                        if name.ends_with(".m3u8") {
                            session.serve_resource(http::playlist_resource(Bytes::from_static(
                                b"#EXTM3U\n",
                            )));
                        } else {
                            session.reject(Rejection::NotFound);
                        }
                    }
                    _ => {}
                }
                events.push(event);
            }
            wire.extend(drain(&mut session));
        }
        (events, wire)
    }

    const REQUESTS: &[&str] = &[
        "GET /live/cam.flv?a=b HTTP/1.1\r\nHost: x\r\nOrigin: http://o\r\n\r\n",
        "GET /live/cam.live.ts HTTP/1.0\r\n\r\n",
        "HEAD /live/cam.ts HTTP/1.1\r\n\r\n",
        "GET /live/cam/index.m3u8?t=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /live/cam/hls.m3u8 HTTP/1.1\r\n\r\n",
        "GET /live/cam/12.ts HTTP/1.1\r\n\r\n",
        "OPTIONS /live/cam/index.m3u8 HTTP/1.1\r\nOrigin: http://o\r\n\r\n",
        "DELETE /live/cam.flv HTTP/1.1\r\n\r\n",
        "GET /live/cam/ HTTP/1.1\r\n\r\n",
    ];

    proptest! {
        #[test]
        fn any_split_of_a_request_gives_the_same_events_and_bytes(
            which in 0..REQUESTS.len(),
            mut cuts in proptest::collection::vec(0..128usize, 0..8),
            trailing in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let mut input = Vec::from(REQUESTS[which].as_bytes());
            input.extend_from_slice(&trailing);
            cuts.sort_unstable();
            let whole = drive(&input, &[]);
            prop_assert!(!whole.0.is_empty());
            prop_assert_eq!(drive(&input, &cuts), whole);
        }

        #[test]
        fn arbitrary_input_never_panics(
            input in proptest::collection::vec(any::<u8>(), 0..1024),
            mut cuts in proptest::collection::vec(0..1024usize, 0..8),
        ) {
            cuts.sort_unstable();
            let _ = drive(&input, &cuts);
        }

        #[test]
        fn arbitrary_paths_never_panic(path in "/[a-z./%?]{0,24}") {
            let head = alloc::format!("GET {path} HTTP/1.1\r\n\r\n");
            let (events, wire) = drive(head.as_bytes(), &[]);
            prop_assert!(wire.starts_with(b"HTTP/1.1 "));
            prop_assert!(!events.is_empty());
        }
    }
}
