//! The server engine both runtimes run: workers, connections and cross-worker fan-out,
//! written once against the small [`Runtime`] trait.
//!
//! One OS thread per worker, each with a single-threaded executor; every worker binds its own
//! `SO_REUSEPORT` listener for every protocol, so the kernel spreads connections and a session
//! stays on the worker that accepted it for its whole life. Sessions on one worker share that
//! worker's stream state through `Rc<RefCell<..>>` with no lock; workers talk through their
//! inboxes. The protocol logic itself is in `mediakit-core`.

mod connection;
mod fanout;
mod hls;
pub mod notify;
pub mod runtime;
mod shared;
mod udp;
mod worker;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use runtime::{Connection, DatagramSocket, Runtime, Timer};

use crate::ServerConfig;
use shared::Shared;

/// A running server: its worker threads and the way to stop them.
#[derive(Debug)]
pub struct Server {
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds every listener on every worker, then starts the workers on runtime `R`.
    ///
    /// Binding happens before any thread starts, so a port in use fails here, not in a thread.
    pub fn start<R: Runtime>(config: ServerConfig) -> io::Result<Server> {
        let workers = config.server.workers.max(1);
        let mut listeners = Vec::with_capacity(workers);
        for _ in 0..workers {
            listeners.push(worker::Listeners::bind(&config)?);
        }
        let (senders, inboxes): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| async_channel::unbounded()).unzip();
        let shared = Arc::new(Shared::new(config, senders));
        let mut threads = Vec::with_capacity(workers);
        for (id, (listeners, inbox)) in listeners.into_iter().zip(inboxes).enumerate() {
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("mediakit-worker-{id}"))
                .spawn(move || worker::run::<R>(id, shared, listeners, inbox))?;
            threads.push(thread);
        }
        Ok(Server { threads, shared })
    }

    /// Stops accepting, closes every session and waits for the workers to finish.
    pub fn shutdown(self) {
        self.shared.stop_all();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Blocks the calling thread until SIGINT (Ctrl-C) or SIGTERM arrives.
pub fn wait_for_shutdown_signal() -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let _ = signals.forever().next();
    Ok(())
}

/// What a server binary's `main` does, whatever its runtime: flags and config, logging, start,
/// the URL banner, then run until a signal and shut down cleanly.
pub fn run_main<R: Runtime>(binary: &'static str) -> std::process::ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = crate::Cli::command().name(binary).get_matches();
    let cli = match crate::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let config = match ServerConfig::load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{binary}: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    crate::logging::init(&config.server.log);
    let server = match Server::start::<R>(config.clone()) {
        Ok(server) => server,
        Err(error) => {
            tracing::error!("cannot start: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(workers = config.server.workers, "{binary} started");
    for line in config.url_banner() {
        tracing::info!("{line}");
    }
    if let Err(error) = wait_for_shutdown_signal() {
        tracing::error!("cannot wait for signals: {error}");
    }
    tracing::info!("shutting down");
    server.shutdown();
    std::process::ExitCode::SUCCESS
}
