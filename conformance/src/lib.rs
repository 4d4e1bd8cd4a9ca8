//! Helpers for conformance tests: locating the server binaries and ffmpeg, starting a server
//! on free loopback ports, and reading what ffprobe says about a stream.
//!
//! Live tests run against every server binary named in `MEDIAKIT_SERVER_BINS` (paths separated
//! by `:`), by default the release `mediakit` (tokio) and `mediakit-async-std` binaries of
//! this workspace, which the test command builds first.

pub mod check;
pub mod ffmpeg9;
pub mod http;
pub mod media;
pub mod probe;
pub mod server;

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Where the capture files live.
pub fn captures_dir() -> PathBuf {
    workspace_root().join("conformance").join("captures")
}
