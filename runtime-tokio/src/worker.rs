//! One worker: a current-thread runtime on its own OS thread with its own listeners, the
//! sessions it accepted, and its view of the live streams.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::TcpListener as StdListener;
use std::rc::Rc;

use mediakit_core::hub::{LocalSource, PublisherId, ReaderKey};
use mediakit_support::logging::LogLimiter;
use mediakit_support::socket::reuseport_listener;
use mediakit_support::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::LocalSet;

use crate::connection::{self, Protocol};
use crate::fanout::{Source, SourceState, WorkerMsg};
use crate::shared::SharedRef;

/// The listening sockets one worker accepts on.
#[derive(Debug)]
pub struct Listeners {
    rtmp: Option<StdListener>,
    http: Option<StdListener>,
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
        })
    }
}

/// A worker's thread-local state, shared by its tasks through `Rc`.
#[derive(Debug)]
pub struct Worker {
    pub id: usize,
    pub shared: SharedRef,
    /// Sources this worker holds, origin or mirror, by publication.
    pub sources: RefCell<HashMap<PublisherId, Rc<Source>>>,
    pub log_limiter: RefCell<LogLimiter>,
    pub stopped: watch::Receiver<bool>,
}

impl Worker {
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
        self.send_to(
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
            self.send_to(
                source.origin,
                WorkerMsg::Unsubscribe {
                    publication: source.publication,
                    from: self.id,
                },
            );
        }
    }

    /// Sends a control message to a worker, waiting for room if its inbox is full.
    fn send_to(&self, worker: usize, message: WorkerMsg) {
        let Some(inbox) = self.shared.inboxes.get(worker) else {
            return;
        };
        let inbox = inbox.clone();
        tokio::task::spawn_local(async move { inbox.send(message).await });
    }

    fn handle_message(&self, message: WorkerMsg) {
        match message {
            WorkerMsg::Subscribe { publication, from } => {
                let origin = self.sources.borrow().get(&publication).cloned();
                match origin {
                    Some(source) if source.origin == self.id => {
                        source.subscribe(&self.shared, from)
                    }
                    _ => self.send_to(from, WorkerMsg::Ended { publication }),
                }
            }
            WorkerMsg::Unsubscribe { publication, from } => {
                if let Some(source) = self.sources.borrow().get(&publication) {
                    source.unsubscribe(from);
                }
            }
            WorkerMsg::Snapshot { publication, items } => {
                if let Some(source) = self.mirror(publication) {
                    for item in &items {
                        source.push_local(item);
                    }
                }
            }
            WorkerMsg::Media { publication, media } => {
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

/// The body of a worker thread.
pub fn run(
    id: usize,
    shared: SharedRef,
    listeners: Listeners,
    mut inbox: mpsc::Receiver<WorkerMsg>,
    stopped: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(worker = id, "cannot build runtime: {error}");
            return;
        }
    };
    let local = LocalSet::new();
    let limiter = LogLimiter::new(shared.config.server.error_logs_per_second);
    let worker = Rc::new(Worker {
        id,
        shared,
        sources: RefCell::new(HashMap::new()),
        log_limiter: RefCell::new(limiter),
        stopped: stopped.clone(),
    });
    local.block_on(&runtime, async move {
        for (listener, protocol) in [
            (listeners.rtmp, Protocol::Rtmp),
            (listeners.http, Protocol::Http),
        ] {
            let Some(listener) = listener else { continue };
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    tokio::task::spawn_local(accept_loop(Rc::clone(&worker), listener, protocol));
                }
                Err(error) => tracing::error!(worker = id, "cannot register listener: {error}"),
            }
        }
        let inbox_worker = Rc::clone(&worker);
        tokio::task::spawn_local(async move {
            while let Some(message) = inbox.recv().await {
                inbox_worker.handle_message(message);
            }
        });
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    });
}

async fn accept_loop(worker: Rc<Worker>, listener: TcpListener, protocol: Protocol) {
    let mut stopped = worker.stopped.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::task::spawn_local(connection::serve(Rc::clone(&worker), stream, peer, protocol));
                }
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(worker = worker.id, "accept failed: {error}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}
