//! The tokio adapter: sockets, timers, threads and channels around `mediakit-core`.
//!
//! One OS thread per worker, each running a current-thread runtime; every worker binds its own
//! `SO_REUSEPORT` listener for every protocol, so the kernel spreads connections and a session
//! stays on the worker that accepted it for its whole life. Sessions on one worker share that
//! worker's stream state through `Rc<RefCell<..>>` with no lock; workers talk through channels.

mod connection;
mod fanout;
mod shared;
mod worker;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use mediakit_support::ServerConfig;
use tokio::sync::{mpsc, watch};

use crate::shared::Shared;

/// A running server: its worker threads and the switch that stops them.
#[derive(Debug)]
pub struct Server {
    threads: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Server {
    /// Binds every listener on every worker and starts the workers.
    ///
    /// Binding happens before any thread starts, so a port in use fails here, not in a thread.
    pub fn start(config: ServerConfig) -> io::Result<Server> {
        let workers = config.server.workers.max(1);
        let mut listeners = Vec::with_capacity(workers);
        for _ in 0..workers {
            listeners.push(worker::Listeners::bind(&config)?);
        }
        let (senders, inboxes): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| mpsc::channel(fanout::INBOX_CAPACITY))
            .unzip();
        let shared = Arc::new(Shared::new(config, senders));
        let (stop, stopped) = watch::channel(false);
        let mut threads = Vec::with_capacity(workers);
        for (id, (listeners, inbox)) in listeners.into_iter().zip(inboxes).enumerate() {
            let shared = Arc::clone(&shared);
            let stopped = stopped.clone();
            let thread = std::thread::Builder::new()
                .name(format!("mediakit-worker-{id}"))
                .spawn(move || worker::run(id, shared, listeners, inbox, stopped))?;
            threads.push(thread);
        }
        Ok(Server { threads, stop })
    }

    /// Stops accepting, closes every session and waits for the workers to finish.
    pub fn shutdown(self) {
        let _ = self.stop.send(true);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Blocks until Ctrl-C (SIGINT) or SIGTERM.
pub fn wait_for_shutdown_signal() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot wait for signals: {error}");
            return;
        }
    };
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut terminate) = signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    });
}
