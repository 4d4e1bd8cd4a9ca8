//! Requests that wait for something of a stream that does not exist yet: a player for its
//! publisher (play-before-publish), an HLS playlist request for the stream's first segment.
//!
//! A [`WaitList`] holds who waits for which stream until when, within limits per stream and in
//! total. It never removes a waiter on its own: the waiting request asks with
//! [`WaitList::poll`] whenever it is woken (by the runtime's timer at the deadline, or because
//! what it waits for may exist now) and gets a [`WaitStatus`]. So a stream that appears and
//! disappears again before the waiter looks leaves it waiting until its deadline, with no
//! re-registration and no lost wake-up.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use crate::key::StreamKey;
use crate::time::Millis;

/// Identifies one waiting request within its [`WaitList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaiterId(pub u64);

impl fmt::Display for WaiterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "waiter#{}", self.0)
    }
}

/// How many requests may wait at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitLimits {
    /// The most requests waiting for one stream.
    pub max_per_key: usize,
    /// The most requests waiting for any stream.
    pub max_total: usize,
}

impl Default for WaitLimits {
    fn default() -> Self {
        Self {
            max_per_key: 1024,
            max_total: 16384,
        }
    }
}

/// Why a request could not wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// What it would wait for exists already: serve it now instead.
    #[error("wait for {key}: already live")]
    AlreadyLive {
        /// The stream.
        key: StreamKey,
    },
    /// Too many requests already wait for this stream.
    #[error("wait for {key}: too many requests waiting for it (limit {max})")]
    TooManyForKey {
        /// The stream.
        key: StreamKey,
        /// The limit.
        max: usize,
    },
    /// Too many requests wait overall.
    #[error("wait for {key}: too many requests waiting (limit {max})")]
    TooMany {
        /// The stream.
        key: StreamKey,
        /// The limit.
        max: usize,
    },
}

/// What a waiting request finds when it looks, see [`WaitList::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitStatus<T> {
    /// What it waited for exists: here it is. The request no longer waits.
    Ready(T),
    /// Still waiting; look again when woken, or at this deadline at the latest.
    Pending {
        /// When the wait ends.
        deadline: Millis,
    },
    /// The deadline passed first. The request no longer waits.
    Expired {
        /// What it waited for.
        key: StreamKey,
    },
    /// Not a waiting request (it was cancelled, or has already had its answer).
    Unknown,
}

/// One waiting request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiter {
    key: StreamKey,
    deadline: Millis,
}

/// Who waits for which stream, until when; every collection bounded by [`WaitLimits`].
#[derive(Debug)]
pub struct WaitList {
    limits: WaitLimits,
    waiters: BTreeMap<WaiterId, Waiter>,
    by_key: BTreeMap<StreamKey, Vec<WaiterId>>,
    next: u64,
}

impl WaitList {
    /// An empty list.
    pub fn new(limits: WaitLimits) -> Self {
        Self {
            limits,
            waiters: BTreeMap::new(),
            by_key: BTreeMap::new(),
            next: 0,
        }
    }

    /// Registers a request waiting for `key` until `deadline`.
    pub fn add(&mut self, key: StreamKey, deadline: Millis) -> Result<WaiterId, WaitError> {
        let for_key = self.by_key.get(&key).map_or(0, Vec::len);
        if for_key >= self.limits.max_per_key {
            return Err(WaitError::TooManyForKey {
                key,
                max: self.limits.max_per_key,
            });
        }
        if self.waiters.len() >= self.limits.max_total {
            return Err(WaitError::TooMany {
                key,
                max: self.limits.max_total,
            });
        }
        let id = WaiterId(self.next);
        self.next += 1;
        self.by_key.entry(key.clone()).or_default().push(id);
        self.waiters.insert(id, Waiter { key, deadline });
        Ok(id)
    }

    /// Stops a request waiting (it went away); false if it was not waiting.
    pub fn cancel(&mut self, id: WaiterId) -> bool {
        self.remove(id).is_some()
    }

    /// The requests waiting for `key`, in the order they started waiting: wake them when it
    /// appears, and each finds out with [`WaitList::poll`].
    pub fn waiting_for(&self, key: &StreamKey) -> &[WaiterId] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    /// The deadline of a waiting request.
    pub fn deadline(&self, id: WaiterId) -> Option<Millis> {
        self.waiters.get(&id).map(|waiter| waiter.deadline)
    }

    /// Looks whether request `id` may stop waiting at `now`: `ready` is asked for what the
    /// request waits for and answers `Some` once it exists. Readiness wins over a deadline
    /// that passed at the same time.
    pub fn poll<T>(
        &mut self,
        id: WaiterId,
        now: Millis,
        ready: impl FnOnce(&StreamKey) -> Option<T>,
    ) -> WaitStatus<T> {
        let Some(waiter) = self.waiters.get(&id) else {
            return WaitStatus::Unknown;
        };
        if let Some(found) = ready(&waiter.key) {
            self.remove(id);
            return WaitStatus::Ready(found);
        }
        if now < waiter.deadline {
            return WaitStatus::Pending {
                deadline: waiter.deadline,
            };
        }
        match self.remove(id) {
            Some(waiter) => WaitStatus::Expired { key: waiter.key },
            None => WaitStatus::Unknown,
        }
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// True if nobody waits.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    fn remove(&mut self, id: WaiterId) -> Option<Waiter> {
        let waiter = self.waiters.remove(&id)?;
        if let Some(ids) = self.by_key.get_mut(&waiter.key) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.by_key.remove(&waiter.key);
            }
        }
        Some(waiter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use proptest::prelude::*;

    fn key(name: &str) -> StreamKey {
        StreamKey::parse("live", name).unwrap()
    }

    fn list() -> WaitList {
        WaitList::new(WaitLimits {
            max_per_key: 2,
            max_total: 3,
        })
    }

    #[test]
    fn a_waiter_sees_pending_then_ready_or_expired_exactly_once() {
        let mut waits = list();
        let a = waits.add(key("a"), Millis(100)).unwrap();
        let b = waits.add(key("b"), Millis(50)).unwrap();
        assert_eq!(waits.waiting_for(&key("a")), &[a]);
        assert_eq!(
            waits.poll(a, Millis(10), |_| None::<()>),
            WaitStatus::Pending {
                deadline: Millis(100)
            }
        );
        assert_eq!(
            waits.poll(a, Millis(10), |k| Some(k.clone())),
            WaitStatus::Ready(key("a"))
        );
        assert_eq!(waits.poll(a, Millis(10), |_| Some(())), WaitStatus::Unknown);
        assert_eq!(
            waits.poll(b, Millis(50), |_| None::<()>),
            WaitStatus::Expired { key: key("b") }
        );
        assert_eq!(waits.poll(b, Millis(60), |_| Some(())), WaitStatus::Unknown);
        assert!(waits.is_empty());
        assert_eq!(waits.waiting_for(&key("a")), &[] as &[WaiterId]);
    }

    #[test]
    fn readiness_wins_over_a_deadline_passed_at_the_same_time() {
        let mut waits = list();
        let a = waits.add(key("a"), Millis(5)).unwrap();
        assert_eq!(waits.poll(a, Millis(9), |_| Some(7)), WaitStatus::Ready(7));
    }

    #[test]
    fn limits_per_key_and_in_total() {
        let mut waits = list();
        let a1 = waits.add(key("a"), Millis(1)).unwrap();
        waits.add(key("a"), Millis(1)).unwrap();
        assert!(matches!(
            waits.add(key("a"), Millis(1)),
            Err(WaitError::TooManyForKey { max: 2, .. })
        ));
        waits.add(key("b"), Millis(1)).unwrap();
        assert!(matches!(
            waits.add(key("c"), Millis(1)),
            Err(WaitError::TooMany { max: 3, .. })
        ));
        assert!(waits.cancel(a1));
        assert!(!waits.cancel(a1));
        assert!(waits.add(key("c"), Millis(1)).is_ok());
        assert_eq!(waits.len(), 3);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, u64),
        Cancel(usize),
        Poll(usize, bool),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..3, 0u64..40).prop_map(|(k, t)| Op::Add(k, t)),
            1 => any::<usize>().prop_map(Op::Cancel),
            3 => (any::<usize>(), any::<bool>()).prop_map(|(i, r)| Op::Poll(i, r)),
            2 => (0u64..20).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Against a plain map: limits hold, every waiter gets exactly one final answer, and
        /// the per-key index always matches the waiters.
        #[test]
        fn wait_list_matches_model(ops in proptest::collection::vec(op(), 0..150)) {
            let limits = WaitLimits { max_per_key: 3, max_total: 5 };
            let mut waits = WaitList::new(limits);
            let mut model: BTreeMap<WaiterId, (u8, u64)> = BTreeMap::new();
            let mut issued: Vec<WaiterId> = Vec::new();
            let mut answered: BTreeSet<WaiterId> = BTreeSet::new();
            let mut now = 0u64;
            let name = |k: u8| key(["a", "b", "c"][usize::from(k)]);
            for op in ops {
                match op {
                    Op::Add(k, timeout) => {
                        let for_key = model.values().filter(|(mk, _)| *mk == k).count();
                        match waits.add(name(k), Millis(now + timeout)) {
                            Ok(id) => {
                                prop_assert!(for_key < 3 && model.len() < 5);
                                prop_assert!(!issued.contains(&id));
                                issued.push(id);
                                model.insert(id, (k, now + timeout));
                            }
                            Err(_) => prop_assert!(for_key >= 3 || model.len() >= 5),
                        }
                    }
                    Op::Cancel(i) => {
                        if let Some(&id) = issued.get(i % issued.len().max(1)) {
                            prop_assert_eq!(waits.cancel(id), model.remove(&id).is_some());
                        }
                    }
                    Op::Poll(i, ready) => {
                        if let Some(&id) = issued.get(i % issued.len().max(1)) {
                            let status = waits.poll(id, Millis(now), |_| ready.then_some(()));
                            match model.get(&id).copied() {
                                None => prop_assert_eq!(status, WaitStatus::Unknown),
                                Some(_) if ready => {
                                    prop_assert_eq!(status, WaitStatus::Ready(()));
                                    model.remove(&id);
                                    prop_assert!(answered.insert(id));
                                }
                                Some((k, deadline)) if now >= deadline => {
                                    prop_assert_eq!(status, WaitStatus::Expired { key: name(k) });
                                    model.remove(&id);
                                    prop_assert!(answered.insert(id));
                                }
                                Some((_, deadline)) => {
                                    prop_assert_eq!(status, WaitStatus::Pending { deadline: Millis(deadline) });
                                }
                            }
                        }
                    }
                    Op::Advance(ms) => now += ms,
                }
                prop_assert_eq!(waits.len(), model.len());
                for k in 0..3u8 {
                    let expected: Vec<WaiterId> = model.iter()
                        .filter(|(_, (mk, _))| *mk == k).map(|(id, _)| *id).collect();
                    prop_assert_eq!(waits.waiting_for(&name(k)), expected.as_slice());
                }
            }
        }
    }
}
