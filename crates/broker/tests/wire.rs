//! The broker on 127.0.0.1:0, spoken to in raw packets: each test one
//! behaviour a client relies on, with the normative id it checks.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pigeon_proto::codec::{Ack, ConnAck, Disconnect, Will};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{Packet, PacketId, Protocol, QoS, ReasonCode};

const V311: Protocol = Protocol::V3_1_1;
const V5: Protocol = Protocol::V5;

fn connack(packet: Packet) -> ConnAck {
    match packet {
        Packet::ConnAck(c) => c,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

#[tokio::test]
async fn clean_connect_is_accepted_without_a_session_v311() {
    // MQTT-3.2.2-1 (3.1.1): clean session means Session Present 0.
    let broker = broker().await;
    let (_c, reply) = Raw::connect_with(&broker, connect_packet(V311, "a", true)).await;
    let c = connack(reply);
    assert_eq!(c.reason_code, ReasonCode::SUCCESS);
    assert!(!c.session_present);
}

#[tokio::test]
async fn first_packet_other_than_connect_closes_the_connection() {
    // MQTT-3.1.0-1
    let broker = broker().await;
    let mut raw = Raw::open(&broker, V311).await;
    raw.send(Packet::PingReq).await;
    assert!(raw.closed().await.is_empty());
}

#[tokio::test]
async fn unsupported_protocol_level_gets_return_code_1_v311() {
    // MQTT-3.1.2-2 (3.1.1)
    let broker = broker().await;
    let mut raw = Raw::open(&broker, V311).await;
    raw.send_bytes(&[0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', 3, 2, 0, 10])
        .await;
    raw.send_bytes(&[0, 0]).await;
    let seen = raw.closed().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        connack(seen[0].clone()).reason_code,
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
    );
}

#[tokio::test]
async fn empty_client_id_needs_clean_session_v311() {
    // MQTT-3.1.3-8 (3.1.1): CONNACK 0x02 Identifier rejected.
    let broker = broker().await;
    let (mut raw, reply) = Raw::connect_with(&broker, connect_packet(V311, "", false)).await;
    assert_eq!(
        connack(reply).reason_code,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    assert!(raw.closed().await.is_empty());
    let (_raw, reply) = Raw::connect_with(&broker, connect_packet(V311, "", true)).await;
    assert_eq!(connack(reply).reason_code, ReasonCode::SUCCESS);
}

#[tokio::test]
async fn empty_client_id_gets_an_assigned_identifier_v5() {
    // MQTT-3.2.2-16 (5.0): the Assigned Client Identifier is returned.
    let broker = broker().await;
    let (_raw, reply) = Raw::connect_with(&broker, connect_packet(V5, "", true)).await;
    let c = connack(reply);
    let assigned = c
        .properties
        .assigned_client_identifier
        .clone()
        .expect("assigned id");
    assert!(!assigned.is_empty());
}

#[tokio::test]
async fn messages_reach_subscribers_at_the_lower_of_the_two_qos() {
    // MQTT-3.8.4-6 (3.1.1) / §3.8.4 (5.0): delivery at the minimum of the
    // published and granted QoS.
    for protocol in [V311, V5] {
        let broker = broker().await;
        let mut sub = Raw::connect(&broker, protocol, "sub").await;
        sub.send(subscribe(1, &[("a/+", QoS::AtLeastOnce)])).await;
        let Some(Packet::SubAck(s)) = sub.recv().await else {
            panic!("SUBACK")
        };
        assert_eq!(s.reason_codes, [ReasonCode::GRANTED_QOS_1]);
        let mut publisher = Raw::connect(&broker, protocol, "pub").await;
        for (qos, n) in [
            (QoS::AtMostOnce, 0),
            (QoS::AtLeastOnce, 1),
            (QoS::ExactlyOnce, 2),
        ] {
            publisher
                .send(Packet::Publish(publish("a/b", b"m", qos, n)))
                .await;
            let got = expect_publish(sub.recv().await);
            assert_eq!(got.qos, qos.min(QoS::AtLeastOnce), "{protocol}");
            if let Some(pid) = got.packet_id {
                sub.send(Packet::PubAck(Ack::new(pid))).await;
            }
        }
    }
}

#[tokio::test]
async fn qos1_publish_is_acknowledged_and_qos2_completes_its_handshake() {
    // MQTT-4.3.2-2 (3.1.1), MQTT-4.3.3-2 (3.1.1)
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V311, "c").await;
    c.send(Packet::Publish(publish("t", b"1", QoS::AtLeastOnce, 5)))
        .await;
    assert_eq!(c.recv().await, Some(Packet::PubAck(Ack::new(id(5)))));
    c.send(Packet::Publish(publish("t", b"2", QoS::ExactlyOnce, 6)))
        .await;
    assert_eq!(c.recv().await, Some(Packet::PubRec(Ack::new(id(6)))));
    c.send(Packet::PubRel(Ack::new(id(6)))).await;
    assert_eq!(c.recv().await, Some(Packet::PubComp(Ack::new(id(6)))));
}

#[tokio::test]
async fn qos2_retransmitted_by_the_publisher_is_delivered_once() {
    // MQTT-4.3.3-2 (v311): a QoS 2 message is delivered onward once.
    let broker = broker().await;
    let mut sub = Raw::connect(&broker, V311, "sub").await;
    sub.send(subscribe(1, &[("t", QoS::ExactlyOnce)])).await;
    sub.recv().await;
    let mut p = Raw::connect(&broker, V311, "pub").await;
    let mut message = publish("t", b"once", QoS::ExactlyOnce, 9);
    p.send(Packet::Publish(message.clone())).await;
    assert!(matches!(p.recv().await, Some(Packet::PubRec(_))));
    message.dup = true;
    p.send(Packet::Publish(message)).await;
    assert!(matches!(p.recv().await, Some(Packet::PubRec(_))));
    let first = expect_publish(sub.recv().await);
    assert_eq!(&first.payload[..], b"once");
    assert_eq!(
        sub.recv_within(Duration::from_millis(300)).await,
        None,
        "no second copy"
    );
}

#[tokio::test]
async fn retained_message_is_sent_on_subscribe_and_removed_by_an_empty_one() {
    // MQTT-3.3.1-5, MQTT-3.3.1-6, MQTT-3.3.1-7 (3.1.1)
    let broker = broker().await;
    let mut p = Raw::connect(&broker, V311, "pub").await;
    let mut retained = publish("status/door", b"open", QoS::AtLeastOnce, 1);
    retained.retain = true;
    p.send(Packet::Publish(retained)).await;
    p.recv().await;
    let mut s = Raw::connect(&broker, V311, "s1").await;
    s.send(subscribe(1, &[("status/#", QoS::AtLeastOnce)]))
        .await;
    s.recv().await;
    let got = expect_publish(s.recv().await);
    assert!(
        got.retain,
        "MQTT-3.3.1-8 (3.1.1): RETAIN set for a new subscription"
    );
    assert_eq!(&got.payload[..], b"open");
    s.send(Packet::PubAck(Ack::new(got.packet_id.unwrap())))
        .await;

    let mut clear = publish("status/door", b"", QoS::AtMostOnce, 0);
    clear.retain = true;
    p.send(Packet::Publish(clear)).await;
    // The live subscriber gets the empty message with RETAIN cleared
    // (MQTT-3.3.1-9 in 3.1.1).
    let live = expect_publish(s.recv().await);
    assert!(!live.retain && live.payload.is_empty());
    let mut late = Raw::connect(&broker, V311, "s2").await;
    late.send(subscribe(1, &[("status/#", QoS::AtLeastOnce)]))
        .await;
    late.recv().await;
    assert_eq!(
        late.recv_within(Duration::from_millis(300)).await,
        None,
        "nothing retained"
    );
}

#[tokio::test]
async fn wildcard_subscriptions_do_not_receive_dollar_topics() {
    // MQTT-4.7.2-1; catalogue S11.
    let broker = broker().await;
    let mut s = Raw::connect(&broker, V311, "s").await;
    s.send(subscribe(
        1,
        &[("#", QoS::AtMostOnce), ("$app/#", QoS::AtMostOnce)],
    ))
    .await;
    s.recv().await;
    let mut p = Raw::connect(&broker, V311, "p").await;
    p.send(Packet::Publish(publish("$app/x", b"d", QoS::AtMostOnce, 0)))
        .await;
    p.send(Packet::Publish(publish("plain", b"p", QoS::AtMostOnce, 0)))
        .await;
    let a = expect_publish(s.recv().await);
    let b = expect_publish(s.recv().await);
    let topics = [a.topic.as_str().to_owned(), b.topic.as_str().to_owned()];
    assert!(topics.contains(&"$app/x".to_owned()) && topics.contains(&"plain".to_owned()));
    assert_eq!(
        s.recv_within(Duration::from_millis(300)).await,
        None,
        "each once"
    );
}

fn with_will(protocol: Protocol, id: &str) -> pigeon_proto::codec::Connect {
    let mut c = connect_packet(protocol, id, true);
    c.will = Some(Will {
        topic: TopicName::try_from("clients/gone").unwrap(),
        payload: b"bye"[..].into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    c
}

#[tokio::test]
async fn will_is_published_when_the_connection_drops_and_not_after_disconnect() {
    // MQTT-3.1.2-8 (3.1.1): published on an unclean close; MQTT-3.1.2-10
    // (3.1.1): removed on DISCONNECT.
    let broker = broker().await;
    let mut watcher = Raw::connect(&broker, V311, "w").await;
    watcher
        .send(subscribe(1, &[("clients/#", QoS::AtLeastOnce)]))
        .await;
    watcher.recv().await;

    let (polite, _) = Raw::connect_with(&broker, with_will(V311, "polite")).await;
    let mut polite = polite;
    polite.send(Packet::Disconnect(Disconnect::default())).await;
    polite.closed().await;
    let (rude, _) = Raw::connect_with(&broker, with_will(V311, "rude")).await;
    drop(rude);
    let will = expect_publish(watcher.recv().await);
    assert_eq!(&will.payload[..], b"bye");
    watcher
        .send(Packet::PubAck(Ack::new(will.packet_id.unwrap())))
        .await;
    assert_eq!(
        watcher.recv_within(Duration::from_millis(300)).await,
        None,
        "one will only"
    );
}

#[tokio::test]
async fn disconnect_with_will_message_publishes_the_will_v5() {
    // MQTT-3.14.4-3 (5.0): reason 0x04 asks for the will.
    let broker = broker().await;
    let mut watcher = Raw::connect(&broker, V5, "w").await;
    watcher
        .send(subscribe(1, &[("clients/#", QoS::AtMostOnce)]))
        .await;
    watcher.recv().await;
    let (mut c, _) = Raw::connect_with(&broker, with_will(V5, "c")).await;
    c.send(Packet::Disconnect(Disconnect::new(
        ReasonCode::DISCONNECT_WITH_WILL,
    )))
    .await;
    let will = expect_publish(watcher.recv().await);
    assert_eq!(&will.payload[..], b"bye");
}

#[tokio::test]
async fn second_connection_with_the_same_id_takes_the_session_over_v5() {
    // MQTT-3.1.4-3: the old connection gets DISCONNECT 0x8E and is closed.
    let broker = broker().await;
    let mut first = Raw::connect(&broker, V5, "same").await;
    let _second = Raw::connect(&broker, V5, "same").await;
    let seen = first.closed().await;
    assert!(
        matches!(seen.as_slice(), [Packet::Disconnect(d)] if d.reason_code == ReasonCode::SESSION_TAKEN_OVER),
        "{seen:?}"
    );
}

#[tokio::test]
async fn persistent_session_keeps_subscriptions_and_queues_messages_while_offline() {
    // MQTT-3.2.2-2 (3.1.1): Session Present 1; MQTT-4.4.0-1: resumed.
    let broker = broker().await;
    let (mut s, _) = Raw::connect_with(&broker, connect_packet(V311, "keeper", false)).await;
    s.send(subscribe(1, &[("jobs/#", QoS::AtLeastOnce)])).await;
    s.recv().await;
    s.send(Packet::Disconnect(Disconnect::default())).await;
    s.closed().await;

    let mut p = Raw::connect(&broker, V311, "p").await;
    for n in 1..=3u16 {
        p.send(Packet::Publish(publish(
            "jobs/x",
            &[n as u8],
            QoS::AtLeastOnce,
            n,
        )))
        .await;
        p.recv().await;
    }
    let (mut s, reply) = Raw::connect_with(&broker, connect_packet(V311, "keeper", false)).await;
    assert!(connack(reply).session_present);
    let payloads: Vec<u8> = [(); 3].iter().map(|_| 0).collect();
    let mut got = Vec::new();
    for _ in payloads {
        let m = expect_publish(s.recv().await);
        s.send(Packet::PubAck(Ack::new(m.packet_id.unwrap()))).await;
        got.push(m.payload[0]);
    }
    assert_eq!(got, [1, 2, 3], "in order (MQTT-4.6.0-5 in 3.1.1)");
}

#[tokio::test]
async fn unacknowledged_message_is_resent_with_dup_after_reconnect() {
    // MQTT-4.4.0-1 (3.1.1), MQTT-3.3.1-1: DUP set on the resend.
    let broker = broker().await;
    let (mut s, _) = Raw::connect_with(&broker, connect_packet(V311, "slow", false)).await;
    s.send(subscribe(1, &[("t", QoS::AtLeastOnce)])).await;
    s.recv().await;
    let mut p = Raw::connect(&broker, V311, "p").await;
    p.send(Packet::Publish(publish("t", b"x", QoS::AtLeastOnce, 1)))
        .await;
    let first = expect_publish(s.recv().await);
    assert!(!first.dup);
    drop(s); // no PUBACK
    let (mut s, reply) = Raw::connect_with(&broker, connect_packet(V311, "slow", false)).await;
    assert!(connack(reply).session_present);
    let again = expect_publish(s.recv().await);
    assert!(again.dup);
    assert_eq!(again.packet_id, first.packet_id);
}

#[tokio::test]
async fn invalid_filter_gets_a_failure_code_and_the_others_are_granted() {
    // MQTT-3.9.3-1 (3.1.1): one code per filter, in order; 0x80 failure.
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V311, "c").await;
    c.send(subscribe(
        3,
        &[
            ("ok/+", QoS::AtLeastOnce),
            ("bad/#/x", QoS::AtLeastOnce),
            ("ok2", QoS::ExactlyOnce),
        ],
    ))
    .await;
    let Some(Packet::SubAck(s)) = c.recv().await else {
        panic!("SUBACK")
    };
    assert_eq!(s.packet_id, id(3));
    assert_eq!(s.reason_codes[0], ReasonCode::GRANTED_QOS_1);
    assert!(s.reason_codes[1].is_error());
    assert_eq!(s.reason_codes[2], ReasonCode::GRANTED_QOS_2);
}

#[tokio::test]
async fn unsubscribe_of_an_unknown_filter_reports_no_subscription_existed_v5() {
    // MQTT-3.10.4-5 (5.0)
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    c.send(subscribe(1, &[("a", QoS::AtMostOnce)])).await;
    c.recv().await;
    c.send(Packet::Unsubscribe(pigeon_proto::codec::Unsubscribe {
        packet_id: id(2),
        properties: Default::default(),
        filters: vec!["a".try_into().unwrap(), "b".try_into().unwrap()],
    }))
    .await;
    let Some(Packet::UnsubAck(u)) = c.recv().await else {
        panic!("UNSUBACK")
    };
    assert_eq!(
        u.reason_codes,
        [ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
    );
}

#[tokio::test]
async fn malformed_packet_closes_only_that_connection() {
    // MQTT-4.8.0-1 (3.1.1); catalogue F1: other clients keep working.
    let broker = broker().await;
    let mut good = Raw::connect(&broker, V311, "good").await;
    let mut bad = Raw::connect(&broker, V311, "bad").await;
    bad.send_bytes(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).await;
    assert!(bad.closed().await.is_empty());
    good.send(Packet::PingReq).await;
    assert_eq!(good.recv().await, Some(Packet::PingResp));
}

#[tokio::test]
async fn packet_over_the_maximum_size_is_refused_with_0x95_v5() {
    // §3.2.2.3.6; catalogue F3/P13: refused from the header alone.
    let broker = broker_with(|c| c.limits.max_packet_size = 1024).await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    c.send_bytes(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]).await;
    let seen = c.closed().await;
    assert!(
        matches!(seen.as_slice(), [Packet::Disconnect(d)] if d.reason_code == ReasonCode::PACKET_TOO_LARGE)
    );
}

#[tokio::test(start_paused = true)]
async fn silent_client_is_closed_after_one_and_a_half_keep_alives() {
    // MQTT-3.1.2-24 (3.1.1)
    let broker = broker().await;
    let mut connect = connect_packet(V311, "quiet", true);
    connect.keep_alive = 2;
    let (mut c, _) = Raw::connect_with(&broker, connect).await;
    let start = tokio::time::Instant::now();
    assert!(c.closed().await.is_empty());
    assert!(start.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn shutdown_tells_v5_clients_server_shutting_down() {
    let broker = broker().await;
    let mut c = Raw::connect(&broker, V5, "c").await;
    let stop = tokio::spawn(broker.shutdown());
    let seen = c.closed().await;
    assert!(
        matches!(seen.as_slice(), [Packet::Disconnect(d)] if d.reason_code == ReasonCode::SERVER_SHUTTING_DOWN)
    );
    stop.await.unwrap();
}

#[tokio::test]
async fn clean_session_leaves_nothing_behind() {
    let broker = broker().await;
    for n in 0..20 {
        let mut c = Raw::connect(&broker, V311, &format!("c{n}")).await;
        c.send(subscribe(1, &[("x/#", QoS::AtLeastOnce)])).await;
        c.recv().await;
        if n % 2 == 0 {
            c.send(Packet::Disconnect(Disconnect::default())).await;
        }
        drop(c);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while (broker.session_count() > 0 || broker.connected_clients() > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(broker.session_count(), 0);
    assert_eq!(broker.subscription_count(), 0);
}

#[tokio::test]
async fn large_payloads_arrive_intact_at_every_subscriber() {
    // The payload is written from the shared message, not copied: check
    // every byte at every subscriber, at QoS 0 and 1.
    let broker = broker().await;
    let mut subs = Vec::new();
    for n in 0..3 {
        let mut s = Raw::connect(&broker, V311, &format!("s{n}")).await;
        s.send(subscribe(1, &[("big", QoS::AtLeastOnce)])).await;
        s.recv().await;
        subs.push(s);
    }
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut p = Raw::connect(&broker, V311, "p").await;
    p.send(Packet::Publish(publish(
        "big",
        &payload,
        QoS::AtMostOnce,
        0,
    )))
    .await;
    p.send(Packet::Publish(publish(
        "big",
        &payload,
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    for s in &mut subs {
        for _ in 0..2 {
            let got = expect_publish(s.recv().await);
            assert_eq!(&got.payload[..], &payload[..]);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn session_ends_when_its_expiry_interval_has_passed_v5() {
    // MQTT-3.1.2-23 (5.0): the session is kept for the Session Expiry Interval.
    let broker = broker().await;
    let mut connect = connect_packet(V5, "brief", true);
    connect.properties.session_expiry_interval = Some(30);
    let (mut c, _) = Raw::connect_with(&broker, connect).await;
    c.send(subscribe(1, &[("t", QoS::AtLeastOnce)])).await;
    c.recv().await;
    drop(c);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(broker.session_count(), 1, "kept while within the interval");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(broker.session_count(), 0, "gone after it");
    assert_eq!(broker.subscription_count(), 0);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let broker = broker_with(|c| c.limits.max_connections = 2).await;
    let _a = Raw::connect(&broker, V311, "a").await;
    let _b = Raw::connect(&broker, V311, "b").await;
    let mut c = Raw::open(&broker, V311).await;
    c.send(Packet::Connect(Box::new(connect_packet(V311, "c", true))))
        .await;
    assert!(c.closed().await.is_empty());
}

#[tokio::test]
async fn anonymous_clients_are_refused_when_not_allowed() {
    // MQTT-3.1.4-2 (v5): authentication checks; CONNACK 0x87 / return code 5.
    let broker = broker_with(|c| c.allow_anonymous = Some(false)).await;
    let (_c, reply) = Raw::connect_with(&broker, connect_packet(V5, "anon", true)).await;
    assert_eq!(connack(reply).reason_code, ReasonCode::NOT_AUTHORIZED);
    let mut named = connect_packet(V311, "named", true);
    named.username = Some("alice".try_into().unwrap());
    let (_c, reply) = Raw::connect_with(&broker, named).await;
    assert_eq!(connack(reply).reason_code, ReasonCode::SUCCESS);
}

#[derive(Debug)]
struct OnlyAlice;

impl pigeon_broker::auth::Authenticator for OnlyAlice {
    fn authenticate(
        &self,
        c: &pigeon_broker::auth::Credentials<'_>,
    ) -> Result<(), pigeon_broker::auth::Refusal> {
        match (c.username, c.password) {
            (Some("alice"), Some(b"secret")) => Ok(()),
            _ => Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD.into()),
        }
    }
}

#[tokio::test]
async fn credentials_go_through_the_authentication_hook() {
    // MQTT-3.1.4-2 (v5): authentication through the hook.
    // MQTT-3.2.2-5 (v311): a non-zero return code, then the connection closes.
    let config = pigeon_broker::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        sys_interval: 0,
        ..Default::default()
    };
    let store = Box::new(pigeon_broker::store::MemoryStore);
    let broker = pigeon_broker::Broker::start_with(config, store, Box::new(OnlyAlice))
        .await
        .unwrap();
    let mut wrong = connect_packet(V311, "c1", true);
    wrong.username = Some("alice".try_into().unwrap());
    wrong.password = Some(b"guess"[..].into());
    let (mut c, reply) = Raw::connect_with(&broker, wrong).await;
    assert_eq!(
        connack(reply).reason_code,
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    assert!(c.closed().await.is_empty());
    let mut right = connect_packet(V311, "c2", true);
    right.username = Some("alice".try_into().unwrap());
    right.password = Some(b"secret"[..].into());
    let (_c, reply) = Raw::connect_with(&broker, right).await;
    assert_eq!(connack(reply).reason_code, ReasonCode::SUCCESS);
}

/// An authentication backend that hangs for bob and panics for carol.
#[derive(Debug)]
struct Broken;

impl pigeon_broker::auth::Authenticator for Broken {
    fn authenticate(
        &self,
        c: &pigeon_broker::auth::Credentials<'_>,
    ) -> Result<(), pigeon_broker::auth::Refusal> {
        match c.username {
            Some("bob") => std::thread::sleep(Duration::from_secs(2)),
            Some("carol") => panic!("the backend returned garbage"),
            _ => {}
        }
        Ok(())
    }

    fn blocking(&self, _: &pigeon_broker::auth::Credentials<'_>) -> bool {
        true
    }
}

#[tokio::test]
async fn an_authentication_backend_that_hangs_or_fails_refuses_the_client() {
    // Catalogue AU8: fail closed, with 0x88 Server unavailable, in time.
    let mut config = pigeon_broker::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        sys_interval: 0,
        ..Default::default()
    };
    config.limits.auth_timeout_ms = 300;
    config.limits.auth_failure_delay_ms = 0;
    let store = Box::new(pigeon_broker::store::MemoryStore);
    let broker = pigeon_broker::Broker::start_with(config, store, Box::new(Broken))
        .await
        .unwrap();
    for user in ["bob", "carol"] {
        let mut c = connect_packet(V5, user, true);
        c.username = Some(user.try_into().unwrap());
        let started = std::time::Instant::now();
        let (mut c, reply) = Raw::connect_with(&broker, c).await;
        assert_eq!(
            connack(reply).reason_code,
            ReasonCode::SERVER_UNAVAILABLE,
            "{user}"
        );
        assert!(started.elapsed() < Duration::from_millis(1500), "{user}");
        assert!(c.closed().await.is_empty());
    }
    let mut alice = connect_packet(V5, "alice", true);
    alice.username = Some("alice".try_into().unwrap());
    let (_c, reply) = Raw::connect_with(&broker, alice).await;
    assert_eq!(connack(reply).reason_code, ReasonCode::SUCCESS);
}

#[tokio::test]
async fn sys_topics_carry_mosquittos_names() {
    let broker = broker_with(|c| c.sys_interval = 1).await;
    let mut c = Raw::connect(&broker, V311, "dash").await;
    c.send(subscribe(1, &[("$SYS/broker/#", QoS::AtMostOnce)]))
        .await;
    c.recv().await;
    let mut topics = std::collections::BTreeMap::new();
    // They are published every second; collect for a little over one round.
    let end = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(Packet::Publish(p))) = tokio::time::timeout_at(end, c.recv()).await {
        let payload = String::from_utf8_lossy(&p.payload).into_owned();
        topics.insert(p.topic.as_str().to_owned(), payload);
    }
    for name in [
        "version",
        "uptime",
        "clients/connected",
        "clients/total",
        "messages/received",
        "bytes/sent",
        "subscriptions/count",
        "retained messages/count",
        "load/messages/received/1min",
        "load/bytes/sent/15min",
    ] {
        assert!(
            topics.contains_key(&format!("$SYS/broker/{name}")),
            "missing {name}: {topics:?}"
        );
    }
    assert!(topics["$SYS/broker/version"].starts_with("pigeon "));
}
