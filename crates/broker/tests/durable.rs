//! The durable store seen from the wire: a broker on a data directory is
//! stopped and another is started on the same directory; what was
//! acknowledged comes back. (`tests/crash/` does the same with SIGKILL and
//! paho-mqtt; these tests pin down each kind of state.)
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use pigeon_broker::{Broker, Config, Durability};
use pigeon_proto::codec::{Ack, ConnAck, Connect};
use pigeon_proto::{Packet, PacketId, Protocol, QoS};

const V311: Protocol = Protocol::V3_1_1;
const V5: Protocol = Protocol::V5;

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// A broker in `sync` mode on `dir`.
async fn durable_broker(dir: &Path) -> Broker {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        sys_interval: 0,
        durability: Durability::Sync,
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    Broker::start(config).await.unwrap()
}

/// Stops `broker` and starts another on the same directory.
async fn restart(broker: Broker, dir: &Path) -> Broker {
    broker.shutdown().await;
    durable_broker(dir).await
}

fn persistent(protocol: Protocol, client: &str) -> Connect {
    let mut c = connect_packet(protocol, client, false);
    if protocol == V5 {
        c.properties.session_expiry_interval = Some(3600);
    }
    c
}

/// Connects with a persistent session; returns the client and whether the
/// broker had its session.
async fn resume(broker: &Broker, protocol: Protocol, client: &str) -> (Raw, bool) {
    let (raw, reply) = Raw::connect_with(broker, persistent(protocol, client)).await;
    let Packet::ConnAck(ConnAck {
        session_present,
        reason_code,
        ..
    }) = reply
    else {
        panic!("expected CONNACK, got {reply:?}");
    };
    assert!(!reason_code.is_error(), "{reason_code:?}");
    (raw, session_present)
}

async fn publish_acked(c: &mut Raw, topic: &str, payload: &[u8], qos: QoS, packet_id: u16) {
    c.send(Packet::Publish(publish(topic, payload, qos, packet_id)))
        .await;
    match (qos, c.recv().await) {
        (QoS::AtLeastOnce, Some(Packet::PubAck(a))) if a.packet_id == id(packet_id) => {}
        (QoS::ExactlyOnce, Some(Packet::PubRec(a))) if a.packet_id == id(packet_id) => {
            c.send(Packet::PubRel(Ack::new(id(packet_id)))).await;
            assert!(matches!(c.recv().await, Some(Packet::PubComp(_))));
        }
        (_, other) => panic!("no acknowledgement for {packet_id}: {other:?}"),
    }
}

#[tokio::test]
async fn subscriptions_queued_messages_and_retained_messages_survive_a_restart() {
    // MQTT-3.1.2-4 (3.1.1): the session is resumed from the state kept.
    // MQTT-3.1.2-5 (3.1.1): QoS 1/2 messages for a disconnected session are kept.
    // MQTT-4.1.0-1 (3.1.1): session state is kept for the whole session.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let (mut sub, present) = resume(&broker, V311, "sub").await;
    assert!(!present);
    sub.send(subscribe(1, &[("t/#", QoS::AtLeastOnce)])).await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    drop(sub);
    let mut publisher = Raw::connect(&broker, V311, "pub").await;
    for n in 1..=3u8 {
        publish_acked(&mut publisher, "t/x", &[n], QoS::AtLeastOnce, n.into()).await;
    }
    let mut retained = publish("r", b"keep", QoS::AtLeastOnce, 9);
    retained.retain = true;
    publisher.send(Packet::Publish(retained)).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    drop(publisher);

    let broker = restart(broker, dir.path()).await;
    let (mut sub, present) = resume(&broker, V311, "sub").await;
    assert!(present, "the session was lost");
    for n in 1..=3u8 {
        let p = expect_publish(sub.recv().await);
        assert_eq!((p.topic.as_str(), &p.payload[..]), ("t/x", &[n][..]));
        sub.send(Packet::PubAck(Ack::new(p.packet_id.unwrap())))
            .await;
    }
    // The subscription itself came back: new messages still arrive.
    let mut publisher = Raw::connect(&broker, V311, "pub").await;
    publish_acked(&mut publisher, "t/y", b"new", QoS::AtLeastOnce, 1).await;
    assert_eq!(expect_publish(sub.recv().await).payload, &b"new"[..]);
    let mut reader = Raw::connect(&broker, V311, "reader").await;
    reader.send(subscribe(1, &[("r", QoS::AtLeastOnce)])).await;
    assert!(matches!(reader.recv().await, Some(Packet::SubAck(_))));
    let r = expect_publish(reader.recv().await);
    assert!(r.retain);
    assert_eq!(r.payload, &b"keep"[..]);
    broker.shutdown().await;
}

#[tokio::test]
async fn acknowledged_messages_are_not_sent_again_after_a_restart() {
    // MQTT-4.3.2-1 (5.0): once PUBACK arrives the message is gone.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let (mut sub, _) = resume(&broker, V5, "sub").await;
    sub.send(subscribe(1, &[("t", QoS::AtLeastOnce)])).await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    let mut publisher = Raw::connect(&broker, V5, "pub").await;
    publish_acked(&mut publisher, "t", b"one", QoS::AtLeastOnce, 1).await;
    let p = expect_publish(sub.recv().await);
    sub.send(Packet::PubAck(Ack::new(p.packet_id.unwrap())))
        .await;
    // A round trip, so the PUBACK has been handled before the restart.
    sub.send(Packet::PingReq).await;
    assert_eq!(sub.recv().await, Some(Packet::PingResp));
    drop(sub);

    let broker = restart(broker, dir.path()).await;
    let (mut sub, present) = resume(&broker, V5, "sub").await;
    assert!(present);
    assert_eq!(sub.recv_within(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_qos2_message_resumes_where_its_exchange_was() {
    // MQTT-4.4.0-1 (5.0): unacknowledged PUBLISH and PUBREL are sent again
    // with their original packet identifiers, across a restart too.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let (mut sub, _) = resume(&broker, V5, "sub").await;
    sub.send(subscribe(1, &[("t", QoS::ExactlyOnce)])).await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    let mut publisher = Raw::connect(&broker, V5, "pub").await;
    publish_acked(&mut publisher, "t", b"once", QoS::ExactlyOnce, 1).await;
    let first = expect_publish(sub.recv().await);
    let packet_id = first.packet_id.unwrap();
    drop(sub); // no PUBREC yet

    let broker = restart(broker, dir.path()).await;
    let (mut sub, present) = resume(&broker, V5, "sub").await;
    assert!(present);
    let again = expect_publish(sub.recv().await);
    assert_eq!((again.packet_id, again.dup), (Some(packet_id), true));
    assert_eq!(again.payload, &b"once"[..]);
    sub.send(Packet::PubRec(Ack::new(packet_id))).await;
    assert_eq!(sub.recv().await, Some(Packet::PubRel(Ack::new(packet_id))));
    drop(sub); // no PUBCOMP yet

    let broker = restart(broker, dir.path()).await;
    let (mut sub, _) = resume(&broker, V5, "sub").await;
    // The PUBREL, never the message a second time.
    assert_eq!(sub.recv().await, Some(Packet::PubRel(Ack::new(packet_id))));
    sub.send(Packet::PubComp(Ack::new(packet_id))).await;
    sub.send(Packet::PingReq).await;
    assert_eq!(sub.recv().await, Some(Packet::PingResp));
    drop(sub);

    let broker = restart(broker, dir.path()).await;
    let (mut sub, _) = resume(&broker, V5, "sub").await;
    assert_eq!(sub.recv_within(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_qos2_publish_sent_again_after_a_restart_is_not_delivered_twice() {
    // MQTT-4.3.3-2 (3.1.1): until PUBREL, a PUBLISH with the same
    // identifier is acknowledged with PUBREC and not delivered onward again.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let (mut sub, _) = resume(&broker, V311, "sub").await;
    sub.send(subscribe(1, &[("t", QoS::ExactlyOnce)])).await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    let (mut publisher, _) = resume(&broker, V311, "pub").await;
    publisher
        .send(Packet::Publish(publish("t", b"x", QoS::ExactlyOnce, 7)))
        .await;
    assert_eq!(
        publisher.recv().await,
        Some(Packet::PubRec(Ack::new(id(7))))
    );
    drop(publisher); // PUBREL not sent yet

    let broker = restart(broker, dir.path()).await;
    let (mut publisher, present) = resume(&broker, V311, "pub").await;
    assert!(present);
    let mut dup = publish("t", b"x", QoS::ExactlyOnce, 7);
    dup.dup = true;
    publisher.send(Packet::Publish(dup)).await;
    assert_eq!(
        publisher.recv().await,
        Some(Packet::PubRec(Ack::new(id(7))))
    );
    publisher.send(Packet::PubRel(Ack::new(id(7)))).await;
    assert_eq!(
        publisher.recv().await,
        Some(Packet::PubComp(Ack::new(id(7))))
    );

    let (mut sub, _) = resume(&broker, V311, "sub").await;
    let p = expect_publish(sub.recv().await);
    assert_eq!(p.payload, &b"x"[..]);
    sub.send(Packet::PubRec(Ack::new(p.packet_id.unwrap())))
        .await;
    assert!(matches!(sub.recv().await, Some(Packet::PubRel(_))));
    sub.send(Packet::PubComp(Ack::new(p.packet_id.unwrap())))
        .await;
    assert_eq!(sub.recv_within(Duration::from_millis(300)).await, None);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_session_that_expired_while_the_broker_was_down_is_gone() {
    // MQTT-4.1.0-2 (5.0): the session is discarded once its expiry passed.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let mut short = connect_packet(V5, "short", false);
    short.properties.session_expiry_interval = Some(1);
    let (c, _) = Raw::connect_with(&broker, short.clone()).await;
    drop(c);
    let (c, _) = resume(&broker, V5, "long").await;
    drop(c);
    broker.shutdown().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let broker = durable_broker(dir.path()).await;
    let (_c, reply) = Raw::connect_with(&broker, short).await;
    assert!(matches!(
        reply,
        Packet::ConnAck(ConnAck {
            session_present: false,
            ..
        })
    ));
    let (_c, present) = resume(&broker, V5, "long").await;
    assert!(present);
    broker.shutdown().await;
}

#[tokio::test]
async fn clean_sessions_are_not_kept() {
    // MQTT-3.1.2-6 (3.1.1): a clean session lasts as long as the connection.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let mut c = Raw::connect(&broker, V311, "clean").await;
    c.send(subscribe(1, &[("t", QoS::AtLeastOnce)])).await;
    assert!(matches!(c.recv().await, Some(Packet::SubAck(_))));
    drop(c);
    let broker = restart(broker, dir.path()).await;
    let (_c, present) = resume(&broker, V311, "clean").await;
    assert!(!present);
    broker.shutdown().await;
}

#[tokio::test]
async fn messages_queued_for_an_absent_client_leave_memory_and_come_back_from_disk() {
    // MQTT-3.1.2-5 (3.1.1): stored for the disconnected session, here on
    // disk only, and delivered when it returns.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let (mut sub, _) = resume(&broker, V311, "away").await;
    sub.send(subscribe(1, &[("t", QoS::ExactlyOnce)])).await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    drop(sub);
    let mut publisher = Raw::connect(&broker, V311, "pub").await;
    publish_acked(&mut publisher, "t", b"one", QoS::AtLeastOnce, 1).await;
    publish_acked(&mut publisher, "t", b"two", QoS::ExactlyOnce, 2).await;
    // Housekeeping lets bodies go once a second.
    let spilled = async {
        while broker.spilled_messages() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), spilled)
        .await
        .expect("the queued messages stayed in memory");
    let (mut sub, present) = resume(&broker, V311, "away").await;
    assert!(present);
    let one = expect_publish(sub.recv().await);
    assert_eq!((&one.payload[..], one.qos), (&b"one"[..], QoS::AtLeastOnce));
    let two = expect_publish(sub.recv().await);
    assert_eq!((&two.payload[..], two.qos), (&b"two"[..], QoS::ExactlyOnce));
    broker.shutdown().await;
}

#[test]
fn a_data_directory_in_use_is_refused_with_one_clear_line() {
    use pigeon_broker::store::{DurableStore, Mode, OpenError};
    let dir = tempfile::tempdir().unwrap();
    let _first = DurableStore::open(dir.path(), Mode::Sync, 1 << 20).unwrap();
    let second = DurableStore::open(dir.path(), Mode::Sync, 1 << 20).unwrap_err();
    assert!(matches!(second, OpenError::InUse { .. }), "{second:?}");
    let line = second.to_string();
    assert!(
        line.contains("--data-dir") && !line.contains('\n'),
        "{line}"
    );
}

#[tokio::test]
async fn message_expiry_holds_across_a_restart_v5() {
    // MQTT-3.3.2-5 / -6 (5.0): a queued message's deadline is stored with
    // it: the broker being down does not stop its clock.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let (mut s, _) = resume(&broker, V5, "s").await;
    s.send(subscribe(1, &[("x/#", QoS::AtLeastOnce)])).await;
    s.recv().await;
    drop(s);
    let mut p = Raw::connect(&broker, V5, "p").await;
    for (n, (topic, secs)) in [("x/short", 1), ("x/long", 100)].into_iter().enumerate() {
        let mut m = publish(topic, b"m", QoS::AtLeastOnce, n as u16 + 1);
        m.properties.message_expiry_interval = Some(secs);
        p.send(Packet::Publish(m)).await;
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
    drop(p);
    let broker = restart(broker, dir.path()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut s, present) = resume(&broker, V5, "s").await;
    assert!(present);
    let got = expect_publish(s.recv().await);
    assert_eq!(got.topic.as_str(), "x/long");
    let left = got.properties.message_expiry_interval.unwrap();
    assert!((97..=99).contains(&left), "{left}");
    assert!(s.recv_within(Duration::from_millis(300)).await.is_none());
    broker.shutdown().await;
}

#[tokio::test]
async fn a_will_waiting_out_its_delay_survives_a_restart_v5() {
    // MQTT-3.1.2-7, MQTT-3.1.2-8 (5.0): the will is stored with the session,
    // and one waiting out its delay is part of what survives a restart.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let mut connect = persistent(V5, "w");
    let mut will = pigeon_proto::codec::Will {
        topic: pigeon_proto::topic::TopicName::try_from("wills/w").unwrap(),
        payload: b"gone"[..].into(),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Default::default(),
    };
    will.properties.will_delay_interval = Some(2);
    connect.will = Some(will);
    let (c, _) = Raw::connect_with(&broker, connect).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let broker = restart(broker, dir.path()).await;
    let mut watcher = Raw::connect(&broker, V5, "watcher").await;
    watcher
        .send(subscribe(1, &[("wills/#", QoS::AtLeastOnce)]))
        .await;
    watcher.recv().await;
    let got = expect_publish(watcher.recv().await);
    assert_eq!(got.topic.as_str(), "wills/w");
    assert_eq!(got.payload, b"gone"[..]);
    drop(watcher);
    // Published once: a second restart does not send it again.
    let broker = restart(broker, dir.path()).await;
    let mut watcher = Raw::connect(&broker, V5, "watcher2").await;
    watcher
        .send(subscribe(1, &[("wills/#", QoS::AtLeastOnce)]))
        .await;
    watcher.recv().await;
    // Retained, so exactly one copy comes, flagged as retained.
    assert!(expect_publish(watcher.recv().await).retain);
    assert!(watcher
        .recv_within(Duration::from_millis(2500))
        .await
        .is_none());
    broker.shutdown().await;
}

#[tokio::test]
async fn a_shared_subscription_survives_a_restart_v5() {
    // §4.8.2 with a persistent member: its group membership is session
    // state, kept like any subscription.
    let dir = tempfile::tempdir().unwrap();
    let broker = durable_broker(dir.path()).await;
    let (mut m, _) = resume(&broker, V5, "member").await;
    m.send(subscribe(1, &[("$share/g/jobs", QoS::AtLeastOnce)]))
        .await;
    assert!(matches!(m.recv().await, Some(Packet::SubAck(_))));
    drop(m);
    let broker = restart(broker, dir.path()).await;
    let mut p = Raw::connect(&broker, V5, "p").await;
    publish_acked(&mut p, "jobs", b"after", QoS::AtLeastOnce, 1).await;
    let (mut m, present) = resume(&broker, V5, "member").await;
    assert!(present);
    assert_eq!(expect_publish(m.recv().await).payload, b"after"[..]);
    broker.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_store_is_readable_by_the_brokers_user_only() {
    // Catalogue AU11: stored messages and wills are nobody else's business.
    // (Also: a shutdown right after the start, before any task has run.)
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new-data-dir");
    let broker = durable_broker(&data).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "a directory the broker made");
    let files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    broker.shutdown().await;
}
