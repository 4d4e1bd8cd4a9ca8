//! NAL unit framing: length-prefixed (FLV/MP4) and Annex-B (start codes, as in TS and RTP
//! reassembly), and conversion between them.

use alloc::vec::Vec;
use bytes::{BufMut, Bytes, BytesMut};

use super::MediaError;
use crate::wire::Reader;

/// Iterates the NAL units of a length-prefixed access unit as zero-copy slices.
///
/// Stops with an error item if a length runs past the end of the payload.
pub fn length_prefixed(payload: &Bytes, length_size: u8) -> LengthPrefixed<'_> {
    LengthPrefixed {
        payload,
        offset: 0,
        length_size,
        failed: false,
    }
}

/// Iterator returned by [`length_prefixed`].
#[derive(Debug)]
pub struct LengthPrefixed<'a> {
    payload: &'a Bytes,
    offset: usize,
    length_size: u8,
    failed: bool,
}

impl Iterator for LengthPrefixed<'_> {
    type Item = Result<Bytes, MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.payload.len() {
            return None;
        }
        let mut reader = Reader::new(self.payload.get(self.offset..).unwrap_or_default());
        let len = match self.length_size {
            1 => reader.u8().map(usize::from),
            2 => reader.u16_be().map(usize::from),
            3 => reader.u24_be().map(|n| n as usize),
            _ => reader.u32_be().map(|n| n as usize),
        };
        let range = len.and_then(|len| reader.take_range(len));
        match range {
            Some(range) => {
                let start = self.offset + range.start;
                let end = self.offset + range.end;
                self.offset = end;
                Some(Ok(self.payload.slice(start..end)))
            }
            None => {
                self.failed = true;
                Some(Err(MediaError::Truncated {
                    what: "length-prefixed NAL unit",
                    offset: self.offset,
                }))
            }
        }
    }
}

/// Splits an Annex-B byte stream at its 3- or 4-byte start codes into zero-copy NAL slices.
/// Empty units (two adjacent start codes) are skipped.
pub fn annex_b_units(stream: &Bytes) -> Vec<Bytes> {
    let mut units = Vec::new();
    let mut unit_start: Option<usize> = None;
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream.get(i..i + 3) == Some(&[0, 0, 1]) {
            if let Some(start) = unit_start {
                let mut end = i;
                // A 4-byte start code's leading zero belongs to the start code, not the unit.
                if end > start && stream.get(end - 1) == Some(&0) {
                    end -= 1;
                }
                if end > start {
                    units.push(stream.slice(start..end));
                }
            }
            i += 3;
            unit_start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(start) = unit_start {
        if start < stream.len() {
            units.push(stream.slice(start..));
        }
    }
    units
}

/// Joins NAL units into one access unit with 4-byte big-endian length prefixes.
pub fn to_length_prefixed<'a>(units: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    for unit in units {
        out.put_u32(unit.len() as u32);
        out.put_slice(unit);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn annex_b_split_handles_both_start_code_lengths() {
        let stream = Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ]);
        let units = annex_b_units(&stream);
        let units: Vec<&[u8]> = units.iter().map(|u| u.as_ref()).collect();
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
    }

    #[test]
    fn truncated_length_prefix_is_reported_once() {
        let payload = Bytes::from_static(&[0, 0, 0, 2, 0x65, 1, 0, 0, 0, 9, 1]);
        let items: Vec<_> = length_prefixed(&payload, 4).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
    }

    proptest! {
        #[test]
        fn length_prefixed_round_trip(units in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 0..8)) {
            let joined = to_length_prefixed(units.iter().map(|u| u.as_slice()));
            let back: Vec<Vec<u8>> = length_prefixed(&joined, 4).map(|u| u.unwrap().to_vec()).collect();
            prop_assert_eq!(back, units);
        }
    }
}
