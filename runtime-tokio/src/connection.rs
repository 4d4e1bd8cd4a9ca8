//! One connection from accept to close: reads into the core session, acts on its events
//! against the hub, feeds players from their queue, and flushes output with vectored writes.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use mediakit_core::hub::{PublishError, PublisherId, ReaderKey, StreamKey, WaiterId};
use mediakit_core::session::{LiveSession, Phase, Rejection, SessionEvent};
use mediakit_core::{http_flv::HttpFlvSession, rtmp::server::RtmpServerSession};
use mediakit_support::logging::LogDecision;
use mediakit_support::socket::{send_queue, set_nodelay};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::fanout::Source;
use crate::shared::{PublisherHandle, Shared};
use crate::worker::Worker;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Rtmp,
    Http,
}

/// Bytes a player may have queued in its session before we stop pulling from its hub queue:
/// beyond this, the hub's bounded queue and slow-player policy take over.
const PLAYER_HIGH_WATER: usize = 512 * 1024;
/// Most unparsed input we hold for one connection.
const MAX_PENDING_INPUT: usize = 1 << 20;

pub async fn serve(worker: Rc<Worker>, stream: TcpStream, peer: SocketAddr, protocol: Protocol) {
    let now = worker.shared.now();
    match protocol {
        Protocol::Rtmp => {
            let session =
                RtmpServerSession::new(rtmp_config(&worker.shared), now, random_seed(&peer));
            drive(worker, stream, peer, "rtmp", session).await
        }
        Protocol::Http => drive(worker, stream, peer, "http", HttpFlvSession::new(now)).await,
    }
}

fn rtmp_config(shared: &Shared) -> mediakit_core::rtmp::server::RtmpServerConfig {
    let mut config = mediakit_core::rtmp::server::RtmpServerConfig::default();
    config.chunk_size = shared.config.rtmp.chunk_size;
    config.max_message_len = shared.config.rtmp.max_message_bytes;
    config.setup_timeout_ms = shared.config.rtmp.handshake_timeout_ms;
    config
}

/// Handshake randomness: the digest handshake needs unpredictable bytes but not secrecy, so a
/// hash of the std `RandomState` (randomly keyed per process) and the peer suffices.
fn random_seed(peer: &SocketAddr) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(peer.to_string().as_bytes());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// What the connection is doing in the hub.
enum Role {
    Idle,
    Publishing {
        key: StreamKey,
        id: PublisherId,
        source: Rc<Source>,
    },
    Playing {
        key: StreamKey,
        reader: ReaderKey,
        source: Rc<Source>,
        wake: Rc<Notify>,
    },
    Waiting {
        key: StreamKey,
        waiter: WaiterId,
        went_live: oneshot::Receiver<()>,
        deadline: Instant,
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

async fn drive<S: LiveSession>(
    worker: Rc<Worker>,
    stream: TcpStream,
    peer: SocketAddr,
    proto: &'static str,
    mut session: S,
) {
    let limited = log_allowed(&worker);
    if limited {
        tracing::info!(%peer, proto, worker = worker.id, "connected");
    }
    let _ = set_nodelay(SockRef::from(&stream), true);
    let mut nodelay = true;
    let mut role = Role::Idle;
    let mut rx = BytesMut::with_capacity(16 * 1024);
    let mut stopped = worker.stopped.clone();
    let mut closing: Option<Ending> = None;
    // The stream this connection last published or played, named in its close line.
    let mut stream_name: Option<StreamKey> = None;

    let ending = loop {
        // Act on everything the session has to say, then feed a player (which may produce
        // more events, such as the close after an end of stream), then write.
        let mut more_media = false;
        for _ in 0..2 {
            while let Some(event) = session.poll_event() {
                if let Some(end) = on_event(&worker, &mut session, &mut role, peer, proto, event) {
                    closing.get_or_insert(end);
                }
                if let Some(key) = role.key() {
                    if stream_name.as_ref() != Some(key) {
                        stream_name = Some(key.clone());
                    }
                }
            }
            more_media = feed_player(&worker, &mut session, &mut role, peer, proto, &mut closing);
        }
        if nodelay && session.phase() == Phase::Media {
            let _ = set_nodelay(SockRef::from(&stream), false);
            nodelay = false;
        }
        if let Err(error) = flush(&stream, &mut session, more_media) {
            break closing
                .take()
                .unwrap_or(Ending::Error(format!("write failed: {error}")));
        }
        if closing.is_some() && session.transmit().is_empty() {
            break closing.take().unwrap_or(Ending::Normal("closed"));
        }

        let want_write = !session.transmit().is_empty();
        let deadline = session.poll_timeout().map(|at| instant_of(&worker, at));
        let read_open = closing.is_none() && rx.len() < MAX_PENDING_INPUT;
        let wake = match &role {
            Role::Playing { wake, .. } => Some(Rc::clone(wake)),
            _ => None,
        };
        let wait_deadline = match &role {
            Role::Waiting { deadline, .. } => Some(*deadline),
            _ => None,
        };
        tokio::select! {
            ready = stream.ready(Interest::READABLE), if read_open => {
                if ready.is_err() { break Ending::Error("socket error".into()); }
                match stream.try_read_buf(&mut rx) {
                    Ok(0) => break closing.take().unwrap_or(Ending::Normal("peer closed")),
                    Ok(_) => {
                        if let Err(error) = session.handle_input(worker.shared.now(), &mut rx) {
                            closing = Some(Ending::Error(error.to_string()));
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => break Ending::Error(format!("read failed: {error}")),
                }
            }
            _ = stream.writable(), if want_write => {}
            _ = async { if let Some(wake) = &wake { wake.notified().await } }, if wake.is_some() => {}
            went_live = async {
                match &mut role { Role::Waiting { went_live, .. } => went_live.await.is_ok(), _ => false }
            }, if matches!(role, Role::Waiting { .. }) => {
                if went_live { retry_play(&worker, &mut session, &mut role, peer, proto); }
            }
            _ = tokio::time::sleep_until(wait_deadline.unwrap_or_else(Instant::now)), if wait_deadline.is_some() => {
                expire_wait(&worker, &mut session, &mut role, peer, proto);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                session.handle_timeout(worker.shared.now());
            }
            _ = stopped.wait_for(|stop| *stop) => break Ending::Normal("server shutting down"),
        }
    };

    leave_role(&worker, &mut role);
    // Connections that published or played always get their close line; the others (scans,
    // garbage, failed handshakes) only within the per-worker rate limit.
    match (ending, &stream_name) {
        (Ending::Normal(reason), Some(stream)) => {
            tracing::info!(%peer, proto, %stream, reason, "closed")
        }
        (Ending::Normal(reason), None) if limited => tracing::info!(%peer, proto, reason, "closed"),
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
fn log_allowed(worker: &Worker) -> bool {
    match worker
        .log_limiter
        .borrow_mut()
        .check(std::time::Instant::now())
    {
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

fn instant_of(worker: &Worker, at: mediakit_core::Millis) -> Instant {
    let now = worker.shared.now();
    Instant::now() + Duration::from_millis(at.saturating_since(now))
}

fn flush<S: LiveSession>(stream: &TcpStream, session: &mut S, more_media: bool) -> io::Result<()> {
    let media = session.phase() == Phase::Media;
    while !session.transmit().is_empty() {
        let queue = session.transmit();
        let result = stream.try_io(Interest::WRITABLE, || {
            send_queue(SockRef::from(stream), queue, media && more_media)
        });
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn on_event<S: LiveSession>(
    worker: &Rc<Worker>,
    session: &mut S,
    role: &mut Role,
    peer: SocketAddr,
    proto: &'static str,
    event: SessionEvent,
) -> Option<Ending> {
    match event {
        SessionEvent::Media(media) => {
            if let Role::Publishing { source, .. } = role {
                source.publish(&worker.shared, &media);
            }
        }
        SessionEvent::PublishRequested { app, stream } => {
            let Ok(key) = StreamKey::parse(&app, &stream) else {
                tracing::warn!(%peer, proto, app, stream, "publish refused: bad stream name");
                session.reject(Rejection::BadName);
                return None;
            };
            leave_role(worker, role);
            let handle = PublisherHandle { worker: worker.id };
            let mut control = worker.shared.control();
            match control
                .registry
                .publish(key.clone(), handle, worker.shared.now())
            {
                Ok((id, released)) => {
                    Shared::release_waiters(&mut control, released);
                    drop(control);
                    let source = Source::new(id, worker.id, worker.new_source_state());
                    worker.sources.borrow_mut().insert(id, Rc::clone(&source));
                    session.accept_publish();
                    tracing::info!(%peer, proto, stream = %key, "publishing");
                    *role = Role::Publishing { key, id, source };
                }
                Err(error) => {
                    drop(control);
                    let why = match error {
                        PublishError::AlreadyPublishing { .. } => Rejection::AlreadyPublishing,
                        _ => Rejection::Unavailable,
                    };
                    tracing::warn!(%peer, proto, stream = %key, "publish refused: {error}");
                    session.reject(why);
                }
            }
        }
        SessionEvent::PlayRequested { app, stream } => {
            let Ok(key) = StreamKey::parse(&app, &stream) else {
                tracing::warn!(%peer, proto, app, stream, "play refused: bad stream name");
                session.reject(Rejection::BadName);
                return None;
            };
            leave_role(worker, role);
            start_play(worker, session, role, peer, proto, key);
        }
        SessionEvent::PublishStopped | SessionEvent::PlayStopped => leave_role(worker, role),
        SessionEvent::Closed { reason } => return Some(Ending::Normal(reason)),
        _ => {}
    }
    None
}

/// Attaches to a live stream, or waits for it to be published.
fn start_play<S: LiveSession>(
    worker: &Rc<Worker>,
    session: &mut S,
    role: &mut Role,
    peer: SocketAddr,
    proto: &'static str,
    key: StreamKey,
) {
    let now = worker.shared.now();
    let mut control = worker.shared.control();
    if let Some((id, handle)) = control
        .registry
        .entry(&key)
        .map(|entry| (entry.publisher(), *entry.handle()))
    {
        drop(control);
        let source = worker.source_for_player(id, handle.worker);
        let wake = Rc::new(Notify::new());
        let reader = source.add_reader(Rc::clone(&wake));
        session.accept_play();
        tracing::info!(%peer, proto, stream = %key, "playing");
        *role = Role::Playing {
            key,
            reader,
            source,
            wake,
        };
        return;
    }
    let wait_ms = worker.shared.hub.play_wait_ms;
    match control.registry.wait_for(key.clone(), now, wait_ms) {
        Ok(waiter) => {
            let (wake, went_live) = oneshot::channel();
            control.waiters.insert(waiter, wake);
            drop(control);
            tracing::info!(%peer, proto, stream = %key, wait_ms, "waiting for publisher");
            let deadline = Instant::now() + Duration::from_millis(wait_ms);
            *role = Role::Waiting {
                key,
                waiter,
                went_live,
                deadline,
            };
        }
        Err(error) => {
            drop(control);
            tracing::warn!(%peer, proto, stream = %key, "play refused: {error}");
            session.reject(Rejection::Unavailable);
        }
    }
}

fn retry_play<S: LiveSession>(
    worker: &Rc<Worker>,
    session: &mut S,
    role: &mut Role,
    peer: SocketAddr,
    proto: &'static str,
) {
    if let Role::Waiting { key, .. } = std::mem::replace(role, Role::Idle) {
        start_play(worker, session, role, peer, proto, key);
        if let Role::Waiting { key, .. } = role {
            // Published and gone again before we looked: keep waiting would extend the
            // deadline, so refuse as the protocol would have at the deadline.
            let key = key.clone();
            leave_role(worker, role);
            tracing::warn!(%peer, proto, stream = %key, "play refused: stream ended before start");
            session.reject(Rejection::NotFound);
        }
    }
}

fn expire_wait<S: LiveSession>(
    worker: &Rc<Worker>,
    session: &mut S,
    role: &mut Role,
    peer: SocketAddr,
    proto: &'static str,
) {
    let Role::Waiting { key, waiter, .. } = role else {
        return;
    };
    let mut control = worker.shared.control();
    let cancelled = control.registry.cancel_wait(*waiter);
    control.waiters.remove(waiter);
    drop(control);
    if cancelled {
        tracing::info!(%peer, proto, stream = %key, "play refused: not published in time");
        *role = Role::Idle;
        session.reject(Rejection::NotFound);
    } else {
        // Released by a publish at the same moment: start.
        retry_play(worker, session, role, peer, proto);
    }
}

/// Moves media from the player's hub queue into the session, up to the high-water mark.
/// Returns whether more is waiting (so the write may carry MSG_MORE).
fn feed_player<S: LiveSession>(
    worker: &Rc<Worker>,
    session: &mut S,
    role: &mut Role,
    peer: SocketAddr,
    proto: &'static str,
    closing: &mut Option<Ending>,
) -> bool {
    let Role::Playing {
        key,
        reader,
        source,
        ..
    } = role
    else {
        return false;
    };
    loop {
        if session.transmit().queued_bytes() >= PLAYER_HIGH_WATER {
            return true;
        }
        let next = source.state.borrow_mut().pop(*reader);
        match next {
            Some(media) => session.send_media(&media),
            None => break,
        }
    }
    let state = source.state.borrow();
    if state.queue(*reader).is_none() {
        drop(state);
        tracing::warn!(%peer, proto, stream = %key, "player too slow: disconnected");
        closing.get_or_insert(Ending::Error("player too slow".into()));
        *role = Role::Idle;
        return false;
    }
    if state.is_ended() {
        drop(state);
        session.end_of_stream();
        tracing::info!(%peer, proto, stream = %key, "stream ended");
        leave_role(worker, role);
    }
    false
}

/// Leaves whatever the connection was doing in the hub.
fn leave_role(worker: &Rc<Worker>, role: &mut Role) {
    match std::mem::replace(role, Role::Idle) {
        Role::Idle => {}
        Role::Publishing { key, id, source } => {
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
        }
    }
}
