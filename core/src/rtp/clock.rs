//! RTP timestamps ↔ milliseconds, with 32-bit wrap-around unwrapped into an `i64` timeline.
//!
//! Both directions round to the nearest unit, so for any clock rate of at least 1 kHz a
//! millisecond value survives ms → RTP → ms exactly (the RTP error is at most half a tick,
//! which is under half a millisecond).

/// Maps one stream's RTP timestamps to milliseconds and back.
///
/// Unwrapping assumes consecutive timestamps given to [`RtpClock::unwrap`] are less than
/// 2^31 ticks apart (6.6 hours at 90 kHz), so a step across 2^32 continues the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpClock {
    rate: u32,
    origin: Option<u32>,
    last: Option<(u32, i64)>,
}

impl RtpClock {
    /// A clock of `rate` Hz (0 is treated as 1) on which RTP timestamp `origin` is 0 ms;
    /// `None` makes the first unwrapped timestamp the origin.
    pub fn new(rate: u32, origin: Option<u32>) -> Self {
        Self {
            rate: rate.max(1),
            origin,
            last: None,
        }
    }

    /// The clock rate in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The timestamp that is 0 ms, once known.
    pub fn origin(&self) -> Option<u32> {
        self.origin
    }

    /// Ticks since the origin of a received timestamp, continuing across wrap-around from the
    /// previous call (and negative for a timestamp just before the origin).
    pub fn unwrap(&mut self, timestamp: u32) -> i64 {
        let ticks = match self.last {
            Some((last, last_ticks)) => {
                last_ticks.saturating_add(i64::from(timestamp.wrapping_sub(last) as i32))
            }
            None => {
                let origin = *self.origin.get_or_insert(timestamp);
                i64::from(timestamp.wrapping_sub(origin) as i32)
            }
        };
        self.last = Some((timestamp, ticks));
        ticks
    }

    /// Milliseconds since the origin of a received timestamp (see [`RtpClock::unwrap`]).
    pub fn millis(&mut self, timestamp: u32) -> i64 {
        let ticks = self.unwrap(timestamp);
        self.ticks_to_millis(ticks)
    }

    /// Converts ticks to milliseconds, rounding to the nearest.
    pub fn ticks_to_millis(&self, ticks: i64) -> i64 {
        rounded_ratio(ticks, 1000, self.rate)
    }

    /// Converts milliseconds to ticks, rounding to the nearest.
    pub fn millis_to_ticks(&self, millis: i64) -> i64 {
        rounded_ratio(millis, self.rate, 1000)
    }

    /// The RTP timestamp to send for media time `millis` (wrapping modulo 2^32).
    pub fn timestamp(&self, millis: i64) -> u32 {
        // Truncating to u32 is the modulo 2^32 that RTP timestamps are defined by.
        let ticks = self.millis_to_ticks(millis) as u32;
        self.origin.unwrap_or(0).wrapping_add(ticks)
    }
}

/// `value * numerator / denominator` rounded half up, in i128 so no product overflows,
/// saturated to i64.
fn rounded_ratio(value: i64, numerator: u32, denominator: u32) -> i64 {
    let denominator = i128::from(denominator.max(1));
    let scaled = i128::from(value) * i128::from(numerator) * 2 + denominator;
    let rounded = scaled.div_euclid(2 * denominator);
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unwraps_across_the_32_bit_boundary() {
        let mut clock = RtpClock::new(90_000, Some(u32::MAX - 89_999));
        assert_eq!(clock.millis(u32::MAX - 89_999), 0);
        assert_eq!(clock.millis(u32::MAX), 1000);
        assert_eq!(clock.millis(89_999), 2000);
        assert_eq!(clock.unwrap(179_999), 269_999);
        // A step backwards (B-frame presentation order) across the boundary stays on the lap.
        assert_eq!(clock.unwrap(u32::MAX), 89_999);
    }

    #[test]
    fn first_timestamp_is_the_origin_when_none_is_given() {
        let mut clock = RtpClock::new(44_100, None);
        assert_eq!(clock.millis(123_456), 0);
        assert_eq!(clock.millis(123_456 + 44_100), 1000);
        assert_eq!(clock.origin(), Some(123_456));
    }

    #[test]
    fn rounds_to_nearest_in_both_directions() {
        let clock = RtpClock::new(44_100, Some(0));
        assert_eq!(clock.millis_to_ticks(1), 44);
        assert_eq!(clock.ticks_to_millis(44), 1);
        assert_eq!(clock.ticks_to_millis(-44), -1);
        assert_eq!(clock.timestamp(-1), u32::MAX - 43);
    }

    proptest! {
        #[test]
        fn millis_survive_a_round_trip_with_wrap(
            rate in prop_oneof![Just(90_000u32), Just(48_000), Just(44_100), Just(8_000), 1000u32..200_000],
            origin in any::<u32>(),
            steps in proptest::collection::vec(-500i64..10_000_000, 1..20),
        ) {
            let sender = RtpClock::new(rate, Some(origin));
            let mut receiver = RtpClock::new(rate, Some(origin));
            let mut millis = 0i64;
            prop_assert_eq!(receiver.millis(sender.timestamp(0)), 0);
            for step in steps {
                millis += step;
                prop_assert_eq!(receiver.millis(sender.timestamp(millis)), millis);
            }
        }
    }
}
