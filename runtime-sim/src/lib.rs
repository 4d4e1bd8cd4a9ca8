//! # mediakit-sim
//!
//! A deterministic simulation of the mediakit server: the real engine (`mediakit-server`)
//! and its real protocol sessions, run single-threaded on virtual time with in-memory
//! sockets, reproducibly from one `u64` seed. A scenario of minutes (a publisher, a hundred
//! players, stalled clients, floods) runs in a unit test in milliseconds, and the same seed
//! gives the same run every time.
//!
//! The pieces, from the bottom up:
//! - [`rng`]: the one source of randomness (SplitMix64), forked per purpose from the seed;
//! - `executor`: tasks polled in wake order, one thread, no `unsafe`;
//! - [`timer`]: deadlines on the virtual clock and the resettable [`Sleep`];
//! - [`world`]: the [`World`] guard that installs clock, executor and network on the thread
//!   and runs them: when nothing is ready, the clock jumps to the next timer;
//! - [`net`]: TCP connections as two bounded byte pipes (a reader that stops reading stalls
//!   its writer), `SO_REUSEPORT`-style listener groups, UDP with bounded queues and seeded
//!   loss;
//! - [`runtime`]: [`Sim`], the engine's `Runtime` on all of the above;
//! - [`server`]: the real engine's workers started on a world ([`SimServer`]);
//! - [`clients`]: RTMP publisher and players, an HTTP-FLV player, raw TCP and UDP clients
//!   and a hand-driven RTMP client, built on the core's own sessions, each recording what it
//!   saw.
//!
//! ## A scenario in a test
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//!
//! use mediakit_sim::clients::{play_http_flv, publish_rtmp, MediaSpec, PlayOptions, PublishOptions};
//! use mediakit_sim::{server_config, SimServer, World};
//!
//! let world = World::new(42);
//! let server = SimServer::start(&world, server_config()).unwrap();
//! let ip = |n| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n));
//! // The player asks first and waits for the stream (play-before-publish).
//! let player = play_http_flv(PlayOptions::new(ip(2), server.http_addr().unwrap(), "live", "cam"));
//! let publisher = publish_rtmp(PublishOptions {
//!     video_frames: 50,
//!     start_delay_ms: 300,
//!     ..PublishOptions::new(ip(1), server.rtmp_addr().unwrap(), "live", "cam")
//! });
//! // Two seconds of stream, in milliseconds of real time.
//! assert!(world.run_until(|| player.is_finished(), 10_000));
//! let delivered = player
//!     .log()
//!     .check_delivery(&publisher.log(), &MediaSpec::default())
//!     .unwrap();
//! assert_eq!(delivered.frames, publisher.log().sent().count());
//! ```
//!
//! The models are quinn's `Pair` test harness (two endpoints in memory on virtual time) and
//! turmoil/madsim (a whole network in one thread, reproducible from a seed).

#![forbid(unsafe_code)]

pub mod clients;
mod executor;
pub mod net;
pub mod rng;
pub mod runtime;
pub mod server;
#[cfg(test)]
mod test_waker;
pub mod timer;
pub mod world;

pub use net::tcp::{TcpListener, TcpStream};
pub use net::udp::UdpSocket;
pub use net::{NetConfig, NetStats, SocketOptions};
pub use rng::SimRng;
pub use runtime::Sim;
pub use server::{server_config, SimServer};
pub use timer::Sleep;
pub use world::{
    now, seed, sleep, sleep_until, spawn, try_now, yield_now, JoinHandle, SimConfig, World,
};

pub use mediakit_core::Millis;
