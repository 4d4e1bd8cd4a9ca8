//! [`Sim`]: the engine's [`Runtime`] on the simulated world, the third adapter beside
//! `mediakit-tokio` and `mediakit-async-std`, and as small: every method reaches the world
//! installed on the current thread.
//!
//! The engine's connection, listener, UDP and timer types are the simulation's own
//! [`TcpStream`], [`TcpListener`], [`UdpSocket`] and [`Sleep`]; the trait impls below only
//! translate. Socket options are recorded on the connection (a test can read what the
//! engine set); `MSG_MORE` and the batched-send state are ignored, since no kernel is there
//! to hold a segment or batch system calls.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use mediakit_core::datagram::Datagram;
use mediakit_core::{Millis, OutQueue};
use mediakit_server::engine::{Connection, DatagramSocket, Runtime, Timer};
use mediakit_server::socket::DatagramSender;

use crate::timer::Sleep;
use crate::world::{current, expect_current, no_world, Outcome};
use crate::{TcpListener, TcpStream, UdpSocket};

/// Runs the engine on the current thread's [`World`](crate::World): virtual time,
/// in-memory sockets, session seeds from the world's seed.
#[derive(Debug, Clone, Copy)]
pub struct Sim;

impl Runtime for Sim {
    type Listener = TcpListener;
    type Stream = TcpStream;
    type Sleep = Sleep;
    type Datagram = UdpSocket;

    fn now() -> Millis {
        expect_current("Sim::now").now()
    }

    fn seed() -> u64 {
        expect_current("Sim::seed").next_seed()
    }

    /// Runs `main` and every task it spawns on the world until `main` completes. The
    /// engine's threaded `Server` calls this once per worker thread; on a thread with a
    /// world, that is a whole simulated server per thread. `LocalServer` does not call it.
    fn run_worker(main: Pin<Box<dyn Future<Output = ()>>>) -> io::Result<()> {
        let world = current().ok_or_else(no_world)?;
        let task = world.spawn(main);
        match world.run(&mut || task.is_finished(), Millis(u64::MAX)) {
            Outcome::Done => Ok(()),
            Outcome::Idle => Err(io::Error::other(
                "simulated worker waits for something that can never happen",
            )),
            Outcome::Nested => Err(io::Error::other(
                "run_worker inside a running simulation (spawn_local the worker instead)",
            )),
            Outcome::Limit => Err(io::Error::other("simulated worker ran out of time")),
        }
    }

    fn spawn_local(task: impl Future<Output = ()> + 'static) {
        drop(expect_current("Sim::spawn_local").spawn(task));
    }

    fn sleep_until(deadline: Millis) -> Sleep {
        Sleep::new(expect_current("Sim::sleep_until"), deadline)
    }

    fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr)
    }

    fn bind_datagram(addr: SocketAddr) -> io::Result<UdpSocket> {
        UdpSocket::bind(addr)
    }

    async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        listener.accept().await
    }
}

impl Timer for Sleep {
    fn reset(&mut self, deadline: Millis) {
        Sleep::reset(self, deadline);
    }
}

impl Connection for TcpStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_ready(cx)
    }

    fn try_read(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        self.try_read_buf(buffer)
    }

    fn try_send(&self, queue: &mut OutQueue, _more: bool) -> io::Result<usize> {
        self.try_send_queue(queue)
    }

    fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.set_options(|options| options.nodelay = nodelay)
    }

    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.set_options(|options| options.keepalive = idle)
    }
}

impl DatagramSocket for UdpSocket {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_recv_ready(cx)
    }

    /// Always ready: a simulated send never blocks (a full receiver drops instead).
    fn poll_writable(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn try_recv_from(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UdpSocket::try_recv_from(self, buffer)
    }

    fn try_send_batch(
        &self,
        _sender: &mut DatagramSender,
        batch: &[&Datagram],
        peer: IpAddr,
    ) -> io::Result<usize> {
        for datagram in batch {
            let segments = datagram.segments.iter().map(|segment| &segment[..]);
            self.send_gathered(segments, SocketAddr::new(peer, datagram.port));
        }
        Ok(batch.len())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(UdpSocket::local_addr(self))
    }
}
