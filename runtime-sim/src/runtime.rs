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

use crate::net::no_world;
use crate::timer::Sleep;
use crate::world::{current, expect_current, Outcome};
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
        expect_current("Sim::sleep_until").sleep_until(deadline)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sleep, World};
    use std::net::Ipv4Addr;

    #[test]
    fn run_worker_runs_main_and_its_tasks_on_virtual_time() {
        let world = World::new(1);
        let finished = std::rc::Rc::new(std::cell::Cell::new(Millis::ZERO));
        let seen = std::rc::Rc::clone(&finished);
        Sim::run_worker(Box::pin(async move {
            Sim::spawn_local(async move {
                Sim::sleep_until(Millis(250)).await;
                seen.set(Sim::now());
            });
            sleep(300).await;
        }))
        .unwrap();
        assert_eq!(finished.get(), Millis(250));
        assert_eq!(world.now(), Millis(300));
    }

    #[test]
    fn run_worker_reports_a_deadlock_a_nested_call_and_a_missing_world() {
        assert!(Sim::run_worker(Box::pin(async {})).is_err(), "no world");
        let world = World::new(1);
        let error = Sim::run_worker(Box::pin(std::future::pending())).unwrap_err();
        assert!(error.to_string().contains("never happen"), "{error}");
        let nested = world.block_on(
            async { Sim::run_worker(Box::pin(async {})).map_err(|e| e.to_string()) },
            0,
        );
        assert!(nested
            .unwrap()
            .unwrap_err()
            .contains("inside a running simulation"));
    }

    #[test]
    fn seeds_come_from_the_world_seed() {
        let draw = |seed| {
            let _world = World::new(seed);
            [Sim::seed(), Sim::seed()]
        };
        assert_eq!(draw(4), draw(4));
        assert_ne!(draw(4), draw(5));
    }

    #[test]
    fn the_trait_impls_reach_the_simulated_sockets() {
        let world = World::new(1);
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1935);
        let listener = Sim::bind_listener(addr).unwrap();
        let client = world
            .connect(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), addr)
            .unwrap();
        let (server, peer) = world
            .block_on(async move { Sim::accept(&listener).await.unwrap() }, 0)
            .unwrap();
        assert_eq!(peer, client.local_addr());
        Connection::set_keepalive(&server, Some(Duration::from_secs(60))).unwrap();
        Connection::set_nodelay(&server, true).unwrap();
        assert_eq!(
            client.peer_options().keepalive,
            Some(Duration::from_secs(60))
        );
        assert!(client.peer_options().nodelay);
        let mut queue = OutQueue::new();
        queue.push(bytes::Bytes::from_static(b"hello"));
        assert_eq!(Connection::try_send(&server, &mut queue, true).unwrap(), 5);
        let mut input = BytesMut::new();
        client.try_write(b"hi").unwrap();
        assert_eq!(Connection::try_read(&server, &mut input).unwrap(), 2);

        let rtp = Sim::bind_datagram(SocketAddr::new(addr.ip(), 30_000)).unwrap();
        assert_eq!(
            Sim::bind_datagram(SocketAddr::new(addr.ip(), 30_000))
                .unwrap_err()
                .kind(),
            io::ErrorKind::AddrInUse
        );
        let player = world
            .bind_udp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                5000,
            ))
            .unwrap();
        let datagram = Datagram {
            channel: mediakit_core::datagram::UdpChannel::Rtp,
            port: 5000,
            segments: [
                bytes::Bytes::from_static(b"rtp-header"),
                bytes::Bytes::from_static(b"payload"),
            ]
            .into_iter()
            .collect(),
        };
        let mut sender = DatagramSender::new();
        let sent = rtp
            .try_send_batch(
                &mut sender,
                &[&datagram, &datagram],
                player.local_addr().ip(),
            )
            .unwrap();
        assert_eq!(sent, 2);
        let (bytes, from) = player.try_recv().unwrap();
        assert_eq!(
            (&bytes[..], from),
            (&b"rtp-headerpayload"[..], rtp.local_addr())
        );
        assert_eq!(DatagramSocket::local_addr(&rtp).unwrap().port(), 30_000);
    }
}
