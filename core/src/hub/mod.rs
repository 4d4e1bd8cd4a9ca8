//! The hub: the registry of live streams and the fan-out of one publisher to many players.
//!
//! Everything here is sans-IO and lock-free; the runtime decides where each piece lives:
//!
//! - one [`Registry`] per server, behind one mutex touched only on control events (publish,
//!   play, unpublish, timeouts), never per frame;
//! - one [`LocalSource`] per stream per worker that serves it, owned by that worker with no
//!   lock. The publisher's worker pushes each [`Media`](crate::media::Media) item into its own `LocalSource` and sends
//!   it once to every other worker that has players of the stream, which push it into theirs;
//!   its [`Forwarder`] decides which workers get each item, and resyncs one whose inbox was
//!   full with a GOP snapshot at the next keyframe;
//! - inside a `LocalSource`, a [`GopCache`] so a new player starts at once at a keyframe, and a
//!   [`ReaderQueue`] per player that bounds what a slow player can hold.

mod forward;
mod gop;
mod reader;
mod registry;
mod source;

pub use forward::{is_resync_point, Forward, ForwardOutcome, Forwarder};
pub use gop::{GopCache, GopConfig};
// Stream names are the whole server's vocabulary, not only the hub's; they are re-exported
// here because the hub is where players and publishers meet them.
pub use crate::key::{strip_query, KeyError, KeyPart, StreamKey, MAX_KEY_PART_LEN};
pub use reader::{PushOutcome, ReaderLimits, ReaderQueue};
pub use registry::{HubConfig, PublishError, PublisherId, Registry, StreamEntry};
pub use source::{LocalSource, PushReport, ReaderKey};

/// Builders for media items shared by the hub's tests.
#[cfg(test)]
pub(crate) mod test_media {
    use crate::media::{AacConfig, AvcConfig, Codec, Frame, Media, Metadata, TrackConfig};
    use bytes::Bytes;

    /// A video frame whose dts is `seq`, so tests can check order and identity.
    pub fn video(seq: i64, keyframe: bool, size: usize) -> Media {
        Media::Frame(Frame {
            codec: Codec::H264,
            dts: seq,
            pts: seq,
            keyframe,
            payload: Bytes::from(alloc::vec![0u8; size]),
        })
    }

    /// An audio frame whose dts is `seq`.
    pub fn audio(seq: i64, size: usize) -> Media {
        Media::Frame(Frame {
            codec: Codec::Aac,
            dts: seq,
            pts: seq,
            keyframe: true,
            payload: Bytes::from(alloc::vec![0u8; size]),
        })
    }

    /// An H.264 configuration; different `version`s give different records.
    pub fn video_config(version: u8) -> Media {
        let sps = Bytes::from(alloc::vec![0x67, 0x64, 0x00, 0x1f, version]);
        let pps = Bytes::from_static(&[0x68, 0xee, 0x3c, 0x80]);
        Media::Config(TrackConfig::Avc(
            AvcConfig::from_parameter_sets(sps, pps).unwrap(),
        ))
    }

    /// An AAC-LC configuration.
    pub fn audio_config() -> Media {
        Media::Config(TrackConfig::Aac(AacConfig::new(2, 44100, 2).unwrap()))
    }

    /// Metadata with a recognisable body.
    pub fn metadata(tag: u8) -> Media {
        Media::Metadata(Metadata {
            amf0: Bytes::from(alloc::vec![tag; 8]),
        })
    }
}
