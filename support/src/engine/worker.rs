//! One worker: a single-threaded executor on its own OS thread with its own listeners, the
//! connections it accepted, and its view of the live streams.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::io;
use std::marker::PhantomData;
use std::net::{TcpListener as StdListener, UdpSocket as StdUdpSocket};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediakit_core::datagram::UdpChannel;
use mediakit_core::hub::{LocalSource, PublisherId, ReaderKey};
use mediakit_core::wait::WaiterId;

use super::connection::{self, Protocol};
use super::fanout::{Source, SourceState, WorkerMsg};
use super::notify::LocalNotify;
use super::runtime::Runtime;
use super::shared::Shared;
use super::udp::UdpPorts;
use crate::logging::LogLimiter;
use crate::socket::{reuseport_listener, rtp_socket_pair};
use crate::ServerConfig;

/// How long a stopping worker gives its connections to close before it drops them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The listening sockets one worker accepts on, bound before any worker starts.
#[derive(Debug)]
pub struct Listeners {
    rtmp: Option<StdListener>,
    http: Option<StdListener>,
    rtsp: Option<StdListener>,
    /// RTP and RTCP sockets for RTSP over UDP.
    rtp: Option<(StdUdpSocket, StdUdpSocket)>,
}

impl Listeners {
    pub fn bind(config: &ServerConfig) -> io::Result<Self> {
        let bind = |addr: Option<std::net::SocketAddr>| -> io::Result<Option<StdListener>> {
            addr.map(|addr| {
                reuseport_listener(addr)
                    .map_err(|error| io::Error::new(error.kind(), format!("bind {addr}: {error}")))
            })
            .transpose()
        };
        Ok(Self {
            rtmp: bind(config.rtmp_addr())?,
            http: bind(config.http_addr())?,
            rtsp: bind(config.rtsp_addr())?,
            rtp: match config.rtp_ports() {
                Some(range) => {
                    Some(rtp_socket_pair(config.server.bind, range)?.ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!("no free UDP port pair in {}-{} for RTP", range.0, range.1),
                        )
                    })?)
                }
                None => None,
            },
        })
    }
}

/// A worker's thread-local state, shared by its tasks through `Rc`.
#[derive(Debug)]
pub struct Worker<R: Runtime> {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// Sources this worker holds, origin or mirror, by publication.
    pub sources: RefCell<HashMap<PublisherId, Rc<Source>>>,
    pub log_limiter: RefCell<LogLimiter>,
    /// This worker's RTP/RTCP sockets, when RTSP serves UDP.
    pub udp: OnceCell<Rc<UdpPorts<R>>>,
    /// Every live connection's wake-up, so shutdown reaches them all.
    connections: RefCell<HashMap<u64, Rc<LocalNotify>>>,
    next_connection: Cell<u64>,
    /// Players waiting for a stream to be published, by their registry waiter id.
    waiting: RefCell<HashMap<WaiterId, Rc<LocalNotify>>>,
    stopping: Cell<bool>,
    stopped: LocalNotify,
    runtime: PhantomData<R>,
}

impl<R: Runtime> Worker<R> {
    /// The source a player on this worker reads `publication` from: the origin if it is
    /// here, else a mirror, created (and subscribed at the origin) on first use.
    pub fn source_for_player(&self, publication: PublisherId, origin: usize) -> Rc<Source> {
        if let Some(source) = self.sources.borrow().get(&publication) {
            return Rc::clone(source);
        }
        let source = Source::new(publication, origin, self.new_source_state());
        self.sources
            .borrow_mut()
            .insert(publication, Rc::clone(&source));
        self.shared.send(
            origin,
            WorkerMsg::Subscribe {
                publication,
                from: self.id,
            },
        );
        source
    }

    /// Fresh per-stream state with the configured GOP and player queue limits.
    pub fn new_source_state(&self) -> SourceState {
        LocalSource::new(self.shared.hub.gop, self.shared.hub.reader)
    }

    /// Detaches a player; a mirror with no players left unsubscribes from its origin.
    pub fn release_player(&self, source: &Source, reader: ReaderKey) {
        source.remove_reader(reader);
        if source.origin != self.id && source.reader_count() == 0 {
            self.sources.borrow_mut().remove(&source.publication);
            let message = WorkerMsg::Unsubscribe {
                publication: source.publication,
                from: self.id,
            };
            self.shared.send(source.origin, message);
        }
    }

    /// Registers a connection so shutdown can wake it; returns its id for `forget_connection`.
    pub fn register_connection(&self, wake: Rc<LocalNotify>) -> u64 {
        let id = self.next_connection.get();
        self.next_connection.set(id + 1);
        self.connections.borrow_mut().insert(id, wake);
        id
    }

    pub fn forget_connection(&self, id: u64) {
        self.connections.borrow_mut().remove(&id);
    }

    /// Remembers how to wake a player waiting for its stream.
    pub fn wait_here(&self, waiter: WaiterId, wake: Rc<LocalNotify>) {
        self.waiting.borrow_mut().insert(waiter, wake);
    }

    pub fn stop_waiting(&self, waiter: WaiterId) {
        self.waiting.borrow_mut().remove(&waiter);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    fn handle_message(&self, message: WorkerMsg) {
        match message {
            WorkerMsg::Subscribe { publication, from } => {
                let origin = self.sources.borrow().get(&publication).cloned();
                match origin {
                    Some(source) if source.origin == self.id => {
                        source.subscribe(&self.shared, from)
                    }
                    _ => self.shared.send(from, WorkerMsg::Ended { publication }),
                }
            }
            WorkerMsg::Unsubscribe { publication, from } => {
                if let Some(source) = self.sources.borrow().get(&publication) {
                    source.unsubscribe(from);
                }
            }
            WorkerMsg::Snapshot { publication, items } => {
                self.shared.media_received(self.id);
                if let Some(source) = self.mirror(publication) {
                    for item in &items {
                        source.push_local(item);
                    }
                }
            }
            WorkerMsg::Media { publication, media } => {
                self.shared.media_received(self.id);
                if let Some(source) = self.mirror(publication) {
                    source.push_local(&media);
                }
            }
            WorkerMsg::Ended { publication } => {
                if let Some(source) = self.mirror(publication) {
                    self.sources.borrow_mut().remove(&publication);
                    source.end(&self.shared);
                }
            }
            WorkerMsg::WakeWaiter { waiter } => {
                if let Some(wake) = self.waiting.borrow().get(&waiter) {
                    wake.notify();
                }
            }
            WorkerMsg::Stop => {
                self.stopping.set(true);
                for wake in self.connections.borrow().values() {
                    wake.notify();
                }
                self.stopped.notify();
            }
        }
    }

    fn mirror(&self, publication: PublisherId) -> Option<Rc<Source>> {
        self.sources
            .borrow()
            .get(&publication)
            .filter(|source| source.origin != self.id)
            .cloned()
    }
}

/// The body of a worker thread: runs until the server stops.
pub fn run<R: Runtime>(
    id: usize,
    shared: Arc<Shared>,
    listeners: Listeners,
    inbox: async_channel::Receiver<WorkerMsg>,
) {
    let limiter = LogLimiter::new(shared.config.server.error_logs_per_second);
    let worker = Rc::new(Worker::<R> {
        id,
        shared,
        sources: RefCell::new(HashMap::new()),
        log_limiter: RefCell::new(limiter),
        udp: OnceCell::new(),
        connections: RefCell::new(HashMap::new()),
        next_connection: Cell::new(1),
        waiting: RefCell::new(HashMap::new()),
        stopping: Cell::new(false),
        stopped: LocalNotify::new(),
        runtime: PhantomData,
    });
    let main = async move {
        for (listener, protocol) in [
            (listeners.rtmp, Protocol::Rtmp),
            (listeners.http, Protocol::Http),
            (listeners.rtsp, Protocol::Rtsp),
        ] {
            let Some(listener) = listener else { continue };
            match R::listener(listener) {
                Ok(listener) => R::spawn_local(accept_loop(Rc::clone(&worker), listener, protocol)),
                Err(error) => tracing::error!(worker = id, "cannot register listener: {error}"),
            }
        }
        if let Some((rtp, rtcp)) = listeners.rtp {
            match UdpPorts::<R>::new(rtp, rtcp) {
                Ok(ports) => {
                    for channel in [UdpChannel::Rtp, UdpChannel::Rtcp] {
                        let stopping = Rc::clone(&worker);
                        let receive =
                            Rc::clone(&ports).receive_loop(channel, move || stopping.is_stopping());
                        R::spawn_local(receive);
                    }
                    let _ = worker.udp.set(ports);
                }
                Err(error) => tracing::error!(worker = id, "cannot register RTP sockets: {error}"),
            }
        }
        let inbox_worker = Rc::clone(&worker);
        R::spawn_local(async move {
            while let Ok(message) = inbox.recv().await {
                inbox_worker.handle_message(message);
            }
        });
        worker.stopped.notified().await;
        let deadline = Instant::now() + STOP_GRACE;
        while !worker.connections.borrow().is_empty() && Instant::now() < deadline {
            R::sleep_until(Instant::now() + Duration::from_millis(10)).await;
        }
    };
    if let Err(error) = R::run_worker(Box::pin(main)) {
        tracing::error!(worker = id, "cannot run worker: {error}");
    }
}

async fn accept_loop<R: Runtime>(worker: Rc<Worker<R>>, listener: R::Listener, protocol: Protocol) {
    while !worker.is_stopping() {
        match R::accept(&listener).await {
            Ok((stream, peer)) => {
                if worker.is_stopping() {
                    return;
                }
                R::spawn_local(connection::serve(
                    Rc::clone(&worker),
                    stream,
                    peer,
                    protocol,
                ));
            }
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(worker = worker.id, "accept failed: {error}");
                R::sleep_until(Instant::now() + Duration::from_millis(50)).await;
            }
        }
    }
}
