//! The server side of an HTTP-FLV connection: one GET for `/{app}/{stream}.flv`, answered
//! with an endless FLV body that ends when the stream does.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use bytes::{Buf, BytesMut};

use crate::flv::FlvMuxer;
use crate::http::{self, BodyFraming, HttpError, LiveFormat, Method, Status};
use crate::media::Media;
use crate::outq::OutQueue;
use crate::session::{LiveSession, Phase, Rejection, SessionEvent};
use crate::time::Millis;

/// How long a connection may take to send its request head, in milliseconds.
pub const DEFAULT_HEAD_TIMEOUT_MS: u64 = 15_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    AwaitingHead,
    PlayPending {
        head_only: bool,
        framing: BodyFraming,
    },
    Playing {
        framing: BodyFraming,
    },
    Done,
}

/// One HTTP-FLV connection.
#[derive(Debug)]
pub struct HttpFlvSession {
    mode: Mode,
    origin: Option<String>,
    out: OutQueue,
    /// FLV bytes not yet framed as an HTTP chunk.
    body: OutQueue,
    arena: BytesMut,
    muxer: FlvMuxer,
    events: VecDeque<SessionEvent>,
    head_deadline: Millis,
}

impl HttpFlvSession {
    /// A session for a connection accepted at `now`.
    pub fn new(now: Millis) -> Self {
        Self {
            mode: Mode::AwaitingHead,
            origin: None,
            out: OutQueue::new(),
            body: OutQueue::new(),
            arena: BytesMut::new(),
            muxer: FlvMuxer::new(true, true),
            events: VecDeque::new(),
            head_deadline: now + DEFAULT_HEAD_TIMEOUT_MS,
        }
    }

    fn respond_and_close(&mut self, status: Status, body: &str, reason: &'static str) {
        http::write_simple_response(&mut self.arena, status, self.origin.as_deref(), body);
        self.out.push(self.arena.split().freeze());
        self.finish(reason);
    }

    /// Moves the FLV written since the last call into the output, as one HTTP chunk when the
    /// body is chunked. Called whenever the runtime is about to write, so media written in a
    /// burst shares one chunk header.
    fn frame_body(&mut self) {
        let Mode::Playing { framing } = self.mode else {
            return;
        };
        // The muxer holds each tag's trailer back to share a segment with the next tag's
        // header; release it so players are never a tag behind.
        self.muxer.flush(&mut self.arena, &mut self.body);
        match framing {
            BodyFraming::Chunked => {
                http::move_as_chunk(&mut self.body, &mut self.arena, &mut self.out)
            }
            BodyFraming::UntilClose => self.out.append(&mut self.body),
        }
    }

    fn finish(&mut self, reason: &'static str) {
        if self.mode != Mode::Done {
            self.mode = Mode::Done;
            self.events.push_back(SessionEvent::Closed { reason });
        }
    }
}

impl LiveSession for HttpFlvSession {
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
        match head.method {
            Method::Options => self.respond_and_close(Status::NoContent, "", "preflight answered"),
            Method::Other => self.respond_and_close(
                Status::MethodNotAllowed,
                "method not allowed\n",
                "method not allowed",
            ),
            Method::Get | Method::Head => match http::resolve_live_path(&head.path) {
                Some(live) if live.format == LiveFormat::Flv => {
                    let framing = if head.http10 {
                        BodyFraming::UntilClose
                    } else {
                        BodyFraming::Chunked
                    };
                    self.mode = Mode::PlayPending {
                        head_only: head.method == Method::Head,
                        framing,
                    };
                    self.events.push_back(SessionEvent::PlayRequested {
                        app: live.app.to_string(),
                        stream: live.stream.to_string(),
                    });
                }
                _ => self.respond_and_close(Status::NotFound, "not found\n", "no such path"),
            },
        }
        Ok(())
    }

    fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn accept_publish(&mut self) {}

    fn accept_play(&mut self) {
        let Mode::PlayPending { head_only, framing } = self.mode else {
            return;
        };
        http::write_stream_head(
            &mut self.arena,
            "video/x-flv",
            self.origin.as_deref(),
            framing,
        );
        self.out.push(self.arena.split().freeze());
        if head_only {
            self.finish("head request answered");
        } else {
            self.muxer.write_header(&mut self.arena, &mut self.body);
            self.mode = Mode::Playing { framing };
        }
    }

    fn reject(&mut self, why: Rejection) {
        if !matches!(self.mode, Mode::PlayPending { .. }) {
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
            Rejection::Unavailable => (Status::ServiceUnavailable, "unavailable\n", "unavailable"),
        };
        self.respond_and_close(status, body, reason);
    }

    fn send_media(&mut self, media: &Media) {
        if matches!(self.mode, Mode::Playing { .. }) {
            // A body over the FLV tag limit cannot be framed; the muxer writes nothing for it,
            // and dropping that one item is all a player of a live stream can be offered.
            let _ = self
                .muxer
                .write_media(media, &mut self.arena, &mut self.body);
        }
    }

    fn end_of_stream(&mut self) {
        if let Mode::Playing { framing } = self.mode {
            self.frame_body();
            if framing == BodyFraming::Chunked {
                self.out.push(bytes::Bytes::from_static(http::LAST_CHUNK));
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
    use crate::media::{Codec, Frame};
    use alloc::vec::Vec;
    use bytes::Bytes;

    fn drain(session: &mut HttpFlvSession) -> Vec<u8> {
        let out = session.transmit();
        let bytes: Vec<u8> = out.segments().flatten().copied().collect();
        let len = out.queued_bytes();
        out.advance(len);
        bytes
    }

    fn request(session: &mut HttpFlvSession, head: &str) -> Option<SessionEvent> {
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
        let mut session = HttpFlvSession::new(Millis(0));
        let event = request(
            &mut session,
            "GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(
            event,
            Some(SessionEvent::PlayRequested {
                app: "live".into(),
                stream: "cam".into()
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
        let mut session = HttpFlvSession::new(Millis(0));
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
            let mut session = HttpFlvSession::new(Millis(0));
            assert!(
                matches!(
                    request(&mut session, head),
                    Some(SessionEvent::Closed { .. })
                ),
                "{head}"
            );
            assert!(drain(&mut session).starts_with(status.as_bytes()), "{head}");
        }
        let mut session = HttpFlvSession::new(Millis(0));
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
        let mut session = HttpFlvSession::new(Millis(0));
        let deadline = session.poll_timeout().unwrap();
        session.handle_timeout(deadline);
        assert!(matches!(
            session.poll_event(),
            Some(SessionEvent::Closed { .. })
        ));
    }
}
