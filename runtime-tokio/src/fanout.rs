//! Fan-out of one publisher to players on every worker.
//!
//! The publisher's worker holds the origin [`Source`]; a worker with players of a stream
//! published elsewhere holds a mirror `Source` fed by its inbox. A frame crosses threads once
//! per subscribed worker, never once per player, and its payload is the same `Bytes` on every
//! worker. Within a worker, sources are `Rc<RefCell<..>>`: only that thread touches them.

use std::cell::RefCell;
use std::rc::Rc;

use mediakit_core::hub::{LocalSource, PublisherId, PushReport, ReaderKey};
use mediakit_core::media::{Media, MediaKind};
use tokio::sync::{mpsc::error::TrySendError, Notify};

use crate::shared::SharedRef;

/// Messages queued per worker inbox before the sender treats the worker as lagging.
pub const INBOX_CAPACITY: usize = 4096;

/// A stream's state on one worker: each player carries the `Notify` that wakes its session,
/// so a push finds the sessions to wake in O(1) each.
pub type SourceState = LocalSource<Rc<Notify>>;

/// What workers send each other.
#[derive(Debug)]
pub enum WorkerMsg {
    /// To the origin: worker `from` has players of `publication` and wants its media.
    Subscribe {
        publication: PublisherId,
        from: usize,
    },
    /// To the origin: worker `from` has no players left.
    Unsubscribe {
        publication: PublisherId,
        from: usize,
    },
    /// To a mirror: the items a new subscriber starts with (configs, metadata, GOP).
    Snapshot {
        publication: PublisherId,
        items: Vec<Media>,
    },
    /// To a mirror: one media item.
    Media {
        publication: PublisherId,
        media: Media,
    },
    /// To a mirror: the publisher stopped, or never existed by the time we asked.
    Ended { publication: PublisherId },
}

/// One worker's view of one live stream: the core's source state plus how to wake players.
#[derive(Debug)]
pub struct Source {
    pub publication: PublisherId,
    /// The worker of the publisher.
    pub origin: usize,
    pub state: RefCell<SourceState>,
    /// At the origin: the other workers that receive this stream.
    remotes: RefCell<Vec<Remote>>,
    report: RefCell<PushReport<Rc<Notify>>>,
}

#[derive(Debug)]
struct Remote {
    worker: usize,
    /// The remote's inbox was full; resume it at the next keyframe so it sees a clean GOP.
    lagging: bool,
}

impl Source {
    pub fn new(publication: PublisherId, origin: usize, state: SourceState) -> Rc<Self> {
        Rc::new(Self {
            publication,
            origin,
            state: RefCell::new(state),
            remotes: RefCell::new(Vec::new()),
            report: RefCell::new(PushReport::new()),
        })
    }

    /// Adds a player woken through `wake`; it starts from the GOP snapshot.
    pub fn add_reader(&self, wake: Rc<Notify>) -> ReaderKey {
        wake.notify_one();
        self.state.borrow_mut().add_reader(wake)
    }

    pub fn remove_reader(&self, reader: ReaderKey) {
        self.state.borrow_mut().remove_reader(reader);
    }

    pub fn reader_count(&self) -> usize {
        self.state.borrow().reader_count()
    }

    /// Pushes one item to this worker's players and wakes those with something new. Players
    /// that stayed too far behind are removed from the source and woken to find out.
    pub fn push_local(&self, media: &Media) {
        let mut report = self.report.borrow_mut();
        let mut state = self.state.borrow_mut();
        state.push(media, &mut report);
        for reader in report.wake() {
            if let Some(notify) = state.waker(*reader) {
                notify.notify_one();
            }
        }
        for (_, notify) in report.disconnect() {
            notify.notify_one();
        }
    }

    /// At the origin: pushes locally and forwards to every subscribed worker.
    pub fn publish(&self, shared: &SharedRef, media: &Media) {
        self.push_local(media);
        let mut remotes = self.remotes.borrow_mut();
        remotes.retain_mut(|remote| {
            if remote.lagging && !starts_clean_gop(media) {
                return true;
            }
            let Some(inbox) = shared.inboxes.get(remote.worker) else {
                return false;
            };
            let message = WorkerMsg::Media {
                publication: self.publication,
                media: media.clone(),
            };
            match inbox.try_send(message) {
                Ok(()) => {
                    remote.lagging = false;
                    true
                }
                Err(TrySendError::Full(_)) => {
                    remote.lagging = true;
                    true
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }

    /// At the origin: starts forwarding to `worker`, beginning with the snapshot.
    pub fn subscribe(&self, shared: &SharedRef, worker: usize) {
        let Some(inbox) = shared.inboxes.get(worker) else {
            return;
        };
        let items = self.state.borrow().gop().snapshot().collect();
        let lagging = inbox
            .try_send(WorkerMsg::Snapshot {
                publication: self.publication,
                items,
            })
            .is_err();
        let mut remotes = self.remotes.borrow_mut();
        remotes.retain(|remote| remote.worker != worker);
        remotes.push(Remote { worker, lagging });
    }

    pub fn unsubscribe(&self, worker: usize) {
        self.remotes
            .borrow_mut()
            .retain(|remote| remote.worker != worker);
    }

    /// The publisher stopped: players drain what they have, then see the end.
    pub fn end(&self, shared: &SharedRef) {
        let mut state = self.state.borrow_mut();
        state.end();
        for (_, notify) in state.readers() {
            notify.notify_one();
        }
        drop(state);
        for remote in self.remotes.borrow_mut().drain(..) {
            if let Some(inbox) = shared.inboxes.get(remote.worker) {
                let message = WorkerMsg::Ended {
                    publication: self.publication,
                };
                if let Err(TrySendError::Full(message)) = inbox.try_send(message) {
                    // The end must arrive or that worker's players would wait forever; nothing
                    // follows it for this publication, so waiting for room keeps the order.
                    let inbox = inbox.clone();
                    tokio::task::spawn_local(async move { inbox.send(message).await });
                }
            }
        }
    }
}

/// True for an item after which a lagging worker can resume without a broken GOP.
fn starts_clean_gop(media: &Media) -> bool {
    match media {
        Media::Frame(frame) => frame.keyframe && frame.kind() == MediaKind::Video,
        Media::Config(_) | Media::Metadata(_) => true,
    }
}
