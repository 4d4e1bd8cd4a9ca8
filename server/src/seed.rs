//! Unpredictable seeds for new sessions on the real runtimes: the RTMP digest handshake's
//! random bytes, RTSP session identifiers, SSRCs and first sequence numbers.
//!
//! These need to differ between connections and be hard to guess, not to be secret, so a
//! hash keyed by std's per-process random `RandomState`, fed a counter and the time, is
//! enough (the core has no RNG of its own; a simulated runtime passes seeded values).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh 64-bit seed.
pub fn fresh() -> u64 {
    let mut hasher = KEYS
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_differ() {
        let seeds: std::collections::HashSet<u64> = (0..1000).map(|_| super::fresh()).collect();
        assert_eq!(seeds.len(), 1000);
    }
}
