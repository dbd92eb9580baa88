//! A decode loop for instruction counting, which is repeatable on a noisy
//! machine where times are not:
//!
//! ```sh
//! cargo build --release --example decode_profile
//! ITERS=50 valgrind --tool=callgrind target/release/examples/decode_profile v311
//! ```
//!
//! It decodes `ITERS` × 1,000 copies of a QoS 1 PUBLISH (26-byte topic,
//! 64-byte payload) from a read buffer, dropping each packet; divide the
//! "Collected" count by `ITERS * 1000`. The first argument is `v311` or `v5`.

use std::hint::black_box;

use bytes::BytesMut;
use pigeon_proto::codec::Publish;
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, Protocol, QoS};

fn main() {
    let protocol = match std::env::args().nth(1).as_deref() {
        Some("v5") => Protocol::V5,
        _ => Protocol::V3_1_1,
    };
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let topic = TopicName::try_from("sensors/room-1/temperature").expect("valid topic");
    let mut publish = Publish::new(topic, vec![b'x'; 64]);
    publish.qos = QoS::AtLeastOnce;
    publish.packet_id = PacketId::new(7);
    let mut one = BytesMut::new();
    Packet::Publish(publish)
        .encode(protocol, &mut one)
        .expect("encodes");
    let mut decoded = 0usize;
    for _ in 0..iters {
        let mut buf = BytesMut::with_capacity(one.len() * 1000);
        for _ in 0..1000 {
            buf.extend_from_slice(&one);
        }
        while let Ok(Some(packet)) = decode(&mut buf, protocol, u32::MAX) {
            black_box(&packet);
            decoded += 1;
        }
    }
    println!("decoded {decoded} packets");
}
