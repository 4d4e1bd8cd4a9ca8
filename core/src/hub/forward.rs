//! At a stream's origin worker: which other workers get each media item, and when a worker
//! that fell behind is resynced with a fresh GOP snapshot.
//!
//! A frame crosses threads once per worker that has players of the stream, through that
//! worker's bounded inbox. When an inbox is full the item is lost for that worker, and the
//! items after it would not decode; so the worker gets nothing more until the next point a
//! player could start from, and then the whole GOP snapshot instead of the lone item. The
//! engine does the sending; this module decides what each worker gets.

use alloc::vec::Vec;

use super::gop::GopCache;
use crate::media::{Media, MediaKind};

/// What to send one remote worker for the item just pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// The item itself.
    Media,
    /// The GOP cache's snapshot (configurations, metadata, the frames since the keyframe),
    /// which ends with the item just pushed.
    Snapshot,
}

/// What the engine's send to one remote worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardOutcome {
    /// It is in the remote's inbox.
    Delivered,
    /// The remote's inbox was full: nothing was sent.
    Lagging,
    /// The remote is gone (its worker stopped).
    Closed,
}

/// One remote worker of the stream.
#[derive(Debug, Clone)]
struct Remote<T> {
    target: T,
    /// Lost an item (or never had its first snapshot): gets nothing until a resync point,
    /// then a snapshot.
    needs_snapshot: bool,
}

/// The remote workers one origin forwards a stream to, and which of them need a snapshot.
///
/// `T` names a remote worker (its index, typically).
#[derive(Debug, Clone)]
pub struct Forwarder<T> {
    remotes: Vec<Remote<T>>,
}

impl<T: Copy + Eq> Forwarder<T> {
    /// No remotes.
    pub fn new() -> Self {
        Self {
            remotes: Vec::new(),
        }
    }

    /// Worker `target` subscribes. The engine has tried to send it a snapshot at once and
    /// reports how that went: delivered, it gets every item from now on; lagging, it gets a
    /// snapshot at the next resync point; closed, it is not added. A worker that was already
    /// subscribed starts over.
    pub fn subscribe(&mut self, target: T, snapshot_outcome: ForwardOutcome) {
        self.unsubscribe(target);
        let needs_snapshot = match snapshot_outcome {
            ForwardOutcome::Delivered => false,
            ForwardOutcome::Lagging => true,
            ForwardOutcome::Closed => return,
        };
        self.remotes.push(Remote {
            target,
            needs_snapshot,
        });
    }

    /// Worker `target` has no players left.
    pub fn unsubscribe(&mut self, target: T) {
        self.remotes.retain(|remote| remote.target != target);
    }

    /// True if no worker is subscribed.
    pub fn is_empty(&self) -> bool {
        self.remotes.is_empty()
    }

    /// How many workers are subscribed.
    pub fn len(&self) -> usize {
        self.remotes.len()
    }

    /// The subscribed workers, in the order they subscribed (to tell them the stream ended).
    pub fn targets(&self) -> impl Iterator<Item = T> + '_ {
        self.remotes.iter().map(|remote| remote.target)
    }

    /// For one item just pushed to the origin's `gop`: calls `send` for each remote that gets
    /// something now, and applies what it reports.
    ///
    /// A remote in step gets [`Forward::Media`]; one that needs a snapshot gets
    /// [`Forward::Snapshot`] if `media` is a resync point (see [`is_resync_point`]) and
    /// nothing otherwise. Delivered clears the need for a snapshot, Lagging sets it, Closed
    /// removes the remote.
    pub fn forward(
        &mut self,
        media: &Media,
        gop: &GopCache,
        mut send: impl FnMut(T, Forward) -> ForwardOutcome,
    ) {
        if self.remotes.is_empty() {
            return;
        }
        let resync_point = is_resync_point(media, gop);
        self.remotes.retain_mut(|remote| {
            let what = match (remote.needs_snapshot, resync_point) {
                (false, _) => Forward::Media,
                (true, true) => Forward::Snapshot,
                (true, false) => return true,
            };
            match send(remote.target, what) {
                ForwardOutcome::Delivered => {
                    remote.needs_snapshot = false;
                    true
                }
                ForwardOutcome::Lagging => {
                    remote.needs_snapshot = true;
                    true
                }
                ForwardOutcome::Closed => false,
            }
        });
    }
}

impl<T: Copy + Eq> Default for Forwarder<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a player could start at `media`, an item just pushed to `gop`: a video keyframe,
/// or any audio frame of a stream without video. A snapshot taken then begins a clean GOP.
pub fn is_resync_point(media: &Media, gop: &GopCache) -> bool {
    let Media::Frame(frame) = media else {
        return false;
    };
    match frame.kind() {
        MediaKind::Video => frame.keyframe,
        MediaKind::Audio => !gop.has_video(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::test_media::*;
    use crate::hub::GopConfig;
    use alloc::collections::{BTreeMap, BTreeSet};
    use alloc::vec;
    use proptest::prelude::*;

    /// Pushes `media` to `gop` and forwards it, answering each send from `outcomes`;
    /// returns the sends made.
    fn push(
        forwarder: &mut Forwarder<u8>,
        gop: &mut GopCache,
        media: &Media,
        outcomes: &BTreeMap<u8, ForwardOutcome>,
    ) -> Vec<(u8, Forward)> {
        gop.push(media);
        let mut sent = Vec::new();
        forwarder.forward(media, gop, |target, what| {
            sent.push((target, what));
            outcomes
                .get(&target)
                .copied()
                .unwrap_or(ForwardOutcome::Delivered)
        });
        sent
    }

    #[test]
    fn a_lagging_remote_waits_for_the_next_keyframe_and_gets_a_snapshot() {
        let mut forwarder = Forwarder::new();
        let mut gop = GopCache::new(GopConfig::default());
        let none = BTreeMap::new();
        forwarder.subscribe(1u8, ForwardOutcome::Delivered);
        forwarder.subscribe(2, ForwardOutcome::Delivered);
        push(&mut forwarder, &mut gop, &video_config(1), &none);
        let lag = BTreeMap::from([(2, ForwardOutcome::Lagging)]);
        let sent = push(&mut forwarder, &mut gop, &video(1, true, 10), &lag);
        assert_eq!(sent, vec![(1, Forward::Media), (2, Forward::Media)]);
        // Remote 2 lost the keyframe: nothing until the next one, audio included.
        for item in [video(2, false, 10), audio(3, 4), metadata(1)] {
            let sent = push(&mut forwarder, &mut gop, &item, &none);
            assert_eq!(sent, vec![(1, Forward::Media)]);
        }
        let sent = push(&mut forwarder, &mut gop, &video(4, true, 10), &none);
        assert_eq!(sent, vec![(1, Forward::Media), (2, Forward::Snapshot)]);
        let sent = push(&mut forwarder, &mut gop, &video(5, false, 10), &none);
        assert_eq!(sent, vec![(1, Forward::Media), (2, Forward::Media)]);
    }

    #[test]
    fn audio_only_streams_resync_at_any_audio_frame() {
        let mut gop = GopCache::new(GopConfig::default());
        gop.push(&audio_config());
        assert!(!is_resync_point(&audio_config(), &gop));
        assert!(is_resync_point(&audio(1, 4), &gop));
        gop.push(&video(2, false, 4));
        assert!(!is_resync_point(&audio(3, 4), &gop));
        assert!(!is_resync_point(&video(2, false, 4), &gop));
        assert!(is_resync_point(&video(4, true, 4), &gop));
        assert!(!is_resync_point(&metadata(1), &gop));
    }

    #[test]
    fn subscribe_outcomes_and_closed_remotes() {
        let mut forwarder = Forwarder::new();
        let mut gop = GopCache::new(GopConfig::default());
        forwarder.subscribe(1u8, ForwardOutcome::Lagging);
        forwarder.subscribe(2, ForwardOutcome::Closed);
        forwarder.subscribe(3, ForwardOutcome::Delivered);
        assert_eq!(forwarder.len(), 2);
        let closed = BTreeMap::from([(3, ForwardOutcome::Closed)]);
        let sent = push(&mut forwarder, &mut gop, &video(1, false, 4), &closed);
        assert_eq!(sent, vec![(3, Forward::Media)]);
        assert_eq!(forwarder.targets().collect::<Vec<_>>(), vec![1]);
        // Subscribing again starts over: the old state is replaced, not duplicated.
        forwarder.subscribe(1, ForwardOutcome::Delivered);
        assert_eq!(forwarder.len(), 1);
        let sent = push(
            &mut forwarder,
            &mut gop,
            &video(2, false, 4),
            &BTreeMap::new(),
        );
        assert_eq!(sent, vec![(1, Forward::Media)]);
        forwarder.unsubscribe(1);
        assert!(forwarder.is_empty());
        assert!(push(
            &mut forwarder,
            &mut gop,
            &video(3, true, 4),
            &BTreeMap::new()
        )
        .is_empty());
    }

    #[derive(Debug, Clone)]
    enum Item {
        VideoConfig,
        AudioConfig,
        Video(bool),
        Audio,
        Metadata,
    }

    fn outcome() -> impl Strategy<Value = ForwardOutcome> {
        prop_oneof![
            6 => Just(ForwardOutcome::Delivered),
            3 => Just(ForwardOutcome::Lagging),
            1 => Just(ForwardOutcome::Closed),
        ]
    }

    #[derive(Debug, Clone)]
    enum Op {
        Subscribe(u8, ForwardOutcome),
        Unsubscribe(u8),
        Push(Item, [ForwardOutcome; 4]),
    }

    fn op(has_video: bool) -> impl Strategy<Value = Op> {
        let item = if has_video {
            prop_oneof![
                1 => Just(Item::VideoConfig),
                1 => Just(Item::AudioConfig),
                6 => any::<bool>().prop_map(Item::Video),
                4 => Just(Item::Audio),
                1 => Just(Item::Metadata),
            ]
            .boxed()
        } else {
            prop_oneof![1 => Just(Item::AudioConfig), 6 => Just(Item::Audio), 1 => Just(Item::Metadata)]
                .boxed()
        };
        prop_oneof![
            2 => (0u8..4, outcome()).prop_map(|(t, o)| Op::Subscribe(t, o)),
            1 => (0u8..4).prop_map(Op::Unsubscribe),
            8 => (item, [outcome(), outcome(), outcome(), outcome()]).prop_map(|(i, o)| Op::Push(i, o)),
        ]
    }

    fn scenario() -> impl Strategy<Value = Vec<Op>> {
        any::<bool>().prop_flat_map(|has_video| proptest::collection::vec(op(has_video), 0..150))
    }

    proptest! {
        /// With random outcomes for every send: a remote gets no Media after a Lagging
        /// outcome until a Snapshot reached it, Snapshots go out only at resync points,
        /// removed remotes are never called again, and every remote that should get
        /// something does, once.
        #[test]
        fn forwarder_keeps_remotes_decodable(ops in scenario()) {
            let mut forwarder = Forwarder::new();
            let mut gop = GopCache::new(GopConfig::default());
            // Subscribed remotes, and whether each has lost an item since its last snapshot.
            let mut lagging: BTreeMap<u8, bool> = BTreeMap::new();
            let mut seen_video = false;
            let mut seq = 0i64;
            for op in ops {
                match op {
                    Op::Subscribe(target, result) => {
                        forwarder.subscribe(target, result);
                        match result {
                            ForwardOutcome::Delivered => lagging.insert(target, false),
                            ForwardOutcome::Lagging => lagging.insert(target, true),
                            ForwardOutcome::Closed => lagging.remove(&target),
                        };
                    }
                    Op::Unsubscribe(target) => {
                        forwarder.unsubscribe(target);
                        lagging.remove(&target);
                    }
                    Op::Push(item, outcomes) => {
                        seq += 1;
                        let media = match item {
                            Item::VideoConfig => video_config(1),
                            Item::AudioConfig => audio_config(),
                            Item::Video(keyframe) => video(seq, keyframe, 8),
                            Item::Audio => audio(seq, 4),
                            Item::Metadata => metadata(1),
                        };
                        seen_video |= matches!(item, Item::VideoConfig | Item::Video(_));
                        let resync = match item {
                            Item::Video(keyframe) => keyframe,
                            Item::Audio => !seen_video,
                            _ => false,
                        };
                        gop.push(&media);
                        let mut calls: Vec<(u8, Forward)> = Vec::new();
                        forwarder.forward(&media, &gop, |target, what| {
                            calls.push((target, what));
                            outcomes[usize::from(target)]
                        });
                        let mut called = BTreeSet::new();
                        for (target, what) in &calls {
                            prop_assert!(called.insert(*target), "called twice");
                            // Only subscribed remotes, so never one that closed or left.
                            let Some(behind) = lagging.get(target).copied() else {
                                return Err(TestCaseError::fail("called a remote that is gone"));
                            };
                            match what {
                                Forward::Media => prop_assert!(!behind, "Media to a lagging remote"),
                                Forward::Snapshot => {
                                    prop_assert!(resync, "Snapshot off a resync point");
                                    prop_assert!(behind, "Snapshot to a remote in step");
                                }
                            }
                        }
                        // Every remote in step, and every lagging one at a resync point, was
                        // called.
                        let expected: BTreeSet<u8> = lagging.iter()
                            .filter(|(_, behind)| !**behind || resync)
                            .map(|(target, _)| *target)
                            .collect();
                        prop_assert_eq!(&called, &expected);
                        for (target, _) in calls {
                            match outcomes[usize::from(target)] {
                                ForwardOutcome::Delivered => lagging.insert(target, false),
                                ForwardOutcome::Lagging => lagging.insert(target, true),
                                ForwardOutcome::Closed => lagging.remove(&target),
                            };
                        }
                    }
                }
                prop_assert_eq!(forwarder.len(), lagging.len());
                let targets: BTreeSet<u8> = forwarder.targets().collect();
                prop_assert_eq!(targets, lagging.keys().copied().collect::<BTreeSet<u8>>());
            }
        }
    }
}
