//! Server configuration: embedded defaults, overridden by a TOML file, overridden by flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
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
    /// Most connections closed with an error that are logged per second per worker; the rest
    /// are counted and summarised, so hostile clients cannot flood the log.
    pub error_logs_per_second: u32,
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
    /// Close a session that sends nothing for this long during setup, in milliseconds.
    pub handshake_timeout_ms: u64,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Port; 0 disables HTTP.
    pub port: u16,
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
}

impl Default for Rtsp {
    fn default() -> Self {
        Self {
            port: 8554,
            rtp_port_range: [30_000, 30_999],
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
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self { port: 8080 }
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
        if !(128..=0xFF_FFFF).contains(&config.rtmp.chunk_size) {
            return Err(format!(
                "rtmp.chunk_size {} is outside 128..=16777215",
                config.rtmp.chunk_size
            ));
        }
        let [first, last] = config.rtsp.rtp_port_range;
        if first > last {
            return Err(format!("rtsp.rtp_port_range {first}-{last} is empty"));
        }
        Ok(config)
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
        assert!(parse("9-8").unwrap_err().contains("empty"));
        assert!(Cli::try_parse_from(["mediakit", "--rtp-port-range", "x"]).is_err());
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
