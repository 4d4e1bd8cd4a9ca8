//! RTP over UDP: what one `sendmsg` per datagram (the engine's way, through
//! `mediakit_server::socket::send_datagram`) costs against `sendmmsg` batches of 64, for the
//! same 1000 gathered datagrams (12-byte RTP header, 2-byte FU header, 1400-byte payload
//! slice) sent on loopback to a socket nobody reads (the kernel drops what overflows, so the
//! sender's cost is what is measured).

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mediakit_server::socket::send_datagram;
use socket2::SockRef;

const DATAGRAMS: usize = 1000;

fn datagrams() -> Vec<[Vec<u8>; 3]> {
    (0..DATAGRAMS)
        .map(|i| [vec![0x80; 12], vec![0x7c, 0x05], vec![i as u8; 1400]])
        .collect()
}

fn sockets() -> (UdpSocket, SocketAddr) {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind the sink");
    let to = sink.local_addr().expect("sink address");
    // Kept alive for the whole run by leaking: the benchmark process ends right after.
    std::mem::forget(sink);
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind the sender");
    sender.set_nonblocking(true).expect("non-blocking");
    (sender, to)
}

fn loop_of_sendmsg(c: &mut Criterion) {
    let (sender, to) = sockets();
    let data = datagrams();
    let mut group = c.benchmark_group("rtp_udp_send");
    group.throughput(Throughput::Elements(DATAGRAMS as u64));
    group.bench_function("sendmsg_each", |b| {
        b.iter(|| {
            for parts in &data {
                let slices = [
                    IoSlice::new(&parts[0]),
                    IoSlice::new(&parts[1]),
                    IoSlice::new(&parts[2]),
                ];
                let _ = send_datagram(SockRef::from(&sender), &slices, to);
            }
        })
    });
    #[cfg(target_os = "linux")]
    group.bench_function("sendmmsg_64", |b| {
        use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrIn};
        use std::os::fd::AsRawFd;
        let SocketAddr::V4(v4) = to else {
            unreachable!("bound on 127.0.0.1")
        };
        let address = SockaddrIn::from(v4);
        let mut headers = MultiHeaders::<SockaddrIn>::preallocate(64, None);
        let addresses = vec![Some(address); 64];
        b.iter(|| {
            for batch in data.chunks(64) {
                let slices: Vec<[IoSlice<'_>; 3]> = batch
                    .iter()
                    .map(|parts| {
                        [
                            IoSlice::new(&parts[0]),
                            IoSlice::new(&parts[1]),
                            IoSlice::new(&parts[2]),
                        ]
                    })
                    .collect();
                let _ = sendmmsg(
                    sender.as_raw_fd(),
                    &mut headers,
                    &slices,
                    &addresses[..batch.len()],
                    [],
                    MsgFlags::empty(),
                );
            }
        })
    });
    group.finish();
}

criterion_group!(benches, loop_of_sendmsg);
criterion_main!(benches);
