//! What a simulated client saw, with the virtual time of each event, and the checks a test
//! runs on it: did a player get every frame, in order, intact?

use std::collections::BTreeMap;

use mediakit_core::Millis;

use super::media::{FrameId, MediaSpec, Track};

/// One thing that happened to a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// The TCP connection is established.
    Connected,
    /// The server accepted: publishing or playing started, or an HTTP `200` head arrived.
    Started,
    /// The server refused: the RTMP status code or the HTTP status line's code.
    Refused(String),
    /// A track's codec configuration arrived.
    Config(Track),
    /// Stream metadata arrived.
    Metadata,
    /// A frame arrived and checked out; `dts` is the timestamp it carried.
    Frame {
        /// Which frame.
        id: FrameId,
        /// Its decode timestamp as received.
        dts: i64,
    },
    /// A publisher queued a frame for the server.
    Sent(FrameId),
    /// An RTSP SETUP over UDP was answered with the server's RTP and RTCP ports (which
    /// say which worker's socket pair serves the session).
    ServerPorts {
        /// The server's RTP port.
        rtp: u16,
        /// The server's RTCP port.
        rtcp: u16,
    },
    /// A client sent a message that is no progress: an RTMP Ping Request (with an
    /// Acknowledgement), an RTSP `GET_PARAMETER` keep-alive.
    Pinged,
    /// A frame failed its check, or the stream could not be parsed.
    Corrupt(String),
    /// The stream ended (the publisher stopped).
    Ended,
    /// The client stopped reading on purpose.
    Stalled,
    /// The connection ended, and why.
    Closed(String),
}

/// An [`Event`] and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Virtual time.
    pub at: Millis,
    /// What happened.
    pub event: Event,
}

/// Everything one client saw, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientLog {
    records: Vec<Record>,
    bytes_sent: u64,
    bytes_received: u64,
    datagrams_sent: u64,
}

/// Why a player's frames are not what its publisher sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The player never started playing.
    #[error("never started")]
    NeverStarted,
    /// A frame was damaged or the stream did not parse.
    #[error("at {at:?}: {detail}")]
    Corrupt {
        /// When it was seen.
        at: Millis,
        /// What was wrong.
        detail: String,
    },
    /// A track skipped frames or went backwards.
    #[error("{track:?}: {next} follows {previous}")]
    Gap {
        /// The track.
        track: Track,
        /// The frame before.
        previous: u64,
        /// The frame after it.
        next: u64,
    },
    /// Video did not start at a keyframe.
    #[error("video starts at frame {seq}, not a keyframe")]
    NoKeyframeStart {
        /// The first video frame.
        seq: u64,
    },
    /// Timestamps were shifted by different amounts for different frames.
    #[error("{id:?}: timestamp shifted by {shift} ms, earlier frames by {first_shift} ms")]
    Timestamp {
        /// The frame.
        id: FrameId,
        /// Its shift.
        shift: i64,
        /// The first frame's shift.
        first_shift: i64,
    },
    /// Frames published after the player started are missing at the start.
    #[error("{track:?}: publisher sent {expected} after the player started, player began at {received:?}")]
    MissedStart {
        /// The track.
        track: Track,
        /// The first frame sent after the player started.
        expected: u64,
        /// The player's first frame of the track.
        received: Option<u64>,
    },
    /// The player stopped short of the last frame published.
    #[error("{track:?}: publisher's last frame {expected}, player's {received:?}")]
    MissedEnd {
        /// The track.
        track: Track,
        /// The publisher's last frame.
        expected: u64,
        /// The player's last frame.
        received: Option<u64>,
    },
}

/// The frames a player received: per track, the first and last sequence numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// First and last frame of each track received.
    pub tracks: BTreeMap<Track, (u64, u64)>,
    /// Frames received, all tracks together.
    pub frames: usize,
}

impl ClientLog {
    pub(crate) fn push(&mut self, at: Millis, event: Event) {
        self.records.push(Record { at, event });
    }

    pub(crate) fn count_sent(&mut self, bytes: usize) {
        self.bytes_sent += bytes as u64;
    }

    pub(crate) fn count_received(&mut self, bytes: usize) {
        self.bytes_received += bytes as u64;
    }

    pub(crate) fn count_datagram(&mut self, bytes: usize) {
        self.datagrams_sent += 1;
        self.count_sent(bytes);
    }

    /// Every event, in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Bytes the client wrote (TCP) or sent (UDP).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Bytes the client read.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// UDP datagrams the client sent.
    pub fn datagrams_sent(&self) -> u64 {
        self.datagrams_sent
    }

    /// When the first event matching `wanted` happened.
    pub fn first(&self, wanted: impl Fn(&Event) -> bool) -> Option<Millis> {
        self.records
            .iter()
            .find(|record| wanted(&record.event))
            .map(|record| record.at)
    }

    /// When the connection was established.
    pub fn connected_at(&self) -> Option<Millis> {
        self.first(|event| *event == Event::Connected)
    }

    /// When the server accepted the publish or play.
    pub fn started_at(&self) -> Option<Millis> {
        self.first(|event| *event == Event::Started)
    }

    /// When and how the server refused.
    pub fn refused(&self) -> Option<(Millis, &str)> {
        self.records.iter().find_map(|record| match &record.event {
            Event::Refused(code) => Some((record.at, code.as_str())),
            _ => None,
        })
    }

    /// When and why the connection ended.
    pub fn closed(&self) -> Option<(Millis, &str)> {
        self.records.iter().find_map(|record| match &record.event {
            Event::Closed(reason) => Some((record.at, reason.as_str())),
            _ => None,
        })
    }

    /// The frames received, with when.
    pub fn frames(&self) -> impl Iterator<Item = (Millis, FrameId, i64)> + '_ {
        self.records.iter().filter_map(|record| match record.event {
            Event::Frame { id, dts } => Some((record.at, id, dts)),
            _ => None,
        })
    }

    /// The frames a publisher sent, with when.
    pub fn sent(&self) -> impl Iterator<Item = (Millis, FrameId)> + '_ {
        self.records.iter().filter_map(|record| match record.event {
            Event::Sent(id) => Some((record.at, id)),
            _ => None,
        })
    }

    /// Checks the frames received on their own: none damaged, each track consecutive, video
    /// starting at a keyframe, every timestamp shifted by the same amount (zero, unless the
    /// server rebases).
    pub fn check_stream(&self, spec: &MediaSpec) -> Result<Delivered, DeliveryError> {
        if let Some(record) = self
            .records
            .iter()
            .find(|record| matches!(record.event, Event::Corrupt(_)))
        {
            let detail = match &record.event {
                Event::Corrupt(detail) => detail.clone(),
                _ => String::new(),
            };
            return Err(DeliveryError::Corrupt {
                at: record.at,
                detail,
            });
        }
        let mut delivered = Delivered::default();
        let mut first_shift = None;
        for (_, id, dts) in self.frames() {
            delivered.frames += 1;
            let shift = dts - spec.dts(id);
            let first_shift = *first_shift.get_or_insert(shift);
            if shift != first_shift {
                return Err(DeliveryError::Timestamp {
                    id,
                    shift,
                    first_shift,
                });
            }
            match delivered.tracks.get_mut(&id.kind) {
                Some((_, last)) => {
                    if id.seq != *last + 1 {
                        return Err(DeliveryError::Gap {
                            track: id.kind,
                            previous: *last,
                            next: id.seq,
                        });
                    }
                    *last = id.seq;
                }
                None => {
                    if id.kind == Track::Video && !spec.is_keyframe(id) {
                        return Err(DeliveryError::NoKeyframeStart { seq: id.seq });
                    }
                    delivered.tracks.insert(id.kind, (id.seq, id.seq));
                }
            }
        }
        Ok(delivered)
    }

    /// Checks a player against its publisher: [`ClientLog::check_stream`], and on each track
    /// every frame the publisher sent after the player started is there, up to the last
    /// one the publisher sent.
    pub fn check_delivery(
        &self,
        publisher: &ClientLog,
        spec: &MediaSpec,
    ) -> Result<Delivered, DeliveryError> {
        let started = self.started_at().ok_or(DeliveryError::NeverStarted)?;
        let delivered = self.check_stream(spec)?;
        for track in [Track::Video, Track::Audio] {
            let sent: Vec<(Millis, u64)> = publisher
                .sent()
                .filter(|(_, id)| id.kind == track)
                .map(|(at, id)| (at, id.seq))
                .collect();
            let received = delivered.tracks.get(&track).copied();
            if let Some(&(_, expected)) = sent.iter().find(|(at, _)| *at > started) {
                if received.is_none_or(|(first, _)| first > expected) {
                    return Err(DeliveryError::MissedStart {
                        track,
                        expected,
                        received: received.map(|(first, _)| first),
                    });
                }
            }
            if let Some(&(_, last)) = sent.last() {
                if received.is_none_or(|(_, received_last)| received_last != last) {
                    return Err(DeliveryError::MissedEnd {
                        track,
                        expected: last,
                        received: received.map(|(_, received_last)| received_last),
                    });
                }
            }
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(seq: u64) -> FrameId {
        FrameId {
            kind: Track::Video,
            seq,
        }
    }

    fn frame(log: &mut ClientLog, spec: &MediaSpec, at: u64, id: FrameId, shift: i64) {
        log.push(
            Millis(at),
            Event::Frame {
                id,
                dts: spec.dts(id) + shift,
            },
        );
    }

    #[test]
    fn a_clean_stream_from_a_keyframe_passes() {
        let spec = MediaSpec::default();
        let mut publisher = ClientLog::default();
        let mut player = ClientLog::default();
        // Joined just before frame 50 went out, and got the GOP from keyframe 50 on.
        player.push(Millis(1990), Event::Started);
        for seq in 0..120 {
            publisher.push(Millis(seq * 40), Event::Sent(video(seq)));
        }
        for seq in 50..120 {
            frame(&mut player, &spec, 100 + seq, video(seq), -2000);
        }
        let delivered = player.check_delivery(&publisher, &spec).unwrap();
        assert_eq!(delivered.tracks[&Track::Video], (50, 119));
        assert_eq!(delivered.frames, 70);
    }

    #[test]
    fn gaps_late_starts_shifts_and_short_ends_are_reported() {
        let spec = MediaSpec::default();
        let mut publisher = ClientLog::default();
        for seq in 0..10 {
            publisher.push(Millis(seq * 40), Event::Sent(video(seq)));
        }
        let player = |frames: &[(u64, i64)]| {
            let mut log = ClientLog::default();
            log.push(Millis(0), Event::Started);
            for &(seq, shift) in frames {
                frame(&mut log, &spec, seq * 40, video(seq), shift);
            }
            log.check_delivery(&publisher, &spec)
        };
        let all: Vec<(u64, i64)> = (0..10).map(|seq| (seq, 0)).collect();
        assert!(player(&all).is_ok());
        let mut gap = all.clone();
        gap.remove(4);
        assert!(matches!(
            player(&gap),
            Err(DeliveryError::Gap {
                previous: 3,
                next: 5,
                ..
            })
        ));
        let mut shifted = all.clone();
        shifted[6].1 = 1;
        assert!(matches!(
            player(&shifted),
            Err(DeliveryError::Timestamp { .. })
        ));
        assert!(matches!(
            player(&all[..9]),
            Err(DeliveryError::MissedEnd {
                expected: 9,
                received: Some(8),
                ..
            })
        ));
        assert!(matches!(
            player(&all[1..]),
            Err(DeliveryError::NoKeyframeStart { seq: 1 })
        ));
        assert!(matches!(
            player(&[]),
            Err(DeliveryError::MissedStart {
                expected: 1,
                received: None,
                ..
            })
        ));
        assert_eq!(
            ClientLog::default().check_delivery(&publisher, &spec),
            Err(DeliveryError::NeverStarted)
        );
    }
}
