//! Lifecycle, budget, waiting and disk plans of the catalog, and a property over random
//! operations on several streams.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::hls::tests::{avc, video};

fn key(name: &str) -> StreamKey {
    StreamKey::parse("live", name).unwrap()
}

/// Segments of one keyframe each, cut every second; every segment of `FRAME` bytes has the
/// same size.
fn config(max_total_bytes: usize) -> CatalogConfig {
    CatalogConfig {
        segmenter: HlsConfig {
            target_duration_ms: 1_000,
            window: 3,
            extra_segments: 20,
            ..HlsConfig::default()
        },
        linger_ms: 5_000,
        max_total_bytes,
        max_parked: 8,
        waits: WaitLimits::default(),
    }
}

const FRAME: usize = 1_000;

/// A live publication and its media clock.
struct Publisher {
    publication: HlsPublication,
    dts: i64,
}

impl Publisher {
    fn start(catalog: &mut HlsCatalog, name: &str, now: u64) -> (Self, Published) {
        let (mut publication, published) = catalog.start(&key(name), Millis(now)).unwrap();
        assert!(!publication.push(&avc()).unwrap());
        (
            Self {
                publication,
                dts: 0,
            },
            published,
        )
    }

    /// Pushes `frames` keyframes a second apart, publishing each closed segment; the first
    /// frame of a publisher only opens a segment.
    fn frames(&mut self, catalog: &mut HlsCatalog, frames: usize) -> Published {
        let mut published = Published::default();
        for _ in 0..frames {
            let closed = self
                .publication
                .push(&Media::Frame(video(self.dts, true, FRAME)))
                .unwrap();
            self.dts += 1_000;
            if closed {
                published.append(catalog.publish(&mut self.publication));
            }
        }
        published
    }

    fn stop(self, catalog: &mut HlsCatalog, now: u64) -> Published {
        catalog.stop(self.publication, Millis(now))
    }
}

fn text(bytes: &Bytes) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn numbers(catalog: &HlsCatalog, name: &str) -> Vec<u64> {
    catalog
        .snapshot(&key(name))
        .map(|s| s.segment_numbers().collect())
        .unwrap_or_default()
}

fn gone(published: &Published) -> Vec<StreamKey> {
    published
        .disk
        .iter()
        .filter(|(_, state)| *state == DiskState::Gone)
        .map(|(key, _)| key.clone())
        .collect()
}

/// The size of every segment of `FRAME` bytes.
fn segment_size() -> usize {
    let mut catalog = HlsCatalog::new(config(usize::MAX));
    let (mut a, _) = Publisher::start(&mut catalog, "a", 0);
    let _ = a.frames(&mut catalog, 2);
    catalog.total_bytes()
}

#[test]
fn a_stream_is_published_served_and_ends() {
    let mut catalog = HlsCatalog::new(config(usize::MAX));
    let (mut a, published) = Publisher::start(&mut catalog, "a", 0);
    assert_eq!(published, Published::default());
    assert_eq!(a.publication.key(), &key("a"));
    assert!(catalog.snapshot(&key("a")).is_none());
    assert_eq!(catalog.stream_count(), 1);

    assert_eq!(a.frames(&mut catalog, 1), Published::default());
    let published = a.frames(&mut catalog, 1);
    let snapshot = catalog.snapshot(&key("a")).unwrap();
    assert_eq!(
        published.disk,
        [(key("a"), DiskState::Holds(Arc::clone(&snapshot)))]
    );
    assert!(published.woken.is_empty());
    assert!(!text(&snapshot.playlist).contains("ENDLIST"));
    assert_eq!(snapshot.segment_numbers().collect::<Vec<_>>(), [0]);
    let segment = a.publication.segmenter().segment(0).unwrap();
    assert_eq!(snapshot.segment(0), Some(segment.bytes.clone()));
    assert_eq!(snapshot.segment(1), None);
    assert_eq!(catalog.total_bytes(), segment.bytes.len());

    // The last partial segment is served after the stop, and the playlist ends.
    let published = a.stop(&mut catalog, 100);
    let snapshot = catalog.snapshot(&key("a")).unwrap();
    assert_eq!(
        published.disk,
        [(key("a"), DiskState::Holds(Arc::clone(&snapshot)))]
    );
    assert!(text(&snapshot.playlist).ends_with("#EXT-X-ENDLIST\n"));
    assert_eq!(snapshot.segment_numbers().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(catalog.total_bytes(), snapshot.segment_bytes());
    assert_eq!((catalog.stream_count(), catalog.parked_count()), (1, 1));
}

#[test]
fn a_publisher_returning_within_the_linger_continues_after_a_discontinuity() {
    let mut catalog = HlsCatalog::new(config(usize::MAX));
    let (mut a, _) = Publisher::start(&mut catalog, "a", 0);
    let _ = a.frames(&mut catalog, 3);
    let _ = a.stop(&mut catalog, 1_000);
    assert_eq!(numbers(&catalog, "a"), [0, 1, 2]);

    let (mut a, published) = Publisher::start(&mut catalog, "a", 5_999);
    let snapshot = catalog.snapshot(&key("a")).unwrap();
    assert_eq!(
        published.disk,
        [(key("a"), DiskState::Holds(Arc::clone(&snapshot)))]
    );
    assert!(!text(&snapshot.playlist).contains("ENDLIST"));
    assert_eq!(catalog.parked_count(), 0);
    assert_eq!(catalog.poll_timeout(), None);
    // A new publisher's timestamps start over; sequence numbers go on.
    let _ = a.frames(&mut catalog, 2);
    assert_eq!(numbers(&catalog, "a"), [0, 1, 2, 3]);
    let playlist = text(&catalog.snapshot(&key("a")).unwrap().playlist);
    assert!(
        playlist.contains("#EXT-X-DISCONTINUITY\n#EXTINF:1.000,\n3.ts\n"),
        "{playlist}"
    );
    assert!(matches!(
        catalog.start(&key("a"), Millis(6_000)),
        Err(CatalogError::AlreadyPublishing { .. })
    ));
}

#[test]
fn a_parked_stream_is_forgotten_once_its_linger_ends() {
    let mut catalog = HlsCatalog::new(config(usize::MAX));
    for (name, stopped) in [("a", 1_000), ("b", 2_000)] {
        let (mut publisher, _) = Publisher::start(&mut catalog, name, 0);
        let _ = publisher.frames(&mut catalog, 2);
        let _ = publisher.stop(&mut catalog, stopped);
    }
    assert_eq!(catalog.poll_timeout(), Some(Millis(6_000)));
    assert!(catalog.handle_timeout(Millis(5_999)).is_empty());
    assert_eq!(catalog.handle_timeout(Millis(6_000)), [key("a")]);
    assert!(catalog.snapshot(&key("a")).is_none());
    assert!(catalog.handle_timeout(Millis(6_000)).is_empty());
    assert_eq!(catalog.poll_timeout(), Some(Millis(7_000)));
    assert_eq!(catalog.handle_timeout(Millis(60_000)), [key("b")]);
    assert_eq!(catalog.poll_timeout(), None);
    assert_eq!((catalog.stream_count(), catalog.total_bytes()), (0, 0));

    // A publisher that comes back after the linger, before the timeout was handled, starts a
    // new stream and the old one's directory goes.
    let (mut c, _) = Publisher::start(&mut catalog, "c", 0);
    let _ = c.frames(&mut catalog, 3);
    let _ = c.stop(&mut catalog, 1_000);
    let (mut c, published) = Publisher::start(&mut catalog, "c", 6_000);
    assert_eq!(published.disk, [(key("c"), DiskState::Gone)]);
    assert!(catalog.snapshot(&key("c")).is_none());
    assert_eq!((catalog.total_bytes(), catalog.parked_count()), (0, 0));
    let _ = c.frames(&mut catalog, 2);
    assert_eq!(numbers(&catalog, "c"), [0]);
    assert!(catalog.handle_timeout(Millis(60_000)).is_empty());
}

#[test]
fn a_stream_that_never_closed_a_segment_is_forgotten_at_its_stop() {
    let mut catalog = HlsCatalog::new(config(usize::MAX));
    let (a, _) = Publisher::start(&mut catalog, "a", 0);
    assert_eq!(a.stop(&mut catalog, 10), Published::default());
    assert_eq!((catalog.stream_count(), catalog.parked_count()), (0, 0));
    assert_eq!(catalog.poll_timeout(), None);
}

#[test]
fn the_budget_forgets_parked_streams_earliest_first_then_trims_the_publisher() {
    let size = segment_size();
    let mut catalog = HlsCatalog::new(config(8 * size));
    // a and b end with three segments each, a first.
    for (name, stopped) in [("a", 100), ("b", 200)] {
        let (mut publisher, _) = Publisher::start(&mut catalog, name, 0);
        let _ = publisher.frames(&mut catalog, 3);
        let _ = publisher.stop(&mut catalog, stopped);
    }
    assert_eq!(catalog.total_bytes(), 6 * size);
    let (mut c, _) = Publisher::start(&mut catalog, "c", 300);
    let published = c.frames(&mut catalog, 3);
    assert!(gone(&published).is_empty());
    assert_eq!(catalog.total_bytes(), 8 * size);
    // The third segment of c is one too many: a goes, whole.
    let published = c.frames(&mut catalog, 1);
    assert_eq!(gone(&published), [key("a")]);
    assert_eq!(published.disk.len(), 2);
    assert!(catalog.snapshot(&key("a")).is_none());
    assert_eq!(catalog.total_bytes(), 6 * size);
    assert_eq!(catalog.poll_timeout(), Some(Millis(5_200)));
    // Then b.
    let published = c.frames(&mut catalog, 3);
    assert_eq!(gone(&published), [key("b")]);
    assert_eq!(
        (catalog.total_bytes(), catalog.parked_count()),
        (6 * size, 0)
    );
    // Then c's own oldest segments.
    let published = c.frames(&mut catalog, 3);
    assert!(gone(&published).is_empty());
    assert_eq!(numbers(&catalog, "c"), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(catalog.total_bytes(), 8 * size);
    let snapshot = catalog.snapshot(&key("c")).unwrap();
    assert_eq!(
        published.disk.last(),
        Some(&(key("c"), DiskState::Holds(Arc::clone(&snapshot))))
    );
    let playlist = text(&snapshot.playlist);
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:6\n"), "{playlist}");
    // Segments are shared by the segmenter and the snapshot, and counted once.
    assert_eq!(
        c.publication.segmenter().stored_bytes(),
        catalog.total_bytes()
    );
}

#[test]
fn every_live_stream_keeps_its_newest_segment() {
    let size = segment_size();
    let mut catalog = HlsCatalog::new(config(size / 2));
    let (mut a, _) = Publisher::start(&mut catalog, "a", 0);
    let (mut b, _) = Publisher::start(&mut catalog, "b", 0);
    let _ = a.frames(&mut catalog, 4);
    let _ = b.frames(&mut catalog, 4);
    assert_eq!(numbers(&catalog, "a"), [2]);
    assert_eq!(numbers(&catalog, "b"), [2]);
    assert_eq!(catalog.total_bytes(), 2 * size);
    // A stopping stream is not live: it does not fit, and is forgotten.
    let published = a.stop(&mut catalog, 10);
    assert_eq!(published.disk, [(key("a"), DiskState::Gone)]);
    assert!(catalog.snapshot(&key("a")).is_none());
    assert_eq!((catalog.total_bytes(), catalog.stream_count()), (size, 1));
    assert_eq!(catalog.parked_count(), 0);
}

#[test]
fn a_stopping_stream_trims_itself_before_it_is_forgotten() {
    let size = segment_size();
    let mut catalog = HlsCatalog::new(config(4 * size));
    let (mut a, _) = Publisher::start(&mut catalog, "a", 0);
    let (mut b, _) = Publisher::start(&mut catalog, "b", 0);
    let _ = a.frames(&mut catalog, 4);
    let _ = b.frames(&mut catalog, 2);
    assert_eq!(catalog.total_bytes(), 4 * size);
    // a's last partial segment is one too many: its oldest goes, and a stays parked.
    let published = a.stop(&mut catalog, 10);
    assert!(gone(&published).is_empty());
    assert_eq!(numbers(&catalog, "a"), [1, 2, 3]);
    assert_eq!(catalog.total_bytes(), 4 * size);
    assert_eq!(catalog.parked_count(), 1);
    let playlist = text(&catalog.snapshot(&key("a")).unwrap().playlist);
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
}

#[test]
fn too_many_parked_streams_forget_the_earliest() {
    let mut catalog = HlsCatalog::new(CatalogConfig {
        max_parked: 2,
        ..config(usize::MAX)
    });
    let mut forgotten = Vec::new();
    for (index, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let (mut publisher, _) = Publisher::start(&mut catalog, name, 0);
        let _ = publisher.frames(&mut catalog, 2);
        forgotten.extend(gone(&publisher.stop(&mut catalog, index as u64)));
    }
    assert_eq!(forgotten, [key("a"), key("b")]);
    assert_eq!(catalog.parked_count(), 2);
    assert_eq!(catalog.poll_timeout(), Some(Millis(5_002)));
}

#[test]
fn playlist_waiters_are_woken_by_the_first_segment() {
    let mut catalog = HlsCatalog::new(config(usize::MAX));
    let (mut a, _) = Publisher::start(&mut catalog, "a", 0);
    let (w1, deadline) = catalog.wait_playlist(key("a"), Millis(10), 5_000).unwrap();
    assert_eq!(deadline, Millis(5_010));
    let (w2, _) = catalog.wait_playlist(key("b"), Millis(10), 5_000).unwrap();
    let (w3, _) = catalog.wait_playlist(key("a"), Millis(10), 5_000).unwrap();
    assert_eq!(
        catalog.poll_playlist(w1, Millis(20)),
        WaitStatus::Pending { deadline }
    );
    assert!(catalog.cancel_playlist_wait(w3));
    assert_eq!(a.frames(&mut catalog, 1).woken, []);
    let published = a.frames(&mut catalog, 1);
    assert_eq!(published.woken, [w1]);
    let snapshot = catalog.snapshot(&key("a")).unwrap();
    assert_eq!(
        catalog.poll_playlist(w1, Millis(30)),
        WaitStatus::Ready(snapshot)
    );
    assert_eq!(catalog.poll_playlist(w1, Millis(30)), WaitStatus::Unknown);
    assert!(matches!(
        catalog.wait_playlist(key("a"), Millis(30), 5_000),
        Err(WaitError::AlreadyLive { .. })
    ));
    assert_eq!(
        catalog.poll_playlist(w2, Millis(5_010)),
        WaitStatus::Expired { key: key("b") }
    );
    assert_eq!(catalog.waiter_count(), 0);

    // A stream whose only segment comes at its stop wakes its waiters then.
    let (mut c, _) = Publisher::start(&mut catalog, "c", 0);
    let _ = c.frames(&mut catalog, 1);
    let (w4, _) = catalog.wait_playlist(key("c"), Millis(40), 5_000).unwrap();
    let published = c.stop(&mut catalog, 50);
    assert_eq!(published.woken, [w4]);
    match catalog.poll_playlist(w4, Millis(60)) {
        WaitStatus::Ready(snapshot) => {
            assert!(text(&snapshot.playlist).ends_with("#EXT-X-ENDLIST\n"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_wait_limits_hold() {
    let mut catalog = HlsCatalog::new(CatalogConfig {
        waits: WaitLimits {
            max_per_key: 1,
            max_total: 2,
        },
        ..config(usize::MAX)
    });
    catalog.wait_playlist(key("a"), Millis(0), 10).unwrap();
    assert!(matches!(
        catalog.wait_playlist(key("a"), Millis(0), 10),
        Err(WaitError::TooManyForKey { max: 1, .. })
    ));
    catalog.wait_playlist(key("b"), Millis(0), 10).unwrap();
    assert!(matches!(
        catalog.wait_playlist(key("c"), Millis(0), 10),
        Err(WaitError::TooMany { max: 2, .. })
    ));
}

#[test]
fn a_publication_the_catalog_does_not_hold_changes_nothing() {
    let mut catalog = HlsCatalog::new(config(usize::MAX));
    let mut other = HlsCatalog::new(config(usize::MAX));
    let (mut a, _) = Publisher::start(&mut other, "a", 0);
    let _ = a.frames(&mut other, 3);
    assert_eq!(catalog.publish(&mut a.publication), Published::default());
    assert_eq!(a.stop(&mut catalog, 0), Published::default());
    assert_eq!(catalog.stream_count(), 0);
}

fn snapshot(numbers: &[u64]) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        playlist: Bytes::from_static(b"#EXTM3U\n"),
        segments: numbers
            .iter()
            .map(|n| (*n, Bytes::from(vec![0; 188])))
            .collect(),
        bytes: numbers.len() * 188,
    })
}

#[test]
fn reconcile_writes_what_is_missing_and_removes_what_left() {
    let wanted = DiskState::Holds(snapshot(&[3, 4, 5]));
    assert_eq!(
        reconcile(&[9, 1, 3, 3, 4], &wanted),
        DiskPlan {
            write: vec![5],
            remove: vec![1, 9],
        }
    );
    assert_eq!(
        reconcile(&[], &wanted),
        DiskPlan {
            write: vec![3, 4, 5],
            remove: vec![],
        }
    );
    assert_eq!(reconcile(&[5, 4, 3], &wanted), DiskPlan::default());
    assert_eq!(
        reconcile(&[2, 1, 2], &DiskState::Gone),
        DiskPlan {
            write: vec![],
            remove: vec![1, 2],
        }
    );
    assert_eq!(reconcile(&[], &DiskState::Gone), DiskPlan::default());
}

#[test]
fn snapshot_lookup_by_sequence() {
    let snapshot = snapshot(&[7, 8, 9]);
    assert!(snapshot.segment(7).is_some() && snapshot.segment(9).is_some());
    for missing in [0, 6, 10, u64::MAX] {
        assert_eq!(snapshot.segment(missing), None);
    }
    assert_eq!(
        snapshot.segments().map(|(n, _)| n).collect::<Vec<_>>(),
        [7, 8, 9]
    );
    assert_eq!(snapshot.segment_bytes(), 3 * 188);
    let empty = Snapshot {
        playlist: Bytes::new(),
        segments: Vec::new(),
        bytes: 0,
    };
    assert_eq!(empty.segment(0), None);
}

proptest! {
    /// Any sequence of lock-ups to `held` and the wanted state gives a directory holding
    /// exactly the wanted segments.
    #[test]
    fn reconciling_reaches_the_wanted_state(
        held in prop::collection::vec(0u64..20, 0..12),
        first in 0u64..15,
        count in 0usize..6,
        gone in any::<bool>(),
    ) {
        let wanted_numbers: Vec<u64> = (first..first + count as u64).collect();
        let wanted = if gone { DiskState::Gone } else { DiskState::Holds(snapshot(&wanted_numbers)) };
        let plan = reconcile(&held, &wanted);
        let mut dir: BTreeSet<u64> = held.iter().copied().collect();
        for n in &plan.write {
            prop_assert!(dir.insert(*n), "writes only what is missing");
        }
        for n in &plan.remove {
            prop_assert!(dir.remove(n), "removes only what is there");
        }
        let expected: BTreeSet<u64> = if gone { BTreeSet::new() } else { wanted_numbers.into_iter().collect() };
        prop_assert_eq!(dir, expected);
        prop_assert!(plan.write.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(plan.remove.windows(2).all(|w| w[0] < w[1]));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Start(u8),
    /// To a stream, this many keyframes of this many bytes, a second apart.
    Frames(u8, usize, usize),
    Stop(u8),
    Advance(u64),
    Timeout,
    Wait(u8, u64),
    Poll(usize),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..3).prop_map(Op::Start),
        4 => (0u8..3, 1usize..4, 1usize..4_000).prop_map(|(k, n, s)| Op::Frames(k, n, s)),
        2 => (0u8..3).prop_map(Op::Stop),
        3 => prop_oneof![Just(0u64), Just(1_000), 0u64..2_000].prop_map(Op::Advance),
        2 => Just(Op::Timeout),
        2 => (0u8..3, 0u64..3_000).prop_map(|(k, t)| Op::Wait(k, t)),
        2 => any::<usize>().prop_map(Op::Poll),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

/// The model's view of the catalog.
#[derive(Default)]
struct Model {
    live: BTreeMap<u8, Publisher>,
    /// When each parked stream stopped, and how many stops came before.
    parked: BTreeMap<u8, (u64, u64)>,
    stops: u64,
    /// The sequence number the next segment of a stream must have after a start.
    first_sequence: BTreeMap<u8, u64>,
    /// Waiting requests: stream and deadline.
    waiters: BTreeMap<WaiterId, (u8, u64)>,
    issued: Vec<WaiterId>,
    woken: BTreeSet<WaiterId>,
    answered: BTreeSet<WaiterId>,
    cancelled: BTreeSet<WaiterId>,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

fn index(key: &StreamKey) -> u8 {
    NAMES.iter().position(|n| *n == key.stream()).unwrap() as u8
}

impl Model {
    /// Checks what a change asks of the server: woken requests wait for a stream that now
    /// has a playlist, every stream forgotten was parked (a stopping one is, by then) and is
    /// forgotten once, and the last state of each stream is its snapshot.
    fn absorb(&mut self, catalog: &HlsCatalog, published: &Published) -> Result<(), TestCaseError> {
        for id in &published.woken {
            let (k, _) = self.waiters.get(id).copied().unwrap();
            prop_assert!(catalog.snapshot(&key(NAMES[usize::from(k)])).is_some());
            self.woken.insert(*id);
        }
        for (position, (stream, state)) in published.disk.iter().enumerate() {
            let k = index(stream);
            let last = published.disk.iter().rposition(|(s, _)| s == stream) == Some(position);
            match state {
                DiskState::Gone => {
                    prop_assert!(
                        !self.live.contains_key(&k),
                        "a live stream is never forgotten"
                    );
                    prop_assert!(self.parked.contains_key(&k), "forgotten once: {}", stream);
                    prop_assert_eq!(
                        Some(k),
                        self.earliest_parked(),
                        "the earliest ended goes first"
                    );
                    self.parked.remove(&k);
                    self.first_sequence.remove(&k);
                }
                DiskState::Holds(snapshot) if last => {
                    prop_assert_eq!(Some(snapshot.clone()), catalog.snapshot(stream));
                }
                DiskState::Holds(_) => {}
            }
        }
        Ok(())
    }

    fn earliest_parked(&self) -> Option<u8> {
        self.parked
            .iter()
            .min_by_key(|(_, order)| **order)
            .map(|(k, _)| *k)
    }

    fn check(&self, catalog: &HlsCatalog, max: usize) -> Result<(), TestCaseError> {
        let mut total = 0;
        let mut allowance = 0;
        for (k, name) in NAMES.iter().enumerate() {
            let k = k as u8;
            let snapshot = catalog.snapshot(&key(name));
            if let Some(snapshot) = &snapshot {
                total += snapshot.segment_bytes();
                prop_assert_eq!(
                    snapshot.segment_bytes(),
                    snapshot.segments().map(|(_, b)| b.len()).sum::<usize>()
                );
                prop_assert!(snapshot.segment_numbers().count() >= 1);
                if self.live.contains_key(&k) {
                    allowance += snapshot.segments().last().map_or(0, |(_, b)| b.len());
                }
            }
            if let Some(publisher) = self.live.get(&k) {
                let stored = publisher.publication.segmenter().stored_bytes();
                prop_assert_eq!(stored, snapshot.as_ref().map_or(0, |s| s.segment_bytes()));
            }
            if self.parked.contains_key(&k) {
                let playlist = snapshot.as_ref().map(|s| text(&s.playlist)).unwrap();
                prop_assert!(playlist.ends_with("#EXT-X-ENDLIST\n"));
            }
            if !self.live.contains_key(&k) && !self.parked.contains_key(&k) {
                prop_assert!(snapshot.is_none());
            }
        }
        prop_assert_eq!(catalog.total_bytes(), total);
        prop_assert!(
            total <= max.saturating_add(allowance),
            "{} > {} + {}",
            total,
            max,
            allowance
        );
        prop_assert_eq!(catalog.stream_count(), self.live.len() + self.parked.len());
        prop_assert_eq!(catalog.parked_count(), self.parked.len());
        prop_assert_eq!(catalog.waiter_count(), self.waiters.len());
        // No lost wake-up: whoever waits for a stream that has a playlist was told.
        for (id, (k, _)) in &self.waiters {
            if catalog.snapshot(&key(NAMES[usize::from(*k)])).is_some() {
                prop_assert!(self.woken.contains(id));
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random starts, segments, stops, time and waits on three streams: the budget holds
    /// (within one newest segment per live stream), the byte count is the snapshots',
    /// sequences continue across a restart within the linger, parked streams are forgotten
    /// exactly once (and after their linger by the timeout), and every waiter gets exactly
    /// one final answer.
    #[test]
    fn the_catalog_matches_its_model(
        ops in prop::collection::vec(op(), 1..120),
        max in 1_000usize..20_000,
        linger in prop_oneof![Just(0u64), Just(1_000), 0u64..4_000],
        max_parked in 0usize..4,
        extra in 0usize..4,
    ) {
        let mut catalog = HlsCatalog::new(CatalogConfig {
            segmenter: HlsConfig {
                target_duration_ms: 1_000,
                window: 2,
                extra_segments: extra,
                ..HlsConfig::default()
            },
            linger_ms: linger,
            max_total_bytes: max,
            max_parked,
            waits: WaitLimits { max_per_key: 3, max_total: 5 },
        });
        let mut model = Model::default();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Start(k) => {
                    let stream = key(NAMES[usize::from(k)]);
                    let result = catalog.start(&stream, Millis(now));
                    if model.live.contains_key(&k) {
                        let refused = matches!(result, Err(CatalogError::AlreadyPublishing { .. }));
                        prop_assert!(refused);
                        continue;
                    }
                    let (mut publication, mut published) = result.unwrap();
                    let parked = model.parked.get(&k).copied();
                    let expired = parked.is_some_and(|(ended, _)| ended + linger <= now);
                    prop_assert_eq!(
                        published.disk.first() == Some(&(stream.clone(), DiskState::Gone)),
                        expired
                    );
                    if expired {
                        // Forgotten for its linger, not for the budget: not in budget order.
                        published.disk.remove(0);
                        model.parked.remove(&k);
                    }
                    let resumed = parked.is_some() && !expired;
                    let next = if resumed {
                        let snapshot = catalog.snapshot(&stream).unwrap();
                        prop_assert!(!text(&snapshot.playlist).contains("ENDLIST"));
                        snapshot.segment_numbers().last().unwrap() + 1
                    } else {
                        0
                    };
                    model.absorb(&catalog, &published)?;
                    model.parked.remove(&k);
                    model.first_sequence.insert(k, next);
                    publication.push(&avc()).unwrap();
                    model.live.insert(k, Publisher { publication, dts: 0 });
                }
                Op::Frames(k, n, size) => {
                    let stream = key(NAMES[usize::from(k)]);
                    for _ in 0..n {
                        let Some(mut publisher) = model.live.remove(&k) else { break };
                        let frame = video(publisher.dts, true, size);
                        publisher.dts += 1_000;
                        let closed = publisher.publication.push(&Media::Frame(frame)).unwrap();
                        let own = |p: &Publisher| -> Vec<u64> {
                            p.publication.segmenter().segments().map(|s| s.sequence).collect()
                        };
                        let before = own(&publisher);
                        let published = closed.then(|| catalog.publish(&mut publisher.publication));
                        let trimmed = own(&publisher) != before;
                        let newest = publisher.publication.segmenter().segments().last().map(|s| s.sequence);
                        model.live.insert(k, publisher);
                        let Some(published) = published else { continue };
                        if let Some(first) = model.first_sequence.remove(&k) {
                            prop_assert_eq!(newest, Some(first), "sequence numbers go on after a restart");
                            let listed = text(&catalog.snapshot(&stream).unwrap().playlist);
                            prop_assert_eq!(listed.contains("#EXT-X-DISCONTINUITY\n"), first > 0);
                        }
                        let held = catalog.snapshot(&stream).map(|s| (stream.clone(), DiskState::Holds(s)));
                        prop_assert_eq!(published.disk.last(), held.as_ref());
                        model.absorb(&catalog, &published)?;
                        // A live stream trims itself only once no parked stream is left.
                        prop_assert!(!trimmed || model.parked.is_empty());
                        model.check(&catalog, max)?;
                    }
                }
                Op::Stop(k) => {
                    let Some(publisher) = model.live.remove(&k) else { continue };
                    let had_segment = publisher.publication.segmenter().playlist().is_some()
                        || publisher.publication.segmenter().partial_bytes() > 0;
                    let published = publisher.stop(&mut catalog, now);
                    model.parked.insert(k, (now, model.stops));
                    model.stops += 1;
                    model.absorb(&catalog, &published)?;
                    let stream = key(NAMES[usize::from(k)]);
                    if catalog.snapshot(&stream).is_none() {
                        // Forgotten at its stop: for the budget, for the parked limit, or
                        // for never having closed a segment.
                        prop_assert_eq!(
                            published.disk.contains(&(stream.clone(), DiskState::Gone)),
                            had_segment
                        );
                        model.parked.remove(&k);
                    }
                    model.first_sequence.remove(&k);
                }
                Op::Advance(ms) => now += ms,
                Op::Timeout => {
                    let forgotten = catalog.handle_timeout(Millis(now));
                    let mut due: Vec<(u64, u64, u8)> = model.parked.iter()
                        .filter(|(_, (ended, _))| ended + linger <= now)
                        .map(|(k, (ended, order))| (*ended, *order, *k))
                        .collect();
                    due.sort_unstable();
                    let due: Vec<u8> = due.into_iter().map(|(_, _, k)| k).collect();
                    let reported: Vec<u8> = forgotten.iter().map(index).collect();
                    prop_assert_eq!(&reported, &due, "due streams, earliest first");
                    for k in due {
                        model.parked.remove(&k);
                    }
                    let next = model.parked.values().map(|(ended, _)| Millis(ended + linger)).min();
                    prop_assert_eq!(catalog.poll_timeout(), next);
                }
                Op::Wait(k, timeout) => {
                    let stream = key(NAMES[usize::from(k)]);
                    let has = catalog.snapshot(&stream).is_some();
                    let for_key = model.waiters.values().filter(|(wk, _)| *wk == k).count();
                    match catalog.wait_playlist(stream, Millis(now), timeout) {
                        Ok((id, deadline)) => {
                            prop_assert!(!has && for_key < 3 && model.waiters.len() < 5);
                            prop_assert_eq!(deadline, Millis(now + timeout));
                            model.waiters.insert(id, (k, now + timeout));
                            model.issued.push(id);
                        }
                        Err(WaitError::AlreadyLive { .. }) => prop_assert!(has),
                        Err(_) => prop_assert!(for_key >= 3 || model.waiters.len() >= 5),
                    }
                }
                Op::Poll(i) => {
                    let Some(&id) = model.issued.get(i % model.issued.len().max(1)) else { continue };
                    poll(&mut catalog, &mut model, id, now)?;
                }
                Op::Cancel(i) => {
                    let Some(&id) = model.issued.get(i % model.issued.len().max(1)) else { continue };
                    let waiting = model.waiters.remove(&id).is_some();
                    prop_assert_eq!(catalog.cancel_playlist_wait(id), waiting);
                    if waiting {
                        model.cancelled.insert(id);
                    }
                }
            }
            model.check(&catalog, max)?;
        }
        // In the end every parked stream is forgotten by the timeout, and every waiter is
        // answered.
        now += linger + 10_000;
        let forgotten: BTreeSet<u8> = catalog.handle_timeout(Millis(now)).iter().map(index).collect();
        prop_assert_eq!(forgotten, model.parked.keys().copied().collect::<BTreeSet<u8>>());
        model.parked.clear();
        prop_assert_eq!(catalog.parked_count(), 0);
        for id in model.issued.clone() {
            poll(&mut catalog, &mut model, id, now)?;
        }
        prop_assert_eq!(catalog.waiter_count(), 0);
        prop_assert_eq!(model.answered.len() + model.cancelled.len(), model.issued.len());
    }
}

/// Polls waiter `id` and checks the answer against the model.
fn poll(
    catalog: &mut HlsCatalog,
    model: &mut Model,
    id: WaiterId,
    now: u64,
) -> Result<(), TestCaseError> {
    let status = catalog.poll_playlist(id, Millis(now));
    match model.waiters.get(&id).copied() {
        None => prop_assert_eq!(status, WaitStatus::Unknown),
        Some((k, deadline)) => {
            let stream = key(NAMES[usize::from(k)]);
            match catalog.snapshot(&stream) {
                Some(snapshot) => prop_assert_eq!(status, WaitStatus::Ready(snapshot)),
                None if now >= deadline => {
                    prop_assert_eq!(status, WaitStatus::Expired { key: stream })
                }
                None => {
                    prop_assert_eq!(
                        status,
                        WaitStatus::Pending {
                            deadline: Millis(deadline)
                        }
                    );
                    return Ok(());
                }
            }
            model.waiters.remove(&id);
            prop_assert!(model.answered.insert(id), "answered once");
        }
    }
    Ok(())
}
