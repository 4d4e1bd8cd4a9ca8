//! One worker's view of one live stream: its GOP cache and the queues of its local players.

use alloc::vec::Vec;

use super::gop::{GopCache, GopConfig};
use super::reader::{PushOutcome, ReaderLimits, ReaderQueue};
use crate::media::Media;

/// What a [`LocalSource::push`] asks of the runtime, kept by the caller and reused across
/// pushes so the per-frame path does not allocate once its vectors have grown.
#[derive(Debug)]
pub struct PushReport<R> {
    wake: Vec<R>,
    disconnect: Vec<R>,
}

impl<R> PushReport<R> {
    /// An empty report.
    pub fn new() -> Self {
        Self {
            wake: Vec::new(),
            disconnect: Vec::new(),
        }
    }

    /// Players whose queue went from empty to non-empty: wake their sessions.
    pub fn wake(&self) -> &[R] {
        &self.wake
    }

    /// Players that fell behind too often and have been removed: close them.
    pub fn disconnect(&self) -> &[R] {
        &self.disconnect
    }

    fn clear(&mut self) {
        self.wake.clear();
        self.disconnect.clear();
    }
}

impl<R> Default for PushReport<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// One live stream as seen by one worker: the GOP cache and a queue per local player.
///
/// `R` is the runtime's player id (a session index, say). Players are few per worker, so they
/// live in a `Vec` scanned linearly.
#[derive(Debug)]
pub struct LocalSource<R> {
    gop: GopCache,
    limits: ReaderLimits,
    readers: Vec<(R, ReaderQueue)>,
    ended: bool,
}

impl<R: Copy + Eq> LocalSource<R> {
    /// A source with no media and no players yet.
    pub fn new(gop: GopConfig, limits: ReaderLimits) -> Self {
        Self {
            gop: GopCache::new(gop),
            limits,
            readers: Vec::new(),
            ended: false,
        }
    }

    /// Adds a player, its queue seeded with the GOP snapshot so it starts at once at a
    /// keyframe. Returns false (and changes nothing) if `id` is already a player.
    pub fn add_reader(&mut self, id: R) -> bool {
        if self.readers.iter().any(|(reader, _)| *reader == id) {
            return false;
        }
        let queue = ReaderQueue::seeded(self.limits, self.gop.snapshot());
        self.readers.push((id, queue));
        true
    }

    /// Removes a player; false if it was not one.
    pub fn remove_reader(&mut self, id: R) -> bool {
        let before = self.readers.len();
        self.readers.retain(|(reader, _)| *reader != id);
        self.readers.len() != before
    }

    /// Takes the publisher's next item: updates the GOP cache and queues the item for every
    /// player. `report` is cleared, then lists the players to wake and those removed for
    /// falling behind. Ignored once the source has ended.
    pub fn push(&mut self, media: &Media, report: &mut PushReport<R>) {
        report.clear();
        if self.ended {
            return;
        }
        self.gop.push(media);
        self.readers.retain_mut(|(id, queue)| {
            let was_empty = queue.is_empty();
            match queue.push(media) {
                PushOutcome::Disconnect => {
                    report.disconnect.push(*id);
                    false
                }
                _ => {
                    if was_empty && !queue.is_empty() {
                        report.wake.push(*id);
                    }
                    true
                }
            }
        });
    }

    /// The next item for player `id`. `None` when its queue is empty (or it is not a player);
    /// then [`LocalSource::is_ended`] tells whether more will come.
    pub fn pop(&mut self, id: R) -> Option<Media> {
        self.queue_mut(id)?.pop()
    }

    /// Marks the stream as ended (the publisher stopped): players drain what is queued, then
    /// see `None` with `is_ended()` true. The runtime wakes every player in
    /// [`LocalSource::reader_ids`] so they notice.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Whether the publisher stopped.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// How many players this worker serves for the stream.
    pub fn reader_count(&self) -> usize {
        self.readers.len()
    }

    /// The ids of this worker's players of the stream.
    pub fn reader_ids(&self) -> impl Iterator<Item = R> + '_ {
        self.readers.iter().map(|(id, _)| *id)
    }

    /// Player `id`'s queue.
    pub fn queue(&self, id: R) -> Option<&ReaderQueue> {
        self.readers
            .iter()
            .find(|(reader, _)| *reader == id)
            .map(|(_, queue)| queue)
    }

    /// The GOP cache.
    pub fn gop(&self) -> &GopCache {
        &self.gop
    }

    fn queue_mut(&mut self, id: R) -> Option<&mut ReaderQueue> {
        self.readers
            .iter_mut()
            .find(|(reader, _)| *reader == id)
            .map(|(_, queue)| queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::test_media::*;
    use crate::media::{Frame, MediaKind};
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use proptest::prelude::*;

    fn drain(source: &mut LocalSource<u32>, id: u32) -> Vec<Media> {
        core::iter::from_fn(|| source.pop(id)).collect()
    }

    #[test]
    fn late_joiner_gets_configs_and_gop_then_live() {
        let mut source = LocalSource::new(GopConfig::default(), ReaderLimits::default());
        let mut report = PushReport::new();
        for item in [
            video_config(1),
            audio_config(),
            video(1, true, 10),
            video(2, false, 10),
        ] {
            source.push(&item, &mut report);
        }
        assert!(source.add_reader(7));
        assert!(!source.add_reader(7));
        source.push(&audio(3, 5), &mut report);
        assert!(report.wake().is_empty(), "queue was already non-empty");
        assert_eq!(
            drain(&mut source, 7),
            vec![
                video_config(1),
                audio_config(),
                video(1, true, 10),
                video(2, false, 10),
                audio(3, 5)
            ]
        );
        source.push(&video(4, false, 10), &mut report);
        assert_eq!(report.wake(), &[7]);
        assert_eq!(source.pop(7), Some(video(4, false, 10)));
        assert_eq!(source.pop(7), None);
        assert_eq!(source.pop(8), None);
    }

    #[test]
    fn end_lets_players_drain_then_reports_ended() {
        let mut source = LocalSource::new(GopConfig::default(), ReaderLimits::default());
        let mut report = PushReport::new();
        source.add_reader(1);
        source.push(&video(1, true, 10), &mut report);
        source.end();
        source.push(&video(2, false, 10), &mut report);
        assert!(report.wake().is_empty());
        assert_eq!(source.pop(1), Some(video(1, true, 10)));
        assert_eq!(source.pop(1), None);
        assert!(source.is_ended());
    }

    #[test]
    fn slow_reader_is_disconnected_and_removed() {
        let limits = ReaderLimits {
            max_items: 2,
            max_bytes: 1000,
            max_overflows: 1,
        };
        let mut source = LocalSource::new(GopConfig::default(), limits);
        let mut report = PushReport::new();
        source.add_reader(1);
        source.add_reader(2);
        for seq in 0..3 {
            source.push(&video(seq, true, 1), &mut report);
            drain(&mut source, 2);
        }
        assert_eq!(report.disconnect(), &[1]);
        assert_eq!(source.reader_ids().collect::<Vec<_>>(), vec![2]);
        assert!(source.remove_reader(2));
        assert!(!source.remove_reader(2));
        assert_eq!(source.reader_count(), 0);
    }

    /// One publisher item in a generated stream; frames get increasing dts when built.
    #[derive(Debug, Clone)]
    enum Item {
        Video { keyframe: bool, size: usize },
        Audio { size: usize },
        VideoConfig(u8),
        Metadata,
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(Item),
        /// Pop up to `n` items for reader `reader` (an index into the reader slots).
        Pop {
            reader: usize,
            n: usize,
        },
        Join(usize),
        Leave(usize),
    }

    fn item(has_video: bool) -> impl Strategy<Value = Item> {
        let audio = (0usize..40).prop_map(|size| Item::Audio { size });
        if has_video {
            prop_oneof![
                6 => (any::<bool>(), 0usize..60).prop_map(|(k, size)| Item::Video { keyframe: k, size }),
                4 => audio,
                1 => (1u8..3).prop_map(Item::VideoConfig),
                1 => Just(Item::Metadata),
            ]
            .boxed()
        } else {
            prop_oneof![6 => audio, 1 => Just(Item::Metadata)].boxed()
        }
    }

    const SLOTS: usize = 4;

    fn scenario() -> impl Strategy<Value = (bool, Vec<Op>, GopConfig, ReaderLimits)> {
        any::<bool>().prop_flat_map(|has_video| {
            let op = prop_oneof![
                8 => item(has_video).prop_map(Op::Push),
                4 => (1..SLOTS, 0usize..12).prop_map(|(reader, n)| Op::Pop { reader, n }),
                1 => (1..SLOTS).prop_map(Op::Join),
                1 => (1..SLOTS).prop_map(Op::Leave),
            ];
            (
                Just(has_video),
                proptest::collection::vec(op, 0..300),
                (1usize..20, 0usize..400).prop_map(|(max_frames, max_bytes)| GopConfig {
                    max_frames,
                    max_bytes,
                }),
                (1usize..24, 0usize..500, 0u32..4).prop_map(
                    |(max_items, max_bytes, max_overflows)| ReaderLimits {
                        max_items,
                        max_bytes,
                        max_overflows,
                    },
                ),
            )
        })
    }

    fn build(item: &Item, seq: i64) -> Media {
        match *item {
            Item::Video { keyframe, size } => video(seq, keyframe, size),
            Item::Audio { size } => audio(seq, size),
            Item::VideoConfig(version) => video_config(version),
            Item::Metadata => metadata(1),
        }
    }

    /// What one reader has been delivered, checked as it goes.
    #[derive(Default)]
    struct Delivered {
        last_dts: Option<i64>,
        last_video_ordinal: Option<usize>,
        frames: Vec<Media>,
    }

    fn deliver(
        id: u32,
        media: Media,
        delivered: &mut BTreeMap<u32, Delivered>,
        video_ordinal: &BTreeMap<i64, usize>,
    ) -> Result<(), TestCaseError> {
        let seen = delivered.entry(id).or_default();
        if let Media::Frame(Frame {
            dts,
            keyframe,
            codec,
            ..
        }) = &media
        {
            // (c) publish order.
            prop_assert!(
                seen.last_dts.is_none_or(|last| last < *dts),
                "reader {} out of order",
                id
            );
            seen.last_dts = Some(*dts);
            if codec.kind() == MediaKind::Video {
                let ordinal = video_ordinal[dts];
                // (b) video starts at a keyframe and resumes at one after any gap.
                if seen
                    .last_video_ordinal
                    .is_none_or(|last| last + 1 != ordinal)
                {
                    prop_assert!(*keyframe, "reader {} resumed video at a non-keyframe", id);
                }
                seen.last_video_ordinal = Some(ordinal);
            }
        }
        seen.frames.push(media);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn fan_out_invariants((has_video, ops, gop, limits) in scenario()) {
            let mut source = LocalSource::new(gop, limits);
            let mut report = PushReport::new();
            // Slot 0 joins before any media and drains after every push: it must get
            // everything. Its limits are generous so only the policy, not size, is tested.
            let mut drainer = LocalSource::new(gop, ReaderLimits {
                max_items: 4, max_bytes: 1000, max_overflows: 1,
            });
            drainer.add_reader(0u32);

            let prefix = if has_video {
                vec![Item::VideoConfig(1), Item::Video { keyframe: true, size: 10 }]
            } else {
                vec![Item::Metadata]
            };
            let ops = prefix.into_iter().map(Op::Push).chain(ops);

            let mut published: Vec<Media> = Vec::new();
            let mut video_ordinal: BTreeMap<i64, usize> = BTreeMap::new();
            let mut delivered: BTreeMap<u32, Delivered> = BTreeMap::new();
            delivered.insert(0, Delivered::default());
            let mut seq = 0i64;

            for op in ops {
                match op {
                    Op::Push(item) => {
                        seq += 1;
                        let media = build(&item, seq);
                        if let Media::Frame(frame) = &media {
                            if frame.kind() == MediaKind::Video {
                                let next = video_ordinal.len();
                                video_ordinal.insert(seq, next);
                            }
                        }
                        source.push(&media, &mut report);
                        for id in report.disconnect() {
                            prop_assert!(source.queue(*id).is_none());
                            delivered.remove(id);
                        }
                        drainer.push(&media, &mut report);
                        prop_assert!(report.disconnect().is_empty());
                        prop_assert_eq!(report.wake(), &[0]);
                        while let Some(m) = drainer.pop(0) {
                            deliver(0, m, &mut delivered, &video_ordinal)?;
                        }
                        published.push(media);
                    }
                    Op::Pop { reader, n } => {
                        for _ in 0..n {
                            match source.pop(reader as u32) {
                                Some(m) => deliver(reader as u32, m, &mut delivered, &video_ordinal)?,
                                None => break,
                            }
                        }
                    }
                    Op::Join(reader) => {
                        if source.add_reader(reader as u32) {
                            delivered.insert(reader as u32, Delivered::default());
                        }
                    }
                    Op::Leave(reader) => {
                        source.remove_reader(reader as u32);
                        delivered.remove(&(reader as u32));
                    }
                }

                // (a) memory bounds.
                let cache = source.gop();
                prop_assert!(cache.frames().len() <= gop.max_frames);
                prop_assert!(cache.frame_bytes() <= gop.max_bytes);
                prop_assert_eq!(cache.frame_bytes(), cache.frames().iter().map(|f| f.payload.len()).sum::<usize>());
                if let Some(first) = cache.frames().first() {
                    prop_assert!(first.kind() == MediaKind::Video && first.keyframe);
                }
                for id in source.reader_ids() {
                    let queue = source.queue(id).unwrap();
                    prop_assert!(queue.len() <= limits.max_items);
                    prop_assert!(queue.bytes() <= limits.max_bytes);
                }
            }

            // (d) the reader that always drained got every item, in order.
            prop_assert_eq!(&delivered[&0].frames, &published);
        }
    }
}
