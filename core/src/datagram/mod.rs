//! Datagrams a session sends or receives over the worker's UDP sockets (RTP and RTCP over
//! UDP for RTSP), kept apart from the connection's byte stream.
//!
//! A session never sees addresses: the runtime owns one RTP and one RTCP socket per worker,
//! sends each [`Datagram`] to the session's peer address at [`Datagram::port`], and routes
//! what arrives from the peer's announced ports back to the session with the
//! [`UdpChannel`] it came in on. A datagram is a few `Bytes` segments (header from an arena,
//! payload slices), so a vectored send carries it without copying the payload.
//!
//! The runtime's decisions around those sockets are made here too: which session an address
//! leads to ([`RouteTable`]), how much may wait for a session that is not running
//! ([`InboundQueue`]); how much one wake-up of a receive loop may take is a
//! [`WakeBudget`](crate::budget::WakeBudget).

use alloc::collections::VecDeque;

use bytes::Bytes;
use smallvec::SmallVec;

mod inbound;
mod routes;

pub use inbound::{InboundLimits, InboundQueue};
pub use routes::{RouteError, RouteTable, MAX_ROUTES_PER_SESSION};

/// Which of the worker's two UDP sockets a datagram leaves from or arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UdpChannel {
    /// The RTP socket (the even port of the pair).
    Rtp,
    /// The RTCP socket (the odd port of the pair).
    Rtcp,
}

/// One datagram to send to the session's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The socket to send it from.
    pub channel: UdpChannel,
    /// The peer's port to send it to (at the address of the session's connection).
    pub port: u16,
    /// The datagram's bytes, in order.
    pub segments: SmallVec<[Bytes; 3]>,
}

impl Datagram {
    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.segments.iter().map(Bytes::len).sum()
    }

    /// True if the datagram carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Datagrams waiting to be sent, in order, with their total size for back-pressure.
#[derive(Debug, Default)]
pub struct DatagramQueue {
    queue: VecDeque<Datagram>,
    bytes: usize,
}

impl DatagramQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a datagram.
    pub fn push(&mut self, datagram: Datagram) {
        self.bytes = self.bytes.saturating_add(datagram.len());
        self.queue.push_back(datagram);
    }

    /// The oldest datagram, to try to send.
    pub fn front(&self) -> Option<&Datagram> {
        self.queue.front()
    }

    /// Removes the oldest datagram (sent, or given up on).
    pub fn pop_front(&mut self) -> Option<Datagram> {
        let datagram = self.queue.pop_front()?;
        self.bytes = self.bytes.saturating_sub(datagram.len());
        Some(datagram)
    }

    /// The waiting datagrams, oldest first (to send several with one call).
    pub fn iter(&self) -> impl Iterator<Item = &Datagram> {
        self.queue.iter()
    }

    /// How many datagrams wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes waiting, over all datagrams.
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keeps_order_and_counts_bytes() {
        let mut queue = DatagramQueue::new();
        for (i, size) in [3usize, 0, 7].into_iter().enumerate() {
            queue.push(Datagram {
                channel: UdpChannel::Rtp,
                port: i as u16,
                segments: [
                    Bytes::from(alloc::vec![0u8; size]),
                    Bytes::from_static(b"x"),
                ]
                .into_iter()
                .collect(),
            });
        }
        assert_eq!(queue.queued_bytes(), 13);
        assert_eq!(queue.pop_front().map(|d| d.port), Some(0));
        assert_eq!(queue.queued_bytes(), 9);
        assert_eq!(queue.front().map(Datagram::len), Some(1));
        queue.clear();
        assert!(queue.is_empty());
        assert_eq!(queue.queued_bytes(), 0);
    }
}
