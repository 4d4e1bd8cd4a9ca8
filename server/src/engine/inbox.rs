//! What workers send each other, and each worker's inbox.
//!
//! One unbounded channel per worker, so control messages always arrive, in order with media;
//! media is flow-controlled by a count of what is in flight, so a worker that falls behind
//! makes its senders resync it rather than queue without bound.

use std::sync::atomic::{AtomicUsize, Ordering};

use mediakit_core::hub::{ForwardOutcome, PublisherId};
use mediakit_core::media::Media;
use mediakit_core::wait::WaiterId;

/// Forwarded media messages a worker may have queued before senders treat it as lagging.
pub const INBOX_MEDIA_CAPACITY: usize = 4096;

/// One mirror of a stream on a worker, as its origin forwards to it: the worker, and which of
/// that worker's subscriptions (a worker that drops its mirror and makes a new one subscribes
/// anew, and what was forwarded to the old one must not reach the new one before its
/// snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirror {
    pub worker: usize,
    pub subscription: u64,
}

/// What workers send each other.
#[derive(Debug)]
pub enum WorkerMsg {
    /// To the origin: `mirror` has players of `publication` and wants its media.
    Subscribe {
        publication: PublisherId,
        mirror: Mirror,
    },
    /// To the origin: `mirror` has no players left.
    Unsubscribe {
        publication: PublisherId,
        mirror: Mirror,
    },
    /// To a mirror: the items a (re)starting subscriber begins with: configs, metadata, GOP.
    Snapshot {
        publication: PublisherId,
        subscription: u64,
        items: Vec<Media>,
    },
    /// To a mirror: one media item.
    Media {
        publication: PublisherId,
        subscription: u64,
        media: Media,
    },
    /// To a mirror: the publisher stopped, or never existed by the time we asked.
    Ended {
        publication: PublisherId,
        subscription: u64,
    },
    /// A player waiting on this worker may find its stream live now.
    WakePlayer { waiter: WaiterId },
    /// An HLS playlist request waiting on this worker may find its first segment now.
    WakePlaylist { waiter: WaiterId },
    /// The server is shutting down.
    Stop,
}

/// A worker's inbox as other workers hold it.
#[derive(Debug)]
pub struct Inbox {
    sender: async_channel::Sender<WorkerMsg>,
    media_in_flight: AtomicUsize,
}

impl Inbox {
    pub fn new(sender: async_channel::Sender<WorkerMsg>) -> Self {
        Self {
            sender,
            media_in_flight: AtomicUsize::new(0),
        }
    }

    /// Sends a control message; control messages are rare and always arrive.
    pub fn send(&self, message: WorkerMsg) {
        let _ = self.sender.try_send(message);
    }

    /// Forwards media unless the worker already has too much in flight.
    pub fn forward_media(&self, message: WorkerMsg) -> ForwardOutcome {
        if self.media_in_flight.load(Ordering::Relaxed) >= INBOX_MEDIA_CAPACITY {
            return ForwardOutcome::Lagging;
        }
        self.media_in_flight.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(message) {
            Ok(()) => ForwardOutcome::Delivered,
            Err(_) => {
                self.media_in_flight.fetch_sub(1, Ordering::Relaxed);
                ForwardOutcome::Closed
            }
        }
    }

    /// Called by the receiving worker for each forwarded media message it took.
    pub fn media_received(&self) {
        self.media_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
