//! State every worker reaches: the stream registry (locked only on control events: publish,
//! play, stop, never per frame), which worker each waiting player is on, and every worker's
//! inbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use mediakit_core::hub::{HubConfig, Registry};
use mediakit_core::wait::WaiterId;
use mediakit_core::Millis;

use super::fanout::{WorkerMsg, INBOX_MEDIA_CAPACITY};
use super::hls::HlsStore;
use crate::ServerConfig;

/// Where a live stream's publisher runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublisherHandle {
    /// The worker that owns the publishing session and the origin source.
    pub worker: usize,
}

/// The registry and the workers of the players waiting in it.
#[derive(Debug)]
pub struct Control {
    pub registry: Registry<PublisherHandle>,
    /// The worker each waiting player is on, to wake it when its stream goes live.
    pub waiters: HashMap<WaiterId, usize>,
}

/// What all workers share.
#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
    pub hub: HubConfig,
    /// Every stream's HLS playlist and segments.
    pub hls: HlsStore,
    control: Mutex<Control>,
    inboxes: Vec<Inbox>,
    clock: Instant,
}

/// A worker's inbox: unbounded, so control messages always arrive in order with media, with
/// media flow-controlled by a count of what is in flight so memory stays bounded.
#[derive(Debug)]
struct Inbox {
    sender: async_channel::Sender<WorkerMsg>,
    media_in_flight: AtomicUsize,
}

/// Why media could not be forwarded to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardError {
    /// The worker has too much media queued; resync it later.
    Lagging,
    /// The worker is gone.
    Closed,
}

impl Shared {
    pub fn new(config: ServerConfig, senders: Vec<async_channel::Sender<WorkerMsg>>) -> Self {
        let hub = config.hub_config();
        let inboxes = senders
            .into_iter()
            .map(|sender| Inbox {
                sender,
                media_in_flight: AtomicUsize::new(0),
            })
            .collect();
        Self {
            hls: HlsStore::new(&config.hls),
            config,
            hub,
            control: Mutex::new(Control {
                registry: Registry::new(hub),
                waiters: HashMap::new(),
            }),
            inboxes,
            clock: Instant::now(),
        }
    }

    /// The core's notion of now: milliseconds since the server started.
    pub fn now(&self) -> Millis {
        Millis(self.clock.elapsed().as_millis() as u64)
    }

    /// The instant a core deadline stands for.
    pub fn instant_of(&self, at: Millis) -> Instant {
        self.clock + std::time::Duration::from_millis(at.0)
    }

    /// The registry, for one control step. A poisoned lock (a panic elsewhere) is recovered:
    /// every registry call leaves it consistent.
    pub fn control(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes the players in `released`, each on its own worker, to find their stream live.
    pub fn wake_waiters(
        &self,
        control: &mut Control,
        released: impl IntoIterator<Item = WaiterId>,
    ) {
        for waiter in released {
            if let Some(&worker) = control.waiters.get(&waiter) {
                self.send(worker, WorkerMsg::WakeWaiter { waiter });
            }
        }
    }

    /// Sends a control message to a worker; control messages are rare and always arrive.
    pub fn send(&self, worker: usize, message: WorkerMsg) {
        if let Some(inbox) = self.inboxes.get(worker) {
            let _ = inbox.sender.try_send(message);
        }
    }

    /// Forwards media to a worker unless it already has too much in flight.
    pub fn forward_media(&self, worker: usize, message: WorkerMsg) -> Result<(), ForwardError> {
        let inbox = self.inboxes.get(worker).ok_or(ForwardError::Closed)?;
        if inbox.media_in_flight.load(Ordering::Relaxed) >= INBOX_MEDIA_CAPACITY {
            return Err(ForwardError::Lagging);
        }
        inbox.media_in_flight.fetch_add(1, Ordering::Relaxed);
        inbox.sender.try_send(message).map_err(|_| {
            inbox.media_in_flight.fetch_sub(1, Ordering::Relaxed);
            ForwardError::Closed
        })
    }

    /// Called by a worker for each forwarded media message it has taken from its inbox.
    pub fn media_received(&self, worker: usize) {
        if let Some(inbox) = self.inboxes.get(worker) {
            inbox.media_in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Asks every worker to stop.
    pub fn stop_all(&self) {
        for inbox in &self.inboxes {
            let _ = inbox.sender.try_send(WorkerMsg::Stop);
        }
    }
}
