//! Session descriptions (SDP, RFC 4566) as RTSP carries them in DESCRIBE answers and ANNOUNCE
//! requests, with the codec parameters of H.264 (RFC 6184 §8.1), H.265 (RFC 7798 §7.1) and
//! AAC in `mpeg4-generic` (RFC 3640 §4.1).
//!
//! Only what a media server acts on is modelled: one payload type per media section (the
//! first listed), its `rtpmap`, `fmtp` and `control`. Everything else is skipped.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use bytes::Bytes;

use crate::media::{AacConfig, AvcConfig, TrackConfig};

/// The most media sections accepted in one description.
pub const MAX_MEDIA: usize = 16;
/// The most parameter sets of one kind accepted in one `fmtp`.
pub const MAX_PARAMETER_SETS: usize = 16;

/// Why a session description could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// A line or field is not valid SDP.
    #[error("malformed SDP {what} on line {line}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// The 1-based line number.
        line: usize,
    },
    /// More items than the bound allows.
    #[error("SDP has too many {what} (more than {max})")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The bound.
        max: usize,
    },
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` value.
    pub origin: String,
    /// The `s=` value.
    pub session_name: String,
    /// The session-level `c=` value.
    pub connection: Option<String>,
    /// The session-level `a=control:` (aggregate control URL).
    pub control: Option<String>,
    /// The session-level `a=range:`.
    pub range: Option<String>,
    /// The media sections, in order.
    pub media: Vec<MediaDescription>,
}

/// What a media section carries (`m=` media field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaType {
    /// `video`.
    Video,
    /// `audio`.
    Audio,
    /// Anything else (`application`, `text`...).
    Other(String),
}

impl MediaType {
    fn as_str(&self) -> &str {
        match self {
            MediaType::Video => "video",
            MediaType::Audio => "audio",
            MediaType::Other(other) => other,
        }
    }
}

/// One media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Video, audio or other.
    pub kind: MediaType,
    /// The port (0 in RTSP, where SETUP negotiates transport).
    pub port: u16,
    /// The transport protocol, `RTP/AVP`.
    pub protocol: String,
    /// The RTP payload type (the first format listed).
    pub payload_type: u8,
    /// The RTP clock rate from `rtpmap` (0 when there is none).
    pub clock_rate: u32,
    /// The codec and its parameters.
    pub codec: SdpCodec,
    /// `a=control:`, absolute or relative to the session's base URL.
    pub control: Option<String>,
}

/// A media section's codec and the parameters needed to decode it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpCodec {
    /// H.264 (`H264/90000`).
    H264 {
        /// Sequence parameter sets from `sprop-parameter-sets`.
        sps: Vec<Bytes>,
        /// Picture parameter sets from `sprop-parameter-sets`.
        pps: Vec<Bytes>,
        /// `profile-level-id`: profile_idc, constraint flags, level_idc.
        profile_level_id: Option<[u8; 3]>,
        /// `packetization-mode` (0 when absent, as RFC 6184 specifies).
        packetization_mode: u8,
    },
    /// H.265 (`H265/90000`).
    H265 {
        /// `sprop-vps`.
        vps: Vec<Bytes>,
        /// `sprop-sps`.
        sps: Vec<Bytes>,
        /// `sprop-pps`.
        pps: Vec<Bytes>,
    },
    /// AAC in `MPEG4-GENERIC/rate/channels`.
    Aac {
        /// The AudioSpecificConfig from `config=` (hex).
        config: Bytes,
        /// Sampling rate from `rtpmap`.
        sample_rate: u32,
        /// Channel count from `rtpmap` (1 when absent).
        channels: u8,
        /// `sizelength` (bits of AU size in each AU header).
        size_length: u8,
        /// `indexlength`.
        index_length: u8,
        /// `indexdeltalength`.
        index_delta_length: u8,
    },
    /// Any other encoding, by its `rtpmap` name (empty when there is no `rtpmap`).
    Other {
        /// The encoding name.
        encoding: String,
    },
}

impl SessionDescription {
    /// Parses a description; `\r\n` and bare `\n` line ends are both accepted.
    pub fn parse(text: &[u8]) -> Result<Self, SdpError> {
        let text = core::str::from_utf8(text).map_err(|_| SdpError::Malformed {
            what: "encoding (not UTF-8)",
            line: 0,
        })?;
        let mut session = SessionDescription {
            origin: String::new(),
            session_name: String::new(),
            connection: None,
            control: None,
            range: None,
            media: Vec::new(),
        };
        // fmtp lines may come before or after rtpmap; keep them until the section ends.
        let mut fmtp: Option<String> = None;
        let mut rtpmap: Option<String> = None;
        let mut seen_version = false;
        for (index, line) in text.split('\n').enumerate() {
            let number = index + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let malformed = |what| SdpError::Malformed { what, line: number };
            let (kind, value) = match line.as_bytes() {
                [kind, b'=', ..] if kind.is_ascii_lowercase() => {
                    (*kind, line.get(2..).unwrap_or_default())
                }
                _ => return Err(malformed("line")),
            };
            if !seen_version {
                if kind != b'v' || value != "0" {
                    return Err(malformed("version"));
                }
                seen_version = true;
                continue;
            }
            match kind {
                b'o' if session.media.is_empty() => session.origin = String::from(value),
                b's' if session.media.is_empty() => session.session_name = String::from(value),
                b'c' if session.media.is_empty() => session.connection = Some(String::from(value)),
                b'm' => {
                    if let Some(last) = session.media.last_mut() {
                        last.apply(rtpmap.take().as_deref(), fmtp.take().as_deref())
                            .map_err(malformed)?;
                    }
                    if session.media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooMany {
                            what: "media sections",
                            max: MAX_MEDIA,
                        });
                    }
                    session
                        .media
                        .push(MediaDescription::parse_m_line(value).ok_or(malformed("m= line"))?);
                }
                b'a' => {
                    let (name, attribute) = value.split_once(':').unwrap_or((value, ""));
                    match (name, session.media.last_mut()) {
                        ("control", None) => session.control = Some(String::from(attribute)),
                        ("range", None) => session.range = Some(String::from(attribute)),
                        ("control", Some(media)) => media.control = Some(String::from(attribute)),
                        ("rtpmap" | "fmtp", Some(media)) => {
                            let (payload_type, rest) = attribute
                                .split_once(' ')
                                .ok_or(malformed("a=rtpmap/fmtp"))?;
                            if payload_type.parse() == Ok(media.payload_type) {
                                let slot = if name == "rtpmap" {
                                    &mut rtpmap
                                } else {
                                    &mut fmtp
                                };
                                *slot = Some(String::from(rest.trim()));
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !seen_version {
            return Err(SdpError::Malformed {
                what: "version",
                line: 1,
            });
        }
        if let Some(last) = session.media.last_mut() {
            last.apply(rtpmap.as_deref(), fmtp.as_deref())
                .map_err(|what| SdpError::Malformed {
                    what,
                    line: text.split('\n').count(),
                })?;
        }
        Ok(session)
    }

    /// A description of a live stream with one media section per track, controls
    /// `trackID=0`, `trackID=1`... and dynamic payload types from 96, as a server answers
    /// DESCRIBE with.
    pub fn from_tracks(tracks: &[TrackConfig], session_name: &str) -> Self {
        let media = tracks
            .iter()
            .zip(0u8..)
            .map(|(track, index)| {
                let control = alloc::format!("trackID={index}");
                MediaDescription::from_track(track, 96u8.saturating_add(index), &control)
            })
            .collect();
        SessionDescription {
            origin: String::from("- 0 0 IN IP4 0.0.0.0"),
            session_name: String::from(session_name),
            connection: Some(String::from("IN IP4 0.0.0.0")),
            control: Some(String::from("*")),
            range: Some(String::from("npt=now-")),
            media,
        }
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\no={}\r\ns={}\r\n", self.origin, self.session_name)?;
        if let Some(connection) = &self.connection {
            write!(f, "c={connection}\r\n")?;
        }
        f.write_str("t=0 0\r\n")?;
        if let Some(control) = &self.control {
            write!(f, "a=control:{control}\r\n")?;
        }
        if let Some(range) = &self.range {
            write!(f, "a=range:{range}\r\n")?;
        }
        for media in &self.media {
            write!(f, "{media}")?;
        }
        Ok(())
    }
}

impl MediaDescription {
    /// The section for one track, with dynamic payload type `payload_type`.
    pub fn from_track(track: &TrackConfig, payload_type: u8, control: &str) -> Self {
        let (kind, clock_rate, codec) = match track {
            TrackConfig::Avc(avc) => (
                MediaType::Video,
                90_000,
                SdpCodec::H264 {
                    sps: avc.sps.clone(),
                    pps: avc.pps.clone(),
                    profile_level_id: Some([avc.profile, avc.compatibility, avc.level]),
                    packetization_mode: 1,
                },
            ),
            TrackConfig::Hevc(hevc) => (
                MediaType::Video,
                90_000,
                SdpCodec::H265 {
                    vps: hevc.vps.clone(),
                    sps: hevc.sps.clone(),
                    pps: hevc.pps.clone(),
                },
            ),
            TrackConfig::Aac(aac) => (
                MediaType::Audio,
                aac.sample_rate,
                SdpCodec::Aac {
                    config: aac.record.clone(),
                    sample_rate: aac.sample_rate,
                    channels: aac.channels.max(1),
                    size_length: 13,
                    index_length: 3,
                    index_delta_length: 3,
                },
            ),
        };
        MediaDescription {
            kind,
            port: 0,
            protocol: String::from("RTP/AVP"),
            payload_type,
            clock_rate,
            codec,
            control: Some(String::from(control)),
        }
    }

    /// The track configuration the parameters describe, when they are complete enough to
    /// build one (H.264 with an SPS and a PPS, AAC with a valid config). H.265 is not built
    /// here yet: the media model has no HEVC record builder.
    pub fn track_config(&self) -> Option<TrackConfig> {
        match &self.codec {
            SdpCodec::H264 { sps, pps, .. } => {
                let config =
                    AvcConfig::from_parameter_sets(sps.first()?.clone(), pps.first()?.clone());
                config.ok().map(TrackConfig::Avc)
            }
            SdpCodec::Aac { config, .. } => {
                AacConfig::parse(config.clone()).ok().map(TrackConfig::Aac)
            }
            _ => None,
        }
    }

    /// The URL to SETUP this section: its control resolved against `base` (the Content-Base or
    /// request URL).
    pub fn control_url(&self, base: &str) -> String {
        match self.control.as_deref() {
            None | Some("" | "*") => String::from(base),
            Some(control) if is_absolute_url(control) => String::from(control),
            Some(control) => {
                let mut url = String::from(base.trim_end_matches('/'));
                url.push('/');
                url.push_str(control);
                url
            }
        }
    }

    fn parse_m_line(value: &str) -> Option<Self> {
        let mut fields = value.split(' ').filter(|field| !field.is_empty());
        let kind = match fields.next()? {
            "video" => MediaType::Video,
            "audio" => MediaType::Audio,
            other => MediaType::Other(String::from(other)),
        };
        // `port/count` is allowed; the count is of no use to RTSP.
        let port = fields.next()?.split('/').next()?.parse().ok()?;
        let protocol = String::from(fields.next()?);
        let payload_type = fields.next()?.parse().ok().filter(|pt| *pt < 128)?;
        Some(MediaDescription {
            kind,
            port,
            protocol,
            payload_type,
            clock_rate: 0,
            codec: SdpCodec::Other {
                encoding: String::new(),
            },
            control: None,
        })
    }

    /// Fills the codec from this section's `rtpmap` and `fmtp` values.
    fn apply(&mut self, rtpmap: Option<&str>, fmtp: Option<&str>) -> Result<(), &'static str> {
        let Some(rtpmap) = rtpmap else {
            return Ok(());
        };
        let mut parts = rtpmap.split('/');
        let encoding = parts.next().unwrap_or_default();
        self.clock_rate = match parts.next() {
            Some(rate) => rate.trim().parse().map_err(|_| "rtpmap clock rate")?,
            None => 0,
        };
        let channels = match parts.next() {
            Some(channels) => channels.trim().parse().map_err(|_| "rtpmap channels")?,
            None => 1,
        };
        let params = FormatParameters(fmtp.unwrap_or_default());
        self.codec = if encoding.eq_ignore_ascii_case("H264") {
            let mut sps = Vec::new();
            let mut pps = Vec::new();
            for set in params.base64_list("sprop-parameter-sets")? {
                match set.first().map(|header| header & 0x1f) {
                    Some(7) => sps.push(set),
                    Some(8) => pps.push(set),
                    _ => {}
                }
            }
            let profile_level_id = match params.get("profile-level-id") {
                Some(hex) => Some(
                    decode_hex(hex)
                        .and_then(|bytes| <[u8; 3]>::try_from(bytes.as_slice()).ok())
                        .ok_or("profile-level-id")?,
                ),
                None => None,
            };
            let packetization_mode = match params.get("packetization-mode") {
                Some(mode) => mode.parse().map_err(|_| "packetization-mode")?,
                None => 0,
            };
            SdpCodec::H264 {
                sps,
                pps,
                profile_level_id,
                packetization_mode,
            }
        } else if encoding.eq_ignore_ascii_case("H265") {
            SdpCodec::H265 {
                vps: params.base64_list("sprop-vps")?,
                sps: params.base64_list("sprop-sps")?,
                pps: params.base64_list("sprop-pps")?,
            }
        } else if encoding.eq_ignore_ascii_case("MPEG4-GENERIC") {
            let number = |name: &'static str| match params.get(name) {
                Some(value) => value.parse().map_err(|_| name),
                None => Ok(0),
            };
            SdpCodec::Aac {
                config: Bytes::from(
                    decode_hex(params.get("config").unwrap_or_default()).ok_or("config")?,
                ),
                sample_rate: self.clock_rate,
                channels,
                size_length: number("sizelength")?,
                index_length: number("indexlength")?,
                index_delta_length: number("indexdeltalength")?,
            }
        } else {
            SdpCodec::Other {
                encoding: String::from(encoding),
            }
        };
        Ok(())
    }
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pt = self.payload_type;
        write!(
            f,
            "m={} {} {} {pt}\r\n",
            self.kind.as_str(),
            self.port,
            self.protocol
        )?;
        let mut fmtp = String::new();
        match &self.codec {
            SdpCodec::H264 {
                sps,
                pps,
                profile_level_id,
                packetization_mode,
            } => {
                write!(f, "a=rtpmap:{pt} H264/{}\r\n", self.clock_rate)?;
                let _ = write!(fmtp, "packetization-mode={packetization_mode}");
                if !sps.is_empty() || !pps.is_empty() {
                    fmtp.push_str("; sprop-parameter-sets=");
                    push_base64_list(&mut fmtp, sps.iter().chain(pps));
                }
                if let Some(id) = profile_level_id {
                    fmtp.push_str("; profile-level-id=");
                    push_hex(&mut fmtp, id);
                }
            }
            SdpCodec::H265 { vps, sps, pps } => {
                write!(f, "a=rtpmap:{pt} H265/{}\r\n", self.clock_rate)?;
                for (name, sets) in [("sprop-vps", vps), ("sprop-sps", sps), ("sprop-pps", pps)] {
                    if !sets.is_empty() {
                        if !fmtp.is_empty() {
                            fmtp.push_str("; ");
                        }
                        let _ = write!(fmtp, "{name}=");
                        push_base64_list(&mut fmtp, sets.iter());
                    }
                }
            }
            SdpCodec::Aac {
                config,
                sample_rate,
                channels,
                size_length,
                index_length,
                index_delta_length,
            } => {
                write!(
                    f,
                    "a=rtpmap:{pt} MPEG4-GENERIC/{sample_rate}/{channels}\r\n"
                )?;
                let _ = write!(
                    fmtp,
                    "streamtype=5; profile-level-id=1; mode=AAC-hbr; sizelength={size_length}; \
                     indexlength={index_length}; indexdeltalength={index_delta_length}; config="
                );
                push_hex(&mut fmtp, config);
            }
            SdpCodec::Other { encoding } if !encoding.is_empty() => {
                write!(f, "a=rtpmap:{pt} {encoding}/{}\r\n", self.clock_rate)?;
            }
            SdpCodec::Other { .. } => {}
        }
        if !fmtp.is_empty() {
            write!(f, "a=fmtp:{pt} {fmtp}\r\n")?;
        }
        if let Some(control) = &self.control {
            write!(f, "a=control:{control}\r\n")?;
        }
        Ok(())
    }
}

fn is_absolute_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+')
    })
}

/// The `name=value; name=value` list of an `fmtp` attribute.
struct FormatParameters<'a>(&'a str);

impl<'a> FormatParameters<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.0.split(';').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// A comma-separated list of base64 values, bounded in count.
    fn base64_list(&self, name: &'static str) -> Result<Vec<Bytes>, &'static str> {
        let Some(value) = self.get(name) else {
            return Ok(Vec::new());
        };
        let mut sets = Vec::new();
        for item in value.split(',').filter(|item| !item.is_empty()) {
            if sets.len() >= MAX_PARAMETER_SETS {
                return Err(name);
            }
            sets.push(Bytes::from(decode_base64(item).ok_or(name)?));
        }
        Ok(sets)
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Base64 and hex are a few lines each; a crate would add a dependency to the no_std core for
// less than it takes to write them, and these decode into at most 3/4 (or 1/2) of an input
// that the caller has already bounded.
fn push_base64_list<'a>(out: &mut String, sets: impl Iterator<Item = &'a Bytes>) {
    for (index, set) in sets.enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_base64(out, set);
    }
}

/// Appends standard base64 with padding.
pub(crate) fn push_base64(out: &mut String, data: &[u8]) {
    let symbol =
        |index: u32| char::from(BASE64.get((index & 63) as usize).copied().unwrap_or(b'A'));
    for chunk in data.chunks(3) {
        let bytes = [0, 1, 2].map(|i| u32::from(chunk.get(i).copied().unwrap_or(0)));
        let triple = (bytes[0] << 16) | (bytes[1] << 8) | bytes[2];
        out.push(symbol(triple >> 18));
        out.push(symbol(triple >> 12));
        out.push(if chunk.len() > 1 {
            symbol(triple >> 6)
        } else {
            '='
        });
        out.push(if chunk.len() > 2 { symbol(triple) } else { '=' });
    }
}

/// Decodes standard base64; padding is optional, anything else outside the alphabet fails.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut accumulator: u32 = 0;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = BASE64.iter().position(|symbol| *symbol == byte)? as u32;
        accumulator = (accumulator << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((accumulator >> bits) as u8);
            accumulator &= (1 << bits) - 1;
        }
    }
    // A lone sixth of a byte cannot come from any encoding.
    (bits < 6).then_some(out)
}

/// Appends upper-case hex.
pub(crate) fn push_hex(out: &mut String, data: &[u8]) {
    for byte in data {
        let _ = write!(out, "{byte:02X}");
    }
}

/// Decodes hex of either case; odd lengths fail.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let digit = |b: u8| char::from(b).to_digit(16);
            let (high, low) = (digit(*pair.first()?)?, digit(*pair.get(1)?)?);
            Some((high * 16 + low) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;

    /// ffmpeg's RTSP muxer (Lavf59.27) announcing H.264 + AAC.
    const FFMPEG_H264_AAC: &str =
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\n\
        t=0 0\r\na=tool:libavformat LIBAVFORMAT_VERSION\r\nm=video 0 RTP/AVP 96\r\nb=AS:295\r\n\
        a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; \
        sprop-parameter-sets=Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvDyyLA; profile-level-id=64000D\r\n\
        a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:127\r\n\
        a=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;\
        sizelength=13;indexlength=3;indexdeltalength=3; config=121056E500\r\n\
        a=control:streamid=1\r\n";

    /// ffmpeg's RTSP muxer announcing H.265 + AAC.
    const FFMPEG_H265_AAC: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\n\
        t=0 0\r\na=tool:libavformat LIBAVFORMAT_VERSION\r\nm=video 0 RTP/AVP 96\r\nb=AS:187\r\n\
        a=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwA8lZgJ; \
        sprop-sps=QgEBAWAAAAMAkAAAAwAAAwA8oAoIDxZZWaSTK8BaAgAAAwACAAADADIQ; sprop-pps=RAHBcrRiQA==\r\n\
        a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:127\r\n\
        a=rtpmap:97 MPEG4-GENERIC/48000/2\r\na=fmtp:97 profile-level-id=1;mode=AAC-hbr;\
        sizelength=13;indexlength=3;indexdeltalength=3; config=119056E500\r\n\
        a=control:streamid=1\r\n";

    #[test]
    fn parses_ffmpeg_h264_aac() {
        let sdp = SessionDescription::parse(FFMPEG_H264_AAC.as_bytes()).unwrap();
        assert_eq!(sdp.session_name, "No Name");
        assert_eq!(sdp.media.len(), 2);
        let video = &sdp.media[0];
        assert_eq!(
            (video.kind.clone(), video.payload_type, video.clock_rate),
            (MediaType::Video, 96, 90_000)
        );
        let SdpCodec::H264 {
            sps,
            pps,
            profile_level_id,
            packetization_mode,
        } = &video.codec
        else {
            panic!("{:?}", video.codec)
        };
        assert_eq!(sps.len(), 1);
        assert_eq!(&sps[0][..4], &[0x67, 0x64, 0x00, 0x0d]);
        assert_eq!(&pps[0][..], &[0x68, 0xeb, 0xc3, 0xcb, 0x22, 0xc0]);
        assert_eq!(*profile_level_id, Some([0x64, 0x00, 0x0d]));
        assert_eq!(*packetization_mode, 1);
        assert_eq!(
            video.control_url("rtsp://h/live/x"),
            "rtsp://h/live/x/streamid=0"
        );
        let Some(TrackConfig::Avc(avc)) = video.track_config() else {
            panic!()
        };
        assert_eq!((avc.profile, avc.level), (0x64, 0x0d));

        let audio = &sdp.media[1];
        assert_eq!(
            audio.codec,
            SdpCodec::Aac {
                config: Bytes::from_static(&[0x12, 0x10, 0x56, 0xe5, 0x00]),
                sample_rate: 44_100,
                channels: 2,
                size_length: 13,
                index_length: 3,
                index_delta_length: 3,
            }
        );
        let Some(TrackConfig::Aac(aac)) = audio.track_config() else {
            panic!()
        };
        assert_eq!((aac.sample_rate, aac.channels), (44_100, 2));
    }

    #[test]
    fn parses_ffmpeg_h265_aac() {
        let sdp = SessionDescription::parse(FFMPEG_H265_AAC.as_bytes()).unwrap();
        let SdpCodec::H265 { vps, sps, pps } = &sdp.media[0].codec else {
            panic!()
        };
        assert_eq!((vps.len(), sps.len(), pps.len()), (1, 1, 1));
        // NAL unit types 32, 33, 34.
        assert_eq!(
            [vps[0][0] >> 1, sps[0][0] >> 1, pps[0][0] >> 1],
            [32, 33, 34]
        );
        assert_eq!(&pps[0][..], &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40]);
        let SdpCodec::Aac { sample_rate, .. } = sdp.media[1].codec else {
            panic!()
        };
        assert_eq!(sample_rate, 48_000);
        assert_eq!(
            sdp.media[1].control_url("rtsp://h/x/"),
            "rtsp://h/x/streamid=1"
        );
    }

    #[test]
    fn builds_from_tracks_and_reads_back() {
        let sdp = SessionDescription::parse(FFMPEG_H264_AAC.as_bytes()).unwrap();
        let tracks: Vec<TrackConfig> = sdp
            .media
            .iter()
            .filter_map(MediaDescription::track_config)
            .collect();
        let built = SessionDescription::from_tracks(&tracks, "mediakit");
        let text = built.to_string();
        assert!(text.contains("a=rtpmap:96 H264/90000\r\n"));
        assert!(text.contains(
            "a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvDyyLA; profile-level-id=64000D\r\n"
        ));
        assert!(text.contains("a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n"));
        assert!(text.contains("config=121056E500\r\na=control:trackID=1\r\n"));
        let again = SessionDescription::parse(text.as_bytes()).unwrap();
        assert_eq!(again, built);
        assert_eq!(
            again.media[1].control_url("rtsp://h/live/x"),
            "rtsp://h/live/x/trackID=1"
        );
        let absolute = MediaDescription {
            control: Some(String::from("rtsp://o/t")),
            ..again.media[0].clone()
        };
        assert_eq!(absolute.control_url("rtsp://h/live/x"), "rtsp://o/t");
    }

    #[test]
    fn malformed_descriptions_are_errors() {
        for text in [
            "",
            "o=- 0 0\r\n",
            "v=1\r\n",
            "v=0\r\nnot a line\r\n",
            "v=0\r\nm=video x RTP/AVP 96\r\n",
            "v=0\r\nm=video 0 RTP/AVP 200\r\n",
            "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets=Z2Q*\r\n",
            "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=fmtp:97 config=123\r\n",
        ] {
            assert!(SessionDescription::parse(text.as_bytes()).is_err(), "{text:?}");
        }
        let mut many = String::from("v=0\r\n");
        for _ in 0..=MAX_MEDIA {
            many.push_str("m=video 0 RTP/AVP 96\r\n");
        }
        assert_eq!(
            SessionDescription::parse(many.as_bytes()),
            Err(SdpError::TooMany {
                what: "media sections",
                max: MAX_MEDIA
            })
        );
    }

    #[test]
    fn base64_and_hex_known_answers() {
        let mut out = String::new();
        push_base64(&mut out, b"foobar");
        push_base64(&mut out, b"fo");
        assert_eq!(out, "Zm9vYmFyZm8=");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm8").unwrap(), b"fo");
        assert_eq!(decode_base64("Z"), None);
        assert_eq!(decode_base64("Zm-8"), None);
        assert_eq!(decode_hex("0aFf").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(decode_hex("0g"), None);
    }

    fn arb_sets(first: u8) -> impl Strategy<Value = Vec<Bytes>> {
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4).prop_map(
            move |sets| {
                sets.into_iter()
                    .map(|mut set| {
                        set.insert(0, first);
                        Bytes::from(set)
                    })
                    .collect()
            },
        )
    }

    fn arb_media() -> impl Strategy<Value = MediaDescription> {
        let codec = prop_oneof![
            (
                arb_sets(0x67),
                arb_sets(0x68),
                proptest::option::of(any::<[u8; 3]>()),
                0u8..3
            )
                .prop_map(|(sps, pps, profile_level_id, packetization_mode)| (
                    MediaType::Video,
                    90_000,
                    SdpCodec::H264 {
                        sps,
                        pps,
                        profile_level_id,
                        packetization_mode
                    }
                )),
            (arb_sets(0x40), arb_sets(0x42), arb_sets(0x44)).prop_map(|(vps, sps, pps)| (
                MediaType::Video,
                90_000,
                SdpCodec::H265 { vps, sps, pps }
            )),
            (
                proptest::collection::vec(any::<u8>(), 0..8),
                1u32..200_000,
                1u8..9,
                0u8..17,
                0u8..9,
                0u8..9
            )
                .prop_map(
                    |(
                        config,
                        sample_rate,
                        channels,
                        size_length,
                        index_length,
                        index_delta_length,
                    )| (
                        MediaType::Audio,
                        sample_rate,
                        SdpCodec::Aac {
                            config: Bytes::from(config),
                            sample_rate,
                            channels,
                            size_length,
                            index_length,
                            index_delta_length
                        }
                    )
                ),
            ("[A-Z][A-Z0-9-]{0,10}", 1u32..100_000).prop_map(|(encoding, rate)| (
                MediaType::Other(String::from("application")),
                rate,
                SdpCodec::Other { encoding }
            )),
        ];
        (
            codec,
            any::<u16>(),
            0u8..128,
            proptest::option::of("[a-zA-Z0-9=/:._-]{1,30}"),
        )
            .prop_map(|((kind, clock_rate, codec), port, payload_type, control)| {
                MediaDescription {
                    kind,
                    port,
                    protocol: String::from("RTP/AVP"),
                    payload_type,
                    clock_rate,
                    codec,
                    control,
                }
            })
    }

    proptest! {
        #[test]
        fn build_then_parse_is_identity(
            media in proptest::collection::vec(arb_media(), 0..4),
            name in "[ -~]{0,20}",
            control in proptest::option::of("[!-~]{1,20}"),
        ) {
            let sdp = SessionDescription {
                origin: String::from("- 1 1 IN IP4 127.0.0.1"),
                session_name: name,
                connection: None,
                control,
                range: Some(String::from("npt=now-")),
                media,
            };
            prop_assert_eq!(SessionDescription::parse(sdp.to_string().as_bytes()).unwrap(), sdp);
        }

        #[test]
        fn base64_round_trips(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut text = String::new();
            push_base64(&mut text, &data);
            prop_assert_eq!(decode_base64(&text).unwrap(), data.clone());
            let mut hex = String::new();
            push_hex(&mut hex, &data);
            prop_assert_eq!(decode_hex(&hex).unwrap(), data);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = SessionDescription::parse(&input);
            let mut text = String::from("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 ");
            text.push_str(&String::from_utf8_lossy(&input));
            let _ = SessionDescription::parse(text.as_bytes());
        }
    }
}
