//! State every worker reaches: the stream registry (locked only on control events: publish,
//! play, stop, never per frame), the players waiting for a stream, and each worker's inbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use mediakit_core::hub::{HubConfig, Registry, WaiterId};
use mediakit_core::Millis;
use mediakit_support::ServerConfig;
use tokio::sync::{mpsc, oneshot};

use crate::fanout::WorkerMsg;

/// Where a live stream's publisher runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublisherHandle {
    /// The worker that owns the publishing session and the origin source.
    pub worker: usize,
}

/// The registry and the wake-up channels of players waiting in it.
#[derive(Debug)]
pub struct Control {
    pub registry: Registry<PublisherHandle>,
    pub waiters: HashMap<WaiterId, oneshot::Sender<()>>,
}

#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
    pub hub: HubConfig,
    control: Mutex<Control>,
    pub inboxes: Vec<mpsc::Sender<WorkerMsg>>,
    clock: Instant,
}

impl Shared {
    pub fn new(config: ServerConfig, inboxes: Vec<mpsc::Sender<WorkerMsg>>) -> Self {
        let hub = config.hub_config();
        let registry = Registry::new(hub);
        Self {
            config,
            hub,
            control: Mutex::new(Control {
                registry,
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

    /// The registry, for one control step. A poisoned lock (a panic elsewhere) is recovered:
    /// the registry's own state is updated atomically per call.
    pub fn control(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Tells every waiter in `released` that its stream went live.
    pub fn release_waiters(control: &mut Control, released: impl IntoIterator<Item = WaiterId>) {
        for waiter in released {
            if let Some(wake) = control.waiters.remove(&waiter) {
                let _ = wake.send(());
            }
        }
    }
}

pub type SharedRef = Arc<Shared>;
