//! Simulated clients for scenarios: an RTMP publisher of a synthetic stream, RTMP and
//! HTTP-FLV players that check every frame they receive, RTSP players (RTP over UDP or
//! interleaved) and publishers, hand-driven RTMP and RTSP connections, an HTTP GET of a
//! document, a raw TCP client and a UDP sender.
//!
//! The protocol work is the core's own sans-IO sessions (`RtmpClientSession`, the FLV
//! demuxer), so the simulation tests the server against the same code a real client of
//! mediakit runs. Each client is a task on the current [`World`](crate::World) and records
//! what it sees in a [`ClientLog`] the test reads at any time through its [`Client`] handle.

mod chunked;
mod http_flv;
mod http_get;
mod log;
mod media;
mod raw;
mod raw_rtmp;
mod rtmp;
mod rtsp;
#[cfg(test)]
mod tests;
mod wait;

use std::cell::{Ref, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

pub use http_flv::play_http_flv;
pub use http_get::{http_get, HttpResponse};
pub use log::{ClientLog, Delivered, DeliveryError, Event, Record};
pub use media::{FrameError, FrameId, MediaSpec, SyntheticSource, Track, AUDIO_RATE};
pub use raw::{raw_tcp, udp_flood, RawTcpOptions, UdpFloodOptions};
pub use raw_rtmp::{control_bytes, status_code, RawRtmp};
pub use rtmp::{play_rtmp, publish_rtmp, PublishEnd, PublishOptions};
pub use rtsp::{play_rtsp, publish_rtsp, RtspConnection, RtspPlayOptions, RtspPublishOptions};

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use mediakit_core::media::Media;
use mediakit_core::Millis;

use crate::timer::Sleep;
use crate::world::JoinHandle;
use crate::{now, sleep_until, TcpStream};

/// A running client: its log, and its task.
#[derive(Debug)]
pub struct Client {
    log: Rc<RefCell<ClientLog>>,
    task: JoinHandle<()>,
}

impl Client {
    fn spawn<F, Fut>(body: F) -> Client
    where
        F: FnOnce(Rc<RefCell<ClientLog>>) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let log = Rc::new(RefCell::new(ClientLog::default()));
        let task = crate::spawn(body(Rc::clone(&log)));
        Client { log, task }
    }

    /// What the client saw so far.
    pub fn log(&self) -> Ref<'_, ClientLog> {
        self.log.borrow()
    }

    /// True once the client's task ended (its connection closed, or it was aborted).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the client where it stands: its connection is dropped without a goodbye.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Where and what a player plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayOptions {
    /// The client's IP address.
    pub from: IpAddr,
    /// The server's RTMP or HTTP address.
    pub server: SocketAddr,
    /// Application name (`live`).
    pub app: String,
    /// Stream name.
    pub stream: String,
    /// The synthetic stream to check frames against.
    pub media: MediaSpec,
    /// Connect this long after the client is spawned, in milliseconds.
    pub start_delay_ms: u64,
    /// Bytes in flight toward the client (see
    /// [`TcpStream::set_receive_buffer`](crate::TcpStream::set_receive_buffer)); `None`
    /// keeps the network's default.
    pub receive_buffer: Option<usize>,
    /// Stop reading this long after playing started, and never read again: a stalled
    /// player. The client then waits for the server to close the connection.
    pub stall_after_ms: Option<u64>,
    /// Leave this long after playing started.
    pub leave_after_ms: Option<u64>,
}

impl PlayOptions {
    /// Plays `app/stream` from `server`, as a healthy player, at once.
    pub fn new(from: IpAddr, server: SocketAddr, app: &str, stream: &str) -> Self {
        Self {
            from,
            server,
            app: app.into(),
            stream: stream.into(),
            media: MediaSpec::default(),
            start_delay_ms: 0,
            receive_buffer: None,
            stall_after_ms: None,
            leave_after_ms: None,
        }
    }
}

/// Connects from `from` to `server`, logging the outcome; `None` if it failed (the log says
/// why).
fn connect_from(
    from: IpAddr,
    server: SocketAddr,
    receive_buffer: Option<usize>,
    log: &RefCell<ClientLog>,
) -> Option<TcpStream> {
    match TcpStream::connect(from, server) {
        Ok(stream) => {
            if let Some(bytes) = receive_buffer {
                let _ = stream.set_receive_buffer(bytes);
            }
            log.borrow_mut().push(now(), Event::Connected);
            Some(stream)
        }
        Err(error) => {
            log.borrow_mut()
                .push(now(), Event::Closed(format!("connect: {error}")));
            None
        }
    }
}

/// Logs a media item a player received, checking a frame against `spec`.
fn record_media(spec: &MediaSpec, media: &Media, log: &RefCell<ClientLog>) {
    let event = match media {
        Media::Config(config) => Event::Config(media::track_of(config.kind())),
        Media::Metadata(_) => Event::Metadata,
        Media::Frame(frame) => match spec.check(frame) {
            Ok(id) => Event::Frame { id, dts: frame.dts },
            Err(error) => Event::Corrupt(error.to_string()),
        },
    };
    log.borrow_mut().push(now(), event);
}

/// Waits until `stream` is readable (true) or `deadline` passes (false), with `timer` kept
/// by the caller across waits.
async fn readable_until(
    stream: &TcpStream,
    deadline: Option<Millis>,
    timer: &mut Option<Sleep>,
) -> bool {
    if let Some(at) = deadline {
        match timer {
            Some(timer) => timer.reset(at),
            None => *timer = Some(sleep_until(at)),
        }
    }
    poll_fn(|cx| {
        if stream.poll_read_ready(cx).is_ready() {
            return Poll::Ready(true);
        }
        if let (Some(_), Some(timer)) = (deadline, timer.as_mut()) {
            if Pin::new(timer).poll(cx).is_ready() {
                return Poll::Ready(false);
            }
        }
        Poll::Pending
    })
    .await
}

/// Stops reading for good: logs `Stalled`, then `Closed` when the server gives up on the
/// connection (closes or resets it).
async fn stall(stream: &TcpStream, log: &RefCell<ClientLog>) {
    log.borrow_mut().push(now(), Event::Stalled);
    stream.wait_peer_closed().await;
    log.borrow_mut()
        .push(now(), Event::Closed("server closed".into()));
}
