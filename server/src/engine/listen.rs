//! A worker's life: bind its listeners and RTP ports, accept connections (within the
//! server's admission limits), run its inbox and HLS housekeeping, and stop.

use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use mediakit_core::datagram::UdpChannel;

use super::connection::{self, Protocol};
use super::deadline::Deadline;
use super::inbox::WorkerMsg;
use super::notify::unless;
use super::runtime::Runtime;
use super::shared::Shared;
use super::udp::UdpPorts;
use super::worker::Worker;

/// How long a stopping worker gives its connections to close before it drops them.
const STOP_GRACE_MS: u64 = 2_000;
/// How long an accept loop pauses after a failed accept (out of descriptors, say).
const ACCEPT_BACKOFF_MS: u64 = 50;

/// Reports whether a worker bound everything it serves.
pub type Ready = Box<dyn FnOnce(io::Result<()>)>;

/// The body of a worker: binds, reports through `ready`, then serves until the server stops.
pub async fn run<R: Runtime>(
    id: usize,
    shared: Arc<Shared>,
    inbox: async_channel::Receiver<WorkerMsg>,
    ready: Ready,
) {
    let worker = Rc::new(Worker::<R>::new(id, shared));
    let listeners = match bind::<R>(&worker) {
        Ok(listeners) => {
            ready(Ok(()));
            listeners
        }
        Err(error) => {
            ready(Err(error));
            return;
        }
    };
    for (listener, protocol) in listeners {
        R::spawn_local(accept_loop(Rc::clone(&worker), listener, protocol));
    }
    if let Some(udp) = worker.udp.get() {
        for channel in [UdpChannel::Rtp, UdpChannel::Rtcp] {
            R::spawn_local(Rc::clone(udp).receive_loop(channel, worker.stop_signal()));
        }
    }
    let inbox_worker = Rc::clone(&worker);
    R::spawn_local(async move {
        while let Ok(message) = inbox.recv().await {
            let stop = matches!(message, WorkerMsg::Stop);
            inbox_worker.handle_message(message);
            if stop {
                break;
            }
        }
    });
    if worker.shared.config.hls.enabled {
        R::spawn_local(hls_housekeeping(Rc::clone(&worker)));
    }
    worker.stopped.notified().await;
    let deadline = R::now() + STOP_GRACE_MS;
    while worker.connection_count() > 0 && R::now() < deadline {
        R::sleep_until(R::now() + 10).await;
    }
}

/// Binds this worker's listeners and RTP/RTCP pair.
fn bind<R: Runtime>(worker: &Rc<Worker<R>>) -> io::Result<Vec<(R::Listener, Protocol)>> {
    let config = &worker.shared.config;
    let mut listeners = Vec::new();
    for (addr, protocol) in [
        (config.rtmp_addr(), Protocol::Rtmp),
        (config.http_addr(), Protocol::Http),
        (config.rtsp_addr(), Protocol::Rtsp),
    ] {
        let Some(addr) = addr else { continue };
        let listener = R::bind_listener(addr)
            .map_err(|error| io::Error::new(error.kind(), format!("bind {addr}: {error}")))?;
        listeners.push((listener, protocol));
    }
    if let Some(range) = config.rtp_ports() {
        let ports = UdpPorts::<R>::bind(config.server.bind, range, &worker.shared, worker.id)?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("no free UDP port pair in {}-{} for RTP", range.0, range.1),
                )
            })?;
        let _ = worker.udp.set(ports);
    }
    Ok(listeners)
}

async fn accept_loop<R: Runtime>(worker: Rc<Worker<R>>, listener: R::Listener, protocol: Protocol) {
    let stop = worker.stop_signal();
    while let Some(accepted) = unless(&stop, R::accept(&listener)).await {
        match accepted {
            Ok((stream, peer)) => match worker.shared.admit(peer.ip()) {
                Ok(()) => R::spawn_local(connection::serve(
                    Rc::clone(&worker),
                    stream,
                    peer,
                    protocol,
                )),
                Err(error) => {
                    if let Some(stats) = worker.stats() {
                        stats.refused();
                    }
                    if worker.log_allowed() {
                        tracing::warn!(%peer, proto = protocol.name(), "connection refused: {error}");
                    }
                }
            },
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                if worker.log_allowed() {
                    tracing::warn!(worker = worker.id, "accept failed: {error}");
                }
                R::sleep_until(R::now() + ACCEPT_BACKOFF_MS).await;
            }
        }
    }
}

/// Ends HLS lingers when the catalog says they are due. Woken early when a publisher on this
/// worker stops (a new linger may end sooner than the one it waits for).
async fn hls_housekeeping<R: Runtime>(worker: Rc<Worker<R>>) {
    let hls = &worker.shared.hls;
    let mut deadline = Deadline::<R>::default();
    while !worker.is_stopping() {
        deadline.set(hls.poll_timeout());
        poll_fn(|cx| {
            if worker.hls_housekeeping.poll_notified(cx).is_ready() {
                return Poll::Ready(());
            }
            deadline.poll(cx)
        })
        .await;
        hls.handle_timeout(R::now());
    }
}
