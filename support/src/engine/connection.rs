//! One connection from accept to close: reads into the core session, acts on its events
//! against the hub, feeds players from their queue, and flushes output with vectored writes.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mediakit_core::datagram::UdpChannel;
use mediakit_core::hls::HlsResource;
use mediakit_core::http::{playlist_resource, segment_resource};
use mediakit_core::http_live::HttpLiveSession;
use mediakit_core::hub::{PublishError, PublisherId, ReaderKey, StreamEntry, StreamKey};
use mediakit_core::rtmp::server::{RtmpServerConfig, RtmpServerSession};
use mediakit_core::rtsp::server::{RtspServerConfig, RtspServerSession};
use mediakit_core::session::{LiveSession, Phase, Rejection, SessionEvent};
use mediakit_core::wait::{WaitStatus, WaiterId};
use mediakit_core::Millis;

use super::fanout::Source;
use super::hls::HlsPublisher;
use super::notify::LocalNotify;
use super::runtime::{Connection as _, Runtime, Timer as _};
use super::shared::PublisherHandle;
use super::udp::DatagramInbox;
use super::worker::Worker;
use crate::logging::LogDecision;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rtmp,
    Http,
    Rtsp,
}

/// Bytes a player may have queued in its session before we stop pulling from its hub queue:
/// beyond this, the hub's bounded queue and slow-player policy take over.
const PLAYER_HIGH_WATER: usize = 512 * 1024;
/// Most unparsed input we hold for one connection.
const MAX_PENDING_INPUT: usize = 1 << 20;
/// How often a request for a playlist that does not exist yet looks again.
const PLAYLIST_POLL: Duration = Duration::from_millis(100);

pub async fn serve<R: Runtime>(
    worker: Rc<Worker<R>>,
    stream: R::Stream,
    peer: SocketAddr,
    protocol: Protocol,
) {
    let now = worker.shared.now();
    match protocol {
        Protocol::Rtmp => {
            let rtmp = &worker.shared.config.rtmp;
            let config = RtmpServerConfig {
                chunk_size: rtmp.chunk_size,
                max_message_len: rtmp.max_message_bytes,
                setup_timeout_ms: rtmp.handshake_timeout_ms,
                ..RtmpServerConfig::default()
            };
            let session = RtmpServerSession::new(config, now, random_seed(&peer));
            drive(worker, stream, peer, "rtmp", session).await
        }
        Protocol::Http => drive(worker, stream, peer, "http", HttpLiveSession::new(now)).await,
        Protocol::Rtsp => {
            let config = RtspServerConfig {
                udp_ports: worker.udp.get().map(|udp| udp.ports),
                ..RtspServerConfig::default()
            };
            let session = RtspServerSession::new(config, now, random_seed(&peer));
            drive(worker, stream, peer, "rtsp", session).await
        }
    }
}

/// Handshake randomness: the digest handshake needs unpredictable bytes but not secrecy, so a
/// hash keyed by the std `RandomState` (random per process) of the peer and the time suffices.
fn random_seed(peer: &SocketAddr) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(peer.to_string().as_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

/// What the connection is doing in the hub.
enum Role {
    Idle,
    Publishing {
        key: StreamKey,
        id: PublisherId,
        source: Rc<Source>,
        /// Boxed: a segmenter is large, and most connections are players.
        hls: Option<Box<HlsPublisher>>,
    },
    Playing {
        key: StreamKey,
        reader: ReaderKey,
        source: Rc<Source>,
    },
    Waiting {
        key: StreamKey,
        waiter: WaiterId,
        deadline: Millis,
    },
}

impl Role {
    fn key(&self) -> Option<&StreamKey> {
        match self {
            Role::Idle => None,
            Role::Publishing { key, .. }
            | Role::Playing { key, .. }
            | Role::Waiting { key, .. } => Some(key),
        }
    }
}

/// Why a connection ended, for its one log line.
enum Ending {
    Normal(&'static str),
    Error(String),
}

/// What woke the connection.
enum Wakeup {
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    Notified,
    Deadline,
}

/// One connection's state between wake-ups.
struct Conn<R: Runtime, S> {
    worker: Rc<Worker<R>>,
    session: S,
    role: Role,
    peer: SocketAddr,
    proto: &'static str,
    /// Wakes this connection: media for a player, its stream going live, shutdown.
    wake: Rc<LocalNotify>,
    closing: Option<Ending>,
    /// The stream this connection last published or played, named in its close line.
    stream_name: Option<StreamKey>,
    /// Datagrams routed here from the peer's UDP ports, once it announced some.
    datagram_inbox: Option<Rc<DatagramInbox>>,
    /// The peer addresses routed to `datagram_inbox`, removed at close.
    datagram_routes: Vec<SocketAddr>,
    /// A playlist request waiting for the stream's first segment.
    playlist_wait: Option<PlaylistWait>,
}

/// An HLS playlist asked for before it exists: looked up again every [`PLAYLIST_POLL`]
/// until `deadline`, like a player waiting for its stream.
struct PlaylistWait {
    key: StreamKey,
    deadline: Instant,
}

async fn drive<R: Runtime, S: LiveSession>(
    worker: Rc<Worker<R>>,
    stream: R::Stream,
    peer: SocketAddr,
    proto: &'static str,
    session: S,
) {
    let logged_connect = log_allowed(&worker);
    if logged_connect {
        tracing::info!(%peer, proto, worker = worker.id, "connected");
    }
    let wake = Rc::new(LocalNotify::new());
    let connection_id = worker.register_connection(Rc::clone(&wake));
    let mut conn = Conn {
        worker: Rc::clone(&worker),
        session,
        role: Role::Idle,
        peer,
        proto,
        wake,
        closing: None,
        stream_name: None,
        datagram_inbox: None,
        datagram_routes: Vec::new(),
        playlist_wait: None,
    };
    let _ = stream.socket().set_nodelay(true);
    let mut nodelay = true;
    let mut input = BytesMut::with_capacity(16 * 1024);
    // One timer for the connection's life, moved when the deadline changes; `armed` is the
    // deadline it is set for, `None` when it is not to be polled (or has fired).
    let mut timer: Option<R::Sleep> = None;
    let mut armed: Option<Instant> = None;

    let ending = loop {
        if worker.is_stopping() {
            break Ending::Normal("server shutting down");
        }
        let more_media = conn.step();
        if nodelay && conn.session.phase() == Phase::Media {
            let _ = stream.socket().set_nodelay(false);
            nodelay = false;
        }
        if let Err(error) = flush(&stream, &mut conn.session, more_media) {
            break conn
                .closing
                .take()
                .unwrap_or(Ending::Error(format!("write failed: {error}")));
        }
        let udp_full = conn.send_datagrams();
        if conn.closing.is_some() && conn.session.transmit().is_empty() {
            break conn.closing.take().unwrap_or(Ending::Normal("closed"));
        }

        let want_write = !conn.session.transmit().is_empty();
        let read_open = conn.closing.is_none() && input.len() < MAX_PENDING_INPUT;
        let session_deadline = conn
            .session
            .poll_timeout()
            .map(|at| worker.shared.instant_of(at));
        let wait_deadline = match (&conn.role, &conn.playlist_wait) {
            (Role::Waiting { deadline, .. }, _) => Some(worker.shared.instant_of(*deadline)),
            (_, Some(wait)) => Some(wait.deadline.min(Instant::now() + PLAYLIST_POLL)),
            _ => None,
        };
        let deadline = match (session_deadline, wait_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match deadline {
            Some(at) if armed != Some(at) => {
                match &mut timer {
                    Some(timer) => timer.reset(at),
                    None => timer = Some(R::sleep_until(at)),
                }
                armed = Some(at);
            }
            Some(_) => {}
            None => armed = None,
        }
        let timer_armed = armed.is_some();
        let wake = Rc::clone(&conn.wake);
        let wakeup = poll_fn(|cx| {
            if read_open {
                if let Poll::Ready(result) = stream.poll_readable(cx) {
                    return Poll::Ready(Wakeup::Readable(result));
                }
            }
            if want_write {
                if let Poll::Ready(result) = stream.poll_writable(cx) {
                    return Poll::Ready(Wakeup::Writable(result));
                }
            }
            if let (Some(channel), Some(udp)) = (udp_full, worker.udp.get()) {
                if udp.poll_writable(channel, cx).is_ready() {
                    return Poll::Ready(Wakeup::Notified);
                }
            }
            if wake.poll_notified(cx).is_ready() {
                return Poll::Ready(Wakeup::Notified);
            }
            if let (true, Some(timer)) = (timer_armed, timer.as_mut()) {
                if Pin::new(timer).poll(cx).is_ready() {
                    return Poll::Ready(Wakeup::Deadline);
                }
            }
            Poll::Pending
        })
        .await;

        match wakeup {
            Wakeup::Readable(Err(error)) | Wakeup::Writable(Err(error)) => {
                break Ending::Error(format!("socket error: {error}"));
            }
            Wakeup::Readable(Ok(())) => match stream.try_read(&mut input) {
                Ok(0) => break conn.closing.take().unwrap_or(Ending::Normal("peer closed")),
                Ok(_) => {
                    conn.receive_datagrams(true);
                    if let Err(error) = conn.session.handle_input(worker.shared.now(), &mut input) {
                        conn.closing = Some(Ending::Error(error.to_string()));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => break Ending::Error(format!("read failed: {error}")),
            },
            Wakeup::Writable(Ok(())) => {}
            Wakeup::Notified => {
                conn.receive_datagrams(false);
                conn.poll_wait();
            }
            Wakeup::Deadline => {
                // A fired timer stays ready until reset.
                armed = None;
                conn.session.handle_timeout(worker.shared.now());
                if wait_deadline.is_some_and(|at| Instant::now() >= at) {
                    conn.poll_wait();
                    conn.look_for_playlist();
                }
            }
        }
    };

    conn.leave_role();
    conn.drop_datagram_routes();
    worker.forget_connection(connection_id);
    // Connections that published or played always get their close line; the others (scans,
    // garbage, failed handshakes) only within the per-worker rate limit.
    let (peer, proto) = (conn.peer, conn.proto);
    match (ending, &conn.stream_name) {
        (Ending::Normal(reason), Some(stream)) => {
            tracing::info!(%peer, proto, %stream, reason, "closed")
        }
        (Ending::Normal(reason), None) if logged_connect => {
            tracing::info!(%peer, proto, reason, "closed")
        }
        (Ending::Normal(_), None) => {}
        (Ending::Error(reason), Some(stream)) => {
            tracing::warn!(%peer, proto, %stream, %reason, "closed")
        }
        (Ending::Error(reason), None) => {
            if log_allowed(&worker) {
                tracing::warn!(%peer, proto, %reason, "closed");
            }
        }
    }
}

/// Rate-limits the lines of connections that never publish or play.
fn log_allowed<R: Runtime>(worker: &Worker<R>) -> bool {
    match worker.log_limiter.borrow_mut().check(Instant::now()) {
        LogDecision::Log { suppressed_before } => {
            if suppressed_before > 0 {
                tracing::warn!(
                    worker = worker.id,
                    suppressed = suppressed_before,
                    "connection log lines suppressed"
                );
            }
            true
        }
        LogDecision::Suppress => false,
    }
}

/// Writes what the session has queued until done or the socket is full.
fn flush<C: super::runtime::Connection, S: LiveSession>(
    stream: &C,
    session: &mut S,
    more_media: bool,
) -> io::Result<()> {
    let media = session.phase() == Phase::Media;
    while !session.transmit().is_empty() {
        match stream.try_send(session.transmit(), media && more_media) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

impl<R: Runtime, S: LiveSession> Conn<R, S> {
    /// Acts on everything the session has to say, then feeds a player (which may produce more
    /// events, such as the close after an end of stream). Returns whether more media waits.
    fn step(&mut self) -> bool {
        let mut more_media = false;
        for _ in 0..2 {
            while let Some(event) = self.session.poll_event() {
                self.on_event(event);
                if let Some(key) = self.role.key() {
                    if self.stream_name.as_ref() != Some(key) {
                        self.stream_name = Some(key.clone());
                    }
                }
            }
            more_media = self.feed_player();
        }
        more_media
    }

    fn on_event(&mut self, event: SessionEvent) {
        let (peer, proto) = (self.peer, self.proto);
        match event {
            SessionEvent::Media(media) => {
                if let Role::Publishing { source, hls, .. } = &mut self.role {
                    source.publish(&self.worker.shared, &media);
                    if let Some(hls) = hls {
                        hls.push(&self.worker.shared.hls, &media);
                    }
                }
            }
            SessionEvent::ResourceRequested { key, name } => self.serve_resource(key, &name),
            SessionEvent::PublishRequested { key } => {
                self.leave_role();
                self.start_publish(key);
            }
            SessionEvent::PlayRequested { key } => {
                self.leave_role();
                self.start_play(key);
            }
            // The session has answered already; only the log line is left, rate-limited.
            SessionEvent::BadStreamName { request, error } if log_allowed(&self.worker) => {
                tracing::warn!(%peer, proto, %request, %error, "refused: bad stream name");
            }
            SessionEvent::PublishStopped | SessionEvent::PlayStopped => self.leave_role(),
            SessionEvent::DatagramPortsRequested { rtp, rtcp } => {
                self.route_datagrams(rtp, rtcp);
                self.session.accept_datagram_ports();
            }
            SessionEvent::Closed { reason } => {
                self.closing.get_or_insert(Ending::Normal(reason));
            }
            _ => {}
        }
    }

    fn start_publish(&mut self, key: StreamKey) {
        let (peer, proto, worker) = (self.peer, self.proto, Rc::clone(&self.worker));
        let shared = &worker.shared;
        let mut control = shared.control();
        match control.registry.publish(
            key.clone(),
            PublisherHandle { worker: worker.id },
            shared.now(),
        ) {
            Ok((id, woken)) => {
                let woken: Vec<WaiterId> = woken.to_vec();
                shared.wake_waiters(&mut control, woken);
                drop(control);
                let source = Source::new(id, worker.id, worker.new_source_state());
                worker.sources.borrow_mut().insert(id, Rc::clone(&source));
                self.session.accept_publish();
                tracing::info!(%peer, proto, stream = %key, "publishing");
                let hls = shared.hls.start(&key).map(Box::new);
                self.role = Role::Publishing {
                    key,
                    id,
                    source,
                    hls,
                };
            }
            Err(error) => {
                drop(control);
                let why = match error {
                    PublishError::AlreadyPublishing { .. } => Rejection::AlreadyPublishing,
                    _ => Rejection::Unavailable,
                };
                tracing::warn!(%peer, proto, stream = %key, "publish refused: {error}");
                self.session.reject(why);
            }
        }
    }

    /// Attaches to a live stream, or waits for it to be published.
    fn start_play(&mut self, key: StreamKey) {
        let (peer, proto) = (self.peer, self.proto);
        let worker = Rc::clone(&self.worker);
        let wait_ms = worker.shared.hub.play_wait_ms;
        let mut control = worker.shared.control();
        let live = control.registry.entry(&key).cloned();
        if let Some(entry) = live {
            drop(control);
            return self.attach(key, &entry);
        }
        match control
            .registry
            .wait_for(key.clone(), worker.shared.now(), wait_ms)
        {
            Ok((waiter, deadline)) => {
                control.waiters.insert(waiter, worker.id);
                drop(control);
                worker.wait_here(waiter, Rc::clone(&self.wake));
                tracing::info!(%peer, proto, stream = %key, wait_ms, "waiting for publisher");
                self.role = Role::Waiting {
                    key,
                    waiter,
                    deadline,
                };
            }
            Err(error) => {
                drop(control);
                tracing::warn!(%peer, proto, stream = %key, "play refused: {error}");
                self.session.reject(Rejection::Unavailable);
            }
        }
    }

    /// Starts playing the publish `entry` of `key`.
    fn attach(&mut self, key: StreamKey, entry: &StreamEntry<PublisherHandle>) {
        let source = self
            .worker
            .source_for_player(entry.publisher(), entry.handle().worker);
        let reader = source.add_reader(Rc::clone(&self.wake));
        self.session.accept_play();
        tracing::info!(peer = %self.peer, proto = self.proto, stream = %key, "playing");
        self.role = Role::Playing {
            key,
            reader,
            source,
        };
    }

    /// A wake-up while waiting (the stream may be live, or the deadline passed): the
    /// registry says which.
    fn poll_wait(&mut self) {
        let Role::Waiting { key, waiter, .. } = &self.role else {
            return;
        };
        let (key, waiter) = (key.clone(), *waiter);
        let worker = Rc::clone(&self.worker);
        let mut control = worker.shared.control();
        let status = control.registry.poll_wait(waiter, worker.shared.now());
        match status {
            WaitStatus::Pending { deadline } => {
                if let Role::Waiting { deadline: at, .. } = &mut self.role {
                    *at = deadline;
                }
                return;
            }
            WaitStatus::Ready(_) | WaitStatus::Expired { .. } | WaitStatus::Unknown => {
                control.waiters.remove(&waiter);
            }
        }
        drop(control);
        worker.stop_waiting(waiter);
        self.role = Role::Idle;
        match status {
            WaitStatus::Ready(entry) => self.attach(key, &entry),
            _ => {
                tracing::info!(peer = %self.peer, proto = self.proto, stream = %key, "play refused: not published in time");
                self.session.reject(Rejection::NotFound);
            }
        }
    }

    /// Moves media from the player's hub queue into the session, up to the high-water mark.
    /// Returns whether more is waiting (so the write may carry MSG_MORE).
    fn feed_player(&mut self) -> bool {
        let Role::Playing {
            key,
            reader,
            source,
        } = &self.role
        else {
            return false;
        };
        loop {
            let datagram_bytes = self.session.datagrams().map_or(0, |d| d.queued_bytes());
            if self.session.transmit().queued_bytes() + datagram_bytes >= PLAYER_HIGH_WATER {
                return true;
            }
            let next = source.state.borrow_mut().pop(*reader);
            match next {
                Some(media) => self.session.send_media(&media),
                None => break,
            }
        }
        let state = source.state.borrow();
        if state.queue(*reader).is_none() {
            drop(state);
            tracing::warn!(peer = %self.peer, proto = self.proto, stream = %key, "player too slow: disconnected");
            self.closing
                .get_or_insert(Ending::Error("player too slow".into()));
            self.role = Role::Idle;
        } else if state.is_ended() {
            drop(state);
            tracing::info!(peer = %self.peer, proto = self.proto, stream = %key, "stream ended");
            self.session.end_of_stream();
            self.leave_role();
        }
        false
    }

    /// Answers a request for an HLS playlist or segment. A playlist that does not exist yet
    /// is waited for (play-before-publish); a segment is there or not.
    fn serve_resource(&mut self, key: StreamKey, name: &str) {
        let hls = &self.worker.shared.hls;
        match HlsResource::parse(name) {
            Some(HlsResource::Playlist) => match hls.snapshot(&key) {
                Some(snapshot) => self
                    .session
                    .serve_resource(playlist_resource(snapshot.playlist.clone())),
                None => {
                    let wait = Duration::from_millis(self.worker.shared.hub.play_wait_ms);
                    self.stream_name = Some(key.clone());
                    self.playlist_wait = Some(PlaylistWait {
                        key,
                        deadline: Instant::now() + wait,
                    });
                }
            },
            Some(HlsResource::Segment(sequence)) => {
                match hls.snapshot(&key).and_then(|s| s.segment(sequence)) {
                    Some(bytes) => self.session.serve_resource(segment_resource(bytes)),
                    None => self.session.reject(Rejection::NotFound),
                }
            }
            None => self.session.reject(Rejection::NotFound),
        }
    }

    /// Looks again for the playlist a request waits for; past its deadline, a 404.
    fn look_for_playlist(&mut self) {
        let Some(wait) = &self.playlist_wait else {
            return;
        };
        if let Some(snapshot) = self.worker.shared.hls.snapshot(&wait.key) {
            self.playlist_wait = None;
            self.session
                .serve_resource(playlist_resource(snapshot.playlist.clone()));
        } else if Instant::now() >= wait.deadline {
            let key = wait.key.clone();
            self.playlist_wait = None;
            tracing::info!(peer = %self.peer, proto = self.proto, stream = %key, "playlist refused: no segment in time");
            self.session.reject(Rejection::NotFound);
        }
    }

    /// Routes datagrams from the peer's announced ports to this session.
    fn route_datagrams(&mut self, rtp: u16, rtcp: u16) {
        let Some(udp) = self.worker.udp.get() else {
            return;
        };
        let wake = &self.wake;
        let inbox = self
            .datagram_inbox
            .get_or_insert_with(|| DatagramInbox::new(Rc::clone(wake)));
        for port in [rtp, rtcp] {
            let from = SocketAddr::new(self.peer.ip(), port);
            udp.route(from, inbox);
            if !self.datagram_routes.contains(&from) {
                self.datagram_routes.push(from);
            }
        }
    }

    /// Hands the datagrams routed here to the session. Before a request on the connection,
    /// `collect` first takes any still in the worker's sockets: a request must not overtake
    /// RTP the peer sent before it.
    fn receive_datagrams(&mut self, collect: bool) {
        let Some(inbox) = &self.datagram_inbox else {
            return;
        };
        if let (true, Some(udp)) = (collect, self.worker.udp.get()) {
            udp.receive_pending();
        }
        let now = self.worker.shared.now();
        while let Some((channel, port, payload)) = inbox.pop() {
            self.session.handle_datagram(now, channel, port, payload);
        }
    }

    /// Sends the session's queued datagrams; returns the channel whose socket is full.
    fn send_datagrams(&mut self) -> Option<UdpChannel> {
        let udp = self.worker.udp.get()?;
        let queue = self.session.datagrams()?;
        if queue.is_empty() {
            return None;
        }
        udp.send(queue, self.peer.ip())
    }

    fn drop_datagram_routes(&mut self) {
        if let (Some(udp), Some(inbox)) = (self.worker.udp.get(), &self.datagram_inbox) {
            for from in self.datagram_routes.drain(..) {
                udp.unroute(from, inbox);
            }
        }
    }

    /// Leaves whatever the connection was doing in the hub.
    fn leave_role(&mut self) {
        let worker = &self.worker;
        match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Idle => {}
            Role::Publishing {
                key,
                id,
                source,
                hls,
            } => {
                if let Some(hls) = hls {
                    (*hls).stop(&worker.shared.hls);
                }
                worker.shared.control().registry.unpublish(&key, id);
                worker.sources.borrow_mut().remove(&id);
                source.end(&worker.shared);
                tracing::info!(stream = %key, "unpublished");
            }
            Role::Playing { reader, source, .. } => worker.release_player(&source, reader),
            Role::Waiting { waiter, .. } => {
                let mut control = worker.shared.control();
                control.registry.cancel_wait(waiter);
                control.waiters.remove(&waiter);
                drop(control);
                worker.stop_waiting(waiter);
            }
        }
    }
}
