//! The players: HTTP-FLV over a raw HTTP/1.1 request, and RTMP through the core's client
//! session, each counting the bytes its socket receives.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::BytesMut;
use mediakit_core::rtmp::client::{ClientEvent, ClientMode, RtmpClientConfig, RtmpClientSession};

use super::net::{connect, flush, read_some, Control};

/// Bytes one socket read takes at most.
const READ_BUF: usize = 64 * 1024;
/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// How a player plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `GET /live/NAME.flv HTTP/1.1`.
    HttpFlv,
    /// `play` over RTMP.
    Rtmp,
}

/// What the main thread sees of one player.
#[derive(Debug, Default)]
pub struct PlayerStats {
    /// Bytes received on the socket so far (response head and framing included).
    pub bytes: AtomicU64,
    /// Set at the first media: the first FLV body bytes, or the first RTMP media message.
    pub started: AtomicBool,
    /// Why the player ended before it was told to stop.
    pub failure: Mutex<Option<String>>,
}

impl PlayerStats {
    /// Records why the player ended early.
    pub fn fail(&self, why: String) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(why);
        }
    }

    /// Why the player ended early, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|failure| failure.clone())
    }
}

/// Plays `live/{name}` until `control` says stop; the error says why it ended sooner.
pub fn play(
    protocol: Protocol,
    addr: SocketAddr,
    name: &str,
    seed: u64,
    stats: &PlayerStats,
    control: &Control,
) -> Result<(), String> {
    match protocol {
        Protocol::HttpFlv => play_http(addr, name, stats, control),
        Protocol::Rtmp => play_rtmp(addr, name, seed, stats, control),
    }
}

fn play_http(
    addr: SocketAddr,
    name: &str,
    stats: &PlayerStats,
    control: &Control,
) -> Result<(), String> {
    let mut stream = connect(addr)?;
    let request = format!(
        "GET /live/{name}.flv HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: mediakit-load\r\n\
         Accept: */*\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("send request: {error}"))?;
    let mut buf = vec![0u8; READ_BUF];
    let mut head = Vec::new();
    let mut body = loop {
        if control.should_stop() {
            return Err("no response head before the deadline".into());
        }
        let Some(n) = read_some(&mut stream, &mut buf)? else {
            continue;
        };
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let mut body = FlvBody::from_head(&head[..end])?;
            if body.feed(&head[end + 4..])? > 0 {
                stats.started.store(true, Ordering::Relaxed);
            }
            break body;
        }
        if head.len() > MAX_HEAD {
            return Err("response head too long".into());
        }
    };
    while !control.should_stop() {
        let Some(n) = read_some(&mut stream, &mut buf)? else {
            continue;
        };
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if body.feed(&buf[..n])? > 0 {
            stats.started.store(true, Ordering::Relaxed);
        }
        if body.ended() {
            return Err("the response body ended".into());
        }
    }
    Ok(())
}

fn play_rtmp(
    addr: SocketAddr,
    name: &str,
    seed: u64,
    stats: &PlayerStats,
    control: &Control,
) -> Result<(), String> {
    let url = format!("rtmp://{addr}/live/{name}");
    let config =
        RtmpClientConfig::from_url(&url, ClientMode::Play).ok_or_else(|| format!("bad {url}"))?;
    let mut stream = connect(addr)?;
    let mut session = RtmpClientSession::new(config, control.now(), seed);
    let mut buf = vec![0u8; READ_BUF];
    let mut rx = BytesMut::with_capacity(READ_BUF);
    while !control.should_stop() {
        // Handshake replies, acknowledgements and pongs, as the session queues them.
        flush(session.transmit(), &mut stream, control)?;
        if let Some(n) = read_some(&mut stream, &mut buf)? {
            stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
            rx.extend_from_slice(&buf[..n]);
            session
                .handle_input(control.now(), &mut rx)
                .map_err(|error| format!("player session: {error}"))?;
        }
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::Media(_) => stats.started.store(true, Ordering::Relaxed),
                ClientEvent::Rejected { code, description } => {
                    return Err(format!("play rejected: {code} ({description})"))
                }
                ClientEvent::StreamEnded => return Err("the stream ended".into()),
                ClientEvent::Closed { reason } => return Err(format!("player closed: {reason}")),
                _ => {}
            }
        }
        session.handle_timeout(control.now());
    }
    session.stop();
    let _ = flush(session.transmit(), &mut stream, control);
    Ok(())
}

/// Checks an HTTP-FLV response as it arrives: a 200 head, then a body (chunked or
/// close-delimited) that opens with the FLV signature. Counting is done on the socket; this
/// only makes sure the bytes counted are an FLV stream.
#[derive(Debug)]
struct FlvBody {
    /// `None` for a close-delimited body.
    chunked: Option<Chunked>,
    /// Body payload bytes seen so far.
    payload: u64,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    Size {
        value: u64,
        digits: u8,
    },
    Extension {
        value: u64,
    },
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// The last chunk was seen: the response is over.
    Done,
}

impl FlvBody {
    fn from_head(head: &[u8]) -> Result<Self, String> {
        let head = String::from_utf8_lossy(head);
        let status = head.lines().next().unwrap_or_default();
        let mut words = status.split(' ');
        let version = words.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") || words.next() != Some("200") {
            return Err(format!("unexpected response: {status}"));
        }
        let chunked = head.lines().skip(1).any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("transfer-encoding")
                    && value.trim().eq_ignore_ascii_case("chunked")
            })
        });
        Ok(Self {
            chunked: chunked.then_some(Chunked::Size {
                value: 0,
                digits: 0,
            }),
            payload: 0,
        })
    }

    fn ended(&self) -> bool {
        self.chunked == Some(Chunked::Done)
    }

    /// Takes body bytes off the wire; returns the payload bytes among them.
    fn feed(&mut self, mut input: &[u8]) -> Result<u64, String> {
        let Some(mut state) = self.chunked else {
            self.payload_bytes(input)?;
            return Ok(input.len() as u64);
        };
        let mut payload = 0u64;
        while let Some((&byte, rest)) = input.split_first() {
            state = match state {
                Chunked::Data { remaining } => {
                    let take = input
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let (data, rest) = input.split_at(take);
                    self.payload_bytes(data)?;
                    payload += take as u64;
                    input = rest;
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        Chunked::DataCr
                    } else {
                        Chunked::Data { remaining }
                    }
                }
                other => {
                    input = rest;
                    Self::framing(other, byte)?
                }
            };
        }
        self.chunked = Some(state);
        Ok(payload)
    }

    /// One byte of chunk framing (everything but the data).
    fn framing(state: Chunked, byte: u8) -> Result<Chunked, String> {
        let bad = || format!("bad chunked framing at byte {byte:#04x} in {state:?}");
        Ok(match (state, byte) {
            (Chunked::Size { value, digits }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                // Fifteen hex digits is far beyond any chunk a server sends, and cannot overflow.
                if digits == 15 {
                    return Err(bad());
                }
                let digit = char::from(byte).to_digit(16).ok_or_else(bad)?;
                Chunked::Size {
                    value: value * 16 + u64::from(digit),
                    digits: digits + 1,
                }
            }
            (Chunked::Size { value, digits }, b';' | b' ' | b'\t') if digits > 0 => {
                Chunked::Extension { value }
            }
            (Chunked::Size { value, digits }, b'\r') if digits > 0 => Chunked::SizeLf { value },
            (Chunked::Extension { value }, b'\r') => Chunked::SizeLf { value },
            (Chunked::Extension { value }, _) => Chunked::Extension { value },
            (Chunked::SizeLf { value: 0 }, b'\n') => Chunked::Done,
            (Chunked::SizeLf { value }, b'\n') => Chunked::Data { remaining: value },
            (Chunked::DataCr, b'\r') => Chunked::DataLf,
            (Chunked::DataLf, b'\n') => Chunked::Size {
                value: 0,
                digits: 0,
            },
            // Trailers after the last chunk are of no interest.
            (Chunked::Done, _) => Chunked::Done,
            _ => return Err(bad()),
        })
    }

    /// Checks the FLV signature at the start of the payload and counts it.
    fn payload_bytes(&mut self, data: &[u8]) -> Result<(), String> {
        const SIGNATURE: &[u8] = b"FLV";
        let at = usize::try_from(self.payload).unwrap_or(usize::MAX);
        if let Some(expected) = SIGNATURE.get(at..) {
            let n = expected.len().min(data.len());
            if data.get(..n) != expected.get(..n) {
                return Err("the body is not an FLV stream".into());
            }
        }
        self.payload += data.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKED_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\
                                  Transfer-Encoding: chunked";

    #[test]
    fn a_chunked_flv_body_is_decoded_across_any_split() {
        let wire = b"3\r\nFLV\r\n6;ext=1\r\n\x01\x05\0\0\0\x09\r\n0\r\n\r\n";
        for split in 0..=wire.len() {
            let mut body = FlvBody::from_head(CHUNKED_HEAD).expect("a 200 head");
            let (a, b) = wire.split_at(split);
            let payload = body.feed(a).expect("valid") + body.feed(b).expect("valid");
            assert_eq!(payload, 9, "split at {split}");
            assert!(body.ended());
        }
    }

    #[test]
    fn a_close_delimited_body_is_all_payload() {
        let mut body = FlvBody::from_head(b"HTTP/1.0 200 OK\r\nContent-Type: video/x-flv")
            .expect("a 200 head");
        assert_eq!(body.feed(b"FL").expect("valid"), 2);
        assert_eq!(body.feed(b"V\x01rest").expect("valid"), 6);
        assert!(!body.ended());
    }

    #[test]
    fn errors_and_other_bodies_are_refused() {
        assert!(FlvBody::from_head(b"HTTP/1.1 404 Not Found").is_err());
        let mut body = FlvBody::from_head(CHUNKED_HEAD).expect("a 200 head");
        assert!(body.feed(b"3\r\nGIF\r\n").is_err());
        let mut body = FlvBody::from_head(CHUNKED_HEAD).expect("a 200 head");
        assert!(body.feed(b"3\r\nFLVxx").is_err());
        let mut body = FlvBody::from_head(CHUNKED_HEAD).expect("a 200 head");
        assert!(body.feed(b"\r\n").is_err());
    }
}
