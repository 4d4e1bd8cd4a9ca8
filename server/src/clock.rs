//! The one real-time clock of a server process, as the real runtimes read it.
//!
//! The engine and the core see time only as [`Millis`] since this clock's epoch (the first
//! time it is read), so every worker's deadlines are comparable and a simulated runtime can
//! replace the clock with a virtual one. Only the runtime adapters turn a `Millis` back into
//! an `Instant` to arm their timers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mediakit_core::Millis;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// A deadline this far ahead is as good as never, and still fits every platform's `Instant`.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the epoch.
pub fn now() -> Millis {
    Millis(u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// The instant `at` stands for, for a runtime's timer. A deadline beyond what `Instant` can
/// hold (a huge configured timeout) is clamped to a century ahead instead of overflowing.
pub fn instant_at(at: Millis) -> Instant {
    let epoch = epoch();
    let offset = Duration::from_millis(at.0).min(FAR_FUTURE);
    epoch
        .checked_add(offset)
        .unwrap_or(epoch + Duration::from_secs(365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_and_instants_agree_and_huge_deadlines_do_not_overflow() {
        let before = now();
        let at = instant_at(before + 50);
        assert!(at > Instant::now() && at <= Instant::now() + Duration::from_millis(60));
        assert!(instant_at(Millis(u64::MAX)) > Instant::now() + Duration::from_secs(3600));
        assert!(now() >= before);
    }
}
