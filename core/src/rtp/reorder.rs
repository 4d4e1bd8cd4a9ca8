//! A small sequence-number reorder window that turns arrival order into sequence order and
//! reports holes as loss.
//!
//! No timers: a hole is declared lost when a packet `window` sequence numbers past it arrives
//! (or on [`ReorderBuffer::flush`]), so the delay it adds is counted in packets, not time.

use alloc::collections::VecDeque;

use super::RtpPacket;

/// What comes out of the window, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ordered {
    /// The next packet.
    Packet(RtpPacket),
    /// This many packets before the next one never arrived.
    Lost(u32),
}

/// What became of a packet given to [`ReorderBuffer::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Kept (possibly released at once).
    Accepted,
    /// Dropped: the same sequence number is already waiting.
    Duplicate,
    /// Dropped: its sequence number was already released or declared lost.
    Late,
}

/// Puts packets back in sequence order within a window (see the module docs).
#[derive(Debug, Clone)]
pub struct ReorderBuffer {
    window: usize,
    /// The sequence number of the first slot.
    next: Option<u16>,
    /// Waiting packets by distance from `next`; the first slot is always a hole.
    slots: VecDeque<Option<RtpPacket>>,
    ready: VecDeque<Ordered>,
    lost: u32,
    /// Consecutive late packets: a long run means the sender restarted its sequence.
    late_run: usize,
}

impl ReorderBuffer {
    /// A window of `window` packets (at least 1; at most 2^14 so "late" stays unambiguous).
    pub fn new(window: usize) -> Self {
        Self {
            window: window.clamp(1, 1 << 14),
            next: None,
            slots: VecDeque::new(),
            ready: VecDeque::new(),
            lost: 0,
            late_run: 0,
        }
    }

    /// Takes a packet in arrival order.
    pub fn insert(&mut self, packet: RtpPacket) -> Inserted {
        let sequence = packet.header.sequence;
        let next = *self.next.get_or_insert(sequence);
        let distance = sequence.wrapping_sub(next) as i16;
        if distance < 0 {
            self.late_run += 1;
            if self.late_run <= self.window {
                return Inserted::Late;
            }
            // Far more late packets than reordering explains: the sender jumped backwards.
            self.flush();
            self.next = Some(sequence);
            return self.insert(packet);
        }
        self.late_run = 0;
        let mut distance = distance.unsigned_abs() as usize;
        if distance >= self.window {
            self.advance(distance - self.window + 1);
            // Advancing may release more than the shift; a packet it passed is a duplicate.
            let next = self.next.unwrap_or(sequence);
            let Ok(now) = usize::try_from(sequence.wrapping_sub(next) as i16) else {
                return Inserted::Duplicate;
            };
            distance = now;
        }
        if self.slots.len() <= distance {
            self.slots.resize(distance + 1, None);
        }
        match self.slots.get_mut(distance) {
            Some(slot @ None) => *slot = Some(packet),
            _ => return Inserted::Duplicate,
        }
        self.release_in_order();
        Inserted::Accepted
    }

    /// The next packet or loss in sequence order, if one is ready.
    pub fn pop(&mut self) -> Option<Ordered> {
        self.ready.pop_front()
    }

    /// Releases everything waiting, declaring the holes lost (end of stream, or a timeout
    /// decided by the caller).
    pub fn flush(&mut self) {
        let waiting = self.slots.len();
        self.advance(waiting);
    }

    /// Moves the window forward by `count` sequence numbers, releasing what it passes.
    fn advance(&mut self, count: usize) {
        let mut remaining = count;
        while remaining > 0 {
            let Some(slot) = self.slots.pop_front() else {
                // Nothing waits beyond here: the rest of the jump is lost in one step.
                self.lost = self.lost.saturating_add(remaining as u32);
                break;
            };
            self.release(slot);
            remaining -= 1;
        }
        if let Some(next) = &mut self.next {
            *next = next.wrapping_add(count as u16);
        }
        self.release_in_order();
    }

    fn release_in_order(&mut self) {
        while let Some(Some(_)) = self.slots.front() {
            let slot = self.slots.pop_front().flatten();
            self.release(slot);
            if let Some(next) = &mut self.next {
                *next = next.wrapping_add(1);
            }
        }
    }

    fn release(&mut self, slot: Option<RtpPacket>) {
        match slot {
            Some(packet) => {
                if self.lost > 0 {
                    self.ready.push_back(Ordered::Lost(self.lost));
                    self.lost = 0;
                }
                self.ready.push_back(Ordered::Packet(packet));
            }
            None => self.lost = self.lost.saturating_add(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpHeader;
    use alloc::vec::Vec;
    use bytes::Bytes;

    fn packet(sequence: u16) -> RtpPacket {
        RtpPacket {
            header: RtpHeader {
                sequence,
                ..RtpHeader::default()
            },
            payload: Bytes::new(),
        }
    }

    fn drain(buffer: &mut ReorderBuffer) -> Vec<i64> {
        // Packets as their sequence number, losses as negative counts.
        core::iter::from_fn(|| buffer.pop())
            .map(|item| match item {
                Ordered::Packet(p) => i64::from(p.header.sequence),
                Ordered::Lost(n) => -i64::from(n),
            })
            .collect()
    }

    #[test]
    fn reorders_within_the_window_and_across_wrap() {
        let mut buffer = ReorderBuffer::new(4);
        for seq in [65534, 0, 65535, 1, 1, 65535] {
            buffer.insert(packet(seq));
        }
        assert_eq!(drain(&mut buffer), [65534, 65535, 0, 1]);
        assert_eq!(buffer.insert(packet(0)), Inserted::Late);
    }

    #[test]
    fn hole_is_declared_lost_once_the_window_passes_it() {
        let mut buffer = ReorderBuffer::new(3);
        for seq in [10, 12, 13] {
            buffer.insert(packet(seq));
        }
        assert_eq!(drain(&mut buffer), [10]);
        buffer.insert(packet(14));
        assert_eq!(drain(&mut buffer), [-1, 12, 13, 14]);
        // Far ahead: the window moves up to it; the two just before it may still come.
        buffer.insert(packet(1000));
        assert_eq!(drain(&mut buffer), []);
        buffer.insert(packet(999));
        assert_eq!(drain(&mut buffer), []);
        buffer.flush();
        assert_eq!(drain(&mut buffer), [-984, 999, 1000]);
    }

    #[test]
    fn duplicates_and_flush() {
        let mut buffer = ReorderBuffer::new(8);
        buffer.insert(packet(5));
        assert_eq!(buffer.insert(packet(7)), Inserted::Accepted);
        assert_eq!(buffer.insert(packet(7)), Inserted::Duplicate);
        buffer.flush();
        assert_eq!(drain(&mut buffer), [5, -1, 7]);
    }

    #[test]
    fn a_long_run_of_late_packets_resynchronises() {
        let mut buffer = ReorderBuffer::new(2);
        buffer.insert(packet(30000));
        drain(&mut buffer);
        for seq in 100..103 {
            buffer.insert(packet(seq));
        }
        assert_eq!(drain(&mut buffer), [102]);
        buffer.insert(packet(103));
        assert_eq!(drain(&mut buffer), [103]);
    }
}
