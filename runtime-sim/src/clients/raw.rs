//! Clients that speak no protocol of their own: a TCP client that sends given bytes (all at
//! once, or slowly) and reads or never reads, and a UDP sender that floods an address.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mediakit_core::Millis;

use super::wait::{Waiter, Woke};
use super::{connect_from, Client, ClientLog, Event};
use crate::{now, sleep, UdpSocket};

/// What a raw TCP client sends and whether it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTcpOptions {
    /// The client's IP address.
    pub from: IpAddr,
    /// The server's address.
    pub server: SocketAddr,
    /// Pieces to send, in order.
    pub send: Vec<Bytes>,
    /// Wait between pieces, in milliseconds; 0 sends them back to back, as fast as the
    /// connection takes them (pipelining), more sends them slowly (slowloris).
    pub interval_ms: u64,
    /// Read (and count) what the server sends; `false` never reads a byte.
    pub read: bool,
    /// Bytes in flight toward the client; `None` keeps the network's default.
    pub receive_buffer: Option<usize>,
    /// Connect this long after the client is spawned, in milliseconds.
    pub start_delay_ms: u64,
}

impl RawTcpOptions {
    /// Sends `send` back to back to `server` and reads the replies.
    pub fn new(from: IpAddr, server: SocketAddr, send: Vec<Bytes>) -> Self {
        Self {
            from,
            server,
            send,
            interval_ms: 0,
            read: true,
            receive_buffer: None,
            start_delay_ms: 0,
        }
    }
}

/// Spawns a raw TCP client on the current world. It logs `Connected`, `Stalled` at once if
/// it never reads, and `Closed` when the server ends the connection (or a write fails);
/// the log counts the bytes each way.
pub fn raw_tcp(options: RawTcpOptions) -> Client {
    Client::spawn(|log| run_tcp(options, log))
}

async fn run_tcp(options: RawTcpOptions, log: Rc<RefCell<ClientLog>>) {
    sleep(options.start_delay_ms).await;
    let Some(stream) = connect_from(options.from, options.server, options.receive_buffer, &log)
    else {
        return;
    };
    if !options.read {
        log.borrow_mut().push(now(), Event::Stalled);
    }
    let mut pieces = options.send.into_iter();
    let mut current: Option<Bytes> = pieces.next();
    let mut send_at: Option<Millis> = None;
    let mut waiter = Waiter::default();
    let mut sink = BytesMut::new();
    loop {
        // Send what is due, as far as the connection takes it.
        while send_at.is_none_or(|at| now() >= at) {
            let Some(piece) = current.as_mut() else {
                break;
            };
            match stream.try_write(piece) {
                Ok(written) => {
                    log.borrow_mut().count_sent(written);
                    piece.advance(written);
                    if piece.is_empty() {
                        current = pieces.next();
                        send_at = (options.interval_ms > 0).then(|| now() + options.interval_ms);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    log.borrow_mut()
                        .push(now(), Event::Closed(format!("write: {error}")));
                    return;
                }
            }
        }
        let deadline = send_at.filter(|_| current.is_some());
        let want_write = current.is_some() && deadline.is_none_or(|at| now() >= at);
        match waiter
            .wait(&stream, options.read, want_write, deadline)
            .await
        {
            Woke::Readable => match stream.try_read_buf(&mut sink) {
                Ok(0) => {
                    log.borrow_mut()
                        .push(now(), Event::Closed("server closed".into()));
                    return;
                }
                Ok(n) => {
                    log.borrow_mut().count_received(n);
                    sink.clear();
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    log.borrow_mut()
                        .push(now(), Event::Closed(format!("read: {error}")));
                    return;
                }
            },
            Woke::PeerClosed => {
                log.borrow_mut()
                    .push(now(), Event::Closed("server closed".into()));
                return;
            }
            Woke::Writable | Woke::Deadline => {}
        }
    }
}

/// A UDP flood: bursts of datagrams at a fixed interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpFloodOptions {
    /// The sender's address (port 0: an ephemeral port).
    pub from: SocketAddr,
    /// Where the datagrams go.
    pub to: SocketAddr,
    /// Bytes per datagram (at least 8: each starts with its sequence number).
    pub payload_bytes: usize,
    /// Datagrams per burst.
    pub burst: u32,
    /// Milliseconds between bursts (at least 1).
    pub interval_ms: u64,
    /// How long to keep sending, in milliseconds.
    pub duration_ms: u64,
    /// Start this long after the client is spawned, in milliseconds.
    pub start_delay_ms: u64,
}

impl UdpFloodOptions {
    /// 1000 datagrams of 1200 bytes every millisecond for a second: 1.2 GB/s of garbage.
    pub fn new(from: SocketAddr, to: SocketAddr) -> Self {
        Self {
            from,
            to,
            payload_bytes: 1200,
            burst: 1000,
            interval_ms: 1,
            duration_ms: 1000,
            start_delay_ms: 0,
        }
    }
}

/// Spawns a UDP flood on the current world. It logs `Connected` once bound and `Closed`
/// when done; the log counts datagrams and bytes sent.
pub fn udp_flood(options: UdpFloodOptions) -> Client {
    Client::spawn(|log| run_flood(options, log))
}

async fn run_flood(options: UdpFloodOptions, log: Rc<RefCell<ClientLog>>) {
    sleep(options.start_delay_ms).await;
    let socket = match UdpSocket::bind(options.from) {
        Ok(socket) => socket,
        Err(error) => {
            log.borrow_mut()
                .push(now(), Event::Closed(format!("bind: {error}")));
            return;
        }
    };
    log.borrow_mut().push(now(), Event::Connected);
    let end = now() + options.duration_ms;
    let mut seq = 0u64;
    let mut payload = BytesMut::with_capacity(options.payload_bytes.max(8));
    while now() < end {
        for _ in 0..options.burst {
            payload.clear();
            payload.put_u64(seq);
            payload.resize(options.payload_bytes.max(8), 0xAB);
            let sent = socket.send_to(&payload, options.to);
            log.borrow_mut().count_datagram(sent);
            seq += 1;
        }
        sleep(options.interval_ms.max(1)).await;
    }
    log.borrow_mut().push(now(), Event::Closed("done".into()));
    drop(socket);
}
