//! RTP and RTCP over UDP: one socket pair per worker, shared by that worker's RTSP sessions.
//!
//! A session never owns a socket. What it sends leaves through the worker's pair, addressed
//! to its peer's IP at the port it names; what arrives is routed by source address to the
//! session that announced that address in SETUP. One pair per worker rather than one per
//! session keeps descriptors and reactor registrations constant however many players join,
//! and keeps every datagram on the thread that owns its session.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use mediakit_core::datagram::{Datagram, DatagramQueue, UdpChannel};
use smallvec::SmallVec;

use super::notify::LocalNotify;
use super::runtime::{DatagramSocket, Runtime};
use crate::socket::{DatagramSender, DATAGRAM_BATCH};

/// Datagrams one session may have waiting before further ones are dropped: a session that
/// is not being scheduled must not make the worker hold unbounded memory for it.
const INBOX_CAPACITY: usize = 1024;
/// The receive buffer is refilled when less than this remains: the largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;
/// Size of each receive buffer block; datagrams are split off it as `Bytes` without copying.
const RECEIVE_BLOCK: usize = 1 << 20;

/// Datagrams routed to one session, and how to wake it.
#[derive(Debug)]
pub struct DatagramInbox {
    queue: RefCell<VecDeque<(UdpChannel, u16, Bytes)>>,
    wake: Rc<LocalNotify>,
}

impl DatagramInbox {
    pub fn new(wake: Rc<LocalNotify>) -> Rc<Self> {
        Rc::new(Self {
            queue: RefCell::new(VecDeque::new()),
            wake,
        })
    }

    /// The next datagram: the socket it came in on, its source port, its bytes.
    pub fn pop(&self) -> Option<(UdpChannel, u16, Bytes)> {
        self.queue.borrow_mut().pop_front()
    }

    fn deliver(&self, channel: UdpChannel, port: u16, payload: Bytes) {
        let mut queue = self.queue.borrow_mut();
        if queue.len() < INBOX_CAPACITY {
            queue.push_back((channel, port, payload));
            drop(queue);
            self.wake.notify();
        }
    }
}

/// A worker's RTP and RTCP sockets and the routes of the datagrams they receive.
pub struct UdpPorts<R: Runtime> {
    rtp: R::Datagram,
    rtcp: R::Datagram,
    /// The local RTP and RTCP ports, as SETUP answers name them.
    pub ports: (u16, u16),
    routes: RefCell<HashMap<SocketAddr, Rc<DatagramInbox>>>,
    /// Receive blocks of the RTP and RTCP sockets.
    buffers: [RefCell<BytesMut>; 2],
    /// Batched sends' preallocated headers, shared by the worker's sessions.
    sender: RefCell<DatagramSender>,
}

impl<R: Runtime> std::fmt::Debug for UdpPorts<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpPorts")
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> UdpPorts<R> {
    /// Registers a bound pair with this thread's reactor.
    pub fn new(rtp: std::net::UdpSocket, rtcp: std::net::UdpSocket) -> io::Result<Rc<Self>> {
        let ports = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
        Ok(Rc::new(Self {
            rtp: R::datagram(rtp)?,
            rtcp: R::datagram(rtcp)?,
            ports,
            routes: RefCell::new(HashMap::new()),
            buffers: [RefCell::new(BytesMut::new()), RefCell::new(BytesMut::new())],
            sender: RefCell::new(DatagramSender::new()),
        }))
    }

    fn socket(&self, channel: UdpChannel) -> &R::Datagram {
        match channel {
            UdpChannel::Rtp => &self.rtp,
            UdpChannel::Rtcp => &self.rtcp,
        }
    }

    /// Routes datagrams from `from` to `inbox` (a later route for the same address wins).
    pub fn route(&self, from: SocketAddr, inbox: &Rc<DatagramInbox>) {
        self.routes.borrow_mut().insert(from, Rc::clone(inbox));
    }

    /// Removes the route from `from` if it still leads to `inbox`.
    pub fn unroute(&self, from: SocketAddr, inbox: &Rc<DatagramInbox>) {
        let mut routes = self.routes.borrow_mut();
        if routes.get(&from).is_some_and(|r| Rc::ptr_eq(r, inbox)) {
            routes.remove(&from);
        }
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
    pub fn poll_writable(
        &self,
        channel: UdpChannel,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.socket(channel).poll_writable(cx)
    }

    /// Receives on `channel`'s socket until the worker stops, handing each datagram to the
    /// session routed for its source; datagrams from unknown sources are dropped.
    pub async fn receive_loop(self: Rc<Self>, channel: UdpChannel, stopping: impl Fn() -> bool) {
        while !stopping() {
            let ready = poll_fn(|cx| self.socket(channel).poll_readable(cx)).await;
            if let Err(error) = ready {
                tracing::warn!(?channel, "UDP receive failed: {error}");
                return;
            }
            self.receive(channel);
        }
    }

    /// Routes whatever both sockets hold now. A session calls this before it reads its
    /// connection, so that RTP a publisher sent before its TEARDOWN is not left behind in a
    /// socket the receive loops have not got to yet.
    pub fn receive_pending(&self) {
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
        let index = match channel {
            UdpChannel::Rtp => 0,
            UdpChannel::Rtcp => 1,
        };
        let mut buffer = self.buffers[index].borrow_mut();
        loop {
            if buffer.len() < MAX_DATAGRAM {
                // The old block lives on in the datagrams split from it.
                *buffer = BytesMut::zeroed(RECEIVE_BLOCK);
            }
            match self.socket(channel).try_recv_from(&mut buffer) {
                Ok((len, from)) => {
                    let payload = buffer.split_to(len).freeze();
                    let inbox = self.routes.borrow().get(&from).cloned();
                    if let Some(inbox) = inbox {
                        inbox.deliver(channel, from.port(), payload);
                    }
                }
                // WouldBlock, or an ICMP error from an earlier send surfacing here: either
                // way nothing more to read now.
                Err(_) => return,
            }
        }
    }
}
