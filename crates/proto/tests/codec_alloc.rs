//! Decoding a small PUBLISH from a buffer that already holds the bytes
//! allocates nothing: the packet is split off the buffer as `Bytes`, and
//! the topic, properties and payload are slices of it. Only the first split
//! may allocate, when `BytesMut` moves its storage to a shared,
//! reference-counted block.
//!
//! The counter is process-wide, so this file has a single test, and each
//! count is taken three times and the fewest kept: the test harness's own
//! thread may allocate while the first count runs (it did, 4 allocations,
//! about one run in two), whereas a codec that allocated per packet would
//! show at least 999 every time.

use std::alloc::System;

use bytes::BytesMut;
use pigeon_proto::codec::{Publish, MAX_PACKET_SIZE};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, Protocol, QoS};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PACKETS: usize = 1_000;

/// A PUBLISH of exactly 64 bytes on the wire.
fn publish_of_64_bytes(protocol: Protocol, qos: QoS) -> Packet {
    let topic = TopicName::try_from("sensors/room-1/temperature").expect("valid topic");
    let mut publish = Publish::new(topic, "");
    publish.qos = qos;
    publish.packet_id = (qos != QoS::AtMostOnce).then(|| PacketId::new(7).expect("non-zero"));
    let header = Packet::Publish(publish.clone()).encoded_len(protocol);
    publish.payload = vec![b'x'; 64 - header].into();
    let packet = Packet::Publish(publish);
    assert_eq!(packet.encoded_len(protocol), 64);
    packet
}

/// Heap allocations made while decoding every packet after the first.
fn allocations_per_stream(protocol: Protocol, qos: QoS) -> usize {
    let packet = publish_of_64_bytes(protocol, qos);
    let mut buf = BytesMut::with_capacity(64 * PACKETS);
    for _ in 0..PACKETS {
        packet.encode(protocol, &mut buf).expect("encodable");
    }
    let first = decode(&mut buf, protocol, MAX_PACKET_SIZE).expect("valid");
    assert_eq!(first.as_ref(), Some(&packet));

    let region = Region::new(GLOBAL);
    let mut decoded = 0;
    while let Some(next) = decode(&mut buf, protocol, MAX_PACKET_SIZE).expect("valid") {
        // Compared by discriminant only: a full comparison is not what is
        // measured, and a mismatch would show in the count below.
        decoded += usize::from(matches!(next, Packet::Publish(_)));
    }
    let change = region.change();
    assert_eq!(decoded, PACKETS - 1);
    change.allocations + change.reallocations
}

#[test]
fn decoding_a_64_byte_publish_after_the_first_allocates_nothing() {
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let attempts = (0..3).map(|_| allocations_per_stream(protocol, qos));
            let allocations = attempts.min().unwrap_or_default();
            assert_eq!(
                allocations, 0,
                "{protocol} QoS {qos:?}: {allocations} allocations"
            );
        }
    }
}
