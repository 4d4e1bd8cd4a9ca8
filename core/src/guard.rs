//! The defences every connection gets whatever protocol it speaks: a deadline on send
//! progress, and the thresholds that stop reading a peer (backpressure) or feeding a player.
//!
//! A peer that never reads must not hold a descriptor and its queued output forever, and a
//! peer that sends without reading must not make us queue replies without bound. Both are
//! decided here from what the engine reports after each flush, with time passed in; the
//! engine only reads, writes and closes.

use core::fmt;

use crate::time::Millis;

/// Limits of one connection, see [`ConnectionGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// A connection whose output queue makes no progress for this long is closed; closing
    /// connections, which wait for their queue to drain, get the same deadline.
    pub send_timeout_ms: u64,
    /// At or over this many bytes queued for the peer, the connection is not read until its
    /// queue drains below: whatever the protocol, a peer that does not read cannot make us
    /// queue replies without bound.
    pub max_output_backlog: usize,
    /// At or over this many bytes of unparsed input held for one connection, no more is read.
    pub max_pending_input: usize,
    /// A player whose session holds this many bytes or more takes no more media from its hub
    /// queue: the hub's bounded queue and slow-player policy take over from there.
    pub player_high_water: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            // Long enough for a congested mobile link to recover, short enough that a client
            // that stopped reading does not hold its descriptor for minutes.
            send_timeout_ms: 15_000,
            max_output_backlog: 1 << 20,
            max_pending_input: 1 << 20,
            player_high_water: 512 << 10,
        }
    }
}

/// Why the guard wants a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardVerdict {
    /// Bytes were queued for the peer and none of them left for `stalled_ms` milliseconds.
    SendStalled {
        /// How long the queue made no progress.
        stalled_ms: u64,
    },
}

impl GuardVerdict {
    /// A fixed reason, for close reasons that must be `&'static str`; the `Display` form adds
    /// the numbers.
    pub fn reason(&self) -> &'static str {
        match self {
            GuardVerdict::SendStalled { .. } => "send queue made no progress",
        }
    }
}

impl fmt::Display for GuardVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardVerdict::SendStalled { stalled_ms } => {
                write!(f, "send queue made no progress for {stalled_ms} ms")
            }
        }
    }
}

/// One connection's protocol-independent defences.
///
/// The engine reports every flush attempt with [`ConnectionGuard::on_flush`], arms its timer
/// at [`ConnectionGuard::poll_timeout`] and calls [`ConnectionGuard::handle_timeout`] when it
/// fires; a verdict means close the connection. The stall clock runs only while something is
/// queued, and restarts whenever a byte leaves, the queue empties, or an empty queue fills
/// (a queue that just filled has not stalled yet).
#[derive(Debug, Clone)]
pub struct ConnectionGuard {
    config: GuardConfig,
    /// When the output queue last made progress (see the type's docs).
    last_progress: Millis,
    /// Bytes queued for the peer after the last flush attempt.
    backlog: usize,
    /// The verdict was given; it is given once.
    fired: bool,
}

impl ConnectionGuard {
    /// The guard of a connection accepted at `now`, with nothing queued yet.
    pub fn new(config: GuardConfig, now: Millis) -> Self {
        Self {
            config,
            last_progress: now,
            backlog: 0,
            fired: false,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// Whether the engine may read more input now, with `pending_input` bytes of unparsed
    /// input held and `backlog` bytes queued for the peer.
    pub fn may_read(&self, pending_input: usize, backlog: usize) -> bool {
        pending_input < self.config.max_pending_input && backlog < self.config.max_output_backlog
    }

    /// Whether a player's session, with `backlog` bytes queued (stream and datagrams
    /// together), may take more media from its hub queue.
    pub fn wants_media(&self, backlog: usize) -> bool {
        backlog < self.config.player_high_water
    }

    /// After a flush attempt at `now`: `sent` bytes left this time, `backlog` bytes are still
    /// queued.
    pub fn on_flush(&mut self, now: Millis, sent: usize, backlog: usize) {
        if sent > 0 || backlog == 0 || self.backlog == 0 {
            self.last_progress = now;
        }
        self.backlog = backlog;
    }

    /// When [`ConnectionGuard::handle_timeout`] must be called next: while something is
    /// queued and no verdict was given, the last progress plus the send timeout.
    pub fn poll_timeout(&self) -> Option<Millis> {
        (self.backlog > 0 && !self.fired).then(|| self.last_progress + self.config.send_timeout_ms)
    }

    /// Checks the deadline at `now`. Returns a verdict once, when the queue has made no
    /// progress for the send timeout; the connection is to be closed.
    pub fn handle_timeout(&mut self, now: Millis) -> Option<GuardVerdict> {
        if self.fired || self.backlog == 0 {
            return None;
        }
        let stalled_ms = now.saturating_since(self.last_progress);
        if stalled_ms < self.config.send_timeout_ms {
            return None;
        }
        self.fired = true;
        Some(GuardVerdict::SendStalled { stalled_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    fn guard(timeout: u64) -> ConnectionGuard {
        ConnectionGuard::new(
            GuardConfig {
                send_timeout_ms: timeout,
                ..GuardConfig::default()
            },
            Millis(0),
        )
    }

    #[test]
    fn thresholds_stop_reading_and_feeding() {
        let guard = ConnectionGuard::new(GuardConfig::default(), Millis(0));
        assert!(guard.may_read(0, 0));
        assert!(guard.may_read((1 << 20) - 1, (1 << 20) - 1));
        assert!(!guard.may_read(1 << 20, 0));
        assert!(!guard.may_read(0, 1 << 20));
        assert!(guard.wants_media((512 << 10) - 1));
        assert!(!guard.wants_media(512 << 10));
        assert_eq!(guard.config().send_timeout_ms, 15_000);
    }

    #[test]
    fn an_empty_queue_never_times_out() {
        let mut guard = guard(100);
        assert_eq!(guard.poll_timeout(), None);
        assert_eq!(guard.handle_timeout(Millis(1_000_000)), None);
        guard.on_flush(Millis(50), 10, 0);
        assert_eq!(guard.poll_timeout(), None);
    }

    #[test]
    fn a_queue_that_just_filled_starts_its_clock_then() {
        let mut guard = guard(100);
        // Idle for a long time, then a reply is queued and nothing of it leaves.
        guard.on_flush(Millis(10_000), 0, 500);
        assert_eq!(guard.poll_timeout(), Some(Millis(10_100)));
        assert_eq!(guard.handle_timeout(Millis(10_099)), None);
        guard.on_flush(Millis(10_050), 0, 800);
        assert_eq!(guard.poll_timeout(), Some(Millis(10_100)), "no progress");
        let verdict = guard.handle_timeout(Millis(10_100));
        assert_eq!(verdict, Some(GuardVerdict::SendStalled { stalled_ms: 100 }));
        assert_eq!(guard.poll_timeout(), None);
        assert_eq!(guard.handle_timeout(Millis(20_000)), None, "latched");
    }

    #[test]
    fn each_byte_sent_restarts_the_clock() {
        let mut guard = guard(100);
        guard.on_flush(Millis(0), 0, 500);
        guard.on_flush(Millis(90), 1, 499);
        assert_eq!(guard.poll_timeout(), Some(Millis(190)));
        assert_eq!(guard.handle_timeout(Millis(150)), None);
        guard.on_flush(Millis(150), 0, 0);
        guard.on_flush(Millis(160), 0, 10);
        assert_eq!(guard.poll_timeout(), Some(Millis(260)));
    }

    #[test]
    fn verdict_reads_well_in_a_log_line() {
        let verdict = GuardVerdict::SendStalled { stalled_ms: 15_002 };
        assert_eq!(
            verdict.to_string(),
            "send queue made no progress for 15002 ms"
        );
        assert_eq!(verdict.reason(), "send queue made no progress");
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Time passes; the engine's timer fires at the guard's deadline on the way.
        Advance(u64),
        /// A flush attempt: bytes sent, bytes still queued.
        Flush(usize, usize),
        /// A spurious wake-up checks the deadline early.
        Check,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u64..80).prop_map(Op::Advance),
            3 => (prop_oneof![2 => Just(0usize), 1 => 1usize..100], prop_oneof![1 => Just(0usize), 2 => 1usize..1000])
                .prop_map(|(sent, backlog)| Op::Flush(sent, backlog)),
            1 => Just(Op::Check),
        ]
    }

    proptest! {
        /// Driven as an engine would (the timer fires at `poll_timeout`), the verdict fires
        /// exactly when the queue has stayed non-empty with nothing sent for the timeout, at
        /// that moment and never earlier, and only once.
        #[test]
        fn verdict_fires_iff_the_queue_stalled(
            ops in proptest::collection::vec(op(), 0..120),
            timeout in 1u64..200,
        ) {
            let mut guard = guard(timeout);
            let mut now = 0u64;
            // Model: since when the queue has been non-empty with no byte sent.
            let mut stalled_since: Option<u64> = None;
            let mut fired_at: Option<u64> = None;
            let mut expected_fire: Option<u64> = None;
            for op in ops {
                match op {
                    Op::Advance(ms) => {
                        let until = now + ms;
                        if fired_at.is_none() {
                            if let Some(start) = stalled_since {
                                if start + timeout <= until {
                                    expected_fire = Some(start + timeout);
                                }
                            }
                        }
                        if let Some(at) = guard.poll_timeout() {
                            if at.0 <= until {
                                let verdict = guard.handle_timeout(at);
                                prop_assert_eq!(verdict, Some(GuardVerdict::SendStalled { stalled_ms: timeout }));
                                prop_assert_eq!(fired_at, None);
                                // Never earlier than the timeout after the last progress.
                                prop_assert!(stalled_since.is_some_and(|start| at.0 >= start + timeout));
                                fired_at = Some(at.0);
                            }
                        }
                        prop_assert_eq!(fired_at, expected_fire);
                        now = until;
                    }
                    Op::Flush(sent, backlog) => {
                        stalled_since = match (backlog, sent, stalled_since) {
                            (0, _, _) => None,
                            (_, 1.., _) | (_, _, None) => Some(now),
                            (_, 0, Some(start)) => Some(start),
                        };
                        guard.on_flush(Millis(now), sent, backlog);
                    }
                    Op::Check => {
                        let verdict = guard.handle_timeout(Millis(now));
                        // Time only moves by `Advance`, which fires every due deadline.
                        prop_assert_eq!(verdict, None);
                    }
                }
                let expected_deadline = match (fired_at, stalled_since) {
                    (None, Some(start)) => Some(Millis(start + timeout)),
                    _ => None,
                };
                prop_assert_eq!(guard.poll_timeout(), expected_deadline);
            }
        }
    }
}
