//! Live tests of the defences against stalled and hostile clients (README, "Defences"), run
//! against every server binary: players that stop reading, a slowloris HTTP client, an RTSP
//! client pipelining requests without reading the replies, a UDP flood at the RTP ports, and
//! more connections from one address than `max_connections_per_ip`. Each test starts its own
//! server on free loopback ports with the configuration it needs (`--config`), and in each a
//! healthy player beside the attack must still get exactly the source's packets.
//!
//! The stalled and hostile clients are sockets in this process; the healthy players are
//! ffprobe, as in the other live suites, and are compared with the source clip's own ffprobe
//! packet list with the tolerances those suites state (none over RTMP and HTTP-FLV;
//! `check::assert_complete_via_rtp`'s over RTSP).
//!
//! Every wait is bounded: closes are awaited (a server log line naming the peer, or the socket
//! reaching end of stream) up to a deadline stated at each assertion, never assumed after a
//! fixed sleep.
//!
//! Kernel buffers: on loopback the server's kernel sizes a connection's send buffer from the
//! peer's MSS, about 3 MiB for loopback's 64 KiB MSS, more than the whole 0.6 MB clip, so a
//! player that stops reading would never leave anything in the server's own queue, which is
//! what the send-progress deadline watches. The clients that must stall therefore announce a
//! small MSS ([`STALLED_MSS`], an Ethernet's, which brings that buffer to about 100 KiB, of
//! which about 75 KB carry data) and a small receive buffer ([`STALLED_RCVBUF`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mediakit_conformance::check::{
    assert_complete_via_rtp, assert_matches_source, stream_path, Delivery, Ingest,
};
use mediakit_conformance::media::{self, Clip};
use mediakit_conformance::probe::{self, ProbeRun, Proc};
use mediakit_conformance::server::{rss_bytes, server_binaries, Server};
use mediakit_core::rtmp::client::{ClientEvent, ClientMode, RtmpClientConfig, RtmpClientSession};
use mediakit_core::Millis;
use socket2::{Domain, Protocol, Socket, Type};

/// Time for the ffprobe players to connect and issue their play request before the publisher
/// starts (as in the other live suites).
const PLAYERS_SETTLE: Duration = Duration::from_millis(1000);
/// The 6 s clip in real time plus startup; a hang fails here.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(20);
/// How long a player may take to end after its publisher did (the RTSP suites' bound).
const PLAYER_TAIL: Duration = Duration::from_secs(8);
const RTSP_TCP: &[&str] = &["-rtsp_transport", "tcp"];
const RTSP_UDP: &[&str] = &["-rtsp_transport", "udp"];

/// `[server] send_timeout_ms` in these tests: short enough that a stall is caught well within
/// the clip's 6 s, long enough that no healthy player on a busy 2-core machine comes near it.
const SEND_TIMEOUT: Duration = Duration::from_millis(3000);
/// `[http] request_timeout_ms` in the slowloris test.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(2000);
/// The server's deadlines count whole milliseconds of its own clock from a moment after our
/// connect, so a close may be seen this much before the nominal deadline measured here.
const CLOCK_GRAIN: Duration = Duration::from_millis(10);
/// Lines about misbehaving peers are rate-limited per worker (`error_logs_per_second`,
/// default 20); these tests count one line per stalled peer, so they raise the limit above
/// anything they cause.
const LOG_LIMIT: &str = "error_logs_per_second = 10000";

/// Receive buffer the stalling clients ask for (the kernel doubles it: 8 KiB).
const STALLED_RCVBUF: usize = 4096;
/// MSS the stalling clients announce: the kernel sizes the server's send buffer for them from
/// it, about 100 KiB instead of about 3 MiB (see the top).
const STALLED_MSS: u32 = 1460;

/// Healthy players in the stall test, by protocol: 7 RTMP, 7 HTTP-FLV, 6 RTSP/TCP.
const HEALTHY: [(Proto, usize); 3] = [(Proto::Rtmp, 7), (Proto::HttpFlv, 7), (Proto::RtspTcp, 6)];
/// Players that stop reading once they play, by protocol: as many of each.
const STALLED: [(Proto, usize); 3] = HEALTHY;
/// From the stream's start (its "publishing" line) until every stalled player must have been
/// closed: the send timeout, plus up to 2 s until the stall begins (the clip, in real time at
/// about 100 KB/s, filling the ~110 KB the kernels take for a stalled connection), plus 1 s
/// for the server's timer, the log line and our 50 ms polling on a loaded machine.
const STALL_SLACK: Duration = Duration::from_millis(3000);
/// The most the server's resident memory may reach while 20 players take the stream and 20
/// hold it stalled. It peaked at 8 to 9 MiB here with both binaries; the clip is 0.6 MB,
/// shared by every player (one copy per worker), and the most a stalled player can hold
/// queued is the clip itself, so even 40 private copies would stay below this.
const RSS_BOUND: u64 = 32 << 20;

/// RTSP OPTIONS requests the pipelining client sends without reading a reply.
const PIPELINED_OPTIONS: usize = 10_000;
/// Send buffer the pipelining client asks for (the kernel doubles it: 16 KiB).
const PIPELINER_SNDBUF: usize = 8192;
/// `[server] max_output_backlog_bytes` in the pipelining test: the smallest accepted value,
/// about 500 OPTIONS replies.
const OUTPUT_BACKLOG: usize = 64 * 1024;
/// After the send timeout (or the request timeout), how long a hostile connection may take to
/// be closed and seen closed: the server's timer, the log line and our polling.
const CLOSE_SLACK: Duration = Duration::from_millis(1500);

/// Junk datagrams sent at the RTP and RTCP ports in the flood test.
const FLOOD_DATAGRAMS: usize = 200_000;
/// The flood is paced over this long, so that it lasts through most of the 6 s stream.
const FLOOD_SPAN: Duration = Duration::from_secs(5);
/// The flood stops here even if it has not sent them all (a slow machine).
const FLOOD_LIMIT: Duration = Duration::from_secs(8);

/// `[server] max_connections_per_ip` in the connection limit test.
const PER_IP_LIMIT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Rtmp,
    HttpFlv,
    RtspTcp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Rtmp => "RTMP",
            Proto::HttpFlv => "HTTP-FLV",
            Proto::RtspTcp => "RTSP/TCP",
        }
    }
}

/// `peer=ADDR ` as the server's log lines name a peer (the next field follows a space).
fn peer_field(addr: SocketAddr) -> String {
    format!("peer={addr} ")
}

/// A TCP connection to `server` from `local` (any address of 127/8: all of it is loopback on
/// Linux), optionally with a small receive buffer and MSS so that what the server sends backs
/// up into its own queue once we stop reading.
fn connect_from(local: Ipv4Addr, server: SocketAddr, stalling: bool) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    if stalling {
        socket
            .set_recv_buffer_size(STALLED_RCVBUF)
            .expect("SO_RCVBUF");
        socket.set_mss(STALLED_MSS).expect("TCP_MAXSEG");
    }
    socket
        .bind(&SocketAddr::from((local, 0)).into())
        .unwrap_or_else(|error| panic!("bind {local}: {error}"));
    socket
        .connect_timeout(&server.into(), Duration::from_secs(5))
        .unwrap_or_else(|error| panic!("connect to {server} from {local}: {error}"));
    socket.into()
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A player that played and then stopped reading.
#[derive(Debug)]
struct Stalled {
    proto: Proto,
    stream: TcpStream,
    /// Our end, as the server's log names the peer.
    local: SocketAddr,
}

impl Stalled {
    fn new(proto: Proto, stream: TcpStream) -> Stalled {
        let local = stream.local_addr().expect("local address");
        Stalled {
            proto,
            stream,
            local,
        }
    }
}

/// Writes everything `session` has queued.
fn flush_rtmp(session: &mut RtmpClientSession, stream: &mut TcpStream) {
    let out = session.transmit();
    let queued = out.queued_bytes();
    for segment in out.segments() {
        stream.write_all(segment).expect("write to the RTMP server");
    }
    out.advance(queued);
}

/// An RTMP player (handshake, `connect`, `createStream`, `play`) that stops reading once its
/// `play` is sent: the stream is not published yet, so everything after that is media it
/// never reads.
fn stalled_rtmp(server: &Server, path: &str, seed: u64) -> Stalled {
    let url = server.rtmp_url(path);
    let config = RtmpClientConfig::from_url(&url, ClientMode::Play).expect("RTMP URL");
    let started = Instant::now();
    let now = || Millis(started.elapsed().as_millis() as u64);
    let mut session = RtmpClientSession::new(config, now(), seed);
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, server.rtmp_addr(), true);
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let mut input = BytesMut::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        flush_rtmp(&mut session, &mut stream);
        // `play` goes out in the same flush that follows the `createStream` answer.
        if session.stream_id().is_some() {
            return Stalled::new(Proto::Rtmp, stream);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stalled RTMP player: no createStream answer within 5 s\nserver log:\n{}",
            server.log_text()
        );
        match stream.read(&mut buffer) {
            Ok(0) => panic!("stalled RTMP player: the server closed during setup"),
            Ok(n) => {
                input.extend_from_slice(&buffer[..n]);
                session
                    .handle_input(now(), &mut input)
                    .expect("RTMP session input");
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error) => panic!("stalled RTMP player: read failed: {error}"),
        }
        while let Some(event) = session.poll_event() {
            if let ClientEvent::Rejected { .. } | ClientEvent::Closed { .. } = event {
                panic!("stalled RTMP player: {event:?}");
            }
        }
    }
}

/// An HTTP-FLV player that sends its GET and never reads.
fn stalled_http(server: &Server, path: &str) -> Stalled {
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, localhost(server.http_port), true);
    let request = format!(
        "GET /{path}.flv HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        server.http_port
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the GET request");
    Stalled::new(Proto::HttpFlv, stream)
}

/// Reads one RTSP response (head and `Content-Length` body) off `stream`; what follows it stays
/// in `pending`. Returns the head and the body.
fn read_rtsp_response(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    deadline: Instant,
) -> (String, String) {
    let mut buffer = [0u8; 16 * 1024];
    let mut fill = |stream: &mut TcpStream, pending: &mut Vec<u8>| {
        assert!(
            Instant::now() < deadline,
            "RTSP client: no complete response by its deadline; got {:?}",
            String::from_utf8_lossy(pending)
        );
        match stream.read(&mut buffer) {
            Ok(0) => panic!("RTSP client: the server closed during setup"),
            Ok(n) => pending.extend_from_slice(&buffer[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error) => panic!("RTSP client: read failed: {error}"),
        }
    };
    let end = loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        fill(stream, pending);
    };
    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
    let length: usize = rtsp_header(&head, "content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    while pending.len() < end + 4 + length {
        fill(stream, pending);
    }
    let body = String::from_utf8_lossy(&pending[end + 4..end + 4 + length]).into_owned();
    pending.drain(..end + 4 + length);
    (head, body)
}

fn rtsp_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

fn assert_rtsp_ok(what: &str, head: &str) {
    assert!(
        head.starts_with("RTSP/1.0 200"),
        "RTSP client: {what} answered {head:?}"
    );
}

/// An RTSP player over TCP: DESCRIBE (answered once the stream is published), SETUP of every
/// track interleaved, PLAY; then it stops reading.
fn stalled_rtsp(port: u16, url: String) -> Stalled {
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, localhost(port), true);
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    // DESCRIBE waits for the publisher (up to the 10 s play wait).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut pending = Vec::new();
    let send = |stream: &mut TcpStream, request: String| {
        stream
            .write_all(request.as_bytes())
            .expect("send an RTSP request");
    };
    send(
        &mut stream,
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"),
    );
    let (head, sdp) = read_rtsp_response(&mut stream, &mut pending, deadline);
    assert_rtsp_ok("DESCRIBE", &head);
    let base = rtsp_header(&head, "content-base")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{url}/"));
    let controls: Vec<String> = sdp
        .lines()
        .skip_while(|line| !line.starts_with("m="))
        .filter_map(|line| line.trim().strip_prefix("a=control:"))
        .map(|control| {
            if control.starts_with("rtsp://") {
                control.to_owned()
            } else {
                format!("{base}{control}")
            }
        })
        .collect();
    assert!(!controls.is_empty(), "RTSP client: no tracks in {sdp:?}");
    let mut session: Option<String> = None;
    for (index, control) in controls.iter().enumerate() {
        let session_line = session
            .as_ref()
            .map(|id| format!("Session: {id}\r\n"))
            .unwrap_or_default();
        send(
            &mut stream,
            format!(
                "SETUP {control} RTSP/1.0\r\nCSeq: {}\r\n{session_line}\
                 Transport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n\r\n",
                index + 2,
                index * 2,
                index * 2 + 1
            ),
        );
        let (head, _) = read_rtsp_response(&mut stream, &mut pending, deadline);
        assert_rtsp_ok("SETUP", &head);
        if session.is_none() {
            let id = rtsp_header(&head, "session")
                .and_then(|value| value.split(';').next())
                .unwrap_or_else(|| panic!("RTSP client: SETUP without a session: {head:?}"));
            session = Some(id.to_owned());
        }
    }
    let id = session.unwrap_or_default();
    send(
        &mut stream,
        format!(
            "PLAY {url} RTSP/1.0\r\nCSeq: {}\r\nSession: {id}\r\nRange: npt=0.000-\r\n\r\n",
            controls.len() + 2
        ),
    );
    let (head, _) = read_rtsp_response(&mut stream, &mut pending, deadline);
    assert_rtsp_ok("PLAY", &head);
    Stalled::new(Proto::RtspTcp, stream)
}

/// Reads `stream` until the server's close shows (end of stream, or a reset) or `timeout`
/// passes; returns the bytes read before the close, or `None` if it stayed open.
fn drain_to_close(stream: &mut TcpStream, timeout: Duration) -> Option<usize> {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buffer) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return Some(total),
        }
    }
}

/// Samples the server's resident memory every 20 ms until stopped; returns the largest sample.
#[derive(Debug)]
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_bytes(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        RssSampler { stop, thread }
    }

    fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("RSS sampler")
    }
}

/// 20 healthy players (RTMP, HTTP-FLV, RTSP/TCP) beside 20 that play and never read: every
/// stalled one is closed for its send queue making no progress, within the send timeout and
/// a stated slack of the stream's start; every healthy one gets exactly the source's
/// packets; the server's memory stays below a stated bound.
#[test]
fn stalled_players_are_closed_and_healthy_ones_get_every_frame() {
    let clip = Clip::AudioVideo;
    clip.source();
    let config = format!(
        "[server]\n{LOG_LIMIT}\nsend_timeout_ms = {}\n",
        SEND_TIMEOUT.as_millis()
    );
    for (index, binary) in server_binaries().iter().enumerate() {
        let mut server = Server::start_with_config(binary, 2, &config, &[]);
        let rss = RssSampler::start(server.pid());
        let path = stream_path("stall", index);
        let rtmp = server.rtmp_url(&path);
        let http = server.http_url(&format!("{path}.flv"));
        let rtsp = server.rtsp_url(&path);
        let healthy: Vec<(Proto, Proc)> = HEALTHY
            .iter()
            .flat_map(|&(proto, count)| std::iter::repeat_n(proto, count))
            .map(|proto| {
                let player = match proto {
                    Proto::Rtmp => probe::spawn_probe(&rtmp, &[]),
                    Proto::HttpFlv => probe::spawn_probe(&http, &[]),
                    Proto::RtspTcp => probe::spawn_probe(&rtsp, RTSP_TCP),
                };
                (proto, player)
            })
            .collect();
        let mut stalled = Vec::new();
        let mut rtsp_setups = Vec::new();
        for &(proto, count) in &STALLED {
            for n in 0..count {
                match proto {
                    Proto::Rtmp => stalled.push(stalled_rtmp(&server, &path, n as u64 + 1)),
                    Proto::HttpFlv => stalled.push(stalled_http(&server, &path)),
                    Proto::RtspTcp => {
                        // Their DESCRIBE is answered only once the stream is published.
                        let (port, url) = (server.rtsp_port, rtsp.clone());
                        rtsp_setups.push(std::thread::spawn(move || stalled_rtsp(port, url)));
                    }
                }
            }
        }
        std::thread::sleep(PLAYERS_SETTLE);
        // Two references: the publisher's spawn, before which nothing can be queued for a
        // player (for the earliest a close may come), and the moment the server's
        // "publishing" line is seen, after media started to flow (for the latest).
        let spawned = Instant::now();
        let publisher = media::publish(clip, &rtmp, &[]);
        let stream_field = format!("stream={path}");
        server
            .wait_for_log(&["publishing", &stream_field], Duration::from_secs(10))
            .unwrap_or_else(|| {
                panic!(
                    "{}: the publisher was not accepted within 10 s
server log:
{}",
                    binary.display(),
                    server.log_text()
                )
            });
        let publishing = Instant::now();
        stalled.extend(
            rtsp_setups
                .into_iter()
                .map(|setup| setup.join().expect("stalled RTSP player setup")),
        );

        // Every stalled player's close line, awaited up to the deadline.
        let deadline = publishing + SEND_TIMEOUT + STALL_SLACK;
        let mut closed_at: Vec<Option<Instant>> = vec![None; stalled.len()];
        loop {
            let lines = server.log_lines_with(&["send queue made no progress"]);
            for (player, closed) in stalled.iter().zip(closed_at.iter_mut()) {
                let field = peer_field(player.local);
                if closed.is_none() && lines.iter().any(|line| line.contains(&field)) {
                    *closed = Some(Instant::now());
                }
            }
            if closed_at.iter().all(Option::is_some) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for (player, closed) in stalled.iter_mut().zip(&closed_at) {
            let what = format!(
                "{} stalled {} player {}",
                binary.display(),
                player.proto.name(),
                player.local
            );
            let closed = closed.unwrap_or_else(|| {
                panic!(
                    "{what}: not closed for a stalled send queue within {:?} of the stream's start\nserver log:\n{}",
                    SEND_TIMEOUT + STALL_SLACK,
                    server.log_text()
                )
            });
            let (after_spawn, after_publishing) = (closed - spawned, closed - publishing);
            assert!(
                after_spawn + CLOCK_GRAIN >= SEND_TIMEOUT,
                "{what}: closed {after_spawn:?} after the publisher was started, before the {SEND_TIMEOUT:?} send timeout could pass"
            );
            // What the kernels still hold reaches it, then the end: the server really closed.
            let drained = drain_to_close(&mut player.stream, Duration::from_secs(5));
            assert!(
                drained.is_some(),
                "{what}: logged as closed, but the connection stayed open (no end of stream within 5 s of reading)"
            );
            eprintln!("{what}: closed {after_publishing:?} after the stream started; {drained:?} bytes were left to read");
        }

        let published = publisher.wait_timeout(PUBLISH_DEADLINE);
        server.assert_published(&binary.display().to_string(), &published);
        for (proto, player) in healthy {
            let what = format!("{} healthy {} player", binary.display(), proto.name());
            let run = ProbeRun::from_finished(player.wait_timeout(PLAYER_TAIL));
            match proto {
                Proto::RtspTcp => {
                    assert_complete_via_rtp(&what, &run, clip, Delivery::Rtsp, Ingest::Rtmp)
                }
                Proto::Rtmp | Proto::HttpFlv => assert_matches_source(&what, &run, clip),
            }
        }
        let peak = rss.peak();
        eprintln!(
            "{}: peak RSS {:.1} MiB",
            binary.display(),
            peak as f64 / (1 << 20) as f64
        );
        assert!(peak > 0, "{}: RSS could not be read", binary.display());
        assert!(
            peak < RSS_BOUND,
            "{}: peak RSS {peak} bytes, over the {RSS_BOUND} bound",
            binary.display()
        );
        // Every player has ended: only the stalled ones were closed for not reading.
        let stall_lines = server.log_lines_with(&["send queue made no progress"]);
        assert_eq!(
            stall_lines.len(),
            stalled.len(),
            "{}: connections closed for a stalled send queue:\n{}",
            binary.display(),
            stall_lines.join("\n")
        );
        assert!(
            server.is_running(),
            "{}: the server exited\nlog:\n{}",
            binary.display(),
            server.log_text()
        );
    }
}

/// How a slowloris client ended.
#[derive(Debug)]
struct Slowloris {
    /// From just before connecting until the close was seen; `None` if still open at the
    /// deadline.
    closed_after: Option<Duration>,
    /// Bytes of the request head sent.
    sent: usize,
    /// What the server answered before closing.
    answer: Vec<u8>,
}

/// Sends a request head one byte every 500 ms, watching for the close in between, until
/// `REQUEST_TIMEOUT + CLOSE_SLACK` after connecting.
fn slowloris(port: u16, path: &str) -> Slowloris {
    let head = format!(
        "GET /{path}.flv HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: slowloris\r\nAccept: */*\r\n\r\n"
    );
    let started = Instant::now();
    let deadline = started + REQUEST_TIMEOUT + CLOSE_SLACK;
    let mut stream = TcpStream::connect(localhost(port)).expect("connect to the HTTP port");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut sent = 0;
    for byte in head.bytes() {
        let closed = |sent: usize, answer: Vec<u8>| Slowloris {
            closed_after: Some(started.elapsed()),
            sent,
            answer,
        };
        if stream.write_all(&[byte]).is_err() {
            return closed(sent, answer);
        }
        sent += 1;
        let next = Instant::now() + Duration::from_millis(500);
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("read timeout");
            match stream.read(&mut buffer) {
                Ok(0) => return closed(sent, answer),
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return closed(sent, answer),
            }
        }
        if Instant::now() >= deadline {
            return Slowloris {
                closed_after: None,
                sent,
                answer,
            };
        }
    }
    panic!(
        "slowloris: the whole head ({} bytes) went out before any deadline; make it longer",
        head.len()
    )
}

/// How the pipelining client ended.
#[derive(Debug)]
struct Pipeliner {
    stream: TcpStream,
    local: SocketAddr,
    started: Instant,
    /// Bytes of the requests the kernel took before the server closed (or the deadline).
    written: usize,
    total: usize,
    /// When a write failed because the server had closed.
    write_failed_after: Option<Duration>,
}

/// Sends `PIPELINED_OPTIONS` OPTIONS requests back to back and reads no reply, until all are
/// written, a write fails (the server closed) or the close deadline passes.
fn pipeline_options(port: u16, url: &str) -> Pipeliner {
    let mut wire = Vec::new();
    for cseq in 1..=PIPELINED_OPTIONS {
        wire.extend_from_slice(
            format!("OPTIONS {url} RTSP/1.0\r\nCSeq: {cseq}\r\n\r\n").as_bytes(),
        );
    }
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, localhost(port), true);
    // A small send buffer on our side too, so that what the kernels can take while the server
    // does not read (its receive buffer and ours) stays well below the 10,000 requests.
    socket2::SockRef::from(&stream)
        .set_send_buffer_size(PIPELINER_SNDBUF)
        .expect("SO_SNDBUF");
    let local = stream.local_addr().expect("local address");
    stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .expect("write timeout");
    let started = Instant::now();
    let deadline = started + SEND_TIMEOUT + CLOSE_SLACK;
    let mut written = 0;
    let mut write_failed_after = None;
    while written < wire.len() && Instant::now() < deadline {
        match stream.write(&wire[written..]) {
            Ok(n) => written += n,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                write_failed_after = Some(started.elapsed());
                break;
            }
        }
    }
    Pipeliner {
        stream,
        local,
        started,
        written,
        total: wire.len(),
        write_failed_after,
    }
}

/// A slowloris HTTP client is closed at `request_timeout_ms`, and an RTSP client pipelining
/// 10,000 OPTIONS without reading is closed once its unread replies stop the server reading
/// it (`max_output_backlog_bytes`) and then make no progress (`send_timeout_ms`), while an
/// RTMP player of a live stream on the same server gets exactly the source's packets.
#[test]
fn slowloris_and_pipelining_clients_are_closed_while_a_player_plays() {
    let clip = Clip::AudioVideo;
    clip.source();
    let config = format!(
        "[server]\n{LOG_LIMIT}\nsend_timeout_ms = {}\nmax_output_backlog_bytes = {OUTPUT_BACKLOG}\n\n[http]\nrequest_timeout_ms = {}\n",
        SEND_TIMEOUT.as_millis(),
        REQUEST_TIMEOUT.as_millis()
    );
    for (index, binary) in server_binaries().iter().enumerate() {
        let mut server = Server::start_with_config(binary, 2, &config, &[]);
        let path = stream_path("loris", index);
        let rtmp = server.rtmp_url(&path);
        let player = probe::spawn_probe(&rtmp, &[]);
        std::thread::sleep(PLAYERS_SETTLE);
        let publisher = media::publish(clip, &rtmp, &[]);

        let http_port = server.http_port;
        let loris_path = format!("{path}loris");
        let loris = std::thread::spawn(move || slowloris(http_port, &loris_path));
        let (rtsp_port, rtsp_url) = (server.rtsp_port, server.rtsp_url(&format!("{path}opt")));
        let pipeliner = std::thread::spawn(move || pipeline_options(rtsp_port, &rtsp_url));

        let loris = loris.join().expect("slowloris thread");
        let what = format!("{} slowloris HTTP client", binary.display());
        eprintln!(
            "{what}: closed after {:?}, {} bytes of its head sent, answered {:?}",
            loris.closed_after,
            loris.sent,
            String::from_utf8_lossy(&loris.answer)
        );
        let closed = loris.closed_after.unwrap_or_else(|| {
            panic!(
                "{what}: still open {:?} after connecting\nserver log:\n{}",
                REQUEST_TIMEOUT + CLOSE_SLACK,
                server.log_text()
            )
        });
        assert!(
            closed + CLOCK_GRAIN >= REQUEST_TIMEOUT,
            "{what}: closed after {closed:?}, before the {REQUEST_TIMEOUT:?} request timeout"
        );
        assert!(
            loris.answer.is_empty() || loris.answer.starts_with(b"HTTP/1.1 4"),
            "{what}: answered {:?} to an incomplete head",
            String::from_utf8_lossy(&loris.answer)
        );

        let mut pipeliner = pipeliner.join().expect("pipelining thread");
        let what = format!("{} RTSP client pipelining OPTIONS", binary.display());
        let deadline = SEND_TIMEOUT + CLOSE_SLACK;
        let logged = server.wait_for_log(
            &["send queue made no progress", &peer_field(pipeliner.local)],
            deadline.saturating_sub(pipeliner.started.elapsed()),
        );
        let closed = logged.map(|_| pipeliner.started.elapsed());
        eprintln!(
            "{what}: {} of {} request bytes written, a write failed after {:?}, close logged after {closed:?}",
            pipeliner.written, pipeliner.total, pipeliner.write_failed_after
        );
        let closed = closed.unwrap_or_else(|| {
            panic!(
                "{what}: not closed for a stalled send queue within {deadline:?}\nserver log:\n{}",
                server.log_text()
            )
        });
        assert!(
            closed + CLOCK_GRAIN >= SEND_TIMEOUT,
            "{what}: closed after {closed:?}, before the {SEND_TIMEOUT:?} send timeout"
        );
        // The server stopped reading it: our socket could hand over only what the server
        // read until its unsent replies (past the ~100 KiB the kernel takes) reached the cap,
        // plus the kernel buffers in between (its receive buffer, our 16 KiB send buffer):
        // 184 KB of the 699 KB of requests when this was written. A server that kept reading
        // would have taken them all at once.
        assert!(
            pipeliner.written < pipeliner.total,
            "{what}: all {} request bytes were taken, so the server kept reading a client that did not read its replies",
            pipeliner.total
        );
        assert!(
            drain_to_close(&mut pipeliner.stream, Duration::from_secs(5)).is_some(),
            "{what}: logged as closed, but the connection stayed open"
        );

        let published = publisher.wait_timeout(PUBLISH_DEADLINE);
        server.assert_published(&binary.display().to_string(), &published);
        assert_matches_source(
            &format!("{} RTMP player beside them", binary.display()),
            &ProbeRun::from_finished(player.wait_timeout(PLAYER_TAIL)),
            clip,
        );
        assert!(
            server.is_running(),
            "{}: the server exited\nlog:\n{}",
            binary.display(),
            server.log_text()
        );
    }
}

/// An even UDP port whose odd neighbour is free too, on 127.0.0.1 (bound and released: the
/// small race is acceptable in tests, as for `free_port`).
fn free_udp_pair() -> u16 {
    for _ in 0..1000 {
        let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = socket.local_addr().map(|addr| addr.port()) else {
            continue;
        };
        if port % 2 == 0 && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free even/odd UDP port pair on 127.0.0.1");
}

/// Sends `FLOOD_DATAGRAMS` junk datagrams (12 to 1400 bytes, deterministic xorshift bytes,
/// some with an RTP version) alternately at `ports`, paced over `FLOOD_SPAN` and stopped at
/// `FLOOD_LIMIT`, from a socket no session has claimed. Returns how many were sent.
fn flood(ports: [u16; 2]) -> usize {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the flood socket");
    let targets = ports.map(localhost);
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let junk: Vec<u8> = (0..1400).map(|_| next() as u8).collect();
    const BATCH: usize = 500;
    let batches = FLOOD_DATAGRAMS / BATCH;
    let started = Instant::now();
    let mut sent = 0;
    for batch in 0..batches {
        for i in 0..BATCH {
            let len = 12 + (next() % (junk.len() as u64 - 12)) as usize;
            let mut datagram = junk[..len].to_vec();
            if i % 2 == 0 {
                datagram[0] = 0x80; // RTP version 2, no padding, no extension
            }
            if socket.send_to(&datagram, targets[i % 2]).is_ok() {
                sent += 1;
            }
        }
        if started.elapsed() >= FLOOD_LIMIT {
            break;
        }
        let due = started + FLOOD_SPAN * (batch as u32 + 1) / batches as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    sent
}

/// A flood of junk datagrams at the RTP and RTCP ports of a one-worker server does not stop a
/// player reading over RTSP with UDP transport on that worker: it gets every frame.
#[test]
fn udp_flood_does_not_stop_a_udp_player() {
    let clip = Clip::AudioVideo;
    clip.source();
    for (index, binary) in server_binaries().iter().enumerate() {
        let rtp = free_udp_pair();
        let range = format!("{rtp}-{}", rtp + 1);
        let server = Server::start_with_config(
            binary,
            1,
            &format!("[server]\n{LOG_LIMIT}\n"),
            &["--rtp-port-range", &range],
        );
        let path = stream_path("flood", index);
        let player = probe::spawn_probe(&server.rtsp_url(&path), RTSP_UDP);
        std::thread::sleep(PLAYERS_SETTLE);
        let publisher = media::publish(clip, &server.rtmp_url(&path), &[]);
        let flooding = std::thread::spawn(move || flood([rtp, rtp + 1]));
        let published = publisher.wait_timeout(PUBLISH_DEADLINE);
        let sent = flooding.join().expect("flood thread");
        eprintln!(
            "{}: {sent} junk datagrams sent at {range}",
            binary.display()
        );
        server.assert_published(&binary.display().to_string(), &published);
        assert_eq!(
            sent,
            FLOOD_DATAGRAMS,
            "{}: the flood did not go out in full",
            binary.display()
        );
        assert_complete_via_rtp(
            &format!("{} RTSP/UDP player under a UDP flood", binary.display()),
            &ProbeRun::from_finished(player.wait_timeout(PLAYER_TAIL)),
            clip,
            Delivery::Rtsp,
            Ingest::Rtmp,
        );
    }
}

/// C0 + C1 of a plain RTMP handshake, as in `live.rs`: zeros in bytes 4..8 of C1 select the
/// plain scheme.
fn c0c1() -> Vec<u8> {
    let mut c0c1 = vec![3u8, 0, 0, 0, 0, 0, 0, 0, 0];
    c0c1.extend((0..1528).map(|i| (i * 7 + 1) as u8));
    c0c1
}

/// Whether the server answers C0C1 on `stream` with a whole S0S1S2 within 3 s.
fn rtmp_served(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("read timeout");
    let mut s0s1s2 = vec![0u8; 1 + 1536 + 1536];
    stream.write_all(&c0c1()).is_ok() && stream.read_exact(&mut s0s1s2).is_ok() && s0s1s2[0] == 3
}

/// An RTMP connection from `local` that the server served (answered its handshake).
fn served_from(local: Ipv4Addr, server: &Server) -> TcpStream {
    let mut stream = connect_from(local, server.rtmp_addr(), false);
    assert!(
        rtmp_served(&mut stream),
        "an RTMP connection from {local} got no handshake answer\nserver log:\n{}",
        server.log_text()
    );
    stream
}

/// The status of `GET /{path}` sent from `local`.
fn http_status_from(local: Ipv4Addr, port: u16, path: &str) -> Option<u16> {
    let mut stream = connect_from(local, localhost(port), false);
    stream
        .write_all(format!("GET /{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
}

/// With `max_connections_per_ip = 5`, five connections from 127.0.0.2 are served and held, a
/// sixth from there is closed at once without a byte, connections from 127.0.0.3 are still
/// served, and once one of the five closes 127.0.0.2 may connect again.
#[test]
fn connections_beyond_the_per_address_limit_are_refused() {
    let config = format!("[server]\n{LOG_LIMIT}\nmax_connections_per_ip = {PER_IP_LIMIT}\n");
    let limited = Ipv4Addr::new(127, 0, 0, 2);
    let other = Ipv4Addr::new(127, 0, 0, 3);
    for binary in server_binaries() {
        let server = Server::start_with_config(&binary, 2, &config, &[]);
        let mut held: Vec<TcpStream> = (0..PER_IP_LIMIT)
            .map(|_| served_from(limited, &server))
            .collect();

        let what = format!(
            "{} connection {} from {limited}",
            binary.display(),
            PER_IP_LIMIT + 1
        );
        let mut refused = connect_from(limited, server.rtmp_addr(), false);
        let local = refused.local_addr().expect("local address");
        let read = drain_to_close(&mut refused, Duration::from_secs(1));
        assert_eq!(
            read,
            Some(0),
            "{what}: want a close without a byte within 1 s (None: still open)\nserver log:\n{}",
            server.log_text()
        );
        assert!(
            server
                .wait_for_log(
                    &["connection refused", &peer_field(local)],
                    Duration::from_secs(2)
                )
                .is_some(),
            "{what}: no log line naming the refusal\nserver log:\n{}",
            server.log_text()
        );

        let what = format!("{} beside the limit", binary.display());
        drop(served_from(other, &server));
        assert_eq!(
            http_status_from(other, server.http_port, "nothing/here"),
            Some(404),
            "{what}: an HTTP request from {other} was not answered"
        );
        // The held connections are still open (the server waits for their C2).
        for stream in &mut held {
            let mut probe = [0u8; 1];
            stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("read timeout");
            assert!(
                !matches!(stream.read(&mut probe), Ok(0)),
                "{what}: a held connection from {limited} was closed"
            );
        }

        // One of the five leaves: the address may connect again once the server has seen it.
        drop(held.pop());
        let deadline = Instant::now() + Duration::from_secs(3);
        let again = loop {
            let mut stream = connect_from(limited, server.rtmp_addr(), false);
            if rtmp_served(&mut stream) {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            again,
            "{}: {limited} could not connect again within 3 s after one of its connections closed\nserver log:\n{}",
            binary.display(),
            server.log_text()
        );
    }
}
