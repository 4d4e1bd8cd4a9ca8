//! RTP: packetizing a live stream for an RTSP player, and depacketizing a publisher's packets.
//!
//! The input is one two-second GOP of H.264 and AAC (see `mediakit_benches::gop`), packetized
//! at a 1400-byte MTU (FU-A for the video, one AU per packet for the audio). Throughput is in
//! RTP bytes: headers and payloads.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use mediakit_benches::gop;
use mediakit_core::media::{AacConfig, Codec, Frame, Media, TrackConfig};
use mediakit_core::rtp::{
    AacDepacketizer, AacPacketizer, DepacketizerConfig, H264Depacketizer, H264Packetizer,
    PacketizerConfig, RtpPacket, RtpPacketOut,
};
use mediakit_core::OutQueue;

/// The fixtures' AAC sampling rate, the audio RTP clock.
fn sample_rate() -> u32 {
    match mediakit_benches::aac_config() {
        Media::Config(TrackConfig::Aac(AacConfig { sample_rate, .. })) => sample_rate,
        _ => unreachable!("aac_config is an AAC configuration"),
    }
}

fn short(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
}

/// The GOP's frames, without configuration records.
fn frames() -> Vec<Frame> {
    gop()
        .into_iter()
        .filter_map(|media| match media {
            Media::Frame(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

/// A video and an audio packetizer, as one RTSP player's session holds them.
struct Packetizers {
    video: H264Packetizer,
    audio: AacPacketizer,
}

impl Packetizers {
    fn new() -> Self {
        let config = PacketizerConfig::default();
        let audio_config = PacketizerConfig {
            payload_type: 97,
            ..config.clone()
        };
        let mut video = H264Packetizer::new(config);
        if let Some(Media::Config(TrackConfig::Avc(avc))) = mediakit_benches::stream_start()
            .into_iter()
            .find(|media| matches!(media, Media::Config(TrackConfig::Avc(_))))
        {
            video.set_config(&avc);
        }
        let audio = AacPacketizer::new(&audio_config, sample_rate());
        Self { video, audio }
    }

    fn packetize(&mut self, frame: &Frame, arena: &mut BytesMut, out: &mut Vec<RtpPacketOut>) {
        match frame.codec {
            Codec::Aac => self.audio.packetize(frame, arena, out),
            _ => self.video.packetize(frame, arena, out),
        }
        .expect("packetizes");
    }
}

fn rtp_packetize(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtp_packetize");
    short(&mut group);
    let frames = frames();
    let mut packetizers = Packetizers::new();
    let mut arena = BytesMut::new();
    let mut packets = Vec::new();
    for frame in &frames {
        packetizers.packetize(frame, &mut arena, &mut packets);
    }
    let bytes: usize = packets.iter().map(RtpPacketOut::len).sum();
    group.throughput(Throughput::Bytes(bytes as u64));

    // Packets only, as a UDP sender that hands each packet's segments to sendmsg.
    group.bench_function(BenchmarkId::new("gop", "packets"), |b| {
        b.iter(|| {
            packets.clear();
            for frame in &frames {
                packetizers.packetize(frame, &mut arena, &mut packets);
            }
            black_box(packets.len())
        });
    });
    // Into an RTSP connection's output queue with the 4-byte interleave header per packet.
    let mut out = OutQueue::new();
    group.bench_function(BenchmarkId::new("gop", "interleaved_queue"), |b| {
        b.iter(|| {
            packets.clear();
            for frame in &frames {
                packetizers.packetize(frame, &mut arena, &mut packets);
            }
            for packet in &packets {
                let channel = u8::from(packet.header.payload_type == 97) * 2;
                arena.reserve(4);
                arena.extend_from_slice(&[b'$', channel]);
                arena.extend_from_slice(&(packet.len() as u16).to_be_bytes());
                out.push(arena.split().freeze());
                packet.queue(&mut out);
            }
            let written = out.queued_bytes();
            out.advance(written);
            black_box(written)
        });
    });
    group.finish();
}

fn rtp_depacketize(c: &mut Criterion) {
    let mut group = c.benchmark_group("rtp_depacketize");
    short(&mut group);
    let frames = frames();
    let mut packetizers = Packetizers::new();
    let (mut arena, mut out) = (BytesMut::new(), Vec::new());
    for frame in &frames {
        packetizers.packetize(frame, &mut arena, &mut out);
    }
    // Received datagrams: each packet contiguous, tagged with its track.
    let packets: Vec<(bool, Bytes)> = out
        .iter()
        .map(|packet| (packet.header.payload_type == 97, packet.to_bytes()))
        .collect();
    let bytes: usize = packets.iter().map(|(_, packet)| packet.len()).sum();
    group.throughput(Throughput::Bytes(bytes as u64));
    let config = DepacketizerConfig::default();
    let depacketize = |(mut video, mut audio): (H264Depacketizer, AacDepacketizer)| {
        let mut count = 0;
        for (is_audio, packet) in &packets {
            let packet = RtpPacket::parse(packet).expect("parses");
            if *is_audio {
                audio.push(packet).expect("depacketizes");
                count += std::iter::from_fn(|| audio.pull()).count();
            } else {
                video.push(packet).expect("depacketizes");
                count += std::iter::from_fn(|| video.pull()).count();
            }
        }
        count
    };
    let fresh = || {
        (
            H264Depacketizer::new(&config),
            AacDepacketizer::new(&config, sample_rate()),
        )
    };
    assert_eq!(depacketize(fresh()), frames.len());
    group.bench_function(BenchmarkId::new("gop", "datagrams"), |b| {
        b.iter_batched(fresh, depacketize, BatchSize::SmallInput);
    });
    group.finish();
}

criterion_group!(benches, rtp_packetize, rtp_depacketize);
criterion_main!(benches);
