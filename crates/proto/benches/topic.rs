//! How long topic matching and parsing take. Matching runs once per
//! subscription a router cannot rule out, for every message, so it is the
//! number that matters; parsing runs once per PUBLISH or SUBSCRIBE entry.
//!
//! `cargo bench --bench topic` (add `-- --quick` for a rough figure).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pigeon_proto::string::MqttStr;
use pigeon_proto::topic::{TopicFilter, TopicName};

const TOPIC: &str = "building/floor3/room12/sensor7/temperature";

fn filter(s: &str) -> TopicFilter {
    TopicFilter::try_from(s).expect("valid filter")
}

fn matching(c: &mut Criterion) {
    let topic = TopicName::try_from(TOPIC).expect("valid topic name");
    let cases = [
        ("exact_5_levels", TOPIC),
        ("plus_in_middle", "building/floor3/+/sensor7/temperature"),
        ("trailing_hash", "building/floor3/#"),
        (
            "mismatch_first_byte",
            "garden/floor3/room12/sensor7/temperature",
        ),
    ];
    let mut group = c.benchmark_group("matches");
    for (name, f) in cases {
        let f = filter(f);
        group.bench_function(name, |b| {
            b.iter(|| black_box(&f).matches(black_box(&topic)))
        });
    }
    group.finish();
}

fn parsing(c: &mut Criterion) {
    // Parsing from an `MqttStr` measures the topic checks alone; a clone of
    // a static `MqttStr` is a pointer copy, not an allocation.
    let name = MqttStr::from_static(TOPIC).expect("valid string");
    let wild = MqttStr::from_static("building/+/room12/+/#").expect("valid string");
    let mut group = c.benchmark_group("parse");
    group.bench_function("topic_name_5_levels", |b| {
        b.iter(|| TopicName::new(black_box(name.clone())))
    });
    group.bench_function("topic_filter_5_levels", |b| {
        b.iter(|| TopicFilter::new(black_box(wild.clone())))
    });
    group.finish();
}

fn config() -> Criterion {
    // Short runs: these are nanosecond loops, so a second of samples is plenty.
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = matching, parsing
}
criterion_main!(benches);
