//! HLS for every live stream: the core's [`HlsCatalog`] behind one lock, and the thread that
//! mirrors it to a directory.
//!
//! The publisher's worker cuts segments with no lock per frame; the lock is taken once per
//! closed segment (the catalog swaps in a new snapshot and applies the global byte budget),
//! once per HTTP request (to clone an `Arc`), and when a publisher stops or a linger ends.
//! Every decision — what a restart continues, when a parked stream is forgotten, which
//! segments fit the budget, which waiting playlist requests to wake — is the catalog's.
//!
//! Segments may also be written to a directory. A writer thread reconciles each stream's
//! directory with the newest state the catalog gave for it: states queued for one stream are
//! coalesced (only the newest matters), so nothing is ever dropped — no orphaned segment
//! file, no missed removal — and a slow disk never stalls a worker.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use mediakit_core::hls::{
    reconcile, segment_name, DiskState, HlsCatalog, HlsPublication, Published, Snapshot,
};
use mediakit_core::hub::StreamKey;
use mediakit_core::limit::{LogDecision, LogGate};
use mediakit_core::wait::{WaitError, WaitStatus, WaiterId};
use mediakit_core::Millis;

use crate::ServerConfig;

/// The catalog and the workers of the playlist requests waiting in it.
struct State {
    catalog: HlsCatalog,
    /// The worker each waiting playlist request is on, to wake it.
    waiting: HashMap<WaiterId, usize>,
}

/// Every stream's HLS state, shared by the workers.
pub struct Hls {
    enabled: bool,
    state: Mutex<State>,
    writer: Option<Writer>,
}

impl std::fmt::Debug for Hls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hls")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Playlist requests to wake, each on its worker.
pub type Woken = Vec<(usize, WaiterId)>;

impl Hls {
    pub fn new(config: &ServerConfig) -> Self {
        let settings = &config.hls;
        let writer = settings
            .dir
            .as_ref()
            .filter(|_| settings.enabled)
            .map(|dir| Writer::start(dir.clone()));
        Self {
            enabled: settings.enabled,
            state: Mutex::new(State {
                catalog: HlsCatalog::new(config.hls_catalog_config()),
                waiting: HashMap::new(),
            }),
            writer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A publisher of `key` starts: its segmenter (continuing a parked one). `None` when HLS
    /// is off, or when the catalog refuses (the name's segmenter is still live: a publisher
    /// the registry let through cannot be refused here, so this is only defence in depth).
    pub fn start(&self, key: &StreamKey, now: Millis) -> Option<(HlsPublication, Woken)> {
        if !self.enabled {
            return None;
        }
        let mut state = self.lock();
        let (publication, published) = state.catalog.start(key, now).ok()?;
        let woken = self.after(&state, published);
        Some((publication, woken))
    }

    /// A segment closed: the catalog takes the new snapshot; returns the playlist requests
    /// to wake.
    pub fn publish(&self, publication: &mut HlsPublication) -> Woken {
        let mut state = self.lock();
        let published = state.catalog.publish(publication);
        self.after(&state, published)
    }

    /// The publisher stopped: its last segment is served with `EXT-X-ENDLIST` and the stream
    /// is parked for a restart. Returns the playlist requests to wake.
    pub fn stop(&self, publication: HlsPublication, now: Millis) -> Woken {
        let mut state = self.lock();
        let published = state.catalog.stop(publication, now);
        self.after(&state, published)
    }

    /// Hands the directory changes to the writer and says whom to wake.
    fn after(&self, state: &State, published: Published) -> Woken {
        if let Some(writer) = &self.writer {
            for (key, files) in published.disk {
                writer.queue(key, files);
            }
        }
        published
            .woken
            .iter()
            .filter_map(|waiter| state.waiting.get(waiter).map(|&worker| (worker, *waiter)))
            .collect()
    }

    /// The latest snapshot of `key`, once it has a segment.
    pub fn snapshot(&self, key: &StreamKey) -> Option<Arc<Snapshot>> {
        self.lock().catalog.snapshot(key)
    }

    /// Registers a playlist request on `worker` waiting for the first segment of `key`.
    pub fn wait(
        &self,
        key: StreamKey,
        now: Millis,
        timeout_ms: u64,
        worker: usize,
    ) -> Result<(WaiterId, Millis), WaitError> {
        let mut state = self.lock();
        let waiting = state.catalog.wait_playlist(key, now, timeout_ms)?;
        state.waiting.insert(waiting.0, worker);
        Ok(waiting)
    }

    /// What a waiting playlist request finds at `now`.
    pub fn poll(&self, waiter: WaiterId, now: Millis) -> WaitStatus<Arc<Snapshot>> {
        let mut state = self.lock();
        let status = state.catalog.poll_playlist(waiter, now);
        if !matches!(status, WaitStatus::Pending { .. }) {
            state.waiting.remove(&waiter);
        }
        status
    }

    /// A waiting playlist request went away.
    pub fn cancel(&self, waiter: WaiterId) {
        let mut state = self.lock();
        state.catalog.cancel_playlist_wait(waiter);
        state.waiting.remove(&waiter);
    }

    /// Bytes of segments kept and streams kept, for the server's statistics.
    pub fn usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.catalog.total_bytes(), state.catalog.stream_count())
    }

    /// When [`Hls::handle_timeout`] should next run: the earliest end of a linger.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.lock().catalog.poll_timeout()
    }

    /// Forgets the streams whose linger ended (and their directories).
    pub fn handle_timeout(&self, now: Millis) {
        let forgotten = self.lock().catalog.handle_timeout(now);
        if let Some(writer) = &self.writer {
            for key in forgotten {
                writer.queue(key, DiskState::Gone);
            }
        }
    }
}

/// What the writer thread still has to do: the newest state of each stream's directory.
#[derive(Default)]
struct Pending {
    jobs: BTreeMap<StreamKey, DiskState>,
    /// The server is gone: finish what is queued and end.
    closed: bool,
}

/// Mirrors streams to a directory on its own thread.
struct Writer {
    pending: Arc<(Mutex<Pending>, Condvar)>,
}

impl Writer {
    fn start(dir: PathBuf) -> Self {
        let pending = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let queue = Arc::clone(&pending);
        let spawned = std::thread::Builder::new()
            .name("mediakit-hls-writer".into())
            .spawn(move || run_writer(&dir, &queue));
        if let Err(error) = spawned {
            tracing::error!("cannot start the HLS writer thread: {error}");
        }
        Self { pending }
    }

    /// Asks for `key`'s directory to hold `files`, replacing any state still waiting for it.
    fn queue(&self, key: StreamKey, files: DiskState) {
        let (lock, ready) = &*self.pending;
        let mut pending = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.jobs.insert(key, files);
        ready.notify_one();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let (lock, ready) = &*self.pending;
        let mut pending = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.closed = true;
        ready.notify_one();
    }
}

/// The writer thread: takes the newest job of every stream and carries it out, until the
/// server is gone and nothing is left to do.
fn run_writer(dir: &Path, queue: &(Mutex<Pending>, Condvar)) {
    let (lock, ready) = queue;
    // The segment files each stream's directory holds, as this thread wrote them.
    let mut held: HashMap<StreamKey, Vec<u64>> = HashMap::new();
    let mut log = LogGate::new(5);
    loop {
        let jobs = {
            let mut pending = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            while pending.jobs.is_empty() && !pending.closed {
                pending = ready
                    .wait(pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if pending.jobs.is_empty() {
                return;
            }
            std::mem::take(&mut pending.jobs)
        };
        for (key, files) in jobs {
            // Stream keys hold no `..`, no separators and no empty parts (see `StreamKey`), so
            // they are safe as relative paths under `dir`.
            let app_dir = dir.join(key.app());
            let stream_dir = app_dir.join(key.stream());
            let result = match &files {
                DiskState::Holds(snapshot) => {
                    sync_dir(&stream_dir, held.entry(key).or_default(), snapshot)
                }
                DiskState::Gone => {
                    held.remove(&key);
                    remove_dir(&stream_dir, &app_dir)
                }
            };
            if let Err((path, error)) = result {
                if let LogDecision::Log { suppressed_before } = log.check(crate::clock::now()) {
                    tracing::warn!(path = %path.display(), suppressed_before, "HLS file: {error}");
                }
            }
        }
    }
}

type FileResult = Result<(), (PathBuf, std::io::Error)>;

/// Brings one stream's directory to `snapshot`: new segments first, then the playlist (so it
/// never names a missing file), then removals of segments no longer kept.
fn sync_dir(dir: &Path, held: &mut Vec<u64>, snapshot: &Arc<Snapshot>) -> FileResult {
    let plan = reconcile(held, &DiskState::Holds(Arc::clone(snapshot)));
    for sequence in plan.write {
        if let Some(bytes) = snapshot.segment(sequence) {
            let path = dir.join(segment_name(sequence));
            write_atomically(&path, &bytes).map_err(|error| (path, error))?;
            held.push(sequence);
        }
    }
    let path = dir.join("index.m3u8");
    write_atomically(&path, &snapshot.playlist).map_err(|error| (path, error))?;
    for sequence in plan.remove {
        let path = dir.join(segment_name(sequence));
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err((path, error))
            }
            _ => held.retain(|held| *held != sequence),
        }
    }
    Ok(())
}

/// Removes a stream's directory, and its app's directory once no other stream is in it.
fn remove_dir(stream_dir: &Path, app_dir: &Path) -> FileResult {
    match std::fs::remove_dir_all(stream_dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err((stream_dir.to_path_buf(), error))
        }
        _ => {
            // Fails while another stream of the app still has files: that is the point.
            let _ = std::fs::remove_dir(app_dir);
            Ok(())
        }
    }
}

/// Writes through a temporary name and renames, so readers never see a partial file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}
