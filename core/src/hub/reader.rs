//! One player's bounded queue, with the policy for players that read too slowly.

use alloc::collections::VecDeque;

use crate::media::{Media, MediaKind};

/// Bounds on one player's queue and how many times it may fall behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// The most items queued.
    pub max_items: usize,
    /// The most payload bytes queued.
    pub max_bytes: usize,
    /// Overflows, without the player catching up in between, after which it is disconnected
    /// (0 and 1 both mean the first overflow disconnects).
    pub max_overflows: u32,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        // Larger than the default GOP cache bounds, so a new player's snapshot always fits.
        // Payloads are shared with the publisher and every other player, so what one slow
        // player adds on its own is mostly the queue slots.
        Self {
            max_items: 2048,
            max_bytes: 64 << 20,
            max_overflows: 3,
        }
    }
}

/// What happened to an item pushed to a [`ReaderQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The item was queued.
    Queued,
    /// The item was dropped because the queue is waiting for a keyframe.
    Skipped,
    /// The queue was full: its frames were dropped and it now waits for a keyframe (the item
    /// itself was queued if it is one).
    Overflowed,
    /// The player fell behind too often; the runtime should close it. Latched: every later
    /// push returns it too.
    Disconnect,
}

/// A player's queue of media items, bounded in items and bytes.
///
/// When an item would exceed a bound, the queued frames are dropped (configurations and
/// metadata are kept, the latest of each) and the queue waits for the next video keyframe,
/// dropping audio until then too so that audio and video resume together. Audio-only streams
/// resume with the next audio frame. After [`ReaderLimits::max_overflows`] overflows without
/// the player emptying its queue in between, the queue asks for a disconnect.
#[derive(Debug, Clone)]
pub struct ReaderQueue {
    limits: ReaderLimits,
    items: VecDeque<Media>,
    bytes: usize,
    /// Video is dropped until a video keyframe; audio too, once the stream is known to have
    /// video.
    waiting: bool,
    has_video: bool,
    overflows: u32,
    disconnected: bool,
}

/// Configurations and metadata a queue keeps across an overflow, one of each.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    VideoConfig,
    AudioConfig,
    Metadata,
}

fn slot(media: &Media) -> Option<Slot> {
    match media {
        Media::Config(config) => Some(match config.kind() {
            MediaKind::Video => Slot::VideoConfig,
            MediaKind::Audio => Slot::AudioConfig,
        }),
        Media::Metadata(_) => Some(Slot::Metadata),
        Media::Frame(_) => None,
    }
}

impl ReaderQueue {
    /// An empty queue waiting for a keyframe: a player must not start mid-GOP.
    pub fn new(limits: ReaderLimits) -> Self {
        Self {
            limits,
            items: VecDeque::new(),
            bytes: 0,
            waiting: true,
            has_video: false,
            overflows: 0,
            disconnected: false,
        }
    }

    /// A queue for a new player, filled with `snapshot` (see [`super::GopCache::snapshot`]).
    ///
    /// If the snapshot starts its frames at a keyframe the player starts there; otherwise it
    /// waits for the next keyframe. A snapshot larger than the limits is not held against the
    /// player: it starts with no overflow counted.
    pub fn seeded(limits: ReaderLimits, snapshot: impl IntoIterator<Item = Media>) -> Self {
        // Seeding must not take the disconnect path, which would also drop the configs.
        let mut queue = Self::new(ReaderLimits {
            max_overflows: u32::MAX,
            ..limits
        });
        for item in snapshot {
            queue.push(&item);
        }
        queue.limits = limits;
        queue.overflows = 0;
        queue
    }

    /// Queues `media` (cloned: a reference-count bump) subject to the limits.
    pub fn push(&mut self, media: &Media) -> PushOutcome {
        if self.disconnected {
            return PushOutcome::Disconnect;
        }
        if !self.admit(media) {
            return PushOutcome::Skipped;
        }
        let size = media.byte_size();
        if self.fits(size) {
            self.enqueue(media, size);
            return PushOutcome::Queued;
        }

        self.overflow();
        if self.overflows >= self.limits.max_overflows {
            self.disconnected = true;
            self.items.clear();
            self.bytes = 0;
            return PushOutcome::Disconnect;
        }
        if let Some(new_slot) = slot(media) {
            // With no frames left in between, the new item supersedes the queued one.
            if let Some(index) = self.items.iter().position(|m| slot(m) == Some(new_slot)) {
                if let Some(old) = self.items.remove(index) {
                    self.bytes -= old.byte_size();
                }
            }
        }
        if self.admit(media) && self.fits(size) {
            self.enqueue(media, size);
        }
        PushOutcome::Overflowed
    }

    /// The next item for the player.
    pub fn pop(&mut self) -> Option<Media> {
        let item = self.items.pop_front()?;
        self.bytes -= item.byte_size();
        if self.items.is_empty() {
            // The player caught up: earlier overflows no longer count against it.
            self.overflows = 0;
        }
        Some(item)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Payload bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether frames are being dropped until the next keyframe.
    pub fn is_waiting_for_keyframe(&self) -> bool {
        self.waiting
    }

    /// Overflows since the player last emptied its queue.
    pub fn overflows(&self) -> u32 {
        self.overflows
    }

    /// Whether the queue asked for the player to be disconnected.
    pub fn is_disconnected(&self) -> bool {
        self.disconnected
    }

    /// Applies the keyframe wait to `media`; true if it may be queued.
    fn admit(&mut self, media: &Media) -> bool {
        match media {
            Media::Config(config) => {
                if config.kind() == MediaKind::Video {
                    self.has_video = true;
                }
                true
            }
            Media::Metadata(_) => true,
            Media::Frame(frame) => match frame.kind() {
                MediaKind::Video => {
                    self.has_video = true;
                    !self.waiting || frame.keyframe
                }
                MediaKind::Audio => !(self.waiting && self.has_video),
            },
        }
    }

    fn fits(&self, size: usize) -> bool {
        self.items.len() < self.limits.max_items
            && self.bytes.saturating_add(size) <= self.limits.max_bytes
    }

    fn enqueue(&mut self, media: &Media, size: usize) {
        if let Media::Frame(frame) = media {
            if frame.kind() == MediaKind::Video && frame.keyframe {
                self.waiting = false;
            }
        }
        self.items.push_back(media.clone());
        self.bytes += size;
    }

    /// Drops every frame and all but the latest configuration of each track and metadata.
    fn overflow(&mut self) {
        let mut latest = [None; 3];
        for (index, item) in self.items.iter().enumerate() {
            if let Some(s) = slot(item) {
                if let Some(entry) = latest.get_mut(s as usize) {
                    *entry = Some(index);
                }
            }
        }
        let mut index = 0;
        self.items.retain(|item| {
            let keep = slot(item)
                .is_some_and(|s| latest.get(s as usize).copied().flatten() == Some(index));
            index += 1;
            keep
        });
        self.bytes = self.items.iter().map(Media::byte_size).sum();
        self.waiting = true;
        self.overflows = self.overflows.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::test_media::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn drain(queue: &mut ReaderQueue) -> Vec<Media> {
        core::iter::from_fn(|| queue.pop()).collect()
    }

    fn limits(max_items: usize, max_bytes: usize, max_overflows: u32) -> ReaderLimits {
        ReaderLimits {
            max_items,
            max_bytes,
            max_overflows,
        }
    }

    #[test]
    fn new_queue_waits_for_a_video_keyframe() {
        let mut queue = ReaderQueue::new(ReaderLimits::default());
        assert_eq!(queue.push(&video_config(1)), PushOutcome::Queued);
        assert_eq!(queue.push(&video(1, false, 10)), PushOutcome::Skipped);
        assert_eq!(queue.push(&audio(2, 5)), PushOutcome::Skipped);
        assert_eq!(queue.push(&video(3, true, 10)), PushOutcome::Queued);
        assert_eq!(queue.push(&audio(4, 5)), PushOutcome::Queued);
        assert_eq!(queue.push(&video(5, false, 10)), PushOutcome::Queued);
        assert_eq!(
            drain(&mut queue),
            vec![
                video_config(1),
                video(3, true, 10),
                audio(4, 5),
                video(5, false, 10)
            ]
        );
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn audio_only_starts_at_once() {
        let mut queue = ReaderQueue::new(ReaderLimits::default());
        assert_eq!(queue.push(&audio_config()), PushOutcome::Queued);
        assert_eq!(queue.push(&audio(1, 5)), PushOutcome::Queued);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.bytes(), 7);
    }

    #[test]
    fn seeded_from_keyframe_snapshot_starts_there() {
        let queue = ReaderQueue::seeded(
            ReaderLimits::default(),
            [video_config(1), video(1, true, 10), video(2, false, 10)],
        );
        assert!(!queue.is_waiting_for_keyframe());
        assert_eq!(queue.len(), 3);
    }

    #[test]
    fn oversized_snapshot_keeps_configs_and_waits() {
        let queue = ReaderQueue::seeded(
            limits(2, 1000, 1),
            [
                video_config(1),
                audio_config(),
                video(1, true, 10),
                video(2, false, 10),
            ],
        );
        assert!(queue.is_waiting_for_keyframe());
        assert!(!queue.is_disconnected());
        assert_eq!(queue.overflows(), 0);
        let mut queue = queue;
        assert_eq!(drain(&mut queue), vec![video_config(1), audio_config()]);
    }

    #[test]
    fn overflow_keeps_configs_and_resumes_at_keyframe() {
        let mut queue = ReaderQueue::new(limits(4, 1000, 3));
        for item in [
            metadata(1),
            video_config(1),
            video(1, true, 10),
            video(2, false, 10),
        ] {
            assert_eq!(queue.push(&item), PushOutcome::Queued);
        }
        assert_eq!(queue.push(&video(3, false, 10)), PushOutcome::Overflowed);
        assert!(queue.is_waiting_for_keyframe());
        assert_eq!(queue.overflows(), 1);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.push(&audio(4, 5)), PushOutcome::Skipped);
        assert_eq!(queue.push(&video(5, false, 10)), PushOutcome::Skipped);
        assert_eq!(queue.push(&video(6, true, 10)), PushOutcome::Queued);
        assert_eq!(
            drain(&mut queue),
            vec![metadata(1), video_config(1), video(6, true, 10)]
        );
        assert_eq!(queue.overflows(), 0, "draining forgives earlier overflows");
    }

    #[test]
    fn overflowing_keyframe_is_queued_as_the_resume_point() {
        let mut queue = ReaderQueue::new(limits(2, 1000, 3));
        queue.push(&video(1, true, 10));
        queue.push(&video(2, false, 10));
        assert_eq!(queue.push(&video(3, true, 10)), PushOutcome::Overflowed);
        assert_eq!(drain(&mut queue), vec![video(3, true, 10)]);
    }

    #[test]
    fn overflow_collapses_repeated_configs() {
        let mut queue = ReaderQueue::new(limits(4, 1000, 5));
        queue.push(&video_config(1));
        queue.push(&video(1, true, 10));
        queue.push(&video_config(2));
        queue.push(&video(2, true, 10));
        assert_eq!(queue.push(&video(3, false, 10)), PushOutcome::Overflowed);
        assert_eq!(drain(&mut queue), vec![video_config(2)]);
    }

    #[test]
    fn repeated_overflows_without_catching_up_disconnect() {
        let mut queue = ReaderQueue::new(limits(2, 1000, 3));
        let mut seq = 0;
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            for _ in 0..4 {
                seq += 1;
                outcomes.push(queue.push(&video(seq, true, 10)));
            }
            // A partial read is not catching up.
            queue.pop();
        }
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == PushOutcome::Overflowed)
                .count(),
            2
        );
        assert_eq!(outcomes.get(8), Some(&PushOutcome::Disconnect));
        assert!(queue.is_disconnected());
        assert_eq!(queue.push(&video(99, true, 1)), PushOutcome::Disconnect);
        assert!(queue.is_empty());
        assert_eq!(queue.bytes(), 0);
    }

    #[test]
    fn catching_up_resets_the_overflow_count() {
        let mut queue = ReaderQueue::new(limits(2, 1000, 2));
        for round in 0..10 {
            for i in 0..3 {
                let outcome = queue.push(&video(round * 3 + i, true, 10));
                assert_ne!(outcome, PushOutcome::Disconnect);
            }
            drain(&mut queue);
        }
    }

    #[test]
    fn oversized_item_is_dropped_not_queued() {
        let mut queue = ReaderQueue::new(limits(10, 20, 5));
        assert_eq!(queue.push(&video(1, true, 21)), PushOutcome::Overflowed);
        assert!(queue.is_empty());
        assert!(queue.is_waiting_for_keyframe());
    }
}
