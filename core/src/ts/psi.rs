//! Program specific information: the PAT and PMT sections and their CRC32 (ISO/IEC 13818-1
//! §2.4.4).

use arrayvec::ArrayVec;
use bytes::{BufMut, BytesMut};

use super::TsError;
use crate::wire::Reader;

/// table_id of the program association section.
pub const TABLE_ID_PAT: u8 = 0x00;
/// table_id of the TS program map section.
pub const TABLE_ID_PMT: u8 = 0x02;
/// The largest section_length of a PAT or PMT (§2.4.4.3, §2.4.4.8).
pub const MAX_SECTION_LENGTH: usize = 1021;
/// Elementary streams kept from one PMT; more are ignored (a live stream has two).
pub const MAX_PMT_STREAMS: usize = 16;
/// The transport_stream_id and program_number the muxer writes.
const TRANSPORT_STREAM_ID: u16 = 1;
const PROGRAM_NUMBER: u16 = 1;

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial value all ones, not reflected, no final XOR.
///
/// Bit-at-a-time rather than table-driven: the muxer only checksums two sections of a few
/// dozen bytes per keyframe and the demuxer one per table repetition, so a table would buy
/// nothing measurable, and this form needs no `static` array (and no indexing, which the
/// crate's lints forbid on untrusted data).
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One elementary stream of a program map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtStream {
    /// stream_type (e.g. [`super::STREAM_TYPE_H264`]).
    pub stream_type: u8,
    /// The PID its PES packets come on.
    pub pid: u16,
}

/// A parsed program map section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    /// The program_number it describes.
    pub program_number: u16,
    /// version_number (5 bits).
    pub version: u8,
    /// The PID carrying the program's PCR.
    pub pcr_pid: u16,
    /// The elementary streams, in table order (at most [`MAX_PMT_STREAMS`]).
    pub streams: ArrayVec<PmtStream, MAX_PMT_STREAMS>,
}

/// Writes a PAT section (table header through CRC) announcing one program on `pmt_pid`.
pub(crate) fn put_pat(arena: &mut BytesMut, pmt_pid: u16, version: u8) {
    let start = arena.len();
    put_section_header(arena, TABLE_ID_PAT, 5 + 4 + 4, TRANSPORT_STREAM_ID, version);
    arena.put_u16(PROGRAM_NUMBER);
    arena.put_u16(0xe000 | (pmt_pid & 0x1fff));
    put_crc(arena, start);
}

/// Writes a PMT section for program 1 with the given streams.
pub(crate) fn put_pmt(arena: &mut BytesMut, pcr_pid: u16, streams: &[PmtStream], version: u8) {
    let start = arena.len();
    let length = 5 + 4 + 5 * streams.len() + 4;
    put_section_header(arena, TABLE_ID_PMT, length, PROGRAM_NUMBER, version);
    arena.put_u16(0xe000 | (pcr_pid & 0x1fff));
    // program_info_length 0: no descriptors.
    arena.put_u16(0xf000);
    for stream in streams {
        arena.put_u8(stream.stream_type);
        arena.put_u16(0xe000 | (stream.pid & 0x1fff));
        arena.put_u16(0xf000);
    }
    put_crc(arena, start);
}

fn put_section_header(arena: &mut BytesMut, table_id: u8, length: usize, id: u16, version: u8) {
    arena.put_u8(table_id);
    // section_syntax_indicator 1, '0', two reserved ones, 12-bit section_length.
    arena.put_u16(0xb000 | (length as u16 & 0x0fff));
    arena.put_u16(id);
    // Two reserved ones, version, current_next_indicator 1.
    arena.put_u8(0xc0 | ((version & 0x1f) << 1) | 1);
    // section_number, last_section_number.
    arena.put_u16(0);
}

fn put_crc(arena: &mut BytesMut, section_start: usize) {
    let crc = crc32_mpeg2(arena.get(section_start..).unwrap_or_default());
    arena.put_u32(crc);
}

/// The long-form section header common to PAT and PMT, checked (syntax bit, CRC).
struct Section<'a> {
    table_id: u8,
    id: u16,
    version: u8,
    current: bool,
    /// The bytes between the header and the CRC.
    body: &'a [u8],
}

fn parse_section(section: &[u8], pid: u16, offset: u64) -> Result<Section<'_>, TsError> {
    let truncated = TsError::Truncated {
        what: "PSI section",
        pid,
        offset,
    };
    let mut reader = Reader::new(section);
    let [table_id, length_hi, length_lo, id_hi, id_lo, version_byte, _, _] =
        reader.array().ok_or(truncated.clone())?;
    let length = usize::from(u16::from_be_bytes([length_hi & 0x0f, length_lo]));
    if length_hi & 0x80 == 0 || !(9..=MAX_SECTION_LENGTH).contains(&length) {
        return Err(TsError::Invalid {
            what: "PSI section header",
            pid,
            offset,
        });
    }
    let whole = section.get(..3 + length).ok_or(truncated)?;
    // Running the CRC over a section including its CRC field leaves zero.
    if crc32_mpeg2(whole) != 0 {
        return Err(TsError::Crc {
            table_id,
            pid,
            offset,
        });
    }
    Ok(Section {
        table_id,
        id: u16::from_be_bytes([id_hi, id_lo]),
        version: (version_byte >> 1) & 0x1f,
        current: version_byte & 1 != 0,
        body: whole.get(8..whole.len() - 4).unwrap_or_default(),
    })
}

/// Parses a PAT section (from its table_id through the CRC; trailing bytes are ignored) and
/// returns the PMT PID of its first program, or `None` if it lists none or is not current.
pub fn parse_pat(section: &[u8], pid: u16, offset: u64) -> Result<Option<u16>, TsError> {
    let section = parse_section(section, pid, offset)?;
    if section.table_id != TABLE_ID_PAT {
        return Err(TsError::Invalid {
            what: "PAT table_id",
            pid,
            offset,
        });
    }
    if !section.current {
        return Ok(None);
    }
    let mut reader = Reader::new(section.body);
    while let Some([number_hi, number_lo, pid_hi, pid_lo]) = reader.array() {
        // Program 0 names the network PID, not a PMT.
        if u16::from_be_bytes([number_hi, number_lo]) != 0 {
            return Ok(Some(u16::from_be_bytes([pid_hi & 0x1f, pid_lo])));
        }
    }
    Ok(None)
}

/// Parses a PMT section (from its table_id through the CRC). Returns `None` for a section
/// that is not yet current.
pub fn parse_pmt(section: &[u8], pid: u16, offset: u64) -> Result<Option<Pmt>, TsError> {
    let section = parse_section(section, pid, offset)?;
    if section.table_id != TABLE_ID_PMT {
        return Err(TsError::Invalid {
            what: "PMT table_id",
            pid,
            offset,
        });
    }
    if !section.current {
        return Ok(None);
    }
    let truncated = TsError::Truncated {
        what: "PMT",
        pid,
        offset,
    };
    let mut reader = Reader::new(section.body);
    let pcr_pid = reader.u16_be().ok_or(truncated.clone())? & 0x1fff;
    let info_length = usize::from(reader.u16_be().ok_or(truncated.clone())? & 0x0fff);
    reader.skip(info_length).ok_or(truncated.clone())?;
    let mut streams = ArrayVec::new();
    while !reader.is_empty() {
        let [stream_type, pid_hi, pid_lo, info_hi, info_lo] =
            reader.array().ok_or(truncated.clone())?;
        let info_length = usize::from(u16::from_be_bytes([info_hi & 0x0f, info_lo]));
        reader.skip(info_length).ok_or(truncated.clone())?;
        let stream = PmtStream {
            stream_type,
            pid: u16::from_be_bytes([pid_hi & 0x1f, pid_lo]),
        };
        // Bounded: a PMT listing more streams than we keep loses the extra ones.
        let _ = streams.try_push(stream);
    }
    Ok(Some(Pmt {
        program_number: section.id,
        version: section.version,
        pcr_pid,
        streams,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PAT and PMT ffmpeg 5/6 writes for one H.264 stream
    /// (`ffmpeg -f lavfi -i testsrc -c:v libx264 -f mpegts`), from the table_id to the CRC.
    const FFMPEG_PAT: &[u8] = &[
        0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1, 0x04,
        0xb2,
    ];
    const FFMPEG_PMT: &[u8] = &[
        0x02, 0xb0, 0x12, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00, 0xf0, 0x00, 0x1b, 0xe1, 0x00,
        0xf0, 0x00, 0x15, 0xbd, 0x4d, 0x56,
    ];

    #[test]
    fn crc_matches_the_catalogue_check_value() {
        // CRC-32/MPEG-2 check value for "123456789".
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
        assert_eq!(crc32_mpeg2(FFMPEG_PAT), 0);
        assert_eq!(crc32_mpeg2(FFMPEG_PMT), 0);
    }

    #[test]
    fn parses_ffmpeg_tables() {
        assert_eq!(parse_pat(FFMPEG_PAT, 0, 0), Ok(Some(0x1000)));
        let pmt = parse_pmt(FFMPEG_PMT, 0x1000, 0).unwrap().unwrap();
        assert_eq!(pmt.pcr_pid, 0x100);
        assert_eq!(pmt.version, 0);
        assert_eq!(
            pmt.streams.as_slice(),
            &[PmtStream {
                stream_type: 0x1b,
                pid: 0x100
            }]
        );
    }

    #[test]
    fn writes_what_ffmpeg_writes() {
        let mut arena = BytesMut::new();
        put_pat(&mut arena, 0x1000, 0);
        // ffmpeg uses transport_stream_id 1 too, version 0: byte-identical.
        assert_eq!(&arena[..], FFMPEG_PAT);
        arena.clear();
        let streams = [PmtStream {
            stream_type: 0x1b,
            pid: 0x100,
        }];
        put_pmt(&mut arena, 0x100, &streams, 0);
        assert_eq!(&arena[..], FFMPEG_PMT);
    }

    #[test]
    fn damaged_sections_are_rejected() {
        let mut pat = FFMPEG_PAT.to_vec();
        pat[9] ^= 1;
        assert!(matches!(
            parse_pat(&pat, 0, 7),
            Err(TsError::Crc { offset: 7, .. })
        ));
        assert!(parse_pat(&FFMPEG_PAT[..10], 0, 0).is_err());
        assert!(parse_pmt(FFMPEG_PAT, 0, 0).is_err());
    }
}
