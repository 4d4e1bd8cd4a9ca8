//! One connection from accept to close: reads into the core session, acts on its events
//! against the hub, feeds players from their queue, and flushes output with vectored writes.
//!
//! Every decision here is asked of the core with the runtime's time passed in: the session
//! (protocol deadlines), the [`ConnectionGuard`] (send progress, backpressure, how much media a
//! player takes), the registry (play-before-publish) and the HLS catalog (playlist waits). The
//! loop only moves bytes and arms one timer at the earliest deadline any of them names.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use mediakit_core::budget::{WakeBudget, TCP_READ_BUDGET};
use mediakit_core::datagram::UdpChannel;
use mediakit_core::guard::ConnectionGuard;
use mediakit_core::hls::{HlsPublication, HlsResource};
use mediakit_core::http::{playlist_resource, segment_resource};
use mediakit_core::http_live::HttpLiveSession;
use mediakit_core::hub::{PublishError, PublisherId, ReaderKey, StreamEntry, StreamKey};
use mediakit_core::limit::{truncated, LOG_TEXT_MAX};
use mediakit_core::rtmp::server::{RtmpServerConfig, RtmpServerSession};
use mediakit_core::rtsp::server::{RtspServerConfig, RtspServerSession};
use mediakit_core::session::{LiveSession, Phase, Rejection, SessionEvent};
use mediakit_core::wait::{WaitError, WaitStatus, WaiterId};
use mediakit_core::Millis;

use super::deadline::Deadline;
use super::fanout::Source;
use super::hls::Woken;
use super::inbox::WorkerMsg;
use super::notify::{yield_now, LocalNotify};
use super::runtime::{Connection as _, Runtime};
use super::shared::{PublisherHandle, Shared};
use super::stats::Footprint;
use super::udp::{ConnectionId, DatagramInbox};
use super::worker::{Waiting, Worker};

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rtmp,
    Http,
    Rtsp,
}

impl Protocol {
    /// The name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Http => "http",
            Protocol::Rtsp => "rtsp",
        }
    }
}

/// Releases a connection's admission when it ends, however it ends (including a worker that
/// drops its tasks at shutdown).
struct Admitted {
    shared: Arc<Shared>,
    peer: SocketAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.shared.release(self.peer.ip());
    }
}

/// Runs one admitted connection to its end.
pub async fn serve<R: Runtime>(
    worker: Rc<Worker<R>>,
    stream: R::Stream,
    peer: SocketAddr,
    protocol: Protocol,
) {
    let _admitted = Admitted {
        shared: Arc::clone(&worker.shared),
        peer,
    };
    let now = R::now();
    let config = &worker.shared.config;
    match protocol {
        Protocol::Rtmp => {
            let rtmp = &config.rtmp;
            let session_config = RtmpServerConfig {
                chunk_size: rtmp.chunk_size,
                max_message_len: rtmp.max_message_bytes,
                setup_timeout_ms: rtmp.handshake_timeout_ms,
                publish_idle_timeout_ms: rtmp.publish_idle_timeout_ms,
            };
            let session = RtmpServerSession::new(session_config, now, R::seed());
            drive(worker, stream, peer, protocol, session).await
        }
        Protocol::Http => {
            let session = HttpLiveSession::with_head_timeout(now, config.http.request_timeout_ms);
            drive(worker, stream, peer, protocol, session).await
        }
        Protocol::Rtsp => {
            let session_config = RtspServerConfig {
                udp_ports: worker.udp.get().map(|udp| udp.ports),
                session_timeout_ms: config.rtsp.session_timeout_ms,
                ..RtspServerConfig::default()
            };
            let session = RtspServerSession::new(session_config, now, R::seed());
            drive(worker, stream, peer, protocol, session).await
        }
    }
}

/// What the connection is doing in the hub.
enum Role {
    Idle,
    Publishing {
        key: StreamKey,
        id: PublisherId,
        source: Rc<Source>,
        /// Boxed: a segmenter is large, and most connections are players.
        hls: Option<Box<HlsPublication>>,
    },
    Playing {
        key: StreamKey,
        reader: ReaderKey,
        source: Rc<Source>,
    },
    /// A player waiting for its stream to be published.
    WaitingForStream {
        key: StreamKey,
        waiter: WaiterId,
        deadline: Millis,
    },
    /// An HLS playlist request waiting for the stream's first segment.
    WaitingForPlaylist {
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
            | Role::WaitingForStream { key, .. }
            | Role::WaitingForPlaylist { key, .. } => Some(key),
        }
    }

    /// When a wait ends, if the connection is waiting.
    fn deadline(&self) -> Option<Millis> {
        match self {
            Role::WaitingForStream { deadline, .. } | Role::WaitingForPlaylist { deadline, .. } => {
                Some(*deadline)
            }
            _ => None,
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
    id: ConnectionId,
    session: S,
    guard: ConnectionGuard,
    role: Role,
    peer: SocketAddr,
    proto: &'static str,
    /// Wakes this connection: media for a player, what it waits for, shutdown.
    wake: Rc<LocalNotify>,
    closing: Option<Ending>,
    /// The stream this connection last published or played, named in its close line.
    stream_name: Option<StreamKey>,
    /// Datagrams routed here from the peer's UDP ports, once it claimed some.
    datagram_inbox: Option<Rc<DatagramInbox>>,
    /// What this connection last added to its worker's gauges.
    footprint: Footprint,
}

async fn drive<R: Runtime, S: LiveSession>(
    worker: Rc<Worker<R>>,
    stream: R::Stream,
    peer: SocketAddr,
    protocol: Protocol,
    session: S,
) {
    let proto = protocol.name();
    let logged_connect = worker.connection_log_allowed();
    if logged_connect {
        tracing::info!(%peer, proto, worker = worker.id, "connected");
    }
    let wake = Rc::new(LocalNotify::new());
    let id = worker.register_connection(Rc::clone(&wake));
    let keepalive = worker.shared.config.server.tcp_keepalive_secs;
    let _ = stream.set_keepalive((keepalive > 0).then(|| Duration::from_secs(keepalive)));
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        worker: Rc::clone(&worker),
        id,
        session,
        guard: ConnectionGuard::new(worker.shared.guard, R::now()),
        role: Role::Idle,
        peer,
        proto,
        wake,
        closing: None,
        stream_name: None,
        datagram_inbox: None,
        footprint: Footprint::default(),
    };
    let mut nodelay = true;
    let mut input = BytesMut::new();
    let mut deadline = Deadline::<R>::default();
    // Reads in a row without the loop having waited: a peer that sends faster than we parse
    // would otherwise keep this task running and starve the worker's other connections.
    let mut reads = WakeBudget::new(TCP_READ_BUDGET);

    let ending = loop {
        if worker.is_stopping() {
            break Ending::Normal("server shutting down");
        }
        let more_media = conn.step();
        if nodelay && conn.session.phase() == Phase::Media {
            let _ = stream.set_nodelay(false);
            nodelay = false;
        }
        let sent = match flush(&stream, &mut conn.session, more_media) {
            Ok(sent) => sent,
            Err(error) => {
                break conn
                    .closing
                    .take()
                    .unwrap_or(Ending::Error(format!("write failed: {error}")))
            }
        };
        let backlog = conn.session.transmit().queued_bytes();
        conn.guard.on_flush(R::now(), sent, backlog);
        let udp_full = conn.send_datagrams();
        if conn.closing.is_some() && conn.session.transmit().is_empty() {
            break conn.closing.take().unwrap_or(Ending::Normal("closed"));
        }
        let footprint = conn.measure(&input);
        if more_media
            && conn
                .guard
                .wants_media(footprint.output + footprint.datagrams)
        {
            // A player stopped taking media at the high-water mark and the socket took it
            // all: feed it again now, as nothing will wake it (its hub queue is not empty, so
            // new media does not notify it). Others run first.
            yield_now().await;
            continue;
        }
        let want_write = !conn.session.transmit().is_empty();
        let read_open = conn.closing.is_none()
            && conn
                .guard
                .may_read(input.len(), footprint.output + footprint.datagrams);
        deadline.set(
            [
                conn.session.poll_timeout(),
                conn.guard.poll_timeout(),
                conn.role.deadline(),
            ]
            .into_iter()
            .flatten()
            .min(),
        );
        let wake = Rc::clone(&conn.wake);
        if reads.exhausted() {
            yield_now().await;
            reads.start_wake();
        }
        let mut waited = false;
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
            if deadline.poll(cx).is_ready() {
                return Poll::Ready(Wakeup::Deadline);
            }
            waited = true;
            Poll::Pending
        })
        .await;
        if waited {
            reads.start_wake();
        }

        match wakeup {
            Wakeup::Readable(Err(error)) | Wakeup::Writable(Err(error)) => {
                break Ending::Error(format!("socket error: {error}"));
            }
            Wakeup::Readable(Ok(())) => {
                // Counted here; the check before the next wait yields once it is spent.
                reads.take();
                match stream.try_read(&mut input) {
                    Ok(0) => break conn.closing.take().unwrap_or(Ending::Normal("peer closed")),
                    Ok(_) => {
                        conn.receive_datagrams(true);
                        if let Err(error) = conn.session.handle_input(R::now(), &mut input) {
                            conn.closing = Some(Ending::Error(error.to_string()));
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => break Ending::Error(format!("read failed: {error}")),
                }
            }
            Wakeup::Writable(Ok(())) => {}
            Wakeup::Notified => {
                conn.receive_datagrams(false);
                conn.poll_role(R::now());
            }
            Wakeup::Deadline => {
                let now = R::now();
                conn.session.handle_timeout(now);
                if let Some(verdict) = conn.guard.handle_timeout(now) {
                    if let Some(stats) = worker.stats() {
                        stats.send_stalled();
                    }
                    break Ending::Error(verdict.to_string());
                }
                conn.poll_role(now);
            }
        }
    };

    conn.leave_role();
    if let Some(udp) = worker.udp.get() {
        udp.release(conn.id);
    }
    conn.measure(&BytesMut::new());
    if let Some(stats) = worker.stats() {
        stats.footprint(conn.footprint, Footprint::default());
    }
    worker.forget_connection(conn.id);
    // Connections that published or played always get their close line when they end
    // normally. Every error line goes through the worker's gate for misbehaving peers; the
    // lines of connections that never published or played (scans, HLS requests) through its
    // gate for those, each line counted.
    let (peer, proto) = (conn.peer, conn.proto);
    match (ending, &conn.stream_name) {
        (Ending::Normal(reason), Some(stream)) => {
            tracing::info!(%peer, proto, %stream, reason, "closed")
        }
        (Ending::Normal(reason), None) => {
            if logged_connect && worker.connection_log_allowed() {
                tracing::info!(%peer, proto, reason, "closed")
            }
        }
        (Ending::Error(reason), stream) => {
            if worker.log_allowed() {
                let reason = truncated(&reason, LOG_TEXT_MAX);
                match stream {
                    Some(stream) => tracing::warn!(%peer, proto, %stream, %reason, "closed"),
                    None => tracing::warn!(%peer, proto, %reason, "closed"),
                }
            }
        }
    }
}

/// Writes what the session has queued until done or the socket is full; returns how many
/// bytes left.
fn flush<C: super::runtime::Connection, S: LiveSession>(
    stream: &C,
    session: &mut S,
    more_media: bool,
) -> io::Result<usize> {
    let media = session.phase() == Phase::Media;
    let mut sent = 0;
    while !session.transmit().is_empty() {
        match stream.try_send(session.transmit(), media && more_media) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => sent += written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(sent),
            Err(error) => return Err(error),
        }
    }
    Ok(sent)
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

    /// Updates the worker's gauges with what this connection holds now.
    fn measure(&mut self, input: &BytesMut) -> Footprint {
        let footprint = Footprint {
            output: self.session.transmit().queued_bytes(),
            input: input.capacity(),
            datagrams: self.session.datagrams().map_or(0, |d| d.queued_bytes())
                + self
                    .datagram_inbox
                    .as_ref()
                    .map_or(0, |inbox| inbox.queued_bytes()),
        };
        if let Some(stats) = self.worker.stats() {
            stats.footprint(self.footprint, footprint);
        }
        self.footprint = footprint;
        footprint
    }

    /// A line about this peer's misbehaviour, within the worker's log gate.
    fn warn(&self, what: std::fmt::Arguments<'_>) {
        if self.worker.log_allowed() {
            tracing::warn!(peer = %self.peer, proto = self.proto, "{what}");
        }
    }

    fn on_event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Media(media) => {
                if let Role::Publishing { source, hls, .. } = &mut self.role {
                    let shared = &self.worker.shared;
                    source.publish(shared, &media);
                    if let Some(hls) = hls {
                        match hls.push(&media) {
                            Ok(true) => wake_playlists(shared, shared.hls.publish(hls)),
                            Ok(false) => {}
                            // A frame the TS muxer cannot carry is left out of HLS only;
                            // RTMP/FLV/RTSP players still get it.
                            Err(error) => {
                                tracing::debug!(stream = %hls.key(), "HLS: frame skipped: {error}")
                            }
                        }
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
            SessionEvent::BadStreamName { request, error } => {
                self.warn(format_args!("{request} refused: {error}"));
            }
            SessionEvent::PublishStopped | SessionEvent::PlayStopped => self.leave_role(),
            SessionEvent::DatagramPortsRequested { rtp, rtcp } => {
                self.claim_datagram_ports(rtp, rtcp)
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
        let now = R::now();
        let mut guard = shared.control();
        let control = &mut *guard;
        let handle = PublisherHandle { worker: worker.id };
        match control.registry.publish(key.clone(), handle, now) {
            Ok((id, woken)) => {
                shared.wake_players(&control.waiting, woken);
                drop(guard);
                let source = Source::new(id, worker.id, 0, worker.new_source_state());
                worker.sources.borrow_mut().insert(id, Rc::clone(&source));
                self.session.accept_publish();
                tracing::info!(%peer, proto, stream = %key, "publishing");
                let hls = shared.hls.start(&key, now).map(|(publication, woken)| {
                    wake_playlists(shared, woken);
                    Box::new(publication)
                });
                self.role = Role::Publishing {
                    key,
                    id,
                    source,
                    hls,
                };
            }
            Err(error) => {
                drop(guard);
                let why = match error {
                    PublishError::AlreadyPublishing { .. } => Rejection::AlreadyPublishing,
                    _ => Rejection::Unavailable,
                };
                self.warn(format_args!("publish refused: {error}"));
                self.session.reject(why);
            }
        }
    }

    /// Attaches to a live stream, or waits for it to be published.
    fn start_play(&mut self, key: StreamKey) {
        let worker = Rc::clone(&self.worker);
        let wait_ms = worker.shared.hub.play_wait_ms;
        let mut guard = worker.shared.control();
        let control = &mut *guard;
        if let Some(entry) = control.registry.entry(&key).cloned() {
            drop(guard);
            return self.attach(key, &entry);
        }
        match control.registry.wait_for(key.clone(), R::now(), wait_ms) {
            Ok((waiter, deadline)) => {
                control.waiting.insert(waiter, worker.id);
                drop(guard);
                worker.wait_here(Waiting::Player, waiter, Rc::clone(&self.wake));
                tracing::info!(peer = %self.peer, proto = self.proto, stream = %key, wait_ms, "waiting for publisher");
                self.stream_name = Some(key.clone());
                self.role = Role::WaitingForStream {
                    key,
                    waiter,
                    deadline,
                };
            }
            Err(error) => {
                drop(guard);
                self.warn(format_args!("play refused: {error}"));
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

    /// A wake-up (something may exist now, or a deadline passed): a waiting request asks the
    /// core what it finds.
    fn poll_role(&mut self, now: Millis) {
        match &self.role {
            Role::WaitingForStream { key, waiter, .. } => {
                let (key, waiter) = (key.clone(), *waiter);
                let worker = Rc::clone(&self.worker);
                let mut guard = worker.shared.control();
                let control = &mut *guard;
                let status = control.registry.poll_wait(waiter, now);
                if let WaitStatus::Pending { deadline } = status {
                    drop(guard);
                    return self.set_deadline(deadline);
                }
                control.waiting.remove(&waiter);
                drop(guard);
                worker.stop_waiting(Waiting::Player, waiter);
                self.role = Role::Idle;
                match status {
                    WaitStatus::Ready(entry) => self.attach(key, &entry),
                    _ => {
                        tracing::info!(peer = %self.peer, proto = self.proto, stream = %key, "play refused: not published in time");
                        self.session.reject(Rejection::NotFound);
                    }
                }
            }
            Role::WaitingForPlaylist { key, waiter, .. } => {
                let (key, waiter) = (key.clone(), *waiter);
                let status = self.worker.shared.hls.poll(waiter, now);
                if let WaitStatus::Pending { deadline } = status {
                    return self.set_deadline(deadline);
                }
                self.worker.stop_waiting(Waiting::Playlist, waiter);
                self.role = Role::Idle;
                match status {
                    WaitStatus::Ready(snapshot) => self
                        .session
                        .serve_resource(playlist_resource(snapshot.playlist.clone())),
                    _ => {
                        tracing::info!(peer = %self.peer, proto = self.proto, stream = %key, "playlist refused: no segment in time");
                        self.session.reject(Rejection::NotFound);
                    }
                }
            }
            _ => {}
        }
    }

    fn set_deadline(&mut self, at: Millis) {
        if let Role::WaitingForStream { deadline, .. } | Role::WaitingForPlaylist { deadline, .. } =
            &mut self.role
        {
            *deadline = at;
        }
    }

    /// Moves media from the player's hub queue into the session while the guard wants more.
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
            let backlog = self.session.transmit().queued_bytes() + datagram_bytes;
            if !self.guard.wants_media(backlog) {
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
            self.warn(format_args!("stream {key}: player too slow: disconnected"));
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
        let worker = Rc::clone(&self.worker);
        let hls = &worker.shared.hls;
        self.stream_name = Some(key.clone());
        match HlsResource::parse(name) {
            Some(HlsResource::Playlist) => {
                if let Some(snapshot) = hls.snapshot(&key) {
                    return self
                        .session
                        .serve_resource(playlist_resource(snapshot.playlist.clone()));
                }
                let wait_ms = worker.shared.hub.play_wait_ms;
                match hls.wait(key.clone(), R::now(), wait_ms, worker.id) {
                    Ok((waiter, deadline)) => {
                        worker.wait_here(Waiting::Playlist, waiter, Rc::clone(&self.wake));
                        self.role = Role::WaitingForPlaylist {
                            key,
                            waiter,
                            deadline,
                        };
                    }
                    // The first segment came between the look and the wait.
                    Err(WaitError::AlreadyLive { .. }) => match hls.snapshot(&key) {
                        Some(snapshot) => self
                            .session
                            .serve_resource(playlist_resource(snapshot.playlist.clone())),
                        None => self.session.reject(Rejection::NotFound),
                    },
                    Err(error) => {
                        self.warn(format_args!("playlist refused: {error}"));
                        self.session.reject(Rejection::Unavailable);
                    }
                }
            }
            Some(HlsResource::Segment(sequence)) => {
                match hls.snapshot(&key).and_then(|s| s.segment(sequence)) {
                    Some(bytes) => self.session.serve_resource(segment_resource(bytes)),
                    None => self.session.reject(Rejection::NotFound),
                }
            }
            None => self.session.reject(Rejection::NotFound),
        }
    }

    /// The peer asks for datagrams from its ports (RTSP SETUP over UDP): routed here unless
    /// another session holds them (or this one holds too many), which the session answers.
    fn claim_datagram_ports(&mut self, rtp: u16, rtcp: u16) {
        let Some(udp) = self.worker.udp.get() else {
            return self.session.reject(Rejection::PortsInUse);
        };
        let wake = &self.wake;
        let inbox = self
            .datagram_inbox
            .get_or_insert_with(|| DatagramInbox::new(Rc::clone(wake)));
        match udp.claim(self.id, inbox, self.peer.ip(), [rtp, rtcp]) {
            Ok(()) => self.session.accept_datagram_ports(),
            Err(error) => {
                self.warn(format_args!("UDP ports {rtp}-{rtcp} refused: {error}"));
                self.session.reject(Rejection::PortsInUse);
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
        let now = R::now();
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

    /// Leaves whatever the connection was doing in the hub.
    fn leave_role(&mut self) {
        let worker = Rc::clone(&self.worker);
        let shared = &worker.shared;
        match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Idle => {}
            Role::Publishing {
                key,
                id,
                source,
                hls,
            } => {
                if let Some(hls) = hls {
                    let woken = shared.hls.stop(*hls, R::now());
                    wake_playlists(shared, woken);
                    worker.hls_housekeeping.notify();
                }
                shared.control().registry.unpublish(&key, id);
                worker.sources.borrow_mut().remove(&id);
                source.end(shared);
                tracing::info!(stream = %key, "unpublished");
            }
            Role::Playing { reader, source, .. } => worker.release_player(&source, reader),
            Role::WaitingForStream { waiter, .. } => {
                let mut control = shared.control();
                control.registry.cancel_wait(waiter);
                control.waiting.remove(&waiter);
                drop(control);
                worker.stop_waiting(Waiting::Player, waiter);
            }
            Role::WaitingForPlaylist { waiter, .. } => {
                shared.hls.cancel(waiter);
                worker.stop_waiting(Waiting::Playlist, waiter);
            }
        }
    }
}

/// Wakes the playlist requests the catalog named, each on its worker.
fn wake_playlists(shared: &Shared, woken: Woken) {
    for (worker, waiter) in woken {
        shared.send(worker, WorkerMsg::WakePlaylist { waiter });
    }
}
