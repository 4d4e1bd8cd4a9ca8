//! What both mediakit runtime adapters share that is not protocol logic and not tied to one
//! async runtime: configuration (TOML + flags), socket setup and vectored sends, logging, and
//! the server engine (workers, connections, fan-out) written against a small runtime trait.
pub mod config;
pub mod engine;
pub mod logging;
pub mod socket;

pub use config::{Cli, ServerConfig};
