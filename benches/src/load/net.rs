//! Blocking-socket plumbing shared by the publisher and the players.

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mediakit_core::{Millis, OutQueue};

/// How long a blocking read or write waits before the thread looks at the stop flag again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Segments handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// What every load thread watches: the stop flag and the hard deadline of the run.
#[derive(Debug)]
pub struct Control {
    stop: AtomicBool,
    deadline: Instant,
    epoch: Instant,
}

impl Control {
    /// A control whose threads give up at `deadline` at the latest.
    pub fn new(deadline: Instant) -> Self {
        Self {
            stop: AtomicBool::new(false),
            deadline,
            epoch: Instant::now(),
        }
    }

    /// Tells every thread to finish.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// True once the threads should finish: stopped, or past the deadline.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    /// The time the sans-IO sessions are given: milliseconds since this control was made.
    pub fn now(&self) -> Millis {
        Millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

/// Connects to `addr` with blocking I/O whose reads and writes time out after
/// [`POLL_INTERVAL`], so a thread blocked on the socket still notices the stop flag.
pub fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|error| format!("connect {addr}: {error}"))?;
    stream
        .set_read_timeout(Some(POLL_INTERVAL))
        .and_then(|()| stream.set_write_timeout(Some(POLL_INTERVAL)))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|error| format!("socket options: {error}"))?;
    Ok(stream)
}

/// True for the errors a timed-out or interrupted blocking call returns.
pub fn is_retry(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Writes everything queued in `out` with vectored writes; returns the bytes written. Gives up
/// when `control` says stop while the socket does not take more.
pub fn flush(out: &mut OutQueue, stream: &mut TcpStream, control: &Control) -> Result<u64, String> {
    let mut total = 0u64;
    while !out.is_empty() {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, segment) in slices.iter_mut().zip(out.segments()) {
                *slot = IoSlice::new(segment);
                count += 1;
            }
            stream.write_vectored(&slices[..count])
        };
        match written {
            Ok(0) => return Err("the server stopped taking data".into()),
            Ok(n) => {
                out.advance(n);
                total += n as u64;
            }
            Err(error) if is_retry(error.kind()) => {
                if control.should_stop() {
                    return Err("stopped while the server was not reading".into());
                }
            }
            Err(error) => return Err(format!("write: {error}")),
        }
    }
    Ok(total)
}

/// One read: `Ok(Some(n))` with `n > 0` bytes, `Ok(None)` when the read timed out, an error
/// when the connection ended or failed.
pub fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> Result<Option<usize>, String> {
    match stream.read(buf) {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(n) => Ok(Some(n)),
        Err(error) if is_retry(error.kind()) => Ok(None),
        Err(error) => Err(format!("read: {error}")),
    }
}
