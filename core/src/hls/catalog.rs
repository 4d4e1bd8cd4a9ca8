//! The server-wide HLS state: every stream's latest playlist and segments, streams whose
//! publisher left (parked for a while so a returning publisher continues them), one byte
//! budget for all of them, the requests waiting for a first playlist, and what each stream's
//! directory on disk should hold.
//!
//! [`HlsCatalog`] is sans-IO: time comes in as [`Millis`], and what the server must do comes
//! out as values (requests to wake, directory states to reach). A server keeps one catalog
//! behind a lock and touches it once per closed segment and once per HTTP request, never per
//! frame: segmenting happens in the publisher's [`HlsPublication`], which the publisher's
//! connection owns.
//!
//! ## Lifecycle of a stream
//!
//! - [`HlsCatalog::start`]: a publisher starts. A stream parked less than
//!   [`CatalogConfig::linger_ms`] ago continues: same segmenter, sequence numbers go on, its
//!   playlist loses `EXT-X-ENDLIST` at once and the next segment comes after
//!   `EXT-X-DISCONTINUITY`. Otherwise the stream starts from sequence 0.
//! - [`HlsPublication::push`] every media item; when it says a segment closed,
//!   [`HlsCatalog::publish`] swaps in a new [`Snapshot`] for HTTP handlers.
//! - [`HlsCatalog::stop`]: the publisher left. Its last partial segment is closed and
//!   published, the playlist ends with `EXT-X-ENDLIST` (so players finish, as RTMP and FLV
//!   players do), and the segmenter is parked, holding only its segments. The snapshot keeps
//!   being served until the stream is forgotten.
//! - [`HlsCatalog::handle_timeout`] at [`HlsCatalog::poll_timeout`]: parked streams whose
//!   linger is over are forgotten, and their directories should go.
//!
//! ## One budget
//!
//! After every [`HlsCatalog::start`], [`HlsCatalog::publish`] and [`HlsCatalog::stop`], the
//! segments of all streams, live and parked, hold at most [`CatalogConfig::max_total_bytes`],
//! except that **every live stream may keep its newest segment** whatever the budget: so the
//! total is at most the budget plus one segment per live stream (each bounded by
//! [`HlsConfig::max_segment_bytes`], their number by the hub's stream limit). To get there,
//! the stream being published (or stopped) first forgets whole parked streams, the one that
//! ended earliest first, exactly as if their linger had ended; then it drops its own oldest
//! segments ([`HlsSegmenter::trim_to`]); a stream being stopped that still does not fit is
//! forgotten itself. Another live stream is never trimmed from here: its segmenter is its
//! publisher's, and it trims itself on its next segment. Segment bytes are shared by a
//! segmenter and the snapshots made from it, and are counted once. Not counted: the segment a
//! live publisher is filling (bounded by `max_segment_bytes` per stream) and playlists.
//! Parked streams are also limited in number ([`CatalogConfig::max_parked`]), so that many
//! tiny ones cannot pile up bookkeeping the byte budget does not see.
//!
//! ## Waiting for a playlist
//!
//! A playlist asked for before the stream's first segment waits
//! ([`HlsCatalog::wait_playlist`]) in the shared [`WaitList`]: the publish that gives the
//! stream its first snapshot returns the waiting requests in [`Published::woken`], and each
//! then asks [`HlsCatalog::poll_playlist`] (also at its deadline at the latest).
//!
//! ## Disk
//!
//! [`Published::disk`] says, per stream, what its directory should hold now
//! ([`DiskState`]): the whole desired state rather than a list of file operations, so a disk
//! writer that falls behind keeps only the newest state per stream and never loses a
//! removal. [`reconcile`] turns the segment files a directory holds and the wanted state into
//! the segments to write and to remove.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem;

use bytes::Bytes;

use super::{HlsConfig, HlsSegmenter};
use crate::key::StreamKey;
use crate::media::Media;
use crate::time::Millis;
use crate::ts::TsError;
use crate::wait::{WaitError, WaitLimits, WaitList, WaitStatus, WaiterId};

/// How streams are segmented, how long a stopped stream lingers, and how much all of them
/// may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogConfig {
    /// How each stream is cut and how much of one stream is kept.
    pub segmenter: HlsConfig,
    /// How long a stream whose publisher stopped keeps serving its playlist (with
    /// `EXT-X-ENDLIST`) and keeps its segmenter for a publisher that returns: one that does
    /// within this time continues the sequence after `EXT-X-DISCONTINUITY`.
    pub linger_ms: u64,
    /// The one budget for the segments of all streams, live and parked (see the module
    /// docs: each live stream may keep its newest segment beyond it).
    pub max_total_bytes: usize,
    /// The most parked streams; beyond it, the one that ended earliest is forgotten.
    pub max_parked: usize,
    /// How many playlist requests may wait for a first segment.
    pub waits: WaitLimits,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            segmenter: HlsConfig::default(),
            linger_ms: 60_000,
            max_total_bytes: 1 << 30,
            max_parked: 4096,
            waits: WaitLimits::default(),
        }
    }
}

/// What an HTTP handler serves for one stream: the playlist and the segments it may name.
/// Shared as `Arc<Snapshot>`; cloning a segment out is a reference-count bump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The playlist (`index.m3u8`).
    pub playlist: Bytes,
    /// Stored segments by sequence number, oldest first, consecutive.
    segments: Vec<(u64, Bytes)>,
    /// Their total size.
    bytes: usize,
}

impl Snapshot {
    /// The segmenter's current playlist and stored segments; `None` before its first
    /// segment closed.
    pub fn of(segmenter: &HlsSegmenter) -> Option<Self> {
        let playlist = segmenter.playlist()?;
        let segments: Vec<(u64, Bytes)> = segmenter
            .segments()
            .map(|segment| (segment.sequence, segment.bytes.clone()))
            .collect();
        Some(Self {
            playlist,
            bytes: segmenter.stored_bytes(),
            segments,
        })
    }

    /// A segment by media sequence number, if still kept.
    pub fn segment(&self, sequence: u64) -> Option<Bytes> {
        let first = self.segments.first()?.0;
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        self.segments
            .get(index)
            .filter(|(s, _)| *s == sequence)
            .map(|(_, bytes)| bytes.clone())
    }

    /// The sequence numbers of the kept segments, oldest first.
    pub fn segment_numbers(&self) -> impl DoubleEndedIterator<Item = u64> + ExactSizeIterator + '_ {
        self.segments.iter().map(|(sequence, _)| *sequence)
    }

    /// The kept segments with their sequence numbers, oldest first.
    pub fn segments(
        &self,
    ) -> impl DoubleEndedIterator<Item = (u64, &Bytes)> + ExactSizeIterator + '_ {
        self.segments
            .iter()
            .map(|(sequence, bytes)| (*sequence, bytes))
    }

    /// The total size of the kept segments.
    pub fn segment_bytes(&self) -> usize {
        self.bytes
    }
}

/// What one stream's directory should hold now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskState {
    /// The playlist and exactly the segments of this snapshot (named by
    /// [`super::segment_name`]).
    Holds(Arc<Snapshot>),
    /// Nothing: the stream was forgotten, its directory should go.
    Gone,
}

/// How to bring a directory to a [`DiskState`], see [`reconcile`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskPlan {
    /// Segments to write, oldest first.
    pub write: Vec<u64>,
    /// Segment files to remove, oldest first.
    pub remove: Vec<u64>,
}

/// What to do to a stream's directory that holds the segment files `held` (in any order,
/// duplicates allowed) so that it matches `wanted`.
///
/// For [`DiskState::Holds`]: write the segments in [`DiskPlan::write`], then the playlist
/// (after them, so it never names a missing file), then remove [`DiskPlan::remove`] (after
/// it, so a player reading the old playlist still finds them). For [`DiskState::Gone`]:
/// everything held is to be removed, then the playlist and the directory itself (and the
/// application's directory if that leaves it empty).
///
/// `held` may come from listing the directory (names read back with
/// [`super::parse_segment_name`]), which also removes segments left by an earlier run.
pub fn reconcile(held: &[u64], wanted: &DiskState) -> DiskPlan {
    let held: BTreeSet<u64> = held.iter().copied().collect();
    match wanted {
        DiskState::Gone => DiskPlan {
            write: Vec::new(),
            remove: held.into_iter().collect(),
        },
        DiskState::Holds(snapshot) => DiskPlan {
            write: snapshot
                .segment_numbers()
                .filter(|sequence| !held.contains(sequence))
                .collect(),
            remove: held
                .into_iter()
                .filter(|sequence| snapshot.segment(*sequence).is_none())
                .collect(),
        },
    }
}

/// What a change of the catalog asks of the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "waiters must be woken and directories updated"]
pub struct Published {
    /// Requests waiting for the stream's playlist, which may find it now: wake each, and it
    /// asks [`HlsCatalog::poll_playlist`].
    pub woken: Vec<WaiterId>,
    /// The streams whose directory should change, with what it should hold now, in the
    /// order the changes happened (a later state of a stream replaces an earlier one).
    pub disk: Vec<(StreamKey, DiskState)>,
}

impl Published {
    fn append(&mut self, other: Published) {
        self.woken.extend(other.woken);
        self.disk.extend(other.disk);
    }
}

/// Why a publication could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Another publication of the stream is live; it keeps it (the hub lets only one
    /// publisher hold a name, so this means the caller skipped a stop).
    #[error("HLS for {key}: already being published")]
    AlreadyPublishing {
        /// The stream.
        key: StreamKey,
    },
}

/// The segmenter of one live stream, owned by its publisher's connection so that frames are
/// segmented with no lock. It belongs to the catalog that started it: give it back with
/// [`HlsCatalog::stop`].
#[derive(Debug)]
pub struct HlsPublication {
    key: StreamKey,
    segmenter: HlsSegmenter,
}

impl HlsPublication {
    /// The stream.
    pub fn key(&self) -> &StreamKey {
        &self.key
    }

    /// Feeds one media item. `Ok(true)` when a segment closed: call
    /// [`HlsCatalog::publish`].
    ///
    /// An error is a frame the TS mapping cannot carry: it is left out of HLS only and the
    /// stream goes on; the caller logs it.
    pub fn push(&mut self, media: &Media) -> Result<bool, TsError> {
        self.segmenter.push(media).map(|closed| closed.is_some())
    }

    /// The segmenter, to look at.
    pub fn segmenter(&self) -> &HlsSegmenter {
        &self.segmenter
    }
}

/// Where a stream is in its lifecycle.
#[derive(Debug)]
enum State {
    /// Its segmenter is in a publisher's [`HlsPublication`].
    Live,
    /// Its publisher stopped; `order` is its key in [`HlsCatalog::parked`].
    Parked {
        /// Boxed: a segmenter is large, and most streams are live.
        segmenter: Box<HlsSegmenter>,
        order: ParkOrder,
    },
}

/// When a stream was parked, and a tie-breaker: parked streams in the order they ended.
type ParkOrder = (Millis, u64);

#[derive(Debug)]
struct Entry {
    /// `None` until the first segment closed.
    snapshot: Option<Arc<Snapshot>>,
    state: State,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.snapshot.as_ref().map_or(0, |s| s.segment_bytes())
    }
}

/// Every stream's HLS state, its lifecycle and its budget (see the module docs).
#[derive(Debug)]
pub struct HlsCatalog {
    config: CatalogConfig,
    streams: BTreeMap<StreamKey, Entry>,
    /// Parked streams, earliest ended first.
    parked: BTreeMap<ParkOrder, StreamKey>,
    next_park: u64,
    /// Segment bytes of all snapshots.
    total_bytes: usize,
    waits: WaitList,
}

impl HlsCatalog {
    /// An empty catalog.
    pub fn new(config: CatalogConfig) -> Self {
        Self {
            waits: WaitList::new(config.waits),
            config,
            streams: BTreeMap::new(),
            parked: BTreeMap::new(),
            next_park: 0,
            total_bytes: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    /// A publisher of `key` starts: its publication, continuing the parked stream of that
    /// name if its linger has not ended at `now` (with a discontinuity; its playlist loses
    /// `EXT-X-ENDLIST` at once), else a new stream. A stream parked past its linger but not
    /// yet forgotten by [`HlsCatalog::handle_timeout`] is forgotten here and reported as
    /// [`DiskState::Gone`].
    pub fn start(
        &mut self,
        key: &StreamKey,
        now: Millis,
    ) -> Result<(HlsPublication, Published), CatalogError> {
        let mut published = Published::default();
        let mut resumed = None;
        if let Some(entry) = self.streams.get_mut(key) {
            match mem::replace(&mut entry.state, State::Live) {
                State::Live => return Err(CatalogError::AlreadyPublishing { key: key.clone() }),
                State::Parked { segmenter, order } => {
                    self.parked.remove(&order);
                    if self.linger_end(order) <= now {
                        self.forget(key);
                        published.disk.push((key.clone(), DiskState::Gone));
                    } else {
                        resumed = Some(segmenter);
                    }
                }
            }
        }
        let publication = match resumed {
            Some(segmenter) => {
                let mut segmenter = *segmenter;
                // Nothing is partial in a parked segmenter (it was finished), so nothing
                // closes here; the playlist is rendered without its end tag.
                let _ = segmenter.restart();
                published.append(self.settle(key, &mut segmenter, false));
                published.woken = self.woken(key);
                HlsPublication {
                    key: key.clone(),
                    segmenter,
                }
            }
            None => {
                self.streams.insert(
                    key.clone(),
                    Entry {
                        snapshot: None,
                        state: State::Live,
                    },
                );
                HlsPublication {
                    key: key.clone(),
                    segmenter: HlsSegmenter::new(self.config.segmenter.clone()),
                }
            }
        };
        Ok((publication, published))
    }

    /// A segment of `publication` closed: swaps in its new snapshot and applies the budget
    /// (see the module docs). Returns the requests to wake (those waiting for this stream's
    /// first playlist) and the directories to update: streams forgotten for the budget, and
    /// this one. A publication this catalog does not hold as live changes nothing.
    pub fn publish(&mut self, publication: &mut HlsPublication) -> Published {
        if !self.is_live(&publication.key) {
            return Published::default();
        }
        let key = publication.key.clone();
        let mut published = self.settle(&key, &mut publication.segmenter, false);
        published.woken = self.woken(&key);
        published
    }

    /// The publisher of `publication` left at `now`: its last partial segment is closed and
    /// published, its playlist ends with `EXT-X-ENDLIST`, and its segmenter is parked for
    /// [`CatalogConfig::linger_ms`], holding only its segments. A stream that never closed a
    /// segment is forgotten at once (it has nothing to serve or continue, and no directory).
    pub fn stop(&mut self, publication: HlsPublication, now: Millis) -> Published {
        let HlsPublication { key, mut segmenter } = publication;
        if !self.is_live(&key) {
            return Published::default();
        }
        let _ = segmenter.finish();
        if segmenter.playlist().is_none() {
            self.forget(&key);
            return Published::default();
        }
        let mut published = self.settle(&key, &mut segmenter, true);
        if let Some(entry) = self.streams.get_mut(&key) {
            let order = (now, self.next_park);
            self.next_park += 1;
            entry.state = State::Parked {
                segmenter: Box::new(segmenter),
                order,
            };
            self.parked.insert(order, key.clone());
            while self.parked.len() > self.config.max_parked {
                let Some(victim) = self.parked.values().next().cloned() else {
                    break;
                };
                self.forget(&victim);
                published.disk.push((victim, DiskState::Gone));
            }
        }
        published.woken = self.woken(&key);
        published
    }

    /// The latest snapshot of `key`: live once its first segment closed, parked until
    /// forgotten.
    pub fn snapshot(&self, key: &StreamKey) -> Option<Arc<Snapshot>> {
        self.streams.get(key)?.snapshot.clone()
    }

    /// Registers a playlist request waiting for the first segment of `key` until
    /// `now + timeout_ms`, which is returned with its id: ask [`HlsCatalog::poll_playlist`]
    /// when woken, and at that deadline at the latest. A stream that has a playlist already
    /// is refused with [`WaitError::AlreadyLive`]: serve it.
    pub fn wait_playlist(
        &mut self,
        key: StreamKey,
        now: Millis,
        timeout_ms: u64,
    ) -> Result<(WaiterId, Millis), WaitError> {
        if self.snapshot(&key).is_some() {
            return Err(WaitError::AlreadyLive { key });
        }
        let deadline = now + timeout_ms;
        self.waits.add(key, deadline).map(|id| (id, deadline))
    }

    /// What waiting request `id` finds at `now`: the stream's snapshot (it stops waiting and
    /// serves the playlist), still pending until a deadline, or expired (it stops waiting:
    /// answer "not found").
    pub fn poll_playlist(&mut self, id: WaiterId, now: Millis) -> WaitStatus<Arc<Snapshot>> {
        let streams = &self.streams;
        self.waits
            .poll(id, now, |key| streams.get(key)?.snapshot.clone())
    }

    /// Stops a request waiting (it went away); false if it was not waiting.
    pub fn cancel_playlist_wait(&mut self, id: WaiterId) -> bool {
        self.waits.cancel(id)
    }

    /// When the earliest linger of a parked stream ends: call
    /// [`HlsCatalog::handle_timeout`] then. Waiting requests have their own deadlines.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.parked
            .keys()
            .next()
            .map(|order| self.linger_end(*order))
    }

    /// Forgets the parked streams whose linger ended by `now`, earliest first, and returns
    /// them: their directories should go ([`DiskState::Gone`]).
    pub fn handle_timeout(&mut self, now: Millis) -> Vec<StreamKey> {
        let mut forgotten = Vec::new();
        while let Some((order, key)) = self.parked.iter().next() {
            if self.linger_end(*order) > now {
                break;
            }
            let key = key.clone();
            self.forget(&key);
            forgotten.push(key);
        }
        forgotten
    }

    /// Bytes of the segments of all streams, live and parked, each counted once.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// How many streams are known, live or parked.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// How many streams are parked.
    pub fn parked_count(&self) -> usize {
        self.parked.len()
    }

    /// How many playlist requests wait.
    pub fn waiter_count(&self) -> usize {
        self.waits.len()
    }

    fn is_live(&self, key: &StreamKey) -> bool {
        matches!(
            self.streams.get(key),
            Some(Entry {
                state: State::Live,
                ..
            })
        )
    }

    fn linger_end(&self, (ended, _): ParkOrder) -> Millis {
        ended + self.config.linger_ms
    }

    /// Takes `key` out of the catalog, with its snapshot and its place among parked streams.
    fn forget(&mut self, key: &StreamKey) {
        if let Some(entry) = self.streams.remove(key) {
            self.total_bytes -= entry.bytes();
            if let State::Parked { order, .. } = entry.state {
                self.parked.remove(&order);
            }
        }
    }

    /// Makes `segmenter`'s state the snapshot of `key`.
    fn set_snapshot(&mut self, key: &StreamKey, segmenter: &HlsSegmenter) {
        if let Some(entry) = self.streams.get_mut(key) {
            self.total_bytes -= entry.bytes();
            entry.snapshot = Snapshot::of(segmenter).map(Arc::new);
            self.total_bytes += entry.bytes();
        }
    }

    /// Publishes `segmenter` (whose stream `key` is live, or being stopped when `stopping`;
    /// never among the parked ones) and brings the total back within the budget, see the
    /// module docs.
    fn settle(
        &mut self,
        key: &StreamKey,
        segmenter: &mut HlsSegmenter,
        stopping: bool,
    ) -> Published {
        let mut published = Published::default();
        self.set_snapshot(key, segmenter);
        let max = self.config.max_total_bytes;
        while self.total_bytes > max {
            let Some(victim) = self.parked.values().next().cloned() else {
                break;
            };
            self.forget(&victim);
            published.disk.push((victim, DiskState::Gone));
        }
        if self.total_bytes > max {
            let own = self.streams.get(key).map_or(0, Entry::bytes);
            let others = self.total_bytes - own;
            if segmenter.trim_to(max.saturating_sub(others)) > 0 {
                self.set_snapshot(key, segmenter);
            }
        }
        if stopping && self.total_bytes > max {
            self.forget(key);
            published.disk.push((key.clone(), DiskState::Gone));
            return published;
        }
        if let Some(snapshot) = self.snapshot(key) {
            published
                .disk
                .push((key.clone(), DiskState::Holds(snapshot)));
        }
        published
    }

    /// The requests waiting for `key`, if it has a playlist to give them.
    fn woken(&self, key: &StreamKey) -> Vec<WaiterId> {
        if self.snapshot(key).is_some() {
            self.waits.waiting_for(key).to_vec()
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
