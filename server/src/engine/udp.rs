//! RTP and RTCP over UDP: one socket pair per worker, shared by that worker's RTSP sessions.
//!
//! A session never owns a socket. What it sends leaves through the worker's pair, addressed
//! to its peer's IP at the port it names; what arrives is routed by source address to the
//! session that claimed that address in SETUP. One pair per worker rather than one per
//! session keeps descriptors and reactor registrations constant however many players join,
//! and keeps every datagram on the thread that owns its session.
//!
//! The decisions are the core's: which session an address leads to and who may claim it
//! ([`RouteTable`]), how many datagrams one wake-up takes before the worker's other tasks
//! run ([`WakeBudget`]), how much may wait for one session ([`InboundQueue`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use mediakit_core::budget::{WakeBudget, UDP_RECEIVE_BUDGET};
use mediakit_core::datagram::{
    Datagram, DatagramQueue, InboundLimits, InboundQueue, RouteError, RouteTable, UdpChannel,
};
use smallvec::SmallVec;

use super::notify::{unless, yield_now, LocalNotify};
use super::runtime::{DatagramSocket, Runtime};
use super::shared::Shared;
use crate::socket::{DatagramSender, DATAGRAM_BATCH};

/// The largest UDP payload: the receive buffer's size.
const MAX_DATAGRAM: usize = 65_536;

/// Identifies a connection on its worker, for datagram routes.
pub type ConnectionId = u64;

/// Datagrams routed to one session, and how to wake it.
#[derive(Debug)]
pub struct DatagramInbox {
    queue: RefCell<InboundQueue>,
    wake: Rc<LocalNotify>,
}

impl DatagramInbox {
    pub fn new(wake: Rc<LocalNotify>) -> Rc<Self> {
        Rc::new(Self {
            queue: RefCell::new(InboundQueue::new(InboundLimits::default())),
            wake,
        })
    }

    /// The next datagram: the socket it came in on, its source port, its bytes.
    pub fn pop(&self) -> Option<(UdpChannel, u16, Bytes)> {
        self.queue.borrow_mut().pop()
    }

    /// Bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.queue.borrow().queued_bytes()
    }

    /// Queues a datagram; false if the session already has as much waiting as it may.
    fn deliver(&self, channel: UdpChannel, port: u16, payload: Bytes) -> bool {
        let delivered = self.queue.borrow_mut().push(channel, port, payload);
        self.wake.notify();
        delivered
    }
}

/// A worker's RTP and RTCP sockets and the routes of the datagrams they receive.
pub struct UdpPorts<R: Runtime> {
    rtp: R::Datagram,
    rtcp: R::Datagram,
    /// The local RTP and RTCP ports, as SETUP answers name them.
    pub ports: (u16, u16),
    routes: RefCell<RouteTable<ConnectionId>>,
    inboxes: RefCell<HashMap<ConnectionId, Rc<DatagramInbox>>>,
    /// One receive buffer: a datagram is read here, its route looked up, and only a routed
    /// one is copied out (to exactly its size, so a cached frame pins no more than itself).
    scratch: RefCell<Vec<u8>>,
    budget: RefCell<WakeBudget>,
    /// Batched sends' preallocated headers, shared by the worker's sessions.
    sender: RefCell<DatagramSender>,
    /// Server-wide route claims, and where dropped datagrams are counted.
    shared: Arc<Shared>,
    worker: usize,
}

impl<R: Runtime> std::fmt::Debug for UdpPorts<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpPorts")
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

/// Binds the first free even/odd pair (RTP on the even port, RTCP on the next) in the
/// inclusive range; `Ok(None)` if every pair is taken.
pub fn bind_pair<D>(
    ip: IpAddr,
    range: (u16, u16),
    mut bind: impl FnMut(SocketAddr) -> io::Result<D>,
) -> io::Result<Option<(D, D)>> {
    let first_even = range.0.saturating_add(range.0 % 2);
    for rtp in (first_even..range.1).step_by(2) {
        let rtp_socket = match bind(SocketAddr::new(ip, rtp)) {
            Ok(socket) => socket,
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => continue,
            Err(error) => return Err(error),
        };
        match bind(SocketAddr::new(ip, rtp + 1)) {
            Ok(rtcp_socket) => return Ok(Some((rtp_socket, rtcp_socket))),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

impl<R: Runtime> UdpPorts<R> {
    /// Binds the first free pair in `range` on this worker.
    pub fn bind(
        ip: IpAddr,
        range: (u16, u16),
        shared: &Arc<Shared>,
        worker: usize,
    ) -> io::Result<Option<Rc<Self>>> {
        let Some((rtp, rtcp)) = bind_pair(ip, range, R::bind_datagram)? else {
            return Ok(None);
        };
        let ports = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
        Ok(Some(Rc::new(Self {
            rtp,
            rtcp,
            ports,
            routes: RefCell::new(RouteTable::new()),
            inboxes: RefCell::new(HashMap::new()),
            scratch: RefCell::new(vec![0; MAX_DATAGRAM]),
            budget: RefCell::new(WakeBudget::new(UDP_RECEIVE_BUDGET)),
            sender: RefCell::new(DatagramSender::new()),
            shared: Arc::clone(shared),
            worker,
        })))
    }

    fn socket(&self, channel: UdpChannel) -> &R::Datagram {
        match channel {
            UdpChannel::Rtp => &self.rtp,
            UdpChannel::Rtcp => &self.rtcp,
        }
    }

    /// Routes datagrams from `ip` at `ports` (RTP, RTCP) to connection `id`'s inbox, unless
    /// another session (on any worker) holds one of those addresses or `id` holds too many
    /// routes. The server-wide claim comes first; this worker's table, which routes what its
    /// sockets receive, then holds the same addresses for `id` and cannot refuse them.
    pub fn claim(
        &self,
        id: ConnectionId,
        inbox: &Rc<DatagramInbox>,
        ip: IpAddr,
        ports: [u16; 2],
    ) -> Result<(), RouteError> {
        self.shared.claim_udp(self.worker, id, ip, ports)?;
        self.routes.borrow_mut().claim(id, ip, ports)?;
        self.inboxes
            .borrow_mut()
            .entry(id)
            .or_insert_with(|| Rc::clone(inbox));
        Ok(())
    }

    /// Drops every route of connection `id`.
    pub fn release(&self, id: ConnectionId) {
        self.shared.release_udp(self.worker, id);
        self.routes.borrow_mut().release(id);
        self.inboxes.borrow_mut().remove(&id);
    }

    /// Sends queued datagrams to `peer` until done or a socket is full; returns the channel
    /// whose socket is full, to wait for. A datagram the network refuses is dropped, as UDP
    /// would lose it anyway.
    pub fn send(&self, queue: &mut DatagramQueue, peer: IpAddr) -> Option<UdpChannel> {
        let mut sender = self.sender.borrow_mut();
        while let Some(channel) = queue.front().map(|datagram| datagram.channel) {
            // The run of datagrams at the front that leave through the same socket.
            let result = {
                let batch: SmallVec<[&Datagram; DATAGRAM_BATCH]> = queue
                    .iter()
                    .take_while(|datagram| datagram.channel == channel)
                    .take(DATAGRAM_BATCH)
                    .collect();
                self.socket(channel)
                    .try_send_batch(&mut sender, &batch, peer)
            };
            let sent = match result {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Some(channel),
                Ok(sent) => sent.max(1),
                // The first datagram was refused: it is dropped, the rest go on.
                Err(_) => 1,
            };
            for _ in 0..sent {
                queue.pop_front();
            }
        }
        None
    }

    /// Ready when `channel`'s socket may take a datagram again.
    pub fn poll_writable(&self, channel: UdpChannel, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket(channel).poll_writable(cx)
    }

    /// Receives on `channel`'s socket until `stop` fires, handing each datagram to the
    /// session routed for its source. Each wake-up takes at most the core's receive budget,
    /// then lets the worker's other tasks run before it takes more.
    pub async fn receive_loop(self: Rc<Self>, channel: UdpChannel, stop: Rc<LocalNotify>) {
        let readable = || poll_fn(|cx| self.socket(channel).poll_readable(cx));
        while let Some(ready) = unless(&stop, readable()).await {
            if let Err(error) = ready {
                tracing::warn!(?channel, "UDP receive failed: {error}");
                return;
            }
            self.budget.borrow_mut().start_wake();
            self.receive(channel);
            if self.budget.borrow().exhausted() {
                yield_now().await;
            }
        }
    }

    /// Routes whatever both sockets hold now (within the budget). A session calls this
    /// before it reads its connection, so that RTP a publisher sent before its TEARDOWN is
    /// not left behind in a socket the receive loops have not got to yet.
    pub fn receive_pending(&self) {
        self.budget.borrow_mut().start_wake();
        self.receive(UdpChannel::Rtp);
    }

    /// Routes what `channel`'s socket holds; for RTP, what the RTCP socket holds first. A
    /// publisher sends its first sender report before its first RTP packet, and the session
    /// needs it first to put the track on the shared timeline; the two sockets are read by
    /// separate tasks, so without this RTP could overtake it.
    fn receive(&self, channel: UdpChannel) {
        if channel == UdpChannel::Rtp {
            self.drain(UdpChannel::Rtcp);
        }
        self.drain(channel);
    }

    fn drain(&self, channel: UdpChannel) {
        let mut scratch = self.scratch.borrow_mut();
        let mut dropped = 0u64;
        while self.budget.borrow_mut().take() {
            let (len, from) = match self.socket(channel).try_recv_from(&mut scratch) {
                Ok(received) => received,
                // WouldBlock, or an ICMP error from an earlier send surfacing here: either
                // way nothing more to read now.
                Err(_) => break,
            };
            let inbox = self
                .routes
                .borrow()
                .lookup(from)
                .and_then(|id| self.inboxes.borrow().get(&id).cloned());
            let delivered = match (inbox, scratch.get(..len)) {
                (Some(inbox), Some(payload)) => {
                    inbox.deliver(channel, from.port(), Bytes::copy_from_slice(payload))
                }
                _ => false,
            };
            if !delivered {
                dropped += 1;
            }
        }
        if let (true, Some(stats)) = (dropped > 0, self.shared.stats_of(self.worker)) {
            stats.datagrams_dropped(dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_odd_and_skip_taken_ports() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let taken = std::cell::RefCell::new(vec![40_002u16, 40_005]);
        let bind = |addr: SocketAddr| -> io::Result<u16> {
            let mut taken = taken.borrow_mut();
            if taken.contains(&addr.port()) {
                return Err(io::ErrorKind::AddrInUse.into());
            }
            taken.push(addr.port());
            Ok(addr.port())
        };
        // 40002 taken: skip to 40004, whose RTCP port 40005 is taken: skip to 40006.
        assert_eq!(
            bind_pair(ip, (40_001, 40_099), bind).unwrap(),
            Some((40_006, 40_007))
        );
        assert_eq!(bind_pair(ip, (40_006, 40_007), bind).unwrap(), None);
        let failing =
            |_: SocketAddr| -> io::Result<u16> { Err(io::ErrorKind::PermissionDenied.into()) };
        assert!(bind_pair(ip, (40_000, 40_010), failing).is_err());
    }
}
