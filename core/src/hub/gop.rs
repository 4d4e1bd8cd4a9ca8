//! The GOP cache: what a player joining a live stream needs first so it can start at once.

use alloc::vec::Vec;

use crate::media::{Frame, Media, MediaKind, Metadata, TrackConfig};

/// Bounds on the frames a [`GopCache`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GopConfig {
    /// The most frames (video and audio together) kept since the last keyframe.
    pub max_frames: usize,
    /// The most payload bytes kept since the last keyframe.
    pub max_bytes: usize,
}

impl Default for GopConfig {
    fn default() -> Self {
        // About 30 s of 30 fps video with audio, or a 10 s GOP at 8 Mbit/s: longer GOPs are
        // unusual for live streams, and a cache that cannot hold one simply starts players at
        // the following keyframe.
        Self {
            max_frames: 1024,
            max_bytes: 32 << 20,
        }
    }
}

/// The latest codec configurations and metadata of a stream, and the frames since its last
/// video keyframe.
///
/// Invariant: when any frame is cached, the first one is a video keyframe. Audio-only streams
/// cache no frames, since a player can start audio anywhere. When a frame would exceed the
/// bounds, the cached frames are dropped (configurations kept) and caching resumes at the next
/// keyframe, so new players start a little later instead of the cache growing.
#[derive(Debug, Clone)]
pub struct GopCache {
    config: GopConfig,
    video_config: Option<TrackConfig>,
    audio_config: Option<TrackConfig>,
    metadata: Option<Metadata>,
    frames: Vec<Frame>,
    frame_bytes: usize,
    has_video: bool,
}

impl GopCache {
    /// An empty cache.
    pub fn new(config: GopConfig) -> Self {
        Self {
            config,
            video_config: None,
            audio_config: None,
            metadata: None,
            frames: Vec::new(),
            frame_bytes: 0,
            has_video: false,
        }
    }

    /// Takes the next item of the live stream into account.
    pub fn push(&mut self, media: &Media) {
        match media {
            Media::Config(config) => {
                let slot = match config.kind() {
                    MediaKind::Video => {
                        self.has_video = true;
                        &mut self.video_config
                    }
                    MediaKind::Audio => &mut self.audio_config,
                };
                // Cached frames were coded against the old parameters; after the new config
                // they would not decode, so a joining player waits for the next keyframe.
                let changed = slot.as_ref().is_some_and(|old| old != config);
                *slot = Some(config.clone());
                if changed {
                    self.clear_frames();
                }
            }
            Media::Metadata(metadata) => self.metadata = Some(metadata.clone()),
            Media::Frame(frame) => {
                let starts_gop = match frame.kind() {
                    MediaKind::Video => {
                        self.has_video = true;
                        frame.keyframe
                    }
                    MediaKind::Audio => false,
                };
                if starts_gop {
                    self.clear_frames();
                    self.append(frame);
                } else if !self.frames.is_empty() && !self.append(frame) {
                    self.clear_frames();
                }
            }
        }
    }

    /// What a new player must receive first, in order: the video and audio configurations,
    /// the metadata, then the cached frames (starting at a keyframe).
    ///
    /// Each item is a clone sharing its payload with the cache (a reference-count bump).
    pub fn snapshot(&self) -> impl Iterator<Item = Media> + '_ {
        let configs = self
            .video_config
            .iter()
            .chain(self.audio_config.iter())
            .cloned()
            .map(Media::Config);
        let metadata = self.metadata.iter().cloned().map(Media::Metadata);
        let frames = self.frames.iter().cloned().map(Media::Frame);
        configs.chain(metadata).chain(frames)
    }

    /// Whether the stream has shown a video configuration or frame.
    pub fn has_video(&self) -> bool {
        self.has_video
    }

    /// The latest video configuration.
    pub fn video_config(&self) -> Option<&TrackConfig> {
        self.video_config.as_ref()
    }

    /// The latest audio configuration.
    pub fn audio_config(&self) -> Option<&TrackConfig> {
        self.audio_config.as_ref()
    }

    /// The latest metadata.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// The cached frames; the first, if any, is a video keyframe.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Payload bytes of the cached frames.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// Appends `frame` if it fits within the bounds.
    fn append(&mut self, frame: &Frame) -> bool {
        let bytes = self.frame_bytes.saturating_add(frame.payload.len());
        if self.frames.len() >= self.config.max_frames || bytes > self.config.max_bytes {
            return false;
        }
        self.frames.push(frame.clone());
        self.frame_bytes = bytes;
        true
    }

    fn clear_frames(&mut self) {
        // `clear` keeps the capacity, so a steady stream stops allocating after its first GOP.
        self.frames.clear();
        self.frame_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::test_media::*;
    use alloc::vec;

    fn dts_of(items: &[Media]) -> Vec<i64> {
        items
            .iter()
            .filter_map(|m| match m {
                Media::Frame(f) => Some(f.dts),
                _ => None,
            })
            .collect()
    }

    fn feed(cache: &mut GopCache, items: &[Media]) {
        for item in items {
            cache.push(item);
        }
    }

    #[test]
    fn snapshot_is_configs_metadata_then_gop() {
        let mut cache = GopCache::new(GopConfig::default());
        feed(
            &mut cache,
            &[
                metadata(1),
                video_config(1),
                audio_config(),
                video(1, true, 10),
                audio(2, 5),
                video(3, false, 10),
                video(4, true, 10),
                audio(5, 5),
                video(6, false, 10),
            ],
        );
        let snapshot: Vec<Media> = cache.snapshot().collect();
        assert_eq!(snapshot[0], video_config(1));
        assert_eq!(snapshot[1], audio_config());
        assert_eq!(snapshot[2], metadata(1));
        assert_eq!(dts_of(&snapshot), vec![4, 5, 6]);
        assert_eq!(cache.frame_bytes(), 25);
    }

    #[test]
    fn nothing_is_cached_before_the_first_keyframe() {
        let mut cache = GopCache::new(GopConfig::default());
        feed(
            &mut cache,
            &[video_config(1), audio(1, 5), video(2, false, 10)],
        );
        assert!(cache.frames().is_empty());
        assert_eq!(cache.snapshot().count(), 1);
    }

    #[test]
    fn audio_only_streams_keep_only_configs() {
        let mut cache = GopCache::new(GopConfig::default());
        feed(&mut cache, &[audio_config(), audio(1, 5), audio(2, 5)]);
        assert!(!cache.has_video());
        assert_eq!(cache.snapshot().collect::<Vec<_>>(), vec![audio_config()]);
    }

    #[test]
    fn overflow_drops_frames_until_next_keyframe() {
        let mut cache = GopCache::new(GopConfig {
            max_frames: 3,
            max_bytes: 1000,
        });
        feed(
            &mut cache,
            &[
                video_config(1),
                video(1, true, 10),
                video(2, false, 10),
                video(3, false, 10),
            ],
        );
        assert_eq!(cache.frames().len(), 3);
        cache.push(&video(4, false, 10));
        assert!(cache.frames().is_empty());
        assert_eq!(cache.frame_bytes(), 0);
        assert!(cache.video_config().is_some());
        cache.push(&video(5, false, 10));
        assert!(cache.frames().is_empty());
        cache.push(&video(6, true, 10));
        assert_eq!(dts_of(&cache.snapshot().collect::<Vec<_>>()), vec![6]);
    }

    #[test]
    fn byte_bound_and_oversized_keyframe() {
        let mut cache = GopCache::new(GopConfig {
            max_frames: 100,
            max_bytes: 25,
        });
        feed(&mut cache, &[video(1, true, 10), video(2, false, 10)]);
        assert_eq!(cache.frame_bytes(), 20);
        cache.push(&video(3, false, 10));
        assert!(cache.frames().is_empty());
        cache.push(&video(4, true, 26));
        assert!(cache.frames().is_empty());
        cache.push(&video(5, false, 1));
        assert!(cache.frames().is_empty());
    }

    #[test]
    fn config_change_replaces_config_and_drops_stale_frames() {
        let mut cache = GopCache::new(GopConfig::default());
        feed(&mut cache, &[video_config(1), video(1, true, 10)]);
        // Repeating the same config (some encoders send it before every IDR) keeps the GOP.
        cache.push(&video_config(1));
        assert_eq!(cache.frames().len(), 1);
        cache.push(&video_config(2));
        assert!(cache.frames().is_empty());
        assert_eq!(cache.snapshot().collect::<Vec<_>>(), vec![video_config(2)]);
    }
}
