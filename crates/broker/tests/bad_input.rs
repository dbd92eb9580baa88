//! The bad-input catalogue (`reliability.md` §4) against the broker: the
//! offending connection ends with the reason code the spec requires, and
//! everyone else keeps working.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pigeon_proto::codec::{Subscribe, SubscribeFilter, SubscriptionOptions};
use pigeon_proto::{Packet, PacketId, Protocol, QoS, ReasonCode};

const V311: Protocol = Protocol::V3_1_1;
const V5: Protocol = Protocol::V5;

/// A healthy client that proves the broker still serves others.
async fn still_serving(broker: &pigeon_broker::Broker) {
    let mut c = Raw::connect(broker, V311, "bystander").await;
    c.send(Packet::PingReq).await;
    assert_eq!(c.recv().await, Some(Packet::PingResp));
}

fn disconnect_code(seen: &[Packet]) -> Option<ReasonCode> {
    match seen {
        [.., Packet::Disconnect(d)] => Some(d.reason_code),
        _ => None,
    }
}

#[tokio::test]
async fn non_connect_first_packets_with_huge_lengths_are_closed_at_once() {
    // Catalogue F4 (mosquitto 01-bad-initial-packets): every other type first.
    let broker = broker().await;
    for kind in 2u8..=15 {
        let mut raw = Raw::open(&broker, V311).await;
        let flags = if matches!(kind, 6 | 8 | 10) { 2 } else { 0 };
        raw.send_bytes(&[kind << 4 | flags, 0xFF, 0xFF, 0xFF, 0x7F])
            .await;
        assert!(raw.closed().await.is_empty(), "type {kind}");
    }
    still_serving(&broker).await;
}

#[tokio::test]
async fn http_request_or_tls_hello_on_the_mqtt_port_is_closed() {
    // Catalogue F11.
    let broker = broker().await;
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x00, 0xa5],
    ] {
        let mut raw = Raw::open(&broker, V311).await;
        raw.send_bytes(junk).await;
        assert!(raw.closed().await.is_empty());
    }
    still_serving(&broker).await;
}

#[tokio::test]
async fn empty_topic_without_alias_is_a_protocol_error_v5() {
    // Catalogue P3: DISCONNECT 0x82.
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    c.send_bytes(&[0x30, 3, 0, 0, 0]).await;
    assert_eq!(
        disconnect_code(&c.closed().await),
        Some(ReasonCode::PROTOCOL_ERROR)
    );
    still_serving(&broker).await;
}

#[tokio::test]
async fn publish_to_a_wildcard_topic_is_refused_and_routed_nowhere_v5() {
    // MQTT-3.3.2-2; catalogue P4.
    let broker = broker().await;
    let mut watcher = Raw::connect(&broker, V5, "w").await;
    watcher.send(subscribe(1, &[("#", QoS::AtMostOnce)])).await;
    watcher.recv().await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    c.send_bytes(&[0x30, 6, 0, 3, b'a', b'/', b'#', 0]).await;
    assert_eq!(
        disconnect_code(&c.closed().await),
        Some(ReasonCode::TOPIC_NAME_INVALID)
    );
    assert_eq!(watcher.recv_within(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn clients_cannot_publish_to_dollar_sys_v5() {
    // Catalogue P5: PUBACK 0x87, nothing routed, connection kept.
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    c.send(Packet::Publish(publish(
        "$SYS/broker/uptime",
        b"0",
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    let Some(Packet::PubAck(ack)) = c.recv().await else {
        panic!("PUBACK")
    };
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    c.send(Packet::PingReq).await;
    assert_eq!(c.recv().await, Some(Packet::PingResp));
}

#[tokio::test]
async fn qos1_publish_with_packet_id_zero_is_malformed() {
    // MQTT-2.2.1-3 (5.0); catalogue P7.
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    c.send_bytes(&[0x32, 6, 0, 1, b't', 0, 0, 0]).await;
    assert_eq!(
        disconnect_code(&c.closed().await),
        Some(ReasonCode::MALFORMED_PACKET)
    );
}

#[tokio::test]
async fn subscribe_with_no_filters_closes_the_connection() {
    // MQTT-3.8.3-3 (3.1.1); catalogue S1.
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V311, "c").await;
    c.send_bytes(&[0x82, 2, 0, 1]).await;
    assert!(c.closed().await.is_empty());
    still_serving(&broker).await;
}

#[tokio::test]
async fn bad_share_names_get_topic_filter_invalid_v5() {
    // MQTT-4.8.2-1, MQTT-4.8.2-2 (5.0); catalogue S6.
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    let filters = [
        ("$share//t", QoS::AtMostOnce),
        ("$share/g", QoS::AtMostOnce),
        ("$share/g+/t", QoS::AtMostOnce),
    ];
    c.send(subscribe(1, &filters)).await;
    let Some(Packet::SubAck(s)) = c.recv().await else {
        panic!("SUBACK")
    };
    assert_eq!(s.reason_codes, [ReasonCode::TOPIC_FILTER_INVALID; 3]);
}

#[tokio::test]
async fn filter_of_65000_levels_is_refused_without_harm() {
    // Catalogue S8 (CVE-2019-11779): capped by max_topic_levels.
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V311, "c").await;
    let deep = "/".repeat(65_000);
    c.send(subscribe(
        1,
        &[(deep.as_str(), QoS::AtMostOnce), ("ok", QoS::AtMostOnce)],
    ))
    .await;
    let Some(Packet::SubAck(s)) = c.recv().await else {
        panic!("SUBACK")
    };
    assert!(s.reason_codes[0].is_error());
    assert_eq!(s.reason_codes[1], ReasonCode::GRANTED_QOS_0);
}

#[tokio::test]
async fn a_thousand_filters_get_a_thousand_codes_in_order() {
    // MQTT-3.9.3-1 (3.1.1); catalogue S9.
    let broker = broker_with(|c| c.limits.max_subscriptions = 2000).await;
    let mut c = Raw::connect(&broker, V311, "c").await;
    let names: Vec<String> = (0..1000)
        .map(|i| {
            if i % 100 == 99 {
                format!("bad/#/{i}")
            } else {
                format!("t/{i}")
            }
        })
        .collect();
    let filters = names
        .iter()
        .map(|f| SubscribeFilter {
            filter: f.as_str().try_into().unwrap(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        })
        .collect();
    let packet_id = PacketId::new(7).unwrap();
    c.send(Packet::Subscribe(Subscribe {
        packet_id,
        properties: Default::default(),
        filters,
    }))
    .await;
    let Some(Packet::SubAck(s)) = c.recv().await else {
        panic!("SUBACK")
    };
    assert_eq!(s.reason_codes.len(), 1000);
    for (i, code) in s.reason_codes.iter().enumerate() {
        assert_eq!(code.is_error(), i % 100 == 99, "filter {i}");
    }
}

#[tokio::test]
async fn subscriptions_beyond_the_limit_get_quota_exceeded_v5() {
    // Issue 3 limits; §2.4 0x97.
    let broker = broker_with(|c| c.limits.max_subscriptions = 2).await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    c.send(subscribe(
        1,
        &[
            ("a", QoS::AtMostOnce),
            ("b", QoS::AtMostOnce),
            ("c", QoS::AtMostOnce),
        ],
    ))
    .await;
    let Some(Packet::SubAck(s)) = c.recv().await else {
        panic!("SUBACK")
    };
    assert_eq!(s.reason_codes[2], ReasonCode::QUOTA_EXCEEDED);
}

#[tokio::test]
async fn keep_alive_above_the_maximum_is_lowered_v5_and_refused_v311() {
    // Catalogue C13 (CVE-2020-13849 mitigation).
    let broker = broker_with(|c| c.limits.max_keep_alive = 300).await;
    let mut connect = connect_packet(V5, "a", true);
    connect.keep_alive = 65_535;
    let (_c, reply) = Raw::connect_with(&broker, connect).await;
    let Packet::ConnAck(ack) = reply else {
        panic!("CONNACK")
    };
    assert_eq!(ack.properties.server_keep_alive, Some(300));
    let mut connect = connect_packet(V311, "b", true);
    connect.keep_alive = 65_535;
    let (_c, reply) = Raw::connect_with(&broker, connect).await;
    let Packet::ConnAck(ack) = reply else {
        panic!("CONNACK")
    };
    assert!(ack.reason_code.is_error());
}

#[tokio::test]
async fn client_id_longer_than_the_limit_is_rejected() {
    // Catalogue C11: CONNACK 0x85 (v5) / 0x02 (v3).
    let broker = broker_with(|c| c.limits.max_client_id_len = 64).await;
    let long = "x".repeat(65);
    let (_c, reply) = Raw::connect_with(&broker, connect_packet(V5, &long, true)).await;
    let Packet::ConnAck(ack) = reply else {
        panic!("CONNACK")
    };
    assert_eq!(ack.reason_code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
}

#[tokio::test]
async fn stuck_subscriber_affects_only_itself() {
    // Issue 3: a subscriber that never reads fills only its own socket and
    // queue; the others and the publisher carry on.
    let broker = broker().await;
    let mut slow = Raw::connect(&broker, V311, "slow").await;
    slow.send(subscribe(1, &[("flood", QoS::AtMostOnce)])).await;
    slow.recv().await;
    let mut fast = Raw::connect(&broker, V311, "fast").await;
    fast.send(subscribe(1, &[("flood", QoS::AtMostOnce)])).await;
    fast.recv().await;
    let mut p = Raw::connect(&broker, V311, "p").await;
    // Large payloads so the slow subscriber's socket buffers fill quickly.
    for _ in 0..400 {
        p.send(Packet::Publish(publish(
            "flood",
            &[7u8; 16 * 1024],
            QoS::AtMostOnce,
            0,
        )))
        .await;
    }
    let mut got = 0;
    while let Some(Packet::Publish(_)) = fast.recv_within(Duration::from_secs(2)).await {
        got += 1;
        if got == 400 {
            break;
        }
    }
    assert_eq!(got, 400, "a reading subscriber gets everything");
    p.send(Packet::PingReq).await;
    assert_eq!(
        p.recv().await,
        Some(Packet::PingResp),
        "the publisher is not blocked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_keeps_receiving_while_publishers_flood() {
    // Issue 3: under an unthrottled flood the subscriber keeps receiving.
    // (A connection task that never yielded once starved it completely.)
    // The broker runs on its own two threads, as in production, so the
    // flooding clients cannot slow it by sharing its runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = runtime.spawn(broker()).await.unwrap();
    let mut sub = Raw::connect(&broker, V311, "sub").await;
    sub.send(subscribe(1, &[("flood/+", QoS::AtMostOnce)]))
        .await;
    sub.recv().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut floods = Vec::new();
    for n in 0..4 {
        let mut p = Raw::connect(&broker, V311, &format!("p{n}")).await;
        let stop = stop.clone();
        floods.push(tokio::spawn(async move {
            let mut batch = bytes::BytesMut::new();
            for _ in 0..64 {
                Packet::Publish(publish(
                    &format!("flood/{n}"),
                    &[1u8; 64],
                    QoS::AtMostOnce,
                    0,
                ))
                .encode(V311, &mut batch)
                .unwrap();
            }
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                p.send_bytes(&batch).await;
            }
        }));
    }
    // Count deliveries in 250 ms windows while the flood goes on.
    let mut windows = Vec::new();
    for _ in 0..6 {
        let end = tokio::time::Instant::now() + Duration::from_millis(250);
        let mut got = 0;
        loop {
            match tokio::time::timeout_at(end, sub.recv()).await {
                Ok(Some(Packet::Publish(_))) => got += 1,
                Ok(Some(_)) => {}
                Ok(None) => panic!("subscriber was disconnected"),
                Err(_) => break,
            }
        }
        windows.push(got);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in floods {
        f.abort();
    }
    runtime.shutdown_background();
    assert!(
        windows[1..].iter().all(|&n| n >= 100),
        "deliveries per 250 ms: {windows:?}"
    );
}

#[tokio::test]
async fn message_refused_by_every_full_queue_gets_quota_exceeded_v5() {
    // §2.4 0x97 Quota exceeded: a QoS 1 message no subscriber could take is
    // not acknowledged as a success.
    let broker = broker_with(|c| {
        c.limits.max_inflight = 1;
        c.limits.max_queued_messages = 1;
    })
    .await;
    let mut sub = Raw::connect(&broker, V5, "sub").await;
    sub.send(subscribe(1, &[("q", QoS::AtLeastOnce)])).await;
    sub.recv().await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    let mut codes = Vec::new();
    for n in 1..=3 {
        p.send(Packet::Publish(publish("q", b"m", QoS::AtLeastOnce, n)))
            .await;
        let Some(Packet::PubAck(ack)) = p.recv().await else {
            panic!("PUBACK")
        };
        codes.push(ack.reason_code);
        if n == 1 {
            // The first is now in flight to the subscriber (which never
            // acknowledges it), so the queue is empty again.
            expect_publish(sub.recv().await);
        }
    }
    // One in flight to the subscriber (never acknowledged), one queued, the
    // third refused.
    assert_eq!(
        codes,
        [
            ReasonCode::SUCCESS,
            ReasonCode::SUCCESS,
            ReasonCode::QUOTA_EXCEEDED
        ]
    );
}
