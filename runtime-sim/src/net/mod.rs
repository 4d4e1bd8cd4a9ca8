//! The simulated network: TCP listeners and connections made of two bounded pipes, and UDP
//! sockets with bounded receive queues and seeded loss. Every address is virtual, so any IP
//! works: tests connect from as many client addresses as they like.
//!
//! `Network` is the state (owned by the world, behind one `RefCell`); [`tcp`] and [`udp`]
//! hold the handles tasks and tests use.

mod pipe;
pub mod tcp;
pub mod udp;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use crate::rng::SimRng;
use pipe::Pipe;

/// A world's network as its sockets hold it.
pub(crate) type SharedNetwork = Rc<RefCell<Network>>;

thread_local! {
    /// The network of the world installed on this thread, for the sockets made without a
    /// world at hand (`TcpStream::connect`, `UdpSocket::bind`, the runtime's binds).
    static CURRENT: RefCell<Option<SharedNetwork>> = const { RefCell::new(None) };
}

/// Installs (or, with `None`, removes) this thread's network; the world does, as it is made
/// and dropped.
pub(crate) fn install(net: Option<SharedNetwork>) {
    CURRENT.with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = net;
        }
    });
}

/// This thread's network, if a world is installed.
pub(crate) fn current() -> Option<SharedNetwork> {
    CURRENT.with(|slot| slot.borrow().clone())
}

/// The error of an operation on a thread without a world.
pub(crate) fn no_world() -> io::Error {
    io::Error::other("no mediakit_sim::World on this thread")
}

/// The first port handed out when a socket binds port 0 or a client connects (Linux's
/// default ephemeral range).
const EPHEMERAL_FIRST: u16 = 49_152;

/// How the simulated network behaves; [`NetConfig::default`] is a fast loopback.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Bytes one direction of a new TCP connection holds before its writer blocks (send plus
    /// receive buffer). Change it per connection with
    /// [`TcpStream::set_receive_buffer`](tcp::TcpStream::set_receive_buffer).
    pub tcp_buffer: usize,
    /// Connections a listener queues before it refuses more.
    pub accept_backlog: usize,
    /// Bytes a UDP socket queues before it drops what arrives.
    pub udp_buffer: usize,
    /// Probability that a UDP datagram is lost, drawn from the world's seed.
    pub udp_loss: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            tcp_buffer: 256 * 1024,
            accept_backlog: 1024,
            udp_buffer: 4 << 20,
            udp_loss: 0.0,
        }
    }
}

/// Counters of what the network did, for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NetStats {
    /// TCP connections established.
    pub tcp_connected: u64,
    /// TCP connection attempts refused (no listener, or its backlog full).
    pub tcp_refused: u64,
    /// TCP connections reset (aborted, or closed with unread data).
    pub tcp_reset: u64,
    /// Bytes written into TCP connections.
    pub tcp_bytes: u64,
    /// UDP datagrams sent.
    pub udp_sent: u64,
    /// UDP datagrams queued at their destination.
    pub udp_delivered: u64,
    /// UDP datagrams lost to the loss rate.
    pub udp_lost: u64,
    /// UDP datagrams dropped because no socket was bound at their destination.
    pub udp_unroutable: u64,
    /// UDP datagrams dropped because the destination's queue was full.
    pub udp_overflowed: u64,
}

/// Identifies one end of a TCP connection.
pub(crate) type StreamId = u64;
/// Identifies one listener.
pub(crate) type ListenerId = u64;

/// Socket options the engine set on a connection, which the peer's handle can inspect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    /// TCP keepalive idle time, `None` when off.
    pub keepalive: Option<Duration>,
}

/// One end of a connection.
#[derive(Debug)]
struct StreamEnd {
    local: SocketAddr,
    peer: SocketAddr,
    peer_id: StreamId,
    /// Bytes toward this end, written by the peer.
    rx: Pipe,
    /// This end shut down writing (or closed).
    write_shut: bool,
    /// The handle of this end was dropped.
    closed: bool,
    /// A client end, whose local port was taken from the ephemeral range.
    ephemeral: bool,
    options: SocketOptions,
    /// Woken when the peer closes or the connection is reset.
    close_waker: Option<Waker>,
}

#[derive(Debug)]
struct Listener {
    addr: SocketAddr,
    backlog: VecDeque<StreamId>,
    waker: Option<Waker>,
}

/// The listeners sharing one address (`SO_REUSEPORT`), served in turn.
#[derive(Debug, Default)]
struct ListenGroup {
    members: Vec<ListenerId>,
    /// Connections handed to each member, in the same order.
    handed: Vec<u64>,
    next: usize,
}

#[derive(Debug)]
struct UdpEntry {
    queue: VecDeque<(Bytes, SocketAddr)>,
    queued_bytes: usize,
    capacity: usize,
    waker: Option<Waker>,
}

/// Everything on the simulated network.
#[derive(Debug)]
pub(crate) struct Network {
    config: NetConfig,
    rng: SimRng,
    stats: NetStats,
    streams: HashMap<StreamId, StreamEnd>,
    listeners: HashMap<ListenerId, Listener>,
    groups: BTreeMap<SocketAddr, ListenGroup>,
    udp: HashMap<SocketAddr, UdpEntry>,
    /// Local addresses of client ends still open, so ephemeral ports are not reused early.
    tcp_ports: HashSet<SocketAddr>,
    next_port: HashMap<IpAddr, u16>,
    next_id: u64,
}

fn unspecified(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, addr.port())
}

fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "simulated socket is gone")
}

impl Network {
    pub(crate) fn new(config: NetConfig, rng: SimRng) -> Self {
        Self {
            config,
            rng,
            stats: NetStats::default(),
            streams: HashMap::new(),
            listeners: HashMap::new(),
            groups: BTreeMap::new(),
            udp: HashMap::new(),
            tcp_ports: HashSet::new(),
            next_port: HashMap::new(),
            next_id: 0,
        }
    }

    pub(crate) fn stats(&self) -> NetStats {
        self.stats
    }

    pub(crate) fn config_mut(&mut self) -> &mut NetConfig {
        &mut self.config
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The next free ephemeral port of `ip` for which `taken` is false.
    fn ephemeral_port(
        next_port: &mut HashMap<IpAddr, u16>,
        ip: IpAddr,
        taken: impl Fn(SocketAddr) -> bool,
    ) -> io::Result<u16> {
        let span = u32::from(u16::MAX - EPHEMERAL_FIRST) + 1;
        let next = next_port.entry(ip).or_insert(EPHEMERAL_FIRST);
        for _ in 0..span {
            let port = *next;
            *next = if port == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                port + 1
            };
            if !taken(SocketAddr::new(ip, port)) {
                return Ok(port);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("no ephemeral port left on {ip}"),
        ))
    }

    // --- TCP listeners ---

    /// Binds a listener; every listener of one address shares its connections, as
    /// `SO_REUSEPORT` listeners do. Port 0 takes an ephemeral port.
    pub(crate) fn listen(&mut self, mut addr: SocketAddr) -> io::Result<ListenerId> {
        if addr.port() == 0 {
            let groups = &self.groups;
            let port =
                Self::ephemeral_port(&mut self.next_port, addr.ip(), |a| groups.contains_key(&a))?;
            addr.set_port(port);
        }
        let id = self.new_id();
        self.listeners.insert(
            id,
            Listener {
                addr,
                backlog: VecDeque::new(),
                waker: None,
            },
        );
        let group = self.groups.entry(addr).or_default();
        group.members.push(id);
        group.handed.push(0);
        Ok(id)
    }

    /// Connections handed to each listener of `addr`, in the order they bound.
    pub(crate) fn listener_loads(&self, addr: SocketAddr) -> Vec<u64> {
        self.groups
            .get(&addr)
            .map(|group| group.handed.clone())
            .unwrap_or_default()
    }

    pub(crate) fn listener_addr(&self, id: ListenerId) -> io::Result<SocketAddr> {
        self.listeners
            .get(&id)
            .map(|listener| listener.addr)
            .ok_or_else(not_connected)
    }

    /// Takes the next queued connection: this (server) end's id and the client's address;
    /// `WouldBlock` when none waits.
    pub(crate) fn accept(&mut self, id: ListenerId) -> io::Result<(StreamId, SocketAddr)> {
        let listener = self.listeners.get_mut(&id).ok_or_else(not_connected)?;
        let stream = listener
            .backlog
            .pop_front()
            .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
        let peer = self.end(stream)?.peer;
        Ok((stream, peer))
    }

    /// As [`Network::accept`], registering to be woken when a connection arrives.
    pub(crate) fn poll_accept(
        &mut self,
        id: ListenerId,
        cx: &Context<'_>,
    ) -> Poll<io::Result<(StreamId, SocketAddr)>> {
        match self.accept(id) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if let Some(listener) = self.listeners.get_mut(&id) {
                    listener.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            result => Poll::Ready(result),
        }
    }

    /// Closes a listener; connections it had queued and not accepted are reset.
    pub(crate) fn close_listener(&mut self, id: ListenerId) {
        let Some(listener) = self.listeners.remove(&id) else {
            return;
        };
        if let Some(group) = self.groups.get_mut(&listener.addr) {
            if let Some(index) = group.members.iter().position(|member| *member == id) {
                group.members.remove(index);
                group.handed.remove(index);
            }
            if group.members.is_empty() {
                self.groups.remove(&listener.addr);
            }
        }
        for stream in listener.backlog {
            self.reset(stream);
            self.close(stream);
        }
    }

    // --- TCP connections ---

    /// Opens a connection from `from` (an ephemeral port is chosen) to a listener at `to`
    /// (or at the unspecified address of its port). Listeners sharing the address take new
    /// connections in turn. Returns the client end.
    pub(crate) fn connect(&mut self, from: IpAddr, to: SocketAddr) -> io::Result<StreamId> {
        let group_addr = if self.groups.contains_key(&to) {
            to
        } else {
            unspecified(to)
        };
        let listener = self.groups.get_mut(&group_addr).and_then(|group| {
            let index = group.next % group.members.len().max(1);
            group.next = group.next.wrapping_add(1);
            if let Some(handed) = group.handed.get_mut(index) {
                *handed += 1;
            }
            group.members.get(index).copied()
        });
        let backlog = self.config.accept_backlog;
        let Some(listener) = listener.filter(|id| {
            self.listeners
                .get(id)
                .is_some_and(|listener| listener.backlog.len() < backlog)
        }) else {
            self.stats.tcp_refused += 1;
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("nothing accepts connections at {to}"),
            ));
        };
        let used = &self.tcp_ports;
        let port = Self::ephemeral_port(&mut self.next_port, from, |a| used.contains(&a))?;
        let local = SocketAddr::new(from, port);
        let (client, server) = (self.new_id(), self.new_id());
        let capacity = self.config.tcp_buffer;
        let end = |local, peer, peer_id, ephemeral| StreamEnd {
            local,
            peer,
            peer_id,
            rx: Pipe::new(capacity),
            write_shut: false,
            closed: false,
            ephemeral,
            options: SocketOptions::default(),
            close_waker: None,
        };
        self.streams.insert(client, end(local, to, server, true));
        self.streams.insert(server, end(to, local, client, false));
        self.tcp_ports.insert(local);
        self.stats.tcp_connected += 1;
        if let Some(listener) = self.listeners.get_mut(&listener) {
            listener.backlog.push_back(server);
            if let Some(waker) = listener.waker.take() {
                waker.wake();
            }
        }
        Ok(client)
    }

    fn end(&self, id: StreamId) -> io::Result<&StreamEnd> {
        self.streams.get(&id).ok_or_else(not_connected)
    }

    fn end_mut(&mut self, id: StreamId) -> io::Result<&mut StreamEnd> {
        self.streams.get_mut(&id).ok_or_else(not_connected)
    }

    pub(crate) fn addrs(&self, id: StreamId) -> io::Result<(SocketAddr, SocketAddr)> {
        self.end(id).map(|end| (end.local, end.peer))
    }

    /// Writes gathered `chunks` toward the peer, as much as fits.
    pub(crate) fn write<'a>(
        &mut self,
        id: StreamId,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<usize> {
        let end = self.end(id)?;
        if end.rx.is_reset() {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if end.write_shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let peer = end.peer_id;
        let written = self
            .streams
            .get_mut(&peer)
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?
            .rx
            .write(chunks)?;
        self.stats.tcp_bytes += written as u64;
        Ok(written)
    }

    /// Reads up to `max` bytes sent by the peer; empty at the end of the stream.
    pub(crate) fn read(&mut self, id: StreamId, max: usize) -> io::Result<Bytes> {
        self.end_mut(id)?.rx.read(max)
    }

    pub(crate) fn poll_readable(&mut self, id: StreamId, cx: &Context<'_>) -> Poll<io::Result<()>> {
        match self.streams.get_mut(&id) {
            Some(end) => end.rx.poll_read_ready(cx).map(Ok),
            None => Poll::Ready(Err(not_connected())),
        }
    }

    pub(crate) fn poll_writable(&mut self, id: StreamId, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let Some(end) = self.streams.get(&id) else {
            return Poll::Ready(Err(not_connected()));
        };
        if end.write_shut || end.rx.is_reset() {
            return Poll::Ready(Ok(()));
        }
        let peer = end.peer_id;
        match self.streams.get_mut(&peer) {
            Some(peer) => peer.rx.poll_write_ready(cx).map(Ok),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Bytes the peer sent that this end has not read.
    pub(crate) fn unread(&self, id: StreamId) -> usize {
        self.streams.get(&id).map_or(0, |end| end.rx.len())
    }

    /// Bytes this end sent that the peer has not read.
    pub(crate) fn unacknowledged(&self, id: StreamId) -> usize {
        self.streams
            .get(&id)
            .and_then(|end| self.streams.get(&end.peer_id))
            .map_or(0, |peer| peer.rx.len())
    }

    /// Sets how many bytes may be in flight toward this end (toward the peer with
    /// `toward_peer`).
    pub(crate) fn set_buffer(
        &mut self,
        id: StreamId,
        toward_peer: bool,
        bytes: usize,
    ) -> io::Result<()> {
        let target = if toward_peer {
            self.end(id)?.peer_id
        } else {
            id
        };
        self.end_mut(target)?.rx.set_capacity(bytes);
        Ok(())
    }

    pub(crate) fn buffer(&self, id: StreamId) -> usize {
        self.streams.get(&id).map_or(0, |end| end.rx.capacity())
    }

    pub(crate) fn options(&self, id: StreamId) -> SocketOptions {
        self.streams
            .get(&id)
            .map(|end| end.options)
            .unwrap_or_default()
    }

    pub(crate) fn peer_options(&self, id: StreamId) -> SocketOptions {
        self.streams
            .get(&id)
            .map(|end| self.options(end.peer_id))
            .unwrap_or_default()
    }

    pub(crate) fn set_options(
        &mut self,
        id: StreamId,
        set: impl FnOnce(&mut SocketOptions),
    ) -> io::Result<()> {
        set(&mut self.end_mut(id)?.options);
        Ok(())
    }

    /// Whether the peer's handle was dropped.
    pub(crate) fn peer_closed(&self, id: StreamId) -> bool {
        self.streams
            .get(&id)
            .and_then(|end| self.streams.get(&end.peer_id))
            .is_none_or(|peer| peer.closed)
    }

    /// Ready once the peer's handle was dropped or the connection was reset, whether or not
    /// this end reads: how a client that stalled on purpose learns the server closed it.
    pub(crate) fn poll_peer_closed(&mut self, id: StreamId, cx: &Context<'_>) -> Poll<()> {
        if self.peer_closed(id) || self.streams.get(&id).is_none_or(|end| end.rx.is_reset()) {
            return Poll::Ready(());
        }
        if let Some(end) = self.streams.get_mut(&id) {
            end.close_waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn wake_close(&mut self, id: StreamId) {
        if let Some(waker) = self
            .streams
            .get_mut(&id)
            .and_then(|end| end.close_waker.take())
        {
            waker.wake();
        }
    }

    /// Shuts down writing: the peer reads what was sent, then the end of the stream.
    pub(crate) fn shutdown(&mut self, id: StreamId) {
        let Some(end) = self.streams.get_mut(&id) else {
            return;
        };
        if end.write_shut {
            return;
        }
        end.write_shut = true;
        let peer = end.peer_id;
        if let Some(peer) = self.streams.get_mut(&peer) {
            peer.rx.finish();
        }
    }

    /// Aborts the connection: both ends' unread data is lost and their operations fail.
    pub(crate) fn reset(&mut self, id: StreamId) {
        let Some(end) = self.streams.get_mut(&id) else {
            return;
        };
        if end.rx.is_reset() {
            return;
        }
        end.rx.reset();
        let peer = end.peer_id;
        if let Some(peer) = self.streams.get_mut(&peer) {
            peer.rx.reset();
        }
        self.wake_close(id);
        self.wake_close(peer);
        self.stats.tcp_reset += 1;
    }

    /// The handle of this end is dropped. Like a kernel, a close with unread data resets
    /// the connection; otherwise the peer reads the rest, then the end of the stream, and
    /// its later writes fail.
    pub(crate) fn close(&mut self, id: StreamId) {
        let Some(end) = self.streams.get(&id) else {
            return;
        };
        if end.rx.len() > 0 && !end.rx.is_reset() {
            self.reset(id);
        }
        self.shutdown(id);
        let Some(end) = self.streams.get_mut(&id) else {
            return;
        };
        end.closed = true;
        end.rx.close_reader();
        let peer = end.peer_id;
        self.wake_close(peer);
        let peer_closed = self.streams.get(&peer).is_none_or(|peer| peer.closed);
        if peer_closed {
            for gone in [id, peer] {
                if let Some(end) = self.streams.remove(&gone) {
                    if end.ephemeral {
                        self.tcp_ports.remove(&end.local);
                    }
                }
            }
        }
    }

    /// Connections with at least one end open.
    pub(crate) fn open_streams(&self) -> usize {
        self.streams.values().filter(|end| !end.closed).count()
    }

    // --- UDP ---

    fn udp_conflict(&self, addr: SocketAddr) -> bool {
        if addr.ip().is_unspecified() {
            self.udp.keys().any(|bound| bound.port() == addr.port())
        } else {
            self.udp.contains_key(&addr) || self.udp.contains_key(&unspecified(addr))
        }
    }

    /// Binds a UDP socket; `AddrInUse` if the address (or the unspecified address of its
    /// port) is taken. Port 0 takes an ephemeral port.
    pub(crate) fn bind_udp(&mut self, mut addr: SocketAddr) -> io::Result<SocketAddr> {
        if addr.port() == 0 {
            let used = &self.udp;
            let port = Self::ephemeral_port(&mut self.next_port, addr.ip(), |a| {
                used.contains_key(&a) || used.contains_key(&unspecified(a))
            })?;
            addr.set_port(port);
        }
        if self.udp_conflict(addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("UDP {addr} is in use"),
            ));
        }
        let capacity = self.config.udp_buffer;
        self.udp.insert(
            addr,
            UdpEntry {
                queue: VecDeque::new(),
                queued_bytes: 0,
                capacity,
                waker: None,
            },
        );
        Ok(addr)
    }

    pub(crate) fn unbind_udp(&mut self, addr: SocketAddr) {
        self.udp.remove(&addr);
    }

    pub(crate) fn set_udp_buffer(&mut self, addr: SocketAddr, bytes: usize) {
        if let Some(entry) = self.udp.get_mut(&addr) {
            entry.capacity = bytes;
        }
    }

    /// Sends one datagram from `from` to `to`. Like UDP it never blocks and never says
    /// whether the datagram arrived: loss, a missing receiver and a full queue all drop it.
    pub(crate) fn send_to(&mut self, from: SocketAddr, payload: Bytes, to: SocketAddr) {
        self.stats.udp_sent += 1;
        if self.rng.chance(self.config.udp_loss) {
            self.stats.udp_lost += 1;
            return;
        }
        let key = if self.udp.contains_key(&to) {
            to
        } else {
            unspecified(to)
        };
        let Some(entry) = self.udp.get_mut(&key) else {
            self.stats.udp_unroutable += 1;
            return;
        };
        if entry.queued_bytes + payload.len() > entry.capacity {
            self.stats.udp_overflowed += 1;
            return;
        }
        entry.queued_bytes += payload.len();
        entry.queue.push_back((payload, from));
        self.stats.udp_delivered += 1;
        if let Some(waker) = entry.waker.take() {
            waker.wake();
        }
    }

    /// Takes the next datagram queued at `addr`; `WouldBlock` when none is.
    pub(crate) fn recv_from(&mut self, addr: SocketAddr) -> io::Result<(Bytes, SocketAddr)> {
        let entry = self.udp.get_mut(&addr).ok_or_else(not_connected)?;
        let (payload, from) = entry
            .queue
            .pop_front()
            .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
        entry.queued_bytes -= payload.len();
        Ok((payload, from))
    }

    pub(crate) fn poll_recv(&mut self, addr: SocketAddr, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let Some(entry) = self.udp.get_mut(&addr) else {
            return Poll::Ready(Err(not_connected()));
        };
        if entry.queue.is_empty() {
            entry.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// Datagrams queued at `addr`.
    pub(crate) fn udp_queued(&self, addr: SocketAddr) -> usize {
        self.udp.get(&addr).map_or(0, |entry| entry.queue.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An operation on one end (`end` 0 or 1) of one of three connections.
    #[derive(Debug, Clone)]
    enum Op {
        Write { conn: usize, end: usize, len: usize },
        Read { conn: usize, end: usize, max: usize },
        Shutdown { conn: usize, end: usize },
        Close { conn: usize, end: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        let target = (0usize..3, 0usize..2);
        prop_oneof![
            4 => (target.clone(), 1usize..300).prop_map(|((conn, end), len)| Op::Write { conn, end, len }),
            4 => (target.clone(), 1usize..300).prop_map(|((conn, end), max)| Op::Read { conn, end, max }),
            1 => target.clone().prop_map(|(conn, end)| Op::Shutdown { conn, end }),
            1 => target.prop_map(|(conn, end)| Op::Close { conn, end }),
        ]
    }

    /// The model of one direction: bytes written and not read, and whether the writer
    /// finished.
    #[derive(Debug, Clone, Default)]
    struct Direction {
        written: Vec<u8>,
        read: usize,
        fin: bool,
    }

    proptest! {
        /// Against a model of each direction: what a reader gets is exactly what the writer
        /// wrote, in order, then the end of the stream; a direction never holds more than
        /// its capacity; a close with unread data resets; client ports stay unique.
        #[test]
        fn connections_match_a_model(ops in proptest::collection::vec(op(), 1..120)) {
            let mut net = Network::new(
                NetConfig { tcp_buffer: 500, ..NetConfig::default() },
                SimRng::new(1),
            );
            let server: SocketAddr = "127.0.0.1:80".parse().unwrap();
            let listener = net.listen(server).unwrap();
            let mut conns = Vec::new();
            for i in 0..3u8 {
                let client = net.connect(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i % 2)), server).unwrap();
                let (accepted, _) = net.accept(listener).unwrap();
                conns.push([client, accepted]);
            }
            // model[conn][end]: the direction toward `end`.
            let mut model = vec![[Direction::default(), Direction::default()]; 3];
            let mut closed = [[false; 2]; 3];
            let mut reset = [false; 3];
            let mut next = 0u8;
            for op in ops {
                match op {
                    Op::Write { conn, end, len } => {
                        if closed[conn][end] { continue; }
                        let data: Vec<u8> = (0..len).map(|_| { next = next.wrapping_add(1); next }).collect();
                        let result = net.write(conns[conn][end], [&data[..]]);
                        let toward = &mut model[conn][1 - end];
                        match result {
                            Ok(n) => {
                                prop_assert!(!reset[conn] && !toward.fin && !closed[conn][1 - end]);
                                toward.written.extend_from_slice(&data[..n]);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                prop_assert_eq!(toward.written.len() - toward.read, 500);
                            }
                            Err(_) => prop_assert!(reset[conn] || toward.fin || closed[conn][1 - end]),
                        }
                    }
                    Op::Read { conn, end, max } => {
                        if closed[conn][end] { continue; }
                        let result = net.read(conns[conn][end], max);
                        let here = &mut model[conn][end];
                        match result {
                            Ok(bytes) if bytes.is_empty() => {
                                prop_assert!(here.fin && here.read == here.written.len());
                            }
                            Ok(bytes) => {
                                prop_assert_eq!(&bytes[..], &here.written[here.read..here.read + bytes.len()]);
                                here.read += bytes.len();
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                prop_assert!(!here.fin && here.read == here.written.len());
                            }
                            Err(e) => {
                                prop_assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
                                prop_assert!(reset[conn]);
                            }
                        }
                    }
                    Op::Shutdown { conn, end } => {
                        if closed[conn][end] { continue; }
                        net.shutdown(conns[conn][end]);
                        model[conn][1 - end].fin = true;
                    }
                    Op::Close { conn, end } => {
                        if closed[conn][end] { continue; }
                        let here = &model[conn][end];
                        if here.read < here.written.len() && !reset[conn] {
                            reset[conn] = true;
                        }
                        net.close(conns[conn][end]);
                        closed[conn][end] = true;
                        model[conn][1 - end].fin = true;
                    }
                }
                for conn in &conns {
                    for id in conn {
                        prop_assert!(net.unread(*id) <= 500);
                    }
                }
                let open = closed.iter().filter(|ends| !(ends[0] && ends[1])).count();
                let ends_open: usize = closed.iter().flatten().filter(|c| !**c).count();
                prop_assert_eq!(net.open_streams(), ends_open);
                prop_assert!(net.open_streams() <= 2 * open);
            }
            let locals: HashSet<SocketAddr> = conns
                .iter()
                .filter_map(|conn| net.addrs(conn[0]).ok().map(|(local, _)| local))
                .collect();
            prop_assert_eq!(locals.len(), conns.iter().filter(|c| net.addrs(c[0]).is_ok()).count());
        }
    }
}
