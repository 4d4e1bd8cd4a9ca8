//! What both mediakit runtime adapters need that is not protocol logic and not tied to one
//! async runtime: configuration (TOML + flags), socket setup and vectored sends, logging.
pub mod config;
pub mod logging;
pub mod socket;

pub use config::{Cli, ServerConfig};
