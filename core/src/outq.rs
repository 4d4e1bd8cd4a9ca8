//! The output queue every session writes into and every runtime drains with vectored writes.

use alloc::collections::VecDeque;
use bytes::{Buf, Bytes};

/// A queue of outgoing byte segments, drained by the runtime with one vectored write.
///
/// Segments are `Bytes`, so a media payload shared by a thousand players is queued a thousand
/// times by reference count, never copied. The runtime fills its `IoSlice` array from
/// [`OutQueue::segments`] and reports what the socket took with [`OutQueue::advance`]; a
/// partial write leaves the rest of a segment at the front.
#[derive(Debug, Default)]
pub struct OutQueue {
    segments: VecDeque<Bytes>,
    queued_bytes: usize,
}

impl OutQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a segment; empty segments are dropped so they never occupy an iovec slot.
    pub fn push(&mut self, segment: Bytes) {
        if segment.is_empty() {
            return;
        }
        self.queued_bytes += segment.len();
        self.segments.push_back(segment);
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Segments waiting to be written.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The waiting segments in order, for filling an iovec array.
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> {
        self.segments.iter().map(|segment| segment.as_ref())
    }

    /// Drops `written` bytes from the front, as reported by a (possibly partial) write.
    pub fn advance(&mut self, mut written: usize) {
        written = written.min(self.queued_bytes);
        self.queued_bytes -= written;
        while written > 0 {
            let Some(front) = self.segments.front_mut() else {
                break;
            };
            if written >= front.len() {
                written -= front.len();
                self.segments.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }

    /// Moves every segment of `other` to the end of this queue, leaving `other` empty.
    pub fn append(&mut self, other: &mut OutQueue) {
        self.queued_bytes += core::mem::take(&mut other.queued_bytes);
        self.segments.append(&mut other.segments);
    }

    /// Discards everything queued.
    pub fn clear(&mut self) {
        self.segments.clear();
        self.queued_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn partial_writes_deliver_every_byte_in_order(
            segments in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..20),
            writes in proptest::collection::vec(1usize..64, 1..200),
        ) {
            let mut queue = OutQueue::new();
            let expected: Vec<u8> = segments.concat();
            for segment in &segments {
                queue.push(Bytes::from(segment.clone()));
            }
            prop_assert_eq!(queue.queued_bytes(), expected.len());
            let mut delivered = Vec::new();
            for write in writes {
                let mut budget = write;
                for segment in queue.segments() {
                    let take = budget.min(segment.len());
                    delivered.extend_from_slice(&segment[..take]);
                    budget -= take;
                    if budget == 0 { break; }
                }
                queue.advance(write);
            }
            let rest: Vec<u8> = queue.segments().flat_map(|s| s.iter().copied()).collect();
            delivered.extend_from_slice(&rest);
            prop_assert_eq!(delivered, expected);
        }
    }
}
