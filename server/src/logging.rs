//! Logging setup. How many lines misbehaving peers may cause is the core's
//! [`LogGate`](mediakit_core::limit::LogGate), one per worker.

use tracing_subscriber::EnvFilter;

/// Installs the tracing subscriber; `RUST_LOG` wins over the configured filter.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    // Colour only for a person at a terminal; log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}
