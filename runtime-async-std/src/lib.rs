//! The async-std adapter: how mediakit's engine (in `mediakit-server`) runs on async-std.
//!
//! async-std's runtime is built from `async-io` (the reactor and timers) and
//! `async-executor`. Its public API has what we need to drive a thread (`task::block_on`) but
//! not the rest, so we use the crates it is built on, exactly as smol does:
//! - `async_executor::LocalExecutor`, one per worker thread: async-std's own `spawn_local` is
//!   behind its `unstable` feature and spawns onto a shared pool, while sessions must stay on
//!   the thread that accepted them;
//! - `async_io::Async<TcpStream>`: async-std's `TcpStream` offers `AsyncRead`/`AsyncWrite`
//!   only, with no readiness polling and no way to pass `MSG_MORE` to a vectored send;
//! - `async_io::Timer::at` for deadlines (async-std only sleeps for a duration).
//!
//! Everything else (workers, connections, fan-out, protocol logic) is shared with the tokio
//! adapter.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use bytes::BytesMut;
use mediakit_core::datagram::Datagram;
use mediakit_core::{Millis, OutQueue};
use mediakit_server::engine::{Connection, DatagramSocket, Runtime, Timer as EngineTimer};
use mediakit_server::socket::{self, send_queue, DatagramSender};
use mediakit_server::{clock, seed};
use socket2::SockRef;

pub use mediakit_server::engine::Server;

/// Bytes read per non-blocking read.
const READ_SIZE: usize = 16 * 1024;

thread_local! {
    /// The executor of the worker running on this thread.
    static EXECUTOR: RefCell<Option<Rc<LocalExecutor<'static>>>> = const { RefCell::new(None) };
}

/// Runs the engine on async-std, one local executor per worker thread.
#[derive(Debug, Clone, Copy)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    type Listener = Async<TcpListener>;
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
        let executor = Rc::new(LocalExecutor::new());
        EXECUTOR.with(|slot| *slot.borrow_mut() = Some(Rc::clone(&executor)));
        async_std::task::block_on(executor.run(main));
        EXECUTOR.with(|slot| slot.borrow_mut().take());
        Ok(())
    }

    fn spawn_local(task: impl Future<Output = ()> + 'static) {
        EXECUTOR.with(|slot| {
            if let Some(executor) = slot.borrow().as_ref() {
                executor.spawn(task).detach();
            }
        });
    }

    fn sleep_until(deadline: Millis) -> Sleep {
        Sleep(Timer::at(clock::instant_at(deadline)))
    }

    fn bind_listener(addr: SocketAddr) -> io::Result<Async<TcpListener>> {
        Async::new(socket::reuseport_listener(addr)?)
    }

    fn bind_datagram(addr: SocketAddr) -> io::Result<Udp> {
        Async::new(socket::udp_socket(addr)?).map(Udp)
    }

    async fn accept(listener: &Async<TcpListener>) -> io::Result<(Stream, SocketAddr)> {
        let (stream, peer) = listener.accept().await?;
        Ok((Stream(stream), peer))
    }
}

/// A deadline on async-io's timer.
#[derive(Debug)]
pub struct Sleep(Timer);

impl EngineTimer for Sleep {
    fn reset(&mut self, deadline: Millis) {
        self.0.set_at(clock::instant_at(deadline));
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A TCP stream registered with async-io's reactor, as the engine drives it.
#[derive(Debug)]
pub struct Stream(Async<TcpStream>);

impl Connection for Stream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_readable(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_writable(cx)
    }

    fn try_read(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        // The socket is non-blocking (async-io set it so): this returns WouldBlock when empty.
        let start = buffer.len();
        buffer.resize(start + READ_SIZE, 0);
        let result = self.0.get_ref().read(&mut buffer[start..]);
        buffer.truncate(start + *result.as_ref().unwrap_or(&0));
        result
    }

    fn try_send(&self, queue: &mut OutQueue, more: bool) -> io::Result<usize> {
        send_queue(SockRef::from(self.0.get_ref()), queue, more)
    }

    fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.0.get_ref().set_nodelay(nodelay)
    }

    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        socket::set_keepalive(SockRef::from(self.0.get_ref()), idle)
    }
}

/// An async-io UDP socket as the engine drives it.
#[derive(Debug)]
pub struct Udp(Async<UdpSocket>);

impl DatagramSocket for Udp {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_readable(cx)
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_writable(cx)
    }

    fn try_recv_from(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.get_ref().recv_from(buffer)
    }

    fn try_send_batch(
        &self,
        sender: &mut DatagramSender,
        batch: &[&Datagram],
        peer: IpAddr,
    ) -> io::Result<usize> {
        sender.send(SockRef::from(self.0.get_ref()), batch, peer)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}
