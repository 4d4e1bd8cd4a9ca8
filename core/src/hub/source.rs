//! One worker's view of one live stream: its GOP cache and the queues of its local players.

use alloc::vec::Vec;

use super::gop::{GopCache, GopConfig};
use super::reader::{PushOutcome, ReaderLimits, ReaderQueue};
use crate::media::Media;

/// A player of one [`LocalSource`], handed out by [`LocalSource::add_reader`].
///
/// The slot index makes every lookup O(1); the generation makes the key of a removed player
/// miss, rather than reach whichever player later reuses its slot. (A slot reused 2³² times
/// while a stale key is kept would alias; runtimes drop a key when its player leaves.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReaderKey {
    slot: usize,
    generation: u32,
}

/// What a [`LocalSource::push`] asks of the runtime, kept by the caller and reused across
/// pushes so the per-frame path does not allocate once its vectors have grown.
#[derive(Debug)]
pub struct PushReport<W = ()> {
    wake: Vec<ReaderKey>,
    disconnect: Vec<(ReaderKey, W)>,
}

impl<W> PushReport<W> {
    /// An empty report.
    pub fn new() -> Self {
        Self {
            wake: Vec::new(),
            disconnect: Vec::new(),
        }
    }

    /// Players whose queue went from empty to non-empty: wake their sessions (their waker is
    /// [`LocalSource::waker`]).
    pub fn wake(&self) -> &[ReaderKey] {
        &self.wake
    }

    /// Players that fell behind too often and have been removed, with the waker each was
    /// added with: close them. Their keys no longer reach anything.
    pub fn disconnect(&self) -> &[(ReaderKey, W)] {
        &self.disconnect
    }

    fn clear(&mut self) {
        self.wake.clear();
        self.disconnect.clear();
    }
}

impl<W> Default for PushReport<W> {
    fn default() -> Self {
        Self::new()
    }
}

/// One slab slot. The generation lives outside the entry so it survives vacancy: it is bumped
/// when the slot is vacated, so the next occupant gets a key no earlier one equals.
#[derive(Debug)]
struct Slot<W> {
    generation: u32,
    entry: Entry<W>,
}

#[derive(Debug)]
enum Entry<W> {
    Reader {
        waker: W,
        queue: ReaderQueue,
    },
    /// Part of the free list, whose head is [`LocalSource::free`].
    Vacant {
        next: Option<usize>,
    },
}

impl<W> Slot<W> {
    fn reader(&self, key: ReaderKey) -> Option<(&W, &ReaderQueue)> {
        match &self.entry {
            Entry::Reader { waker, queue } if self.generation == key.generation => {
                Some((waker, queue))
            }
            _ => None,
        }
    }

    /// Empties an occupied slot onto the free list, returning its waker.
    fn vacate(&mut self, slot: usize, free: &mut Option<usize>) -> Option<W> {
        if !matches!(self.entry, Entry::Reader { .. }) {
            return None;
        }
        let previous = core::mem::replace(&mut self.entry, Entry::Vacant { next: *free });
        self.generation = self.generation.wrapping_add(1);
        *free = Some(slot);
        match previous {
            Entry::Reader { waker, .. } => Some(waker),
            Entry::Vacant { .. } => None,
        }
    }
}

/// One live stream as seen by one worker: the GOP cache and a queue per local player.
///
/// Players live in a slab addressed by [`ReaderKey`], so popping, removing and looking up a
/// player cost O(1) whatever their number, and a push visits each slot once. Slots of players
/// that left are reused, so a steady audience allocates nothing. `W` is what the runtime
/// attaches to each player, typically how to wake its session; the source only hands it back.
#[derive(Debug)]
pub struct LocalSource<W = ()> {
    gop: GopCache,
    limits: ReaderLimits,
    slots: Vec<Slot<W>>,
    /// The most recently vacated slot; each vacant slot links to the one vacated before it.
    free: Option<usize>,
    readers: usize,
    ended: bool,
}

impl<W> LocalSource<W> {
    /// A source with no media and no players yet.
    pub fn new(gop: GopConfig, limits: ReaderLimits) -> Self {
        Self {
            gop: GopCache::new(gop),
            limits,
            slots: Vec::new(),
            free: None,
            readers: 0,
            ended: false,
        }
    }

    /// Adds a player that `waker` stands for, its queue seeded with the GOP snapshot so it
    /// starts at once at a keyframe. Returns the key to pop its queue with.
    pub fn add_reader(&mut self, waker: W) -> ReaderKey {
        let entry = Entry::Reader {
            waker,
            queue: ReaderQueue::seeded(self.limits, self.gop.snapshot()),
        };
        self.readers += 1;
        if let Some(slot) = self.free {
            if let Some(vacant) = self.slots.get_mut(slot) {
                if let Entry::Vacant { next } = vacant.entry {
                    self.free = next;
                    vacant.entry = entry;
                    return ReaderKey {
                        slot,
                        generation: vacant.generation,
                    };
                }
            }
        }
        let key = ReaderKey {
            slot: self.slots.len(),
            generation: 0,
        };
        self.slots.push(Slot {
            generation: 0,
            entry,
        });
        key
    }

    /// Removes a player, returning its waker; `None` if `key` is not (or no longer) a player.
    pub fn remove_reader(&mut self, key: ReaderKey) -> Option<W> {
        let slot = self.slots.get_mut(key.slot)?;
        if slot.generation != key.generation {
            return None;
        }
        let waker = slot.vacate(key.slot, &mut self.free)?;
        self.readers -= 1;
        Some(waker)
    }

    /// Takes the publisher's next item: updates the GOP cache and queues the item for every
    /// player. `report` is cleared, then lists the players to wake and those removed for
    /// falling behind. Ignored once the source has ended.
    pub fn push(&mut self, media: &Media, report: &mut PushReport<W>) {
        report.clear();
        if self.ended {
            return;
        }
        self.gop.push(media);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Entry::Reader { queue, .. } = &mut slot.entry else {
                continue;
            };
            let key = ReaderKey {
                slot: index,
                generation: slot.generation,
            };
            let was_empty = queue.is_empty();
            match queue.push(media) {
                PushOutcome::Disconnect => {
                    if let Some(waker) = slot.vacate(index, &mut self.free) {
                        self.readers -= 1;
                        report.disconnect.push((key, waker));
                    }
                }
                _ => {
                    if was_empty && !queue.is_empty() {
                        report.wake.push(key);
                    }
                }
            }
        }
    }

    /// The next item for player `key`. `None` when its queue is empty (or it is not a
    /// player); then [`LocalSource::is_ended`] tells whether more will come.
    pub fn pop(&mut self, key: ReaderKey) -> Option<Media> {
        let slot = self.slots.get_mut(key.slot)?;
        match &mut slot.entry {
            Entry::Reader { queue, .. } if slot.generation == key.generation => queue.pop(),
            _ => None,
        }
    }

    /// Marks the stream as ended (the publisher stopped): players drain what is queued, then
    /// see `None` with `is_ended()` true. The runtime wakes every player in
    /// [`LocalSource::readers`] so they notice.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Whether the publisher stopped.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// How many players this worker serves for the stream.
    pub fn reader_count(&self) -> usize {
        self.readers
    }

    /// This worker's players of the stream, with their wakers.
    pub fn readers(&self) -> impl Iterator<Item = (ReaderKey, &W)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| match &slot.entry {
                Entry::Reader { waker, .. } => Some((
                    ReaderKey {
                        slot: index,
                        generation: slot.generation,
                    },
                    waker,
                )),
                Entry::Vacant { .. } => None,
            })
    }

    /// The waker player `key` was added with.
    pub fn waker(&self, key: ReaderKey) -> Option<&W> {
        Some(self.slots.get(key.slot)?.reader(key)?.0)
    }

    /// Player `key`'s queue.
    pub fn queue(&self, key: ReaderKey) -> Option<&ReaderQueue> {
        Some(self.slots.get(key.slot)?.reader(key)?.1)
    }

    /// The GOP cache.
    pub fn gop(&self) -> &GopCache {
        &self.gop
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

    fn drain<W>(source: &mut LocalSource<W>, key: ReaderKey) -> Vec<Media> {
        core::iter::from_fn(|| source.pop(key)).collect()
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
        let key = source.add_reader(7u32);
        assert_eq!(source.waker(key), Some(&7));
        source.push(&audio(3, 5), &mut report);
        assert!(report.wake().is_empty(), "queue was already non-empty");
        assert_eq!(
            drain(&mut source, key),
            vec![
                video_config(1),
                audio_config(),
                video(1, true, 10),
                video(2, false, 10),
                audio(3, 5)
            ]
        );
        source.push(&video(4, false, 10), &mut report);
        assert_eq!(report.wake(), &[key]);
        assert_eq!(source.pop(key), Some(video(4, false, 10)));
        assert_eq!(source.pop(key), None);
    }

    #[test]
    fn stale_key_never_reaches_a_reused_slot() {
        let mut source = LocalSource::new(GopConfig::default(), ReaderLimits::default());
        let mut report = PushReport::new();
        source.push(&video(1, true, 10), &mut report);
        let gone = source.add_reader(1u32);
        let kept = source.add_reader(2u32);
        assert_ne!(gone, kept);
        assert_eq!(source.remove_reader(gone), Some(1));
        assert_eq!(source.remove_reader(gone), None);
        let reused = source.add_reader(3u32);
        assert_eq!(reused.slot, gone.slot, "the vacated slot is reused");
        assert_ne!(reused, gone);
        assert_eq!(source.pop(gone), None);
        assert!(source.queue(gone).is_none());
        assert_eq!(source.waker(gone), None);
        assert_eq!(source.remove_reader(gone), None);
        assert_eq!(source.reader_count(), 2);
        assert_eq!(source.pop(reused), Some(video(1, true, 10)));
        assert_eq!(source.pop(kept), Some(video(1, true, 10)));
        assert_eq!(
            source.readers().collect::<Vec<_>>(),
            vec![(reused, &3), (kept, &2)]
        );
    }

    #[test]
    fn churn_reuses_slots_instead_of_growing() {
        let mut source = LocalSource::new(GopConfig::default(), ReaderLimits::default());
        let steady: Vec<ReaderKey> = (0..3).map(|_| source.add_reader(())).collect();
        for _ in 0..1000 {
            let a = source.add_reader(());
            let b = source.add_reader(());
            assert!(source.remove_reader(b).is_some());
            assert!(source.remove_reader(a).is_some());
        }
        assert_eq!(source.slots.len(), 5);
        assert_eq!(source.reader_count(), 3);
        assert!(steady.iter().all(|key| source.queue(*key).is_some()));
    }

    #[test]
    fn end_lets_players_drain_then_reports_ended() {
        let mut source = LocalSource::new(GopConfig::default(), ReaderLimits::default());
        let mut report = PushReport::new();
        let key = source.add_reader(());
        source.push(&video(1, true, 10), &mut report);
        source.end();
        source.push(&video(2, false, 10), &mut report);
        assert!(report.wake().is_empty());
        assert_eq!(source.pop(key), Some(video(1, true, 10)));
        assert_eq!(source.pop(key), None);
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
        let slow = source.add_reader(1u32);
        let fast = source.add_reader(2u32);
        for seq in 0..3 {
            source.push(&video(seq, true, 1), &mut report);
            drain(&mut source, fast);
        }
        assert_eq!(report.disconnect(), &[(slow, 1)]);
        assert!(source.queue(slow).is_none());
        assert_eq!(source.readers().collect::<Vec<_>>(), vec![(fast, &2)]);
        assert_eq!(source.remove_reader(fast), Some(2));
        assert_eq!(source.remove_reader(fast), None);
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
            let drain_key = drainer.add_reader(0u32);

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
            // The current key of each reader slot, the last key each slot had, and every key
            // retired by a leave or a disconnect: none of those may reach a player again.
            let mut keys: BTreeMap<u32, ReaderKey> = BTreeMap::new();
            let mut retired: BTreeMap<u32, ReaderKey> = BTreeMap::new();
            let mut stale: Vec<ReaderKey> = Vec::new();
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
                        for (key, id) in report.disconnect() {
                            prop_assert!(source.queue(*key).is_none());
                            prop_assert_eq!(keys.remove(id), Some(*key));
                            retired.insert(*id, *key);
                            stale.push(*key);
                            delivered.remove(id);
                        }
                        for key in report.wake() {
                            prop_assert!(source.queue(*key).is_some_and(|queue| !queue.is_empty()));
                        }
                        drainer.push(&media, &mut report);
                        prop_assert!(report.disconnect().is_empty());
                        prop_assert_eq!(report.wake(), &[drain_key]);
                        while let Some(m) = drainer.pop(drain_key) {
                            deliver(0, m, &mut delivered, &video_ordinal)?;
                        }
                        published.push(media);
                    }
                    Op::Pop { reader, n } => {
                        let id = reader as u32;
                        match keys.get(&id) {
                            Some(key) => {
                                for _ in 0..n {
                                    match source.pop(*key) {
                                        Some(m) => deliver(id, m, &mut delivered, &video_ordinal)?,
                                        None => break,
                                    }
                                }
                            }
                            None => {
                                if let Some(key) = retired.get(&id) {
                                    prop_assert_eq!(source.pop(*key), None);
                                }
                            }
                        }
                    }
                    Op::Join(reader) => {
                        let id = reader as u32;
                        if let alloc::collections::btree_map::Entry::Vacant(slot) = keys.entry(id) {
                            let key = source.add_reader(id);
                            prop_assert!(!stale.contains(&key));
                            slot.insert(key);
                            delivered.insert(id, Delivered::default());
                        }
                    }
                    Op::Leave(reader) => {
                        let id = reader as u32;
                        match keys.remove(&id) {
                            Some(key) => {
                                prop_assert_eq!(source.remove_reader(key), Some(id));
                                retired.insert(id, key);
                                stale.push(key);
                            }
                            None => {
                                if let Some(key) = retired.get(&id) {
                                    prop_assert_eq!(source.remove_reader(*key), None);
                                }
                            }
                        }
                        delivered.remove(&id);
                    }
                }

                // The slab agrees with the players the test believes in; stale keys miss.
                prop_assert_eq!(source.reader_count(), keys.len());
                let listed: BTreeMap<u32, ReaderKey> =
                    source.readers().map(|(key, id)| (*id, key)).collect();
                prop_assert_eq!(&listed, &keys);
                for key in &stale {
                    prop_assert!(source.queue(*key).is_none());
                    prop_assert!(source.waker(*key).is_none());
                }

                // (a) memory bounds.
                let cache = source.gop();
                prop_assert!(cache.frames().len() <= gop.max_frames);
                prop_assert!(cache.frame_bytes() <= gop.max_bytes);
                prop_assert_eq!(cache.frame_bytes(), cache.frames().iter().map(|f| f.payload.len()).sum::<usize>());
                if let Some(first) = cache.frames().first() {
                    prop_assert!(first.kind() == MediaKind::Video && first.keyframe);
                }
                for (key, _) in source.readers() {
                    let queue = source.queue(key).unwrap();
                    prop_assert!(queue.len() <= limits.max_items);
                    prop_assert!(queue.bytes() <= limits.max_bytes);
                }
            }

            // (d) the reader that always drained got every item, in order.
            prop_assert_eq!(&delivered[&0].frames, &published);
        }
    }
}
