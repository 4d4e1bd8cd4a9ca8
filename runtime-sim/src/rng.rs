//! The simulation's only source of randomness: SplitMix64, seeded from the world's seed.
//!
//! SplitMix64 is tiny, fast and passes BigCrush; what matters here is that the same seed
//! gives the same sequence on every platform and in every build, which an external crate's
//! default generator does not promise across versions.

/// A deterministic 64-bit pseudo-random generator.
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// An independent generator for one purpose (session seeds, packet loss, media sizes),
    /// so that drawing more for one purpose does not shift the numbers of another.
    pub fn fork(seed: u64, purpose: u64) -> Self {
        let mut mixer = Self::new(seed ^ purpose.wrapping_mul(0xA076_1D64_78BD_642F));
        Self::new(mixer.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`low` when the range is empty). The modulo bias is below
    /// 2^-32 for the ranges a simulation draws from.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        let span = high.saturating_sub(low);
        if span == 0 {
            return low;
        }
        low + self.next_u64() % span
    }

    /// True with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits as a float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_sequence_is_splitmix64() {
        // Reference values of SplitMix64 seeded with 1234567.
        let mut rng = SimRng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn forks_differ_by_purpose_and_are_stable() {
        let a = SimRng::fork(7, 1).next_u64();
        let b = SimRng::fork(7, 2).next_u64();
        assert_ne!(a, b);
        assert_eq!(a, SimRng::fork(7, 1).next_u64());
    }

    #[test]
    fn chance_is_never_for_zero_and_always_for_one() {
        let mut rng = SimRng::new(3);
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
        let hits = (0..10_000).filter(|_| rng.chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
    }

    proptest! {
        #[test]
        fn range_stays_in_bounds(seed: u64, low in 0u64..1000, span in 0u64..1000) {
            let mut rng = SimRng::new(seed);
            for _ in 0..32 {
                let value = rng.range(low, low + span);
                prop_assert!(value == low || (low..low + span).contains(&value));
            }
        }

        #[test]
        fn same_seed_same_sequence(seed: u64) {
            let mut a = SimRng::new(seed);
            let mut b = SimRng::new(seed);
            for _ in 0..16 {
                prop_assert_eq!(a.next_u64(), b.next_u64());
            }
        }
    }
}
