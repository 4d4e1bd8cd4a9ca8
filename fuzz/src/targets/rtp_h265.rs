//! Fuzz body for the H.265 RTP depacketizer (the checks are shared with H.264).

use mediakit_core::rtp::H265;

use super::rtp_h264::nal_target;

/// H.265: arbitrary packets in, well-formed frames out, and a stable round trip.
pub fn rtp_h265(data: &[u8]) {
    nal_target::<H265>(data);
}
