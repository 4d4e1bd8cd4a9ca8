//! PES packet headers (ISO/IEC 13818-1 §2.4.3.6): the part of each elementary stream packet
//! that carries PTS and DTS.

use bytes::{BufMut, BytesMut};

use super::TIMESTAMP_MASK;
use crate::wire::Reader;

/// Bytes of a PES header before the optional fields: start code prefix, stream_id,
/// PES_packet_length, two flag bytes and PES_header_data_length.
pub const PES_FIXED_HEADER_LEN: usize = 9;
/// Bytes of one encoded PTS or DTS.
pub const TIMESTAMP_LEN: usize = 5;
/// The largest PES_packet_length.
pub const MAX_PES_PACKET_LENGTH: usize = u16::MAX as usize;

/// The length of the PES header the muxer writes, with or without a DTS.
pub fn header_len(with_dts: bool) -> usize {
    PES_FIXED_HEADER_LEN + TIMESTAMP_LEN * (1 + usize::from(with_dts))
}

/// Writes a PES header with a PTS and, if given, a DTS (both 90 kHz, taken modulo 2^33).
/// `packet_length` is the PES_packet_length field: the bytes after it, or 0 for an unbounded
/// video PES.
pub(crate) fn put_header(
    arena: &mut BytesMut,
    stream_id: u8,
    packet_length: u16,
    pts: u64,
    dts: Option<u64>,
    data_alignment: bool,
) {
    arena.put_slice(&[0, 0, 1, stream_id]);
    arena.put_u16(packet_length);
    // '10' marker, not scrambled, no priority, data_alignment_indicator, not copyrighted,
    // a copy.
    arena.put_u8(0x80 | (u8::from(data_alignment) << 2));
    match dts {
        Some(dts) => {
            arena.put_u8(0xc0);
            arena.put_u8((2 * TIMESTAMP_LEN) as u8);
            put_timestamp(arena, 0b0011, pts);
            put_timestamp(arena, 0b0001, dts);
        }
        None => {
            arena.put_u8(0x80);
            arena.put_u8(TIMESTAMP_LEN as u8);
            put_timestamp(arena, 0b0010, pts);
        }
    }
}

/// A 33-bit timestamp in the 5-byte layout: 4-bit prefix, then 3/15/15 bits each followed by
/// a marker bit.
fn put_timestamp(arena: &mut BytesMut, prefix: u8, ticks: u64) {
    let ticks = ticks & TIMESTAMP_MASK;
    arena.put_u8((prefix << 4) | (((ticks >> 30) as u8 & 0x07) << 1) | 1);
    arena.put_u16((((ticks >> 15) as u16 & 0x7fff) << 1) | 1);
    arena.put_u16(((ticks as u16 & 0x7fff) << 1) | 1);
}

fn read_timestamp(bytes: [u8; 5]) -> u64 {
    let [a, b, c, d, e] = bytes;
    (u64::from(a >> 1 & 0x07) << 30)
        | (u64::from(b) << 22)
        | (u64::from(c >> 1) << 15)
        | (u64::from(d) << 7)
        | u64::from(e >> 1)
}

/// A parsed PES header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    /// stream_id (0xE0.. video, 0xC0.. audio).
    pub stream_id: u8,
    /// PES_packet_length: bytes after this field, 0 for unbounded.
    pub packet_length: u16,
    /// The presentation timestamp in 90 kHz ticks, if present.
    pub pts: Option<u64>,
    /// The decode timestamp in 90 kHz ticks, if present.
    pub dts: Option<u64>,
    /// Where the elementary stream data starts.
    pub payload_offset: usize,
}

/// Streams whose PES packets have no optional header (§2.4.3.7, Table 2-21).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    )
}

/// Why a PES header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PesHeaderError {
    /// Fewer bytes than the header declares.
    Truncated,
    /// No start code prefix or a wrong marker.
    Invalid,
}

/// Parses the PES header at the start of `data`.
pub fn parse_header(data: &[u8]) -> Result<PesHeader, PesHeaderError> {
    let mut reader = Reader::new(data);
    let [p0, p1, p2, stream_id, len_hi, len_lo] =
        reader.array().ok_or(PesHeaderError::Truncated)?;
    if [p0, p1, p2] != [0, 0, 1] {
        return Err(PesHeaderError::Invalid);
    }
    let mut header = PesHeader {
        stream_id,
        packet_length: u16::from_be_bytes([len_hi, len_lo]),
        pts: None,
        dts: None,
        payload_offset: 6,
    };
    if !has_optional_header(stream_id) {
        return Ok(header);
    }
    let [flags1, flags2, data_length] = reader.array().ok_or(PesHeaderError::Truncated)?;
    if flags1 & 0xc0 != 0x80 {
        return Err(PesHeaderError::Invalid);
    }
    let optional = reader
        .take(usize::from(data_length))
        .ok_or(PesHeaderError::Truncated)?;
    let mut fields = Reader::new(optional);
    match flags2 >> 6 {
        0b10 => {
            header.pts = Some(read_timestamp(
                fields.array().ok_or(PesHeaderError::Truncated)?,
            ));
        }
        0b11 => {
            header.pts = Some(read_timestamp(
                fields.array().ok_or(PesHeaderError::Truncated)?,
            ));
            header.dts = Some(read_timestamp(
                fields.array().ok_or(PesHeaderError::Truncated)?,
            ));
        }
        // 0b01 is forbidden; treat it as no timestamps rather than drop the payload.
        _ => {}
    }
    header.payload_offset = PES_FIXED_HEADER_LEN + usize::from(data_length);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_33_bits() {
        let mut arena = BytesMut::new();
        put_header(
            &mut arena,
            0xe0,
            0,
            TIMESTAMP_MASK,
            Some(0x1_0000_0001),
            true,
        );
        assert_eq!(arena.len(), header_len(true));
        let header = parse_header(&arena).unwrap();
        assert_eq!(header.stream_id, 0xe0);
        assert_eq!(header.packet_length, 0);
        assert_eq!(header.pts, Some(TIMESTAMP_MASK));
        assert_eq!(header.dts, Some(0x1_0000_0001));
        assert_eq!(header.payload_offset, 19);
    }

    #[test]
    fn pts_only_has_the_ffmpeg_layout() {
        let mut arena = BytesMut::new();
        // 126000 ticks: 1.4 s, ffmpeg's first PTS.
        put_header(&mut arena, 0xc0, 100, 126_000, None, false);
        assert_eq!(
            &arena[..],
            &[0, 0, 1, 0xc0, 0, 100, 0x80, 0x80, 5, 0x21, 0x00, 0x07, 0xd8, 0x61]
        );
        assert!(parse_header(&arena[..12]).is_err());
        assert_eq!(
            parse_header(&[0, 0, 2, 0xe0, 0, 0]),
            Err(PesHeaderError::Invalid)
        );
    }
}
