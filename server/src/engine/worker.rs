//! One worker's state: the streams it holds (origins and mirrors), the connections it runs,
//! the requests of its connections waiting for something, and how it answers the messages
//! other workers send it.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use mediakit_core::hub::{LocalSource, PublisherId, ReaderKey};
use mediakit_core::limit::{LogDecision, LogGate};
use mediakit_core::wait::WaiterId;

use super::fanout::{Source, SourceState};
use super::inbox::{Mirror, WorkerMsg};
use super::notify::LocalNotify;
use super::runtime::Runtime;
use super::shared::Shared;
use super::stats::WorkerStats;
use super::udp::{ConnectionId, UdpPorts};

/// A worker's thread-local state, shared by its tasks through `Rc`.
#[derive(Debug)]
pub struct Worker<R: Runtime> {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// Sources this worker holds, origin or mirror, by publication.
    pub sources: RefCell<HashMap<PublisherId, Rc<Source>>>,
    /// Lines about misbehaving peers (errors, refusals), bounded per second.
    peer_log: RefCell<LogGate>,
    /// Lines about connections that never publish or play (scans, HLS requests), bounded
    /// per second apart from the above, so busy benign traffic cannot hide an error line.
    connection_log: RefCell<LogGate>,
    /// This worker's RTP/RTCP sockets, when RTSP serves UDP.
    pub udp: OnceCell<Rc<UdpPorts<R>>>,
    /// Every live connection's wake-up, so shutdown reaches them all.
    connections: RefCell<HashMap<ConnectionId, Rc<LocalNotify>>>,
    next_connection: Cell<ConnectionId>,
    /// Numbers this worker's subscriptions to other workers' streams.
    next_subscription: Cell<u64>,
    /// Players waiting for a stream to be published, by their registry waiter id.
    waiting_players: RefCell<HashMap<WaiterId, Rc<LocalNotify>>>,
    /// HLS playlist requests waiting for a first segment, by their catalog waiter id.
    waiting_playlists: RefCell<HashMap<WaiterId, Rc<LocalNotify>>>,
    /// Wakes the task that ends HLS lingers when a publisher on this worker stops.
    pub hls_housekeeping: LocalNotify,
    stopping: Cell<bool>,
    pub stopped: LocalNotify,
    /// One per long-lived task (accept loops, UDP receive loops), notified when the worker
    /// stops so each ends instead of waiting on its socket.
    stop_signals: RefCell<Vec<Rc<LocalNotify>>>,
    runtime: PhantomData<R>,
}

/// Which kind of waiting request a waiter id belongs to (the registry and the HLS catalog
/// number their waiters independently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    Player,
    Playlist,
}

impl<R: Runtime> Worker<R> {
    pub fn new(id: usize, shared: Arc<Shared>) -> Self {
        let per_second = shared.config.server.error_logs_per_second;
        Self {
            id,
            shared,
            sources: RefCell::new(HashMap::new()),
            peer_log: RefCell::new(LogGate::new(per_second)),
            connection_log: RefCell::new(LogGate::new(per_second)),
            udp: OnceCell::new(),
            connections: RefCell::new(HashMap::new()),
            next_connection: Cell::new(1),
            next_subscription: Cell::new(1),
            waiting_players: RefCell::new(HashMap::new()),
            waiting_playlists: RefCell::new(HashMap::new()),
            hls_housekeeping: LocalNotify::new(),
            stopping: Cell::new(false),
            stopped: LocalNotify::new(),
            stop_signals: RefCell::new(Vec::new()),
            runtime: PhantomData,
        }
    }

    /// This worker's statistics.
    pub fn stats(&self) -> Option<&WorkerStats> {
        self.shared.stats_of(self.id)
    }

    /// Whether a line about a misbehaving peer may be logged now (bounded per second; the
    /// first line after a quiet spell says how many were dropped).
    pub fn log_allowed(&self) -> bool {
        self.gate(
            &self.peer_log,
            "log lines about misbehaving peers suppressed",
        )
    }

    /// Whether a line about a connection that never published or played may be logged now
    /// (its own bound per second).
    pub fn connection_log_allowed(&self) -> bool {
        self.gate(&self.connection_log, "connection log lines suppressed")
    }

    fn gate(&self, gate: &RefCell<LogGate>, summary: &'static str) -> bool {
        match gate.borrow_mut().check(R::now()) {
            LogDecision::Log { suppressed_before } => {
                if suppressed_before > 0 {
                    tracing::warn!(
                        worker = self.id,
                        suppressed = suppressed_before,
                        "{summary}"
                    );
                }
                true
            }
            LogDecision::Suppress => false,
        }
    }

    /// The source a player on this worker reads `publication` from: the origin if it is
    /// here, else a mirror, created (and subscribed at the origin) on first use.
    pub fn source_for_player(&self, publication: PublisherId, origin: usize) -> Rc<Source> {
        if let Some(source) = self.sources.borrow().get(&publication) {
            return Rc::clone(source);
        }
        let subscription = self.next_subscription.get();
        self.next_subscription.set(subscription + 1);
        let source = Source::new(publication, origin, subscription, self.new_source_state());
        self.sources
            .borrow_mut()
            .insert(publication, Rc::clone(&source));
        let mirror = Mirror {
            worker: self.id,
            subscription,
        };
        self.shared.send(
            origin,
            WorkerMsg::Subscribe {
                publication,
                mirror,
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
                mirror: Mirror {
                    worker: self.id,
                    subscription: source.subscription,
                },
            };
            self.shared.send(source.origin, message);
        }
    }

    /// Registers a connection so shutdown can wake it; returns its id.
    pub fn register_connection(&self, wake: Rc<LocalNotify>) -> ConnectionId {
        let id = self.next_connection.get();
        self.next_connection.set(id + 1);
        self.connections.borrow_mut().insert(id, wake);
        if let Some(stats) = self.stats() {
            stats.connection(true);
        }
        id
    }

    pub fn forget_connection(&self, id: ConnectionId) {
        if self.connections.borrow_mut().remove(&id).is_some() {
            if let Some(stats) = self.stats() {
                stats.connection(false);
            }
        }
    }

    /// How many connections this worker runs.
    pub fn connection_count(&self) -> usize {
        self.connections.borrow().len()
    }

    fn waiting(&self, kind: Waiting) -> &RefCell<HashMap<WaiterId, Rc<LocalNotify>>> {
        match kind {
            Waiting::Player => &self.waiting_players,
            Waiting::Playlist => &self.waiting_playlists,
        }
    }

    /// Remembers how to wake a request waiting here.
    pub fn wait_here(&self, kind: Waiting, waiter: WaiterId, wake: Rc<LocalNotify>) {
        self.waiting(kind).borrow_mut().insert(waiter, wake);
    }

    pub fn stop_waiting(&self, kind: Waiting, waiter: WaiterId) {
        self.waiting(kind).borrow_mut().remove(&waiter);
    }

    fn wake_waiting(&self, kind: Waiting, waiter: WaiterId) {
        if let Some(wake) = self.waiting(kind).borrow().get(&waiter) {
            wake.notify();
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// A notify that fires when the worker stops, for one long-lived task.
    pub fn stop_signal(&self) -> Rc<LocalNotify> {
        let signal = Rc::new(LocalNotify::new());
        if self.is_stopping() {
            signal.notify();
        }
        self.stop_signals.borrow_mut().push(Rc::clone(&signal));
        signal
    }

    pub fn handle_message(&self, message: WorkerMsg) {
        match message {
            WorkerMsg::Subscribe {
                publication,
                mirror,
            } => {
                let origin = self.sources.borrow().get(&publication).cloned();
                match origin {
                    Some(source) if source.origin == self.id => {
                        source.subscribe(&self.shared, mirror)
                    }
                    _ => {
                        let ended = WorkerMsg::Ended {
                            publication,
                            subscription: mirror.subscription,
                        };
                        self.shared.send(mirror.worker, ended)
                    }
                }
            }
            WorkerMsg::Unsubscribe {
                publication,
                mirror,
            } => {
                if let Some(source) = self.sources.borrow().get(&publication) {
                    source.unsubscribe(mirror);
                }
            }
            WorkerMsg::Snapshot {
                publication,
                subscription,
                items,
            } => {
                self.shared.media_received(self.id);
                if let Some(source) = self.mirror(publication, subscription) {
                    for item in &items {
                        source.push_local(item);
                    }
                }
            }
            WorkerMsg::Media {
                publication,
                subscription,
                media,
            } => {
                self.shared.media_received(self.id);
                if let Some(source) = self.mirror(publication, subscription) {
                    source.push_local(&media);
                }
            }
            WorkerMsg::Ended {
                publication,
                subscription,
            } => {
                if let Some(source) = self.mirror(publication, subscription) {
                    self.sources.borrow_mut().remove(&publication);
                    source.end(&self.shared);
                }
            }
            WorkerMsg::WakePlayer { waiter } => self.wake_waiting(Waiting::Player, waiter),
            WorkerMsg::WakePlaylist { waiter } => self.wake_waiting(Waiting::Playlist, waiter),
            WorkerMsg::Stop => {
                self.stopping.set(true);
                for wake in self.connections.borrow().values() {
                    wake.notify();
                }
                for signal in self.stop_signals.borrow().iter() {
                    signal.notify();
                }
                self.hls_housekeeping.notify();
                self.stopped.notify();
            }
        }
    }

    /// This worker's mirror of `publication`, if it is the one `subscription` was made for
    /// (not an earlier mirror's, dropped since).
    fn mirror(&self, publication: PublisherId, subscription: u64) -> Option<Rc<Source>> {
        self.sources
            .borrow()
            .get(&publication)
            .filter(|source| source.origin != self.id && source.subscription == subscription)
            .cloned()
    }
}
