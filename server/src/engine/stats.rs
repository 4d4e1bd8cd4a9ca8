//! Per-worker gauges and counters, written only by their worker and read by anyone.
//!
//! Each worker owns one [`WorkerStats`]; since only that worker writes it, updates are a
//! relaxed load and store (no read-modify-write on the hot path), and a reader on another
//! thread sums the workers' values when asked ([`Stats::sum`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One worker's gauges and counters.
#[derive(Debug, Default)]
pub struct WorkerStats {
    connections: AtomicUsize,
    output_bytes: AtomicUsize,
    input_bytes: AtomicUsize,
    datagram_bytes: AtomicUsize,
    largest_connection_bytes: AtomicUsize,
    closed_send_stalled: AtomicU64,
    refused_connections: AtomicU64,
    datagrams_dropped: AtomicU64,
}

/// The bytes one connection holds in the engine: what it has queued for its peer (stream and
/// datagrams), input not parsed yet, and datagrams routed to it not yet read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Queued for the peer on the connection.
    pub output: usize,
    /// Received and not yet parsed.
    pub input: usize,
    /// Datagrams queued for or from the peer.
    pub datagrams: usize,
}

impl Footprint {
    /// All of it.
    pub fn total(&self) -> usize {
        self.output + self.input + self.datagrams
    }
}

fn add(gauge: &AtomicUsize, new: usize, old: usize) {
    let value = gauge.load(Ordering::Relaxed);
    gauge.store(value.wrapping_add(new).wrapping_sub(old), Ordering::Relaxed);
}

fn bump(counter: &AtomicU64, by: u64) {
    let value = counter.load(Ordering::Relaxed);
    counter.store(value.saturating_add(by), Ordering::Relaxed);
}

impl WorkerStats {
    /// A connection opened (`true`) or closed.
    pub fn connection(&self, opened: bool) {
        let (new, old) = if opened { (1, 0) } else { (0, 1) };
        add(&self.connections, new, old);
    }

    /// A connection's footprint changed from `old` to `new`.
    pub fn footprint(&self, old: Footprint, new: Footprint) {
        if old == new {
            return;
        }
        add(&self.output_bytes, new.output, old.output);
        add(&self.input_bytes, new.input, old.input);
        add(&self.datagram_bytes, new.datagrams, old.datagrams);
        if new.total() > self.largest_connection_bytes.load(Ordering::Relaxed) {
            self.largest_connection_bytes
                .store(new.total(), Ordering::Relaxed);
        }
    }

    /// A connection was closed because its peer stopped reading.
    pub fn send_stalled(&self) {
        bump(&self.closed_send_stalled, 1);
    }

    /// A connection was refused at accept (a connection limit).
    pub fn refused(&self) {
        bump(&self.refused_connections, 1);
    }

    /// Datagrams dropped: from no routed peer, or beyond a session's inbound bound.
    pub fn datagrams_dropped(&self, count: u64) {
        bump(&self.datagrams_dropped, count);
    }

    fn snapshot(&self) -> Stats {
        Stats {
            connections: self.connections.load(Ordering::Relaxed),
            output_bytes: self.output_bytes.load(Ordering::Relaxed),
            input_bytes: self.input_bytes.load(Ordering::Relaxed),
            datagram_bytes: self.datagram_bytes.load(Ordering::Relaxed),
            largest_connection_bytes: self.largest_connection_bytes.load(Ordering::Relaxed),
            closed_send_stalled: self.closed_send_stalled.load(Ordering::Relaxed),
            refused_connections: self.refused_connections.load(Ordering::Relaxed),
            datagrams_dropped: self.datagrams_dropped.load(Ordering::Relaxed),
            ..Stats::default()
        }
    }
}

/// The server's gauges and counters at one moment, summed over its workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open connections.
    pub connections: usize,
    /// Bytes queued for peers on their connections.
    pub output_bytes: usize,
    /// Bytes received and not yet parsed.
    pub input_bytes: usize,
    /// Bytes of datagrams queued for or from peers.
    pub datagram_bytes: usize,
    /// The largest footprint any one connection has had (the most of any worker).
    pub largest_connection_bytes: usize,
    /// Connections closed because their peer stopped reading.
    pub closed_send_stalled: u64,
    /// Connections refused at accept.
    pub refused_connections: u64,
    /// Datagrams dropped (unrouted or beyond a session's bound).
    pub datagrams_dropped: u64,
    /// Bytes of HLS segments kept, all streams (live and lingering) together.
    pub hls_bytes: usize,
    /// HLS streams kept (live and lingering).
    pub hls_streams: usize,
}

impl Stats {
    /// The sum over `workers` (the largest connection is the maximum, not a sum).
    pub fn sum<'a>(workers: impl IntoIterator<Item = &'a WorkerStats>) -> Stats {
        workers
            .into_iter()
            .map(WorkerStats::snapshot)
            .fold(Stats::default(), |total, worker| Stats {
                connections: total.connections + worker.connections,
                output_bytes: total.output_bytes + worker.output_bytes,
                input_bytes: total.input_bytes + worker.input_bytes,
                datagram_bytes: total.datagram_bytes + worker.datagram_bytes,
                largest_connection_bytes: total
                    .largest_connection_bytes
                    .max(worker.largest_connection_bytes),
                closed_send_stalled: total.closed_send_stalled + worker.closed_send_stalled,
                refused_connections: total.refused_connections + worker.refused_connections,
                datagrams_dropped: total.datagrams_dropped + worker.datagrams_dropped,
                ..total
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprints_add_up_and_the_largest_is_kept() {
        let worker = WorkerStats::default();
        worker.connection(true);
        worker.connection(true);
        let a = Footprint {
            output: 100,
            input: 10,
            datagrams: 0,
        };
        worker.footprint(Footprint::default(), a);
        worker.footprint(Footprint::default(), Footprint { output: 5, ..a });
        worker.footprint(a, Footprint::default());
        worker.connection(false);
        let other = WorkerStats::default();
        other.refused();
        let stats = Stats::sum([&worker, &other]);
        assert_eq!(stats.connections, 1);
        assert_eq!((stats.output_bytes, stats.input_bytes), (5, 10));
        assert_eq!(stats.largest_connection_bytes, 110);
        assert_eq!(stats.refused_connections, 1);
    }
}
