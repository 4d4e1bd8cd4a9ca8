//! RTMP clients on the core's `RtmpClientSession`: a publisher that sends the synthetic
//! stream in real (virtual) time, and a player that checks what it receives.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::Poll;

use bytes::BytesMut;
use mediakit_core::media::Media;
use mediakit_core::rtmp::client::{ClientEvent, ClientMode, RtmpClientConfig, RtmpClientSession};
use mediakit_core::rtmp::{ChunkEncoder, ControlMessage, MessageHeader, UserControlEvent};
use mediakit_core::{Millis, OutQueue};

use super::media::{MediaSpec, SyntheticSource, Track};
use super::wait::{Waiter, Woke};
use super::{connect_from, record_media, stall, Client, ClientLog, Event, PlayOptions};
use crate::{now, seed, sleep, sleep_until, TcpStream};

/// Most bytes read per wake-up, as a real client reads into a bounded buffer.
const READ_PER_WAKE: usize = 64 * 1024;
/// How long a closing client waits for its last bytes to leave and the server to hang up.
const CLOSE_GRACE_MS: u64 = 5_000;

/// How a publisher ends once it has sent its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishEnd {
    /// `FCUnpublish` + `deleteStream`, then a clean close.
    Stop,
    /// Drop the connection without a word.
    Disconnect,
    /// Keep the connection open and send nothing more (an idle publisher).
    Stay,
    /// Keep the connection open and send no more media, only a Ping Request and an
    /// Acknowledgement every `interval_ms` (the first one interval after the last frame): a
    /// publisher that looks alive to a server that counts pings as progress.
    Ping {
        /// Milliseconds between pings (at least 1).
        interval_ms: u64,
    },
}

/// What and where a publisher publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    /// The client's IP address.
    pub from: IpAddr,
    /// The server's RTMP address.
    pub server: SocketAddr,
    /// Application name (`live`).
    pub app: String,
    /// Stream name.
    pub stream: String,
    /// The synthetic stream to send.
    pub media: MediaSpec,
    /// Video frames to send (the audio frames between them go too).
    pub video_frames: u64,
    /// Connect this long after the client is spawned, in milliseconds.
    pub start_delay_ms: u64,
    /// What to do after the last frame.
    pub end: PublishEnd,
}

impl PublishOptions {
    /// Publishes `app/stream` to `server` at once: 10 s of the default synthetic stream,
    /// then a clean stop.
    pub fn new(from: IpAddr, server: SocketAddr, app: &str, stream: &str) -> Self {
        Self {
            from,
            server,
            app: app.into(),
            stream: stream.into(),
            media: MediaSpec::default(),
            video_frames: 250,
            start_delay_ms: 0,
            end: PublishEnd::Stop,
        }
    }
}

/// An RTMP client session on a simulated connection.
struct Link {
    stream: TcpStream,
    session: RtmpClientSession,
    input: BytesMut,
    waiter: Waiter,
    log: Rc<RefCell<ClientLog>>,
    /// The server closed its side; what came before it was handed to the session, whose
    /// events the caller takes before the next turn reports the close.
    eof: bool,
}

impl Link {
    fn new(
        stream: TcpStream,
        mode: ClientMode,
        app: &str,
        name: &str,
        log: Rc<RefCell<ClientLog>>,
    ) -> Self {
        let tc_url = format!("rtmp://{}/{app}", stream.peer_addr());
        let config = RtmpClientConfig::new(mode, app, name, tc_url);
        let session = RtmpClientSession::new(config, now(), seed());
        Self {
            stream,
            session,
            input: BytesMut::new(),
            waiter: Waiter::default(),
            log,
            eof: false,
        }
    }

    /// Writes what the session queued until done or the connection is full.
    fn flush(&mut self) -> io::Result<()> {
        while !self.session.transmit().is_empty() {
            match self.stream.try_send_queue(self.session.transmit()) {
                Ok(written) => self.log.borrow_mut().count_sent(written),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// One round: flush, wait for input, room, `wake_at` or the session's own deadline, and
    /// hand what arrived to the session. `Err` with a reason when the connection is over.
    async fn turn(&mut self, wake_at: Option<Millis>) -> Result<(), String> {
        if self.eof {
            return Err("server closed".into());
        }
        self.flush().map_err(|error| format!("write: {error}"))?;
        let deadline = [self.session.poll_timeout(), wake_at]
            .into_iter()
            .flatten()
            .min();
        let want_write = !self.session.transmit().is_empty();
        let woke = self
            .waiter
            .wait(&self.stream, true, want_write, deadline)
            .await;
        match woke {
            Woke::Readable => {
                let mut read = 0;
                while read < READ_PER_WAKE {
                    match self.stream.try_read_buf(&mut self.input) {
                        Ok(0) => {
                            self.eof = true;
                            break;
                        }
                        Ok(n) => read += n,
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) => return Err(format!("read: {error}")),
                    }
                }
                self.log.borrow_mut().count_received(read);
                self.session
                    .handle_input(now(), &mut self.input)
                    .map_err(|error| error.to_string())
            }
            Woke::Writable | Woke::PeerClosed => Ok(()),
            Woke::Deadline => {
                self.session.handle_timeout(now());
                Ok(())
            }
        }
    }

    /// Ends the connection cleanly: logs `reason`, sends what is queued, shuts down writing,
    /// and reads until the server hangs up (so closing leaves no unread data to reset on).
    async fn close(mut self, reason: &str) {
        self.log
            .borrow_mut()
            .push(now(), Event::Closed(reason.to_owned()));
        let deadline = now() + CLOSE_GRACE_MS;
        let drained = async {
            let _ = self.stream.send_queue(self.session.transmit()).await;
            self.stream.shutdown();
            let mut sink = BytesMut::new();
            while let Ok(n) = self.stream.read_buf(&mut sink).await {
                if n == 0 {
                    break;
                }
                sink.clear();
            }
        };
        race(drained, sleep_until(deadline)).await;
    }
}

/// The chunk stream a [`Pinger`] writes on: one the client session never uses, so its own
/// encoder's header compression and this one's never meet on the same stream.
const PING_CSID: u32 = 7;

/// Control messages added to a client session's output, each a whole message on
/// [`PING_CSID`] (so they may go between the session's messages).
struct Pinger {
    encoder: ChunkEncoder,
    interval_ms: u64,
    next: Millis,
    sent: u32,
}

impl Pinger {
    fn new(first: Millis, interval_ms: u64) -> Self {
        Self {
            encoder: ChunkEncoder::new(),
            interval_ms: interval_ms.max(1),
            next: first,
            sent: 0,
        }
    }

    /// Queues a Ping Request and an Acknowledgement of `received` bytes into `out`.
    fn ping(&mut self, received: u64, out: &mut OutQueue) {
        let messages = [
            ControlMessage::UserControl(UserControlEvent::PingRequest {
                timestamp: self.sent,
            }),
            ControlMessage::Acknowledgement {
                sequence: received as u32,
            },
        ];
        for message in messages {
            let header = MessageHeader {
                csid: PING_CSID,
                timestamp: 0,
                type_id: message.type_id(),
                stream_id: 0,
            };
            // Six bytes or fewer: nothing the encoder can refuse.
            let _ = self.encoder.write(&header, &[message.to_payload()], out);
        }
        self.sent = self.sent.wrapping_add(1);
        self.next = self.next + self.interval_ms;
    }
}

/// Runs `a` until it or `b` completes.
async fn race(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() || b.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    })
    .await
}

/// Spawns a publisher of the synthetic stream on the current world.
///
/// It logs `Connected`, `Started` when the server accepts the publish, `Sent` for every
/// frame (at its time: frame `n` goes out at `start + dts(n)`), and `Closed` at the end.
pub fn publish_rtmp(options: PublishOptions) -> Client {
    Client::spawn(|log| run_publisher(options, log))
}

async fn run_publisher(options: PublishOptions, log: Rc<RefCell<ClientLog>>) {
    sleep(options.start_delay_ms).await;
    let Some(stream) = connect_from(options.from, options.server, None, &log) else {
        return;
    };
    let mut link = Link::new(
        stream,
        ClientMode::Publish,
        &options.app,
        &options.stream,
        Rc::clone(&log),
    );
    let spec = options.media.clone();
    let mut source = SyntheticSource::new(spec.clone());
    let mut started: Option<Millis> = None;
    let mut finished = false;
    let mut pinger: Option<Pinger> = None;
    loop {
        while let Some(event) = link.session.poll_event() {
            match event {
                ClientEvent::Publishing => {
                    started = Some(now());
                    log.borrow_mut().push(now(), Event::Started);
                    for config in spec.configs() {
                        link.session.send_media(&config);
                    }
                }
                ClientEvent::Rejected { code, .. } => {
                    log.borrow_mut().push(now(), Event::Refused(code));
                }
                ClientEvent::Closed { reason } => return link.close(reason).await,
                _ => {}
            }
        }
        let mut wake_at = None;
        if let (Some(start), false) = (started, finished) {
            loop {
                let next = source.peek();
                if next.kind == Track::Video && next.seq >= options.video_frames {
                    finished = true;
                    break;
                }
                let due = start + u64::try_from(spec.dts(next)).unwrap_or(0);
                if due > now() {
                    wake_at = Some(due);
                    break;
                }
                let frame = source.next_frame();
                link.session.send_media(&Media::Frame(frame));
                log.borrow_mut().push(now(), Event::Sent(next));
            }
            if finished {
                match options.end {
                    PublishEnd::Stop => link.session.stop(),
                    PublishEnd::Disconnect => {
                        let _ = link.flush();
                        log.borrow_mut()
                            .push(now(), Event::Closed("disconnected".into()));
                        return;
                    }
                    PublishEnd::Stay => {}
                    PublishEnd::Ping { interval_ms } => {
                        pinger = Some(Pinger::new(now() + interval_ms, interval_ms));
                    }
                }
                // The stop's Closed event is handled on the next round.
                continue;
            }
        }
        if let Some(pinger) = &mut pinger {
            if now() >= pinger.next {
                let received = log.borrow().bytes_received();
                pinger.ping(received, link.session.transmit());
                log.borrow_mut().push(now(), Event::Pinged);
            }
            wake_at = Some(pinger.next);
        }
        if let Err(reason) = link.turn(wake_at).await {
            log.borrow_mut().push(now(), Event::Closed(reason));
            return;
        }
    }
}

/// Spawns an RTMP player on the current world. It logs `Connected`, `Started` at
/// `NetStream.Play.Start`, `Config`, `Metadata` and `Frame` (each frame checked against
/// `options.media`), `Ended`, `Refused` and `Closed`.
pub fn play_rtmp(options: PlayOptions) -> Client {
    Client::spawn(|log| run_player(options, log))
}

async fn run_player(options: PlayOptions, log: Rc<RefCell<ClientLog>>) {
    sleep(options.start_delay_ms).await;
    let Some(stream) = connect_from(options.from, options.server, options.receive_buffer, &log)
    else {
        return;
    };
    let mut link = Link::new(
        stream,
        ClientMode::Play,
        &options.app,
        &options.stream,
        Rc::clone(&log),
    );
    let mut started: Option<Millis> = None;
    let mut leaving = false;
    loop {
        while let Some(event) = link.session.poll_event() {
            match event {
                ClientEvent::Playing => {
                    started = Some(now());
                    log.borrow_mut().push(now(), Event::Started);
                }
                ClientEvent::Media(media) => record_media(&options.media, &media, &log),
                ClientEvent::StreamEnded => log.borrow_mut().push(now(), Event::Ended),
                ClientEvent::Rejected { code, .. } => {
                    log.borrow_mut().push(now(), Event::Refused(code));
                }
                ClientEvent::Closed { reason } => return link.close(reason).await,
                _ => {}
            }
        }
        let stall_at = started.zip(options.stall_after_ms).map(|(s, ms)| s + ms);
        let leave_at = started.zip(options.leave_after_ms).map(|(s, ms)| s + ms);
        if stall_at.is_some_and(|at| now() >= at) {
            return stall(&link.stream, &log).await;
        }
        if !leaving && leave_at.is_some_and(|at| now() >= at) {
            leaving = true;
            link.session.stop();
            continue;
        }
        let wake_at = [stall_at, leave_at.filter(|_| !leaving)]
            .into_iter()
            .flatten()
            .min();
        if let Err(reason) = link.turn(wake_at).await {
            log.borrow_mut().push(now(), Event::Closed(reason));
            return;
        }
    }
}
