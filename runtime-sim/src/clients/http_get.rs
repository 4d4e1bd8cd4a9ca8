//! One HTTP GET of a document (an HLS playlist or segment): the response head parsed with
//! `httparse`, the body read to its `Content-Length` or to the end of the connection, and
//! the virtual time the head arrived.

use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};
use mediakit_core::Millis;

use crate::{now, TcpStream};

/// Headers a response head may carry.
const MAX_HEADERS: usize = 32;

/// What an HTTP GET got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// When the request was sent (the connection was made then too).
    pub sent: Millis,
    /// When the response head was complete.
    pub at: Millis,
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as text (lossy), for playlists.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `GET {path}` from `from` to `server` and waits for the whole response.
pub async fn http_get(from: IpAddr, server: SocketAddr, path: &str) -> io::Result<HttpResponse> {
    let stream = TcpStream::connect(from, server)?;
    let sent = now();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nUser-Agent: mediakit-sim\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut input = BytesMut::new();
    let (at, status, length, head_len) = loop {
        if stream.read_buf(&mut input).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&input) {
            Ok(httparse::Status::Complete(head_len)) => {
                let length = response
                    .headers
                    .iter()
                    .find(|header| header.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|header| std::str::from_utf8(header.value).ok())
                    .and_then(|value| value.trim().parse::<usize>().ok());
                break (now(), response.code.unwrap_or(0), length, head_len);
            }
            Ok(httparse::Status::Partial) => {}
            Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
        }
    };
    let _ = input.split_to(head_len);
    loop {
        if length.is_some_and(|length| input.len() >= length) {
            break;
        }
        if stream.read_buf(&mut input).await? == 0 {
            break;
        }
    }
    if let Some(length) = length {
        input.truncate(length);
    }
    Ok(HttpResponse {
        sent,
        at,
        status,
        body: input.freeze(),
    })
}
