//! MQTT 5.0 server behaviour that 3.1.1 shares in spirit, checked on the
//! wire in 5.0: sessions and Clean Start, client identifiers, retained
//! messages, SUBSCRIBE / UNSUBSCRIBE actions, ordering, and the shared
//! subscription rules on acknowledgements. Each test cites its ids (v5).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pigeon_proto::codec::{
    Ack, ConnAck, Subscribe, SubscribeFilter, SubscriptionOptions, Unsubscribe,
};
use pigeon_proto::{Packet, PacketId, Protocol, QoS, ReasonCode};

const V5: Protocol = Protocol::V5;
const QUIET: Duration = Duration::from_millis(300);

fn connack(packet: Packet) -> ConnAck {
    match packet {
        Packet::ConnAck(c) => c,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// Connects `client` with Clean Start `clean` and a 600 s session.
async fn session(broker: &pigeon_broker::Broker, client: &str, clean: bool) -> (Raw, bool) {
    let mut c = connect_packet(V5, client, clean);
    c.properties.session_expiry_interval = Some(600);
    let (raw, reply) = Raw::connect_with(broker, c).await;
    let ack = connack(reply);
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    (raw, ack.session_present)
}

async fn suback(c: &mut Raw) -> Vec<ReasonCode> {
    match c.recv().await {
        Some(Packet::SubAck(s)) => s.reason_codes,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

fn subscribe_ids(packet_id: u16, filter: &str, q: QoS, sub_id: u32) -> Packet {
    let mut s = Subscribe {
        packet_id: id(packet_id),
        properties: Default::default(),
        filters: vec![SubscribeFilter {
            filter: filter.try_into().unwrap(),
            options: SubscriptionOptions {
                qos: q,
                ..Default::default()
            },
        }],
    };
    s.properties.subscription_identifiers = vec![sub_id];
    Packet::Subscribe(s)
}

#[tokio::test]
async fn clean_start_and_session_present_v5() {
    // MQTT-3.1.2-6: Clean Start 0 without a session creates one (Session
    // Present 0, MQTT-3.2.2-3); MQTT-3.1.2-5, MQTT-3.2.2-3: with one, it is
    // resumed (Session Present 1) and what it queued arrives (MQTT-3.1.3-2,
    // MQTT-4.5.0-1); MQTT-3.1.2-4, MQTT-3.1.4-4, MQTT-3.2.2-2: Clean Start 1
    // discards it (Session Present 0, subscription gone).
    let broker = broker().await;
    let (mut s, present) = session(&broker, "keeper", false).await;
    assert!(!present);
    s.send(subscribe(1, &[("keep/#", QoS::AtLeastOnce)])).await;
    suback(&mut s).await;
    drop(s);
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish(
        "keep/1",
        b"queued",
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    p.recv().await;
    let (mut s, present) = session(&broker, "keeper", false).await;
    assert!(present);
    assert_eq!(expect_publish(s.recv().await).payload, b"queued"[..]);
    drop(s);
    let (mut s, present) = session(&broker, "keeper", true).await;
    assert!(!present);
    p.send(Packet::Publish(publish(
        "keep/1",
        b"after",
        QoS::AtLeastOnce,
        2,
    )))
    .await;
    p.recv().await;
    assert!(
        s.recv_within(QUIET).await.is_none(),
        "the old subscription is gone"
    );
}

#[tokio::test]
async fn session_state_stays_while_the_connection_is_open_v5() {
    // MQTT-4.1.0-1: a connected client's session lives whatever its expiry
    // (here 0, ending only with the connection).
    let broker = broker().await;
    let mut s = Raw::connect(&broker, V5, "s").await;
    s.send(subscribe(1, &[("live", QoS::AtLeastOnce)])).await;
    suback(&mut s).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish(
        "live",
        b"still here",
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    assert_eq!(expect_publish(s.recv().await).payload, b"still here"[..]);
}

#[tokio::test]
async fn client_identifiers_v5() {
    // MQTT-3.1.3-5: 1 to 23 alphanumeric characters are accepted.
    let broker = broker_with(|c| c.limits.max_client_id_len = 30).await;
    let (_c, reply) =
        Raw::connect_with(&broker, connect_packet(V5, "abcdefghijklmnopqrstuvW", true)).await;
    assert_eq!(connack(reply).reason_code, ReasonCode::SUCCESS);
    // MQTT-3.1.3-7: an empty id is processed as the assigned one: a
    // session made under it is resumed by that id.
    let mut empty = connect_packet(V5, "", false);
    empty.properties.session_expiry_interval = Some(600);
    let (c, reply) = Raw::connect_with(&broker, empty).await;
    let assigned = connack(reply)
        .properties
        .assigned_client_identifier
        .clone()
        .unwrap();
    drop(c);
    let (_c, present) = session(&broker, &assigned, false).await;
    assert!(present, "the session belongs to {assigned}");
    // MQTT-3.1.3-8: a rejected id gets 0x85 and the connection closes.
    let long = "x".repeat(31);
    let (mut c, reply) = Raw::connect_with(&broker, connect_packet(V5, &long, true)).await;
    assert_eq!(
        connack(reply).reason_code,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    assert!(c.closed().await.is_empty());
}

#[tokio::test]
async fn retained_messages_are_replaced_kept_and_removed_v5() {
    // MQTT-3.3.1-5: RETAIN 1 replaces; MQTT-3.3.1-8: RETAIN 0 neither stores
    // nor replaces; MQTT-3.3.1-6, MQTT-3.3.1-7: an empty retained payload
    // removes it and is not stored.
    let broker = broker().await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    for (payload, retain) in [(&b"first"[..], true), (b"second", true), (b"live", false)] {
        let mut m = publish("r", payload, QoS::AtLeastOnce, 1);
        m.retain = retain;
        p.send(Packet::Publish(m)).await;
        p.recv().await;
    }
    let mut s = Raw::connect(&broker, V5, "s").await;
    s.send(subscribe(1, &[("r", QoS::AtLeastOnce)])).await;
    suback(&mut s).await;
    let got = expect_publish(s.recv().await);
    assert_eq!((got.payload.as_ref(), got.retain), (&b"second"[..], true));
    let mut clear = publish("r", b"", QoS::AtLeastOnce, 2);
    clear.retain = true;
    p.send(Packet::Publish(clear)).await;
    p.recv().await;
    let got = expect_publish(s.recv().await);
    assert!(
        got.payload.is_empty(),
        "processed normally: subscribers get it"
    );
    let mut late = Raw::connect(&broker, V5, "late").await;
    late.send(subscribe(1, &[("r", QoS::AtLeastOnce)])).await;
    suback(&mut late).await;
    assert!(late.recv_within(QUIET).await.is_none(), "nothing retained");
}

#[tokio::test]
async fn overlapping_subscriptions_get_one_copy_with_every_identifier_v5() {
    // MQTT-3.3.4-4: a single copy carries the identifiers of all matching
    // subscriptions (MQTT-3.3.4-5 applies to brokers that send one copy per
    // subscription, which Pigeon does not). MQTT-3.3.2-3: its topic is
    // the published one, which matches each filter.
    let broker = broker().await;
    let mut s = Raw::connect(&broker, V5, "s").await;
    s.send(subscribe_ids(1, "a/+", QoS::AtMostOnce, 11)).await;
    suback(&mut s).await;
    s.send(subscribe_ids(2, "a/#", QoS::AtLeastOnce, 22)).await;
    suback(&mut s).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish("a/b", b"x", QoS::AtLeastOnce, 1)))
        .await;
    let got = expect_publish(s.recv().await);
    assert_eq!(got.topic.as_str(), "a/b");
    let mut ids = got.properties.subscription_identifiers.clone();
    ids.sort();
    assert_eq!(ids, [11, 22]);
    assert!(s.recv_within(QUIET).await.is_none(), "one copy");
}

#[tokio::test]
async fn subscribe_actions_v5() {
    // MQTT-3.8.4-1, MQTT-3.8.4-5: one SUBACK for several filters, a code
    // each; MQTT-3.8.4-3: the same filter again replaces the subscription,
    // and MQTT-3.8.4-4 sends the retained messages again (Retain Handling
    // 0); MQTT-3.8.4-8: delivered at the lower of the two QoS.
    let broker = broker().await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    let mut kept = publish("s/1", b"kept", QoS::ExactlyOnce, 1);
    kept.retain = true;
    p.send(Packet::Publish(kept)).await;
    assert!(matches!(p.recv().await, Some(Packet::PubRec(_))));
    p.send(Packet::PubRel(Ack::new(id(1)))).await;
    p.recv().await;
    let mut s = Raw::connect(&broker, V5, "s").await;
    s.send(subscribe(
        1,
        &[
            ("s/1", QoS::AtLeastOnce),
            ("s/#/bad", QoS::AtMostOnce),
            ("t", QoS::AtMostOnce),
        ],
    ))
    .await;
    assert_eq!(
        suback(&mut s).await,
        [
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::TOPIC_FILTER_INVALID,
            ReasonCode::GRANTED_QOS_0
        ]
    );
    let first = expect_publish(s.recv().await);
    assert_eq!(first.qos, QoS::AtLeastOnce, "min(2, 1)");
    s.send(Packet::PubAck(Ack::new(first.packet_id.unwrap())))
        .await;
    s.send(subscribe(2, &[("s/1", QoS::AtMostOnce)])).await;
    assert_eq!(suback(&mut s).await, [ReasonCode::GRANTED_QOS_0]);
    let again = expect_publish(s.recv().await);
    assert_eq!(
        (again.payload.as_ref(), again.qos),
        (&b"kept"[..], QoS::AtMostOnce)
    );
    p.send(Packet::Publish(publish(
        "s/1",
        b"one copy",
        QoS::AtLeastOnce,
        2,
    )))
    .await;
    let live = expect_publish(s.recv().await);
    assert_eq!(
        (live.payload.as_ref(), live.qos),
        (&b"one copy"[..], QoS::AtMostOnce)
    );
    assert!(s.recv_within(QUIET).await.is_none(), "replaced, not added");
}

#[tokio::test]
async fn unsubscribe_actions_v5() {
    // MQTT-3.10.4-1: filters compare character by character ("a/+" does not
    // remove "a/b"); MQTT-3.10.4-4, MQTT-3.10.4-6: one UNSUBACK with a code
    // per filter; MQTT-3.10.4-2: no new messages; MQTT-3.10.4-3: a QoS 1
    // message already sent is still completed.
    let broker = broker().await;
    let mut s = Raw::connect(&broker, V5, "s").await;
    s.send(subscribe(1, &[("a/b", QoS::AtLeastOnce)])).await;
    suback(&mut s).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish(
        "a/b",
        b"in flight",
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    let sent = expect_publish(s.recv().await);
    let unsubscribe = |n: u16, filters: &[&str]| {
        Packet::Unsubscribe(Unsubscribe {
            packet_id: id(n),
            properties: Default::default(),
            filters: filters.iter().map(|f| (*f).try_into().unwrap()).collect(),
        })
    };
    s.send(unsubscribe(2, &["a/+"])).await;
    match s.recv().await {
        Some(Packet::UnsubAck(u)) => {
            assert_eq!(u.reason_codes, [ReasonCode::NO_SUBSCRIPTION_EXISTED])
        }
        other => panic!("{other:?}"),
    }
    s.send(unsubscribe(3, &["a/b", "never"])).await;
    match s.recv().await {
        Some(Packet::UnsubAck(u)) => assert_eq!(
            u.reason_codes,
            [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
        ),
        other => panic!("{other:?}"),
    }
    s.send(Packet::PubAck(Ack::new(sent.packet_id.unwrap())))
        .await;
    p.send(Packet::Publish(publish(
        "a/b",
        b"after",
        QoS::AtLeastOnce,
        2,
    )))
    .await;
    assert!(s.recv_within(QUIET).await.is_none());
    s.send(Packet::PingReq).await;
    assert_eq!(
        s.recv().await,
        Some(Packet::PingResp),
        "the PUBACK was taken as completing it"
    );
}

#[tokio::test]
async fn one_publishers_messages_arrive_in_order_v5() {
    // MQTT-4.6.0-5, MQTT-4.6.0-6: every topic is ordered on non-shared
    // subscriptions.
    let broker = broker().await;
    let mut s = Raw::connect(&broker, V5, "s").await;
    s.send(subscribe(1, &[("o/#", QoS::AtLeastOnce)])).await;
    suback(&mut s).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    for n in 1..=200u16 {
        let topic = if n % 2 == 0 { "o/even" } else { "o/odd" };
        p.send(Packet::Publish(publish(
            topic,
            &n.to_be_bytes(),
            QoS::AtLeastOnce,
            n,
        )))
        .await;
    }
    let mut seen = Vec::new();
    while seen.len() < 200 {
        let m = expect_publish(s.recv().await);
        s.send(Packet::PubAck(Ack::new(m.packet_id.unwrap()))).await;
        seen.push(u16::from_be_bytes([m.payload[0], m.payload[1]]));
    }
    assert_eq!(seen, (1..=200).collect::<Vec<_>>());
}

async fn member(broker: &pigeon_broker::Broker, client: &str, q: QoS, expiry: u32) -> Raw {
    let mut c = connect_packet(V5, client, true);
    c.properties.session_expiry_interval = Some(expiry);
    let (mut raw, _) = Raw::connect_with(broker, c).await;
    raw.send(subscribe(1, &[("$share/g/x", q)])).await;
    suback(&mut raw).await;
    raw
}

#[tokio::test]
async fn shared_members_get_their_granted_qos_v5() {
    // MQTT-4.8.2-3
    let broker = broker().await;
    let mut m = member(&broker, "m", QoS::AtMostOnce, 0).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish("x", b"q2", QoS::ExactlyOnce, 1)))
        .await;
    assert_eq!(expect_publish(m.recv().await).qos, QoS::AtMostOnce);
}

#[tokio::test]
async fn a_refused_shared_message_is_not_offered_to_another_member_v5() {
    // MQTT-4.8.2-6: PUBACK 0x80 or above discards the message.
    let broker = broker().await;
    let mut a = member(&broker, "a", QoS::AtLeastOnce, 0).await;
    let mut b = member(&broker, "b", QoS::AtLeastOnce, 0).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish("x", b"no", QoS::AtLeastOnce, 1)))
        .await;
    let (who, got) = tokio::select! {
        m = a.recv() => ("a", m),
        m = b.recv() => ("b", m),
    };
    let (mut refuser, mut other) = if who == "a" { (a, b) } else { (b, a) };
    let m = expect_publish(got);
    let refusal = Ack::with_code(m.packet_id.unwrap(), ReasonCode::UNSPECIFIED_ERROR);
    refuser.send(Packet::PubAck(refusal)).await;
    refuser.send(Packet::PingReq).await;
    assert_eq!(refuser.recv().await, Some(Packet::PingResp));
    // Its session ends with the connection: still nothing to hand on.
    drop(refuser);
    assert!(other
        .recv_within(Duration::from_millis(600))
        .await
        .is_none());
}

#[tokio::test]
async fn a_qos2_message_of_a_member_whose_session_ends_goes_to_nobody_else_v5() {
    // MQTT-4.8.2-5
    let broker = broker().await;
    let mut a = member(&broker, "a", QoS::ExactlyOnce, 1).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish("x", b"once", QoS::ExactlyOnce, 1)))
        .await;
    assert_eq!(expect_publish(a.recv().await).payload, b"once"[..]);
    drop(a); // its session ends a second later
    let mut b = member(&broker, "b", QoS::ExactlyOnce, 0).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(b.recv_within(QUIET).await.is_none());
}

#[tokio::test]
async fn a_qos1_message_of_a_member_whose_session_ends_goes_to_another_v5() {
    // §4.8.2: "If the Client's Session terminates before the Client
    // reconnects, the Server SHOULD send the Application Message to another
    // Client that is subscribed to the same Shared Subscription" (QoS 1).
    let broker = broker().await;
    let mut a = member(&broker, "a", QoS::AtLeastOnce, 1).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish("x", b"work", QoS::AtLeastOnce, 1)))
        .await;
    assert_eq!(expect_publish(a.recv().await).payload, b"work"[..]);
    drop(a); // unacknowledged; its session ends a second later
    let mut b = member(&broker, "b", QoS::AtLeastOnce, 0).await;
    let got = b.recv_within(Duration::from_millis(3000)).await;
    assert_eq!(expect_publish(got).payload, b"work"[..]);
}
