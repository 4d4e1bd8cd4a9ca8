//! How every client loop waits: for input (or, for a client that does not read, for its peer
//! to close), for room to write, and for a deadline, on one timer kept for the loop's life.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use mediakit_core::Millis;

use crate::timer::Sleep;
use crate::{sleep_until, TcpStream};

/// What woke a client's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woke {
    /// Input arrived (or the connection ended: a read says which).
    Readable,
    /// A client that does not read saw its peer close.
    PeerClosed,
    /// The connection has room for more.
    Writable,
    /// The deadline passed.
    Deadline,
}

/// One client loop's timer, moved to each new deadline rather than made anew.
#[derive(Default)]
pub(crate) struct Waiter {
    timer: Option<Sleep>,
}

impl Waiter {
    /// Waits on `stream`: for input if `read`, else for the peer to close; for room if
    /// `write`; and until `deadline`, if any.
    pub(crate) async fn wait(
        &mut self,
        stream: &TcpStream,
        read: bool,
        write: bool,
        deadline: Option<Millis>,
    ) -> Woke {
        if let Some(at) = deadline {
            match &mut self.timer {
                Some(timer) => timer.reset(at),
                None => self.timer = Some(sleep_until(at)),
            }
        }
        let timer = &mut self.timer;
        poll_fn(|cx| {
            if read && stream.poll_read_ready(cx).is_ready() {
                return Poll::Ready(Woke::Readable);
            }
            if !read && stream.poll_peer_closed(cx).is_ready() {
                return Poll::Ready(Woke::PeerClosed);
            }
            if write && stream.poll_write_ready(cx).is_ready() {
                return Poll::Ready(Woke::Writable);
            }
            if let (Some(_), Some(timer)) = (deadline, timer.as_mut()) {
                if Pin::new(timer).poll(cx).is_ready() {
                    return Poll::Ready(Woke::Deadline);
                }
            }
            Poll::Pending
        })
        .await
    }
}
