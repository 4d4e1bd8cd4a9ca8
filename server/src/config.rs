//! Server configuration: embedded defaults, overridden by a TOML file, overridden by flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use mediakit_core::admission::AdmissionConfig;
use mediakit_core::guard::GuardConfig;
use mediakit_core::hls::CatalogConfig;
use mediakit_core::hub::HubConfig;
use serde::Deserialize;

/// Command-line flags. Every flag overrides the same setting from `--config`.
#[derive(Debug, Parser)]
#[command(
    name = "mediakit",
    version,
    about = "Live streaming media server: RTMP and RTSP in; RTMP, RTSP, HTTP-FLV, HLS and HTTP-TS out"
)]
pub struct Cli {
    /// TOML configuration file; see README for the keys.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Worker threads, each with its own event loop and listeners (default: number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Address to listen on.
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// RTMP port.
    #[arg(long)]
    pub rtmp_port: Option<u16>,
    /// HTTP port (HTTP-FLV, HTTP-TS, HLS).
    #[arg(long)]
    pub http_port: Option<u16>,
    /// RTSP port.
    #[arg(long)]
    pub rtsp_port: Option<u16>,
    /// UDP ports for RTP/RTCP over UDP, as `first-last`; each worker takes the first free
    /// even/odd pair. `0-0` serves RTSP over TCP only.
    #[arg(long, value_parser = parse_port_range)]
    pub rtp_port_range: Option<[u16; 2]>,
    /// Also write HLS segments and playlists under this directory (`{app}/{stream}/`).
    #[arg(long)]
    pub hls_dir: Option<PathBuf>,
    /// How long a player may wait for a stream that is not yet published, in milliseconds.
    #[arg(long)]
    pub play_wait_ms: Option<u64>,
    /// Log filter, e.g. `info` or `mediakit=debug` (also read from RUST_LOG).
    #[arg(long)]
    pub log: Option<String>,
}

/// The whole server configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// General settings.
    pub server: General,
    /// RTMP settings.
    pub rtmp: Rtmp,
    /// HTTP settings.
    pub http: Http,
    /// RTSP settings.
    pub rtsp: Rtsp,
    /// HLS segmenting.
    pub hls: Hls,
    /// Stream registry, GOP cache and player queue limits.
    pub hub: Hub,
}

/// `[hls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hls {
    /// Segment every live stream for HLS.
    pub enabled: bool,
    /// Segments are cut at the first keyframe after this long, in milliseconds.
    pub target_duration_ms: u64,
    /// Segments listed in the live playlist.
    pub window: usize,
    /// Bytes of segments kept per stream, oldest dropped first.
    pub max_stream_bytes: usize,
    /// How long the playlist of a stream whose publisher stopped is kept (and a restart under
    /// the same name continues it), in milliseconds.
    pub linger_ms: u64,
    /// Bytes of segments kept for all streams together, live and lingering; lingering
    /// streams are forgotten first, oldest first, then a stream trims its oldest segments.
    pub max_total_bytes: usize,
    /// Also write segments and playlists under this directory.
    pub dir: Option<PathBuf>,
}

impl Default for Hls {
    fn default() -> Self {
        Self {
            enabled: true,
            target_duration_ms: 2_000,
            window: 5,
            max_stream_bytes: 128 << 20,
            linger_ms: 60_000,
            max_total_bytes: 1 << 30,
            dir: None,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct General {
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Listen address.
    pub bind: IpAddr,
    /// Log filter.
    pub log: String,
    /// Most lines about misbehaving peers (errors, refusals, scans) logged per second per
    /// worker; the rest are counted and summarised, so hostile clients cannot flood the log.
    pub error_logs_per_second: u32,
    /// Most connections open at once, all protocols together; more are closed at accept.
    pub max_connections: usize,
    /// Most connections open at once from one IP address; 0 for no per-address limit.
    pub max_connections_per_ip: usize,
    /// A connection whose queued output makes no progress for this long (its peer stopped
    /// reading) is closed, in milliseconds; also the most a closing connection lingers.
    pub send_timeout_ms: u64,
    /// A connection with more than this many bytes queued for its peer is not read until
    /// it drains, so no client can make the server queue replies without bound; a player
    /// takes no more media from its queue past this (or 512 KiB, whichever is less).
    pub max_output_backlog_bytes: usize,
    /// TCP keepalive probes on accepted connections after this many idle seconds; 0 turns
    /// them off.
    pub tcp_keepalive_secs: u64,
}

/// `[rtmp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rtmp {
    /// Port; 0 disables RTMP.
    pub port: u16,
    /// Chunk size the server announces and sends with.
    pub chunk_size: u32,
    /// Largest message a peer may declare, in bytes.
    pub max_message_bytes: u32,
    /// Close a connection that is not publishing or playing this long after it connected
    /// (or stopped publishing or playing), in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Close a publisher that sends no media for this long, in milliseconds (pings and
    /// other control messages do not count).
    pub publish_idle_timeout_ms: u64,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Port; 0 disables HTTP.
    pub port: u16,
    /// Close a connection that has not sent a whole request head this long after it
    /// connected (slow or silent clients), in milliseconds.
    pub request_timeout_ms: u64,
}

/// `[rtsp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rtsp {
    /// Port; 0 disables RTSP.
    pub port: u16,
    /// Inclusive UDP port range for RTP over UDP: each worker binds the first free even/odd
    /// port pair in it (RTP on the even port, RTCP on the next). `[0, 0]` serves RTSP over TCP
    /// only.
    pub rtp_port_range: [u16; 2],
    /// Close a session with no request for this long (a publisher: no media), in
    /// milliseconds; announced to clients in the `Session` header.
    pub session_timeout_ms: u64,
}

impl Default for Rtsp {
    fn default() -> Self {
        Self {
            port: 8554,
            rtp_port_range: [30_000, 30_999],
            session_timeout_ms: 60_000,
        }
    }
}

/// Parses `first-last` for `--rtp-port-range`.
fn parse_port_range(text: &str) -> Result<[u16; 2], String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not first-last"))?;
    let port = |p: &str| p.trim().parse::<u16>().map_err(|e| format!("{p:?}: {e}"));
    Ok([port(first)?, port(last)?])
}

/// `[hub]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hub {
    /// Play-before-publish wait, in milliseconds.
    pub play_wait_ms: u64,
    /// Frames the GOP cache may hold.
    pub gop_max_frames: usize,
    /// Bytes the GOP cache may hold.
    pub gop_max_bytes: usize,
    /// Items a player's queue may hold before it skips to the next keyframe.
    pub reader_max_items: usize,
    /// Bytes a player's queue may hold before it skips to the next keyframe.
    pub reader_max_bytes: usize,
    /// Skips in a row after which a player that does not catch up is disconnected.
    pub reader_max_overflows: u32,
}

impl Default for General {
    fn default() -> Self {
        Self {
            workers: 0,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            log: "info".into(),
            error_logs_per_second: 20,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            send_timeout_ms: 15_000,
            max_output_backlog_bytes: 1 << 20,
            tcp_keepalive_secs: 60,
        }
    }
}

impl Default for Rtmp {
    fn default() -> Self {
        Self {
            port: 1935,
            chunk_size: 60_000,
            max_message_bytes: 8 << 20,
            handshake_timeout_ms: 15_000,
            publish_idle_timeout_ms: 20_000,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self {
            port: 8080,
            request_timeout_ms: 15_000,
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        let core = HubConfig::default();
        Self {
            play_wait_ms: core.play_wait_ms,
            gop_max_frames: core.gop.max_frames,
            gop_max_bytes: core.gop.max_bytes,
            reader_max_items: core.reader.max_items,
            reader_max_bytes: core.reader.max_bytes,
            reader_max_overflows: core.reader.max_overflows,
        }
    }
}

impl ServerConfig {
    /// Defaults, then the file named by `--config`, then the flags.
    pub fn load(cli: &Cli) -> Result<Self, String> {
        let mut config = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
                toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?
            }
            None => ServerConfig::default(),
        };
        if let Some(workers) = cli.workers {
            config.server.workers = workers;
        }
        if let Some(bind) = cli.bind {
            config.server.bind = bind;
        }
        if let Some(port) = cli.rtmp_port {
            config.rtmp.port = port;
        }
        if let Some(port) = cli.http_port {
            config.http.port = port;
        }
        if let Some(port) = cli.rtsp_port {
            config.rtsp.port = port;
        }
        if let Some(range) = cli.rtp_port_range {
            config.rtsp.rtp_port_range = range;
        }
        if let Some(dir) = &cli.hls_dir {
            config.hls.dir = Some(dir.clone());
        }
        if let Some(wait) = cli.play_wait_ms {
            config.hub.play_wait_ms = wait;
        }
        if let Some(log) = &cli.log {
            config.server.log = log.clone();
        }
        if config.server.workers == 0 {
            config.server.workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against the range the server can honour, so a typo is a clear
    /// error at start rather than a panic or a server that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        /// The longest timeout or wait accepted: a day.
        const DAY_MS: u64 = 24 * 3600 * 1000;
        /// The smallest byte budget that still holds a keyframe of a small stream.
        const MIN_BUDGET: u64 = 64 * 1024;
        let usize_ = |value: usize| value as u64;
        let checks: [(&str, u64, u64, u64); 25] = [
            ("server.workers", usize_(self.server.workers), 1, 1024),
            (
                "server.error_logs_per_second",
                u64::from(self.server.error_logs_per_second),
                0,
                100_000,
            ),
            (
                "server.max_connections",
                usize_(self.server.max_connections),
                1,
                10_000_000,
            ),
            (
                "server.max_connections_per_ip",
                usize_(self.server.max_connections_per_ip),
                0,
                10_000_000,
            ),
            (
                "server.send_timeout_ms",
                self.server.send_timeout_ms,
                100,
                DAY_MS,
            ),
            (
                "server.max_output_backlog_bytes",
                usize_(self.server.max_output_backlog_bytes),
                MIN_BUDGET,
                1 << 30,
            ),
            (
                "server.tcp_keepalive_secs",
                self.server.tcp_keepalive_secs,
                0,
                24 * 3600,
            ),
            (
                "rtmp.chunk_size",
                u64::from(self.rtmp.chunk_size),
                128,
                0xFF_FFFF,
            ),
            (
                "rtmp.max_message_bytes",
                u64::from(self.rtmp.max_message_bytes),
                1024,
                64 << 20,
            ),
            (
                "rtmp.handshake_timeout_ms",
                self.rtmp.handshake_timeout_ms,
                100,
                DAY_MS,
            ),
            (
                "rtmp.publish_idle_timeout_ms",
                self.rtmp.publish_idle_timeout_ms,
                100,
                DAY_MS,
            ),
            (
                "http.request_timeout_ms",
                self.http.request_timeout_ms,
                100,
                DAY_MS,
            ),
            (
                "rtsp.session_timeout_ms",
                self.rtsp.session_timeout_ms,
                1_000,
                DAY_MS,
            ),
            (
                "hls.target_duration_ms",
                self.hls.target_duration_ms,
                100,
                600_000,
            ),
            ("hls.window", usize_(self.hls.window), 1, 1_000),
            (
                "hls.max_stream_bytes",
                usize_(self.hls.max_stream_bytes),
                MIN_BUDGET,
                1 << 40,
            ),
            (
                "hls.max_total_bytes",
                usize_(self.hls.max_total_bytes),
                MIN_BUDGET,
                1 << 40,
            ),
            ("hls.linger_ms", self.hls.linger_ms, 0, DAY_MS),
            ("hub.play_wait_ms", self.hub.play_wait_ms, 0, DAY_MS),
            (
                "hub.gop_max_frames",
                usize_(self.hub.gop_max_frames),
                1,
                1 << 20,
            ),
            (
                "hub.gop_max_bytes",
                usize_(self.hub.gop_max_bytes),
                MIN_BUDGET,
                1 << 32,
            ),
            (
                "hub.reader_max_items",
                usize_(self.hub.reader_max_items),
                1,
                1 << 20,
            ),
            (
                "hub.reader_max_bytes",
                usize_(self.hub.reader_max_bytes),
                MIN_BUDGET,
                1 << 32,
            ),
            (
                "hub.reader_max_overflows",
                u64::from(self.hub.reader_max_overflows),
                1,
                1_000,
            ),
            (
                "rtsp.rtp_port_range[0]",
                u64::from(self.rtsp.rtp_port_range[0]),
                0,
                u64::from(self.rtsp.rtp_port_range[1]),
            ),
        ];
        for (name, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(format!("{name} = {value} is outside {min}..={max}"));
            }
        }
        Ok(())
    }

    /// The core's HLS catalog settings from `[hls]`.
    pub fn hls_catalog_config(&self) -> CatalogConfig {
        let mut catalog = CatalogConfig::default();
        catalog.segmenter.target_duration_ms = self.hls.target_duration_ms;
        catalog.segmenter.window = self.hls.window;
        catalog.segmenter.max_stream_bytes = self.hls.max_stream_bytes;
        catalog.linger_ms = self.hls.linger_ms;
        catalog.max_total_bytes = self.hls.max_total_bytes;
        catalog
    }

    /// The core's per-connection defences from this configuration.
    pub fn guard_config(&self) -> GuardConfig {
        let defaults = GuardConfig::default();
        GuardConfig {
            send_timeout_ms: self.server.send_timeout_ms,
            max_output_backlog: self.server.max_output_backlog_bytes,
            // A player takes media from its queue up to the same bound (plus the item that
            // crosses it), so the backlog bounds what any connection queues.
            player_high_water: defaults
                .player_high_water
                .min(self.server.max_output_backlog_bytes),
            ..defaults
        }
    }

    /// The core's connection limits from this configuration.
    pub fn admission_config(&self) -> AdmissionConfig {
        AdmissionConfig {
            max_connections: self.server.max_connections,
            max_connections_per_ip: self.server.max_connections_per_ip,
        }
    }

    /// The inclusive UDP port range for RTP over UDP, if RTSP serves UDP.
    pub fn rtp_ports(&self) -> Option<(u16, u16)> {
        let [first, last] = self.rtsp.rtp_port_range;
        (self.rtsp.port != 0 && last != 0).then_some((first, last))
    }

    /// The core's hub limits from this configuration.
    pub fn hub_config(&self) -> HubConfig {
        let mut hub = HubConfig::default();
        hub.play_wait_ms = self.hub.play_wait_ms;
        hub.gop.max_frames = self.hub.gop_max_frames;
        hub.gop.max_bytes = self.hub.gop_max_bytes;
        hub.reader.max_items = self.hub.reader_max_items;
        hub.reader.max_bytes = self.hub.reader_max_bytes;
        hub.reader.max_overflows = self.hub.reader_max_overflows;
        hub
    }

    /// The RTMP listen address, if RTMP is enabled.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        (self.rtmp.port != 0).then(|| SocketAddr::new(self.server.bind, self.rtmp.port))
    }

    /// The RTSP listen address, if RTSP is enabled.
    pub fn rtsp_addr(&self) -> Option<SocketAddr> {
        (self.rtsp.port != 0).then(|| SocketAddr::new(self.server.bind, self.rtsp.port))
    }

    /// The HTTP listen address, if HTTP is enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        (self.http.port != 0).then(|| SocketAddr::new(self.server.bind, self.http.port))
    }

    /// The lines printed at start-up: where to publish and where to play.
    pub fn url_banner(&self) -> Vec<String> {
        let host = match self.server.bind {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            ip => ip.to_string(),
        };
        let mut lines = Vec::new();
        if self.rtmp.port != 0 {
            lines.push(format!(
                "publish  rtmp://{host}:{}/{{app}}/{{stream}}",
                self.rtmp.port
            ));
            lines.push(format!(
                "play     rtmp://{host}:{}/{{app}}/{{stream}}",
                self.rtmp.port
            ));
        }
        if self.rtsp.port != 0 {
            let transports = match self.rtp_ports() {
                Some(_) => "TCP interleaved or UDP",
                None => "TCP interleaved",
            };
            lines.push(format!(
                "publish  rtsp://{host}:{}/{{app}}/{{stream}}  ({transports})",
                self.rtsp.port
            ));
            lines.push(format!(
                "play     rtsp://{host}:{}/{{app}}/{{stream}}  ({transports})",
                self.rtsp.port
            ));
        }
        if self.http.port != 0 {
            lines.push(format!(
                "play     http://{host}:{}/{{app}}/{{stream}}.flv  (also .live.flv)",
                self.http.port
            ));
            lines.push(format!(
                "play     http://{host}:{}/{{app}}/{{stream}}.ts  (also .live.ts)",
                self.http.port
            ));
            if self.hls.enabled {
                lines.push(format!(
                    "play     http://{host}:{}/{{app}}/{{stream}}/index.m3u8  (HLS)",
                    self.http.port
                ));
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_flags_override_defaults_in_order() {
        let dir = std::env::temp_dir().join(format!("mediakit-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "[rtmp]\nport = 2000\n[http]\nport = 3000\n").unwrap();
        let cli = Cli::parse_from([
            "mediakit",
            "--config",
            path.to_str().unwrap(),
            "--http-port",
            "4000",
        ]);
        let config = ServerConfig::load(&cli).unwrap();
        assert_eq!(config.rtmp.port, 2000);
        assert_eq!(config.http.port, 4000);
        assert_eq!(config.hub.play_wait_ms, 10_000);
        assert!(config.server.workers >= 1);
        assert_eq!(config.rtp_ports(), Some((30_000, 30_999)));
    }

    #[test]
    fn rtp_port_range_flag() {
        let parse = |range: &str| {
            ServerConfig::load(&Cli::parse_from(["mediakit", "--rtp-port-range", range]))
        };
        assert_eq!(
            parse("40000-40009").unwrap().rtp_ports(),
            Some((40_000, 40_009))
        );
        assert_eq!(parse("0-0").unwrap().rtp_ports(), None);
        assert!(parse("9-8").unwrap_err().contains("rtp_port_range"));
        assert!(Cli::try_parse_from(["mediakit", "--rtp-port-range", "x"]).is_err());
    }

    #[test]
    fn out_of_range_values_are_clear_errors_not_panics() {
        let load = |toml: &str| -> Result<ServerConfig, String> {
            let config: ServerConfig = toml::from_str(toml).map_err(|e| e.to_string())?;
            config.validate().map(|()| config)
        };
        let error =
            load("[server]\nsend_timeout_ms = 9223372036854775807\nworkers = 1\n").unwrap_err();
        assert!(error.contains("server.send_timeout_ms"), "{error}");
        let error = load("[hub]\nplay_wait_ms = 99999999999\n[server]\nworkers = 1\n").unwrap_err();
        assert!(error.contains("hub.play_wait_ms"), "{error}");
        let error = load("[server]\nmax_connections = 0\nworkers = 1\n").unwrap_err();
        assert!(error.contains("server.max_connections"), "{error}");
        assert!(load("[server]\nworkers = 1\n").is_ok());
        // Every default is in range.
        let mut defaults = ServerConfig::default();
        defaults.server.workers = 1;
        assert_eq!(defaults.validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = std::env::temp_dir().join(format!("mediakit-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "[rtmp]\nprot = 2000\n").unwrap();
        let cli = Cli::parse_from(["mediakit", "--config", path.to_str().unwrap()]);
        assert!(ServerConfig::load(&cli).unwrap_err().contains("prot"));
    }
}
