//! An HTTP-FLV player: a raw `GET /{app}/{stream}.flv`, the response head parsed with
//! `httparse`, the body de-chunked and fed to the core's FLV demuxer.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use bytes::BytesMut;
use mediakit_core::flv::FlvDemuxer;

use super::chunked::ChunkedDecoder;
use super::{
    connect_from, readable_until, record_media, stall, Client, ClientLog, Event, PlayOptions,
};
use crate::timer::Sleep;
use crate::{now, sleep, TcpStream};

/// Headers a response head may carry.
const MAX_HEADERS: usize = 32;
/// The largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Spawns an HTTP-FLV player on the current world. It logs `Connected`, `Started` when a
/// `200` head arrives (`Refused` with the status code otherwise), `Config`, `Metadata` and
/// `Frame` (each frame checked against `options.media`), `Ended` at the last chunk, and
/// `Closed`.
pub fn play_http_flv(options: PlayOptions) -> Client {
    Client::spawn(|log| run(options, log))
}

/// The body's framing.
enum Body {
    Chunked(ChunkedDecoder),
    /// Until the server closes.
    Identity,
}

async fn run(options: PlayOptions, log: Rc<RefCell<ClientLog>>) {
    sleep(options.start_delay_ms).await;
    let Some(stream) = connect_from(options.from, options.server, options.receive_buffer, &log)
    else {
        return;
    };
    let request = format!(
        "GET /{}/{}.flv HTTP/1.1\r\nHost: {}\r\nUser-Agent: mediakit-sim\r\nAccept: */*\r\n\r\n",
        options.app, options.stream, options.server
    );
    if let Err(error) = stream.write_all(request.as_bytes()).await {
        return closed(&log, format!("write: {error}"));
    }
    log.borrow_mut().count_sent(request.len());
    let mut input = BytesMut::new();
    let mut timer: Option<Sleep> = None;

    // The response head.
    let (status, mut body) = loop {
        match parse_head(&mut input) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(error) => {
                log.borrow_mut().push(now(), Event::Corrupt(error));
                return closed(&log, "bad response head".into());
            }
        }
        if let Err(reason) = read(&stream, &mut input, &log).await {
            return closed(&log, reason);
        }
    };
    if status != 200 {
        log.borrow_mut()
            .push(now(), Event::Refused(status.to_string()));
        // Read the rest (the error body) until the server closes, so nothing is left unread.
        loop {
            input.clear();
            if let Err(reason) = read(&stream, &mut input, &log).await {
                return closed(&log, reason);
            }
        }
    }
    let started = now();
    log.borrow_mut().push(started, Event::Started);

    // The body.
    let mut demuxer = FlvDemuxer::new();
    let mut flv = BytesMut::new();
    let stall_at = options.stall_after_ms.map(|ms| started + ms);
    let leave_at = options.leave_after_ms.map(|ms| started + ms);
    loop {
        let decoded = match &mut body {
            Body::Chunked(decoder) => decoder
                .decode(&mut input, &mut flv)
                .map_err(|error| error.to_string()),
            Body::Identity => {
                flv.extend_from_slice(&input.split());
                Ok(())
            }
        };
        let demuxed = decoded.and_then(|()| {
            demuxer
                .handle_input(&mut flv)
                .map_err(|error| error.to_string())
        });
        while let Some(item) = demuxer.poll_media() {
            match item {
                Ok(media) => record_media(&options.media, &media, &log),
                Err(error) => log
                    .borrow_mut()
                    .push(now(), Event::Corrupt(error.to_string())),
            }
        }
        if let Err(error) = demuxed {
            log.borrow_mut().push(now(), Event::Corrupt(error));
            return closed(&log, "bad body".into());
        }
        if matches!(&body, Body::Chunked(decoder) if decoder.is_done()) {
            log.borrow_mut().push(now(), Event::Ended);
            return closed(&log, "stream ended".into());
        }
        if stall_at.is_some_and(|at| now() >= at) {
            return stall(&stream, &log).await;
        }
        if leave_at.is_some_and(|at| now() >= at) {
            return closed(&log, "left".into());
        }
        let wake_at = [stall_at, leave_at].into_iter().flatten().min();
        if readable_until(&stream, wake_at, &mut timer).await {
            if let Err(reason) = read(&stream, &mut input, &log).await {
                if matches!(body, Body::Identity) && reason == "server closed" {
                    log.borrow_mut().push(now(), Event::Ended);
                }
                return closed(&log, reason);
            }
        }
    }
}

fn closed(log: &RefCell<ClientLog>, reason: String) {
    log.borrow_mut().push(now(), Event::Closed(reason));
}

/// Reads what is there (waiting for something); `Err` with a reason at the end.
async fn read(
    stream: &TcpStream,
    input: &mut BytesMut,
    log: &RefCell<ClientLog>,
) -> Result<(), String> {
    match stream.read_buf(input).await {
        Ok(0) => Err("server closed".into()),
        Ok(n) => {
            log.borrow_mut().count_received(n);
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::ConnectionReset => Err("reset".into()),
        Err(error) => Err(format!("read: {error}")),
    }
}

/// The status and body framing, once the whole head is in `input` (which it leaves with
/// the body's first bytes).
fn parse_head(input: &mut BytesMut) -> Result<Option<(u16, Body)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() > MAX_HEAD => {
            return Err(format!("response head over {MAX_HEAD} bytes"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(format!("response head: {error}")),
    };
    let status = response.code.unwrap_or(0);
    let chunked = response.headers.iter().any(|header| {
        header.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(header.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let _ = input.split_to(head_len);
    let body = if chunked {
        Body::Chunked(ChunkedDecoder::default())
    } else {
        Body::Identity
    };
    Ok(Some((status, body)))
}
