//! Fan-out of one publisher to players on every worker.
//!
//! The publisher's worker holds the origin [`Source`]; a worker with players of a stream
//! published elsewhere holds a mirror `Source` fed by its inbox. A frame crosses threads once
//! per subscribed worker, never once per player, and its payload is the same `Bytes` on every
//! worker. Within a worker, sources are `Rc<RefCell<..>>`: only that thread touches them.

use std::cell::RefCell;
use std::rc::Rc;

use mediakit_core::hub::{Forward, Forwarder, LocalSource, PublisherId, PushReport, ReaderKey};
use mediakit_core::media::Media;

use super::inbox::{Mirror, WorkerMsg};
use super::notify::LocalNotify;
use super::shared::Shared;

/// The core's per-stream state as a worker holds it: each player's slot carries the notify
/// that wakes its connection.
pub type SourceState = LocalSource<Rc<LocalNotify>>;

/// One worker's view of one live stream: the core's source state plus, at the origin, the
/// other workers it is forwarded to.
#[derive(Debug)]
pub struct Source {
    pub publication: PublisherId,
    /// The worker of the publisher.
    pub origin: usize,
    /// A mirror's subscription at the origin, which the origin's messages carry (0 at the
    /// origin itself).
    pub subscription: u64,
    pub state: RefCell<SourceState>,
    /// At the origin: the other workers that receive this stream, and which of them must be
    /// resynced with a snapshot (the core decides when).
    forwarder: RefCell<Forwarder<Mirror>>,
    report: RefCell<PushReport<Rc<LocalNotify>>>,
}

impl Source {
    pub fn new(
        publication: PublisherId,
        origin: usize,
        subscription: u64,
        state: SourceState,
    ) -> Rc<Self> {
        Rc::new(Self {
            publication,
            origin,
            subscription,
            state: RefCell::new(state),
            forwarder: RefCell::new(Forwarder::new()),
            report: RefCell::new(PushReport::new()),
        })
    }

    /// Adds a player; it starts from the GOP snapshot, so it is woken at once.
    pub fn add_reader(&self, wake: Rc<LocalNotify>) -> ReaderKey {
        wake.notify();
        self.state.borrow_mut().add_reader(wake)
    }

    pub fn remove_reader(&self, reader: ReaderKey) {
        self.state.borrow_mut().remove_reader(reader);
    }

    pub fn reader_count(&self) -> usize {
        self.state.borrow().reader_count()
    }

    /// Pushes one item to this worker's players and wakes those with something new. Players
    /// that stayed too far behind are removed by the core and woken to find out.
    pub fn push_local(&self, media: &Media) {
        let mut report = self.report.borrow_mut();
        let mut state = self.state.borrow_mut();
        state.push(media, &mut report);
        for reader in report.wake() {
            if let Some(notify) = state.waker(*reader) {
                notify.notify();
            }
        }
        for (_, notify) in report.disconnect() {
            notify.notify();
        }
    }

    /// At the origin: pushes locally and forwards to every subscribed worker.
    pub fn publish(&self, shared: &Shared, media: &Media) {
        self.push_local(media);
        let mut forwarder = self.forwarder.borrow_mut();
        if forwarder.is_empty() {
            return;
        }
        let state = self.state.borrow();
        let publication = self.publication;
        forwarder.forward(media, state.gop(), |mirror, forward| {
            let subscription = mirror.subscription;
            let message = match forward {
                Forward::Media => WorkerMsg::Media {
                    publication,
                    subscription,
                    media: media.clone(),
                },
                Forward::Snapshot => WorkerMsg::Snapshot {
                    publication,
                    subscription,
                    items: state.gop().snapshot().collect(),
                },
            };
            shared.forward_media(mirror.worker, message)
        });
    }

    /// At the origin: starts forwarding to `mirror`, beginning with the snapshot.
    pub fn subscribe(&self, shared: &Shared, mirror: Mirror) {
        let snapshot = WorkerMsg::Snapshot {
            publication: self.publication,
            subscription: mirror.subscription,
            items: self.state.borrow().gop().snapshot().collect(),
        };
        let outcome = shared.forward_media(mirror.worker, snapshot);
        self.forwarder.borrow_mut().subscribe(mirror, outcome);
    }

    pub fn unsubscribe(&self, mirror: Mirror) {
        self.forwarder.borrow_mut().unsubscribe(mirror);
    }

    /// The publisher stopped: players drain what they have, then see the end.
    pub fn end(&self, shared: &Shared) {
        let mut state = self.state.borrow_mut();
        state.end();
        for (_, notify) in state.readers() {
            notify.notify();
        }
        drop(state);
        for mirror in self.forwarder.borrow().targets() {
            let ended = WorkerMsg::Ended {
                publication: self.publication,
                subscription: mirror.subscription,
            };
            shared.send(mirror.worker, ended);
        }
    }
}
