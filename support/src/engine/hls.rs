//! HLS for every live stream: the publisher's worker cuts segments as media arrives, and HTTP
//! handlers on any worker serve the latest playlist and segments from a shared snapshot.
//!
//! Segmenting runs once per stream, on the publisher's thread, with no lock per frame: the
//! store's lock is taken once per closed segment (to swap in a new snapshot) and once per HTTP
//! request (to clone an `Arc`). When a publisher stops, its segmenter is parked in the store
//! for the configured linger time, so a publisher that comes back under the same name
//! continues the media sequence with `EXT-X-DISCONTINUITY`. Meanwhile the last playlist is
//! served with `EXT-X-ENDLIST`, so its players finish as RTMP and FLV players do; the tag
//! goes when the stream resumes (players that saw it have stopped; new ones get the
//! continuation).
//! Segments may also be written to a directory, by a writer thread so a slow disk never stalls
//! a worker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mediakit_core::hls::{segment_name, HlsConfig, HlsSegmenter};
use mediakit_core::hub::StreamKey;
use mediakit_core::media::Media;

use crate::config::Hls;

/// File writes waiting for the writer thread; beyond this they are dropped (and logged).
const WRITE_QUEUE: usize = 256;
/// How often finished streams past their linger time are looked for.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// What an HTTP handler serves for one stream: the playlist and the segments it may name.
#[derive(Debug)]
pub struct Snapshot {
    /// The live playlist.
    pub playlist: Bytes,
    segments: Vec<(u64, Bytes)>,
}

impl Snapshot {
    /// A segment by media sequence number, if still kept.
    pub fn segment(&self, sequence: u64) -> Option<Bytes> {
        self.segments
            .iter()
            .find(|(s, _)| *s == sequence)
            .map(|(_, bytes)| bytes.clone())
    }
}

#[derive(Default)]
struct Entry {
    snapshot: Option<Arc<Snapshot>>,
    /// The segmenter of a stream whose publisher stopped, kept for a restart.
    parked: Option<HlsSegmenter>,
    /// When the publisher stopped; `None` while live.
    ended: Option<Instant>,
    /// Segments written to the directory, to remove those that leave the snapshot.
    files: Vec<u64>,
}

struct Streams {
    entries: HashMap<StreamKey, Entry>,
    last_purge: Instant,
}

/// Every stream's HLS state, shared by the workers.
pub struct HlsStore {
    config: HlsConfig,
    linger: Duration,
    enabled: bool,
    streams: Mutex<Streams>,
    writer: Option<Writer>,
}

impl std::fmt::Debug for HlsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsStore")
            .field("enabled", &self.enabled)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HlsStore {
    pub fn new(settings: &Hls) -> Self {
        let config = HlsConfig {
            target_duration_ms: settings.target_duration_ms,
            window: settings.window,
            max_stream_bytes: settings.max_stream_bytes,
            ..HlsConfig::default()
        };
        let writer = settings
            .dir
            .as_ref()
            .filter(|_| settings.enabled)
            .map(|dir| Writer::start(dir.clone()));
        Self {
            config,
            linger: Duration::from_millis(settings.linger_ms),
            enabled: settings.enabled,
            streams: Mutex::new(Streams {
                entries: HashMap::new(),
                last_purge: Instant::now(),
            }),
            writer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Streams> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A publisher of `key` starts: its segmenter, continuing the stream's numbering (with a
    /// discontinuity) if it was published recently. `None` when HLS is off.
    pub fn start(&self, key: &StreamKey) -> Option<HlsPublisher> {
        if !self.enabled {
            return None;
        }
        let mut streams = self.lock();
        self.purge(&mut streams);
        let entry = streams.entries.entry(key.clone()).or_default();
        entry.ended = None;
        let restarted = entry.parked.take().map(|mut segmenter| {
            // The playlist loses its end tag at once; the discontinuity comes with the next
            // segment.
            let _ = segmenter.restart();
            segmenter
        });
        drop(streams);
        let segmenter = match restarted {
            Some(segmenter) => {
                self.publish(key, &segmenter);
                segmenter
            }
            None => HlsSegmenter::new(self.config.clone()),
        };
        Some(HlsPublisher {
            key: key.clone(),
            segmenter,
        })
    }

    /// The latest snapshot of `key`, once it has a segment.
    pub fn snapshot(&self, key: &StreamKey) -> Option<Arc<Snapshot>> {
        let mut streams = self.lock();
        self.purge(&mut streams);
        streams.entries.get(key)?.snapshot.clone()
    }

    /// Swaps in the segmenter's current playlist and segments, and writes what is new.
    fn publish(&self, key: &StreamKey, segmenter: &HlsSegmenter) {
        let Some(playlist) = segmenter.playlist() else {
            return;
        };
        let segments: Vec<(u64, Bytes)> = segmenter
            .segments()
            .map(|segment| (segment.sequence, segment.bytes.clone()))
            .collect();
        let mut streams = self.lock();
        let entry = streams.entries.entry(key.clone()).or_default();
        if let Some(writer) = &self.writer {
            writer.sync(key, &mut entry.files, &playlist, &segments);
        }
        entry.snapshot = Some(Arc::new(Snapshot { playlist, segments }));
    }

    fn park(&self, key: &StreamKey, segmenter: HlsSegmenter) {
        let mut streams = self.lock();
        let entry = streams.entries.entry(key.clone()).or_default();
        entry.parked = Some(segmenter);
        entry.ended = Some(Instant::now());
    }

    /// Forgets streams that ended more than the linger time ago (and their files).
    fn purge(&self, streams: &mut Streams) {
        let now = Instant::now();
        if now.duration_since(streams.last_purge) < PURGE_INTERVAL {
            return;
        }
        streams.last_purge = now;
        let linger = self.linger;
        let writer = self.writer.as_ref();
        streams.entries.retain(|key, entry| {
            let keep = entry
                .ended
                .is_none_or(|ended| now.duration_since(ended) < linger);
            if !keep {
                if let Some(writer) = writer {
                    writer.remove_stream(key);
                }
            }
            keep
        });
    }
}

/// The segmenter of one live publication, owned by its publisher's connection.
pub struct HlsPublisher {
    key: StreamKey,
    segmenter: HlsSegmenter,
}

impl HlsPublisher {
    /// Feeds one media item; a closed segment refreshes the shared snapshot.
    pub fn push(&mut self, store: &HlsStore, media: &Media) {
        match self.segmenter.push(media) {
            Ok(Some(_)) => store.publish(&self.key, &self.segmenter),
            Ok(None) => {}
            // A frame the TS muxer cannot carry is left out of HLS only; RTMP/FLV/RTSP
            // players still get it.
            Err(error) => tracing::debug!(stream = %self.key, "HLS: frame skipped: {error}"),
        }
    }

    /// The publisher stopped: its last partial segment is served, the playlist ends
    /// (`EXT-X-ENDLIST`, so players finish), and the segmenter is parked for a restart.
    pub fn stop(mut self, store: &HlsStore) {
        let _ = self.segmenter.finish();
        store.publish(&self.key, &self.segmenter);
        store.park(&self.key, self.segmenter);
    }
}

/// A file write or removal for the writer thread.
enum Job {
    Write { path: PathBuf, bytes: Bytes },
    Remove { path: PathBuf },
    RemoveDir { path: PathBuf },
}

/// Writes segments and playlists under a directory on its own thread.
struct Writer {
    dir: PathBuf,
    jobs: SyncSender<Job>,
}

impl Writer {
    fn start(dir: PathBuf) -> Self {
        let (jobs, queue) = sync_channel::<Job>(WRITE_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("mediakit-hls-writer".into())
            .spawn(move || {
                for job in queue {
                    if let Err((path, error)) = run_job(job) {
                        tracing::warn!(path = %path.display(), "HLS file: {error}");
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!("cannot start the HLS writer thread: {error}");
        }
        Self { dir, jobs }
    }

    fn stream_dir(&self, key: &StreamKey) -> PathBuf {
        // Stream keys hold no `..`, no control characters and no empty parts (see
        // `StreamKey`), so they are safe as relative paths.
        self.dir.join(key.app()).join(key.stream())
    }

    fn send(&self, job: Job) {
        if let Err(TrySendError::Full(_)) = self.jobs.try_send(job) {
            tracing::warn!("HLS writer behind: a file write was dropped");
        }
    }

    /// Writes new segments and the playlist (after them, so it never names a missing file),
    /// and removes the files of segments no longer kept.
    fn sync(
        &self,
        key: &StreamKey,
        files: &mut Vec<u64>,
        playlist: &Bytes,
        segments: &[(u64, Bytes)],
    ) {
        let dir = self.stream_dir(key);
        for (sequence, bytes) in segments {
            if !files.contains(sequence) {
                let path = dir.join(segment_name(*sequence));
                self.send(Job::Write {
                    path,
                    bytes: bytes.clone(),
                });
                files.push(*sequence);
            }
        }
        self.send(Job::Write {
            path: dir.join("index.m3u8"),
            bytes: playlist.clone(),
        });
        files.retain(|sequence| {
            let kept = segments.iter().any(|(s, _)| s == sequence);
            if !kept {
                self.send(Job::Remove {
                    path: dir.join(segment_name(*sequence)),
                });
            }
            kept
        });
    }

    fn remove_stream(&self, key: &StreamKey) {
        self.send(Job::RemoveDir {
            path: self.stream_dir(key),
        });
    }
}

fn run_job(job: Job) -> Result<(), (PathBuf, std::io::Error)> {
    match job {
        Job::Write { path, bytes } => write_atomically(&path, &bytes).map_err(|e| (path, e)),
        Job::Remove { path } => match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err((path, error)),
            _ => Ok(()),
        },
        Job::RemoveDir { path } => match std::fs::remove_dir_all(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err((path, error)),
            _ => Ok(()),
        },
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
