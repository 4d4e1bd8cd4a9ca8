//! FLV: muxing a live stream for an HTTP-FLV player, and demuxing an FLV stream.
//!
//! The input is one two-second GOP of H.264 and AAC (see `mediakit_benches::gop`). Throughput
//! is in FLV bytes: tag headers, body headers, payloads and trailers.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use mediakit_benches::{gop, stream_start};
use mediakit_core::flv::{FlvDemuxer, FlvMuxer};
use mediakit_core::media::Media;
use mediakit_core::OutQueue;

/// A socket read, for the demux benchmark that feeds the demuxer as a runtime does.
const READ_SIZE: usize = 64 * 1024;

fn short(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
}

/// Writes `media` into `muxer` and flushes, as an HTTP-FLV session does after each wake-up.
fn mux(muxer: &mut FlvMuxer, media: &[Media], arena: &mut BytesMut, out: &mut OutQueue) {
    for item in media {
        muxer.write_media(item, arena, out).expect("muxes");
    }
    muxer.flush(arena, out);
}

/// A complete FLV stream: file header, configurations, one GOP.
fn flv_file(gop: &[Media]) -> Vec<u8> {
    let mut muxer = FlvMuxer::new(true, true);
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    muxer.write_header(&mut arena, &mut out);
    mux(&mut muxer, &stream_start(), &mut arena, &mut out);
    mux(&mut muxer, gop, &mut arena, &mut out);
    out.segments().flat_map(|s| s.iter().copied()).collect()
}

fn flv_mux(c: &mut Criterion) {
    let mut group = c.benchmark_group("flv_mux");
    short(&mut group);
    let gop = gop();

    // A player already past its header and configurations; each iteration muxes one GOP,
    // flushing after every frame (a player woken per frame, the worst case for trailers) or
    // once per GOP (a player that fell behind and drains a backlog).
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    let mut muxer = FlvMuxer::new(true, true);
    muxer.write_header(&mut arena, &mut out);
    mux(&mut muxer, &stream_start(), &mut arena, &mut out);
    out.clear();
    mux(&mut muxer, &gop, &mut arena, &mut out);
    group.throughput(Throughput::Bytes(out.queued_bytes() as u64));
    out.clear();

    group.bench_function(BenchmarkId::new("gop", "flush_per_frame"), |b| {
        b.iter(|| {
            for item in &gop {
                mux(&mut muxer, std::slice::from_ref(item), &mut arena, &mut out);
            }
            let written = out.queued_bytes();
            out.advance(written);
            black_box(written)
        });
    });
    group.bench_function(BenchmarkId::new("gop", "flush_per_gop"), |b| {
        b.iter(|| {
            mux(&mut muxer, &gop, &mut arena, &mut out);
            let written = out.queued_bytes();
            out.advance(written);
            black_box(written)
        });
    });
    group.finish();
}

/// Demuxes everything in `input`, returning how many media items came out.
fn demux_all(demuxer: &mut FlvDemuxer, input: &mut BytesMut) -> usize {
    demuxer.handle_input(input).expect("demuxes");
    let mut items = 0;
    while let Some(item) = demuxer.poll_media() {
        black_box(item.expect("valid tag"));
        items += 1;
    }
    items
}

fn flv_demux(c: &mut Criterion) {
    let mut group = c.benchmark_group("flv_demux");
    short(&mut group);
    let gop = gop();
    let file = flv_file(&gop);
    let expected = stream_start().len() + gop.len();
    {
        let mut demuxer = FlvDemuxer::new();
        let mut input = BytesMut::from(&file[..]);
        assert_eq!(demux_all(&mut demuxer, &mut input), expected);
    }
    group.throughput(Throughput::Bytes(file.len() as u64));

    group.bench_function(BenchmarkId::new("gop", "whole_buffer"), |b| {
        b.iter_batched(
            || (FlvDemuxer::new(), BytesMut::from(&file[..])),
            |(mut demuxer, mut input)| demux_all(&mut demuxer, &mut input),
            BatchSize::LargeInput,
        );
    });
    // 64 KiB socket reads appended to one receive buffer: includes the copy a socket read
    // makes anyway and the partial tag kept between reads.
    group.bench_function(BenchmarkId::new("gop", "64k_reads"), |b| {
        let mut input = BytesMut::with_capacity(2 * READ_SIZE);
        b.iter_batched(
            FlvDemuxer::new,
            |mut demuxer| {
                let mut items = 0;
                for read in file.chunks(READ_SIZE) {
                    input.extend_from_slice(read);
                    items += demux_all(&mut demuxer, &mut input);
                }
                items
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, flv_mux, flv_demux);
criterion_main!(benches);
