//! The 188-byte packet: 4-byte header and the optional adaptation field (ISO/IEC 13818-1
//! §2.4.3.2, §2.4.3.4).

use bytes::{BufMut, BytesMut};

use super::{TsError, PACKET_LEN, SYNC_BYTE};
use crate::wire::Reader;

/// adaptation_field_control: payload only.
const AFC_PAYLOAD: u8 = 0b01;
/// adaptation_field_control: adaptation field, then payload.
const AFC_BOTH: u8 = 0b11;
/// Adaptation field flag bits.
const AF_DISCONTINUITY: u8 = 0x80;
const AF_RANDOM_ACCESS: u8 = 0x40;
const AF_PCR: u8 = 0x10;
/// Bytes of an encoded PCR.
pub const PCR_LEN: usize = 6;
/// The PCR counts 27 MHz: a 33-bit base at 90 kHz times 300 plus a 9-bit extension.
pub const PCR_PER_TICK: u64 = 300;

/// The parsed header of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// transport_error_indicator: a lower layer flagged the packet as damaged.
    pub transport_error: bool,
    /// payload_unit_start_indicator: a PES packet or PSI section starts in this packet.
    pub payload_unit_start: bool,
    /// The packet identifier (13 bits).
    pub pid: u16,
    /// The 4-bit continuity counter.
    pub continuity_counter: u8,
    /// Whether the packet carries payload bytes.
    pub has_payload: bool,
    /// The adaptation field, if present.
    pub adaptation: Option<AdaptationField>,
    /// Where the payload starts within the packet.
    pub payload_offset: usize,
}

/// The parts of an adaptation field this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdaptationField {
    /// discontinuity_indicator: continuity counters and/or the time base restart here.
    pub discontinuity: bool,
    /// random_access_indicator: a decoder can start at the PES beginning in this packet.
    pub random_access: bool,
    /// program_clock_reference in 27 MHz units (base × 300 + extension), if present.
    pub pcr: Option<u64>,
}

impl PacketHeader {
    /// Parses the header and adaptation field of one packet; `packet` must be 188 bytes.
    /// `offset` (the packet's position in the stream) only labels errors.
    pub fn parse(packet: &[u8], offset: u64) -> Result<Self, TsError> {
        let invalid = |what| TsError::Invalid {
            what,
            pid: 0,
            offset,
        };
        if packet.len() != PACKET_LEN {
            return Err(invalid("TS packet length"));
        }
        let mut reader = Reader::new(packet);
        let [sync, b1, b2, b3] = reader.array().ok_or(invalid("TS packet header"))?;
        if sync != SYNC_BYTE {
            return Err(invalid("TS sync byte"));
        }
        let pid = u16::from_be_bytes([b1 & 0x1f, b2]);
        let control = (b3 >> 4) & 0x03;
        let mut header = PacketHeader {
            transport_error: b1 & 0x80 != 0,
            payload_unit_start: b1 & 0x40 != 0,
            pid,
            continuity_counter: b3 & 0x0f,
            has_payload: control & 0b01 != 0,
            adaptation: None,
            payload_offset: 4,
        };
        if control == 0 {
            // Reserved: a decoder discards such packets.
            return Err(TsError::Invalid {
                what: "TS adaptation_field_control",
                pid,
                offset,
            });
        }
        if control & 0b10 != 0 {
            let length = usize::from(reader.u8().ok_or(invalid("TS adaptation field"))?);
            // With payload the field leaves room for at least one payload byte (§2.4.3.5).
            let max = if header.has_payload { 182 } else { 183 };
            if length > max {
                return Err(TsError::Invalid {
                    what: "TS adaptation_field_length",
                    pid,
                    offset,
                });
            }
            let field = reader.take(length).ok_or(invalid("TS adaptation field"))?;
            header.adaptation = Some(parse_adaptation(field));
            header.payload_offset = 5 + length;
        }
        Ok(header)
    }
}

/// Reads the flags and PCR of an adaptation field body (after its length byte); the optional
/// fields after the PCR are of no use here.
fn parse_adaptation(field: &[u8]) -> AdaptationField {
    let mut reader = Reader::new(field);
    let Some(flags) = reader.u8() else {
        return AdaptationField::default();
    };
    let pcr = if flags & AF_PCR != 0 {
        reader.array::<PCR_LEN>().map(|bytes| {
            let [a, b, c, d, e, f] = bytes;
            let base = (u64::from(a) << 25)
                | (u64::from(b) << 17)
                | (u64::from(c) << 9)
                | (u64::from(d) << 1)
                | (u64::from(e) >> 7);
            let extension = (u64::from(e & 0x01) << 8) | u64::from(f);
            base * PCR_PER_TICK + extension
        })
    } else {
        None
    };
    AdaptationField {
        discontinuity: flags & AF_DISCONTINUITY != 0,
        random_access: flags & AF_RANDOM_ACCESS != 0,
        pcr,
    }
}

/// What the muxer puts in one packet's header.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HeaderSpec {
    pub pid: u16,
    pub start: bool,
    pub continuity_counter: u8,
    /// Total adaptation field bytes including its length byte; 0 for none. Must be at least
    /// `2 + PCR_LEN` with a PCR and at least 2 with any flag set.
    pub adaptation_len: usize,
    pub discontinuity: bool,
    pub random_access: bool,
    /// PCR base in 90 kHz ticks (33 bits); the extension is always 0.
    pub pcr_base: Option<u64>,
}

/// Writes a packet header and adaptation field (padded with stuffing bytes to
/// `adaptation_len`). The packet always carries payload after it.
pub(crate) fn put_header(arena: &mut BytesMut, spec: &HeaderSpec) {
    let [pid_hi, pid_lo] = spec.pid.to_be_bytes();
    let control = if spec.adaptation_len > 0 {
        AFC_BOTH
    } else {
        AFC_PAYLOAD
    };
    arena.put_u8(SYNC_BYTE);
    arena.put_u8((u8::from(spec.start) << 6) | (pid_hi & 0x1f));
    arena.put_u8(pid_lo);
    arena.put_u8((control << 4) | (spec.continuity_counter & 0x0f));
    if spec.adaptation_len == 0 {
        return;
    }
    arena.put_u8((spec.adaptation_len - 1) as u8);
    let mut written = 1;
    if spec.adaptation_len >= 2 {
        let mut flags = 0;
        if spec.discontinuity {
            flags |= AF_DISCONTINUITY;
        }
        if spec.random_access {
            flags |= AF_RANDOM_ACCESS;
        }
        if spec.pcr_base.is_some() {
            flags |= AF_PCR;
        }
        arena.put_u8(flags);
        written += 1;
        if let Some(base) = spec.pcr_base {
            put_pcr(arena, base);
            written += PCR_LEN;
        }
    }
    arena.put_bytes(0xff, spec.adaptation_len.saturating_sub(written));
}

/// A PCR with base `base` (33 bits, 90 kHz) and extension 0; the 6 reserved bits are ones.
fn put_pcr(arena: &mut BytesMut, base: u64) {
    let base = base & super::TIMESTAMP_MASK;
    arena.put_u32((base >> 1) as u32);
    arena.put_u8((((base & 1) as u8) << 7) | 0x7e);
    arena.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn header_with_pcr_and_stuffing_round_trips() {
        let mut arena = BytesMut::new();
        let spec = HeaderSpec {
            pid: 0x101,
            start: true,
            continuity_counter: 7,
            adaptation_len: 20,
            random_access: true,
            pcr_base: Some(0x1_2345_6789),
            ..HeaderSpec::default()
        };
        put_header(&mut arena, &spec);
        assert_eq!(arena.len(), 24);
        assert_eq!(&arena[..6], &[0x47, 0x41, 0x01, 0x37, 19, 0x50]);
        let mut packet = arena.to_vec();
        packet.resize(PACKET_LEN, 0xaa);
        let header = PacketHeader::parse(&packet, 0).unwrap();
        assert_eq!(header.pid, 0x101);
        assert!(header.payload_unit_start && header.has_payload && !header.transport_error);
        assert_eq!(header.continuity_counter, 7);
        assert_eq!(header.payload_offset, 24);
        let adaptation = header.adaptation.unwrap();
        assert!(adaptation.random_access && !adaptation.discontinuity);
        assert_eq!(adaptation.pcr, Some(0x1_2345_6789 * 300));
    }

    #[test]
    fn one_byte_adaptation_field_is_just_its_length() {
        let mut arena = BytesMut::new();
        let spec = HeaderSpec {
            pid: 0x100,
            adaptation_len: 1,
            ..HeaderSpec::default()
        };
        put_header(&mut arena, &spec);
        assert_eq!(&arena[..], &[0x47, 0x01, 0x00, 0x30, 0x00]);
    }

    #[test]
    fn bad_headers_are_errors() {
        let mut packet = vec![0u8; PACKET_LEN];
        assert!(PacketHeader::parse(&packet, 0).is_err());
        packet[0] = SYNC_BYTE;
        // adaptation_field_control 00 is reserved.
        assert!(PacketHeader::parse(&packet, 0).is_err());
        packet[3] = 0x30;
        packet[4] = 183;
        assert!(PacketHeader::parse(&packet, 0).is_err());
        packet[3] = 0x20;
        assert!(PacketHeader::parse(&packet, 0).is_ok());
        assert!(PacketHeader::parse(&packet[..100], 0).is_err());
    }
}
