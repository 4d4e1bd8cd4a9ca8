//! The server engine both runtimes run: workers, connections, cross-worker fan-out, RTP over
//! UDP and HLS output, written once against the small [`Runtime`] trait.
//!
//! One OS thread per worker, each with a single-threaded executor; every worker binds its own
//! `SO_REUSEPORT` listener for every protocol, so the kernel spreads connections and a session
//! stays on the worker that accepted it for its whole life. Sessions on one worker share that
//! worker's stream state through `Rc<RefCell<..>>` with no lock; workers talk through their
//! inboxes. The protocol logic and every decision (waits, deadlines, budgets, admission) are
//! in `mediakit-core`, with the runtime's clock passed in; the engine moves bytes and
//! messages.
//!
//! The modules, from the bottom up: [`runtime`] (the trait), `notify` (a wake-up flag),
//! `deadline` (a task's one resettable timer),
//! `stats` (per-worker gauges), `inbox` (what workers send each other), `hls` (the HLS
//! catalog and its directory writer), `shared` (what every worker reaches), `fanout` (one
//! stream on one worker), `udp` (a worker's RTP/RTCP sockets), `worker` (one worker's state),
//! `connection` (one connection's loop), `listen` (a worker's life: bind, accept, stop).

mod connection;
mod deadline;
mod fanout;
mod hls;
mod inbox;
mod listen;
pub mod notify;
pub mod runtime;
mod shared;
mod stats;
mod udp;
mod worker;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

pub use runtime::{Connection, DatagramSocket, Runtime, Timer};
pub use stats::Stats;

use crate::ServerConfig;
use shared::Shared;

/// A running server: its worker threads and the way to stop them.
#[derive(Debug)]
pub struct Server {
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Server {
    /// Starts one worker thread per configured worker on runtime `R`, and returns once every
    /// worker has bound its listeners and RTP ports, or with the first error (a port in use)
    /// after stopping the others.
    pub fn start<R: Runtime>(config: ServerConfig) -> io::Result<Server> {
        let workers = config.server.workers.max(1);
        let (senders, inboxes): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| async_channel::unbounded()).unzip();
        let shared = Arc::new(Shared::new(config, senders));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut threads = Vec::with_capacity(workers);
        for (id, inbox) in inboxes.into_iter().enumerate() {
            let worker_shared = Arc::clone(&shared);
            let ready_tx = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("mediakit-worker-{id}"))
                .spawn(move || {
                    let failed_tx = ready_tx.clone();
                    let ready: listen::Ready = Box::new(move |result| {
                        let _ = ready_tx.send(result);
                    });
                    let main = listen::run::<R>(id, worker_shared, inbox, ready);
                    if let Err(error) = R::run_worker(Box::pin(main)) {
                        let _ = failed_tx.send(Err(error));
                    }
                });
            match thread {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    let server = Server { threads, shared };
                    server.shutdown();
                    return Err(error);
                }
            }
        }
        drop(ready_tx);
        let server = Server { threads, shared };
        for _ in 0..workers {
            let result = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("a worker ended before it was ready")));
            if let Err(error) = result {
                server.shutdown();
                return Err(error);
            }
        }
        Ok(server)
    }

    /// The server's gauges and counters now.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Stops accepting, closes every session and waits for the workers to finish.
    pub fn shutdown(self) {
        self.shared.stop_all();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// The engine's workers as tasks on the current thread's executor, for a runtime that runs
/// every worker on one thread (the deterministic simulation in `mediakit-sim`). Same workers,
/// connections and sessions as [`Server`]; only the threads are missing.
#[derive(Debug)]
pub struct LocalServer {
    shared: Arc<Shared>,
    ready: Rc<RefCell<Vec<io::Result<()>>>>,
    workers: usize,
}

impl LocalServer {
    /// Spawns every configured worker with [`Runtime::spawn_local`]. They bind once the
    /// executor runs them; [`LocalServer::ready`] says when they have.
    pub fn spawn<R: Runtime>(config: ServerConfig) -> LocalServer {
        let workers = config.server.workers.max(1);
        let (senders, inboxes): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| async_channel::unbounded()).unzip();
        let shared = Arc::new(Shared::new(config, senders));
        let ready = Rc::new(RefCell::new(Vec::new()));
        for (id, inbox) in inboxes.into_iter().enumerate() {
            let results = Rc::clone(&ready);
            let report: listen::Ready = Box::new(move |result| results.borrow_mut().push(result));
            R::spawn_local(listen::run::<R>(id, Arc::clone(&shared), inbox, report));
        }
        LocalServer {
            shared,
            ready,
            workers,
        }
    }

    /// `None` until every worker has bound; then `Ok`, or the first worker's error.
    pub fn ready(&self) -> Option<io::Result<()>> {
        let mut results = self.ready.borrow_mut();
        if let Some(index) = results.iter().position(Result::is_err) {
            return Some(results.swap_remove(index));
        }
        (results.len() >= self.workers).then_some(Ok(()))
    }

    /// The server's gauges and counters now.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Asks every worker to stop; they end as the executor runs them.
    pub fn stop(&self) {
        self.shared.stop_all();
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

/// What a server binary's `main` does, whatever its runtime: flags and config (validated),
/// logging, start, the URL banner, then run until a signal and shut down cleanly.
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
