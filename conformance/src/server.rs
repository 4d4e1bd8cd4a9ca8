//! Starting and stopping a real server binary on free loopback ports.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The server binaries the live suite runs against: both runtimes' release builds, or the
/// paths in `MEDIAKIT_SERVER_BINS` (separated by `:`).
pub fn server_binaries() -> Vec<PathBuf> {
    if let Ok(list) = std::env::var("MEDIAKIT_SERVER_BINS") {
        return list
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::workspace_root().join("target"));
    // Every live test runs against every runtime's server: same flags, same behaviour.
    ["mediakit", "mediakit-async-std"]
        .iter()
        .map(|name| {
            let binary = target.join("release").join(name);
            assert!(
                binary.exists(),
                "{} is missing: build it with `cargo build --release -p mediakit-tokio -p mediakit-async-std` or set MEDIAKIT_SERVER_BINS",
                binary.display()
            );
            binary
        })
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound and released; the small race is acceptable in tests).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A running server process; killed (by its PID) when dropped.
pub struct Server {
    child: Child,
    /// The RTMP port.
    pub rtmp_port: u16,
    /// The HTTP port.
    pub http_port: u16,
    /// The RTSP port.
    pub rtsp_port: u16,
    log: Arc<Mutex<Vec<String>>>,
    /// The configuration file written for this server, removed when it is dropped.
    config: Option<PathBuf>,
}

impl Server {
    /// Starts `binary` on free ports with two workers and extra flags, and waits until every
    /// port accepts.
    pub fn start(binary: &Path, extra_args: &[&str]) -> Server {
        Server::launch(binary, 2, None, extra_args)
    }

    /// Like [`Server::start`] with `workers` workers and the TOML text `config` (see the
    /// README's "Configuration") written to a file of its own in the temp dir and passed as
    /// `--config`; the file is removed when the server is dropped. Flags (the ports, `--bind`,
    /// `--workers` and `extra_args`) override the file.
    pub fn start_with_config(
        binary: &Path,
        workers: usize,
        config: &str,
        extra_args: &[&str],
    ) -> Server {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mediakit-conformance-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, config)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        Server::launch(binary, workers, Some(path), extra_args)
    }

    fn launch(
        binary: &Path,
        workers: usize,
        config: Option<PathBuf>,
        extra_args: &[&str],
    ) -> Server {
        let rtmp_port = free_port();
        let http_port = free_port();
        let rtsp_port = free_port();
        let mut command = Command::new(binary);
        if let Some(config) = &config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .args(["--bind", "127.0.0.1", "--workers", &workers.to_string()])
            .args([
                "--rtmp-port",
                &rtmp_port.to_string(),
                "--http-port",
                &http_port.to_string(),
                "--rtsp-port",
                &rtsp_port.to_string(),
            ])
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", binary.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().map(|mut log| log.push(line)).ok();
                }
            });
        }
        let server = Server {
            child,
            rtmp_port,
            http_port,
            rtsp_port,
            log,
            config,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [rtmp_port, http_port, rtsp_port] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "server did not listen on {port}; log:\n{}",
                    server.log_text()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        server
    }

    /// `rtmp://127.0.0.1:PORT/{path}`.
    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.rtmp_port)
    }

    /// `http://127.0.0.1:PORT/{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.http_port)
    }

    /// `rtsp://127.0.0.1:PORT/{path}`.
    pub fn rtsp_url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.rtsp_port)
    }

    /// The RTMP socket address.
    pub fn rtmp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.rtmp_port))
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .map(|log| log.join("\n"))
            .unwrap_or_default()
    }

    /// Panics, with the publisher's output and this server's log, unless the publisher
    /// `finished` successfully.
    pub fn assert_published(&self, what: &str, finished: &crate::probe::Finished) {
        assert!(
            finished.success(),
            "{what}: publisher: {}\nserver log:\n{}",
            finished.describe(),
            self.log_text()
        );
    }

    /// The server's lines that contain every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.log
            .lock()
            .map(|log| {
                log.iter()
                    .filter(|line| needles.iter().all(|needle| line.contains(needle)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the server has logged a line containing every one of `needles`, polling
    /// every 20 ms; returns how long that took, or `None` if `timeout` passed first.
    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> Option<Duration> {
        let started = Instant::now();
        loop {
            if !self.log_lines_with(needles).is_empty() {
                return Some(started.elapsed());
            }
            if started.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident set size (`VmRSS` of `/proc/PID/status`) in bytes, or `None` where
    /// that cannot be read (not Linux, or the process has gone).
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_bytes(self.pid())
    }

    /// True while the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("pid", &self.child.id())
            .field("rtmp_port", &self.rtmp_port)
            .field("http_port", &self.http_port)
            .finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(config) = &self.config {
            let _ = std::fs::remove_file(config);
        }
    }
}

/// The resident set size of process `pid` in bytes, from `VmRSS` in `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
