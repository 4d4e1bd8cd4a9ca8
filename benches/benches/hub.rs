//! Hub fan-out: one worker's `LocalSource` taking the publisher's frames and every local player
//! draining its queue after each one, the steady state of a live stream.
//!
//! Throughput is in frames pushed; divide the time per frame by the player count for the cost
//! per frame per player.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mediakit_benches::{gop, stream_start};
use mediakit_core::hub::{GopConfig, LocalSource, PushReport, ReaderKey, ReaderLimits};

const READERS: [u32; 3] = [1, 100, 1000];

fn hub_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub_fanout");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    let gop = gop();

    for readers in READERS {
        group.bench_function(BenchmarkId::new("push_then_pop_all", readers), |b| {
            let mut source = LocalSource::<()>::new(GopConfig::default(), ReaderLimits::default());
            let mut report = PushReport::new();
            for item in stream_start().iter().chain(&gop) {
                source.push(item, &mut report);
            }
            let keys: Vec<ReaderKey> = (0..readers).map(|_| source.add_reader(())).collect();
            for key in &keys {
                while source.pop(*key).is_some() {}
            }
            let mut next = gop.iter().cycle();
            b.iter(|| {
                let item = next.next().expect("the GOP repeats forever");
                source.push(item, &mut report);
                let mut delivered = 0;
                for key in &keys {
                    while let Some(media) = source.pop(*key) {
                        black_box(media);
                        delivered += 1;
                    }
                }
                assert!(report.disconnect().is_empty());
                delivered
            });
            assert_eq!(source.reader_count(), readers as usize);
        });
    }
    group.finish();
}

criterion_group!(benches, hub_fanout);
criterion_main!(benches);
