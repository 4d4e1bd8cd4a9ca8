//! Media the session fuzz bodies feed to players: what the hub sends a player once its
//! play is accepted, so the sessions reach their media-carrying states.

use bytes::Bytes;
use mediakit_core::media::nal::to_length_prefixed;
use mediakit_core::media::{AacConfig, AvcConfig, Codec, Frame, Media, TrackConfig};

/// What a player is sent once its play is accepted: configurations then a keyframe.
pub fn snapshot() -> [Media; 4] {
    let sps: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50];
    let pps: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];
    let avc = AvcConfig::from_parameter_sets(Bytes::from_static(sps), Bytes::from_static(pps));
    let aac = AacConfig::new(2, 44_100, 2);
    let (Ok(avc), Ok(aac)) = (avc, aac) else {
        unreachable!("fixed configurations are valid");
    };
    let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    [
        Media::Config(TrackConfig::Avc(avc)),
        Media::Config(TrackConfig::Aac(aac)),
        Media::Frame(Frame {
            codec: Codec::H264,
            dts: 0,
            pts: 0,
            keyframe: true,
            payload: to_length_prefixed([idr]),
        }),
        Media::Frame(Frame {
            codec: Codec::Aac,
            dts: 10,
            pts: 10,
            keyframe: true,
            payload: Bytes::from_static(&[0x21, 0x10, 0x04]),
        }),
    ]
}
