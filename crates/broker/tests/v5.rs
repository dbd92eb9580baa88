//! The MQTT 5.0 feature set on the wire (issue 5): what CONNACK announces
//! and how it is enforced, properties passed through, topic aliases, message
//! expiry, will delay, request/response. Each test cites the normative ids
//! it checks.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pigeon_proto::codec::{ConnAck, Subscribe, SubscribeFilter, Will};
use pigeon_proto::codec::{RetainHandling, SubscriptionOptions};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{Packet, PacketId, Protocol, QoS, ReasonCode};

const V5: Protocol = Protocol::V5;

fn connack(packet: Packet) -> ConnAck {
    match packet {
        Packet::ConnAck(c) => c,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

fn last_disconnect(seen: &[Packet]) -> Option<ReasonCode> {
    match seen {
        [.., Packet::Disconnect(d)] => Some(d.reason_code),
        _ => None,
    }
}

fn will(topic: &str, qos: QoS, retain: bool) -> Will {
    Will {
        topic: TopicName::try_from(topic).unwrap(),
        payload: b"gone"[..].into(),
        qos,
        retain,
        properties: Default::default(),
    }
}

fn subscribe_with(
    id: u16,
    filter: &str,
    options: SubscriptionOptions,
    sub_id: Option<u32>,
) -> Packet {
    let mut s = Subscribe {
        packet_id: PacketId::new(id).unwrap(),
        properties: Default::default(),
        filters: vec![SubscribeFilter {
            filter: filter.try_into().unwrap(),
            options,
        }],
    };
    if let Some(sub_id) = sub_id {
        s.properties.subscription_identifiers = vec![sub_id];
    }
    Packet::Subscribe(s)
}

fn qos(q: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos: q,
        ..Default::default()
    }
}

/// Subscribes `c` to `filter` and returns the SUBACK codes.
async fn sub(c: &mut Raw, filter: &str, q: QoS) -> Vec<ReasonCode> {
    c.send(subscribe(1, &[(filter, q)])).await;
    match c.recv().await {
        Some(Packet::SubAck(s)) => s.reason_codes,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn connack_announces_the_defaults_v5() {
    // §3.2.2.3: Receive Maximum bounded (32), everything else offered, so
    // the "not available" properties are absent (absent means available).
    let broker = broker().await;
    let (_c, reply) = Raw::connect_with(&broker, connect_packet(V5, "a", true)).await;
    let p = connack(reply).properties;
    assert_eq!(p.receive_maximum, Some(32));
    assert_eq!(p.maximum_packet_size, Some(1024 * 1024));
    assert_eq!(p.topic_alias_maximum, Some(64));
    assert_eq!(p.maximum_qos, None);
    assert_eq!(p.retain_available, None);
    assert_eq!(p.wildcard_subscription_available, None);
    assert_eq!(p.subscription_identifier_available, None);
    assert_eq!(p.shared_subscription_available, None);
    assert_eq!(p.response_information, None, "not asked for");
}

#[tokio::test]
async fn features_turned_off_are_announced_and_enforced_v5() {
    let broker = broker_with(|c| {
        c.features.maximum_qos = 1;
        c.features.retain = false;
        c.features.wildcard_subscriptions = false;
        c.features.subscription_identifiers = false;
        c.features.shared_subscriptions = false;
    })
    .await;
    let (mut c, reply) = Raw::connect_with(&broker, connect_packet(V5, "a", true)).await;
    let p = connack(reply).properties;
    // MQTT-3.2.2-9
    assert_eq!(p.maximum_qos, Some(QoS::AtLeastOnce));
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.wildcard_subscription_available, Some(false));
    assert_eq!(p.subscription_identifier_available, Some(false));
    assert_eq!(p.shared_subscription_available, Some(false));

    // MQTT-3.2.2-10, MQTT-3.8.4-7: QoS 2 requested, QoS 1 granted; 0xA2 for
    // a wildcard, 0x9E for a shared subscription.
    assert_eq!(
        sub(&mut c, "t", QoS::ExactlyOnce).await,
        [ReasonCode::GRANTED_QOS_1]
    );
    assert_eq!(
        sub(&mut c, "t/+", QoS::AtMostOnce).await,
        [ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED]
    );
    assert_eq!(
        sub(&mut c, "$share/g/t", QoS::AtMostOnce).await,
        [ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED]
    );

    // A Subscription Identifier the server does not offer: DISCONNECT 0xA1.
    c.send(subscribe_with(2, "u", qos(QoS::AtMostOnce), Some(7)))
        .await;
    assert_eq!(
        last_disconnect(&c.closed().await),
        Some(ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)
    );

    // A QoS 2 PUBLISH above Maximum QoS: DISCONNECT 0x9B.
    let mut c = Raw::connect(&broker, V5, "b").await;
    c.send(Packet::Publish(publish("t", b"x", QoS::ExactlyOnce, 1)))
        .await;
    assert_eq!(
        last_disconnect(&c.closed().await),
        Some(ReasonCode::QOS_NOT_SUPPORTED)
    );

    // RETAIN while Retain Available is 0: DISCONNECT 0x9A.
    let mut c = Raw::connect(&broker, V5, "c").await;
    let mut retained = publish("t", b"x", QoS::AtMostOnce, 0);
    retained.retain = true;
    c.send(Packet::Publish(retained)).await;
    assert_eq!(
        last_disconnect(&c.closed().await),
        Some(ReasonCode::RETAIN_NOT_SUPPORTED)
    );
}

#[tokio::test]
async fn a_will_the_broker_cannot_honour_is_refused_at_connect_v5() {
    // MQTT-3.2.2-12: Will QoS above Maximum QoS gets CONNACK 0x9B;
    // MQTT-3.2.2-13: Will Retain without retain support gets 0x9A.
    let broker = broker_with(|c| {
        c.features.maximum_qos = 1;
        c.features.retain = false;
    })
    .await;
    let mut connect = connect_packet(V5, "w", true);
    connect.will = Some(will("w/gone", QoS::ExactlyOnce, false));
    let (_c, reply) = Raw::connect_with(&broker, connect).await;
    assert_eq!(connack(reply).reason_code, ReasonCode::QOS_NOT_SUPPORTED);
    let mut connect = connect_packet(V5, "w", true);
    connect.will = Some(will("w/gone", QoS::AtLeastOnce, true));
    let (_c, reply) = Raw::connect_with(&broker, connect).await;
    assert_eq!(connack(reply).reason_code, ReasonCode::RETAIN_NOT_SUPPORTED);
}

#[tokio::test]
async fn more_unacknowledged_publishes_than_receive_maximum_is_disconnected_0x93_v5() {
    // §3.3.4 (MQTT-3.3.4-7 is the client's duty; the server answers a
    // breach with DISCONNECT 0x93). QoS 2 messages never released pin state.
    let broker = broker_with(|c| c.limits.receive_maximum = 2).await;
    let (mut c, reply) = Raw::connect_with(&broker, connect_packet(V5, "p", true)).await;
    assert_eq!(connack(reply).properties.receive_maximum, Some(2));
    for n in 1..=2 {
        c.send(Packet::Publish(publish("t", b"x", QoS::ExactlyOnce, n)))
            .await;
        assert!(matches!(c.recv().await, Some(Packet::PubRec(_))));
    }
    c.send(Packet::Publish(publish("t", b"x", QoS::ExactlyOnce, 3)))
        .await;
    assert_eq!(
        last_disconnect(&c.closed().await),
        Some(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
    );
}

#[tokio::test]
async fn response_information_only_when_requested_v5() {
    // MQTT-3.1.2-28: none unless asked; asked, the configured prefix and
    // the client id.
    let broker = broker().await;
    let mut connect = connect_packet(V5, "asker", true);
    connect.properties.request_response_information = Some(true);
    let (_c, reply) = Raw::connect_with(&broker, connect).await;
    let info = connack(reply).properties.response_information.clone();
    assert_eq!(info.as_deref(), Some("response/asker"));
    let mut connect = connect_packet(V5, "quiet", true);
    connect.properties.request_response_information = Some(false);
    let (_c, reply) = Raw::connect_with(&broker, connect).await;
    assert_eq!(connack(reply).properties.response_information, None);
}

#[tokio::test]
async fn message_properties_reach_subscribers_unaltered_v5() {
    // MQTT-3.3.2-4 (Payload Format Indicator), MQTT-3.3.2-17 (User
    // Properties, in order), MQTT-3.3.2-15, MQTT-3.3.2-16 (Response Topic,
    // Correlation Data), MQTT-3.3.2-20 (Content Type).
    let broker = broker().await;
    let mut s = Raw::connect(&broker, V5, "s").await;
    sub(&mut s, "req/#", QoS::AtLeastOnce).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    let mut m = publish("req/1", "héllo".as_bytes(), QoS::AtLeastOnce, 1);
    let props = &mut m.properties;
    props.payload_format_indicator = Some(true);
    props.content_type = Some("text/plain; charset=utf-8".try_into().unwrap());
    props.response_topic = Some(TopicName::try_from("resp/1").unwrap());
    props.correlation_data = Some(b"\x00\x01corr"[..].into());
    props.user_properties = vec![
        ("b".try_into().unwrap(), "2".try_into().unwrap()),
        ("a".try_into().unwrap(), "1".try_into().unwrap()),
        ("b".try_into().unwrap(), "3".try_into().unwrap()),
    ];
    let sent = m.properties.clone();
    p.send(Packet::Publish(m)).await;
    let got = expect_publish(s.recv().await);
    assert_eq!(got.payload, "héllo".as_bytes());
    assert_eq!(
        got.properties.payload_format_indicator,
        sent.payload_format_indicator
    );
    assert_eq!(got.properties.content_type, sent.content_type);
    assert_eq!(got.properties.response_topic, sent.response_topic);
    assert_eq!(got.properties.correlation_data, sent.correlation_data);
    assert_eq!(got.properties.user_properties, sent.user_properties);
}

#[tokio::test]
async fn a_payload_marked_utf8_that_is_not_gets_0x99_v5() {
    // §3.3.2.3.2: PUBACK 0x99 Payload format invalid; it goes to nobody.
    let broker = broker().await;
    let mut s = Raw::connect(&broker, V5, "s").await;
    sub(&mut s, "t", QoS::AtLeastOnce).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    let mut bad = publish("t", &[0xff, 0xfe], QoS::AtLeastOnce, 1);
    bad.properties.payload_format_indicator = Some(true);
    p.send(Packet::Publish(bad)).await;
    match p.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::PAYLOAD_FORMAT_INVALID),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    assert!(s.recv_within(Duration::from_millis(300)).await.is_none());
    // Binary payloads (indicator 0 or absent) are not checked.
    let mut binary = publish("t", &[0xff, 0xfe], QoS::AtLeastOnce, 2);
    binary.properties.payload_format_indicator = Some(false);
    p.send(Packet::Publish(binary)).await;
    assert_eq!(expect_publish(s.recv().await).payload, [0xff, 0xfe][..]);
}

/// A v5 subscriber that accepts `aliases` topic aliases.
async fn alias_subscriber(broker: &pigeon_broker::Broker, aliases: u16) -> Raw {
    let mut connect = connect_packet(V5, "s", true);
    connect.properties.topic_alias_maximum = Some(aliases);
    let (mut s, _) = Raw::connect_with(broker, connect).await;
    sub(&mut s, "long/topic/name", QoS::AtMostOnce).await;
    s
}

#[tokio::test]
async fn topics_are_aliased_towards_clients_that_accept_aliases_v5() {
    // §3.3.2.3.4, MQTT-3.3.2-9 / -10: never above the client's Topic Alias
    // Maximum; the first message sets the alias, later ones name it alone.
    let broker = broker().await;
    let mut s = alias_subscriber(&broker, 4).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    for n in 0..3u8 {
        p.send(Packet::Publish(publish(
            "long/topic/name",
            &[n],
            QoS::AtMostOnce,
            0,
        )))
        .await;
    }
    let first = expect_publish(s.recv().await);
    assert_eq!(first.topic.as_str(), "long/topic/name");
    let alias = first.properties.topic_alias.expect("alias set");
    assert!((1..=4).contains(&alias));
    for n in 1..3u8 {
        let next = expect_publish(s.recv().await);
        assert_eq!(next.topic.as_str(), "", "named by alias alone");
        assert_eq!(next.properties.topic_alias, Some(alias));
        assert_eq!(next.payload, [n][..]);
    }

    // Turned off in config: full topics only.
    let broker = broker_with(|c| c.features.outbound_topic_aliases = false).await;
    let mut s = alias_subscriber(&broker, 4).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    for n in 0..2u8 {
        p.send(Packet::Publish(publish(
            "long/topic/name",
            &[n],
            QoS::AtMostOnce,
            0,
        )))
        .await;
        let got = expect_publish(s.recv().await);
        assert_eq!(got.topic.as_str(), "long/topic/name");
        assert_eq!(got.properties.topic_alias, None);
    }
}

#[tokio::test]
async fn retain_handling_and_retain_as_published_v5() {
    // MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11 (Retain Handling 0, 1, 2),
    // MQTT-3.3.1-12, MQTT-3.3.1-13 (Retain As Published).
    let broker = broker().await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    let mut m = publish("r", b"kept", QoS::AtLeastOnce, 1);
    m.retain = true;
    p.send(Packet::Publish(m)).await;
    p.recv().await;
    let mut s = Raw::connect(&broker, V5, "s").await;
    let at_new = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        retain_handling: RetainHandling::SendAtNewSubscribe,
        ..Default::default()
    };
    for (n, expect_retained) in [(1u16, true), (2, false)] {
        s.send(subscribe_with(n, "r", at_new, None)).await;
        assert!(matches!(s.recv().await, Some(Packet::SubAck(_))));
        let got = s.recv_within(Duration::from_millis(300)).await;
        match expect_retained {
            true => assert!(expect_publish(got).retain),
            false => assert!(got.is_none(), "1: not again for an existing subscription"),
        }
    }
    let never = SubscriptionOptions {
        retain_handling: RetainHandling::DoNotSend,
        ..at_new
    };
    let mut s2 = Raw::connect(&broker, V5, "s2").await;
    s2.send(subscribe_with(1, "r", never, None)).await;
    assert!(matches!(s2.recv().await, Some(Packet::SubAck(_))));
    assert!(
        s2.recv_within(Duration::from_millis(300)).await.is_none(),
        "2: never"
    );

    // Live messages: RETAIN cleared unless Retain As Published.
    let rap = SubscriptionOptions {
        retain_as_published: true,
        ..never
    };
    let mut s3 = Raw::connect(&broker, V5, "s3").await;
    s3.send(subscribe_with(1, "r", rap, None)).await;
    s3.recv().await;
    let mut m = publish("r", b"again", QoS::AtLeastOnce, 2);
    m.retain = true;
    p.send(Packet::Publish(m)).await;
    assert!(expect_publish(s3.recv().await).retain, "as published");
    assert!(!expect_publish(s2.recv().await).retain, "cleared");
}

#[tokio::test]
async fn no_local_keeps_a_clients_own_messages_from_it_v5() {
    // MQTT-3.8.3-3
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    let options = SubscriptionOptions {
        no_local: true,
        ..qos(QoS::AtMostOnce)
    };
    c.send(subscribe_with(1, "chat", options, None)).await;
    c.recv().await;
    let mut other = Raw::connect(&broker, V5, "o").await;
    c.send(Packet::Publish(publish(
        "chat",
        b"mine",
        QoS::AtMostOnce,
        0,
    )))
    .await;
    other
        .send(Packet::Publish(publish(
            "chat",
            b"theirs",
            QoS::AtMostOnce,
            0,
        )))
        .await;
    assert_eq!(expect_publish(c.recv().await).payload, b"theirs"[..]);
}

/// A v5 QoS 1 message with a Message Expiry Interval.
fn expiring(topic: &str, payload: &[u8], id: u16, secs: u32) -> Packet {
    let mut m = publish(topic, payload, QoS::AtLeastOnce, id);
    m.properties.message_expiry_interval = Some(secs);
    Packet::Publish(m)
}

/// A persistent v5 session for `client`, subscribed to `filter` at QoS 1,
/// then disconnected.
async fn away_subscriber(broker: &pigeon_broker::Broker, client: &str, filter: &str) {
    let mut connect = connect_packet(V5, client, true);
    connect.properties.session_expiry_interval = Some(600);
    let (mut s, _) = Raw::connect_with(broker, connect).await;
    sub(&mut s, filter, QoS::AtLeastOnce).await;
    s.send(Packet::Disconnect(Default::default())).await;
    s.closed().await;
}

async fn come_back(broker: &pigeon_broker::Broker, client: &str) -> Raw {
    let mut connect = connect_packet(V5, client, false);
    connect.properties.session_expiry_interval = Some(600);
    let (s, reply) = Raw::connect_with(broker, connect).await;
    assert!(connack(reply).session_present);
    s
}

#[tokio::test]
async fn queued_messages_expire_and_the_rest_carry_what_is_left_of_their_interval_v5() {
    // MQTT-3.3.2-5: an expired message is not delivered to a subscriber it
    // has not started to reach; MQTT-3.3.2-6: the interval sent is the
    // received one less the time it waited.
    let broker = broker().await;
    away_subscriber(&broker, "s", "e/#").await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(expiring("e/short", b"short", 1, 1)).await;
    p.recv().await;
    p.send(expiring("e/long", b"long", 2, 100)).await;
    p.recv().await;
    p.send(Packet::Publish(publish(
        "e/none",
        b"none",
        QoS::AtLeastOnce,
        3,
    )))
    .await;
    p.recv().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut s = come_back(&broker, "s").await;
    let long = expect_publish(s.recv().await);
    assert_eq!(long.payload, b"long"[..], "the 1 s message expired");
    let left = long.properties.message_expiry_interval.unwrap();
    assert!((97..=98).contains(&left), "waited 2 s of 100: {left}");
    let none = expect_publish(s.recv().await);
    assert_eq!(none.payload, b"none"[..]);
    assert_eq!(none.properties.message_expiry_interval, None);
}

#[tokio::test]
async fn an_expired_retained_message_is_not_sent_v5() {
    // MQTT-3.3.2-5 for retained messages.
    let broker = broker().await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    for (topic, secs) in [("r/short", 1), ("r/long", 100)] {
        let Packet::Publish(mut m) = expiring(topic, topic.as_bytes(), 1, secs) else {
            unreachable!()
        };
        m.retain = true;
        p.send(Packet::Publish(m)).await;
        p.recv().await;
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut s = Raw::connect(&broker, V5, "s").await;
    sub(&mut s, "r/#", QoS::AtLeastOnce).await;
    let got = expect_publish(s.recv().await);
    assert_eq!(got.topic.as_str(), "r/long");
    assert!(got.retain);
    assert!(got.properties.message_expiry_interval.unwrap() <= 98);
    assert!(s.recv_within(Duration::from_millis(300)).await.is_none());
}

/// Connects `client` with a will on `will/<client>` that waits `delay`
/// seconds, a session that lives `expiry` seconds, and user properties.
async fn with_delayed_will(
    broker: &pigeon_broker::Broker,
    client: &str,
    delay: u32,
    expiry: u32,
) -> Raw {
    let mut connect = connect_packet(V5, client, false);
    connect.properties.session_expiry_interval = Some(expiry);
    let mut w = will(&format!("will/{client}"), QoS::AtLeastOnce, false);
    w.properties.will_delay_interval = Some(delay);
    w.properties.content_type = Some("text/plain".try_into().unwrap());
    w.properties.user_properties = vec![
        ("z".try_into().unwrap(), "1".try_into().unwrap()),
        ("a".try_into().unwrap(), "2".try_into().unwrap()),
    ];
    connect.will = Some(w);
    let (c, reply) = Raw::connect_with(broker, connect).await;
    assert_eq!(connack(reply).reason_code, ReasonCode::SUCCESS);
    c
}

async fn will_watcher(broker: &pigeon_broker::Broker) -> Raw {
    let mut w = Raw::connect(broker, V5, "watcher").await;
    sub(&mut w, "will/#", QoS::AtLeastOnce).await;
    w
}

#[tokio::test]
async fn a_delayed_will_goes_after_its_delay_with_its_properties_v5() {
    // MQTT-3.1.2-8: published once the Will Delay Interval has passed;
    // MQTT-3.1.3-10: with its User Properties in order.
    let broker = broker().await;
    let mut watcher = will_watcher(&broker).await;
    let c = with_delayed_will(&broker, "d", 2, 600).await;
    drop(c); // no DISCONNECT: the will is due
    assert!(
        watcher
            .recv_within(Duration::from_millis(1200))
            .await
            .is_none(),
        "not before its delay"
    );
    let got = expect_publish(watcher.recv().await);
    assert_eq!(got.topic.as_str(), "will/d");
    assert_eq!(got.properties.content_type.as_deref(), Some("text/plain"));
    let keys: Vec<&str> = got
        .properties
        .user_properties
        .iter()
        .map(|(k, _)| &**k)
        .collect();
    assert_eq!(keys, ["z", "a"]);
}

#[tokio::test]
async fn reconnecting_within_the_will_delay_cancels_the_will_v5() {
    // MQTT-3.1.3-9
    let broker = broker().await;
    let mut watcher = will_watcher(&broker).await;
    drop(with_delayed_will(&broker, "r", 2, 600).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _back = come_back(&broker, "r").await;
    assert!(watcher
        .recv_within(Duration::from_millis(3000))
        .await
        .is_none());
}

#[tokio::test]
async fn a_session_ending_before_the_will_delay_sends_the_will_then_v5() {
    // MQTT-3.1.2-8: "or the Session ends, whichever happens first".
    let broker = broker().await;
    let mut watcher = will_watcher(&broker).await;
    drop(with_delayed_will(&broker, "e", 100, 1).await);
    let got = watcher.recv_within(Duration::from_millis(3500)).await;
    assert_eq!(expect_publish(got).topic.as_str(), "will/e");
}

#[tokio::test]
async fn a_clean_start_ends_the_old_session_and_sends_its_waiting_will_v5() {
    // MQTT-3.1.2-8: the new connection discards the session, which ends it.
    let broker = broker().await;
    let mut watcher = will_watcher(&broker).await;
    drop(with_delayed_will(&broker, "c", 100, 600).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_c, reply) = Raw::connect_with(&broker, connect_packet(V5, "c", true)).await;
    assert!(!connack(reply).session_present);
    assert_eq!(
        expect_publish(watcher.recv().await).topic.as_str(),
        "will/c"
    );
}

/// A member of `$share/<group>/<filter>` (clean start, or a session that
/// lives `expiry` seconds).
async fn member(
    broker: &pigeon_broker::Broker,
    client: &str,
    share: &str,
    q: QoS,
    expiry: u32,
) -> Raw {
    let mut connect = connect_packet(V5, client, true);
    connect.properties.session_expiry_interval = Some(expiry);
    let (mut c, _) = Raw::connect_with(broker, connect).await;
    assert_eq!(
        sub(&mut c, share, q).await,
        [
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::GRANTED_QOS_2
        ][q as usize..=q as usize]
    );
    c
}

/// Publishes one QoS 1 message per number in `range` to `topic`, the
/// number as its payload, each acknowledged before the next.
async fn publish_numbered(p: &mut Raw, topic: &str, range: std::ops::RangeInclusive<u8>) {
    for n in range {
        p.send(Packet::Publish(publish(
            topic,
            &[n],
            QoS::AtLeastOnce,
            n.into(),
        )))
        .await;
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
}

/// Payloads that arrive at `c` within `wait` (acknowledging QoS 1).
async fn drain(c: &mut Raw, wait: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Some(p) = c.recv_within(wait).await {
        if let Packet::Publish(p) = p {
            if let (QoS::AtLeastOnce, Some(id)) = (p.qos, p.packet_id) {
                c.send(Packet::PubAck(pigeon_proto::codec::Ack::new(id)))
                    .await;
            }
            got.push(p.payload.to_vec());
        }
    }
    got
}

#[tokio::test]
async fn a_shared_subscription_gives_each_message_to_one_member_in_turn_v5() {
    // §4.8.2: each message goes to one session of the group (round robin
    // by default); a non-shared subscriber still gets every one.
    let broker = broker().await;
    let mut a = member(&broker, "a", "$share/g/jobs/+", QoS::AtLeastOnce, 0).await;
    let mut b = member(&broker, "b", "$share/g/jobs/+", QoS::AtLeastOnce, 0).await;
    let mut c = member(&broker, "c", "$share/g/jobs/+", QoS::AtLeastOnce, 0).await;
    let mut all = Raw::connect(&broker, V5, "all").await;
    sub(&mut all, "jobs/#", QoS::AtMostOnce).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    for n in 1..=6u8 {
        p.send(Packet::Publish(publish(
            "jobs/x",
            &[n],
            QoS::AtLeastOnce,
            n.into(),
        )))
        .await;
        p.recv().await;
    }
    let wait = Duration::from_millis(300);
    let (ga, gb, gc) = (
        drain(&mut a, wait).await,
        drain(&mut b, wait).await,
        drain(&mut c, wait).await,
    );
    assert_eq!(
        (ga.len(), gb.len(), gc.len()),
        (2, 2, 2),
        "{ga:?} {gb:?} {gc:?}"
    );
    let mut every: Vec<u8> = ga.iter().chain(&gb).chain(&gc).map(|p| p[0]).collect();
    every.sort();
    assert_eq!(every, [1, 2, 3, 4, 5, 6], "each once");
    assert_eq!(drain(&mut all, wait).await.len(), 6);
}

#[tokio::test]
async fn shared_subscriptions_get_no_retained_messages_and_refuse_no_local_v5() {
    // §4.8.2 (no retained messages on a shared subscribe); MQTT-3.8.3-4
    // (No Local on a shared subscription is a Protocol Error).
    let broker = broker().await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    let mut m = publish("r/1", b"kept", QoS::AtMostOnce, 0);
    m.retain = true;
    p.send(Packet::Publish(m)).await;
    let mut a = member(&broker, "a", "$share/g/r/+", QoS::AtMostOnce, 0).await;
    assert!(a.recv_within(Duration::from_millis(300)).await.is_none());
    let options = SubscriptionOptions {
        no_local: true,
        ..qos(QoS::AtMostOnce)
    };
    a.send(subscribe_with(2, "$share/g/x", options, None)).await;
    assert_eq!(
        last_disconnect(&a.closed().await),
        Some(ReasonCode::PROTOCOL_ERROR)
    );
}

#[tokio::test]
async fn a_member_that_leaves_hands_its_unacknowledged_messages_to_another_v5() {
    // §4.8.2: a QoS 1 message in flight to a member whose session ends, and
    // the messages queued for it, go to another member, not lost.
    let broker = broker_with(|c| c.limits.max_inflight = 1).await;
    let mut a = member(&broker, "a", "$share/g/w", QoS::AtLeastOnce, 0).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    publish_numbered(&mut p, "w", 1..=3).await;
    // `a` holds message 1 unacknowledged (its window is 1), 2 and 3 wait.
    assert_eq!(expect_publish(a.recv().await).payload, [1][..]);
    let mut b = member(&broker, "b", "$share/g/w", QoS::AtLeastOnce, 0).await;
    drop(a);
    let mut got: Vec<u8> = drain(&mut b, Duration::from_millis(1000))
        .await
        .iter()
        .map(|p| p[0])
        .collect();
    got.sort();
    assert_eq!(got, [1, 2, 3]);
}

#[tokio::test]
async fn a_qos2_message_sent_to_a_member_stays_with_its_session_v5() {
    // MQTT-4.8.2-4: the delivery of a QoS 2 message sent to a member whose
    // connection broke is completed when it reconnects, not given to another.
    let broker = broker().await;
    let mut a = member(&broker, "a", "$share/g/q2", QoS::ExactlyOnce, 600).await;
    let mut b = member(&broker, "b", "$share/g/q2", QoS::ExactlyOnce, 600).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish("q2", b"once", QoS::ExactlyOnce, 1)))
        .await;
    let (mut first, mut other) = (None, None);
    tokio::select! {
        got = a.recv() => { first = Some(("a", got)); }
        got = b.recv() => { other = Some(("b", got)); }
    }
    let (who, got) = first.or(other).unwrap();
    assert_eq!(expect_publish(got).payload, b"once"[..]);
    let (mut gone, mut stays) = if who == "a" { (a, b) } else { (b, a) };
    drop(std::mem::replace(&mut gone, Raw::open(&broker, V5).await));
    assert!(
        stays
            .recv_within(Duration::from_millis(500))
            .await
            .is_none(),
        "not given to the other"
    );
    let mut back = come_back(&broker, who).await;
    let again = expect_publish(back.recv().await);
    assert!(again.dup, "resent to the member it was sent to");
    assert_eq!(again.payload, b"once"[..]);
}

#[tokio::test]
async fn a_member_with_a_full_queue_is_skipped_v5() {
    // §4.8.2: a member that cannot take the message is passed over.
    let broker = broker_with(|c| {
        c.limits.max_inflight = 1;
        c.limits.max_queued_messages = 1;
    })
    .await;
    let mut slow = member(&broker, "slow", "$share/g/f", QoS::AtLeastOnce, 0).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    publish_numbered(&mut p, "f", 1..=2).await;
    // `slow`: 1 in flight (never acknowledged), 2 queued: full.
    assert_eq!(expect_publish(slow.recv().await).payload, [1][..]);
    let mut fast = member(&broker, "fast", "$share/g/f", QoS::AtLeastOnce, 0).await;
    for n in 3..=6u8 {
        p.send(Packet::Publish(publish(
            "f",
            &[n],
            QoS::AtLeastOnce,
            n.into(),
        )))
        .await;
        match p.recv().await {
            Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, ReasonCode::SUCCESS),
            other => panic!("{other:?}"),
        }
        // `fast` takes (and acknowledges) every one, whoever's turn it was.
        let got = drain(&mut fast, Duration::from_millis(200)).await;
        assert_eq!(got, [vec![n]]);
    }
}

#[tokio::test]
async fn sticky_and_random_strategies_v5() {
    use pigeon_broker::config::SharedStrategy;
    // Sticky: one publisher's messages all go to the same member.
    let broker =
        broker_with(|c| c.features.shared_subscription_strategy = SharedStrategy::Sticky).await;
    let mut a = member(&broker, "a", "$share/g/s", QoS::AtMostOnce, 0).await;
    let mut b = member(&broker, "b", "$share/g/s", QoS::AtMostOnce, 0).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    for n in 0..10u8 {
        p.send(Packet::Publish(publish("s", &[n], QoS::AtMostOnce, 0)))
            .await;
    }
    let wait = Duration::from_millis(300);
    let counts = (
        drain(&mut a, wait).await.len(),
        drain(&mut b, wait).await.len(),
    );
    assert!(counts == (10, 0) || counts == (0, 10), "{counts:?}");

    // Random: every message to exactly one member.
    let broker =
        broker_with(|c| c.features.shared_subscription_strategy = SharedStrategy::Random).await;
    let mut a = member(&broker, "a", "$share/g/s", QoS::AtMostOnce, 0).await;
    let mut b = member(&broker, "b", "$share/g/s", QoS::AtMostOnce, 0).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    for n in 0..40u8 {
        p.send(Packet::Publish(publish("s", &[n], QoS::AtMostOnce, 0)))
            .await;
    }
    let (ga, gb) = (drain(&mut a, wait).await, drain(&mut b, wait).await);
    assert_eq!(ga.len() + gb.len(), 40);
    assert!(
        !ga.is_empty() && !gb.is_empty(),
        "both picked: {} / {}",
        ga.len(),
        gb.len()
    );
}

#[tokio::test]
async fn unsubscribing_leaves_the_group_v5() {
    let broker = broker().await;
    let mut a = member(&broker, "a", "$share/g/u", QoS::AtMostOnce, 0).await;
    let mut b = member(&broker, "b", "$share/g/u", QoS::AtMostOnce, 0).await;
    a.send(Packet::Unsubscribe(pigeon_proto::codec::Unsubscribe {
        packet_id: PacketId::new(9).unwrap(),
        properties: Default::default(),
        filters: vec!["$share/g/u".try_into().unwrap()],
    }))
    .await;
    match a.recv().await {
        Some(Packet::UnsubAck(u)) => assert_eq!(u.reason_codes, [ReasonCode::SUCCESS]),
        other => panic!("{other:?}"),
    }
    let mut p = Raw::connect(&broker, V5, "p").await;
    for n in 0..4u8 {
        p.send(Packet::Publish(publish("u", &[n], QoS::AtMostOnce, 0)))
            .await;
    }
    let wait = Duration::from_millis(300);
    assert_eq!(drain(&mut b, wait).await.len(), 4);
    assert!(drain(&mut a, wait).await.is_empty());
}

mod enhanced_auth {
    use super::*;
    use bytes::Bytes;
    use pigeon_broker::auth::scram::{ScramClient, ScramSecret};
    use pigeon_proto::codec::Disconnect;

    const METHOD: &str = "SCRAM-SHA-256";

    /// A broker whose SCRAM users file holds `user` and `other`, both with
    /// password `pencil`.
    async fn scram_broker() -> (pigeon_broker::Broker, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scram");
        let secret = ScramSecret::new("pencil", 4096).to_rfc5803();
        std::fs::write(
            &file,
            format!("# test users\nuser:{secret}\nother:{secret}\n"),
        )
        .unwrap();
        let broker = broker_with(|c| c.scram_users_file = file).await;
        (broker, dir)
    }

    fn auth_packet(code: ReasonCode, data: Vec<u8>) -> Packet {
        let mut a = Disconnect::new(code);
        a.properties.authentication_method = Some(METHOD.try_into().unwrap());
        a.properties.authentication_data = Some(Bytes::from(data));
        Packet::Auth(a)
    }

    /// The data of the AUTH `packet`, checking its code and method.
    fn auth_data(packet: Option<Packet>, code: ReasonCode) -> Bytes {
        match packet {
            Some(Packet::Auth(a)) => {
                assert_eq!(a.reason_code, code);
                assert_eq!(a.properties.authentication_method.as_deref(), Some(METHOD));
                a.properties.authentication_data.clone().unwrap()
            }
            other => panic!("expected AUTH, got {other:?}"),
        }
    }

    /// CONNECT with SCRAM's first message; returns the client, its SCRAM
    /// state and the server-first-message.
    async fn begin(broker: &pigeon_broker::Broker, password: &str) -> (Raw, ScramClient, Bytes) {
        let scram = ScramClient::new("user", password);
        let mut connect = connect_packet(V5, "scram", true);
        connect.properties.authentication_method = Some(METHOD.try_into().unwrap());
        connect.properties.authentication_data = Some(Bytes::from(scram.first()));
        let (c, reply) = Raw::connect_with(broker, connect).await;
        // MQTT-4.12.0-2: more is needed: AUTH 0x18.
        let server_first = auth_data(Some(reply), ReasonCode::CONTINUE_AUTHENTICATION);
        (c, scram, server_first)
    }

    /// A client connected as `user` through SCRAM.
    async fn logged_in(broker: &pigeon_broker::Broker) -> Raw {
        let (mut c, mut scram, server_first) = begin(broker, "pencil").await;
        c.send(auth_packet(
            ReasonCode::CONTINUE_AUTHENTICATION,
            scram.last(&server_first).unwrap(),
        ))
        .await;
        assert_eq!(
            connack(c.recv().await.unwrap()).reason_code,
            ReasonCode::SUCCESS
        );
        c
    }

    #[tokio::test]
    async fn scram_sha256_authenticates_and_the_broker_proves_itself_v5() {
        // MQTT-4.12.0-2, MQTT-4.12.0-3, MQTT-4.12.0-5.
        let (broker, _dir) = scram_broker().await;
        let (mut c, mut scram, server_first) = begin(&broker, "pencil").await;
        let last = scram.last(&server_first).unwrap();
        c.send(auth_packet(ReasonCode::CONTINUE_AUTHENTICATION, last))
            .await;
        let ack = connack(c.recv().await.unwrap());
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
        assert_eq!(
            ack.properties.authentication_method.as_deref(),
            Some(METHOD)
        );
        let server_final = ack.properties.authentication_data.clone().unwrap();
        assert!(
            scram.verify(&server_final),
            "the server signature proves the broker knows the secret"
        );
        c.send(Packet::PingReq).await;
        assert_eq!(c.recv().await, Some(Packet::PingResp));
    }

    #[tokio::test]
    async fn a_wrong_password_is_refused_with_0x87_v5() {
        // MQTT-4.12.0-4: CONNACK 0x80 or above, and the connection closes.
        let (broker, _dir) = scram_broker().await;
        let (mut c, mut scram, server_first) = begin(&broker, "crayon").await;
        let last = scram.last(&server_first).unwrap();
        c.send(auth_packet(ReasonCode::CONTINUE_AUTHENTICATION, last))
            .await;
        let seen = c.closed().await;
        assert!(
            matches!(&seen[..], [Packet::ConnAck(a)] if a.reason_code == ReasonCode::NOT_AUTHORIZED),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn an_unknown_method_is_refused_with_0x8c_v5() {
        // MQTT-4.12.0-1
        let (broker, _dir) = scram_broker().await;
        let mut connect = connect_packet(V5, "k", true);
        connect.properties.authentication_method = Some("GS2-KRB5".try_into().unwrap());
        let (mut c, reply) = Raw::connect_with(&broker, connect).await;
        assert_eq!(
            connack(reply).reason_code,
            ReasonCode::BAD_AUTHENTICATION_METHOD
        );
        assert!(c.closed().await.is_empty());
    }

    #[tokio::test]
    async fn re_authentication_succeeds_with_auth_0x00_and_fails_with_disconnect_v5() {
        // MQTT-4.12.1-1, MQTT-4.12.1-2.
        let (broker, _dir) = scram_broker().await;
        let mut c = logged_in(&broker).await;
        for (password, succeeds) in [("pencil", true), ("crayon", false)] {
            let mut again = ScramClient::new("user", password);
            c.send(auth_packet(ReasonCode::RE_AUTHENTICATE, again.first()))
                .await;
            let first = auth_data(c.recv().await, ReasonCode::CONTINUE_AUTHENTICATION);
            c.send(auth_packet(
                ReasonCode::CONTINUE_AUTHENTICATION,
                again.last(&first).unwrap(),
            ))
            .await;
            if succeeds {
                let v = auth_data(c.recv().await, ReasonCode::SUCCESS);
                assert!(again.verify(&v));
            } else {
                assert_eq!(
                    last_disconnect(&c.closed().await),
                    Some(ReasonCode::NOT_AUTHORIZED)
                );
            }
        }
    }

    #[tokio::test]
    async fn re_authentication_as_another_user_is_refused_v5() {
        // Catalogue AU10: the password is right, the user is not the same.
        let (broker, _dir) = scram_broker().await;
        let mut c = logged_in(&broker).await;
        let mut other = ScramClient::new("other", "pencil");
        c.send(auth_packet(ReasonCode::RE_AUTHENTICATE, other.first()))
            .await;
        let first = auth_data(c.recv().await, ReasonCode::CONTINUE_AUTHENTICATION);
        c.send(auth_packet(
            ReasonCode::CONTINUE_AUTHENTICATION,
            other.last(&first).unwrap(),
        ))
        .await;
        assert_eq!(
            last_disconnect(&c.closed().await),
            Some(ReasonCode::NOT_AUTHORIZED)
        );
    }

    #[tokio::test]
    async fn auth_without_a_method_in_connect_is_a_protocol_error_v5() {
        // MQTT-4.12.0-7
        let broker = broker().await;
        let mut c = Raw::connect(&broker, V5, "plain").await;
        c.send(auth_packet(
            ReasonCode::RE_AUTHENTICATE,
            b"n,,n=user,r=x".to_vec(),
        ))
        .await;
        assert_eq!(
            last_disconnect(&c.closed().await),
            Some(ReasonCode::PROTOCOL_ERROR)
        );
    }

    /// An authenticator that sends every client elsewhere.
    #[derive(Debug)]
    struct Elsewhere;

    impl pigeon_broker::auth::Authenticator for Elsewhere {
        fn authenticate(
            &self,
            c: &pigeon_broker::auth::Credentials<'_>,
        ) -> Result<(), pigeon_broker::auth::Refusal> {
            Err(pigeon_broker::auth::Refusal::redirect(
                "other.example:1883",
                c.client_id == "moved",
            ))
        }
    }

    #[tokio::test]
    async fn the_auth_hook_can_redirect_a_client_v5() {
        // §4.11 Server redirection: 0x9C / 0x9D with a Server Reference.
        let config = pigeon_broker::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            sys_interval: 0,
            durability: pigeon_broker::Durability::Memory,
            ..pigeon_broker::Config::default()
        };
        let store = pigeon_broker::open_store(&config).unwrap();
        let broker = pigeon_broker::Broker::start_with(config, store, Box::new(Elsewhere))
            .await
            .unwrap();
        for (client, code) in [
            ("busy", ReasonCode::USE_ANOTHER_SERVER),
            ("moved", ReasonCode::SERVER_MOVED),
        ] {
            let (_c, reply) = Raw::connect_with(&broker, connect_packet(V5, client, true)).await;
            let ack = connack(reply);
            assert_eq!(ack.reason_code, code);
            assert_eq!(
                ack.properties.server_reference.as_deref(),
                Some("other.example:1883")
            );
        }
    }
}

#[tokio::test]
async fn errors_come_with_reason_strings_unless_the_client_asks_for_none_v5() {
    // §3.4.2.2.2 / §3.9.2.1.2 / §3.14.2.2.3: Reason Strings on error acks
    // and DISCONNECT; MQTT-3.1.2-29: none on acks when Request Problem
    // Information is 0 (DISCONNECT still carries it).
    let broker = broker_with(|c| c.limits.max_subscriptions = 1).await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    c.send(Packet::Publish(publish(
        "$SYS/x",
        b"no",
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.reason_code, ReasonCode::NOT_AUTHORIZED);
            assert!(a
                .properties
                .reason_string
                .as_deref()
                .unwrap()
                .contains("$SYS"));
        }
        other => panic!("{other:?}"),
    }
    sub(&mut c, "a", QoS::AtMostOnce).await;
    c.send(subscribe(2, &[("b", QoS::AtMostOnce)])).await;
    match c.recv().await {
        Some(Packet::SubAck(s)) => {
            assert_eq!(s.reason_codes, [ReasonCode::QUOTA_EXCEEDED]);
            assert!(s.properties.reason_string.is_some());
        }
        other => panic!("{other:?}"),
    }
    let mut aliased = publish("t", b"x", QoS::AtMostOnce, 0);
    aliased.properties.topic_alias = Some(1000);
    c.send(Packet::Publish(aliased)).await;
    match c.closed().await.as_slice() {
        [Packet::Disconnect(d)] => {
            assert_eq!(d.reason_code, ReasonCode::TOPIC_ALIAS_INVALID);
            assert!(d.properties.reason_string.is_some());
        }
        other => panic!("{other:?}"),
    }

    let mut quiet = connect_packet(V5, "q", true);
    quiet.properties.request_problem_information = Some(false);
    let (mut q, _) = Raw::connect_with(&broker, quiet).await;
    q.send(Packet::Publish(publish(
        "$SYS/x",
        b"no",
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    match q.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.reason_code, ReasonCode::NOT_AUTHORIZED);
            assert_eq!(a.properties.reason_string, None);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_message_larger_than_the_clients_maximum_packet_size_is_not_sent_v5() {
    // MQTT-3.1.2-24: never a packet above the client's Maximum Packet Size;
    // MQTT-3.1.2-25: such a message is dropped as if sent, and the next
    // one still comes.
    let broker = broker().await;
    let mut connect = connect_packet(V5, "small", true);
    connect.properties.maximum_packet_size = Some(64);
    let (mut s, _) = Raw::connect_with(&broker, connect).await;
    sub(&mut s, "m", QoS::AtLeastOnce).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish(
        "m",
        &[7; 200],
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    p.recv().await;
    p.send(Packet::Publish(publish("m", b"fits", QoS::AtLeastOnce, 2)))
        .await;
    p.recv().await;
    let got = expect_publish(s.recv().await);
    assert_eq!(got.payload, b"fits"[..]);
}
