//! The tokio adapter: how mediakit's engine (in `mediakit-server`) runs on tokio.
//!
//! Each worker thread runs a current-thread runtime with a `LocalSet`, so sessions are
//! `!Send` and never move between threads. Everything else (workers, connections, fan-out,
//! protocol logic) is shared with the async-std adapter.

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
use mediakit_server::socket::{self, send_queue, DatagramSender};
use mediakit_server::{clock, seed};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub use mediakit_server::engine::Server;

/// Runs the engine on tokio current-thread runtimes.
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

impl Runtime for Tokio {
    type Listener = TcpListener;
    type Stream = Stream;
    type Sleep = Sleep;
    type Datagram = Udp;

    fn now() -> Millis {
        clock::now()
    }

    fn seed() -> u64 {
        seed::fresh()
    }

    fn run_worker(main: Pin<Box<dyn Future<Output = ()>>>) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        tokio::task::LocalSet::new().block_on(&runtime, main);
        Ok(())
    }

    fn spawn_local(task: impl Future<Output = ()> + 'static) {
        drop(tokio::task::spawn_local(task));
    }

    fn sleep_until(deadline: Millis) -> Sleep {
        Sleep(Box::pin(tokio::time::sleep_until(
            clock::instant_at(deadline).into(),
        )))
    }

    fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::from_std(socket::reuseport_listener(addr)?)
    }

    fn bind_datagram(addr: SocketAddr) -> io::Result<Udp> {
        UdpSocket::from_std(socket::udp_socket(addr)?).map(Udp)
    }

    async fn accept(listener: &TcpListener) -> io::Result<(Stream, SocketAddr)> {
        let (stream, peer) = listener.accept().await?;
        Ok((Stream(stream), peer))
    }
}

/// A tokio timer, boxed once so it can be moved (reset) in place for a connection's life.
#[derive(Debug)]
pub struct Sleep(Pin<Box<tokio::time::Sleep>>);

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl Timer for Sleep {
    fn reset(&mut self, deadline: Millis) {
        self.0.as_mut().reset(clock::instant_at(deadline).into());
    }
}

/// A tokio TCP stream as the engine drives it.
#[derive(Debug)]
pub struct Stream(TcpStream);

impl Connection for Stream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_read_ready(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_write_ready(cx)
    }

    fn try_read(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        buffer.reserve(16 * 1024);
        self.0.try_read_buf(buffer)
    }

    fn try_send(&self, queue: &mut OutQueue, more: bool) -> io::Result<usize> {
        // Through `try_io` so tokio clears its readiness when the send would block.
        self.0.try_io(Interest::WRITABLE, || {
            send_queue(SockRef::from(&self.0), queue, more)
        })
    }

    fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.0.set_nodelay(nodelay)
    }

    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        socket::set_keepalive(SockRef::from(&self.0), idle)
    }
}

/// A tokio UDP socket as the engine drives it.
#[derive(Debug)]
pub struct Udp(UdpSocket);

impl DatagramSocket for Udp {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_recv_ready(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_send_ready(cx)
    }

    fn try_recv_from(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.try_recv_from(buffer)
    }

    fn try_send_batch(
        &self,
        sender: &mut DatagramSender,
        batch: &[&Datagram],
        peer: IpAddr,
    ) -> io::Result<usize> {
        // Through `try_io` so tokio clears its readiness when the send would block.
        self.0.try_io(Interest::WRITABLE, || {
            sender.send(SockRef::from(&self.0), batch, peer)
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
