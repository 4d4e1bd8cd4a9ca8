//! Mux/demux round trips and stream invariants.

use alloc::vec;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::packet::{PacketHeader, PCR_PER_TICK};
use super::*;
use crate::media::nal::annex_b_units;
use crate::media::{AacConfig, AvcConfig, Frame, HevcConfig, Media, TrackConfig};
use crate::outq::OutQueue;

const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];
const VPS265: &[u8] = &[0x40, 0x01, 0x0c, 0x01];
const SPS265: &[u8] = &[0x42, 0x01, 0x01, 0x01, 0x60];
const PPS265: &[u8] = &[0x44, 0x01, 0xc1, 0x72];

fn avc_config(length_size: u8) -> TrackConfig {
    TrackConfig::Avc(AvcConfig {
        record: Bytes::new(),
        profile: 100,
        compatibility: 0,
        level: 31,
        nal_length_size: length_size,
        sps: vec![Bytes::from_static(SPS)],
        pps: vec![Bytes::from_static(PPS)],
    })
}

fn hevc_config() -> TrackConfig {
    TrackConfig::Hevc(HevcConfig {
        record: Bytes::new(),
        profile: 1,
        level: 93,
        nal_length_size: 4,
        vps: vec![Bytes::from_static(VPS265)],
        sps: vec![Bytes::from_static(SPS265)],
        pps: vec![Bytes::from_static(PPS265)],
    })
}

fn aac_config() -> TrackConfig {
    TrackConfig::Aac(AacConfig::new(2, 44_100, 2).unwrap())
}

fn length_prefixed(units: &[&[u8]], size: u8) -> Bytes {
    let mut out = Vec::new();
    for unit in units {
        let len = (unit.len() as u32).to_be_bytes();
        out.extend_from_slice(&len[4 - usize::from(size)..]);
        out.extend_from_slice(unit);
    }
    Bytes::from(out)
}

fn video(codec: Codec, dts: i64, pts: i64, keyframe: bool, units: &[&[u8]]) -> Frame {
    Frame {
        codec,
        dts,
        pts,
        keyframe,
        payload: length_prefixed(units, 4),
    }
}

fn audio(dts: i64, payload: &[u8]) -> Frame {
    Frame {
        codec: Codec::Aac,
        dts,
        pts: dts,
        keyframe: true,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn concat(out: &OutQueue) -> Vec<u8> {
    out.segments().flat_map(|s| s.iter().copied()).collect()
}

fn mux(media: &[Media]) -> (Vec<u8>, OutQueue) {
    let mut muxer = TsMuxer::default();
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    for item in media {
        muxer.write_media(item, &mut arena, &mut out).unwrap();
    }
    (concat(&out), out)
}

fn demux(stream: &[u8], reads: &[usize]) -> (Vec<Result<PesPacket, TsError>>, DemuxStats) {
    let mut demuxer = TsDemuxer::default();
    let mut reports = Vec::new();
    let mut rest = stream;
    let mut sizes = reads.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (read, tail) = rest.split_at(n);
        rest = tail;
        demuxer.push(read);
        reports.extend(core::iter::from_fn(|| demuxer.poll()));
    }
    demuxer.flush();
    reports.extend(core::iter::from_fn(|| demuxer.poll()));
    (reports, *demuxer.stats())
}

fn pes_packets(stream: &[u8], reads: &[usize]) -> Vec<PesPacket> {
    let (reports, stats) = demux(stream, reads);
    assert_eq!(stats.continuity_errors, 0);
    assert_eq!(stats.sync_losses, 0);
    reports.into_iter().map(Result::unwrap).collect()
}

/// `a - b` in the 33-bit timestamp space, as a signed difference.
fn ticks_diff(a: u64, b: u64) -> i64 {
    let d = a.wrapping_sub(b) & TIMESTAMP_MASK;
    if d >= 1 << 32 {
        d as i64 - (1 << 33)
    } else {
        d as i64
    }
}

/// Checks every packet: sync byte, continuity per PID, PCR monotonic and not after the DTS
/// of the PES it starts, PTS not before DTS, PES starts carrying a header.
fn check_invariants(stream: &[u8], pcr_pid: u16) {
    assert_eq!(stream.len() % PACKET_LEN, 0, "whole packets");
    let mut counters = alloc::collections::BTreeMap::new();
    let mut last_pcr: Option<u64> = None;
    for (i, packet) in stream.chunks(PACKET_LEN).enumerate() {
        assert_eq!(packet[0], SYNC_BYTE, "packet {i}");
        let header = PacketHeader::parse(packet, 0).unwrap();
        assert!(header.has_payload);
        if let Some(last) = counters.insert(header.pid, header.continuity_counter) {
            assert_eq!(
                header.continuity_counter,
                (last + 1) & 0x0f,
                "cc on packet {i}"
            );
        }
        let payload = &packet[header.payload_offset..];
        let pcr = header.adaptation.and_then(|a| a.pcr);
        if let Some(pcr) = pcr {
            assert_eq!(header.pid, pcr_pid, "PCR only on the PCR PID");
            if let Some(last) = last_pcr {
                let delta = ticks_diff(pcr / PCR_PER_TICK, last / PCR_PER_TICK);
                assert!(delta >= 0, "PCR went back on packet {i}");
            }
            last_pcr = Some(pcr);
        }
        if header.payload_unit_start && header.pid != PAT_PID && header.pid != DEFAULT_PMT_PID {
            let pes = pes::parse_header(payload).unwrap();
            let pts = pes.pts.unwrap();
            let dts = pes.dts.unwrap_or(pts);
            assert!(pes.dts != Some(pts), "DTS written only when it differs");
            assert!(ticks_diff(pts, dts) >= 0, "PTS before DTS");
            if let Some(pcr) = pcr {
                assert!(ticks_diff(dts, pcr / PCR_PER_TICK) >= 0, "PCR after DTS");
            }
            if let Some(a) = header.adaptation {
                // Stuffing is only in the last packet of a PES; the first has flags.
                assert!(a.random_access || a.pcr.is_some() || payload.len() < 184);
            }
        }
    }
}

#[test]
fn audio_only_stream_has_exact_bytes() {
    let raw = [0x21, 0x10, 0x05];
    let (stream, _) = mux(&[Media::Config(aac_config()), Media::Frame(audio(0, &raw))]);
    assert_eq!(stream.len(), 3 * PACKET_LEN);
    // PAT, PMT with PCR on the audio PID and one AAC stream.
    assert_eq!(&stream[..4], &[0x47, 0x40, 0x00, 0x10]);
    assert_eq!(&stream[188..192], &[0x47, 0x50, 0x00, 0x10]);
    let pmt = &stream[193..];
    assert_eq!(
        psi::parse_pmt(pmt, DEFAULT_PMT_PID, 0)
            .unwrap()
            .unwrap()
            .pcr_pid,
        DEFAULT_AUDIO_PID
    );
    let packet = &stream[376..];
    // PUSI on PID 0x101, adaptation field + payload; PCR, random access; stuffing.
    assert_eq!(&packet[..4], &[0x47, 0x41, 0x01, 0x30]);
    let payload_len = 14 + 7 + raw.len();
    let af_len = 184 - payload_len;
    assert_eq!(usize::from(packet[4]), af_len - 1);
    assert_eq!(packet[5], 0x50);
    assert!(packet[12..4 + af_len].iter().all(|&b| b == 0xff));
    let pes = &packet[4 + af_len..];
    // PES length 8 + 7 + 3, PTS 1.4 s (the offset).
    assert_eq!(
        pes[..14],
        [0, 0, 1, 0xc0, 0, 18, 0x84, 0x80, 5, 0x21, 0x00, 0x07, 0xd8, 0x61]
    );
    // ADTS: AAC-LC, 44.1 kHz, stereo, frame length 10.
    assert_eq!(pes[14..21], [0xff, 0xf1, 0x50, 0x80, 0x01, 0x5f, 0xfc]);
    assert_eq!(pes[21..], raw);
    // PCR = DTS - 400 ms.
    let header = PacketHeader::parse(packet, 0).unwrap();
    assert_eq!(
        header.adaptation.unwrap().pcr,
        Some((126_000 - 36_000) * 300)
    );
}

#[test]
fn nal_units_are_sliced_not_copied() {
    let big = vec![0x77u8; 1000];
    let mut unit = vec![0x65];
    unit.extend_from_slice(&big);
    let frame = video(Codec::H264, 0, 40, true, &[&unit]);
    let payload = frame.payload.clone();
    let (stream, out) = mux(&[Media::Config(avc_config(4)), Media::Frame(frame)]);
    check_invariants(&stream, DEFAULT_VIDEO_PID);
    let range = payload.as_ptr() as usize..payload.as_ptr() as usize + payload.len();
    let sliced: usize = out
        .segments()
        .filter(|s| range.contains(&(s.as_ptr() as usize)))
        .map(<[u8]>::len)
        .sum();
    assert_eq!(sliced, unit.len(), "the whole NAL unit is sliced");
    let pes = pes_packets(&stream, &[stream.len()]);
    assert_eq!(pes.len(), 1);
    assert!(pes[0].random_access);
    assert_eq!((pes[0].pts, pes[0].dts), (Some(129_600), Some(126_000)));
    let units = annex_b_units(&pes[0].payload);
    let units: Vec<&[u8]> = units.iter().map(|u| u.as_ref()).collect();
    assert_eq!(units, [&[0x09, 0xf0][..], SPS, PPS, &unit]);
}

#[test]
fn frames_before_their_config_are_dropped() {
    let mut muxer = TsMuxer::default();
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    let frame = video(Codec::H264, 0, 0, true, &[&[0x65, 1]]);
    assert_eq!(
        muxer.write_frame(&frame, &mut arena, &mut out),
        Ok(WriteOutcome::NoConfig)
    );
    muxer.set_config(&hevc_config()).unwrap();
    // An H.264 frame on an H.265 track is dropped too.
    assert_eq!(
        muxer.write_frame(&frame, &mut arena, &mut out),
        Ok(WriteOutcome::NoConfig)
    );
    assert!(out.is_empty());
}

#[test]
fn keyframes_get_tables_and_parameter_sets_unless_in_band() {
    let mut muxer = TsMuxer::default();
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    muxer.set_config(&avc_config(2)).unwrap();
    let frames = [
        Frame {
            payload: length_prefixed(&[&[0x65, 1, 2]], 2),
            ..video(Codec::H264, 0, 0, true, &[])
        },
        Frame {
            payload: length_prefixed(&[&[0x09, 0x10], &[0x41, 3]], 2),
            ..video(Codec::H264, 40, 40, false, &[])
        },
        // In-band SPS/PPS: not inserted again; its own AUD is replaced by ours.
        Frame {
            payload: length_prefixed(&[&[0x67, 9], &[0x68, 8], &[0x65, 4]], 2),
            ..video(Codec::H264, 80, 80, true, &[])
        },
    ];
    let mut outcomes = Vec::new();
    for frame in &frames {
        outcomes.push(muxer.write_frame(frame, &mut arena, &mut out).unwrap());
    }
    assert_eq!(
        outcomes,
        [
            WriteOutcome::Written {
                bytes: 3 * PACKET_LEN,
                tables: true
            },
            WriteOutcome::Written {
                bytes: PACKET_LEN,
                tables: false
            },
            WriteOutcome::Written {
                bytes: 3 * PACKET_LEN,
                tables: true
            },
        ]
    );
    let stream = concat(&out);
    check_invariants(&stream, DEFAULT_VIDEO_PID);
    let pes = pes_packets(&stream, &[1]);
    let units: Vec<Vec<Vec<u8>>> = pes
        .iter()
        .map(|p| {
            annex_b_units(&p.payload)
                .iter()
                .map(|u| u.to_vec())
                .collect()
        })
        .collect();
    assert_eq!(
        units,
        [
            vec![
                vec![0x09, 0xf0],
                SPS.to_vec(),
                PPS.to_vec(),
                vec![0x65, 1, 2]
            ],
            vec![vec![0x09, 0xf0], vec![0x41, 3]],
            vec![
                vec![0x09, 0xf0],
                vec![0x67, 9],
                vec![0x68, 8],
                vec![0x65, 4]
            ],
        ]
    );
    assert_eq!(
        pes.iter().map(|p| p.random_access).collect::<Vec<_>>(),
        [true, false, true]
    );
}

#[test]
fn codec_change_bumps_the_pmt_version_and_parameter_sets_do_not() {
    let mut muxer = TsMuxer::default();
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    muxer.set_config(&avc_config(4)).unwrap();
    muxer
        .write_frame(
            &video(Codec::H264, 0, 0, true, &[&[0x65]]),
            &mut arena,
            &mut out,
        )
        .unwrap();
    muxer.set_config(&avc_config(4)).unwrap();
    assert_eq!(muxer.pmt_version(), 0);
    muxer.set_config(&hevc_config()).unwrap();
    assert_eq!(muxer.pmt_version(), 1);
    let outcome = muxer
        .write_frame(
            &video(Codec::H265, 40, 40, false, &[&[0x02, 0x01, 7]]),
            &mut arena,
            &mut out,
        )
        .unwrap();
    assert_eq!(
        outcome,
        WriteOutcome::Written {
            bytes: 3 * PACKET_LEN,
            tables: true
        }
    );
    let stream = concat(&out);
    let pmt = &stream[stream.len() - 2 * PACKET_LEN + 5..];
    let pmt = psi::parse_pmt(pmt, DEFAULT_PMT_PID, 0).unwrap().unwrap();
    assert_eq!(pmt.version, 1);
    assert_eq!(pmt.streams[0].stream_type, STREAM_TYPE_H265);
    let pes = pes_packets(&stream, &[100]);
    assert_eq!(pes[1].stream_type, STREAM_TYPE_H265);
    let units = annex_b_units(&pes[1].payload);
    assert_eq!(&units[0][..], &[0x46, 0x01, 0x50]);
    assert_eq!(&units[1][..], &[0x02, 0x01, 7]);
}

#[test]
fn write_tables_and_unsupported_audio() {
    let mut muxer = TsMuxer::default();
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    muxer.write_tables(&mut arena, &mut out);
    assert_eq!(out.queued_bytes(), 2 * PACKET_LEN);
    assert_eq!(out.segment_count(), 1);
    let he_aac = AacConfig::new(5, 44_100, 2).unwrap();
    assert!(matches!(
        muxer.set_config(&TrackConfig::Aac(he_aac)),
        Err(TsError::Unsupported { .. })
    ));
    assert!(!muxer.has_track(crate::media::MediaKind::Audio));
    muxer.set_config(&aac_config()).unwrap();
    let big = audio(0, &[1; 8190]);
    assert!(matches!(
        muxer.write_frame(&big, &mut arena, &mut out),
        Err(TsError::TooLarge { .. })
    ));
    // A truncated length prefix writes nothing.
    muxer.set_config(&avc_config(4)).unwrap();
    let broken = Frame {
        payload: Bytes::from_static(&[0, 0, 0, 9, 0x65]),
        ..video(Codec::H264, 0, 0, true, &[])
    };
    let queued = out.queued_bytes();
    assert!(muxer.write_frame(&broken, &mut arena, &mut out).is_err());
    assert_eq!(out.queued_bytes(), queued);
}

#[test]
fn demuxer_resyncs_counts_continuity_errors_and_bounds_pes() {
    let unit = vec![0x41u8; 600];
    let media = [
        Media::Config(avc_config(4)),
        Media::Frame(video(Codec::H264, 0, 0, true, &[&[0x65, 1]])),
        Media::Frame(video(Codec::H264, 40, 40, false, &[&unit])),
        Media::Frame(video(Codec::H264, 80, 80, false, &[&[0x41, 2]])),
    ];
    let (stream, _) = mux(&media);
    // Garbage before the stream, and a packet of the 600-byte frame lost.
    let mut damaged = vec![0x00, 0x12, 0x34];
    damaged.extend_from_slice(&stream[..4 * PACKET_LEN]);
    damaged.extend_from_slice(&stream[5 * PACKET_LEN..]);
    let (reports, stats) = demux(&damaged, &[7, 300]);
    assert_eq!(stats.sync_losses, 1);
    assert!(stats.continuity_errors >= 1);
    assert!(stats.dropped_pes >= 1);
    let pes: Vec<PesPacket> = reports.into_iter().filter_map(Result::ok).collect();
    let dts: Vec<Option<u64>> = pes.iter().map(PesPacket::decode_ticks).collect();
    assert_eq!(dts, [Some(126_000), Some(133_200)]);

    // A PES beyond the limit is dropped with an error; the next one still comes out.
    let mut demuxer = TsDemuxer::new(TsDemuxConfig {
        max_pes_size: 300,
        ..TsDemuxConfig::default()
    });
    demuxer.push(&stream);
    demuxer.flush();
    let reports: Vec<_> = core::iter::from_fn(|| demuxer.poll()).collect();
    assert!(matches!(reports[1], Err(TsError::TooLarge { .. })));
    assert_eq!(reports.iter().filter(|r| r.is_ok()).count(), 2);

    // A corrupted PAT is reported and ignored.
    let mut bad = stream.clone();
    bad[10] ^= 0x01;
    let (reports, _) = demux(&bad, &[188]);
    assert!(matches!(reports[0], Err(TsError::Crc { table_id: 0, .. })));
}

#[test]
fn unbounded_pes_ends_at_flush() {
    let (stream, _) = mux(&[
        Media::Config(avc_config(4)),
        Media::Frame(video(Codec::H264, 0, 0, true, &[&[0x65, 1]])),
    ]);
    let mut demuxer = TsDemuxer::default();
    demuxer.push(&stream);
    assert!(demuxer.poll().is_none());
    demuxer.flush();
    assert!(matches!(demuxer.poll(), Some(Ok(_))));
    assert_eq!(demuxer.pmt_pid(), Some(DEFAULT_PMT_PID));
    assert_eq!(demuxer.pcr_pid(), Some(DEFAULT_VIDEO_PID));
    assert_eq!(
        demuxer.streams().collect::<Vec<_>>(),
        [(DEFAULT_VIDEO_PID, STREAM_TYPE_H264)]
    );
}

#[test]
fn demuxes_an_ffmpeg_stream() {
    // The first PAT and PMT ffmpeg writes, then a null packet and garbage.
    let mut stream = Vec::new();
    let mut pat = vec![0x47, 0x40, 0x00, 0x10, 0x00];
    pat.extend_from_slice(&[
        0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1, 0x04,
        0xb2,
    ]);
    pat.resize(PACKET_LEN, 0xff);
    stream.extend_from_slice(&pat);
    let mut null = vec![0x47, 0x1f, 0xff, 0x10];
    null.resize(PACKET_LEN, 0);
    stream.extend_from_slice(&null);
    let mut demuxer = TsDemuxer::default();
    demuxer.push(&stream);
    assert_eq!(demuxer.pmt_pid(), Some(0x1000));
    assert_eq!(demuxer.stats().packets, 2);
}

/// A frame of a generated stream.
#[derive(Debug, Clone)]
struct GenFrame {
    video: bool,
    dts_step: i64,
    cts: i64,
    keyframe: bool,
    /// (header kind, body) of each NAL unit.
    units: Vec<(usize, Vec<u8>)>,
}

fn gen_frame() -> impl Strategy<Value = GenFrame> {
    (
        any::<bool>(),
        0i64..50,
        0i64..200,
        any::<bool>(),
        proptest::collection::vec(
            (0usize..3, proptest::collection::vec(1u8..=255, 0..400)),
            1..4,
        ),
    )
        .prop_map(|(video, dts_step, cts, keyframe, units)| GenFrame {
            video,
            dts_step,
            cts,
            keyframe,
            units,
        })
}

/// A NAL unit with a slice, IDR or SEI header of `codec`: never parameter sets or AUD.
fn gen_unit(codec: Codec, kind: usize, body: &[u8]) -> Vec<u8> {
    let header: &[u8] = match (codec, kind) {
        (Codec::H264, 0) => &[0x41],
        (Codec::H264, 1) => &[0x65],
        (Codec::H264, _) => &[0x06],
        (_, 0) => &[0x02, 0x01],
        (_, 1) => &[0x26, 0x01],
        (_, _) => &[0x4e, 0x01],
    };
    [header, body].concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mux_demux_round_trip(
        codec in prop_oneof![Just(None), Just(Some(Codec::H264)), Just(Some(Codec::H265))],
        with_audio in any::<bool>(),
        start in -1_000i64..100_000_000,
        frames in proptest::collection::vec(gen_frame(), 1..30),
        reads in proptest::collection::vec(1usize..500, 1..8),
    ) {
        prop_assume!(codec.is_some() || with_audio);
        let mut media = Vec::new();
        match codec {
            Some(Codec::H264) => media.push(Media::Config(avc_config(4))),
            Some(_) => media.push(Media::Config(hevc_config())),
            None => {}
        }
        if with_audio {
            media.push(Media::Config(aac_config()));
        }
        let mut expected = Vec::new();
        let mut dts = start;
        for frame in &frames {
            dts += frame.dts_step;
            let item = match (frame.video, codec) {
                (true, Some(codec)) => {
                    let units: Vec<Vec<u8>> =
                        frame.units.iter().map(|(k, b)| gen_unit(codec, *k, b)).collect();
                    let units: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
                    video(codec, dts, dts + frame.cts, frame.keyframe, &units)
                }
                _ if with_audio => {
                    let raw: Vec<u8> = frame.units.iter().flat_map(|(_, b)| b.clone()).collect();
                    audio(dts, &raw)
                }
                _ => continue,
            };
            expected.push(item.clone());
            media.push(Media::Frame(item));
        }
        let (stream, _) = mux(&media);
        let pcr_pid = if codec.is_some() { DEFAULT_VIDEO_PID } else { DEFAULT_AUDIO_PID };
        check_invariants(&stream, pcr_pid);
        let whole = pes_packets(&stream, &[stream.len()]);
        let split = pes_packets(&stream, &reads);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(whole.len(), expected.len());
        // Each PID's PES packets come out in order; across PIDs, a video PES (unbounded)
        // only ends when the next one starts.
        let (mut video_pes, audio_pes): (Vec<&PesPacket>, Vec<&PesPacket>) =
            whole.iter().partition(|p| p.pid == DEFAULT_VIDEO_PID);
        video_pes.extend(audio_pes);
        let (mut video_frames, audio_frames): (Vec<&Frame>, Vec<&Frame>) =
            expected.iter().partition(|f| f.codec != Codec::Aac);
        video_frames.extend(audio_frames);
        for (pes, frame) in video_pes.into_iter().zip(video_frames) {
            let offset = DEFAULT_TIMESTAMP_OFFSET_MS;
            prop_assert_eq!(pes.pts, Some(ms_to_ticks(frame.pts, offset)));
            let dts = (frame.dts != frame.pts).then(|| ms_to_ticks(frame.dts, offset));
            prop_assert_eq!(pes.dts, dts);
            prop_assert_eq!(pes.codec(), Some(frame.codec));
            prop_assert_eq!(pes.random_access, frame.keyframe);
            if frame.codec == Codec::Aac {
                let adts = &pes.payload[..7];
                let len = (usize::from(adts[3] & 3) << 11)
                    | (usize::from(adts[4]) << 3)
                    | usize::from(adts[5] >> 5);
                prop_assert_eq!(len, pes.payload.len());
                prop_assert_eq!(&pes.payload[7..], &frame.payload[..]);
            } else {
                let units = annex_b_units(&pes.payload);
                let mut units = units.iter().map(|u| u.to_vec());
                let aud = units.next().unwrap();
                prop_assert!(aud == [0x09, 0xf0] || aud == [0x46, 0x01, 0x50]);
                let sets = match (frame.keyframe, frame.codec) {
                    (false, _) => 0,
                    (true, Codec::H264) => 2,
                    (true, _) => 3,
                };
                let units: Vec<Vec<u8>> = units.skip(sets).collect();
                let original: Vec<Vec<u8>> = crate::media::nal::length_prefixed(&frame.payload, 4)
                    .map(|u| u.unwrap().to_vec())
                    .collect();
                prop_assert_eq!(units, original);
            }
        }
    }

    #[test]
    fn demuxer_survives_arbitrary_input(
        data in proptest::collection::vec(any::<u8>(), 0..4000),
        sync_every in proptest::option::of(0usize..188),
        reads in proptest::collection::vec(1usize..400, 1..8),
    ) {
        let mut data = data;
        if let Some(phase) = sync_every {
            for i in (phase..data.len()).step_by(PACKET_LEN) {
                data[i] = SYNC_BYTE;
            }
        }
        let whole = demux(&data, &[data.len().max(1)]);
        let split = demux(&data, &reads);
        prop_assert_eq!(whole, split);
    }
}
