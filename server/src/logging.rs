//! Logging setup and a limiter that keeps hostile clients from filling the disk with log lines.

use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

/// Installs the tracing subscriber; `RUST_LOG` wins over the configured filter.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    // Colour only for a person at a terminal; log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Allows at most `per_second` lines per second; counts the rest so a summary can be logged.
///
/// Each worker owns one (no lock); errors that close connections go through it, so a client
/// that sends garbage in a loop produces a bounded number of lines.
#[derive(Debug)]
pub struct LogLimiter {
    per_second: u32,
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
pub enum LogDecision {
    /// Log it; `suppressed_before` lines were dropped since the last logged one.
    Log {
        /// Lines dropped since the last line that was logged.
        suppressed_before: u64,
    },
    /// Drop it.
    Suppress,
}

impl LogLimiter {
    /// A limiter allowing `per_second` lines each second.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window_start: Instant::now(),
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Decides about one line at time `now`.
    pub fn check(&mut self, now: Instant) -> LogDecision {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window < self.per_second {
            self.in_window += 1;
            let suppressed_before = std::mem::take(&mut self.suppressed);
            LogDecision::Log { suppressed_before }
        } else {
            self.suppressed += 1;
            LogDecision::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_lines_per_second_and_reports_what_it_dropped() {
        let start = Instant::now();
        let mut limiter = LogLimiter::new(2);
        assert_eq!(
            limiter.check(start),
            LogDecision::Log {
                suppressed_before: 0
            }
        );
        assert_eq!(
            limiter.check(start),
            LogDecision::Log {
                suppressed_before: 0
            }
        );
        for _ in 0..100 {
            assert_eq!(limiter.check(start), LogDecision::Suppress);
        }
        let later = start + Duration::from_millis(1001);
        assert_eq!(
            limiter.check(later),
            LogDecision::Log {
                suppressed_before: 100
            }
        );
    }
}
