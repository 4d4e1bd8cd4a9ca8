//! Simulated UDP sockets: sends never block and may be lost (at the world's seeded loss
//! rate); each socket queues what arrives up to its buffer size and drops the rest.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use super::{current, no_world, SharedNetwork};

/// A bound UDP socket; dropping it unbinds the address.
#[derive(Debug)]
pub struct UdpSocket {
    net: SharedNetwork,
    addr: SocketAddr,
}

impl UdpSocket {
    /// Binds `addr` in the current world (port 0: an ephemeral port); `AddrInUse` if it is
    /// taken.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        let net = current().ok_or_else(no_world)?;
        Self::bind_in(&net, addr)
    }

    pub(crate) fn bind_in(net: &SharedNetwork, addr: SocketAddr) -> io::Result<UdpSocket> {
        let addr = net.borrow_mut().bind_udp(addr)?;
        Ok(UdpSocket {
            net: Rc::clone(net),
            addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `payload` to `to`; returns its length whether or not it arrives.
    pub fn send_to(&self, payload: &[u8], to: SocketAddr) -> usize {
        self.send_bytes(Bytes::copy_from_slice(payload), to)
    }

    /// Sends a datagram gathered from `segments`; returns its length.
    pub fn send_gathered<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a [u8]>,
        to: SocketAddr,
    ) -> usize {
        let mut payload = BytesMut::new();
        for segment in segments {
            payload.extend_from_slice(segment);
        }
        self.send_bytes(payload.freeze(), to)
    }

    fn send_bytes(&self, payload: Bytes, to: SocketAddr) -> usize {
        let len = payload.len();
        self.net.borrow_mut().send_to(self.addr, payload, to);
        len
    }

    /// Takes the next datagram into `buffer` (truncated to its size, as UDP does) with its
    /// source; `WouldBlock` when none waits.
    pub fn try_recv_from(&self, buffer: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (payload, from) = self.net.borrow_mut().recv_from(self.addr)?;
        let len = payload.len().min(buffer.len());
        if let (Some(target), Some(source)) = (buffer.get_mut(..len), payload.get(..len)) {
            target.copy_from_slice(source);
        }
        Ok((len, from))
    }

    /// Takes the next datagram whole; `WouldBlock` when none waits.
    pub fn try_recv(&self) -> io::Result<(Bytes, SocketAddr)> {
        self.net.borrow_mut().recv_from(self.addr)
    }

    /// Ready when a datagram waits.
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.net.borrow_mut().poll_recv(self.addr, cx)
    }

    /// The next datagram and its source, waiting for one.
    pub async fn recv(&self) -> io::Result<(Bytes, SocketAddr)> {
        loop {
            poll_fn(|cx| self.poll_recv_ready(cx)).await?;
            match self.try_recv() {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }

    /// Datagrams waiting to be received.
    pub fn queued(&self) -> usize {
        self.net.borrow().udp_queued(self.addr)
    }

    /// Sets how many bytes of datagrams may wait before arrivals are dropped.
    pub fn set_receive_buffer(&self, bytes: usize) {
        self.net.borrow_mut().set_udp_buffer(self.addr, bytes);
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        if let Ok(mut net) = self.net.try_borrow_mut() {
            net.unbind_udp(self.addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::World;
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
    }

    #[test]
    fn datagrams_arrive_whole_with_their_source() {
        let world = World::new(1);
        let a = world.bind_udp(addr(1, 5000)).unwrap();
        let b = world.bind_udp(addr(2, 0)).unwrap();
        assert_eq!(b.local_addr(), addr(2, 49_152));
        b.send_to(b"one", addr(1, 5000));
        b.send_gathered([&b"tw"[..], b"o"], addr(1, 5000));
        let received = world
            .block_on(
                async move {
                    let first = a.recv().await.unwrap();
                    let mut small = [0; 2];
                    let second = a.try_recv_from(&mut small).unwrap();
                    (first, second, small)
                },
                0,
            )
            .unwrap();
        assert_eq!(received.0, (Bytes::from_static(b"one"), addr(2, 49_152)));
        assert_eq!(received.1, (2, addr(2, 49_152)));
        assert_eq!(&received.2, b"tw");
    }

    #[test]
    fn binding_a_taken_address_fails_and_any_address_conflicts() {
        let world = World::new(1);
        let _a = world.bind_udp(addr(1, 6000)).unwrap();
        let kind = |result: io::Result<UdpSocket>| result.unwrap_err().kind();
        assert_eq!(
            kind(world.bind_udp(addr(1, 6000))),
            io::ErrorKind::AddrInUse
        );
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 6000);
        assert_eq!(kind(world.bind_udp(any)), io::ErrorKind::AddrInUse);
        assert!(world.bind_udp(addr(2, 6000)).is_ok());
    }

    #[test]
    fn a_full_queue_drops_and_loss_follows_the_seed() {
        let world = World::new(1);
        let sink = world.bind_udp(addr(1, 7000)).unwrap();
        sink.set_receive_buffer(10);
        let source = world.bind_udp(addr(2, 7000)).unwrap();
        for _ in 0..3 {
            source.send_to(&[0; 4], addr(1, 7000));
        }
        source.send_to(&[0; 4], addr(3, 1));
        assert_eq!(sink.queued(), 2);
        let stats = world.net_stats();
        assert_eq!((stats.udp_sent, stats.udp_delivered), (4, 2));
        assert_eq!((stats.udp_overflowed, stats.udp_unroutable), (1, 1));

        let lost = |seed| {
            let world = World::new(seed);
            world.set_udp_loss(0.3);
            let sink = world.bind_udp(addr(1, 1)).unwrap();
            let source = world.bind_udp(addr(2, 1)).unwrap();
            (0..200u8)
                .filter(|i| {
                    source.send_to(&[*i], addr(1, 1));
                    sink.try_recv().is_err()
                })
                .map(u32::from)
                .collect::<Vec<_>>()
        };
        drop((sink, source, world));
        let first = lost(5);
        assert_eq!(first, lost(5));
        assert_ne!(first, lost(6));
        assert!((30..90).contains(&first.len()), "{}", first.len());
    }
}
