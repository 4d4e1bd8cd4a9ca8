//! An incremental decoder for HTTP/1.1 chunked bodies (RFC 9112 §7.1), for the HTTP-FLV
//! player: bytes in as they arrive, body bytes out, the last chunk noticed.

use bytes::{Buf, BytesMut};

/// The longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkedError {
    /// A chunk-size line is not hexadecimal.
    #[error("bad chunk size line {0:?}")]
    BadSize(String),
    /// A chunk's data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
    /// A line is longer than any sane server sends.
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// Decodes a chunked body split into reads of any size.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self { state: State::Size }
    }
}

/// Takes one CRLF-terminated line from the front of `input`, without its CRLF.
fn take_line(input: &mut BytesMut) -> Result<Option<BytesMut>, ChunkedError> {
    match input.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let line = input.split_to(end);
            input.advance(2);
            Ok(Some(line))
        }
        None if input.len() > MAX_LINE => Err(ChunkedError::LineTooLong),
        None => Ok(None),
    }
}

impl ChunkedDecoder {
    /// Consumes what it can of `input`, appending body bytes to `body`.
    pub fn decode(
        &mut self,
        input: &mut BytesMut,
        body: &mut BytesMut,
    ) -> Result<(), ChunkedError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(input)? else {
                        return Ok(());
                    };
                    let text = String::from_utf8_lossy(&line);
                    let digits = text.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(digits, 16)
                        .map_err(|_| ChunkedError::BadSize(text.clone().into_owned()))?;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    body.extend_from_slice(&input.split_to(take));
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => {
                    let Some(crlf) = input.get(..2) else {
                        return Ok(());
                    };
                    if crlf != b"\r\n" {
                        return Err(ChunkedError::MissingCrlf);
                    }
                    input.advance(2);
                    self.state = State::Size;
                }
                State::Trailer => {
                    let Some(line) = take_line(input)? else {
                        return Ok(());
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
                State::Done => return Ok(()),
            }
        }
    }

    /// True once the last chunk and its trailer have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(pieces: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for piece in pieces.iter().filter(|p| !p.is_empty()) {
            wire.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
            wire.extend_from_slice(piece);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
        wire
    }

    #[test]
    fn bad_sizes_and_missing_crlf_are_errors() {
        let mut body = BytesMut::new();
        let mut input = BytesMut::from(&b"zz\r\n"[..]);
        assert!(matches!(
            ChunkedDecoder::default().decode(&mut input, &mut body),
            Err(ChunkedError::BadSize(_))
        ));
        let mut input = BytesMut::from(&b"2\r\nabXX"[..]);
        assert_eq!(
            ChunkedDecoder::default().decode(&mut input, &mut body),
            Err(ChunkedError::MissingCrlf)
        );
        let mut input = BytesMut::from(&vec![b'1'; MAX_LINE + 1][..]);
        assert_eq!(
            ChunkedDecoder::default().decode(&mut input, &mut body),
            Err(ChunkedError::LineTooLong)
        );
    }

    proptest! {
        /// Any split of the wire gives the same body and finds the end.
        #[test]
        fn any_split_decodes_the_same(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in proptest::collection::vec(1usize..50, 0..40),
        ) {
            let wire = encode(&pieces);
            let mut decoder = ChunkedDecoder::default();
            let mut input = BytesMut::new();
            let mut body = BytesMut::new();
            let mut rest = &wire[..];
            for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
                let (now, later) = rest.split_at(cut.min(rest.len()));
                input.extend_from_slice(now);
                rest = later;
                decoder.decode(&mut input, &mut body).unwrap();
            }
            prop_assert!(decoder.is_done());
            prop_assert_eq!(body.to_vec(), pieces.concat());
            prop_assert!(input.is_empty());
        }
    }
}
