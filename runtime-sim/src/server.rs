//! The real server engine on a simulated world: its workers as tasks of the world's
//! executor ([`LocalServer`] with the [`Sim`] runtime), started and waited for.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mediakit_server::engine::LocalServer;
pub use mediakit_server::engine::Stats;
pub use mediakit_server::ServerConfig;

use crate::runtime::Sim;
use crate::world::World;

/// How long [`SimServer::start`] waits (in virtual time) for the workers to bind.
const START_LIMIT_MS: u64 = 1_000;

/// A configuration for simulated servers: two workers on 127.0.0.1, RTMP on 1935, HTTP on
/// 8080, RTSP on 8554 with RTP/RTCP on 30000-30099, the rest the defaults.
pub fn server_config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.server.workers = 2;
    config.server.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.rtmp.port = 1935;
    config.http.port = 8080;
    config.rtsp.port = 8554;
    config.rtsp.rtp_port_range = [30_000, 30_099];
    config
}

/// The engine running on the current world.
#[derive(Debug)]
pub struct SimServer {
    server: LocalServer,
    config: ServerConfig,
}

impl SimServer {
    /// Spawns the engine's workers on `world` and runs it until every worker has bound its
    /// listeners and RTP ports; the error is the first worker's (an address in use).
    pub fn start(world: &World, config: ServerConfig) -> io::Result<SimServer> {
        let server = LocalServer::spawn::<Sim>(config.clone());
        let mut ready = None;
        world.run_until(
            || {
                ready = server.ready();
                ready.is_some()
            },
            START_LIMIT_MS,
        );
        match ready {
            Some(Ok(())) => Ok(SimServer { server, config }),
            Some(Err(error)) => Err(error),
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "simulated workers did not bind",
            )),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The server's gauges and counters now.
    pub fn stats(&self) -> Stats {
        self.server.stats()
    }

    /// Asks every worker to stop; they end as the world runs.
    pub fn stop(&self) {
        self.server.stop();
    }

    /// Where RTMP clients connect.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        self.config.rtmp_addr()
    }

    /// Where HTTP clients connect.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.config.http_addr()
    }

    /// Where RTSP clients connect.
    pub fn rtsp_addr(&self) -> Option<SocketAddr> {
        self.config.rtsp_addr()
    }
}
