//! Datagrams routed to one session, waiting for it to run.
//!
//! The worker's receive loop hands datagrams to sessions faster than a busy session may be
//! scheduled; a session that is not running must not make the worker hold unbounded memory
//! for it, so the queue is bounded by count and by bytes and what does not fit is dropped
//! (and counted), as the network would have dropped it.

use alloc::collections::VecDeque;

use bytes::Bytes;

use super::UdpChannel;

/// Bounds of an [`InboundQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundLimits {
    /// The most datagrams waiting.
    pub max_datagrams: usize,
    /// The most payload bytes waiting.
    pub max_bytes: usize,
}

impl Default for InboundLimits {
    fn default() -> Self {
        // About a second of a 15 Mbit/s stream: more than a session scheduled at all can
        // fall behind by.
        Self {
            max_datagrams: 1024,
            max_bytes: 2 << 20,
        }
    }
}

/// Datagrams routed to one session, oldest first: the socket each came in on, its source
/// port and its bytes.
#[derive(Debug, Clone)]
pub struct InboundQueue {
    limits: InboundLimits,
    queue: VecDeque<(UdpChannel, u16, Bytes)>,
    bytes: usize,
    dropped: u64,
}

impl InboundQueue {
    /// An empty queue.
    pub fn new(limits: InboundLimits) -> Self {
        Self {
            limits,
            queue: VecDeque::new(),
            bytes: 0,
            dropped: 0,
        }
    }

    /// Queues a datagram that arrived on `channel` from the peer's `from_port`. Returns false
    /// (and counts it) if it was dropped because the queue is full by count or by bytes.
    pub fn push(&mut self, channel: UdpChannel, from_port: u16, payload: Bytes) -> bool {
        let bytes = self.bytes.saturating_add(payload.len());
        if self.queue.len() >= self.limits.max_datagrams || bytes > self.limits.max_bytes {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        self.bytes = bytes;
        self.queue.push_back((channel, from_port, payload));
        true
    }

    /// The oldest datagram.
    pub fn pop(&mut self) -> Option<(UdpChannel, u16, Bytes)> {
        let datagram = self.queue.pop_front()?;
        self.bytes = self.bytes.saturating_sub(datagram.2.len());
        Some(datagram)
    }

    /// How many datagrams wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Payload bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Datagrams dropped since the last call, for a log line or a counter.
    pub fn take_dropped(&mut self) -> u64 {
        core::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn payload(size: usize) -> Bytes {
        Bytes::from(vec![0u8; size])
    }

    #[test]
    fn bounded_by_count_and_by_bytes() {
        let mut queue = InboundQueue::new(InboundLimits {
            max_datagrams: 2,
            max_bytes: 100,
        });
        assert!(queue.push(UdpChannel::Rtp, 1, payload(60)));
        assert!(
            !queue.push(UdpChannel::Rtp, 2, payload(41)),
            "over the bytes"
        );
        assert!(queue.push(UdpChannel::Rtcp, 3, payload(40)));
        assert!(
            !queue.push(UdpChannel::Rtp, 4, payload(0)),
            "over the count"
        );
        assert_eq!(queue.queued_bytes(), 100);
        assert_eq!(queue.take_dropped(), 2);
        assert_eq!(queue.take_dropped(), 0);
        assert_eq!(queue.pop(), Some((UdpChannel::Rtp, 1, payload(60))));
        assert_eq!(queue.queued_bytes(), 40);
        assert!(queue.push(UdpChannel::Rtp, 5, payload(60)));
        assert_eq!(queue.pop().map(|d| d.1), Some(3));
        assert_eq!(queue.pop().map(|d| d.1), Some(5));
        assert_eq!(queue.pop(), None);
        assert!(queue.is_empty());
    }

    proptest! {
        /// Against a plain deque: order kept, bounds never exceeded, every datagram either
        /// queued or counted as dropped.
        #[test]
        fn inbound_queue_matches_model(
            ops in proptest::collection::vec(prop_oneof![
                3 => (0usize..50).prop_map(Some),
                2 => Just(None),
            ], 0..200),
            max_datagrams in 0usize..6,
            max_bytes in 0usize..120,
        ) {
            let mut queue = InboundQueue::new(InboundLimits { max_datagrams, max_bytes });
            let mut model: VecDeque<(u16, usize)> = VecDeque::new();
            let mut dropped = 0u64;
            for (i, op) in ops.into_iter().enumerate() {
                let port = i as u16;
                match op {
                    Some(size) => {
                        let fits = model.len() < max_datagrams
                            && model.iter().map(|d| d.1).sum::<usize>() + size <= max_bytes;
                        prop_assert_eq!(queue.push(UdpChannel::Rtp, port, payload(size)), fits);
                        if fits {
                            model.push_back((port, size));
                        } else {
                            dropped += 1;
                        }
                    }
                    None => {
                        let popped = queue.pop().map(|(_, port, bytes)| (port, bytes.len()));
                        prop_assert_eq!(popped, model.pop_front());
                    }
                }
                prop_assert_eq!(queue.len(), model.len());
                prop_assert_eq!(queue.queued_bytes(), model.iter().map(|d| d.1).sum::<usize>());
                prop_assert!(queue.len() <= max_datagrams && queue.queued_bytes() <= max_bytes);
            }
            prop_assert_eq!(queue.take_dropped(), dropped);
        }
    }
}
