//! Socket setup and sends shared by the runtimes, all through `socket2` so no `unsafe` is
//! needed here.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use mediakit_core::datagram::Datagram;
use mediakit_core::OutQueue;
use smallvec::SmallVec;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Most iovecs one `sendmsg` takes on Linux (`IOV_MAX`).
pub const IOV_MAX: usize = 1024;

/// Opens a non-blocking listener with `SO_REUSEPORT`, so every worker can bind its own on the
/// same port and the kernel spreads new connections across workers.
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Socket buffer asked for on the RTP/RTCP UDP sockets: a worker's players share one socket,
/// so bursts (a keyframe to many players) must fit in it.
const UDP_BUFFER_BYTES: usize = 4 << 20;

/// Binds one non-blocking UDP socket (RTP or RTCP for RTSP over UDP) with large buffers.
pub fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    // Best effort: the kernel caps these at its configured maximum.
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// TCP keepalive on an accepted connection: probes start after `idle` without traffic, every
/// ten seconds, and the kernel drops the connection after six unanswered ones. `None` turns
/// them off.
pub fn set_keepalive(socket: SockRef<'_>, idle: Option<Duration>) -> io::Result<()> {
    match idle {
        None => socket.set_keepalive(false),
        Some(idle) => {
            let keepalive = socket2::TcpKeepalive::new().with_time(idle);
            #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
            let keepalive = keepalive
                .with_interval(Duration::from_secs(10))
                .with_retries(6);
            socket.set_tcp_keepalive(&keepalive)
        }
    }
}

/// Most datagrams one [`DatagramSender::send`] carries.
pub const DATAGRAM_BATCH: usize = 64;
/// Most segments of a datagram sent in a batch (an RTP header, a payload-format header and
/// a payload slice, or RTCP in one piece, fit); one with more is sent alone.
#[cfg(target_os = "linux")]
const MAX_SEGMENTS: usize = 4;

/// Sends RTP/RTCP datagrams several per system call: `sendmmsg` on Linux, where it costs
/// about 15% less per datagram than one `sendmsg` each (1400-byte RTP on loopback,
/// `benches/benches/udp.rs`), and a loop of `sendmsg` elsewhere. Holds the message headers
/// `sendmmsg` needs, so a send allocates nothing.
pub struct DatagramSender {
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl std::fmt::Debug for DatagramSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramSender").finish_non_exhaustive()
    }
}

impl Default for DatagramSender {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramSender {
    pub fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(DATAGRAM_BATCH, None),
        }
    }

    /// Sends the first [`DATAGRAM_BATCH`] datagrams of `batch`, each to its port at `peer`,
    /// gathered from their segments; returns how many the socket took (at least one), or
    /// the error of the first (`WouldBlock` when the socket is full).
    #[cfg(target_os = "linux")]
    pub fn send(
        &mut self,
        socket: SockRef<'_>,
        batch: &[&Datagram],
        peer: IpAddr,
    ) -> io::Result<usize> {
        use nix::sys::socket::{sendmmsg, MsgFlags, SockaddrStorage};
        use std::os::fd::AsRawFd;
        // Fixed arrays rather than growable vectors: `sendmmsg` borrows the slices for as long
        // as the slices borrow the payloads, which drop checking allows only for types
        // without a destructor. A datagram of more segments than fit is sent on its own.
        let empty = IoSlice::new(&[]);
        let mut slices = [[empty; MAX_SEGMENTS]; DATAGRAM_BATCH];
        let mut count = 0;
        for (slot, datagram) in slices.iter_mut().zip(batch) {
            if datagram.segments.len() > MAX_SEGMENTS {
                break;
            }
            for (io, segment) in slot.iter_mut().zip(&datagram.segments) {
                *io = IoSlice::new(segment);
            }
            count += 1;
        }
        let Some(first) = batch.first() else {
            return Ok(0);
        };
        if count == 0 {
            return send_one(socket, first, peer);
        }
        let addresses: SmallVec<[Option<SockaddrStorage>; DATAGRAM_BATCH]> = batch
            .iter()
            .take(count)
            .map(|datagram| Some(SockaddrStorage::from(SocketAddr::new(peer, datagram.port))))
            .collect();
        let sent = sendmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter().take(count),
            &addresses,
            [],
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        Ok(sent.count())
    }

    /// Sends the first datagram of `batch` to its port at `peer` (no `sendmmsg` here).
    #[cfg(not(target_os = "linux"))]
    pub fn send(
        &mut self,
        socket: SockRef<'_>,
        batch: &[&Datagram],
        peer: IpAddr,
    ) -> io::Result<usize> {
        match batch.first() {
            Some(datagram) => send_one(socket, datagram, peer),
            None => Ok(0),
        }
    }
}

/// Sends one datagram to its port at `peer`; returns 1 (datagrams sent).
fn send_one(socket: SockRef<'_>, datagram: &Datagram, peer: IpAddr) -> io::Result<usize> {
    let slices: SmallVec<[IoSlice<'_>; 8]> =
        datagram.segments.iter().map(|s| IoSlice::new(s)).collect();
    send_datagram(socket, &slices, SocketAddr::new(peer, datagram.port)).map(|_| 1)
}

/// Sends one datagram gathered from `segments` to `to` with one `sendmsg`.
pub fn send_datagram(
    socket: SockRef<'_>,
    segments: &[IoSlice<'_>],
    to: SocketAddr,
) -> io::Result<usize> {
    socket.send_to_vectored(segments, &to.into())
}

/// Writes as much of `queue` as the socket takes in one vectored send of up to [`IOV_MAX`]
/// segments, and advances the queue by what was written.
///
/// With `more_coming` set (media phase, more queued than one call sends), the send carries
/// `MSG_MORE` so small packets share TCP segments.
pub fn send_queue(
    socket: SockRef<'_>,
    queue: &mut OutQueue,
    more_coming: bool,
) -> io::Result<usize> {
    let mut slices: [IoSlice<'_>; 64] = [IoSlice::new(&[]); 64];
    let mut heap: Vec<IoSlice<'_>>;
    let count = queue.segment_count().min(IOV_MAX);
    let iov: &[IoSlice<'_>] = if count <= slices.len() {
        for (slot, segment) in slices.iter_mut().zip(queue.segments()) {
            *slot = IoSlice::new(segment);
        }
        &slices[..count]
    } else {
        heap = Vec::with_capacity(count);
        heap.extend(queue.segments().take(count).map(IoSlice::new));
        &heap
    };
    let partial_batch = count < queue.segment_count();
    let written = send_vectored(&socket, iov, more_coming || partial_batch)?;
    queue.advance(written);
    Ok(written)
}

#[cfg(target_os = "linux")]
fn send_vectored(socket: &SockRef<'_>, iov: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
    let flags = libc_flags::MSG_NOSIGNAL | if more { libc_flags::MSG_MORE } else { 0 };
    socket.send_vectored_with_flags(iov, flags)
}

#[cfg(not(target_os = "linux"))]
fn send_vectored(socket: &SockRef<'_>, iov: &[IoSlice<'_>], _more: bool) -> io::Result<usize> {
    socket.send_vectored(iov)
}

/// The two Linux `send` flags we use, spelled out to avoid a `libc` dependency for two
/// constants (values from `<sys/socket.h>`, stable Linux ABI).
#[cfg(target_os = "linux")]
mod libc_flags {
    pub const MSG_MORE: i32 = 0x8000;
    pub const MSG_NOSIGNAL: i32 = 0x4000;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;

    #[test]
    fn gathered_datagrams_arrive_whole_singly_and_in_batches() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let rtp = udp_socket(SocketAddr::new(ip, 0)).unwrap();
        let rtcp = udp_socket(SocketAddr::new(ip, 0)).unwrap();
        let first = rtp.local_addr().unwrap().port();
        // A gathered datagram arrives whole.
        let segments = [IoSlice::new(b"head"), IoSlice::new(b"-body")];
        let to = rtcp.local_addr().unwrap();
        assert_eq!(
            send_datagram(SockRef::from(&rtp), &segments, to).unwrap(),
            9
        );
        rtcp.set_nonblocking(false).unwrap();
        let mut buffer = [0u8; 64];
        let (len, from) = rtcp.recv_from(&mut buffer).unwrap();
        assert_eq!((&buffer[..len], from.port()), (&b"head-body"[..], first));
        // A batch: each datagram whole, in order, to its own port.
        let datagrams: Vec<Datagram> = (0..100u8)
            .map(|i| Datagram {
                channel: mediakit_core::datagram::UdpChannel::Rtp,
                port: to.port(),
                segments: [
                    bytes::Bytes::from(vec![i; 3]),
                    bytes::Bytes::from_static(b"|tail"),
                ]
                .into_iter()
                .collect(),
            })
            .collect();
        let batch: Vec<&Datagram> = datagrams.iter().collect();
        let mut sender = DatagramSender::new();
        let mut sent = 0;
        while sent < batch.len() {
            sent += sender
                .send(SockRef::from(&rtp), &batch[sent..], ip)
                .unwrap();
        }
        for i in 0..100u8 {
            let (len, _) = rtcp.recv_from(&mut buffer).unwrap();
            assert_eq!(&buffer[..len], [&[i; 3][..], b"|tail"].concat());
        }
    }

    #[test]
    fn two_listeners_share_a_port_and_queue_is_sent_in_order() {
        let first = reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        // A second worker can bind the same port; drop it before connecting, or the kernel may
        // hand the connection to the listener this test does not accept on.
        drop(reuseport_listener(addr).unwrap());
        first.set_nonblocking(false).unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let (mut server_side, _) = first.accept().unwrap();
        let mut queue = OutQueue::new();
        let mut expected = Vec::new();
        for i in 0..2000u32 {
            let segment = i.to_be_bytes().to_vec();
            expected.extend_from_slice(&segment);
            queue.push(segment.into());
        }
        while !queue.is_empty() {
            send_queue(SockRef::from(&client), &mut queue, true).unwrap();
        }
        drop(client);
        let mut received = Vec::new();
        server_side.read_to_end(&mut received).unwrap();
        assert_eq!(received, expected);
    }
}
