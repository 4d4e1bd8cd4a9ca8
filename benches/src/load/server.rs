//! Finding, starting and stopping a real server binary, and reading its CPU time.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The server binaries, named as cargo builds them.
const BINARY_NAMES: [&str; 2] = ["mediakit", "mediakit-async-std"];
/// Log lines kept per server, for the error message when it misbehaves.
const LOG_TAIL: usize = 50;

/// The release binaries to compare: the paths in `MEDIAKIT_SERVER_BINS` (separated by `:`), else
/// `mediakit` and `mediakit-async-std` from `$CARGO_TARGET_DIR/release` or the workspace's
/// `target/release`. The error says how to build them.
pub fn server_binaries() -> Result<Vec<PathBuf>, String> {
    if let Ok(list) = std::env::var("MEDIAKIT_SERVER_BINS") {
        let binaries: Vec<PathBuf> = list
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if let Some(missing) = binaries.iter().find(|binary| !binary.exists()) {
            return Err(format!(
                "{} (from MEDIAKIT_SERVER_BINS) does not exist",
                missing.display()
            ));
        }
        return Ok(binaries);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut dirs = Vec::new();
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(target).join("release"));
    }
    dirs.push(workspace.join("target").join("release"));
    BINARY_NAMES
        .iter()
        .map(|name| {
            dirs.iter()
                .map(|dir| dir.join(name))
                .find(|path| path.exists())
                .ok_or_else(|| {
                    let looked: Vec<String> =
                        dirs.iter().map(|d| d.display().to_string()).collect();
                    format!(
                        "release binary `{name}` not found in {}: build both with \
                         `cargo build --release -p mediakit-tokio -p mediakit-async-std` \
                         (same CARGO_TARGET_DIR), or set MEDIAKIT_SERVER_BINS=path1:path2",
                        looked.join(" or ")
                    )
                })
        })
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound and released; the small race is acceptable here).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| format!("no free loopback port: {error}"))
}

/// A running server process. Stopping it (or dropping it) kills it by its PID and joins the
/// threads that collect its output.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// The RTMP listening address.
    pub rtmp: SocketAddr,
    /// The HTTP listening address.
    pub http: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    log_threads: Vec<JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts `binary` with `--workers 2` on free loopback ports and waits (at most until
    /// `deadline`) until both ports accept connections.
    pub fn start(binary: &Path, deadline: Instant) -> Result<Self, String> {
        let rtmp_port = free_port()?;
        let http_port = free_port()?;
        let mut child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--workers", "2"])
            .args(["--rtmp-port", &rtmp_port.to_string()])
            .args(["--http-port", &http_port.to_string()])
            // Per-connection info lines would be part of what is measured; warnings still show.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", binary.display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let outputs: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        let log_threads = outputs
            .into_iter()
            .flatten()
            .map(|output| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || collect_log(output, &log))
            })
            .collect();
        let mut server = Self {
            child,
            rtmp: SocketAddr::from(([127, 0, 0, 1], rtmp_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            log,
            log_threads,
        };
        for addr in [server.rtmp, server.http] {
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if !server.is_running() || Instant::now() >= deadline {
                    let log = server.log_tail();
                    server.stop();
                    return Err(format!(
                        "{} did not listen on {addr}; its log:\n{log}",
                        binary.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(server)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's CPU time so far (user + system, all threads), in clock ticks.
    pub fn cpu_ticks(&self) -> Result<u64, String> {
        cpu_ticks(&format!("/proc/{}/stat", self.pid()))
    }

    /// The last lines the server printed.
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|log| log.join("\n"))
            .unwrap_or_default()
    }

    /// Kills the process (by its PID, through the `Child` handle), reaps it and joins the log
    /// collectors, which end when its pipes close.
    pub fn stop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        for thread in self.log_threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn collect_log(output: Box<dyn Read + Send>, log: &Mutex<Vec<String>>) {
    for line in BufReader::new(output).lines().map_while(Result::ok) {
        if let Ok(mut log) = log.lock() {
            if log.len() == LOG_TAIL {
                log.remove(0);
            }
            log.push(line);
        }
    }
}

/// User + system CPU time, in clock ticks, from a `/proc/<pid>/stat` file.
pub fn cpu_ticks(stat_path: &str) -> Result<u64, String> {
    let stat = std::fs::read_to_string(stat_path)
        .map_err(|error| format!("cannot read {stat_path}: {error}"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| format!("unexpected format of {stat_path}: {stat}"))
}

/// utime + stime from the text of a `/proc/<pid>/stat` file. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted from the last `)`: after it come
/// field 3 (state) onwards, which puts utime (field 14) and stime (field 15) at 11 and 12.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), from `getconf CLK_TCK`. Linux has used 100
/// on every architecture for decades (the kernel's USER_HZ), so that is the fallback when
/// `getconf` is missing.
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_odd_command_names() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    731 269 0 0 20 0 3 0 12345 1000000 300 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(1000));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
    }

    #[test]
    fn our_own_cpu_time_is_readable() {
        assert!(cpu_ticks("/proc/self/stat").is_ok());
        assert!(clock_ticks_per_second() > 0);
    }
}
