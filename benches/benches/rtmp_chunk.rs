//! RTMP chunk stream: encoding media messages (one session, and one frame fanned out to 1000
//! players) and decoding a publisher's chunk stream.
//!
//! Throughput is in wire bytes: chunk headers plus message bodies.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use mediakit_benches::{chunk_samples, gop, rtmp_message, stream_start};
use mediakit_core::media::Media;
use mediakit_core::rtmp::{ChunkDecoder, ChunkEncoder, MessageHeader};
use mediakit_core::OutQueue;

const CHUNK_SIZES: [u32; 3] = [128, 4096, 60_000];
const FANOUT_PLAYERS: usize = 1000;
/// The decode benchmarks repeat a message until the stream is about this long.
const DECODE_STREAM_BYTES: usize = 1 << 20;
/// A socket read, for the benchmark that feeds the decoder as a runtime does.
const READ_SIZE: usize = 64 * 1024;

fn short(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
}

/// The timestamp step between consecutive messages of a kind: one video frame at 30 fps, one
/// AAC frame at 44.1 kHz. A steady step is what lets the encoder use format 3 headers.
fn step(header: &MessageHeader) -> u32 {
    if header.type_id == 8 {
        23
    } else {
        33
    }
}

fn encoder(chunk_size: u32) -> ChunkEncoder {
    let mut encoder = ChunkEncoder::new();
    encoder
        .set_chunk_size(chunk_size)
        .expect("benchmark chunk sizes are valid");
    encoder
}

/// Wire bytes of one message once the encoder is in its steady state (compressed headers).
fn steady_wire_len(header: MessageHeader, body: &[Bytes], chunk_size: u32) -> u64 {
    let mut encoder = encoder(chunk_size);
    let mut out = OutQueue::new();
    let mut header = header;
    let mut last = 0;
    for _ in 0..3 {
        header.timestamp += step(&header);
        encoder.write(&header, body, &mut out).expect("encodes");
        last = out.queued_bytes();
        out.advance(last);
    }
    last as u64
}

fn chunk_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtmp_chunk_encode");
    short(&mut group);
    let mut arena = BytesMut::new();
    for (name, media) in chunk_samples() {
        let (header, body) = rtmp_message(&media, &mut arena);
        for chunk_size in CHUNK_SIZES {
            group.throughput(Throughput::Bytes(steady_wire_len(
                header, &body, chunk_size,
            )));
            group.bench_function(BenchmarkId::new(name, chunk_size), |b| {
                let mut encoder = encoder(chunk_size);
                let mut out = OutQueue::new();
                let mut header = header;
                b.iter(|| {
                    header.timestamp = header.timestamp.wrapping_add(step(&header));
                    encoder.write(&header, &body, &mut out).expect("encodes");
                    let written = out.queued_bytes();
                    out.advance(written);
                    black_box(written)
                });
            });
        }
    }
    group.finish();
}

/// One frame written for every player of a stream, each with its own encoder and output queue,
/// then every queue drained as the runtime's vectored writes would. The payload is shared:
/// per player the cost is the chunk headers and the `Bytes` slices, never a copy.
fn chunk_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtmp_chunk_fanout_1000_players");
    short(&mut group);
    let mut arena = BytesMut::new();
    for (name, media) in chunk_samples()
        .into_iter()
        .filter(|(name, _)| name.starts_with("video"))
    {
        let (header, body) = rtmp_message(&media, &mut arena);
        for chunk_size in CHUNK_SIZES {
            let per_player = steady_wire_len(header, &body, chunk_size);
            group.throughput(Throughput::Bytes(per_player * FANOUT_PLAYERS as u64));
            group.bench_function(BenchmarkId::new(name, chunk_size), |b| {
                let mut players: Vec<(ChunkEncoder, OutQueue)> = (0..FANOUT_PLAYERS)
                    .map(|_| (encoder(chunk_size), OutQueue::new()))
                    .collect();
                let mut header = header;
                b.iter(|| {
                    header.timestamp = header.timestamp.wrapping_add(step(&header));
                    for (encoder, out) in &mut players {
                        encoder.write(&header, &body, out).expect("encodes");
                    }
                    let mut written = 0;
                    for (_, out) in &mut players {
                        let queued = out.queued_bytes();
                        out.advance(queued);
                        written += queued;
                    }
                    black_box(written)
                });
            });
        }
    }
    group.finish();
}

/// A publisher's chunk stream: `messages` encoded back to back, each `rounds` times with
/// advancing timestamps.
fn encode_stream(messages: &[Media], rounds: usize, chunk_size: u32) -> (Vec<u8>, usize) {
    let mut encoder = encoder(chunk_size);
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    let mut count = 0;
    for round in 0..rounds {
        for media in messages {
            let (mut header, body) = rtmp_message(media, &mut arena);
            header.timestamp = header.timestamp.wrapping_add(round as u32 * step(&header));
            encoder.write(&header, &body, &mut out).expect("encodes");
            count += 1;
        }
    }
    let stream = out.segments().flat_map(|s| s.iter().copied()).collect();
    (stream, count)
}

fn decoder(chunk_size: u32) -> ChunkDecoder {
    let mut decoder = ChunkDecoder::new(mediakit_core::rtmp::chunk::MAX_MESSAGE_LEN);
    decoder
        .set_chunk_size(chunk_size)
        .expect("benchmark chunk sizes are valid");
    decoder
}

/// Decodes everything in `input`, returning the messages' payload bytes.
fn decode_all(decoder: &mut ChunkDecoder, input: &mut BytesMut) -> usize {
    let mut payload = 0;
    while let Some(message) = decoder.decode(input).expect("decodes") {
        payload += message.payload.len();
    }
    payload
}

fn chunk_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtmp_chunk_decode");
    short(&mut group);
    let mut cases: Vec<(&str, Vec<Media>, usize)> = chunk_samples()
        .into_iter()
        .map(|(name, media)| {
            let len = match &media {
                Media::Frame(frame) => frame.payload.len(),
                _ => unreachable!("chunk samples are frames"),
            };
            (name, vec![media], (DECODE_STREAM_BYTES / len).max(4))
        })
        .collect();
    let mut mix = stream_start();
    mix.extend(gop());
    cases.push(("gop_mix", mix, 1));

    for (name, messages, rounds) in &cases {
        for chunk_size in CHUNK_SIZES {
            let (stream, count) = encode_stream(messages, *rounds, chunk_size);
            group.throughput(Throughput::Bytes(stream.len() as u64));
            group.bench_function(BenchmarkId::new(*name, chunk_size), |b| {
                b.iter_batched(
                    || (decoder(chunk_size), BytesMut::from(&stream[..])),
                    |(mut decoder, mut input)| {
                        let payload = decode_all(&mut decoder, &mut input);
                        debug_assert!(input.is_empty());
                        payload
                    },
                    BatchSize::LargeInput,
                );
            });
            // Sanity: every message comes back.
            let mut decoder = decoder(chunk_size);
            let mut input = BytesMut::from(&stream[..]);
            let mut decoded = 0;
            while decoder.decode(&mut input).expect("decodes").is_some() {
                decoded += 1;
            }
            assert_eq!(decoded, count, "{name} at chunk size {chunk_size}");
        }
    }

    // As a runtime feeds it: 64 KiB socket reads appended to one receive buffer. Includes the
    // copy a socket read makes anyway, and the buffer keeping a partial chunk between reads.
    let (_, messages, _) = cases.last().expect("gop_mix case");
    for chunk_size in CHUNK_SIZES {
        let (stream, _) = encode_stream(messages, 1, chunk_size);
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(BenchmarkId::new("gop_mix_64k_reads", chunk_size), |b| {
            let mut input = BytesMut::with_capacity(2 * READ_SIZE);
            b.iter_batched(
                || decoder(chunk_size),
                |mut decoder| {
                    let mut payload = 0;
                    for read in stream.chunks(READ_SIZE) {
                        input.extend_from_slice(read);
                        payload += decode_all(&mut decoder, &mut input);
                    }
                    debug_assert!(input.is_empty());
                    payload
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, chunk_encode, chunk_fanout, chunk_decode);
criterion_main!(benches);
