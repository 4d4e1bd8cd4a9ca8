//! `mediakit`: the live streaming server on tokio.

use std::process::ExitCode;

use clap::Parser;
use mediakit_support::{logging, Cli, ServerConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match ServerConfig::load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("mediakit: {error}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config.server.log);
    let server = match mediakit_tokio::Server::start(config.clone()) {
        Ok(server) => server,
        Err(error) => {
            tracing::error!("cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(workers = config.server.workers, "mediakit started");
    for line in config.url_banner() {
        tracing::info!("{line}");
    }
    mediakit_tokio::wait_for_shutdown_signal();
    tracing::info!("shutting down");
    server.shutdown();
    ExitCode::SUCCESS
}
