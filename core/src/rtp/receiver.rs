//! Reception statistics of one RTP source, for the report blocks of receiver reports
//! (RFC 3550 §6.4.1): sequence tracking and loss as in appendix A.1 and A.3, interarrival
//! jitter as in A.8, and the `LSR`/`DLSR` pair from the source's sender reports.
//!
//! Sans-IO like the rest of the core: the caller passes the arrival time of every packet as
//! [`Millis`], so jitter has millisecond resolution (90 ticks of a video clock).

use crate::rtcp::{ReportBlock, SenderReport};
use crate::time::Millis;

use super::RtpHeader;

/// A forward jump in sequence numbers up to this size is loss; a bigger one needs
/// confirmation (RFC 3550 A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// A backward step up to this size is a late or duplicate packet (RFC 3550 A.1).
pub const MAX_MISORDER: u16 = 100;

/// The largest cumulative loss a report block can carry (24-bit signed).
const MAX_CUMULATIVE_LOST: i64 = 0x7f_ffff;
/// The smallest (negative: duplicates outnumber losses).
const MIN_CUMULATIVE_LOST: i64 = -0x80_0000;

/// Sequence state of the source since its sequence (re)started.
#[derive(Debug, Clone)]
struct Sequence {
    base: u64,
    max: u16,
    /// Wraps of the 16-bit sequence number seen so far.
    cycles: u64,
    /// After an unexplained jump: the number that would confirm a restart there.
    bad: Option<u16>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
}

impl Sequence {
    fn new(sequence: u16) -> Self {
        Self {
            base: u64::from(sequence),
            max: sequence,
            cycles: 0,
            bad: None,
            received: 1,
            expected_prior: 0,
            received_prior: 0,
        }
    }

    fn extended_max(&self) -> u64 {
        (self.cycles << 16) | u64::from(self.max)
    }

    fn expected(&self) -> u64 {
        (self.extended_max() + 1).saturating_sub(self.base)
    }

    fn cumulative_lost(&self) -> i64 {
        let lost = i64::try_from(self.expected()).unwrap_or(i64::MAX)
            - i64::try_from(self.received).unwrap_or(i64::MAX);
        lost.clamp(MIN_CUMULATIVE_LOST, MAX_CUMULATIVE_LOST)
    }
}

/// What became of a packet given to [`ReceiverStats::on_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Counted (in order, after a gap, late or duplicate).
    Counted,
    /// The sequence jumped too far: not counted until the next packet confirms the jump.
    Jumped,
    /// The next packet confirmed a jump: statistics start again from it.
    Restarted,
}

/// Reception statistics of one source (see the module docs).
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    ssrc: Option<u32>,
    sequence: Option<Sequence>,
    /// Relative transit time of the last counted packet, in RTP units (A.8).
    transit: Option<u32>,
    /// Interarrival jitter in RTP units, times 16 (A.8's fixed point).
    jitter16: u64,
    /// Middle 32 bits of the last sender report's NTP time, and when it arrived.
    last_sr: Option<(u32, Millis)>,
}

impl ReceiverStats {
    /// Statistics for a source whose RTP clock runs at `clock_rate` Hz (0 is taken as 1).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            ssrc: None,
            sequence: None,
            transit: None,
            jitter16: 0,
            last_sr: None,
        }
    }

    /// Counts a received packet that arrived at `now`. A packet from another SSRC than the
    /// previous ones means the source was replaced: statistics start again.
    pub fn on_packet(&mut self, header: &RtpHeader, now: Millis) -> Received {
        if self.ssrc != Some(header.ssrc) {
            *self = Self::new(self.clock_rate);
            self.ssrc = Some(header.ssrc);
        }
        let outcome = match &mut self.sequence {
            None => {
                self.sequence = Some(Sequence::new(header.sequence));
                Received::Counted
            }
            Some(state) => update_sequence(state, header.sequence),
        };
        match outcome {
            Received::Jumped => return outcome,
            // The sender restarted: its old transit time says nothing about the new packets.
            Received::Restarted => self.transit = None,
            Received::Counted => {}
        }
        let arrival = (u128::from(now.0) * u128::from(self.clock_rate) / 1000) as u32;
        let transit = arrival.wrapping_sub(header.timestamp);
        if let Some(previous) = self.transit {
            let d = u64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            // J += (|D| - J) / 16, with J kept times 16 (RFC 3550 A.8).
            self.jitter16 = (self.jitter16 + d).saturating_sub((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
        outcome
    }

    /// Notes a sender report from the source, received at `now`, for `LSR` and `DLSR`.
    /// A report from another SSRC than the packets' is ignored.
    pub fn on_sender_report(&mut self, report: &SenderReport, now: Millis) {
        if self.ssrc.is_none_or(|ssrc| ssrc == report.ssrc) {
            self.ssrc = Some(report.ssrc);
            self.last_sr = Some((report.ntp.middle(), now));
        }
    }

    /// The report block about the source at `now`, `None` before its first packet. Starts a
    /// new interval for the fraction lost.
    pub fn report_block(&mut self, now: Millis) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        let sequence = self.sequence.as_mut()?;
        let expected = sequence.expected();
        let expected_interval = expected.saturating_sub(sequence.expected_prior);
        let received_interval = sequence.received.saturating_sub(sequence.received_prior);
        sequence.expected_prior = expected;
        sequence.received_prior = sequence.received;
        let fraction_lost = match expected_interval.checked_sub(received_interval) {
            Some(lost) if lost > 0 => ((lost << 8) / expected_interval).min(255) as u8,
            _ => 0,
        };
        let (last_sr, delay_since_last_sr) = self.last_sr.map_or((0, 0), |(middle, at)| {
            // In 1/65536 s.
            let delay = now.saturating_since(at).min(u64::from(u32::MAX));
            (
                middle,
                u32::try_from(delay * 65536 / 1000).unwrap_or(u32::MAX),
            )
        });
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: sequence.cumulative_lost() as i32,
            highest_sequence: sequence.extended_max() as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }

    /// The source's SSRC, once a packet or sender report has named it.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Packets counted since the sequence (re)started, duplicates included.
    pub fn received(&self) -> u64 {
        self.sequence.as_ref().map_or(0, |s| s.received)
    }

    /// Packets expected less packets received, clamped to what a report block carries.
    pub fn cumulative_lost(&self) -> i64 {
        self.sequence.as_ref().map_or(0, Sequence::cumulative_lost)
    }

    /// The extended highest sequence number received (cycles in the high bits).
    pub fn extended_highest_sequence(&self) -> Option<u64> {
        self.sequence.as_ref().map(Sequence::extended_max)
    }

    /// Interarrival jitter in RTP timestamp units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter16 >> 4).unwrap_or(u32::MAX)
    }
}

/// RFC 3550 A.1 `update_seq`, without probation: the server set the source up itself.
fn update_sequence(state: &mut Sequence, sequence: u16) -> Received {
    let delta = sequence.wrapping_sub(state.max);
    if delta < MAX_DROPOUT {
        if sequence < state.max {
            state.cycles += 1;
        }
        state.max = sequence;
    } else if u32::from(delta) <= (1 << 16) - u32::from(MAX_MISORDER) {
        if state.bad != Some(sequence) {
            state.bad = Some(sequence.wrapping_add(1));
            return Received::Jumped;
        }
        // Two packets in sequence after the jump: the sender restarted its numbering.
        *state = Sequence::new(sequence);
        return Received::Restarted;
    }
    // Otherwise late or duplicate: counted, and may make the loss negative, as the RFC says.
    state.received += 1;
    Received::Counted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::NtpTimestamp;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn header(sequence: u16, timestamp: u32) -> RtpHeader {
        RtpHeader {
            sequence,
            timestamp,
            ssrc: 0x1234,
            ..RtpHeader::default()
        }
    }

    #[test]
    fn nothing_to_report_before_the_first_packet() {
        let mut stats = ReceiverStats::new(90_000);
        assert_eq!(stats.report_block(Millis(5)), None);
    }

    #[test]
    fn loss_fraction_and_wrap() {
        let mut stats = ReceiverStats::new(90_000);
        // 65530..=65535, 0..=13 with 65534, 2 and 3 missing: 20 expected, 17 received.
        let sequences: Vec<u16> = (65530..=65535u16)
            .chain(0..14)
            .filter(|s| ![65534, 2, 3].contains(s))
            .collect();
        for (i, &s) in sequences.iter().enumerate() {
            assert_eq!(
                stats.on_packet(&header(s, 0), Millis(i as u64)),
                Received::Counted
            );
        }
        let block = stats.report_block(Millis(100)).unwrap();
        assert_eq!(block.ssrc, 0x1234);
        assert_eq!(block.highest_sequence, 0x1_000d);
        assert_eq!(block.cumulative_lost, 3);
        assert_eq!(block.fraction_lost, 38); // 3 * 256 / 20
        assert_eq!((block.last_sr, block.delay_since_last_sr), (0, 0));
        // Next interval: 14..=23 with one lost.
        for s in (14..24).filter(|s| *s != 20) {
            stats.on_packet(&header(s, 0), Millis(200));
        }
        let block = stats.report_block(Millis(300)).unwrap();
        assert_eq!((block.cumulative_lost, block.fraction_lost), (4, 25));
        // 24..=40 with only 40 received: 16 of 17 lost.
        stats.on_packet(&header(40, 0), Millis(400));
        let block = stats.report_block(Millis(500)).unwrap();
        assert_eq!((block.cumulative_lost, block.fraction_lost), (20, 240));
        // An empty interval reports no loss.
        assert_eq!(stats.report_block(Millis(600)).unwrap().fraction_lost, 0);
    }

    #[test]
    fn reordering_is_not_loss_and_duplicates_count_as_received() {
        let mut stats = ReceiverStats::new(90_000);
        for s in [10, 12, 11, 13, 13, 14] {
            stats.on_packet(&header(s, 0), Millis(0));
        }
        let block = stats.report_block(Millis(0)).unwrap();
        assert_eq!(block.highest_sequence, 14);
        // 5 expected, 6 received: the RFC formula gives -1 and no fraction.
        assert_eq!((block.cumulative_lost, block.fraction_lost), (-1, 0));
        // A late packet from before the window does not move the highest number back.
        stats.on_packet(&header(5, 0), Millis(0));
        assert_eq!(stats.extended_highest_sequence(), Some(14));
    }

    #[test]
    fn a_big_jump_counts_only_once_confirmed() {
        let mut stats = ReceiverStats::new(90_000);
        for s in 0..10 {
            stats.on_packet(&header(s, 0), Millis(0));
        }
        assert_eq!(
            stats.on_packet(&header(40_000, 0), Millis(0)),
            Received::Jumped
        );
        assert_eq!(
            stats.on_packet(&header(10, 0), Millis(0)),
            Received::Counted
        );
        assert_eq!(
            stats.on_packet(&header(30_000, 0), Millis(0)),
            Received::Jumped
        );
        assert_eq!(
            stats.on_packet(&header(30_001, 0), Millis(0)),
            Received::Restarted
        );
        assert_eq!(stats.received(), 1);
        stats.on_packet(&header(30_003, 0), Millis(0));
        let block = stats.report_block(Millis(0)).unwrap();
        assert_eq!(block.highest_sequence, 30_003);
        assert_eq!((block.cumulative_lost, block.fraction_lost), (1, 85));
    }

    #[test]
    fn a_new_ssrc_starts_over() {
        let mut stats = ReceiverStats::new(8000);
        stats.on_packet(&header(100, 0), Millis(0));
        stats.on_packet(&header(105, 0), Millis(0));
        let other = RtpHeader {
            ssrc: 99,
            ..header(7, 0)
        };
        stats.on_packet(&other, Millis(0));
        let block = stats.report_block(Millis(0)).unwrap();
        assert_eq!(
            (block.ssrc, block.highest_sequence, block.cumulative_lost),
            (99, 7, 0)
        );
    }

    #[test]
    fn jitter_is_zero_for_perfect_timing_and_tracks_constant_skew() {
        // 25 fps video: 3600 ticks per frame, arriving every 40 ms.
        let mut stats = ReceiverStats::new(90_000);
        for i in 0..200u16 {
            let ts = 1_000_000u32.wrapping_add(u32::from(i) * 3600);
            stats.on_packet(&header(i, ts), Millis(5_000 + u64::from(i) * 40));
        }
        assert_eq!(stats.jitter(), 0);
        // Arriving every 41 ms: each transit differs by 90 ticks. A.8's rounding settles the
        // estimate at 1432/16.
        let mut stats = ReceiverStats::new(90_000);
        for i in 0..400u16 {
            let ts = (u32::MAX - 10_000).wrapping_add(u32::from(i) * 3600); // wraps on the way
            stats.on_packet(&header(i, ts), Millis(u64::from(i) * 41));
        }
        assert_eq!(stats.jitter16, 1432);
        assert_eq!(stats.jitter(), 89);
        // Alternating 30 and 50 ms: |D| = 10 ms = 80 ticks at 8 kHz, every packet.
        let mut stats = ReceiverStats::new(8000);
        let mut now = 0;
        for i in 0..400u16 {
            now += if i % 2 == 0 { 30 } else { 50 };
            stats.on_packet(&header(i, u32::from(i) * 320), Millis(now));
        }
        assert_eq!(stats.jitter(), 79);
        assert_eq!(stats.report_block(Millis(now)).unwrap().jitter, 79);
    }

    #[test]
    fn last_sender_report_and_delay() {
        let mut stats = ReceiverStats::new(90_000);
        let report = SenderReport {
            ssrc: 0x1234,
            ntp: NtpTimestamp(0x0123_4567_89ab_cdef),
            rtp_timestamp: 0,
            packet_count: 0,
            octet_count: 0,
            reports: Vec::new(),
        };
        stats.on_sender_report(&report, Millis(1_000));
        stats.on_sender_report(
            &SenderReport {
                ssrc: 7,
                ntp: NtpTimestamp(0),
                ..report.clone()
            },
            Millis(1_100),
        );
        stats.on_packet(&header(1, 0), Millis(1_200));
        let block = stats.report_block(Millis(3_500)).unwrap();
        assert_eq!(block.last_sr, 0x4567_89ab);
        // 2.5 s in 1/65536 s.
        assert_eq!(block.delay_since_last_sr, 163_840);
    }

    proptest! {
        #[test]
        fn any_input_gives_a_valid_block(
            packets in proptest::collection::vec(
                (any::<u16>(), any::<u32>(), 0u64..100_000, any::<bool>()),
                0..200,
            ),
            rate in any::<u32>(),
            start in any::<u64>(),
        ) {
            let mut stats = ReceiverStats::new(rate);
            let mut now = start;
            for (i, (sequence, timestamp, step, report)) in packets.iter().enumerate() {
                now = now.saturating_add(*step);
                stats.on_packet(&header(*sequence, *timestamp), Millis(now));
                if *report {
                    let block = stats.report_block(Millis(now)).unwrap();
                    prop_assert!((MIN_CUMULATIVE_LOST..=MAX_CUMULATIVE_LOST)
                        .contains(&i64::from(block.cumulative_lost)));
                    prop_assert!(i > 0 || block.fraction_lost == 0);
                }
            }
        }

        #[test]
        fn in_order_loss_is_counted_exactly(
            start in any::<u16>(),
            gaps in proptest::collection::vec(0u16..50, 1..300),
        ) {
            let mut stats = ReceiverStats::new(90_000);
            let mut sequence = start;
            let mut lost = 0i64;
            stats.on_packet(&header(sequence, 0), Millis(0));
            for gap in &gaps {
                sequence = sequence.wrapping_add(gap + 1);
                lost += i64::from(*gap);
                stats.on_packet(&header(sequence, 0), Millis(0));
            }
            let expected = gaps.len() as i64 + 1 + lost;
            let block = stats.report_block(Millis(0)).unwrap();
            prop_assert_eq!(i64::from(block.cumulative_lost), lost);
            prop_assert_eq!(
                u64::from(block.highest_sequence),
                u64::from(start) + expected as u64 - 1
            );
            prop_assert_eq!(i64::from(block.fraction_lost), (lost * 256 / expected).min(255));
        }
    }
}
