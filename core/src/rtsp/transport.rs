//! The `Transport` (RFC 2326 §12.39), `Range` (§12.29, npt only) and `RTP-Info` (§12.33)
//! header values.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use super::message::RtspError;

/// How RTP travels for one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowerTransport {
    /// RTP/RTCP over UDP datagrams (`RTP/AVP` or `RTP/AVP/UDP`).
    Udp,
    /// RTP/RTCP interleaved on the RTSP connection (`RTP/AVP/TCP`).
    Tcp,
}

/// The direction a `mode=` parameter asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportMode {
    /// `mode=play`: the server sends media (the default).
    Play,
    /// `mode=record`: the client publishes media.
    Record,
}

/// One transport specification from a `Transport` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// UDP or TCP interleaved.
    pub lower: LowerTransport,
    /// True for `unicast`, false for `multicast`.
    pub unicast: bool,
    /// `client_port=rtp-rtcp`.
    pub client_port: Option<(u16, u16)>,
    /// `server_port=rtp-rtcp`.
    pub server_port: Option<(u16, u16)>,
    /// `interleaved=rtp-rtcp` channels.
    pub interleaved: Option<(u8, u8)>,
    /// `mode=`.
    pub mode: Option<TransportMode>,
    /// `ssrc=` (hexadecimal on the wire).
    pub ssrc: Option<u32>,
}

impl Transport {
    /// A unicast transport with no parameters.
    pub fn new(lower: LowerTransport) -> Self {
        Self {
            lower,
            unicast: true,
            client_port: None,
            server_port: None,
            interleaved: None,
            mode: None,
            ssrc: None,
        }
    }

    /// Parses one transport specification (no commas).
    pub fn parse(spec: &str) -> Result<Self, RtspError> {
        let malformed = |what| RtspError::Malformed { what, offset: 0 };
        let mut parts = spec.split(';').map(str::trim);
        let lower = match parts.next().map(|p| p.to_ascii_uppercase()).as_deref() {
            Some("RTP/AVP" | "RTP/AVP/UDP") => LowerTransport::Udp,
            Some("RTP/AVP/TCP") => LowerTransport::Tcp,
            _ => return Err(malformed("transport protocol")),
        };
        let mut transport = Transport::new(lower);
        for part in parts {
            let (name, value) = match part.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (part, None),
            };
            match (name.to_ascii_lowercase().as_str(), value) {
                ("unicast", None) => transport.unicast = true,
                ("multicast", None) => transport.unicast = false,
                ("client_port", Some(value)) => {
                    transport.client_port = Some(parse_pair(value).ok_or(malformed("client_port"))?)
                }
                ("server_port", Some(value)) => {
                    transport.server_port = Some(parse_pair(value).ok_or(malformed("server_port"))?)
                }
                ("interleaved", Some(value)) => {
                    transport.interleaved = Some(parse_pair(value).ok_or(malformed("interleaved"))?)
                }
                ("mode", Some(value)) => {
                    transport.mode = Some(if value.eq_ignore_ascii_case("record") {
                        TransportMode::Record
                    } else if value.eq_ignore_ascii_case("play") {
                        TransportMode::Play
                    } else {
                        return Err(malformed("mode"));
                    })
                }
                ("ssrc", Some(value)) => {
                    transport.ssrc = Some(
                        u32::from_str_radix(value, 16)
                            .ok()
                            .filter(|_| value.len() <= 8)
                            .ok_or(malformed("ssrc"))?,
                    )
                }
                // destination, source, ttl, layers, append...: not ours to act on.
                _ => {}
            }
        }
        Ok(transport)
    }

    /// Parses a whole header value and returns the first alternative we can serve: RTP/AVP over
    /// unicast UDP or interleaved TCP. Unsupported or malformed alternatives are skipped.
    pub fn parse_first_supported(value: &str) -> Result<Self, RtspError> {
        value
            .split(',')
            .filter_map(|spec| Transport::parse(spec).ok())
            .find(|transport| transport.unicast)
            .ok_or(RtspError::Malformed {
                what: "Transport (no supported alternative)",
                offset: 0,
            })
    }
}

/// `a-b` or a lone `a` (then `b = a + 1`, as RFC 2326 §12.39 specifies for ports).
fn parse_pair<T: core::str::FromStr + TryFrom<u32> + Into<u32> + Copy>(
    value: &str,
) -> Option<(T, T)> {
    match value.split_once('-') {
        Some((first, second)) => Some((first.parse().ok()?, second.parse().ok()?)),
        None => {
            let first: T = value.parse().ok()?;
            let second = T::try_from(first.into().checked_add(1)?).ok()?;
            Some((first, second))
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.lower {
            LowerTransport::Udp => "RTP/AVP",
            LowerTransport::Tcp => "RTP/AVP/TCP",
        })?;
        f.write_str(if self.unicast {
            ";unicast"
        } else {
            ";multicast"
        })?;
        if let Some((a, b)) = self.client_port {
            write!(f, ";client_port={a}-{b}")?;
        }
        if let Some((a, b)) = self.server_port {
            write!(f, ";server_port={a}-{b}")?;
        }
        if let Some((a, b)) = self.interleaved {
            write!(f, ";interleaved={a}-{b}")?;
        }
        if let Some(ssrc) = self.ssrc {
            write!(f, ";ssrc={ssrc:08X}")?;
        }
        match self.mode {
            Some(TransportMode::Play) => f.write_str(";mode=play"),
            Some(TransportMode::Record) => f.write_str(";mode=record"),
            None => Ok(()),
        }
    }
}

/// A point on the normal play time axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Npt {
    /// `now`: the live edge.
    Now,
    /// An offset in milliseconds.
    Millis(u64),
}

/// A `Range: npt=start-[end]` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NptRange {
    /// Where play starts.
    pub start: Npt,
    /// Where it ends, in milliseconds; open-ended (live) when `None`.
    pub end: Option<u64>,
}

impl NptRange {
    /// Parses `npt=...`; other range units (smpte, clock) are not supported.
    pub fn parse(value: &str) -> Result<Self, RtspError> {
        let malformed = RtspError::Malformed {
            what: "Range",
            offset: 0,
        };
        // A `;time=` parameter may follow the range.
        let value = value.split(';').next().unwrap_or_default().trim();
        let range = value.strip_prefix("npt=").ok_or(malformed.clone())?;
        let (start, end) = range.split_once('-').ok_or(malformed.clone())?;
        let start = match start.trim() {
            "now" => Npt::Now,
            "" => Npt::Millis(0),
            text => Npt::Millis(parse_npt_millis(text).ok_or(malformed.clone())?),
        };
        let end = match end.trim() {
            "" => None,
            text => Some(parse_npt_millis(text).ok_or(malformed)?),
        };
        Ok(Self { start, end })
    }
}

/// `seconds[.fraction]` or `h:mm:ss[.fraction]`, to milliseconds without floating point.
fn parse_npt_millis(text: &str) -> Option<u64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut seconds: u64 = 0;
    let mut fields = 0;
    for field in whole.split(':') {
        fields += 1;
        if fields > 3 || !digits(field) || field.len() > 12 {
            return None;
        }
        seconds = seconds.checked_mul(60)?.checked_add(field.parse().ok()?)?;
    }
    if !fraction.is_empty() && !digits(fraction) {
        return None;
    }
    let mut millis: u64 = 0;
    for (place, digit) in [100, 10, 1].iter().zip(fraction.bytes()) {
        millis += place * u64::from(digit - b'0');
    }
    seconds.checked_mul(1000)?.checked_add(millis)
}

impl fmt::Display for NptRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("npt=")?;
        match self.start {
            Npt::Now => f.write_str("now")?,
            Npt::Millis(ms) => write!(f, "{}.{:03}", ms / 1000, ms % 1000)?,
        }
        f.write_str("-")?;
        if let Some(ms) = self.end {
            write!(f, "{}.{:03}", ms / 1000, ms % 1000)?;
        }
        Ok(())
    }
}

/// One stream's entry in an `RTP-Info` header: where its RTP starts after PLAY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpInfo {
    /// The stream's control URL.
    pub url: String,
    /// Sequence number of the first packet sent.
    pub seq: Option<u16>,
    /// RTP timestamp of the first packet sent.
    pub rtptime: Option<u32>,
}

impl RtpInfo {
    /// Serialises the entries as an `RTP-Info` header value.
    pub fn header_value(entries: &[RtpInfo]) -> String {
        let mut value = String::new();
        for (index, entry) in entries.iter().enumerate() {
            if index > 0 {
                value.push(',');
            }
            let _ = write!(value, "url={}", entry.url.replace([',', ';'], ""));
            if let Some(seq) = entry.seq {
                let _ = write!(value, ";seq={seq}");
            }
            if let Some(rtptime) = entry.rtptime {
                let _ = write!(value, ";rtptime={rtptime}");
            }
        }
        value
    }

    /// Parses an `RTP-Info` header value; at most `max` entries are read.
    pub fn parse_header(value: &str, max: usize) -> Result<Vec<RtpInfo>, RtspError> {
        let malformed = RtspError::Malformed {
            what: "RTP-Info",
            offset: 0,
        };
        let mut entries = Vec::new();
        for entry in value.split(',').take(max) {
            let mut info = RtpInfo {
                url: String::new(),
                seq: None,
                rtptime: None,
            };
            for part in entry.split(';') {
                match part.trim().split_once('=') {
                    Some(("url", url)) => info.url = String::from(url),
                    Some(("seq", seq)) => {
                        info.seq = Some(seq.parse().map_err(|_| malformed.clone())?)
                    }
                    Some(("rtptime", time)) => {
                        info.rtptime = Some(time.parse().map_err(|_| malformed.clone())?)
                    }
                    _ => {}
                }
            }
            if info.url.is_empty() {
                return Err(malformed);
            }
            entries.push(info);
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    #[test]
    fn parses_what_ffmpeg_sends() {
        let tcp = Transport::parse("RTP/AVP/TCP;unicast;interleaved=2-3;mode=record").unwrap();
        assert_eq!(tcp.lower, LowerTransport::Tcp);
        assert_eq!(tcp.interleaved, Some((2, 3)));
        assert_eq!(tcp.mode, Some(TransportMode::Record));
        let udp =
            Transport::parse("RTP/AVP/UDP;unicast;client_port=28072-28073;mode=record").unwrap();
        assert_eq!(udp.lower, LowerTransport::Udp);
        assert_eq!(udp.client_port, Some((28072, 28073)));
        let play = Transport::parse("RTP/AVP/UDP;unicast;client_port=29604-29605").unwrap();
        assert_eq!((play.mode, play.unicast), (None, true));
        let mut answer = play.clone();
        answer.server_port = Some((30000, 30001));
        answer.ssrc = Some(0xdead_beef);
        assert_eq!(
            answer.to_string(),
            "RTP/AVP;unicast;client_port=29604-29605;server_port=30000-30001;ssrc=DEADBEEF"
        );
    }

    #[test]
    fn picks_the_first_supported_alternative() {
        let value = "RTP/SAVP;unicast;client_port=1-2,RTP/AVP;multicast;ttl=4,\
                     RTP/AVP/TCP;interleaved=4;mode=\"PLAY\",RTP/AVP;unicast;client_port=8000";
        let chosen = Transport::parse_first_supported(value).unwrap();
        assert_eq!(chosen.lower, LowerTransport::Tcp);
        assert_eq!(chosen.interleaved, Some((4, 5)));
        assert_eq!(chosen.mode, Some(TransportMode::Play));
        assert!(Transport::parse_first_supported("RTP/SAVP;unicast").is_err());
        assert!(Transport::parse("RTP/AVP;interleaved=255").is_err());
        assert!(Transport::parse("RTP/AVP;client_port=70000-70001").is_err());
    }

    #[test]
    fn npt_ranges() {
        let open = NptRange::parse("npt=0.000-").unwrap();
        assert_eq!(
            open,
            NptRange {
                start: Npt::Millis(0),
                end: None
            }
        );
        assert_eq!(open.to_string(), "npt=0.000-");
        assert_eq!(NptRange::parse("npt=now-").unwrap().start, Npt::Now);
        let closed = NptRange::parse("npt=1:02:03.5-3723.25;time=19970123T143720Z").unwrap();
        assert_eq!(closed.start, Npt::Millis(3_723_500));
        assert_eq!(closed.end, Some(3_723_250));
        assert!(NptRange::parse("smpte=0:10:00-").is_err());
        assert!(NptRange::parse("npt=1.x-").is_err());
        assert!(NptRange::parse("npt=99999999999999999999-").is_err());
    }

    #[test]
    fn rtp_info() {
        let entries = [
            RtpInfo {
                url: String::from("rtsp://h/live/x/trackID=0"),
                seq: Some(1234),
                rtptime: Some(90000),
            },
            RtpInfo {
                url: String::from("rtsp://h/live/x/trackID=1"),
                seq: Some(7),
                rtptime: None,
            },
        ];
        let value = RtpInfo::header_value(&entries);
        assert_eq!(
            value,
            "url=rtsp://h/live/x/trackID=0;seq=1234;rtptime=90000,url=rtsp://h/live/x/trackID=1;seq=7"
        );
        assert_eq!(RtpInfo::parse_header(&value, 8).unwrap(), entries);
    }

    fn arb_transport() -> impl Strategy<Value = Transport> {
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<(u16, u16)>()),
            proptest::option::of(any::<(u16, u16)>()),
            proptest::option::of(any::<(u8, u8)>()),
            proptest::option::of(prop_oneof![
                Just(TransportMode::Play),
                Just(TransportMode::Record)
            ]),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(
                |(tcp, unicast, client_port, server_port, interleaved, mode, ssrc)| Transport {
                    lower: if tcp {
                        LowerTransport::Tcp
                    } else {
                        LowerTransport::Udp
                    },
                    unicast,
                    client_port,
                    server_port,
                    interleaved,
                    mode,
                    ssrc,
                },
            )
    }

    proptest! {
        #[test]
        fn transport_round_trips(transport in arb_transport()) {
            prop_assert_eq!(Transport::parse(&transport.to_string()).unwrap(), transport);
        }

        #[test]
        fn npt_round_trips(start in proptest::option::of(0u64..1u64 << 40), end in proptest::option::of(0u64..1u64 << 40)) {
            let range = NptRange { start: start.map_or(Npt::Now, Npt::Millis), end };
            prop_assert_eq!(NptRange::parse(&range.to_string()).unwrap(), range);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[ -~]{0,120}") {
            let _ = Transport::parse_first_supported(&text);
            let _ = NptRange::parse(&text);
            let _ = RtpInfo::parse_header(&text, 4);
        }
    }
}
