//! HTTP/1.1 request heads and response heads for the HTTP outputs: live HTTP-FLV and HTTP-TS
//! bodies, and the HLS playlists and segments the server serves whole.
//!
//! Parsing is done by `httparse` (no_std, no allocation); this module bounds the head size and
//! header count, and turns a request path into a [`Target`]. Incomplete input is not an
//! error: [`parse_request_head`] returns `Ok(None)` until the blank line arrives.

use alloc::string::String;
use core::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use crate::outq::OutQueue;
use crate::session::Resource;

/// Largest request head accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Largest number of header fields accepted.
pub const MAX_HEADERS: usize = 48;

/// `Content-Type` of an HTTP-FLV body.
pub const CONTENT_TYPE_FLV: &str = "video/x-flv";
/// `Content-Type` of an HTTP-TS body and of an HLS segment.
pub const CONTENT_TYPE_TS: &str = "video/mp2t";
/// `Content-Type` of an HLS playlist (RFC 8216, section 4).
pub const CONTENT_TYPE_M3U8: &str = "application/vnd.apple.mpegurl";
/// `Cache-Control` of an HLS playlist: a live playlist changes with every segment, so caches
/// must revalidate it each time.
pub const CACHE_PLAYLIST: &str = "no-cache";
/// `Cache-Control` of an HLS segment: a segment never changes once listed, and a minute covers
/// the time it stays in a live playlist.
pub const CACHE_SEGMENT: &str = "public, max-age=60";

/// The request methods the server distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: like GET, without a body.
    Head,
    /// `OPTIONS`: a CORS preflight.
    Options,
    /// Anything else; answered with 405.
    Other,
}

/// The parts of a request head the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// The path, percent-decoding not applied, without the query string.
    pub path: String,
    /// The query string after `?`, if any.
    pub query: Option<String>,
    /// The `Origin` header, echoed back in CORS responses.
    pub origin: Option<String>,
    /// True for HTTP/1.0 requests.
    pub http10: bool,
}

/// Why a request head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The head is not valid HTTP/1.x.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// The head grew past [`MAX_HEAD_BYTES`] without ending.
    #[error("request head exceeds {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header fields.
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
}

/// Parses a request head from the start of `input`.
///
/// Returns the head and the number of bytes it occupied, `Ok(None)` if more input is needed,
/// or an error if the input can never become a valid head within the bounds.
pub fn parse_request_head(input: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let window = input.get(..MAX_HEAD_BYTES).unwrap_or(input);
    let consumed = match request.parse(window) {
        Ok(httparse::Status::Complete(consumed)) => consumed,
        Ok(httparse::Status::Partial) if input.len() >= MAX_HEAD_BYTES => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(error) => return Err(HttpError::Malformed(error_name(error))),
    };
    let method = match request.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("OPTIONS") => Method::Options,
        _ => Method::Other,
    };
    let target = request
        .path
        .ok_or(HttpError::Malformed("no request target"))?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(String::from(query))),
        None => (target, None),
    };
    let origin = request
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("origin"))
        .and_then(|header| core::str::from_utf8(header.value).ok())
        .map(String::from);
    let head = RequestHead {
        method,
        path: String::from(path),
        query,
        origin,
        http10: request.version == Some(0),
    };
    Ok(Some((head, consumed)))
}

fn error_name(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::Version => "invalid HTTP version",
        httparse::Error::TooManyHeaders => "too many headers",
    }
}

/// The live output a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveFormat {
    /// HTTP-FLV: `/{app}/{stream}.flv` or `.live.flv`.
    Flv,
    /// HTTP-TS: `/{app}/{stream}.ts` or `.live.ts`.
    Ts,
}

impl LiveFormat {
    /// The `Content-Type` of its body.
    pub fn content_type(self) -> &'static str {
        match self {
            LiveFormat::Flv => CONTENT_TYPE_FLV,
            LiveFormat::Ts => CONTENT_TYPE_TS,
        }
    }
}

/// A request for a live stream, resolved from the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRequest<'a> {
    /// The application name (first path segment).
    pub app: &'a str,
    /// The stream name, without the format suffix.
    pub stream: &'a str,
    /// Which output was asked for.
    pub format: LiveFormat,
}

/// A request for a document of a stream (an HLS playlist or segment), resolved from the path
/// `/{app}/{stream}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest<'a> {
    /// The application name (first path segment).
    pub app: &'a str,
    /// The stream name: every segment between the application and the name, joined by `/`.
    pub stream: &'a str,
    /// The last path segment, e.g. `index.m3u8` or `123.ts`.
    pub name: &'a str,
}

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// An endless live body (HTTP-FLV, HTTP-TS).
    Live(LiveRequest<'a>),
    /// A document the server looks up and serves whole (HLS).
    Resource(ResourceRequest<'a>),
}

/// Resolves a request path (without its query string):
///
/// - `/{app}/{stream}.flv`, `.live.flv`, `.ts`, `.live.ts`: a live body;
/// - `/{app}/{stream...}/{name}` where `name` ends in `.m3u8` or `.ts`: a resource, the stream
///   being everything between the application and the name.
///
/// Returns `None` for anything else, including paths with empty, `.` or `..` segments (a
/// trailing slash is an empty segment): such names could alias or escape a stream's namespace.
pub fn resolve_path(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix('/')?;
    if rest
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return None;
    }
    let (app, tail) = rest.split_once('/')?;
    match tail.rsplit_once('/') {
        None => {
            let (stream, format) = [
                (".live.flv", LiveFormat::Flv),
                (".flv", LiveFormat::Flv),
                (".live.ts", LiveFormat::Ts),
                (".ts", LiveFormat::Ts),
            ]
            .into_iter()
            .find_map(|(suffix, format)| Some((tail.strip_suffix(suffix)?, format)))?;
            (!stream.is_empty()).then_some(Target::Live(LiveRequest {
                app,
                stream,
                format,
            }))
        }
        Some((stream, name)) => {
            let stem = name
                .strip_suffix(".m3u8")
                .or_else(|| name.strip_suffix(".ts"))?;
            (!stem.is_empty()).then_some(Target::Resource(ResourceRequest { app, stream, name }))
        }
    }
}

/// Resolves a request path that names a live body (see [`resolve_path`]); `None` for every
/// other path.
pub fn resolve_live_path(path: &str) -> Option<LiveRequest<'_>> {
    match resolve_path(path)? {
        Target::Live(live) => Some(live),
        Target::Resource(_) => None,
    }
}

/// An HLS playlist as a [`Resource`]: its content type and a cache policy that makes players
/// fetch it afresh.
pub fn playlist_resource(body: Bytes) -> Resource {
    Resource {
        content_type: CONTENT_TYPE_M3U8,
        cache_control: CACHE_PLAYLIST,
        body,
    }
}

/// An HLS segment as a [`Resource`]: its content type and a cache policy for an immutable
/// document.
pub fn segment_resource(body: Bytes) -> Resource {
    Resource {
        content_type: CONTENT_TYPE_TS,
        cache_control: CACHE_SEGMENT,
        body,
    }
}

/// Status codes the server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200 OK.
    Ok,
    /// 204 No Content (CORS preflight).
    NoContent,
    /// 400 Bad Request.
    BadRequest,
    /// 404 Not Found.
    NotFound,
    /// 405 Method Not Allowed.
    MethodNotAllowed,
    /// 409 Conflict.
    Conflict,
    /// 503 Service Unavailable.
    ServiceUnavailable,
}

impl Status {
    /// The numeric code and reason phrase.
    pub fn code_and_reason(self) -> (u16, &'static str) {
        match self {
            Status::Ok => (200, "OK"),
            Status::NoContent => (204, "No Content"),
            Status::BadRequest => (400, "Bad Request"),
            Status::NotFound => (404, "Not Found"),
            Status::MethodNotAllowed => (405, "Method Not Allowed"),
            Status::Conflict => (409, "Conflict"),
            Status::ServiceUnavailable => (503, "Service Unavailable"),
        }
    }
}

/// How the body of an endless live response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Transfer-Encoding: chunked` (HTTP/1.1): the stream ends with a zero-length chunk, so
    /// players can tell a clean end from a dropped connection.
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0 clients, which know no chunking).
    UntilClose,
}

/// Writes the head of the endless response that carries a live stream: no Content-Length,
/// CORS open so browser players (flv.js, mpegts.js) may read it.
pub fn write_stream_head(
    out: &mut BytesMut,
    content_type: &str,
    origin: Option<&str>,
    framing: BodyFraming,
) {
    write_status_line(out, Status::Ok);
    write_header(out, "Content-Type", content_type);
    write_header(out, "Cache-Control", "no-cache, no-store");
    if framing == BodyFraming::Chunked {
        write_header(out, "Transfer-Encoding", "chunked");
    }
    write_header(out, "Connection", "close");
    write_cors(out, origin);
    out.put_slice(b"\r\n");
}

/// Writes the head of a `200` response whose body of `content_length` bytes follows as is
/// (the caller pushes the body itself, so it is never copied). One request per connection:
/// the head says `Connection: close`.
pub fn write_resource_head(
    out: &mut BytesMut,
    content_type: &str,
    cache_control: &str,
    content_length: usize,
    origin: Option<&str>,
) {
    write_status_line(out, Status::Ok);
    write_header(out, "Content-Type", content_type);
    let _ = write!(out, "Content-Length: {content_length}\r\n");
    write_header(out, "Cache-Control", cache_control);
    write_header(out, "Connection", "close");
    write_cors(out, origin);
    out.put_slice(b"\r\n");
}

/// Moves everything in `body` into `out` as one HTTP/1.1 chunk: a size line, the segments
/// themselves (never copied), and the CRLF that closes the chunk.
pub fn move_as_chunk(body: &mut OutQueue, arena: &mut BytesMut, out: &mut OutQueue) {
    let len = body.queued_bytes();
    if len == 0 {
        return;
    }
    // Written straight into the arena: no allocation per chunk per player.
    let _ = write!(arena, "{len:x}\r\n");
    out.push(arena.split().freeze());
    out.append(body);
    out.push(Bytes::from_static(b"\r\n"));
}

/// The zero-length chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes a complete short response with a plain-text body (errors, preflight answers).
pub fn write_simple_response(out: &mut BytesMut, status: Status, origin: Option<&str>, body: &str) {
    write_status_line(out, status);
    if status == Status::NoContent {
        write_header(out, "Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
        write_header(out, "Access-Control-Allow-Headers", "*");
        write_header(out, "Access-Control-Max-Age", "86400");
    } else {
        write_header(out, "Content-Type", "text/plain; charset=utf-8");
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    write_header(out, "Connection", "close");
    write_cors(out, origin);
    out.put_slice(b"\r\n");
    if status != Status::NoContent {
        out.put_slice(body.as_bytes());
    }
}

fn write_status_line(out: &mut BytesMut, status: Status) {
    let (code, reason) = status.code_and_reason();
    let _ = write!(out, "HTTP/1.1 {code} {reason}\r\n");
    write_header(out, "Server", "mediakit");
}

fn write_cors(out: &mut BytesMut, origin: Option<&str>) {
    match origin {
        Some(origin) if is_header_safe(origin) => {
            write_header(out, "Access-Control-Allow-Origin", origin);
            write_header(out, "Access-Control-Allow-Credentials", "true");
            write_header(out, "Vary", "Origin");
        }
        _ => write_header(out, "Access-Control-Allow-Origin", "*"),
    }
}

fn write_header(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(b"\r\n");
}

/// An echoed header value must not be able to inject lines into the response.
fn is_header_safe(value: &str) -> bool {
    value.bytes().all(|byte| byte != b'\r' && byte != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REQUEST: &[u8] =
        b"GET /live/demo.flv?token=1 HTTP/1.1\r\nHost: x\r\nOrigin: http://a.b\r\n\r\n";

    #[test]
    fn parses_a_live_flv_request() {
        let (head, consumed) = parse_request_head(REQUEST).unwrap().unwrap();
        assert_eq!(consumed, REQUEST.len());
        assert_eq!(head.method, Method::Get);
        assert_eq!(head.path, "/live/demo.flv");
        assert_eq!(head.query.as_deref(), Some("token=1"));
        assert_eq!(head.origin.as_deref(), Some("http://a.b"));
        let live = resolve_live_path(&head.path).unwrap();
        assert_eq!(
            (live.app, live.stream, live.format),
            ("live", "demo", LiveFormat::Flv)
        );
    }

    fn live(
        app: &'static str,
        stream: &'static str,
        format: LiveFormat,
    ) -> Option<Target<'static>> {
        Some(Target::Live(LiveRequest {
            app,
            stream,
            format,
        }))
    }

    fn resource(
        app: &'static str,
        stream: &'static str,
        name: &'static str,
    ) -> Option<Target<'static>> {
        Some(Target::Resource(ResourceRequest { app, stream, name }))
    }

    #[test]
    fn every_url_form_resolves() {
        let cases = [
            ("/live/cam.flv", live("live", "cam", LiveFormat::Flv)),
            ("/live/cam.live.flv", live("live", "cam", LiveFormat::Flv)),
            ("/live/cam.ts", live("live", "cam", LiveFormat::Ts)),
            ("/live/cam.live.ts", live("live", "cam", LiveFormat::Ts)),
            ("/live/a.b.flv", live("live", "a.b", LiveFormat::Flv)),
            (
                "/live/cam/index.m3u8",
                resource("live", "cam", "index.m3u8"),
            ),
            ("/live/cam/hls.m3u8", resource("live", "cam", "hls.m3u8")),
            ("/live/cam/123.ts", resource("live", "cam", "123.ts")),
            (
                "/live/cam/seg-1.live.ts",
                resource("live", "cam", "seg-1.live.ts"),
            ),
            ("/live/a/b/c/7.ts", resource("live", "a/b/c", "7.ts")),
            (
                "/live/a/b/index.m3u8",
                resource("live", "a/b", "index.m3u8"),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(resolve_path(path), expected, "{path}");
        }
    }

    #[test]
    fn paths_naming_nothing_resolve_to_none() {
        let paths = [
            "",
            "/",
            "live/cam.flv",
            "/foo",
            "/a/b.mp4",
            "/demo.flv",
            "/live/",
            "/live/.flv",
            "/live/.live.flv",
            "/live/.ts",
            "/live/.live.ts",
            "/live/cam.flv/",
            "/live/cam.ts/",
            "/live/cam/",
            "/live/cam/index.m3u8/",
            "/live/cam/.m3u8",
            "/live/cam/.ts",
            "/live/a/b.flv",
            "/live/cam/x.mp4",
            "/live//cam.flv",
            "//cam.flv",
            "//live/cam.flv",
            "/live/cam//1.ts",
            "/live/../cam.flv",
            "/../live/cam.flv",
            "/live/cam/../index.m3u8",
            "/live/./cam.ts",
            "/live/cam/./index.m3u8",
            "/live/cam/..",
            "/./cam.flv",
        ];
        for path in paths {
            assert_eq!(resolve_path(path), None, "{path}");
        }
    }

    #[test]
    fn query_strings_are_stripped_before_resolving() {
        let cases: [(&[u8], Option<Target<'static>>); 4] = [
            (
                b"GET /live/cam.ts?token=1&x=/a/b HTTP/1.1\r\n\r\n",
                live("live", "cam", LiveFormat::Ts),
            ),
            (
                b"GET /live/cam/index.m3u8?token=1 HTTP/1.1\r\n\r\n",
                resource("live", "cam", "index.m3u8"),
            ),
            (
                b"GET /live/cam/5.ts? HTTP/1.1\r\n\r\n",
                resource("live", "cam", "5.ts"),
            ),
            (b"GET /live/cam/?a.m3u8 HTTP/1.1\r\n\r\n", None),
        ];
        for (request, expected) in cases {
            let (head, _) = parse_request_head(request).unwrap().unwrap();
            assert_eq!(resolve_path(&head.path), expected, "{}", head.path);
        }
    }

    #[test]
    fn live_path_helper_ignores_resources() {
        assert_eq!(
            resolve_live_path("/live/cam.live.flv").unwrap().stream,
            "cam"
        );
        assert_eq!(resolve_live_path("/live/cam/index.m3u8"), None);
        assert_eq!(LiveFormat::Ts.content_type(), "video/mp2t");
        assert_eq!(LiveFormat::Flv.content_type(), "video/x-flv");
    }

    #[test]
    fn resource_head_declares_length_type_cache_and_cors() {
        let mut out = BytesMut::new();
        write_resource_head(&mut out, CONTENT_TYPE_M3U8, CACHE_PLAYLIST, 42, None);
        let text = core::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        for line in [
            "Content-Type: application/vnd.apple.mpegurl\r\n",
            "Content-Length: 42\r\n",
            "Cache-Control: no-cache\r\n",
            "Connection: close\r\n",
            "Access-Control-Allow-Origin: *\r\n",
        ] {
            assert!(text.contains(line), "{line}");
        }
        let body = Bytes::from_static(b"x");
        let segment = segment_resource(body.clone());
        assert_eq!(segment.content_type, CONTENT_TYPE_TS);
        assert_eq!(segment.cache_control, CACHE_SEGMENT);
        assert_eq!(segment.body.as_ptr(), body.as_ptr());
    }

    #[test]
    fn oversized_head_is_refused() {
        let mut input = alloc::vec::Vec::from(&b"GET / HTTP/1.1\r\n"[..]);
        while input.len() < MAX_HEAD_BYTES + 10 {
            input.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(parse_request_head(&input).is_err());
    }

    #[test]
    fn cors_origin_cannot_inject_headers() {
        let mut out = BytesMut::new();
        write_stream_head(
            &mut out,
            "video/x-flv",
            Some("http://a\r\nSet-Cookie: x"),
            BodyFraming::Chunked,
        );
        let text = core::str::from_utf8(&out).unwrap();
        assert!(!text.contains("Set-Cookie"));
        assert!(text.contains("Access-Control-Allow-Origin: *"));
    }

    #[test]
    fn chunk_framing_wraps_segments_without_copying() {
        let payload = Bytes::from_static(b"0123456789abcdefXYZ");
        let mut body = OutQueue::new();
        body.push(payload.slice(..10));
        body.push(payload.slice(10..));
        let (mut arena, mut out) = (BytesMut::new(), OutQueue::new());
        move_as_chunk(&mut body, &mut arena, &mut out);
        assert!(body.is_empty());
        let wire: alloc::vec::Vec<u8> = out.segments().flatten().copied().collect();
        assert_eq!(wire, b"13\r\n0123456789abcdefXYZ\r\n");
        let middle: alloc::vec::Vec<&[u8]> = out.segments().skip(1).take(2).collect();
        assert_eq!(middle[0].as_ptr(), payload.as_ptr());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_head(split in 0..REQUEST.len()) {
            prop_assert_eq!(parse_request_head(&REQUEST[..split]).unwrap(), None);
            prop_assert!(parse_request_head(REQUEST).unwrap().is_some());
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_request_head(&input);
        }

        #[test]
        fn resolved_names_are_parts_of_the_path(path in "/[a-z./]{0,24}") {
            match resolve_path(&path) {
                Some(Target::Live(live)) => {
                    prop_assert!(!live.stream.contains('/'));
                    let prefix = alloc::format!("/{}/{}.", live.app, live.stream);
                    prop_assert!(path.starts_with(&prefix));
                }
                Some(Target::Resource(resource)) => {
                    prop_assert_eq!(
                        alloc::format!("/{}/{}/{}", resource.app, resource.stream, resource.name),
                        path.clone()
                    );
                    prop_assert!(resource.name.ends_with(".ts") || resource.name.ends_with(".m3u8"));
                }
                None => {}
            }
            if let Some(target) = resolve_path(&path) {
                let (app, stream) = match target {
                    Target::Live(live) => (live.app, live.stream),
                    Target::Resource(resource) => (resource.app, resource.stream),
                };
                for segment in app.split('/').chain(stream.split('/')) {
                    prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                }
            }
        }
    }
}
