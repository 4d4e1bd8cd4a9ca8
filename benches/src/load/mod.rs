//! The load benchmark: one real server binary, one RTMP publisher sending a ~4 Mbit/s stream in
//! real time, and many players (half HTTP-FLV, half RTMP) on loopback; it measures the bytes
//! delivered to the players and the server's CPU time over a fixed window.
//!
//! Every thread uses blocking sockets with short timeouts and watches a stop flag and a hard
//! deadline, so a run always ends: the threads are joined and the server is killed by its PID.

mod net;
mod player;
mod publisher;
mod server;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use player::Protocol;
pub use publisher::live_gop;
pub use server::{clock_ticks_per_second, server_binaries, ServerProcess};

use net::Control;
use player::PlayerStats;
use publisher::PublisherStats;

/// Stack of a player or publisher thread: they hold their buffers on the heap.
const THREAD_STACK: usize = 256 * 1024;
/// Time allowed for starting the server, the publish, and every player's first bytes.
const SETUP_BUDGET: Duration = Duration::from_secs(35);
/// Margin after the window for stopping the threads.
const TEARDOWN_BUDGET: Duration = Duration::from_secs(15);
/// Time after the last player's first bytes before the window opens, so the GOP-cache burst
/// every player gets on joining is not counted as steady delivery.
const WARMUP: Duration = Duration::from_secs(1);

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Number of players, half HTTP-FLV and half RTMP.
    pub players: usize,
    /// Length of the measured window.
    pub window: Duration,
}

impl LoadConfig {
    /// `LOAD_PLAYERS` (default 200) and `LOAD_SECONDS` (default 10).
    pub fn from_env() -> Result<Self, String> {
        fn var(name: &str, default: u64) -> Result<u64, String> {
            match std::env::var(name) {
                Ok(text) => text
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{name}={text}: expected a positive integer")),
                Err(_) => Ok(default),
            }
        }
        Ok(Self {
            players: usize::try_from(var("LOAD_PLAYERS", 200)?).map_err(|e| e.to_string())?,
            window: Duration::from_secs(var("LOAD_SECONDS", 10)?),
        })
    }

    /// The hard limit on one binary's run: setup, the window and teardown (60 s by default).
    pub fn hard_timeout(&self) -> Duration {
        SETUP_BUDGET + self.window + TEARDOWN_BUDGET
    }
}

/// The outcome of one binary's run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The binary's file name.
    pub binary: String,
    /// Players started.
    pub players: usize,
    /// The measured window, as it really lasted.
    pub seconds: f64,
    /// Bytes all players received during the window.
    pub bytes: u64,
    /// Bytes the publisher sent during the window.
    pub published_bytes: u64,
    /// The server's CPU time (user + system) during the window.
    pub server_cpu_seconds: f64,
    /// This process's CPU time during the window (publisher, players), for context: on a small
    /// machine the load generator competes with the server for the cores.
    pub client_cpu_seconds: f64,
    /// The least and the most one player received during the window.
    pub player_bytes_range: (u64, u64),
    /// Players that received nothing during the window.
    pub stalled: usize,
    /// Players that had not received their first bytes when the window opened.
    pub late: usize,
    /// Players that received nothing at all, ever.
    pub silent: usize,
    /// What went wrong that makes the numbers meaningless (empty when the run is sane).
    pub problems: Vec<String>,
}

impl LoadReport {
    /// Delivered megabytes (10^6 bytes) per second.
    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(f64::EPSILON)
    }

    /// Server CPU seconds per gigabyte (10^9 bytes) delivered.
    pub fn cpu_seconds_per_gigabyte(&self) -> f64 {
        if self.bytes == 0 {
            return f64::INFINITY;
        }
        self.server_cpu_seconds / (self.bytes as f64 / 1e9)
    }

    /// Delivered bytes against what the publisher sent times the players: about 100% when every
    /// player kept up (protocol framing differs a little between the publish and the plays).
    pub fn kept_up(&self) -> f64 {
        let expected = self.published_bytes as f64 * self.players as f64;
        if expected == 0.0 {
            return 0.0;
        }
        self.bytes as f64 / expected
    }
}

/// Runs the workload against `binary` and measures it; the error says why no measurement could
/// be made at all (the server did not start, the publish failed).
pub fn run(binary: &Path, config: &LoadConfig) -> Result<LoadReport, String> {
    let started = Instant::now();
    let control = Arc::new(Control::new(started + config.hard_timeout()));
    let setup_deadline = started + SETUP_BUDGET;
    let name = binary.file_name().map_or_else(
        || binary.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let mut server = ServerProcess::start(binary, setup_deadline)?;
    let mut threads = Threads::new(Arc::clone(&control));
    let result = measure(&mut server, &mut threads, &name, config, setup_deadline);
    threads.stop_and_join();
    let log = server.log_tail();
    server.stop();
    let mut report = result.map_err(|why| format!("{why}\nserver log:\n{log}"))?;
    for (index, stats) in threads.players.iter().enumerate() {
        if let Some(why) = stats.failure() {
            if report.problems.len() < 5 {
                report
                    .problems
                    .push(format!("player {index} ({:?}): {why}", protocol_of(index)));
            }
        }
    }
    if !report.problems.is_empty() && !log.is_empty() {
        report.problems.push(format!("server log:\n{log}"));
    }
    Ok(report)
}

/// Half the players use each protocol, alternating.
fn protocol_of(index: usize) -> Protocol {
    if index % 2 == 0 {
        Protocol::HttpFlv
    } else {
        Protocol::Rtmp
    }
}

fn measure(
    server: &mut ServerProcess,
    threads: &mut Threads,
    name: &str,
    config: &LoadConfig,
    setup_deadline: Instant,
) -> Result<LoadReport, String> {
    let stream_name = "load";
    let publisher = threads.spawn_publisher(server.rtmp, stream_name)?;
    while !publisher.publishing.load(Ordering::Relaxed) {
        if let Some(why) = threads.publisher_failure() {
            return Err(format!("the publisher failed: {why}"));
        }
        if Instant::now() >= setup_deadline {
            return Err("the publish did not start in time".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    for index in 0..config.players {
        let protocol = protocol_of(index);
        let addr = match protocol {
            Protocol::HttpFlv => server.http,
            Protocol::Rtmp => server.rtmp,
        };
        threads.spawn_player(protocol, addr, stream_name, index as u64)?;
    }
    // Wait until every player has its first bytes (or has failed), within the setup budget.
    while Instant::now() < setup_deadline {
        let waiting = threads
            .players
            .iter()
            .filter(|p| !p.started.load(Ordering::Relaxed) && p.failure().is_none())
            .count();
        if waiting == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(WARMUP);

    let late = threads
        .players
        .iter()
        .filter(|p| !p.started.load(Ordering::Relaxed))
        .count();
    let ticks_per_second = clock_ticks_per_second() as f64;
    let snapshot = |threads: &Threads| -> Vec<u64> {
        threads
            .players
            .iter()
            .map(|p| p.bytes.load(Ordering::Relaxed))
            .collect()
    };
    let server_cpu_before = server.cpu_ticks()?;
    let client_cpu_before = server::cpu_ticks("/proc/self/stat")?;
    let published_before = publisher.bytes.load(Ordering::Relaxed);
    let before = snapshot(threads);
    let window_start = Instant::now();

    std::thread::sleep(config.window);

    let after = snapshot(threads);
    let seconds = window_start.elapsed().as_secs_f64();
    let published_after = publisher.bytes.load(Ordering::Relaxed);
    let server_running = server.is_running();
    let server_cpu_after = if server_running {
        server.cpu_ticks()?
    } else {
        server_cpu_before
    };
    let client_cpu_after = server::cpu_ticks("/proc/self/stat")?;

    let deltas: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let mut report = LoadReport {
        binary: name.to_string(),
        players: config.players,
        seconds,
        bytes: deltas.iter().sum(),
        published_bytes: published_after - published_before,
        server_cpu_seconds: server_cpu_after.saturating_sub(server_cpu_before) as f64
            / ticks_per_second,
        client_cpu_seconds: client_cpu_after.saturating_sub(client_cpu_before) as f64
            / ticks_per_second,
        player_bytes_range: (
            deltas.iter().copied().min().unwrap_or(0),
            deltas.iter().copied().max().unwrap_or(0),
        ),
        stalled: deltas.iter().filter(|&&d| d == 0).count(),
        late,
        silent: after.iter().filter(|&&total| total == 0).count(),
        problems: Vec::new(),
    };
    if !server_running {
        report
            .problems
            .push("the server exited during the window".into());
    }
    if let Some(why) = threads.publisher_failure() {
        report.problems.push(format!("the publisher failed: {why}"));
    }
    if report.published_bytes == 0 {
        report
            .problems
            .push("the publisher sent nothing during the window".into());
    }
    if report.silent > 0 {
        report.problems.push(format!(
            "{} of {} players received no bytes at all",
            report.silent, report.players
        ));
    }
    Ok(report)
}

/// The load threads of one run, joined before the run returns.
struct Threads {
    control: Arc<Control>,
    players: Vec<Arc<PlayerStats>>,
    publisher_failure: Arc<std::sync::Mutex<Option<String>>>,
    handles: Vec<JoinHandle<()>>,
}

impl Threads {
    fn new(control: Arc<Control>) -> Self {
        Self {
            control,
            players: Vec::new(),
            publisher_failure: Arc::default(),
            handles: Vec::new(),
        }
    }

    fn spawn(&mut self, name: String, work: impl FnOnce() + Send + 'static) -> Result<(), String> {
        let handle = std::thread::Builder::new()
            .name(name)
            .stack_size(THREAD_STACK)
            .spawn(work)
            .map_err(|error| format!("cannot start a thread: {error}"))?;
        self.handles.push(handle);
        Ok(())
    }

    fn spawn_publisher(
        &mut self,
        addr: std::net::SocketAddr,
        stream: &str,
    ) -> Result<Arc<PublisherStats>, String> {
        let stats = Arc::new(PublisherStats::default());
        let (control, failure, stream) = (
            Arc::clone(&self.control),
            Arc::clone(&self.publisher_failure),
            stream.to_string(),
        );
        let thread_stats = Arc::clone(&stats);
        self.spawn("publisher".into(), move || {
            if let Err(why) = publisher::publish(addr, &stream, &thread_stats, &control) {
                if let Ok(mut failure) = failure.lock() {
                    *failure = Some(why);
                }
            }
        })?;
        Ok(stats)
    }

    fn publisher_failure(&self) -> Option<String> {
        self.publisher_failure
            .lock()
            .ok()
            .and_then(|failure| failure.clone())
    }

    fn spawn_player(
        &mut self,
        protocol: Protocol,
        addr: std::net::SocketAddr,
        stream: &str,
        seed: u64,
    ) -> Result<(), String> {
        let stats = Arc::new(PlayerStats::default());
        self.players.push(Arc::clone(&stats));
        let (control, stream) = (Arc::clone(&self.control), stream.to_string());
        self.spawn(format!("player-{seed}"), move || {
            if let Err(why) = player::play(protocol, addr, &stream, seed, &stats, &control) {
                // Failures after the stop (a reset as the server is killed) are not failures.
                if !control.should_stop() {
                    stats.fail(why);
                }
            }
        })
    }

    /// Stops every thread and waits for it: each one notices within a poll interval.
    fn stop_and_join(&mut self) {
        self.control.stop();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The reports side by side, one row per binary.
pub fn table(reports: &[LoadReport]) -> String {
    let mut out = format!(
        "{:<20} {:>7} {:>7} {:>14} {:>8} {:>10} {:>10} {:>8} {:>7} {:>10}\n",
        "binary",
        "players",
        "seconds",
        "bytes",
        "MB/s",
        "server CPU",
        "CPU s/GB",
        "kept up",
        "stalled",
        "client CPU"
    );
    for r in reports {
        out.push_str(&format!(
            "{:<20} {:>7} {:>7.2} {:>14} {:>8.1} {:>9.2}s {:>10.2} {:>7.1}% {:>7} {:>9.2}s\n",
            r.binary,
            r.players,
            r.seconds,
            r.bytes,
            r.megabytes_per_second(),
            r.server_cpu_seconds,
            r.cpu_seconds_per_gigabyte(),
            r.kept_up() * 100.0,
            r.stalled,
            r.client_cpu_seconds,
        ));
    }
    out
}
