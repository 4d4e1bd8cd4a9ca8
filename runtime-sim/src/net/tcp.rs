//! Simulated TCP: listeners and connection handles. The same [`TcpStream`] serves the
//! engine (through the `Connection` trait in [`crate::runtime`]) and the test's clients.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use mediakit_core::OutQueue;

use super::{current, no_world, SharedNetwork};
use super::{ListenerId, SocketOptions, StreamId};

/// Bytes one [`TcpStream::try_read_buf`] takes at most, like a read into a 16 KiB buffer.
pub const READ_SIZE: usize = 16 * 1024;

/// A listening socket. Several listeners may bind one address; new connections go to them
/// in turn, as the kernel spreads them over `SO_REUSEPORT` listeners.
#[derive(Debug)]
pub struct TcpListener {
    net: SharedNetwork,
    id: ListenerId,
    addr: SocketAddr,
}

impl TcpListener {
    /// Binds `addr` in the current world (port 0: an ephemeral port).
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        let net = current().ok_or_else(no_world)?;
        Self::bind_in(&net, addr)
    }

    pub(crate) fn bind_in(net: &SharedNetwork, addr: SocketAddr) -> io::Result<TcpListener> {
        let id = net.borrow_mut().listen(addr)?;
        let addr = net.borrow().listener_addr(id)?;
        Ok(TcpListener {
            net: Rc::clone(net),
            id,
            addr,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Takes the next connection, or registers to be woken when one arrives.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let accepted = self.net.borrow_mut().poll_accept(self.id, cx);
        accepted.map(|result| {
            result.and_then(|(id, peer)| Ok((TcpStream::from_id(&self.net, id)?, peer)))
        })
    }

    /// Takes the next connection if one waits; `WouldBlock` when none does.
    pub fn try_accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (id, peer) = self.net.borrow_mut().accept(self.id)?;
        Ok((TcpStream::from_id(&self.net, id)?, peer))
    }

    /// The next connection and its peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        if let Ok(mut net) = self.net.try_borrow_mut() {
            net.close_listener(self.id);
        }
    }
}

/// One end of a simulated TCP connection.
///
/// Every method takes `&self`, as a socket's do. Dropping the handle closes the connection:
/// the peer reads what was sent and then the end of the stream, unless this end left data
/// unread, in which case the connection is reset (as Linux does).
#[derive(Debug)]
pub struct TcpStream {
    net: SharedNetwork,
    id: StreamId,
    local: SocketAddr,
    peer: SocketAddr,
}

impl TcpStream {
    /// Connects from `from` (an ephemeral port is chosen) to a listener at `to` in the
    /// current world. The connection is established at once; the server side waits in the
    /// listener's backlog until accepted, and what the client writes meanwhile is buffered.
    pub fn connect(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
        let net = current().ok_or_else(no_world)?;
        Self::connect_in(&net, from, to)
    }

    pub(crate) fn connect_in(
        net: &SharedNetwork,
        from: IpAddr,
        to: SocketAddr,
    ) -> io::Result<TcpStream> {
        let id = net.borrow_mut().connect(from, to)?;
        Self::from_id(net, id)
    }

    fn from_id(net: &SharedNetwork, id: StreamId) -> io::Result<TcpStream> {
        let (local, peer) = net.borrow().addrs(id)?;
        Ok(TcpStream {
            net: Rc::clone(net),
            id,
            local,
            peer,
        })
    }

    /// This end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Ready when a read would not block (data, the end of the stream, or a reset).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.net.borrow_mut().poll_readable(self.id, cx)
    }

    /// Ready when a write would not block (room, or an error to report).
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.net.borrow_mut().poll_writable(self.id, cx)
    }

    /// Reads into `buffer`; 0 at the end of the stream, `WouldBlock` when nothing waits.
    pub fn try_read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        let bytes = self.net.borrow_mut().read(self.id, buffer.len())?;
        let target = buffer
            .get_mut(..bytes.len())
            .ok_or_else(|| io::Error::other("simulated read longer than its buffer"))?;
        target.copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    /// Appends up to [`READ_SIZE`] bytes to `buffer`; 0 at the end of the stream,
    /// `WouldBlock` when nothing waits.
    pub fn try_read_buf(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        let bytes = self.net.borrow_mut().read(self.id, READ_SIZE)?;
        buffer.extend_from_slice(&bytes);
        Ok(bytes.len())
    }

    /// Writes as much of `data` as fits; `WouldBlock` when nothing does.
    pub fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        self.try_write_vectored([data])
    }

    /// Writes as much of the gathered `chunks` as fits, in order; `WouldBlock` when nothing
    /// does.
    pub fn try_write_vectored<'a>(
        &self,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<usize> {
        self.net.borrow_mut().write(self.id, chunks)
    }

    /// Writes from the front of `queue` as much as fits and advances it.
    pub fn try_send_queue(&self, queue: &mut OutQueue) -> io::Result<usize> {
        let written = self.try_write_vectored(queue.segments())?;
        queue.advance(written);
        Ok(written)
    }

    /// Waits until a read would not block.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Waits until a write would not block.
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// Reads into `buffer`, waiting for data; 0 at the end of the stream.
    pub async fn read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            self.readable().await?;
            match self.try_read(buffer) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }

    /// Appends up to [`READ_SIZE`] bytes to `buffer`, waiting for data; 0 at the end of
    /// the stream.
    pub async fn read_buf(&self, buffer: &mut BytesMut) -> io::Result<usize> {
        loop {
            self.readable().await?;
            match self.try_read_buf(buffer) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }

    /// Writes all of `data`, waiting for room as the peer reads.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            self.writable().await?;
            match self.try_write(data) {
                Ok(written) => data = data.get(written..).unwrap_or_default(),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Writes everything in `queue`, waiting for room as the peer reads.
    pub async fn send_queue(&self, queue: &mut OutQueue) -> io::Result<()> {
        while !queue.is_empty() {
            self.writable().await?;
            match self.try_send_queue(queue) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Shuts down writing (a FIN): the peer reads what was sent, then the end of the stream.
    pub fn shutdown(&self) {
        self.net.borrow_mut().shutdown(self.id);
    }

    /// Resets the connection (an RST): unread data is lost on both ends and every later
    /// operation on either end fails with `ConnectionReset`.
    pub fn reset(&self) {
        self.net.borrow_mut().reset(self.id);
    }

    /// Sets how many bytes may be in flight toward this end (its receive buffer plus the
    /// peer's send buffer). A client that stops reading stalls its peer's writes once this
    /// many are unread.
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        self.net.borrow_mut().set_buffer(self.id, false, bytes)
    }

    /// Sets how many bytes may be in flight toward the peer.
    pub fn set_send_buffer(&self, bytes: usize) -> io::Result<()> {
        self.net.borrow_mut().set_buffer(self.id, true, bytes)
    }

    /// How many bytes may be in flight toward this end.
    pub fn receive_buffer(&self) -> usize {
        self.net.borrow().buffer(self.id)
    }

    /// Bytes the peer sent that this end has not read.
    pub fn unread(&self) -> usize {
        self.net.borrow().unread(self.id)
    }

    /// Bytes this end sent that the peer has not read.
    pub fn unread_by_peer(&self) -> usize {
        self.net.borrow().unacknowledged(self.id)
    }

    /// Ready once the peer closed its socket or the connection was reset; needs no read, so
    /// a client that stopped reading on purpose learns when the server gave up on it.
    pub fn poll_peer_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.net.borrow_mut().poll_peer_closed(self.id, cx)
    }

    /// Waits until the peer closed its socket or the connection was reset.
    pub async fn wait_peer_closed(&self) {
        poll_fn(|cx| self.poll_peer_closed(cx)).await
    }

    /// Whether the peer's socket was closed.
    pub fn peer_closed(&self) -> bool {
        self.net.borrow().peer_closed(self.id)
    }

    /// The options set on this end.
    pub fn options(&self) -> SocketOptions {
        self.net.borrow().options(self.id)
    }

    /// The options the peer set on its end (what the server set on an accepted socket).
    pub fn peer_options(&self) -> SocketOptions {
        self.net.borrow().peer_options(self.id)
    }

    /// Changes this end's options.
    pub fn set_options(&self, set: impl FnOnce(&mut SocketOptions)) -> io::Result<()> {
        self.net.borrow_mut().set_options(self.id, set)
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        if let Ok(mut net) = self.net.try_borrow_mut() {
            net.close(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{now, sleep, World};
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    #[test]
    fn bytes_flow_both_ways_and_close_ends_the_stream() {
        let world = World::new(1);
        let listener = world.listen(addr(80)).unwrap();
        let server = world.spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            let mut buffer = BytesMut::new();
            while buffer.len() < 5 {
                stream.read_buf(&mut buffer).await.unwrap();
            }
            stream.write_all(b"world").await.unwrap();
            (peer, buffer)
        });
        let client = world.connect(ip(7), addr(80)).unwrap();
        let reply = world.spawn(async move {
            client.write_all(b"hello").await.unwrap();
            let mut buffer = [0; 16];
            let n = client.read(&mut buffer).await.unwrap();
            let eof = client.read(&mut buffer).await.unwrap();
            (buffer[..n].to_vec(), eof, client.local_addr())
        });
        world.run_for(10);
        let (peer, received) = server.take().unwrap();
        assert_eq!(&received[..], b"hello");
        let (bytes, eof, local) = reply.take().unwrap();
        assert_eq!(bytes, b"world");
        assert_eq!(eof, 0, "the server's stream was dropped: end of stream");
        assert_eq!(peer, local);
        assert_eq!(local, SocketAddr::new(ip(7), 49_152));
        assert_eq!(world.open_connections(), 0);
    }

    #[test]
    fn a_peer_that_stops_reading_blocks_the_writer_at_the_buffer_size() {
        let world = World::new(1);
        let listener = world.listen(addr(80)).unwrap();
        let client = world.connect(ip(1), addr(80)).unwrap();
        client.set_receive_buffer(1000).unwrap();
        let writer = world.spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut sent = 0;
            loop {
                match stream.try_write(&[0; 300]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            // Blocked until the client reads.
            stream.writable().await.unwrap();
            (sent, now())
        });
        world.run_for(50);
        assert!(!writer.is_finished());
        assert_eq!(client.unread(), 1000);
        let mut buffer = [0; 100];
        assert_eq!(client.try_read(&mut buffer).unwrap(), 100);
        world.run_pending();
        assert_eq!(writer.take(), Some((1000, mlis(50))));
    }

    fn mlis(ms: u64) -> mediakit_core::Millis {
        mediakit_core::Millis(ms)
    }

    #[test]
    fn closing_with_unread_data_resets_the_peer() {
        let world = World::new(1);
        let listener = world.listen(addr(80)).unwrap();
        let client = world.connect(ip(1), addr(80)).unwrap();
        client.try_write(b"request").unwrap();
        let server = world
            .block_on(async move { listener.accept().await.unwrap().0 }, 0)
            .unwrap();
        server.try_write(b"partial reply").unwrap();
        // The server closes without reading the request: RST.
        drop(server);
        let mut buffer = [0; 32];
        assert_eq!(
            client.try_read(&mut buffer).unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!(world.net_stats().tcp_reset, 1);
    }

    #[test]
    fn writes_to_a_closed_peer_fail() {
        let world = World::new(1);
        let listener = world.listen(addr(80)).unwrap();
        let client = world.connect(ip(1), addr(80)).unwrap();
        let server = world
            .block_on(async move { listener.accept().await.unwrap().0 }, 0)
            .unwrap();
        drop(client);
        let mut buffer = [0; 4];
        assert_eq!(server.try_read(&mut buffer).unwrap(), 0);
        assert_eq!(
            server.try_write(b"x").unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        assert!(server.peer_closed());
    }

    #[test]
    fn a_client_that_never_reads_learns_when_the_server_closes() {
        let world = World::new(1);
        let listener = world.listen(addr(80)).unwrap();
        let client = world.connect(ip(1), addr(80)).unwrap();
        let watcher = world.spawn(async move {
            client.wait_peer_closed().await;
            (now(), client.unread())
        });
        world.spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            stream.write_all(b"never read").await.unwrap();
            sleep(300).await;
        });
        world.run_for(1_000);
        assert_eq!(watcher.take(), Some((mlis(300), 10)));
    }

    #[test]
    fn listeners_of_one_address_take_connections_in_turn() {
        let world = World::new(1);
        let a = world.listen(addr(80)).unwrap();
        let b = world.listen(addr(80)).unwrap();
        let clients: Vec<_> = (0..4)
            .map(|i| world.connect(ip(i), addr(80)).unwrap())
            .collect();
        let peers = |listener: &TcpListener| {
            std::iter::from_fn(|| listener.try_accept().ok())
                .map(|(_, peer)| peer.ip())
                .collect::<Vec<_>>()
        };
        assert_eq!(world.listener_loads(addr(80)), [2, 2]);
        assert_eq!(peers(&a), [ip(0), ip(2)]);
        assert_eq!(peers(&b), [ip(1), ip(3)]);
        drop(clients);
    }

    #[test]
    fn connecting_to_nothing_or_a_full_backlog_is_refused() {
        let world = World::with_config(
            1,
            crate::world::SimConfig {
                net: crate::net::NetConfig {
                    accept_backlog: 1,
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        let refused = world.connect(ip(1), addr(81)).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        let listener = world.listen(addr(81)).unwrap();
        let _first = world.connect(ip(1), addr(81)).unwrap();
        assert!(world.connect(ip(1), addr(81)).is_err());
        assert_eq!(world.net_stats().tcp_refused, 2);
        drop(listener);
        // The queued connection was reset with its listener.
        let mut buffer = [0; 1];
        assert_eq!(
            _first.try_read(&mut buffer).unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
    }

    #[test]
    fn any_address_listener_accepts_for_every_ip_and_ports_are_per_client_ip() {
        let world = World::new(1);
        let listener = world
            .listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 90))
            .unwrap();
        let a = world.connect(ip(1), SocketAddr::new(ip(200), 90)).unwrap();
        let b = world.connect(ip(2), addr(90)).unwrap();
        let c = world.connect(ip(1), addr(90)).unwrap();
        assert_eq!(a.local_addr().port(), 49_152);
        assert_eq!(b.local_addr().port(), 49_152);
        assert_eq!(c.local_addr().port(), 49_153);
        drop(listener);
    }

    #[test]
    fn shutdown_and_reset_are_seen_by_the_peer() {
        let world = World::new(1);
        let listener = world.listen(addr(80)).unwrap();
        let client = world.connect(ip(1), addr(80)).unwrap();
        let server = world
            .block_on(async move { listener.accept().await.unwrap().0 }, 0)
            .unwrap();
        client.try_write(b"bye").unwrap();
        client.shutdown();
        let mut buffer = [0; 8];
        assert_eq!(server.try_read(&mut buffer).unwrap(), 3);
        assert_eq!(server.try_read(&mut buffer).unwrap(), 0);
        // Half-closed: the server may still answer.
        server.try_write(b"ok").unwrap();
        assert_eq!(client.try_read(&mut buffer).unwrap(), 2);
        server.reset();
        assert_eq!(
            client.try_write(b"x").unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
    }

    #[test]
    fn a_blocked_reader_wakes_on_data_after_virtual_time() {
        let world = World::new(1);
        let listener = world.listen(addr(80)).unwrap();
        let client = world.connect(ip(1), addr(80)).unwrap();
        world.spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            sleep(250).await;
            stream.write_all(b"late").await.unwrap();
            sleep(1_000).await;
        });
        let read = world.spawn(async move {
            let mut buffer = [0; 8];
            let n = client.read(&mut buffer).await.unwrap();
            (n, now())
        });
        world.run_for(2_000);
        assert_eq!(read.take(), Some((4, mlis(250))));
    }
}
