//! Time as the core sees it: a millisecond count handed in by the caller.

use core::ops::{Add, Sub};

/// A point in time in milliseconds on the caller's monotonic clock.
///
/// The core never reads a clock; runtimes pass `Millis` into every method that needs the
/// current time, which lets tests drive sessions with virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// The zero point of the caller's clock.
    pub const ZERO: Millis = Millis(0);

    /// Milliseconds elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<u64> for Millis {
    type Output = Millis;
    fn add(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

impl Sub<u64> for Millis {
    type Output = Millis;
    fn sub(self, ms: u64) -> Millis {
        Millis(self.0.saturating_sub(ms))
    }
}
