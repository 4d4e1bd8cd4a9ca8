//! Fuzz body for the MPEG-TS demuxer, with a mux round trip of what it yields.

use bytes::{Bytes, BytesMut};
use mediakit_core::media::{AacConfig, AvcConfig, Codec, Frame, MediaKind, TrackConfig};
use mediakit_core::ts::{
    ms_to_ticks, DemuxStats, PesPacket, TsDemuxConfig, TsDemuxer, TsError, TsMuxer, TsMuxerConfig,
    WriteOutcome, PACKET_LEN,
};
use mediakit_core::OutQueue;

const MAX_PES: usize = 1 << 20;

/// Demuxes `stream` in reads of the given sizes (cycled), then flushes.
fn demux(stream: &[u8], reads: &[usize]) -> (Vec<Result<PesPacket, TsError>>, DemuxStats) {
    let mut demuxer = TsDemuxer::new(TsDemuxConfig {
        max_pes_size: MAX_PES,
        ..TsDemuxConfig::default()
    });
    let mut reports = Vec::new();
    let mut rest = stream;
    let mut sizes = reads.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (read, tail) = rest.split_at(n);
        rest = tail;
        demuxer.push(read);
        reports.extend(std::iter::from_fn(|| demuxer.poll()));
    }
    demuxer.flush();
    reports.extend(std::iter::from_fn(|| demuxer.poll()));
    (reports, *demuxer.stats())
}

/// The first byte picks read sizes, the rest is the stream. Checks that the read split
/// changes nothing, that what was read is accounted for, and that every PES payload muxes
/// (as one AAC frame or one H.264 NAL unit) into a stream that demuxes back to it.
pub fn ts_demux(data: &[u8]) {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let whole = demux(stream, &[stream.len().max(1)]);
    let reads = [
        usize::from(split % 17) + 1,
        usize::from(split / 17) * 13 + 1,
    ];
    let split_result = demux(stream, &reads);
    assert_eq!(whole, split_result, "read split changed the result");
    let (reports, stats) = whole;
    assert!(stats.packets * PACKET_LEN as u64 + stats.skipped_bytes <= stream.len() as u64);

    let config = TsMuxerConfig {
        timestamp_offset_ms: 0,
        ..TsMuxerConfig::default()
    };
    let mut muxer = TsMuxer::new(config);
    let avc = AvcConfig {
        record: Bytes::new(),
        profile: 66,
        compatibility: 0,
        level: 30,
        nal_length_size: 4,
        sps: Vec::new(),
        pps: Vec::new(),
    };
    muxer
        .set_config(&TrackConfig::Avc(avc))
        .expect("H.264 config");
    let aac = AacConfig::new(2, 48_000, 2).expect("AAC config");
    muxer
        .set_config(&TrackConfig::Aac(aac))
        .expect("AAC config");
    let mut arena = BytesMut::new();
    for pes in reports.into_iter().filter_map(Result::ok) {
        assert!(pes.payload.len() <= MAX_PES);
        let kind = match pes.codec() {
            Some(Codec::Aac) => MediaKind::Audio,
            _ => MediaKind::Video,
        };
        let pts = pes.pts.map_or(0, |t| (t / 90) as i64);
        let dts = pes.dts.map_or(pts, |t| (t / 90) as i64);
        let payload = match kind {
            MediaKind::Audio if pes.payload.len() <= 8_000 => pes.payload.clone(),
            MediaKind::Audio => continue,
            MediaKind::Video => {
                // Skip what the muxer would drop (empty, or an AUD it replaces).
                if pes.payload.first().is_none_or(|&h| h & 0x1f == 9) {
                    continue;
                }
                let mut prefixed = (pes.payload.len() as u32).to_be_bytes().to_vec();
                prefixed.extend_from_slice(&pes.payload);
                Bytes::from(prefixed)
            }
        };
        let frame = Frame {
            codec: if kind == MediaKind::Audio {
                Codec::Aac
            } else {
                Codec::H264
            },
            dts,
            pts,
            keyframe: false,
            payload,
        };
        // Tables first, so the lone PES demuxes on its own.
        let mut out = OutQueue::new();
        muxer.write_tables(&mut arena, &mut out);
        let outcome = muxer
            .write_frame(&frame, &mut arena, &mut out)
            .expect("muxes");
        assert!(matches!(outcome, WriteOutcome::Written { .. }));
        let bytes: Vec<u8> = out.segments().flat_map(|s| s.iter().copied()).collect();
        let (again, again_stats) = demux(&bytes, &[bytes.len()]);
        assert_eq!(again_stats.continuity_errors, 0);
        let [Ok(back)] = again.as_slice() else {
            panic!("re-muxed PES did not demux to one PES: {again:?}");
        };
        assert_eq!(back.pts, Some(ms_to_ticks(pts, 0)));
        let expected_dts = (dts != pts).then(|| ms_to_ticks(dts, 0));
        assert_eq!(back.dts, expected_dts);
        match kind {
            MediaKind::Audio => assert_eq!(back.payload.get(7..), Some(&pes.payload[..])),
            MediaKind::Video => {
                let expected = [&[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1][..], &pes.payload].concat();
                assert_eq!(back.payload, expected);
            }
        }
    }
}
