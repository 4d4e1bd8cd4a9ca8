//! The seam between the engine and an async runtime: everything runtime-specific a server
//! needs, and nothing more. `mediakit-tokio` and `mediakit-async-std` each implement it in
//! one small file; `mediakit-sim` implements it on virtual time and in-memory sockets. The
//! connection, worker and fan-out logic above it exists once.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use mediakit_core::datagram::Datagram;
use mediakit_core::{Millis, OutQueue};

use crate::socket::DatagramSender;

/// A single-threaded async runtime, one instance per worker thread.
///
/// Methods take no `self`: a worker reaches its runtime through the thread it runs on.
pub trait Runtime: 'static {
    /// A listening socket registered with this thread's reactor.
    type Listener: 'static;
    /// A connection registered with this thread's reactor.
    type Stream: Connection + 'static;
    /// A timer future that can be moved to a new deadline.
    type Sleep: Timer;
    /// A UDP socket registered with this thread's reactor.
    type Datagram: DatagramSocket + 'static;

    /// The server's one clock: milliseconds since its epoch, the same on every worker.
    fn now() -> Millis;
    /// An unpredictable seed for a new session (handshake bytes, session ids, SSRCs).
    fn seed() -> u64;
    /// Runs `main` to completion on a fresh single-threaded executor on the current thread;
    /// tasks spawned with [`Runtime::spawn_local`] meanwhile run on it too.
    fn run_worker(main: Pin<Box<dyn Future<Output = ()>>>) -> io::Result<()>;
    /// Spawns a task on the current worker's executor; it never moves to another thread.
    fn spawn_local(task: impl Future<Output = ()> + 'static);
    /// A timer that fires at `deadline` on [`Runtime::now`]'s clock.
    fn sleep_until(deadline: Millis) -> Self::Sleep;
    /// Binds a listener on `addr` for this worker, registered with its reactor. Every worker
    /// binds the same address (`SO_REUSEPORT`), so the kernel spreads connections over them.
    fn bind_listener(addr: SocketAddr) -> io::Result<Self::Listener>;
    /// Binds a UDP socket on `addr` for this worker (`AddrInUse` if it is taken).
    fn bind_datagram(addr: SocketAddr) -> io::Result<Self::Datagram>;
    /// Accepts the next connection.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>>;
}

/// A timer a connection keeps for its whole life and moves when its deadline changes, so a
/// wake-up does not register a fresh timer with the reactor each time.
pub trait Timer: Future<Output = ()> + Unpin {
    /// Re-arms the timer for `deadline`, also after it fired.
    fn reset(&mut self, deadline: Millis);
}

/// What the engine does with a connected socket: readiness, non-blocking reads, vectored
/// sends of an [`OutQueue`], and the few socket options it sets.
pub trait Connection {
    /// Ready when a read may make progress (or the socket failed).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when a write may make progress (or the socket failed).
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Reads what is available into `buffer` (at most about 16 KiB); `WouldBlock` when
    /// nothing is.
    fn try_read(&self, buffer: &mut BytesMut) -> io::Result<usize>;
    /// Sends from the front of `queue` with one vectored write and advances it; `WouldBlock`
    /// when the socket is full. `more` asks the kernel to hold a partial segment (MSG_MORE).
    fn try_send(&self, queue: &mut OutQueue, more: bool) -> io::Result<usize>;
    /// `TCP_NODELAY`: on during setup for a fast start, off once media flows.
    fn set_nodelay(&self, nodelay: bool) -> io::Result<()>;
    /// TCP keepalive probes after `idle` without traffic (`None`: off), so a peer that
    /// vanished without a FIN does not hold its connection forever.
    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()>;
}

/// What the engine does with a UDP socket (RTP and RTCP for RTSP over UDP): readiness and
/// non-blocking datagram I/O.
pub trait DatagramSocket {
    /// Ready when a receive may make progress.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when a send may make progress.
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Receives one datagram into `buffer`; `WouldBlock` when none waits.
    fn try_recv_from(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// Sends datagrams from the front of `batch`, each to its port at `peer`, with
    /// `sender` (several per system call where the platform allows); returns how many were
    /// sent, or `WouldBlock` when the socket buffer is full.
    fn try_send_batch(
        &self,
        sender: &mut DatagramSender,
        batch: &[&Datagram],
        peer: IpAddr,
    ) -> io::Result<usize>;
    /// The local address, for the ports SETUP answers name.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}
