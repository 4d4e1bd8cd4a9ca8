//! MPEG-TS: muxing a live stream for HTTP-TS / HLS, and demuxing it again.
//!
//! The input is one two-second GOP of H.264 (about 3 Mbit/s) and AAC (see
//! `mediakit_benches::gop`). Throughput is in TS bytes: packets of tables, PES headers,
//! start codes, ADTS headers and payload.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use mediakit_benches::{gop, stream_start};
use mediakit_core::media::Media;
use mediakit_core::ts::{TsDemuxer, TsMuxer};
use mediakit_core::OutQueue;

/// A socket read, for the demux benchmark that feeds the demuxer as a runtime does.
const READ_SIZE: usize = 64 * 1024;

fn short(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
}

fn mux(muxer: &mut TsMuxer, media: &[Media], arena: &mut BytesMut, out: &mut OutQueue) {
    for item in media {
        muxer.write_media(item, arena, out).expect("muxes");
    }
}

/// The GOP as a transport stream, configurations first.
fn ts_file(gop: &[Media]) -> Vec<u8> {
    let mut muxer = TsMuxer::default();
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    mux(&mut muxer, &stream_start(), &mut arena, &mut out);
    mux(&mut muxer, gop, &mut arena, &mut out);
    out.segments().flat_map(|s| s.iter().copied()).collect()
}

fn ts_mux(c: &mut Criterion) {
    let mut group = c.benchmark_group("ts_mux");
    short(&mut group);
    let gop = gop();
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    let mut muxer = TsMuxer::default();
    mux(&mut muxer, &stream_start(), &mut arena, &mut out);
    mux(&mut muxer, &gop, &mut arena, &mut out);
    group.throughput(Throughput::Bytes(out.queued_bytes() as u64));
    println!(
        "ts_mux: one GOP is {} bytes in {} segments",
        out.queued_bytes(),
        out.segment_count()
    );
    out.clear();

    // Each iteration muxes one GOP into the queue and drains it, as a player session does.
    group.bench_function(BenchmarkId::new("gop", "h264_aac"), |b| {
        b.iter(|| {
            mux(&mut muxer, &gop, &mut arena, &mut out);
            let written = out.queued_bytes();
            out.advance(written);
            black_box(written)
        });
    });
    group.finish();
}

fn ts_demux(c: &mut Criterion) {
    let mut group = c.benchmark_group("ts_demux");
    short(&mut group);
    let gop = gop();
    let file = ts_file(&gop);
    group.throughput(Throughput::Bytes(file.len() as u64));
    group.bench_function(BenchmarkId::new("gop", "64k_reads"), |b| {
        b.iter_batched(
            TsDemuxer::default,
            |mut demuxer| {
                let mut items = 0;
                for read in file.chunks(READ_SIZE) {
                    demuxer.push(read);
                    while let Some(pes) = demuxer.poll() {
                        black_box(pes.expect("valid PES"));
                        items += 1;
                    }
                }
                demuxer.flush();
                items + std::iter::from_fn(|| demuxer.poll()).count()
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, ts_mux, ts_demux);
criterion_main!(benches);
