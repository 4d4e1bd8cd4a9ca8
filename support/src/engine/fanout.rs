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
use mediakit_core::wait::WaiterId;

use super::notify::LocalNotify;
use super::shared::{ForwardError, Shared};

/// Forwarded media messages a worker may have queued before senders treat it as lagging.
pub const INBOX_MEDIA_CAPACITY: usize = 4096;

/// The core's per-stream state as a worker holds it: each player's slot carries the notify
/// that wakes its connection.
pub type SourceState = LocalSource<Rc<LocalNotify>>;

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
    /// To a mirror: the items a (re)starting subscriber begins with: configs, metadata, GOP.
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
    /// A player waiting on this worker may find its stream live now.
    WakeWaiter { waiter: WaiterId },
    /// The server is shutting down.
    Stop,
}

/// One worker's view of one live stream: the core's source state plus where to forward it.
#[derive(Debug)]
pub struct Source {
    pub publication: PublisherId,
    /// The worker of the publisher.
    pub origin: usize,
    pub state: RefCell<SourceState>,
    /// At the origin: the other workers that receive this stream.
    remotes: RefCell<Vec<Remote>>,
    report: RefCell<PushReport<Rc<LocalNotify>>>,
}

#[derive(Debug)]
struct Remote {
    worker: usize,
    /// The remote's inbox was full (or it has not had its snapshot yet): at the next point a
    /// player can start from, it gets a fresh snapshot instead of the lone item.
    needs_snapshot: bool,
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
        let mut remotes = self.remotes.borrow_mut();
        if remotes.is_empty() {
            return;
        }
        let resync_point = self.is_resync_point(media);
        remotes.retain_mut(|remote| {
            let message = if remote.needs_snapshot {
                if !resync_point {
                    return true;
                }
                WorkerMsg::Snapshot {
                    publication: self.publication,
                    items: self.snapshot(),
                }
            } else {
                WorkerMsg::Media {
                    publication: self.publication,
                    media: media.clone(),
                }
            };
            match shared.forward_media(remote.worker, message) {
                Ok(()) => {
                    remote.needs_snapshot = false;
                    true
                }
                Err(ForwardError::Lagging) => {
                    remote.needs_snapshot = true;
                    true
                }
                Err(ForwardError::Closed) => false,
            }
        });
    }

    /// At the origin: starts forwarding to `worker`, beginning with the snapshot.
    pub fn subscribe(&self, shared: &Shared, worker: usize) {
        let snapshot = WorkerMsg::Snapshot {
            publication: self.publication,
            items: self.snapshot(),
        };
        let needs_snapshot = shared.forward_media(worker, snapshot).is_err();
        let mut remotes = self.remotes.borrow_mut();
        remotes.retain(|remote| remote.worker != worker);
        remotes.push(Remote {
            worker,
            needs_snapshot,
        });
    }

    pub fn unsubscribe(&self, worker: usize) {
        self.remotes
            .borrow_mut()
            .retain(|remote| remote.worker != worker);
    }

    /// The publisher stopped: players drain what they have, then see the end.
    pub fn end(&self, shared: &Shared) {
        let mut state = self.state.borrow_mut();
        state.end();
        for (_, notify) in state.readers() {
            notify.notify();
        }
        drop(state);
        for remote in self.remotes.borrow_mut().drain(..) {
            shared.send(
                remote.worker,
                WorkerMsg::Ended {
                    publication: self.publication,
                },
            );
        }
    }

    fn snapshot(&self) -> Vec<Media> {
        self.state.borrow().gop().snapshot().collect()
    }

    /// True after pushing an item a new player could start from: a video keyframe (or any
    /// frame of an audio-only stream), so a resynced worker sees a clean GOP.
    fn is_resync_point(&self, media: &Media) -> bool {
        let Media::Frame(frame) = media else {
            return false;
        };
        match frame.kind() {
            MediaKind::Video => frame.keyframe,
            MediaKind::Audio => !self.state.borrow().gop().has_video(),
        }
    }
}
