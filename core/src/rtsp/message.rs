//! RTSP/1.0 messages (RFC 2326 §6–§7) and the `$`-framed interleaved binary data (§10.12) that
//! shares the TCP connection with them.
//!
//! The request line of RTSP is not HTTP (`RTSP/1.0`, methods such as `ANNOUNCE`), and bodies
//! and interleaved frames follow heads on the same stream, so this is a small bounded parser of
//! its own rather than `httparse`. [`RtspDecoder::decode`] takes whole messages off the front of
//! the input buffer: incomplete input is `Ok(None)`, never an error, and bodies and interleaved
//! payloads are zero-copy `Bytes` split from that buffer.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bounds on what one message may occupy; checked before anything is buffered for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtspLimits {
    /// Largest message head (start line, headers, blank line), in bytes.
    pub max_head_bytes: usize,
    /// Largest number of header fields.
    pub max_headers: usize,
    /// Largest `Content-Length` accepted.
    pub max_body_bytes: usize,
}

impl Default for RtspLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Why the input stream cannot be read as RTSP. The connection cannot recover from any of
/// these: the decoder no longer knows where the next message starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtspError {
    /// The head grew past the configured bound without ending.
    #[error("RTSP message head exceeds {max} bytes")]
    HeadTooLarge {
        /// The bound.
        max: usize,
    },
    /// More header fields than the configured bound.
    #[error("RTSP message has more than {max} header fields")]
    TooManyHeaders {
        /// The bound.
        max: usize,
    },
    /// The declared body is larger than the configured bound.
    #[error("RTSP body of {len} bytes exceeds {max}")]
    BodyTooLarge {
        /// The declared `Content-Length`.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The bytes are not a valid RTSP message.
    #[error("malformed RTSP {what} at byte {offset}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Offset from the start of the message.
        offset: usize,
    },
}

/// RTSP methods (RFC 2326 §10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `OPTIONS`.
    Options,
    /// `DESCRIBE`.
    Describe,
    /// `ANNOUNCE`.
    Announce,
    /// `SETUP`.
    Setup,
    /// `PLAY`.
    Play,
    /// `PAUSE`.
    Pause,
    /// `RECORD`.
    Record,
    /// `TEARDOWN`.
    Teardown,
    /// `GET_PARAMETER`.
    GetParameter,
    /// `SET_PARAMETER`.
    SetParameter,
    /// `REDIRECT`.
    Redirect,
    /// Any other method token, as sent.
    Other(String),
}

impl Method {
    /// The method from its token; unknown tokens become [`Method::Other`].
    pub fn from_token(token: &str) -> Self {
        match token {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "ANNOUNCE" => Method::Announce,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "RECORD" => Method::Record,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "REDIRECT" => Method::Redirect,
            other => Method::Other(String::from(other)),
        }
    }

    /// The method token as it goes on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Announce => "ANNOUNCE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Record => "RECORD",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Redirect => "REDIRECT",
            Method::Other(token) => token,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol version of a start line, `RTSP/major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
}

impl Version {
    /// `RTSP/1.0`.
    pub const RTSP_1_0: Version = Version { major: 1, minor: 0 };
}

/// Header fields in the order they arrived; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// No header fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of the first field called `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Appends a field. CR, LF and other control characters are removed from both parts, so a
    /// value echoed from a peer cannot inject header lines into what we send.
    pub fn push(&mut self, name: &str, value: &str) {
        self.fields.push((sanitize(name), sanitize(value)));
    }

    /// Replaces every field called `name` by one with `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.push(name, value);
    }

    /// Removes every field called `name`.
    pub fn remove(&mut self, name: &str) {
        self.fields
            .retain(|(field, _)| !field.eq_ignore_ascii_case(name));
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `CSeq` as a number.
    pub fn cseq(&self) -> Option<u32> {
        self.get("CSeq")?.trim().parse().ok()
    }

    /// The session identifier of the `Session` header, without its `;timeout=` parameter.
    pub fn session(&self) -> Option<&str> {
        let value = self.get("Session")?;
        let id = value.split(';').next().unwrap_or(value).trim();
        (!id.is_empty()).then_some(id)
    }

    /// `Content-Length` as a number; absent means 0, unparsable is `None`.
    fn content_length(&self) -> Option<usize> {
        match self.get("Content-Length") {
            None => Some(0),
            Some(value) => value.trim().parse().ok(),
        }
    }

    fn write(&self, out: &mut BytesMut, body_len: usize) {
        for (name, value) in self.iter() {
            if name.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        if body_len > 0 {
            let mut line = String::new();
            let _ = write!(line, "Content-Length: {body_len}\r\n");
            out.put_slice(line.as_bytes());
        }
        out.put_slice(b"\r\n");
    }
}

fn write_message(out: &mut BytesMut, start_line: &str, headers: &Headers, body: &[u8]) {
    out.reserve(start_line.len() + 256 + body.len());
    out.put_slice(start_line.as_bytes());
    headers.write(out, body.len());
    out.put_slice(body);
}

fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| *c == '\t' || !c.is_control())
        .collect()
}

/// An RTSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The request URI as sent (`*` for a server-wide OPTIONS).
    pub uri: String,
    /// The protocol version.
    pub version: Version,
    /// The header fields.
    pub headers: Headers,
    /// The body, `Content-Length` bytes (often an SDP).
    pub body: Bytes,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: &str) -> Self {
        Self {
            method,
            uri: sanitize(uri).replace(' ', "%20"),
            version: Version::RTSP_1_0,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Sets the body; `Content-Length` is written from it.
    pub fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    /// `CSeq`, which the response must echo.
    pub fn cseq(&self) -> Option<u32> {
        self.headers.cseq()
    }

    /// The session identifier, without parameters.
    pub fn session(&self) -> Option<&str> {
        self.headers.session()
    }

    /// Appends the request to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut line = String::new();
        let _ = write!(
            line,
            "{} {} RTSP/{}.{}\r\n",
            self.method, self.uri, self.version.major, self.version.minor
        );
        write_message(out, &line, &self.headers, &self.body);
    }
}

/// An RTSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The protocol version.
    pub version: Version,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
    /// The body, `Content-Length` bytes.
    pub body: Bytes,
}

impl Response {
    /// A response with no headers and no body.
    pub fn new(status: u16, reason: &str) -> Self {
        Self {
            version: Version::RTSP_1_0,
            status,
            reason: sanitize(reason),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A response to `request`, echoing its `CSeq` (and `Session`, if it had one) as RFC 2326
    /// §12.17 requires.
    pub fn to(request: &Request, status: u16, reason: &str) -> Self {
        let mut response = Self::new(status, reason);
        if let Some(cseq) = request.headers.get("CSeq") {
            response.headers.push("CSeq", cseq.trim());
        }
        if let Some(session) = request.session() {
            response.headers.push("Session", session);
        }
        response
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Sets the body; `Content-Length` is written from it.
    pub fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    /// `CSeq` of the request this answers.
    pub fn cseq(&self) -> Option<u32> {
        self.headers.cseq()
    }

    /// Appends the response to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut line = String::new();
        let _ = write!(
            line,
            "RTSP/{}.{} {:03} {}\r\n",
            self.version.major, self.version.minor, self.status, self.reason
        );
        write_message(out, &line, &self.headers, &self.body);
    }
}

/// One item taken off an RTSP connection's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A request.
    Request(Request),
    /// A response (a client reads these; a server sees them only if it sent requests).
    Response(Response),
    /// A `$`-framed binary packet (RTP or RTCP over TCP, RFC 2326 §10.12).
    Interleaved {
        /// The interleaved channel.
        channel: u8,
        /// The packet, split from the input without copying.
        payload: Bytes,
    },
}

/// Writes the 4-byte interleaved frame header for a payload of `len` bytes (which the caller
/// sends after it, without copying). Returns `None` if `len` does not fit in 16 bits.
pub fn interleaved_header(channel: u8, len: usize) -> Option<[u8; 4]> {
    let [high, low] = u16::try_from(len).ok()?.to_be_bytes();
    Some([b'$', channel, high, low])
}

/// The incremental decoder for one RTSP connection's input stream.
#[derive(Debug, Clone, Default)]
pub struct RtspDecoder {
    limits: RtspLimits,
}

impl RtspDecoder {
    /// A decoder with these bounds.
    pub fn new(limits: RtspLimits) -> Self {
        Self { limits }
    }

    /// The bounds in force.
    pub fn limits(&self) -> RtspLimits {
        self.limits
    }

    /// Takes the next complete message or interleaved frame off the front of `input`.
    ///
    /// Returns `Ok(None)` (consuming nothing but blank lines) until a whole item has arrived.
    pub fn decode(&self, input: &mut BytesMut) -> Result<Option<Input>, RtspError> {
        // Some clients send a bare CRLF as a keep-alive between messages.
        let blank = input
            .iter()
            .take_while(|byte| **byte == b'\r' || **byte == b'\n')
            .count();
        input.advance(blank);
        let Some(&first) = input.first() else {
            return Ok(None);
        };
        if first == b'$' {
            return Ok(decode_interleaved(input));
        }
        if !first.is_ascii_uppercase() {
            return Err(RtspError::Malformed {
                what: "start line",
                offset: 0,
            });
        }
        let Some(head_len) = find_head_end(input, self.limits.max_head_bytes)? else {
            return Ok(None);
        };
        let head = input.get(..head_len).unwrap_or_default();
        let (start, headers) = parse_head(head, self.limits.max_headers)?;
        let body_len = headers.content_length().ok_or(RtspError::Malformed {
            what: "Content-Length",
            offset: 0,
        })?;
        if body_len > self.limits.max_body_bytes {
            return Err(RtspError::BodyTooLarge {
                len: body_len,
                max: self.limits.max_body_bytes,
            });
        }
        if input.len().saturating_sub(head_len) < body_len {
            return Ok(None);
        }
        input.advance(head_len);
        let body = input.split_to(body_len).freeze();
        Ok(Some(match start {
            StartLine::Request {
                method,
                uri,
                version,
            } => Input::Request(Request {
                method,
                uri,
                version,
                headers,
                body,
            }),
            StartLine::Response {
                version,
                status,
                reason,
            } => Input::Response(Response {
                version,
                status,
                reason,
                headers,
                body,
            }),
        }))
    }
}

fn decode_interleaved(input: &mut BytesMut) -> Option<Input> {
    let [_, channel, high, low] = *input.first_chunk::<4>()?;
    let len = usize::from(u16::from_be_bytes([high, low]));
    if input.len() < 4 + len {
        return None;
    }
    input.advance(4);
    let payload = input.split_to(len).freeze();
    Some(Input::Interleaved { channel, payload })
}

/// The length of the head (through the blank line), once it has all arrived.
fn find_head_end(input: &[u8], max: usize) -> Result<Option<usize>, RtspError> {
    let window = input.get(..max).unwrap_or(input);
    let mut line_start = 0;
    for (index, byte) in window.iter().enumerate() {
        if *byte != b'\n' {
            continue;
        }
        let line = window.get(line_start..index).unwrap_or_default();
        if line.is_empty() || line == b"\r" {
            return Ok(Some(index + 1));
        }
        line_start = index + 1;
    }
    if input.len() >= max {
        return Err(RtspError::HeadTooLarge { max });
    }
    Ok(None)
}

enum StartLine {
    Request {
        method: Method,
        uri: String,
        version: Version,
    },
    Response {
        version: Version,
        status: u16,
        reason: String,
    },
}

fn parse_head(head: &[u8], max_headers: usize) -> Result<(StartLine, Headers), RtspError> {
    let malformed = |what, offset| RtspError::Malformed { what, offset };
    let text =
        core::str::from_utf8(head).map_err(|error| malformed("head", error.valid_up_to()))?;
    let mut offset = 0;
    let mut lines = text.split('\n').map(|line| {
        let start = offset;
        offset += line.len() + 1;
        (start, line.strip_suffix('\r').unwrap_or(line))
    });
    let (_, start_line) = lines.next().ok_or(malformed("start line", 0))?;
    let start = parse_start_line(start_line)?;
    let mut headers = Headers::new();
    for (at, line) in lines {
        if line.is_empty() {
            break;
        }
        if line
            .bytes()
            .any(|byte| byte != b'\t' && byte.is_ascii_control())
        {
            return Err(malformed("header field", at));
        }
        if line.starts_with([' ', '\t']) {
            // An obsolete folded continuation line belongs to the previous field's value.
            let (_, value) = headers
                .fields
                .last_mut()
                .ok_or(malformed("header continuation", at))?;
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(malformed("header field", at))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(malformed("header name", at));
        }
        if headers.len() >= max_headers {
            return Err(RtspError::TooManyHeaders { max: max_headers });
        }
        headers
            .fields
            .push((String::from(name), String::from(value.trim())));
    }
    Ok((start, headers))
}

fn parse_start_line(line: &str) -> Result<StartLine, RtspError> {
    let malformed = |what| RtspError::Malformed { what, offset: 0 };
    let mut parts = line.splitn(3, ' ');
    let first = parts.next().unwrap_or_default();
    let second = parts.next().ok_or(malformed("start line"))?;
    let third = parts.next().ok_or(malformed("start line"))?;
    if let Some(version) = first.strip_prefix("RTSP/") {
        let version = parse_version(version).ok_or(malformed("version"))?;
        let status = (second.len() == 3 && second.bytes().all(|b| b.is_ascii_digit()))
            .then(|| second.parse().ok())
            .flatten()
            .ok_or(malformed("status code"))?;
        return Ok(StartLine::Response {
            version,
            status,
            reason: String::from(third),
        });
    }
    if first.is_empty() || !first.bytes().all(is_token_byte) {
        return Err(malformed("method"));
    }
    if second.is_empty() || second.contains(' ') {
        return Err(malformed("request URI"));
    }
    let version = third
        .strip_prefix("RTSP/")
        .and_then(parse_version)
        .ok_or(malformed("version"))?;
    Ok(StartLine::Request {
        method: Method::from_token(first),
        uri: String::from(second),
        version,
    })
}

fn parse_version(text: &str) -> Option<Version> {
    let (major, minor) = text.split_once('.')?;
    let digit = |part: &str| match part.as_bytes() {
        [digit @ b'0'..=b'9'] => Some(digit - b'0'),
        _ => None,
    };
    Some(Version {
        major: digit(major)?,
        minor: digit(minor)?,
    })
}

/// RFC 2616 token characters, which RTSP method and header names are made of.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    const PUBLISH_TCP: &[u8] = include_bytes!("testdata/ffmpeg_publish_tcp.bin");
    const PLAY_UDP: &[u8] = include_bytes!("testdata/ffmpeg_play_udp.bin");

    fn decode_all(decoder: &RtspDecoder, input: &[u8]) -> Result<(Vec<Input>, usize), RtspError> {
        let mut buffer = BytesMut::from(input);
        let mut items = Vec::new();
        while let Some(item) = decoder.decode(&mut buffer)? {
            items.push(item);
        }
        Ok((items, buffer.len()))
    }

    fn request(item: &Input) -> &Request {
        match item {
            Input::Request(request) => request,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn decodes_an_ffmpeg_tcp_publish() {
        let (items, left) = decode_all(&RtspDecoder::default(), PUBLISH_TCP).unwrap();
        assert_eq!(left, 0);
        let methods: Vec<_> = items
            .iter()
            .filter_map(|item| match item {
                Input::Request(request) => Some(request.method.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            methods,
            [
                Method::Options,
                Method::Announce,
                Method::Setup,
                Method::Setup,
                Method::Record
            ]
        );
        let announce = request(&items[1]);
        assert_eq!(announce.uri, "rtsp://127.0.0.1:18554/live/x");
        assert_eq!(announce.cseq(), Some(2));
        assert_eq!(
            announce.headers.get("content-type"),
            Some("application/sdp")
        );
        assert_eq!(announce.body.len(), 506);
        assert!(announce.body.starts_with(b"v=0\r\n"));
        let setup = request(&items[3]);
        assert_eq!(setup.uri, "rtsp://127.0.0.1:18554/live/x/streamid=1");
        assert_eq!(
            setup.headers.get("TRANSPORT"),
            Some("RTP/AVP/TCP;unicast;interleaved=2-3;mode=record")
        );
        assert_eq!(setup.session(), Some("12345678"));
        let frames: Vec<_> = items
            .iter()
            .filter_map(|item| match item {
                Input::Interleaved { channel, payload } => Some((*channel, payload.len())),
                _ => None,
            })
            .collect();
        assert!(frames.len() > 3);
        // ffmpeg opens each track with an RTCP sender report on the odd channel.
        assert!(frames
            .iter()
            .any(|(channel, len)| *channel == 3 && *len == 28));
        assert!(frames.iter().all(|(channel, _)| *channel < 4));
    }

    #[test]
    fn decodes_an_ffmpeg_udp_play() {
        let (items, left) = decode_all(&RtspDecoder::default(), PLAY_UDP).unwrap();
        assert_eq!(left, 0);
        assert_eq!(items.len(), 5);
        let play = request(&items[4]);
        assert_eq!(play.method, Method::Play);
        assert_eq!(play.headers.get("range"), Some("npt=0.000-"));
        assert_eq!(play.headers.get("User-Agent"), Some("Lavf59.27.100"));
        let describe = request(&items[1]);
        assert_eq!(describe.method, Method::Describe);
        assert!(describe.body.is_empty());
    }

    #[test]
    fn interleaved_payload_is_a_zero_copy_slice() {
        let mut input =
            BytesMut::from(&b"$\x01\x00\x03abcOPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n"[..]);
        let base = input.as_ptr() as usize;
        let decoder = RtspDecoder::default();
        match decoder.decode(&mut input).unwrap() {
            Some(Input::Interleaved { channel, payload }) => {
                assert_eq!((channel, &payload[..]), (1, &b"abc"[..]));
                assert_eq!(payload.as_ptr() as usize, base + 4);
            }
            other => panic!("{other:?}"),
        }
        let options = decoder.decode(&mut input).unwrap().unwrap();
        assert_eq!(request(&options).uri, "*");
        assert_eq!(request(&options).cseq(), Some(9));
        assert!(input.is_empty());
    }

    #[test]
    fn responses_echo_cseq_and_session() {
        let (items, _) = decode_all(&RtspDecoder::default(), PLAY_UDP).unwrap();
        let play = request(&items[4]);
        let mut out = BytesMut::new();
        Response::to(play, 200, "OK")
            .header("Range", "npt=0.000-")
            .encode(&mut out);
        assert_eq!(
            &out[..],
            b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 12345678\r\nRange: npt=0.000-\r\n\r\n"
        );
        let decoded = RtspDecoder::default().decode(&mut out).unwrap().unwrap();
        match decoded {
            Input::Response(response) => {
                assert_eq!((response.status, response.cseq()), (200, Some(5)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let mut out = BytesMut::new();
        Response::new(404, "Not\r\nFound")
            .header("X-Reason", "a\r\nSet-Session: evil")
            .body(Bytes::from_static(b"hi"))
            .encode(&mut out);
        let text = core::str::from_utf8(&out).unwrap();
        assert_eq!(text.matches("\r\n").count(), 4);
        assert!(text.ends_with("Content-Length: 2\r\n\r\nhi"));
    }

    #[test]
    fn bounds_are_errors_before_buffering() {
        let decoder = RtspDecoder::default();
        let mut head = BytesMut::from(&b"OPTIONS * RTSP/1.0\r\n"[..]);
        while head.len() <= 8 * 1024 {
            head.put_slice(b"X-Pad: 0123456789abcdef\r\n");
        }
        assert_eq!(
            decoder.decode(&mut head),
            Err(RtspError::HeadTooLarge { max: 8 * 1024 })
        );
        let mut many = BytesMut::from(&b"OPTIONS * RTSP/1.0\r\n"[..]);
        for _ in 0..65 {
            many.put_slice(b"A: b\r\n");
        }
        many.put_slice(b"\r\n");
        assert_eq!(
            decoder.decode(&mut many),
            Err(RtspError::TooManyHeaders { max: 64 })
        );
        let mut body = BytesMut::from(&b"ANNOUNCE x RTSP/1.0\r\nContent-Length: 65537\r\n\r\n"[..]);
        assert_eq!(
            decoder.decode(&mut body),
            Err(RtspError::BodyTooLarge {
                len: 65537,
                max: 65536
            })
        );
        let mut garbage = BytesMut::from(&b"\x16\x03\x01"[..]);
        assert!(decoder.decode(&mut garbage).is_err());
        let mut partial = BytesMut::from(&b"\r\nPLAY rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n"[..]);
        assert_eq!(decoder.decode(&mut partial), Ok(None));
    }

    #[test]
    fn bad_start_lines_are_malformed() {
        let decoder = RtspDecoder::default();
        for input in [
            &b"PLAY rtsp://h/a HTTP/1.1\r\n\r\n"[..],
            b"PLAY  RTSP/1.0\r\n\r\n",
            b"RTSP/1.0 2000 OK\r\n\r\n",
            b"PLAY rtsp://h/a RTSP/1.0\r\nNoColon\r\n\r\n",
            b"PLAY rtsp://h/a RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
            b"P(AY x RTSP/1.0\r\n\r\n",
        ] {
            let mut buffer = BytesMut::from(input);
            assert!(
                matches!(
                    decoder.decode(&mut buffer),
                    Err(RtspError::Malformed { .. })
                ),
                "{:?}",
                core::str::from_utf8(input)
            );
        }
    }

    fn arb_token() -> impl Strategy<Value = String> {
        "[A-Z][A-Z_]{0,12}"
    }

    fn arb_headers() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}"), 0..8).prop_map(
            |fields| {
                fields
                    .into_iter()
                    .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
                    .map(|(name, value)| (name, String::from(value.trim())))
                    .collect()
            },
        )
    }

    fn arb_body() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
    }

    fn arb_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            (arb_token(), "[!-~]{1,60}", arb_headers(), arb_body()).prop_map(
                |(method, uri, headers, body)| {
                    let mut request = Request::new(Method::from_token(&method), &uri).body(body);
                    for (name, value) in headers {
                        request = request.header(&name, &value);
                    }
                    Input::Request(request)
                }
            ),
            (100u16..1000, "[ -~]{0,30}", arb_headers(), arb_body()).prop_map(
                |(status, reason, headers, body)| {
                    let mut response = Response::new(status, &reason).body(body);
                    for (name, value) in headers {
                        response = response.header(&name, &value);
                    }
                    Input::Response(response)
                }
            ),
            (any::<u8>(), arb_body())
                .prop_map(|(channel, payload)| Input::Interleaved { channel, payload }),
        ]
    }

    fn encode(item: &Input, out: &mut BytesMut) {
        match item {
            Input::Request(request) => request.encode(out),
            Input::Response(response) => response.encode(out),
            Input::Interleaved { channel, payload } => {
                out.put_slice(&interleaved_header(*channel, payload.len()).unwrap());
                out.put_slice(payload);
            }
        }
    }

    /// What decoding yields for an encoded item: a body adds the Content-Length field.
    fn expected(item: &Input) -> Input {
        let with_length = |headers: &Headers, len: usize| {
            let mut headers = headers.clone();
            if len > 0 {
                headers.push("Content-Length", &alloc::format!("{len}"));
            }
            headers
        };
        match item.clone() {
            Input::Request(mut request) => {
                request.headers = with_length(&request.headers, request.body.len());
                Input::Request(request)
            }
            Input::Response(mut response) => {
                response.headers = with_length(&response.headers, response.body.len());
                Input::Response(response)
            }
            other => other,
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity_under_any_split(
            items in proptest::collection::vec(arb_input(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut wire = BytesMut::new();
            for item in &items {
                encode(item, &mut wire);
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let decoder = RtspDecoder::default();
            let (mut buffer, mut decoded, mut fed) = (BytesMut::new(), Vec::new(), 0);
            for cut in cuts {
                buffer.put_slice(&wire[fed..cut]);
                fed = cut;
                while let Some(item) = decoder.decode(&mut buffer).unwrap() {
                    decoded.push(item);
                }
            }
            prop_assert!(buffer.is_empty());
            let expected: Vec<Input> = items.iter().map(expected).collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let decoder = RtspDecoder::new(RtspLimits { max_head_bytes: 512, max_headers: 8, max_body_bytes: 256 });
            let mut buffer = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = decoder.decode(&mut buffer) {}
        }

        #[test]
        fn mutated_captures_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
        ) {
            let mut input = vec![0u8; 0];
            input.extend_from_slice(PUBLISH_TCP.get(..1200).unwrap());
            for (at, byte) in flips {
                let index = at.index(input.len());
                input[index] = byte;
            }
            let _ = decode_all(&RtspDecoder::default(), &input);
        }
    }
}
