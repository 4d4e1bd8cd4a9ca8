//! The engine's log on virtual time, captured with a test subscriber scoped to the test's
//! thread: lines about misbehaving peers, and lines about connections that never publish or
//! play, each stay within `error_logs_per_second` per worker (plus one line per window saying
//! how many were dropped, and those counts add up), and no line carries more than a bounded
//! piece of what a peer sent, however long its names.

mod common;

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{client_ip, done};
use mediakit_core::amf0::Amf0Value;
use mediakit_core::limit::LOG_TEXT_MAX;
use mediakit_core::rtmp::ControlMessage;
use mediakit_core::rtsp::message::Method;
use mediakit_sim::clients::{http_get, raw_tcp, Client, RawRtmp, RawTcpOptions, RtspConnection};
use mediakit_sim::server::{server_config, SimServer};
use mediakit_sim::{Millis, World};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;

/// Everything the subscriber wrote.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Stamps each line with the virtual time instead of the wall clock.
struct VirtualTime;

impl FormatTime for VirtualTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match mediakit_sim::try_now() {
            Some(now) => write!(w, "{}", now.0),
            None => write!(w, "-"),
        }
    }
}

/// One captured line.
#[derive(Debug)]
struct Line {
    at: Millis,
    level: String,
    /// The line as the server would print it, without the timestamp.
    text: String,
}

/// A worker's two log gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Lines about misbehaving peers (warnings).
    Peers,
    /// Lines about connections that never published or played.
    Connections,
}

impl Gate {
    /// The summary line of this gate.
    fn summary(self) -> &'static str {
        match self {
            Gate::Peers => "log lines about misbehaving peers suppressed",
            Gate::Connections => "connection log lines suppressed",
        }
    }
}

impl Line {
    /// Which gate let this line through.
    fn gate(&self) -> Gate {
        if self.text.contains(Gate::Connections.summary()) || self.level == "INFO" {
            Gate::Connections
        } else {
            Gate::Peers
        }
    }

    /// The gate's own line about what it dropped, and how many.
    fn suppressed(&self) -> Option<u64> {
        if !self.text.contains(self.gate().summary()) {
            return None;
        }
        let field = self
            .text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("suppressed="))?;
        field.parse().ok()
    }
}

/// Runs `test` with the engine's log (info and up) captured; returns its output and lines.
fn with_log<T>(test: impl FnOnce() -> T) -> (T, Vec<Line>) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_timer(VirtualTime)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let output = tracing::subscriber::with_default(subscriber, test);
    let bytes = capture.0.lock().unwrap().clone();
    let lines = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| {
            let (at, rest) = line.split_once(' ').unwrap();
            let rest = rest.trim_start();
            let (level, _) = rest.split_once(' ').unwrap();
            Line {
                at: Millis(at.parse().unwrap()),
                level: level.to_owned(),
                text: rest.to_owned(),
            }
        })
        .collect();
    (output, lines)
}

const PER_SECOND: u32 = 5;
const GARBAGE: u32 = 2_000;
const WORKERS: usize = 2;

/// When client `n` of the garbage test connects: one a millisecond from 1 s, the late
/// ones at 5 s.
fn connect_at(n: u32) -> u64 {
    if n < GARBAGE {
        1_000 + u64::from(n)
    } else {
        5_000
    }
}

/// The number `n` of the client at `client_ip(n)` a line names as its peer.
fn peer_of(line: &Line) -> Option<u32> {
    let field = line
        .text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("peer="))?;
    let ip: std::net::SocketAddr = field.parse().ok()?;
    let std::net::IpAddr::V4(ip) = ip.ip() else {
        return None;
    };
    let [_, _, high, low] = ip.octets();
    Some(u32::from(high) * 250 + u32::from(low) - 1)
}

/// The `worker=` field of a line, if it has one.
fn worker_field(line: &Line) -> Option<usize> {
    let field = line
        .text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("worker="))?;
    field.parse().ok()
}

#[test]
fn garbage_connections_get_a_bounded_number_of_log_lines_per_worker() {
    // Which client goes to which worker: each protocol's connections go to the workers'
    // listeners in turn, in the order the clients connect.
    let mut plan: Vec<(u32, bool)> = (0..GARBAGE).map(|n| (n, n % 2 == 0)).collect();
    // After the log has been quiet, one more RTMP client for each worker.
    plan.extend([(9_000, true), (9_001, true)]);
    let mut turns = [0usize; 2];
    let worker_of: std::collections::HashMap<u32, usize> = plan
        .iter()
        .map(|&(n, rtmp)| {
            let turn = &mut turns[usize::from(!rtmp)];
            *turn += 1;
            (n, (*turn - 1) % WORKERS)
        })
        .collect();

    let ((), lines) = with_log(|| {
        let world = World::new(41);
        let mut config = server_config();
        assert_eq!(config.server.workers, WORKERS);
        config.server.error_logs_per_second = PER_SECOND;
        let server = SimServer::start(&world, config).unwrap();
        let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
        // A bad RTMP version byte, or a request line that is not HTTP.
        let clients: Vec<Client> = plan
            .iter()
            .map(|&(n, to_rtmp)| {
                let (server, junk): (_, &[u8]) = if to_rtmp {
                    (rtmp, &[0x06; 1537])
                } else {
                    (http, b"\x01\x02 not http\r\n\r\n")
                };
                raw_tcp(RawTcpOptions {
                    start_delay_ms: connect_at(n),
                    ..RawTcpOptions::new(client_ip(n), server, vec![Bytes::from(junk)])
                })
            })
            .collect();
        assert!(world.run_until(|| clients.iter().all(done), 10_000));
        assert!(clients.iter().all(|c| c.log().closed().is_some()));
        assert_eq!(world.listener_loads(rtmp), [501, 501]);
        assert_eq!(world.listener_loads(http), [500, 500]);
        assert_eq!(server.stats().connections, 0);
    });

    let mut per_worker: [Vec<&Line>; WORKERS] = Default::default();
    for line in &lines {
        let by_peer = peer_of(line).map(|n| worker_of[&n]);
        let worker = match (worker_field(line), by_peer) {
            (Some(field), Some(planned)) => {
                assert_eq!(field, planned, "{line:?}");
                field
            }
            (Some(worker), None) | (None, Some(worker)) => worker,
            (None, None) => panic!("a line about no peer or worker: {line:?}"),
        };
        per_worker[worker].push(line);
    }
    for (worker, lines) in per_worker.iter().enumerate() {
        for gate in [Gate::Peers, Gate::Connections] {
            let lines: Vec<&Line> = lines.iter().copied().filter(|l| l.gate() == gate).collect();
            check_gate(worker, gate, &lines, &plan, &worker_of);
        }
    }
}

/// One gate of one worker let through at most `PER_SECOND` lines and one summary per window,
/// and every connection of the worker asked it once (its connect line, or its error line).
fn check_gate(
    worker: usize,
    gate: Gate,
    lines: &[&Line],
    plan: &[(u32, bool)],
    worker_of: &std::collections::HashMap<u32, usize>,
) {
    // The gate's windows start at the first line after the previous one ended (the first
    // check after a window always passes), so they can be read back from the lines.
    let mut windows: Vec<(Millis, Vec<&Line>)> = Vec::new();
    for &line in lines {
        match windows.last_mut() {
            Some((start, window)) if line.at < *start + 1_000 => window.push(line),
            _ => windows.push((line.at, vec![line])),
        }
    }
    for (start, window) in &windows {
        let summaries = window.iter().filter(|l| l.suppressed().is_some()).count();
        assert!(
            window.len() - summaries <= PER_SECOND as usize && summaries <= 1,
            "worker {worker}, {gate:?}, window at {start:?}: {window:#?}"
        );
        if summaries == 1 {
            assert!(
                window[0].suppressed().is_some(),
                "the summary opens its window"
            );
            assert_eq!(window[0].level, "WARN");
        }
    }
    // Two seconds of garbage, two windows: five lines; the summary of what the first second
    // dropped and five more. The late client opens a third: the summary of the second
    // second and its own line. (A window starts at the first of the worker's connections a
    // second or more after the previous start: every connection asks each gate as it is
    // accepted and, garbage being refused at once, closed.)
    let mut expected: Vec<Millis> = Vec::new();
    for &(n, _) in plan {
        let at = Millis(connect_at(n));
        if worker_of[&n] == worker && expected.last().is_none_or(|s| at >= *s + 1_000) {
            expected.push(at);
        }
    }
    let starts: Vec<Millis> = windows.iter().map(|(start, _)| *start).collect();
    assert_eq!(starts, expected, "worker {worker}, {gate:?}");
    assert_eq!(starts.len(), 3);
    assert_eq!(
        lines.len(),
        5 + (1 + 5) + (1 + 1),
        "worker {worker}, {gate:?}: {lines:#?}"
    );
    // Every ask made a line or was counted in the next summary.
    let summarized: u64 = lines.iter().filter_map(|l| l.suppressed()).sum();
    let logged = lines.iter().filter(|l| l.suppressed().is_none()).count() as u64;
    let connections = worker_of.values().filter(|w| **w == worker).count() as u64;
    assert_eq!(
        logged + summarized,
        connections,
        "worker {worker}, {gate:?}"
    );
}

/// The longest line the server prints about a peer, without its timestamp: fixed text and
/// fields (peer, protocol, stream key parts of at most 128 bytes) and at most
/// `LOG_TEXT_MAX` bytes of anything else a peer chose.
const MAX_LINE: usize = 512;

/// The longest run of `byte` in `text`.
fn longest_run(text: &str, byte: u8) -> usize {
    text.as_bytes()
        .split(|b| *b != byte)
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

#[test]
fn names_of_megabytes_are_logged_in_bounded_lines() {
    const HUGE: usize = (8 << 20) - 2_048;
    let (received, lines) = with_log(|| {
        let world = World::new(42);
        let server = SimServer::start(&world, server_config()).unwrap();
        let (rtmp, http) = (server.rtmp_addr().unwrap(), server.http_addr().unwrap());
        let rtsp = server.rtsp_addr().unwrap();
        let huge = |byte: u8| String::from_utf8(vec![byte; HUGE]).unwrap();
        // An 8 MiB application name, then an 8 MiB stream name under it.
        let huge_app = world.spawn(async move {
            let mut client = RawRtmp::handshake(client_ip(1), rtmp, None).await.unwrap();
            client.queue_control(&ControlMessage::SetChunkSize(60_000));
            let object = Amf0Value::object([("app", Amf0Value::String(huge(b'a')))]);
            client.queue_command("connect", 0, &[object]);
            client.queue_publish(&huge(b'b'));
            client.send().await.unwrap();
            client.read_to_end().await.unwrap().len()
        });
        // A sane application, and an 8 MiB name to publish, then to play.
        let huge_names = world.spawn(async move {
            let mut client = RawRtmp::handshake(client_ip(2), rtmp, None).await.unwrap();
            client.queue_control(&ControlMessage::SetChunkSize(60_000));
            client.queue_connect("live");
            client.queue_publish(&huge(b'c'));
            client.send().await.unwrap();
            let mut player = RawRtmp::handshake(client_ip(3), rtmp, None).await.unwrap();
            player.queue_control(&ControlMessage::SetChunkSize(60_000));
            player.queue_connect("live");
            player.queue_command("createStream", 0, &[Amf0Value::Null]);
            let play = [Amf0Value::Null, Amf0Value::String(huge(b'd'))];
            player.queue_command("play", 1, &play);
            player.send().await.unwrap();
            client.read_to_end().await.unwrap().len() + player.read_to_end().await.unwrap().len()
        });
        // Long HTTP paths: one that fits a request head, one that does not.
        let paths = world.spawn(async move {
            let fits = format!("/live/{}.flv", "e".repeat(7_000));
            let too_long = format!("/live/{}/index.m3u8", "f".repeat(100_000));
            let a = http_get(client_ip(4), http, &fits).await.unwrap();
            let b = http_get(client_ip(5), http, &too_long).await;
            (a.status, b.map(|r| r.status).ok())
        });
        // A long RTSP path.
        let describe = world.spawn(async move {
            let mut conn = RtspConnection::connect(client_ip(6), rtsp).unwrap();
            let url = conn.url(&format!("live/{}", "g".repeat(6_000)));
            conn.request(Method::Describe, &url, &[], Bytes::new())
                .await
                .map(|response| response.status)
                .ok()
        });
        let tasks = (&huge_app, &huge_names, &paths, &describe);
        assert!(world.run_until(
            || tasks.0.is_finished()
                && tasks.1.is_finished()
                && tasks.2.is_finished()
                && tasks.3.is_finished(),
            10_000
        ));
        (
            huge_app.take().unwrap(),
            huge_names.take().unwrap(),
            paths.take().unwrap(),
            describe.take().unwrap(),
        )
    });
    let (app_replies, name_replies, (fits, too_long), describe) = received;
    assert!(app_replies > 0 && name_replies > 0, "the server answered");
    assert_eq!(fits, 400, "an invalid stream name");
    assert_eq!(
        too_long, None,
        "a head over the limit is dropped without an answer"
    );
    assert_eq!(describe, Some(400));
    assert!(lines.len() >= 8, "{lines:#?}");
    for line in &lines {
        assert!(
            line.text.len() <= MAX_LINE,
            "{} bytes: {:?}",
            line.text.len(),
            line.text
        );
        for byte in b"abcdefg" {
            assert!(
                longest_run(&line.text, *byte) <= LOG_TEXT_MAX,
                "{:?}",
                line.text
            );
        }
    }
    let refusals = lines
        .iter()
        .filter(|l| l.level == "WARN" && l.text.contains("refused"))
        .count();
    assert!(refusals >= 4, "{lines:#?}");
}
