//! The server-wide registry of live streams and of players waiting for a stream to start.

use alloc::collections::BTreeMap;
use core::fmt;

use super::gop::GopConfig;
use super::reader::ReaderLimits;
use crate::key::StreamKey;
use crate::time::Millis;
use crate::wait::{WaitError, WaitLimits, WaitList, WaitStatus, WaiterId};

/// Limits and timings of the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// The most streams live at once.
    pub max_streams: usize,
    /// The most players waiting for one stream to be published.
    pub max_waiters_per_key: usize,
    /// The most players waiting for any stream.
    pub max_waiters: usize,
    /// How long a play request for a stream that is not live waits for it to be published.
    pub play_wait_ms: u64,
    /// GOP cache bounds of every stream.
    pub gop: GopConfig,
    /// Queue bounds of every player.
    pub reader: ReaderLimits,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_streams: 4096,
            max_waiters_per_key: 1024,
            max_waiters: 16384,
            play_wait_ms: 10_000,
            gop: GopConfig::default(),
            reader: ReaderLimits::default(),
        }
    }
}

/// Identifies one publish of a stream, so that a publisher that was replaced cannot
/// unpublish its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublisherId(pub u64);

impl fmt::Display for PublisherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "publisher#{}", self.0)
    }
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Another publisher holds the name; it keeps it.
    #[error("publish {key}: already being published")]
    AlreadyPublishing {
        /// The contested stream.
        key: StreamKey,
    },
    /// The server is at its stream limit.
    #[error("publish {key}: too many streams (limit {max})")]
    TooManyStreams {
        /// The stream that was refused.
        key: StreamKey,
        /// The limit.
        max: usize,
    },
}

/// A live stream in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry<P> {
    id: PublisherId,
    handle: P,
    since: Millis,
}

impl<P> StreamEntry<P> {
    /// The current publish of the stream.
    pub fn publisher(&self) -> PublisherId {
        self.id
    }

    /// The runtime's handle to the publisher.
    pub fn handle(&self) -> &P {
        &self.handle
    }

    /// When the publish started.
    pub fn since(&self) -> Millis {
        self.since
    }
}

/// Which streams are live and who waits for which.
///
/// `P` is the runtime's handle to a publisher (for instance a channel to its worker), cloned
/// out by the runtime when a player is admitted. The registry is touched only on control
/// events, so plain ordered maps are enough; every collection is bounded by [`HubConfig`].
///
/// A player that asks for a stream that is not live waits ([`Registry::wait_for`]) and looks
/// with [`Registry::poll_wait`] whenever it is woken: when the stream is published (the
/// runtime wakes the waiters [`Registry::publish`] names) and at its deadline.
#[derive(Debug)]
pub struct Registry<P> {
    config: HubConfig,
    streams: BTreeMap<StreamKey, StreamEntry<P>>,
    waits: WaitList,
    next_publisher: u64,
}

impl<P: Clone> Registry<P> {
    /// An empty registry.
    pub fn new(config: HubConfig) -> Self {
        Self {
            config,
            streams: BTreeMap::new(),
            waits: WaitList::new(WaitLimits {
                max_per_key: config.max_waiters_per_key,
                max_total: config.max_waiters,
            }),
            next_publisher: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Registers `handle` as the publisher of `key`.
    ///
    /// A name already live is refused: the first publisher keeps it. On success, returns the
    /// new publish's id and the players waiting for this stream (in the order they started
    /// waiting): wake them, and each finds the stream with [`Registry::poll_wait`].
    pub fn publish(
        &mut self,
        key: StreamKey,
        handle: P,
        now: Millis,
    ) -> Result<(PublisherId, &[WaiterId]), PublishError> {
        if self.streams.contains_key(&key) {
            return Err(PublishError::AlreadyPublishing { key });
        }
        if self.streams.len() >= self.config.max_streams {
            return Err(PublishError::TooManyStreams {
                key,
                max: self.config.max_streams,
            });
        }
        let id = PublisherId(self.next_publisher);
        self.next_publisher += 1;
        self.streams.insert(
            key.clone(),
            StreamEntry {
                id,
                handle,
                since: now,
            },
        );
        Ok((id, self.waits.waiting_for(&key)))
    }

    /// Removes the stream if `id` is its current publish; false otherwise (a stale publisher
    /// that lost a race cannot remove its successor).
    pub fn unpublish(&mut self, key: &StreamKey, id: PublisherId) -> bool {
        match self.streams.get(key) {
            Some(entry) if entry.id == id => {
                self.streams.remove(key);
                true
            }
            _ => false,
        }
    }

    /// The publisher of `key`, if it is live.
    pub fn lookup(&self, key: &StreamKey) -> Option<&P> {
        self.streams.get(key).map(|entry| &entry.handle)
    }

    /// The live stream `key`, if any.
    pub fn entry(&self, key: &StreamKey) -> Option<&StreamEntry<P>> {
        self.streams.get(key)
    }

    /// Registers a player waiting for `key` to be published, until `now + timeout_ms`
    /// (usually [`HubConfig::play_wait_ms`]), which is returned with its id: look again with
    /// [`Registry::poll_wait`] when woken, and at that deadline at the latest. A stream that
    /// is live already is refused with [`WaitError::AlreadyLive`]: play it.
    pub fn wait_for(
        &mut self,
        key: StreamKey,
        now: Millis,
        timeout_ms: u64,
    ) -> Result<(WaiterId, Millis), WaitError> {
        if self.streams.contains_key(&key) {
            return Err(WaitError::AlreadyLive { key });
        }
        let deadline = now + timeout_ms;
        self.waits.add(key, deadline).map(|id| (id, deadline))
    }

    /// What waiting player `id` finds at `now`: its stream live (it stops waiting and plays
    /// the publish it is given), still pending until a deadline, or expired (it stops
    /// waiting: answer with the protocol's "stream not found").
    pub fn poll_wait(&mut self, id: WaiterId, now: Millis) -> WaitStatus<StreamEntry<P>> {
        let streams = &self.streams;
        self.waits.poll(id, now, |key| streams.get(key).cloned())
    }

    /// Stops a player waiting (it went away); false if it was not waiting.
    pub fn cancel_wait(&mut self, id: WaiterId) -> bool {
        self.waits.cancel(id)
    }

    /// The live streams, in key order.
    pub fn streams(&self) -> impl Iterator<Item = (&StreamKey, &StreamEntry<P>)> + '_ {
        self.streams.iter()
    }

    /// How many streams are live.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// How many players are waiting for a stream.
    pub fn waiter_count(&self) -> usize {
        self.waits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn key(name: &str) -> StreamKey {
        StreamKey::parse("live", name).unwrap()
    }

    fn registry() -> Registry<&'static str> {
        Registry::new(HubConfig {
            max_streams: 2,
            max_waiters_per_key: 2,
            max_waiters: 3,
            ..HubConfig::default()
        })
    }

    #[test]
    fn second_publisher_is_refused_and_first_keeps_going() {
        let mut hub = registry();
        let (first, waiters) = hub.publish(key("a"), "one", Millis(5)).unwrap();
        assert!(waiters.is_empty());
        assert_eq!(
            hub.publish(key("a"), "two", Millis(6)).map(|(id, _)| id),
            Err(PublishError::AlreadyPublishing { key: key("a") })
        );
        assert_eq!(hub.lookup(&key("a")), Some(&"one"));
        assert_eq!(hub.entry(&key("a")).unwrap().since(), Millis(5));
        assert!(hub.unpublish(&key("a"), first));
        assert!(!hub.unpublish(&key("a"), first));
        assert_eq!(hub.lookup(&key("a")), None);
    }

    #[test]
    fn stale_publisher_cannot_unpublish_successor() {
        let mut hub = registry();
        let (old, _) = hub.publish(key("a"), "one", Millis(0)).unwrap();
        assert!(hub.unpublish(&key("a"), old));
        let (new, _) = hub.publish(key("a"), "two", Millis(1)).unwrap();
        assert_ne!(old, new);
        assert!(!hub.unpublish(&key("a"), old));
        assert_eq!(hub.lookup(&key("a")), Some(&"two"));
    }

    #[test]
    fn stream_limit() {
        let mut hub = registry();
        hub.publish(key("a"), "a", Millis(0)).unwrap();
        hub.publish(key("b"), "b", Millis(0)).unwrap();
        assert!(matches!(
            hub.publish(key("c"), "c", Millis(0)),
            Err(PublishError::TooManyStreams { max: 2, .. })
        ));
        assert_eq!(
            hub.streams().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec![key("a"), key("b")]
        );
    }

    #[test]
    fn play_before_publish_wakes_waiters_who_then_find_the_stream() {
        let mut hub = registry();
        let (w1, deadline) = hub.wait_for(key("a"), Millis(0), 10_000).unwrap();
        assert_eq!(deadline, Millis(10_000));
        let (w2, _) = hub.wait_for(key("a"), Millis(1), 10_000).unwrap();
        let (other, _) = hub.wait_for(key("b"), Millis(2), 10_000).unwrap();
        let (id, woken) = hub.publish(key("a"), "a", Millis(3)).unwrap();
        assert_eq!(woken, &[w1, w2]);
        match hub.poll_wait(w1, Millis(4)) {
            WaitStatus::Ready(entry) => assert_eq!((entry.publisher(), *entry.handle()), (id, "a")),
            status => panic!("{status:?}"),
        }
        assert_eq!(hub.waiter_count(), 2);
        assert!(matches!(
            hub.wait_for(key("a"), Millis(4), 10),
            Err(WaitError::AlreadyLive { .. })
        ));
        // Published and gone again before w2 looked: it keeps waiting until its deadline.
        assert!(hub.unpublish(&key("a"), id));
        assert_eq!(
            hub.poll_wait(w2, Millis(5)),
            WaitStatus::Pending {
                deadline: Millis(10_001)
            }
        );
        assert_eq!(
            hub.poll_wait(w2, Millis(10_001)),
            WaitStatus::Expired { key: key("a") }
        );
        assert_eq!(
            hub.poll_wait(other, Millis(10_001)),
            WaitStatus::Pending {
                deadline: Millis(10_002)
            }
        );
        assert!(hub.cancel_wait(other));
        assert!(!hub.cancel_wait(w1));
        assert_eq!(hub.waiter_count(), 0);
    }

    #[test]
    fn waiter_limits() {
        let mut hub = registry();
        hub.wait_for(key("a"), Millis(0), 100).unwrap();
        hub.wait_for(key("a"), Millis(0), 100).unwrap();
        assert!(matches!(
            hub.wait_for(key("a"), Millis(0), 100),
            Err(WaitError::TooManyForKey { max: 2, .. })
        ));
        hub.wait_for(key("b"), Millis(0), 50).unwrap();
        assert!(matches!(
            hub.wait_for(key("c"), Millis(0), 100),
            Err(WaitError::TooMany { max: 3, .. })
        ));
    }

    /// Operations on the registry; indices pick from what has been issued so far.
    #[derive(Debug, Clone)]
    enum Op {
        Publish(u8),
        Unpublish(u8, usize),
        Wait(u8, u64),
        Cancel(usize),
        Poll(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..4).prop_map(Op::Publish),
            3 => (0u8..4, any::<usize>()).prop_map(|(k, i)| Op::Unpublish(k, i)),
            4 => (0u8..4, 0u64..50).prop_map(|(k, t)| Op::Wait(k, t)),
            2 => any::<usize>().prop_map(Op::Cancel),
            4 => any::<usize>().prop_map(Op::Poll),
            3 => (0u64..40).prop_map(Op::Advance),
        ]
    }

    /// The registry as a few plain maps: what it should decide, written as directly as
    /// possible.
    #[derive(Default)]
    struct Model {
        live: BTreeMap<u8, PublisherId>,
        /// Waiters pending: id -> (key, deadline).
        pending: BTreeMap<WaiterId, (u8, u64)>,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn registry_matches_model(ops in proptest::collection::vec(op(), 0..120)) {
            let config = HubConfig {
                max_streams: 3,
                max_waiters_per_key: 3,
                max_waiters: 5,
                ..HubConfig::default()
            };
            let mut hub: Registry<u8> = Registry::new(config);
            let mut model = Model::default();
            let mut now = 0u64;
            let mut publishers: Vec<(u8, PublisherId)> = Vec::new();
            let mut issued: Vec<WaiterId> = Vec::new();
            let name = |k: u8| key(["a", "b", "c", "d"][usize::from(k)]);

            for op in ops {
                match op {
                    Op::Publish(k) => {
                        let result = hub.publish(name(k), k, Millis(now)).map(|(id, w)| (id, w.to_vec()));
                        if model.live.contains_key(&k) {
                            prop_assert_eq!(result, Err(PublishError::AlreadyPublishing { key: name(k) }));
                        } else if model.live.len() >= config.max_streams {
                            let is_limit = matches!(result, Err(PublishError::TooManyStreams { .. }));
                            prop_assert!(is_limit);
                        } else {
                            let (id, woken) = result.unwrap();
                            model.live.insert(k, id);
                            publishers.push((k, id));
                            let expected: Vec<WaiterId> = model.pending.iter()
                                .filter(|(_, (wk, _))| *wk == k).map(|(id, _)| *id).collect();
                            prop_assert_eq!(&woken, &expected);
                        }
                    }
                    Op::Unpublish(k, i) => {
                        // Mostly a real publisher id (current or stale), sometimes one never issued.
                        let id = publishers.get(i % (publishers.len() + 1)).map_or(PublisherId(u64::MAX), |p| p.1);
                        let expected = model.live.get(&k) == Some(&id);
                        prop_assert_eq!(hub.unpublish(&name(k), id), expected);
                        if expected {
                            model.live.remove(&k);
                        }
                    }
                    Op::Wait(k, timeout) => {
                        let result = hub.wait_for(name(k), Millis(now), timeout);
                        let for_key = model.pending.values().filter(|(wk, _)| *wk == k).count();
                        if model.live.contains_key(&k) {
                            let is_live = matches!(result, Err(WaitError::AlreadyLive { .. }));
                            prop_assert!(is_live);
                        } else if for_key >= config.max_waiters_per_key {
                            let is_limit = matches!(result, Err(WaitError::TooManyForKey { .. }));
                            prop_assert!(is_limit);
                        } else if model.pending.len() >= config.max_waiters {
                            let is_limit = matches!(result, Err(WaitError::TooMany { .. }));
                            prop_assert!(is_limit);
                        } else {
                            let (id, deadline) = result.unwrap();
                            prop_assert_eq!(deadline, Millis(now + timeout));
                            prop_assert!(!issued.contains(&id));
                            issued.push(id);
                            model.pending.insert(id, (k, now + timeout));
                        }
                    }
                    Op::Cancel(i) => {
                        if let Some(&id) = issued.get(i % issued.len().max(1)) {
                            let expected = model.pending.remove(&id).is_some();
                            prop_assert_eq!(hub.cancel_wait(id), expected);
                        }
                    }
                    Op::Poll(i) => {
                        if let Some(&id) = issued.get(i % issued.len().max(1)) {
                            let status = hub.poll_wait(id, Millis(now));
                            match model.pending.get(&id).copied() {
                                None => prop_assert_eq!(status, WaitStatus::Unknown),
                                Some((k, deadline)) => match model.live.get(&k) {
                                    Some(live) => {
                                        let publisher = match &status {
                                            WaitStatus::Ready(entry) => Some(entry.publisher()),
                                            _ => None,
                                        };
                                        prop_assert_eq!(publisher, Some(*live));
                                        model.pending.remove(&id);
                                    }
                                    None if now >= deadline => {
                                        prop_assert_eq!(status, WaitStatus::Expired { key: name(k) });
                                        model.pending.remove(&id);
                                    }
                                    None => prop_assert_eq!(status, WaitStatus::Pending { deadline: Millis(deadline) }),
                                },
                            }
                        }
                    }
                    Op::Advance(ms) => now += ms,
                }
                prop_assert_eq!(hub.stream_count(), model.live.len());
                prop_assert_eq!(hub.waiter_count(), model.pending.len());
                for k in 0..4u8 {
                    prop_assert_eq!(hub.lookup(&name(k)).copied(), model.live.get(&k).map(|_| k));
                }
            }
        }
    }
}
