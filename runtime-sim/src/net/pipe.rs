//! One direction of a simulated TCP connection: the bytes in flight from one end to the
//! other, bounded by a capacity that stands for the sender's send buffer plus the receiver's
//! receive buffer together.
//!
//! A writer finds the pipe full (`WouldBlock`) once the reader has left `capacity` bytes
//! unread, and is woken when the reader makes room; this is how a client that stops reading
//! stalls the server's sends, exactly as a full socket buffer does.

use std::io;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

/// Bytes from a writer to a reader, with the state of the connection as the reader sees it.
#[derive(Debug)]
pub(crate) struct Pipe {
    data: BytesMut,
    capacity: usize,
    /// The writer shut down: the reader sees the end of the stream after the data.
    fin: bool,
    /// The connection was reset: both ends' operations fail, unread data is lost.
    reset: bool,
    /// The reading end is closed: writes fail.
    reader_gone: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

fn store(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(stored) if stored.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

fn wake(slot: &mut Option<Waker>) {
    if let Some(waker) = slot.take() {
        waker.wake();
    }
}

impl Pipe {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            data: BytesMut::new(),
            capacity,
            fin: false,
            reset: false,
            reader_gone: false,
            read_waker: None,
            write_waker: None,
        }
    }

    /// Bytes written and not yet read.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Room left before a write would block.
    fn space(&self) -> usize {
        self.capacity.saturating_sub(self.data.len())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the capacity; a writer waiting for room is woken if there is some now.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        if self.space() > 0 {
            wake(&mut self.write_waker);
        }
    }

    pub(crate) fn is_reset(&self) -> bool {
        self.reset
    }

    /// Copies from `chunks` (in order) as much as fits; `WouldBlock` when nothing does.
    pub(crate) fn write<'a>(
        &mut self,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<usize> {
        if self.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if self.reader_gone || self.fin {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let mut written = 0;
        for chunk in chunks {
            let take = chunk.len().min(self.space());
            self.data
                .extend_from_slice(chunk.get(..take).unwrap_or_default());
            written += take;
            if take < chunk.len() {
                break;
            }
        }
        if written == 0 && self.space() == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if written > 0 {
            wake(&mut self.read_waker);
        }
        Ok(written)
    }

    /// Takes up to `max` bytes; an empty result is the end of the stream. `WouldBlock` when
    /// nothing waits and the writer has not shut down.
    pub(crate) fn read(&mut self, max: usize) -> io::Result<Bytes> {
        if self.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if !self.data.is_empty() {
            let take = max.min(self.data.len());
            let bytes = self.data.split_to(take).freeze();
            wake(&mut self.write_waker);
            return Ok(bytes);
        }
        if self.fin {
            return Ok(Bytes::new());
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Ready when a read returns something other than `WouldBlock`.
    pub(crate) fn poll_read_ready(&mut self, cx: &Context<'_>) -> Poll<()> {
        if self.reset || self.fin || !self.data.is_empty() {
            return Poll::Ready(());
        }
        store(&mut self.read_waker, cx.waker());
        Poll::Pending
    }

    /// Ready when a write returns something other than `WouldBlock`.
    pub(crate) fn poll_write_ready(&mut self, cx: &Context<'_>) -> Poll<()> {
        if self.reset || self.reader_gone || self.fin || self.space() > 0 {
            return Poll::Ready(());
        }
        store(&mut self.write_waker, cx.waker());
        Poll::Pending
    }

    /// The writer shut down its side: the reader gets the data, then the end of the stream.
    pub(crate) fn finish(&mut self) {
        self.fin = true;
        wake(&mut self.read_waker);
        wake(&mut self.write_waker);
    }

    /// The reader closed: later writes fail, and a writer waiting for room learns it.
    pub(crate) fn close_reader(&mut self) {
        self.reader_gone = true;
        self.data.clear();
        wake(&mut self.write_waker);
    }

    /// The connection was reset: unread data is lost, both ends' waiters are woken to fail.
    pub(crate) fn reset(&mut self) {
        self.reset = true;
        self.data.clear();
        wake(&mut self.read_waker);
        wake(&mut self.write_waker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_waker::counting as counter;
    use proptest::prelude::*;

    #[test]
    fn a_full_pipe_blocks_the_writer_until_the_reader_makes_room() {
        let mut pipe = Pipe::new(4);
        assert_eq!(pipe.write([&b"abc"[..], b"def"]).unwrap(), 4);
        assert_eq!(
            pipe.write([&b"x"[..]]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let (count, waker) = counter();
        let cx = Context::from_waker(&waker);
        assert!(pipe.poll_write_ready(&cx).is_pending());
        assert_eq!(&pipe.read(3).unwrap()[..], b"abc");
        assert_eq!(count.get(), 1);
        assert!(pipe.poll_write_ready(&cx).is_ready());
        assert_eq!(&pipe.read(10).unwrap()[..], b"d");
        assert_eq!(pipe.read(10).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn fin_ends_the_stream_after_the_data() {
        let mut pipe = Pipe::new(100);
        pipe.write([&b"hi"[..]]).unwrap();
        pipe.finish();
        assert_eq!(&pipe.read(10).unwrap()[..], b"hi");
        assert!(pipe.read(10).unwrap().is_empty());
        assert_eq!(
            pipe.write([&b"x"[..]]).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[test]
    fn reset_loses_data_and_fails_both_ends() {
        let mut pipe = Pipe::new(100);
        pipe.write([&b"lost"[..]]).unwrap();
        let (count, waker) = counter();
        let cx = Context::from_waker(&waker);
        pipe.read(4).unwrap();
        assert!(pipe.poll_read_ready(&cx).is_pending());
        pipe.reset();
        assert_eq!(count.get(), 1);
        assert!(pipe.poll_read_ready(&cx).is_ready());
        assert_eq!(
            pipe.read(1).unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!(
            pipe.write([&b"x"[..]]).unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
    }

    #[test]
    fn raising_the_capacity_wakes_a_blocked_writer() {
        let mut pipe = Pipe::new(1);
        pipe.write([&b"a"[..]]).unwrap();
        let (count, waker) = counter();
        assert!(pipe
            .poll_write_ready(&Context::from_waker(&waker))
            .is_pending());
        pipe.set_capacity(2);
        assert_eq!(count.get(), 1);
        assert_eq!(pipe.capacity(), 2);
    }

    proptest! {
        /// Against a model: the bytes read are the bytes written, in order, and the pipe
        /// never holds more than its capacity.
        #[test]
        fn bytes_arrive_in_order_within_the_capacity(
            capacity in 1usize..64,
            ops in proptest::collection::vec((any::<bool>(), 0usize..40), 1..80),
        ) {
            let mut pipe = Pipe::new(capacity);
            let mut next = 0u8;
            let mut written = Vec::new();
            let mut read = Vec::new();
            for (is_write, n) in ops {
                if is_write {
                    let chunk: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                    match pipe.write([&chunk[..]]) {
                        Ok(k) => {
                            written.extend_from_slice(&chunk[..k]);
                            // What did not fit is not sent: the model forgets it too.
                            next = next.wrapping_sub((n - k) as u8);
                        }
                        Err(e) => {
                            prop_assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                            next = next.wrapping_sub(n as u8);
                        }
                    }
                } else if let Ok(bytes) = pipe.read(n.max(1)) {
                    read.extend_from_slice(&bytes);
                }
                prop_assert!(pipe.len() <= capacity);
            }
            while let Ok(bytes) = pipe.read(usize::MAX) {
                read.extend_from_slice(&bytes);
            }
            prop_assert_eq!(read, written);
        }
    }
}
