//! `mediakit-server`: the server engine both mediakit runtime adapters run, and the std-only
//! pieces around it.
//!
//! - [`engine`]: workers (one single-threaded executor per core, each with its own
//!   `SO_REUSEPORT` listeners), connections driving the core's RTMP, RTSP and HTTP sessions,
//!   cross-worker fan-out, RTP/RTCP over UDP, HLS output, all written once against the small
//!   [`engine::Runtime`] trait. It moves bytes and messages; every decision (waits, deadlines,
//!   budgets, who may connect) is a state transition in `mediakit-core` with time passed in.
//! - [`config`]: embedded defaults, a TOML file, flags, and their validation.
//! - [`socket`]: socket setup and vectored sends for the real runtimes.
//! - [`clock`] and [`seed`]: the one real-time clock and the session seeds the real runtimes
//!   hand the engine.
//! - [`logging`]: the log subscriber.
pub mod clock;
pub mod config;
pub mod engine;
pub mod logging;
pub mod seed;
pub mod socket;

pub use config::{Cli, ServerConfig};
