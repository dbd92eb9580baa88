//! Codec throughput: decode and encode of the packets that dominate a
//! broker's traffic. Run with `cargo bench -p pigeon-proto --bench codec`.
//!
//! Decoding is measured as a driver does it: packets are taken one by one
//! off the front of a read buffer that holds many of them, so the buffer's
//! one-time move to shared storage is spread over a batch. Encoding appends
//! to a buffer that is cleared and reused, so its capacity is already there.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pigeon_proto::codec::MAX_PACKET_SIZE;
use pigeon_proto::codec::{Publish, Subscribe, SubscribeFilter, SubscriptionOptions};
use pigeon_proto::string::MqttStr;
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, Protocol, QoS};

/// Bytes of packets laid out per decode batch.
const BATCH_BYTES: usize = 1 << 20;

fn publish(qos: QoS, payload_len: usize) -> Publish {
    let topic = TopicName::try_from("sensors/room-1/temperature").expect("valid topic");
    let mut publish = Publish::new(topic, vec![b'x'; payload_len]);
    publish.qos = qos;
    publish.packet_id = (qos != QoS::AtMostOnce).then(|| PacketId::new(7).expect("non-zero"));
    publish
}

/// A PUBLISH of exactly 64 bytes on the wire, payload included.
fn publish_of_64_bytes(protocol: Protocol, qos: QoS) -> Packet {
    let header = Packet::Publish(publish(qos, 0)).encoded_len(protocol);
    let packet = Packet::Publish(publish(qos, 64 - header));
    assert_eq!(packet.encoded_len(protocol), 64);
    packet
}

fn subscribe_with_10_filters() -> Packet {
    let filters = (0..10)
        .map(|i| SubscribeFilter {
            filter: MqttStr::try_from(format!("building/{i}/+/temperature").as_str())
                .expect("valid string"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        })
        .collect();
    let packet_id = PacketId::new(42).expect("non-zero");
    Packet::Subscribe(Subscribe {
        packet_id,
        properties: Default::default(),
        filters,
    })
}

/// Times decoding `iters` copies of `packet`, batch by batch; laying out
/// each batch is not timed.
fn decode_timed(packet: &Packet, protocol: Protocol, iters: u64) -> Duration {
    let len = packet.encoded_len(protocol);
    let per_batch = (BATCH_BYTES / len).max(1);
    let mut template = BytesMut::with_capacity(per_batch * len);
    for _ in 0..per_batch {
        packet.encode(protocol, &mut template).expect("encodable");
    }
    let mut elapsed = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(per_batch);
        let mut buf = BytesMut::from(&template[..n * len]);
        let start = Instant::now();
        for _ in 0..n {
            black_box(decode(&mut buf, protocol, MAX_PACKET_SIZE).expect("valid"));
        }
        elapsed += start.elapsed();
        left -= n;
    }
    elapsed
}

fn bench_packet(c: &mut Criterion, group: &str, protocol: Protocol, name: &str, packet: Packet) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(packet.encoded_len(protocol) as u64));
    g.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter_custom(|iters| decode_timed(&packet, protocol, iters))
    });
    let mut buf = BytesMut::with_capacity(packet.encoded_len(protocol));
    g.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter(|| {
            buf.clear();
            black_box(&packet)
                .encode(protocol, &mut buf)
                .expect("encodable");
            black_box(&buf);
        })
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    for (protocol, version) in [(Protocol::V3_1_1, "v311"), (Protocol::V5, "v5")] {
        for (qos, level) in [(QoS::AtMostOnce, "qos0"), (QoS::AtLeastOnce, "qos1")] {
            let packet = publish_of_64_bytes(protocol, qos);
            bench_packet(
                c,
                "publish_64B",
                protocol,
                &format!("{version}/{level}"),
                packet,
            );
        }
        let big = Packet::Publish(publish(QoS::AtLeastOnce, 64 * 1024));
        bench_packet(
            c,
            "publish_64KiB",
            protocol,
            &format!("{version}/qos1"),
            big,
        );
        let subscribe = subscribe_with_10_filters();
        bench_packet(c, "subscribe_10_filters", protocol, version, subscribe);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = codec
}
criterion_main!(benches);
