//! The server side of an HTTP-FLV connection: one GET for `/{app}/{stream}.flv`, answered
//! with an endless FLV body that ends when the stream does.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use bytes::{Buf, BytesMut};

use crate::flv::FlvMuxer;
use crate::http::{self, HttpError, LiveFormat, Method, Status};
use crate::media::Media;
use crate::outq::OutQueue;
use crate::session::{LiveSession, Phase, Rejection, SessionEvent};
use crate::time::Millis;

/// How long a connection may take to send its request head, in milliseconds.
pub const DEFAULT_HEAD_TIMEOUT_MS: u64 = 15_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    AwaitingHead,
    PlayPending { head_only: bool },
    Playing,
    Done,
}

/// One HTTP-FLV connection.
#[derive(Debug)]
pub struct HttpFlvSession {
    mode: Mode,
    origin: Option<String>,
    out: OutQueue,
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
                    self.mode = Mode::PlayPending {
                        head_only: head.method == Method::Head,
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
        let Mode::PlayPending { head_only } = self.mode else {
            return;
        };
        http::write_stream_head(&mut self.arena, "video/x-flv", self.origin.as_deref());
        self.out.push(self.arena.split().freeze());
        if head_only {
            self.finish("head request answered");
        } else {
            self.muxer.write_header(&mut self.arena, &mut self.out);
            self.mode = Mode::Playing;
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
        if self.mode == Mode::Playing {
            // A body over the FLV tag limit cannot be framed; the muxer writes nothing for it,
            // and dropping that one item is all a player of a live stream can be offered.
            let _ = self
                .muxer
                .write_media(media, &mut self.arena, &mut self.out);
        }
    }

    fn end_of_stream(&mut self) {
        if self.mode == Mode::Playing {
            self.finish("stream ended");
        }
    }

    fn transmit(&mut self) -> &mut OutQueue {
        // The muxer holds each tag's trailer back to share a segment with the next tag's
        // header; whenever the runtime is about to write, release it so players are never a
        // tag behind.
        self.muxer.flush(&mut self.arena, &mut self.out);
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
        if self.mode == Mode::Playing {
            Phase::Media
        } else {
            Phase::Setup
        }
    }
}
