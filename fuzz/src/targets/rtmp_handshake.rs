//! Fuzz body for the RTMP handshake state machines.
//!
//! Input layout: byte 0 picks the size of the reads, the rest is what the peer sends. Both the
//! server and the client side read it; neither may panic, consume more than the handshake's own
//! bytes, or produce output of the wrong size.

use bytes::BytesMut;
use mediakit_core::rtmp::handshake::{
    ClientHandshake, HandshakeProgress, ServerHandshake, HANDSHAKE_SIZE,
};

/// Feeds `bytes` in reads of `read` bytes; if the handshake finished, returns how many bytes
/// were left for the chunk stream.
fn run(
    mut handle: impl FnMut(&mut BytesMut) -> Option<HandshakeProgress>,
    bytes: &[u8],
    read: usize,
) -> Option<usize> {
    let mut input = BytesMut::new();
    let mut at = 0;
    while at < bytes.len() {
        let end = bytes.len().min(at + read);
        input.extend_from_slice(&bytes[at..end]);
        at = end;
        if handle(&mut input)? == HandshakeProgress::Done {
            // Everything after the handshake is handed back: what is still buffered plus
            // what has not been read yet.
            return Some(input.len() + (bytes.len() - at));
        }
    }
    None
}

/// Drives a server and a client handshake with arbitrary peer bytes.
pub fn rtmp_handshake(data: &[u8]) {
    let [read_selector, peer @ ..] = data else {
        return;
    };
    let read = usize::from(*read_selector) * 16 + 1;
    let full = 1 + 2 * HANDSHAKE_SIZE;

    let mut server = ServerHandshake::from_seed(u64::from(*read_selector), 0);
    let mut output = 0;
    let left = run(
        |input| {
            let progress = server.handle_input(input).ok();
            output += server.take_output().map_or(0, |b| b.len());
            progress
        },
        peer,
        read,
    );
    if let Some(left) = left {
        assert!(server.is_done());
        assert_eq!(left, peer.len() - full);
        assert_eq!(output, full);
    }

    let mut client = ClientHandshake::from_seed(u64::from(*read_selector), 0);
    let c0c1 = client.take_output().map_or(0, |b| b.len());
    assert_eq!(c0c1, 1 + HANDSHAKE_SIZE);
    let mut output = 0;
    let left = run(
        |input| {
            let progress = client.handle_input(input).ok();
            output += client.take_output().map_or(0, |b| b.len());
            progress
        },
        peer,
        read,
    );
    if let Some(left) = left {
        assert!(client.is_done());
        assert_eq!(left, peer.len() - full);
        assert_eq!(output, HANDSHAKE_SIZE);
    }
}
