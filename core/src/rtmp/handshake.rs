//! The RTMP handshake, plain and digest ("complex").
//!
//! Each side sends a version byte (C0/S0, always 3) and a 1536-byte block (C1/S1: 4-byte time,
//! 4-byte version field, 1528 random bytes), then echoes the peer's block (C2/S2).
//!
//! Flash players, ffmpeg and librtmp send a non-zero version field in C1 and hide an
//! HMAC-SHA256 digest in it, keyed with the "Genuine Adobe Flash Player 001" key; they expect a
//! server that answers with its own digest in S1 (keyed with "Genuine Adobe Flash Media Server
//! 001") and an S2 signed with a key derived from the client's digest. ffmpeg refuses to go on
//! otherwise. Where the 32-byte digest sits is computed from the block itself, in one of two
//! layouts ("schemas"): in schema 0 the four bytes at 8..12 choose an offset in 12..772, in
//! schema 1 the four bytes at 772..776 choose one in 776..1536.
//!
//! Both state machines are sans-IO and need neither a clock nor a random number generator: the
//! caller passes the random bytes (or a seed) and the time field for the block it sends. The
//! random bytes need not be secret; they only have to differ between connections, which the
//! digest scheme does not even require.

use alloc::vec::Vec;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The only RTMP version accepted (6 would be RTMPE, which is not supported).
pub const RTMP_VERSION: u8 = 3;

/// Size of C1, S1, C2 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// Random bytes in C1 and S1 (after the time and version fields).
pub const RANDOM_LEN: usize = HANDSHAKE_SIZE - 8;

const DIGEST_LEN: usize = 32;

/// The 32 bytes both keys end with.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

/// The client's key text; the digest in C1 uses only this text, C2 the text plus the tail.
const PLAYER_KEY_TEXT: &[u8] = b"Genuine Adobe Flash Player 001";

/// The server's key text; the digest in S1 uses only this text, S2 the text plus the tail.
const SERVER_KEY_TEXT: &[u8] = b"Genuine Adobe Flash Media Server 001";

/// Version field the server sends in a digest S1 (clients only check that it is non-zero).
const SERVER_VERSION: [u8; 4] = [4, 5, 0, 1];

/// Version field the client sends in a digest C1 (the one ffmpeg sends).
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];

/// Where the digest of a C1 or S1 block lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestSchema {
    /// Offset chosen by bytes 8..12, digest within 12..772.
    Schema0,
    /// Offset chosen by bytes 772..776, digest within 776..1536.
    Schema1,
}

/// Which handshake the peers ended up using.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeKind {
    /// S2 and C2 echo the peer's block.
    Plain,
    /// Digests in C1 and S1 and signed C2/S2, in the given layout.
    Digest(DigestSchema),
}

/// Whether the handshake is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeProgress {
    /// More input is needed (send any output first).
    InProgress,
    /// Finished: whatever is left in the input buffer is the start of the chunk stream.
    Done,
}

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// C0 or S0 asked for a version other than 3 (6 is encrypted RTMPE).
    #[error("handshake: unsupported RTMP version {version} at byte 0")]
    UnsupportedVersion {
        /// The version byte received.
        version: u8,
    },
}

/// The server side: reads C0+C1, answers S0+S1+S2, reads C2.
#[derive(Debug)]
pub struct ServerHandshake {
    state: State,
    /// S1 as it will be sent, before any digest is written into it.
    s1: Vec<u8>,
    output: Option<Bytes>,
    kind: Option<HandshakeKind>,
}

/// The client side: sends C0+C1, reads S0+S1, answers C2, reads S2.
#[derive(Debug)]
pub struct ClientHandshake {
    state: State,
    /// The random bytes C2 is built from when the server used a digest.
    random: Vec<u8>,
    digest: bool,
    output: Option<Bytes>,
    kind: Option<HandshakeKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the version byte and the peer's first block.
    First,
    /// Waiting for the peer's echo block.
    Echo,
    Done,
}

impl ServerHandshake {
    /// A server handshake whose S1 carries `epoch` as its time field and `random` after it.
    pub fn new(random: &[u8; RANDOM_LEN], epoch: u32) -> Self {
        let mut s1 = Vec::with_capacity(HANDSHAKE_SIZE);
        s1.extend_from_slice(&epoch.to_be_bytes());
        s1.extend_from_slice(&[0; 4]);
        s1.extend_from_slice(random);
        Self {
            state: State::First,
            s1,
            output: None,
            kind: None,
        }
    }

    /// Like [`ServerHandshake::new`], with the random bytes expanded from `seed`.
    pub fn from_seed(seed: u64, epoch: u32) -> Self {
        Self::new(&random_from_seed(seed), epoch)
    }

    /// Consumes handshake bytes from the front of `input`.
    ///
    /// Only the handshake's own bytes are consumed: when this returns
    /// [`HandshakeProgress::Done`], anything left in `input` is chunk stream data. Check
    /// [`ServerHandshake::take_output`] after every call.
    pub fn handle_input(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<HandshakeProgress, HandshakeError> {
        loop {
            match self.state {
                State::First => {
                    check_version(input)?;
                    if input.len() < 1 + HANDSHAKE_SIZE {
                        return Ok(HandshakeProgress::InProgress);
                    }
                    input.advance(1);
                    let c1 = input.split_to(HANDSHAKE_SIZE);
                    self.answer(&c1);
                    self.state = State::Echo;
                }
                State::Echo => {
                    // C2 carries nothing the server needs; clients fill it inconsistently.
                    if input.len() < HANDSHAKE_SIZE {
                        return Ok(HandshakeProgress::InProgress);
                    }
                    input.advance(HANDSHAKE_SIZE);
                    self.state = State::Done;
                }
                State::Done => return Ok(HandshakeProgress::Done),
            }
        }
    }

    fn answer(&mut self, c1: &[u8]) {
        let mut out = BytesMut::with_capacity(1 + 2 * HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        let found = [DigestSchema::Schema0, DigestSchema::Schema1]
            .into_iter()
            .find_map(|schema| find_digest(c1, schema, PLAYER_KEY_TEXT).map(|d| (schema, d)));
        match found {
            Some((schema, client_digest)) => {
                self.kind = Some(HandshakeKind::Digest(schema));
                let mut s1 = core::mem::take(&mut self.s1);
                if let Some(version) = s1.get_mut(4..8) {
                    version.copy_from_slice(&SERVER_VERSION);
                }
                imprint_digest(&mut s1, schema, SERVER_KEY_TEXT);
                out.put_slice(&s1);
                // S2: random bytes signed with a key derived from the client's digest. Reusing
                // S1's random bytes is fine: nothing in the scheme depends on them differing.
                let random = s1
                    .get(8..8 + HANDSHAKE_SIZE - DIGEST_LEN)
                    .unwrap_or_default();
                out.put_slice(random);
                out.put_slice(&signature(&server_key(), &client_digest, random));
            }
            None => {
                self.kind = Some(HandshakeKind::Plain);
                out.put_slice(&self.s1);
                out.put_slice(c1);
            }
        }
        self.output = Some(out.freeze());
    }

    /// The bytes to send (S0+S1+S2, once C1 has arrived), if any are waiting.
    pub fn take_output(&mut self) -> Option<Bytes> {
        self.output.take()
    }

    /// True once C2 has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Which handshake the client chose, once C1 has been read.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }
}

impl ClientHandshake {
    /// A plain client handshake (version field zero), whose C1 carries `epoch` as its time
    /// field and `random` after it. C0+C1 are ready in [`ClientHandshake::take_output`] at once.
    pub fn new(random: &[u8; RANDOM_LEN], epoch: u32) -> Self {
        Self::build(random, epoch, false)
    }

    /// A client handshake with a digest in C1, as Flash players and ffmpeg send; some servers
    /// insist on it. Falls back to a plain C2 if the server's S1 has no valid digest.
    pub fn new_digest(random: &[u8; RANDOM_LEN], epoch: u32) -> Self {
        Self::build(random, epoch, true)
    }

    /// Like [`ClientHandshake::new`], with the random bytes expanded from `seed`.
    pub fn from_seed(seed: u64, epoch: u32) -> Self {
        Self::new(&random_from_seed(seed), epoch)
    }

    fn build(random: &[u8; RANDOM_LEN], epoch: u32, digest: bool) -> Self {
        let mut c1 = Vec::with_capacity(HANDSHAKE_SIZE);
        c1.extend_from_slice(&epoch.to_be_bytes());
        c1.extend_from_slice(if digest { &CLIENT_VERSION } else { &[0; 4] });
        c1.extend_from_slice(random);
        if digest {
            imprint_digest(&mut c1, DigestSchema::Schema0, PLAYER_KEY_TEXT);
        }
        let mut out = BytesMut::with_capacity(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        out.put_slice(&c1);
        Self {
            state: State::First,
            random: random.to_vec(),
            digest,
            output: Some(out.freeze()),
            kind: None,
        }
    }

    /// Consumes handshake bytes from the front of `input`.
    ///
    /// Only the handshake's own bytes are consumed: when this returns
    /// [`HandshakeProgress::Done`], anything left in `input` is chunk stream data. Check
    /// [`ClientHandshake::take_output`] after every call.
    pub fn handle_input(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<HandshakeProgress, HandshakeError> {
        loop {
            match self.state {
                State::First => {
                    check_version(input)?;
                    if input.len() < 1 + HANDSHAKE_SIZE {
                        return Ok(HandshakeProgress::InProgress);
                    }
                    input.advance(1);
                    let s1 = input.split_to(HANDSHAKE_SIZE);
                    self.answer(s1.freeze());
                    self.state = State::Echo;
                }
                State::Echo => {
                    if input.len() < HANDSHAKE_SIZE {
                        return Ok(HandshakeProgress::InProgress);
                    }
                    input.advance(HANDSHAKE_SIZE);
                    self.state = State::Done;
                }
                State::Done => return Ok(HandshakeProgress::Done),
            }
        }
    }

    fn answer(&mut self, s1: Bytes) {
        let server_digest = if self.digest {
            [DigestSchema::Schema1, DigestSchema::Schema0]
                .into_iter()
                .find_map(|schema| find_digest(&s1, schema, SERVER_KEY_TEXT).map(|d| (schema, d)))
        } else {
            None
        };
        match server_digest {
            Some((schema, digest)) => {
                self.kind = Some(HandshakeKind::Digest(schema));
                let mut out = BytesMut::with_capacity(HANDSHAKE_SIZE);
                let random = self
                    .random
                    .get(..HANDSHAKE_SIZE - DIGEST_LEN)
                    .unwrap_or_default();
                out.put_slice(random);
                out.put_slice(&signature(&player_key(), &digest, random));
                self.output = Some(out.freeze());
            }
            None => {
                self.kind = Some(HandshakeKind::Plain);
                self.output = Some(s1);
            }
        }
    }

    /// The bytes to send: C0+C1 right after construction, C2 once S1 has arrived.
    pub fn take_output(&mut self) -> Option<Bytes> {
        self.output.take()
    }

    /// True once S2 has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Which handshake was used, once S1 has been read.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }
}

fn check_version(input: &[u8]) -> Result<(), HandshakeError> {
    match input.first() {
        Some(&version) if version != RTMP_VERSION => {
            Err(HandshakeError::UnsupportedVersion { version })
        }
        _ => Ok(()),
    }
}

/// The full 62-byte player key (text and tail), which keys the C2 signature key.
fn player_key() -> [u8; 62] {
    full_key(PLAYER_KEY_TEXT)
}

/// The full 68-byte server key (text and tail), which keys the S2 signature key.
fn server_key() -> [u8; 68] {
    full_key(SERVER_KEY_TEXT)
}

fn full_key<const N: usize>(text: &[u8]) -> [u8; N] {
    let mut key = [0; N];
    for (slot, byte) in key.iter_mut().zip(text.iter().chain(KEY_TAIL.iter())) {
        *slot = *byte;
    }
    key
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC takes keys of any length, so this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Where the digest sits in `block` for `schema`.
fn digest_offset(block: &[u8], schema: DigestSchema) -> Option<usize> {
    let base = match schema {
        DigestSchema::Schema0 => 8,
        DigestSchema::Schema1 => 772,
    };
    let sum: usize = block
        .get(base..base + 4)?
        .iter()
        .map(|&b| usize::from(b))
        .sum();
    Some(base + 4 + sum % 728)
}

/// The digest of `block` with the 32 digest bytes at `offset` left out.
fn block_digest(block: &[u8], offset: usize, key: &[u8]) -> Option<[u8; DIGEST_LEN]> {
    let before = block.get(..offset)?;
    let after = block.get(offset + DIGEST_LEN..)?;
    Some(hmac_sha256(key, &[before, after]))
}

/// The digest embedded in `block` if it is valid for `schema` and `key`.
fn find_digest(block: &[u8], schema: DigestSchema, key: &[u8]) -> Option<[u8; DIGEST_LEN]> {
    if block.len() != HANDSHAKE_SIZE {
        return None;
    }
    let offset = digest_offset(block, schema)?;
    let expected = block_digest(block, offset, key)?;
    let embedded = block.get(offset..offset + DIGEST_LEN)?;
    (embedded == expected).then_some(expected)
}

/// Writes the digest of `block` into it at the place `schema` selects.
fn imprint_digest(block: &mut [u8], schema: DigestSchema, key: &[u8]) {
    let Some(offset) = digest_offset(block, schema) else {
        return;
    };
    let Some(digest) = block_digest(block, offset, key) else {
        return;
    };
    if let Some(slot) = block.get_mut(offset..offset + DIGEST_LEN) {
        slot.copy_from_slice(&digest);
    }
}

/// The last 32 bytes of a digest-mode C2/S2: the HMAC of its first 1504 bytes, keyed with the
/// HMAC of the peer's digest under the full key.
fn signature(full_key: &[u8], peer_digest: &[u8; DIGEST_LEN], random: &[u8]) -> [u8; DIGEST_LEN] {
    let key = hmac_sha256(full_key, &[peer_digest]);
    hmac_sha256(&key, &[random])
}

/// Expands a seed into handshake random bytes (splitmix64; not cryptographic, and it need not
/// be).
pub fn random_from_seed(seed: u64) -> [u8; RANDOM_LEN] {
    let mut state = seed;
    let mut random = [0; RANDOM_LEN];
    for chunk in random.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        for (slot, byte) in chunk.iter_mut().zip(z.to_be_bytes()) {
            *slot = byte;
        }
    }
    random
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    /// Feeds `bytes` to `handle` in reads whose sizes cycle through `reads`; returns the
    /// progress after the last read and the bytes left in the buffer.
    fn feed(
        mut handle: impl FnMut(&mut BytesMut) -> Result<HandshakeProgress, HandshakeError>,
        input: &mut BytesMut,
        bytes: &[u8],
        reads: &[usize],
    ) -> Result<HandshakeProgress, HandshakeError> {
        let mut progress = HandshakeProgress::InProgress;
        let mut at = 0;
        let mut reads = reads.iter().cycle();
        while at < bytes.len() {
            let n = (*reads.next().unwrap()).clamp(1, bytes.len() - at);
            input.extend_from_slice(&bytes[at..at + n]);
            at += n;
            progress = handle(input)?;
        }
        Ok(progress)
    }

    /// Runs a client and a server against each other, with `extra` bytes sent by each side
    /// right after its last handshake block; returns what each side had left over.
    fn run_pair(
        mut client: ClientHandshake,
        mut server: ServerHandshake,
        reads: &[usize],
        extra: &[u8],
    ) -> (ClientHandshake, ServerHandshake, BytesMut, BytesMut) {
        let mut server_in = BytesMut::new();
        let mut client_in = BytesMut::new();
        let c0c1 = client.take_output().unwrap();
        assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
        let progress = feed(|b| server.handle_input(b), &mut server_in, &c0c1, reads).unwrap();
        assert_eq!(progress, HandshakeProgress::InProgress);
        let mut s012 = server.take_output().unwrap().to_vec();
        assert_eq!(s012.len(), 1 + 2 * HANDSHAKE_SIZE);
        s012.extend_from_slice(extra);
        let progress = feed(|b| client.handle_input(b), &mut client_in, &s012, reads).unwrap();
        assert_eq!(progress, HandshakeProgress::Done);
        assert!(client.is_done());
        let mut c2 = client.take_output().unwrap().to_vec();
        assert_eq!(c2.len(), HANDSHAKE_SIZE);
        c2.extend_from_slice(extra);
        let progress = feed(|b| server.handle_input(b), &mut server_in, &c2, reads).unwrap();
        assert_eq!(progress, HandshakeProgress::Done);
        assert!(server.is_done());
        assert!(server.take_output().is_none());
        (client, server, client_in, server_in)
    }

    /// Checks S1 and S2 the way ffmpeg's client does; returns the schema of S1's digest.
    fn verify_like_ffmpeg(c1: &[u8], s1: &[u8], s2: &[u8]) -> Option<DigestSchema> {
        let (_, client_digest) = [DigestSchema::Schema0, DigestSchema::Schema1]
            .into_iter()
            .find_map(|s| find_digest(c1, s, PLAYER_KEY_TEXT).map(|d| (s, d)))?;
        let (schema, _) = [DigestSchema::Schema1, DigestSchema::Schema0]
            .into_iter()
            .find_map(|s| find_digest(s1, s, SERVER_KEY_TEXT).map(|d| (s, d)))?;
        let expected = signature(&server_key(), &client_digest, &s2[..HANDSHAKE_SIZE - 32]);
        (s2[HANDSHAKE_SIZE - 32..] == expected).then_some(schema)
    }

    #[test]
    fn keys_are_the_published_constants() {
        assert_eq!(player_key().len(), 62);
        assert_eq!(&player_key()[..30], b"Genuine Adobe Flash Player 001");
        assert_eq!(&server_key()[..36], b"Genuine Adobe Flash Media Server 001");
        assert_eq!(&server_key()[36..], &KEY_TAIL);
        assert_eq!(&player_key()[30..32], &[0xF0, 0xEE]);
        assert_eq!(player_key()[61], 0xAE);
    }

    #[test]
    fn plain_handshake_echoes() {
        let client = ClientHandshake::from_seed(1, 1000);
        let server = ServerHandshake::from_seed(2, 2000);
        let mut client_copy = ClientHandshake::from_seed(1, 1000);
        let c0c1 = client_copy.take_output().unwrap();
        let mut server_copy = ServerHandshake::from_seed(2, 2000);
        let mut input = BytesMut::from(&c0c1[..]);
        server_copy.handle_input(&mut input).unwrap();
        let s012 = server_copy.take_output().unwrap();
        assert_eq!(s012[0], 3);
        assert_eq!(&s012[1..5], &2000u32.to_be_bytes());
        assert_eq!(&s012[5..9], &[0; 4]);
        // S2 is C1.
        assert_eq!(&s012[1 + HANDSHAKE_SIZE..], &c0c1[1..]);
        assert_eq!(server_copy.kind(), Some(HandshakeKind::Plain));

        let (client, server, left_client, left_server) = run_pair(client, server, &[4096], b"");
        assert_eq!(client.kind(), Some(HandshakeKind::Plain));
        assert_eq!(server.kind(), Some(HandshakeKind::Plain));
        assert!(left_client.is_empty() && left_server.is_empty());
    }

    #[test]
    fn digest_handshake_satisfies_an_ffmpeg_style_check() {
        let mut client = ClientHandshake::new_digest(&random_from_seed(3), 0);
        let c0c1 = client.take_output().unwrap();
        let mut server = ServerHandshake::from_seed(4, 77);
        let mut input = BytesMut::from(&c0c1[..]);
        server.handle_input(&mut input).unwrap();
        assert_eq!(
            server.kind(),
            Some(HandshakeKind::Digest(DigestSchema::Schema0))
        );
        let s012 = server.take_output().unwrap();
        let (s1, s2) = s012[1..].split_at(HANDSHAKE_SIZE);
        assert_ne!(&s1[4..8], &[0; 4]);
        assert_eq!(
            verify_like_ffmpeg(&c0c1[1..], s1, s2),
            Some(DigestSchema::Schema0)
        );

        // The client signs C2 likewise.
        let mut client_in = BytesMut::from(&s012[..]);
        assert_eq!(
            client.handle_input(&mut client_in),
            Ok(HandshakeProgress::Done)
        );
        assert_eq!(
            client.kind(),
            Some(HandshakeKind::Digest(DigestSchema::Schema0))
        );
        let c2 = client.take_output().unwrap();
        let server_digest = find_digest(s1, DigestSchema::Schema0, SERVER_KEY_TEXT).unwrap();
        assert_eq!(
            &c2[HANDSHAKE_SIZE - 32..],
            &signature(&player_key(), &server_digest, &c2[..HANDSHAKE_SIZE - 32])
        );
    }

    #[test]
    fn digest_detection_in_both_schemas_and_fallback() {
        for schema in [DigestSchema::Schema0, DigestSchema::Schema1] {
            let mut c1 = vec![0, 0, 0, 0, 9, 0, 124, 2];
            c1.extend_from_slice(&random_from_seed(9));
            imprint_digest(&mut c1, schema, PLAYER_KEY_TEXT);
            let digest = find_digest(&c1, schema, PLAYER_KEY_TEXT).expect("valid digest");
            let offset = digest_offset(&c1, schema).unwrap();
            assert_eq!(&c1[offset..offset + 32], &digest);

            let mut input = BytesMut::new();
            input.put_u8(3);
            input.put_slice(&c1);
            let mut server = ServerHandshake::from_seed(5, 0);
            server.handle_input(&mut input).unwrap();
            assert_eq!(server.kind(), Some(HandshakeKind::Digest(schema)));
            let s012 = server.take_output().unwrap();
            let (s1, s2) = s012[1..].split_at(HANDSHAKE_SIZE);
            assert!(find_digest(s1, schema, SERVER_KEY_TEXT).is_some());
            assert!(verify_like_ffmpeg(&c1, s1, s2).is_some());

            // One corrupted byte anywhere (here: inside and outside the digest) → plain.
            for position in [offset + 5, 1000, 3] {
                let mut corrupted = c1.clone();
                corrupted[position] ^= 0x40;
                let mut input = BytesMut::new();
                input.put_u8(3);
                input.put_slice(&corrupted);
                let mut server = ServerHandshake::from_seed(5, 0);
                server.handle_input(&mut input).unwrap();
                assert_eq!(server.kind(), Some(HandshakeKind::Plain));
                let s012 = server.take_output().unwrap();
                assert_eq!(&s012[1 + HANDSHAKE_SIZE..], &corrupted[..]);
            }
        }
    }

    #[test]
    fn other_versions_are_rejected_at_the_first_byte() {
        for version in [0u8, 6, 0xFF] {
            let mut server = ServerHandshake::from_seed(0, 0);
            let mut input = BytesMut::from(&[version][..]);
            assert_eq!(
                server.handle_input(&mut input),
                Err(HandshakeError::UnsupportedVersion { version })
            );
            let mut client = ClientHandshake::from_seed(0, 0);
            let mut input = BytesMut::from(&[version][..]);
            assert_eq!(
                client.handle_input(&mut input),
                Err(HandshakeError::UnsupportedVersion { version })
            );
        }
    }

    /// Writes the seed corpus of the `rtmp_handshake` fuzz target (byte 0: read size selector;
    /// then the peer's bytes). Run with
    /// `cargo test -p mediakit-core write_rtmp_handshake_corpus -- --ignored`.
    #[cfg(feature = "std")]
    #[test]
    #[ignore]
    fn write_rtmp_handshake_corpus() {
        extern crate std;
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rtmp_handshake");
        std::fs::create_dir_all(&dir).unwrap();
        let mut plain = ClientHandshake::from_seed(11, 1);
        let mut digest = ClientHandshake::new_digest(&random_from_seed(12), 2);
        let c0c1_plain = plain.take_output().unwrap();
        let c0c1_digest = digest.take_output().unwrap();
        // A server's answer, which the client side of the target reads.
        let mut server = ServerHandshake::from_seed(13, 3);
        server
            .handle_input(&mut BytesMut::from(&c0c1_digest[..]))
            .unwrap();
        let s012 = server.take_output().unwrap();
        let c2 = vec![0x55; HANDSHAKE_SIZE];
        let chunk = [0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0];
        let files: [(&str, u8, Vec<u8>); 3] = [
            ("plain_c0_c1_c2", 0, [&c0c1_plain[..], &c2].concat()),
            (
                "digest_c0_c1_c2_then_chunk",
                3,
                [&c0c1_digest[..], &c2, &chunk].concat(),
            ),
            (
                "server_s0_s1_s2_then_chunk",
                40,
                [&s012[..], &chunk].concat(),
            ),
        ];
        for (name, read_selector, bytes) in files {
            let mut file = vec![read_selector];
            file.extend_from_slice(&bytes);
            std::fs::write(dir.join(name), file).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn pair_completes_with_any_reads(
            reads in proptest::collection::vec(prop_oneof![1usize..10, 1usize..2000, Just(5000usize)], 1..6),
            digest in any::<bool>(),
            seeds in any::<(u64, u64)>(),
            extra in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let random = random_from_seed(seeds.0);
            let client = if digest {
                ClientHandshake::new_digest(&random, 10)
            } else {
                ClientHandshake::new(&random, 10)
            };
            let server = ServerHandshake::from_seed(seeds.1, 20);
            let (client, server, left_client, left_server) = run_pair(client, server, &reads, &extra);
            let expected = if digest {
                HandshakeKind::Digest(DigestSchema::Schema0)
            } else {
                HandshakeKind::Plain
            };
            prop_assert_eq!(client.kind(), Some(expected));
            prop_assert_eq!(server.kind(), Some(expected));
            // Bytes after the handshake are left for the chunk decoder, untouched.
            prop_assert_eq!(&left_client[..], &extra[..]);
            prop_assert_eq!(&left_server[..], &extra[..]);
        }

        #[test]
        fn server_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let mut server = ServerHandshake::from_seed(0, 0);
            let mut input = BytesMut::from(&bytes[..]);
            let before = input.len();
            match server.handle_input(&mut input) {
                Ok(HandshakeProgress::Done) => prop_assert_eq!(before - input.len(), 1 + 2 * HANDSHAKE_SIZE),
                Ok(HandshakeProgress::InProgress) => prop_assert!(before - input.len() <= 1 + HANDSHAKE_SIZE),
                Err(_) => prop_assert_ne!(bytes[0], RTMP_VERSION),
            }
        }
    }
}
