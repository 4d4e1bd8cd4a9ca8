//! State every worker reaches: the stream registry and the HLS catalog (each locked only on
//! control events — publish, play, stop, a closed segment, an HLS request — never per frame),
//! connection admission, every worker's inbox and statistics.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use mediakit_core::admission::{Admission, AdmissionError};
use mediakit_core::datagram::{RouteError, RouteTable};
use mediakit_core::guard::GuardConfig;
use mediakit_core::hub::{ForwardOutcome, HubConfig, Registry};
use mediakit_core::wait::WaiterId;

use super::hls::Hls;
use super::inbox::{Inbox, WorkerMsg};
use super::stats::{Stats, WorkerStats};
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
    pub waiting: HashMap<WaiterId, usize>,
}

/// What all workers share.
#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
    pub hub: HubConfig,
    pub guard: GuardConfig,
    /// Every stream's HLS playlist and segments.
    pub hls: Hls,
    control: Mutex<Control>,
    admission: Mutex<Admission>,
    /// Which connection (worker, id) holds which peer address for RTP over UDP, over all
    /// workers: each worker routes what its own sockets receive, but no two sessions, on any
    /// worker, may have the server send to the same address.
    udp_claims: Mutex<RouteTable<(usize, u64)>>,
    inboxes: Vec<Inbox>,
    stats: Vec<WorkerStats>,
}

/// A lock whose holder panicked left plain data behind, consistent after every call the
/// engine makes under it: keep using it rather than take the server down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(config: ServerConfig, senders: Vec<async_channel::Sender<WorkerMsg>>) -> Self {
        let hub = config.hub_config();
        let stats = senders.iter().map(|_| WorkerStats::default()).collect();
        Self {
            hls: Hls::new(&config),
            guard: config.guard_config(),
            admission: Mutex::new(Admission::new(config.admission_config())),
            udp_claims: Mutex::new(RouteTable::new()),
            control: Mutex::new(Control {
                registry: Registry::new(hub),
                waiting: HashMap::new(),
            }),
            inboxes: senders.into_iter().map(Inbox::new).collect(),
            stats,
            config,
            hub,
        }
    }

    /// The registry, for one control step.
    pub fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.control)
    }

    /// Counts a new connection from `ip`, or says which limit refuses it.
    pub fn admit(&self, ip: IpAddr) -> Result<(), AdmissionError> {
        lock(&self.admission).admit(ip)
    }

    /// A connection admitted with [`Shared::admit`] closed.
    pub fn release(&self, ip: IpAddr) {
        lock(&self.admission).release(ip);
    }

    /// Claims `ip` at `ports` for connection `id` of `worker`, unless another connection on
    /// any worker holds one of those addresses (or this one holds too many).
    pub fn claim_udp(
        &self,
        worker: usize,
        id: u64,
        ip: IpAddr,
        ports: [u16; 2],
    ) -> Result<(), RouteError> {
        lock(&self.udp_claims).claim((worker, id), ip, ports)
    }

    /// Gives up every address connection `id` of `worker` claimed.
    pub fn release_udp(&self, worker: usize, id: u64) {
        lock(&self.udp_claims).release((worker, id));
    }

    /// Wakes the players in `waiters` (whose workers `waiting` knows), each on its own
    /// worker, to find their stream live.
    pub fn wake_players(&self, waiting: &HashMap<WaiterId, usize>, waiters: &[WaiterId]) {
        for waiter in waiters {
            if let Some(&worker) = waiting.get(waiter) {
                self.send(worker, WorkerMsg::WakePlayer { waiter: *waiter });
            }
        }
    }

    /// Sends a control message to a worker; control messages are rare and always arrive.
    pub fn send(&self, worker: usize, message: WorkerMsg) {
        if let Some(inbox) = self.inboxes.get(worker) {
            inbox.send(message);
        }
    }

    /// Forwards media to a worker unless it already has too much in flight.
    pub fn forward_media(&self, worker: usize, message: WorkerMsg) -> ForwardOutcome {
        match self.inboxes.get(worker) {
            Some(inbox) => inbox.forward_media(message),
            None => ForwardOutcome::Closed,
        }
    }

    /// Called by a worker for each forwarded media message it has taken from its inbox.
    pub fn media_received(&self, worker: usize) {
        if let Some(inbox) = self.inboxes.get(worker) {
            inbox.media_received();
        }
    }

    /// The statistics a worker writes.
    pub fn stats_of(&self, worker: usize) -> Option<&WorkerStats> {
        self.stats.get(worker)
    }

    /// The server's statistics now.
    pub fn stats(&self) -> Stats {
        let (hls_bytes, hls_streams) = self.hls.usage();
        Stats {
            hls_bytes,
            hls_streams,
            ..Stats::sum(&self.stats)
        }
    }

    /// Asks every worker to stop.
    pub fn stop_all(&self) {
        for inbox in &self.inboxes {
            inbox.send(WorkerMsg::Stop);
        }
    }
}
