//! Rate limits: how often something a peer can trigger may happen, with time passed in.
//!
//! One [`RateLimit`] shape serves every such bound: pings answered per second, log lines per
//! second, and whatever later needs the same. [`LogGate`] adds what a log needs on top (how
//! many lines were dropped, for the next line that gets through), and [`truncated`] keeps any
//! text a peer chose from making one line long.

use core::fmt;

use crate::time::Millis;

/// At most `per_window` events in each window of `window_ms` milliseconds (fixed windows:
/// the first event after a window has passed starts the next one).
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_window: u32,
    window_ms: u64,
    window_start: Millis,
    in_window: u32,
    refused: u64,
}

impl RateLimit {
    /// A limit of `per_window` events per `window_ms` milliseconds; the first window starts
    /// with the first event.
    pub fn new(per_window: u32, window_ms: u64) -> Self {
        Self {
            per_window,
            window_ms,
            window_start: Millis::ZERO,
            in_window: 0,
            refused: 0,
        }
    }

    /// Whether one more event may happen at `now`; a refused one is counted.
    pub fn allow(&mut self, now: Millis) -> bool {
        if self.in_window == 0 || now.saturating_since(self.window_start) >= self.window_ms {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window < self.per_window {
            self.in_window += 1;
            true
        } else {
            self.refused = self.refused.saturating_add(1);
            false
        }
    }

    /// Events refused since the last call.
    pub fn take_refused(&mut self) -> u64 {
        core::mem::take(&mut self.refused)
    }
}

/// What to do with one log line, see [`LogGate::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDecision {
    /// Log it; `suppressed_before` lines were dropped since the last one that was logged.
    Log {
        /// Lines dropped since the last line that was logged.
        suppressed_before: u64,
    },
    /// Drop it.
    Suppress,
}

/// Lets at most a number of log lines per second through and counts the rest, so a client
/// that misbehaves in a loop produces a bounded number of lines and the log still says how
/// many were dropped.
#[derive(Debug, Clone)]
pub struct LogGate {
    limit: RateLimit,
}

impl LogGate {
    /// A gate allowing `per_second` lines each second.
    pub fn new(per_second: u32) -> Self {
        Self {
            limit: RateLimit::new(per_second, 1_000),
        }
    }

    /// Decides about one line at `now`.
    pub fn check(&mut self, now: Millis) -> LogDecision {
        if self.limit.allow(now) {
            LogDecision::Log {
                suppressed_before: self.limit.take_refused(),
            }
        } else {
            LogDecision::Suppress
        }
    }
}

/// The longest text of a peer's choosing put in one log line by default, in bytes.
pub const LOG_TEXT_MAX: usize = 160;

/// Text shown with at most `max` bytes (cut at a character boundary), followed by how long it
/// really was when it was cut: for names and reasons that came from the network.
#[derive(Debug, Clone, Copy)]
pub struct Truncated<'a> {
    text: &'a str,
    max: usize,
}

/// `text` for a log line, at most `max` bytes of it (see [`Truncated`]).
pub fn truncated(text: &str, max: usize) -> Truncated<'_> {
    Truncated { text, max }
}

impl fmt::Display for Truncated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.len() <= self.max {
            return f.write_str(self.text);
        }
        let mut end = self.max;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let shown = self.text.get(..end).unwrap_or_default();
        write!(f, "{shown}…({} bytes)", self.text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    #[test]
    fn rate_limit_allows_a_burst_per_window() {
        let mut limit = RateLimit::new(2, 1_000);
        assert!(limit.allow(Millis(5)));
        assert!(limit.allow(Millis(5)));
        assert!(!limit.allow(Millis(900)));
        assert!(!limit.allow(Millis(1_004)));
        assert_eq!(limit.take_refused(), 2);
        assert!(limit.allow(Millis(1_005)));
        assert_eq!(limit.take_refused(), 0);
    }

    #[test]
    fn log_gate_reports_what_it_dropped() {
        let mut gate = LogGate::new(2);
        let logged = LogDecision::Log {
            suppressed_before: 0,
        };
        assert_eq!(gate.check(Millis(0)), logged);
        assert_eq!(gate.check(Millis(0)), logged);
        for _ in 0..100 {
            assert_eq!(gate.check(Millis(10)), LogDecision::Suppress);
        }
        assert_eq!(
            gate.check(Millis(1_001)),
            LogDecision::Log {
                suppressed_before: 100
            }
        );
    }

    #[test]
    fn truncation_cuts_at_a_character_boundary_and_says_how_long() {
        assert_eq!(truncated("live/demo", 20).to_string(), "live/demo");
        assert_eq!(truncated("abcdef", 3).to_string(), "abc…(6 bytes)");
        // 'é' is two bytes: a cut inside it moves back.
        assert_eq!(truncated("aébc", 2).to_string(), "a…(5 bytes)");
    }

    proptest! {
        #[test]
        fn never_more_than_the_limit_in_any_window(
            steps in proptest::collection::vec(0u64..400, 1..300),
            per_window in 1u32..5,
        ) {
            let mut limit = RateLimit::new(per_window, 1_000);
            let mut now = 0u64;
            let mut allowed: alloc::vec::Vec<u64> = alloc::vec::Vec::new();
            for step in steps {
                now += step;
                if limit.allow(Millis(now)) {
                    allowed.push(now);
                }
            }
            // Fixed windows: at most per_window allowed events start within any window that
            // starts at an allowed event.
            for (i, start) in allowed.iter().enumerate() {
                let in_window = allowed[i..].iter().take_while(|t| **t < start + 1_000).count();
                prop_assert!(in_window <= 2 * per_window as usize);
            }
            prop_assert!(!allowed.is_empty());
        }

        #[test]
        fn truncated_text_is_bounded(text in "\\PC{0,64}", max in 0usize..40) {
            let shown = truncated(&text, max).to_string();
            prop_assert!(shown.len() <= max + "…( bytes)".len() + 20);
            prop_assert!(text.starts_with(shown.split('…').next().unwrap_or_default()));
        }
    }
}
