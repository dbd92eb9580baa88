//! Server behaviour MQTT 3.1.1 and 5.0 share, checked on the wire in both:
//! sessions and Clean Start / Clean Session, client identifiers, retained
//! messages, SUBSCRIBE / UNSUBSCRIBE actions, ordering; and the 5.0 shared
//! subscription rules on acknowledgements. A behaviour is one function
//! taking the protocol; its `_v311` and `_v5` tests cite each version's
//! ids (they are numbered differently in the two specifications).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pigeon_proto::codec::{
    Ack, ConnAck, Subscribe, SubscribeFilter, SubscriptionOptions, Unsubscribe,
};
use pigeon_proto::{Packet, PacketId, Protocol, QoS, ReasonCode};

const V5: Protocol = Protocol::V5;
const V311: Protocol = Protocol::V3_1_1;
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

/// Connects `client` with Clean Start `clean` and a 600 s session (3.1.1:
/// Clean Session `clean`, a session that lasts while it is 0).
async fn session(
    broker: &pigeon_broker::Broker,
    protocol: Protocol,
    client: &str,
    clean: bool,
) -> (Raw, bool) {
    let mut c = connect_packet(protocol, client, clean);
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
    clean_start_and_session_present(V5).await;
}

#[tokio::test]
async fn clean_session_and_session_present_v311() {
    // MQTT-3.2.2-3: no stored session, Session Present 0; the client id
    // names the session (MQTT-3.1.3-2), what was queued for it arrives
    // (MQTT-4.5.0-1); Clean Session is processed (MQTT-3.1.4-3).
    clean_start_and_session_present(V311).await;
}

async fn clean_start_and_session_present(protocol: Protocol) {
    let broker = broker().await;
    let (mut s, present) = session(&broker, protocol, "keeper", false).await;
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
    let (mut s, present) = session(&broker, protocol, "keeper", false).await;
    assert!(present);
    assert_eq!(expect_publish(s.recv().await).payload, b"queued"[..]);
    drop(s);
    let (mut s, present) = session(&broker, protocol, "keeper", true).await;
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
    session_state_stays(V5).await;
}

#[tokio::test]
async fn session_lasts_as_long_as_the_connection_v311() {
    // MQTT-4.1.0-2 (clean session: it ends only with the connection).
    session_state_stays(V311).await;
}

async fn session_state_stays(protocol: Protocol) {
    let broker = broker().await;
    let mut s = Raw::connect(&broker, protocol, "s").await;
    s.send(subscribe(1, &[("live", QoS::AtLeastOnce)])).await;
    suback(&mut s).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut p = Raw::connect(&broker, protocol, "p").await;
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
    let (_c, present) = session(&broker, V5, &assigned, false).await;
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
    retained_messages(V5).await;
}

#[tokio::test]
async fn retained_messages_are_replaced_kept_and_removed_v311() {
    // MQTT-3.3.1-12: RETAIN 0 neither stores nor replaces; MQTT-3.3.1-10,
    // MQTT-3.3.1-11: an empty retained payload goes to subscribers, removes
    // the retained message and is not stored.
    retained_messages(V311).await;
}

async fn retained_messages(protocol: Protocol) {
    let broker = broker().await;
    let mut p = Raw::connect(&broker, protocol, "p").await;
    for (payload, retain) in [(&b"first"[..], true), (b"second", true), (b"live", false)] {
        let mut m = publish("r", payload, QoS::AtLeastOnce, 1);
        m.retain = retain;
        p.send(Packet::Publish(m)).await;
        p.recv().await;
    }
    let mut s = Raw::connect(&broker, protocol, "s").await;
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
    let mut late = Raw::connect(&broker, protocol, "late").await;
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
    subscribe_actions(V5).await;
}

#[tokio::test]
async fn subscribe_actions_v311() {
    // MQTT-3.8.4-1, MQTT-3.8.4-4, MQTT-3.8.4-5: one SUBACK, a return code
    // per filter (0x80 for the bad one); MQTT-3.8.4-3: the same filter
    // again replaces the subscription and resends the retained message.
    subscribe_actions(V311).await;
}

async fn subscribe_actions(protocol: Protocol) {
    let broker = broker().await;
    let mut p = Raw::connect(&broker, protocol, "p").await;
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
    unsubscribe_actions(V5).await;
}

#[tokio::test]
async fn unsubscribe_actions_v311() {
    // MQTT-3.10.4-1 (character by character), MQTT-3.10.4-2 (no new
    // messages), MQTT-3.10.4-3 (what was sent completes), MQTT-3.10.4-4
    // (UNSUBACK with the same identifier), MQTT-3.10.4-5 (UNSUBACK even when
    // nothing was removed), MQTT-3.10.4-6 (one UNSUBACK for several).
    unsubscribe_actions(V311).await;
}

async fn unsubscribe_actions(protocol: Protocol) {
    let broker = broker().await;
    let mut s = Raw::connect(&broker, protocol, "s").await;
    s.send(subscribe(1, &[("a/b", QoS::AtLeastOnce)])).await;
    suback(&mut s).await;
    let mut p = Raw::connect(&broker, protocol, "p").await;
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
    // 3.1.1's UNSUBACK carries no codes, only the identifier.
    let v5 = protocol == V5;
    s.send(unsubscribe(2, &["a/+"])).await;
    match s.recv().await {
        Some(Packet::UnsubAck(u)) if v5 => {
            assert_eq!(u.reason_codes, [ReasonCode::NO_SUBSCRIPTION_EXISTED])
        }
        Some(Packet::UnsubAck(u)) => assert_eq!(u.packet_id, id(2)),
        other => panic!("{other:?}"),
    }
    p.send(Packet::Publish(publish(
        "a/b",
        b"still",
        QoS::AtMostOnce,
        0,
    )))
    .await;
    let still = expect_publish(s.recv().await);
    assert_eq!(still.payload, b"still"[..], "a/b is still subscribed");
    s.send(unsubscribe(3, &["a/b", "never"])).await;
    match s.recv().await {
        Some(Packet::UnsubAck(u)) if v5 => assert_eq!(
            u.reason_codes,
            [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
        ),
        Some(Packet::UnsubAck(u)) => assert_eq!(u.packet_id, id(3)),
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
    in_order(V5).await;
}

#[tokio::test]
async fn one_publishers_messages_arrive_in_order_v311() {
    // MQTT-4.6.0-6: topics are ordered by default.
    in_order(V311).await;
}

async fn in_order(protocol: Protocol) {
    let broker = broker().await;
    let mut s = Raw::connect(&broker, protocol, "s").await;
    s.send(subscribe(1, &[("o/#", QoS::AtLeastOnce)])).await;
    suback(&mut s).await;
    let mut p = Raw::connect(&broker, protocol, "p").await;
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

async fn shared_member(broker: &pigeon_broker::Broker, client: &str, q: QoS, expiry: u32) -> Raw {
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
    let mut m = shared_member(&broker, "m", QoS::AtMostOnce, 0).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish("x", b"q2", QoS::ExactlyOnce, 1)))
        .await;
    assert_eq!(expect_publish(m.recv().await).qos, QoS::AtMostOnce);
}

#[tokio::test]
async fn a_refused_shared_message_is_not_offered_to_another_member_v5() {
    // MQTT-4.8.2-6: PUBACK 0x80 or above discards the message.
    let broker = broker().await;
    let mut a = shared_member(&broker, "a", QoS::AtLeastOnce, 0).await;
    let mut b = shared_member(&broker, "b", QoS::AtLeastOnce, 0).await;
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
    let mut a = shared_member(&broker, "a", QoS::ExactlyOnce, 1).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish("x", b"once", QoS::ExactlyOnce, 1)))
        .await;
    assert_eq!(expect_publish(a.recv().await).payload, b"once"[..]);
    drop(a); // its session ends a second later
    let mut b = shared_member(&broker, "b", QoS::ExactlyOnce, 0).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(b.recv_within(QUIET).await.is_none());
}

#[tokio::test]
async fn a_qos1_message_of_a_member_whose_session_ends_goes_to_another_v5() {
    // §4.8.2: "If the Client's Session terminates before the Client
    // reconnects, the Server SHOULD send the Application Message to another
    // Client that is subscribed to the same Shared Subscription" (QoS 1).
    let broker = broker().await;
    let mut a = shared_member(&broker, "a", QoS::AtLeastOnce, 1).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    p.send(Packet::Publish(publish("x", b"work", QoS::AtLeastOnce, 1)))
        .await;
    assert_eq!(expect_publish(a.recv().await).payload, b"work"[..]);
    drop(a); // unacknowledged; its session ends a second later
    let mut b = shared_member(&broker, "b", QoS::AtLeastOnce, 0).await;
    let got = b.recv_within(Duration::from_millis(3000)).await;
    assert_eq!(expect_publish(got).payload, b"work"[..]);
}

#[tokio::test]
async fn client_identifiers_v311() {
    // MQTT-3.1.3-5: 1 to 23 alphanumeric characters are accepted;
    // MQTT-3.1.3-9: a rejected id gets return code 2 and the connection
    // closes.
    let broker = broker_with(|c| c.limits.max_client_id_len = 30).await;
    let (_c, reply) = Raw::connect_with(
        &broker,
        connect_packet(V311, "abcdefghijklmnopqrstuvW", true),
    )
    .await;
    assert_eq!(connack(reply).reason_code, ReasonCode::SUCCESS);
    let long = "x".repeat(31);
    let (mut c, reply) = Raw::connect_with(&broker, connect_packet(V311, &long, true)).await;
    assert_eq!(
        connack(reply).reason_code,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    assert!(c.closed().await.is_empty());
}

#[tokio::test]
async fn a_second_connection_with_the_same_id_disconnects_the_first_v311() {
    // MQTT-3.1.4-2
    let broker = broker().await;
    let mut first = Raw::connect(&broker, V311, "twin").await;
    let mut second = Raw::connect(&broker, V311, "twin").await;
    let seen = first.closed().await;
    assert!(seen.is_empty(), "3.1.1 has no server DISCONNECT: {seen:?}");
    second.send(Packet::PingReq).await;
    assert_eq!(second.recv().await, Some(Packet::PingResp));
}

#[tokio::test]
async fn a_connect_no_return_code_fits_is_closed_without_connack_v311() {
    // MQTT-3.2.2-6: a CONNECT with the reserved flag set is malformed; no
    // return code applies, so the connection closes without CONNACK.
    let broker = broker().await;
    let mut raw = Raw::open(&broker, V311).await;
    raw.send_bytes(&[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x03, 0, 60, 0, 0])
        .await;
    assert!(raw.closed().await.is_empty());
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_at_the_highest_qos_v311() {
    // MQTT-3.3.5-1: one copy at the highest QoS of the matching
    // subscriptions; MQTT-3.3.2-3: its topic matches the filters.
    let broker = broker().await;
    let mut s = Raw::connect(&broker, V311, "s").await;
    s.send(subscribe(
        1,
        &[("a/+", QoS::AtMostOnce), ("a/#", QoS::ExactlyOnce)],
    ))
    .await;
    suback(&mut s).await;
    let mut p = Raw::connect(&broker, V311, "p").await;
    p.send(Packet::Publish(publish("a/b", b"x", QoS::ExactlyOnce, 1)))
        .await;
    let got = expect_publish(s.recv().await);
    assert_eq!((got.topic.as_str(), got.qos), ("a/b", QoS::ExactlyOnce));
    assert!(s.recv_within(QUIET).await.is_none(), "one copy");
}

#[tokio::test]
async fn an_unauthorised_publish_is_acknowledged_and_dropped_v311() {
    // MQTT-3.3.5-2: 3.1.1 cannot tell the client; the broker acknowledges
    // a publish to $SYS normally and delivers it to nobody.
    let broker = broker().await;
    let mut s = Raw::connect(&broker, V311, "s").await;
    s.send(subscribe(1, &[("$SYS/#", QoS::AtLeastOnce)])).await;
    suback(&mut s).await;
    let mut p = Raw::connect(&broker, V311, "p").await;
    p.send(Packet::Publish(publish(
        "$SYS/fake",
        b"x",
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    assert!(matches!(p.recv().await, Some(Packet::PubAck(a)) if a.packet_id == id(1)));
    assert!(s.recv_within(QUIET).await.is_none());
}

#[tokio::test]
async fn disconnect_discards_the_will_v311() {
    // MQTT-3.14.4-3
    let broker = broker().await;
    let mut w = Raw::connect(&broker, V311, "watcher").await;
    w.send(subscribe(1, &[("wills/#", QoS::AtLeastOnce)])).await;
    suback(&mut w).await;
    let mut c = connect_packet(V311, "polite", true);
    c.will = Some(pigeon_proto::codec::Will {
        topic: "wills/polite".try_into().unwrap(),
        payload: b"gone"[..].into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    let (mut c, _) = Raw::connect_with(&broker, c).await;
    c.send(Packet::Disconnect(Default::default())).await;
    c.closed().await;
    assert!(w.recv_within(QUIET).await.is_none());
}
