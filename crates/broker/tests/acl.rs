//! The ACL file (mosquitto's syntax) on the wire: publishing needs write
//! (v5 PUBACK 0x87; 3.1.1 acknowledged and dropped, or the connection
//! closed when configured), subscribing needs a read rule covering the
//! filter (0x87 / 0x80), every delivery needs read (retained ones too),
//! a will needs write at CONNECT, `%c`/`%u` patterns, `$SYS` only where a
//! rule names it, rules reloaded (a broken file keeps the old ones), and
//! the identity a session was stored with survives a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use pigeon_broker::{Broker, Config, Durability};
use pigeon_proto::codec::{ConnAck, Connect, SubAck, Will};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{Packet, Protocol, QoS, ReasonCode};

const V5: Protocol = Protocol::V5;
const V311: Protocol = Protocol::V3_1_1;

const RULES: &str = "\
# anonymous clients
topic read public/#
topic write public/anon

user alice
topic readwrite alice/#
topic deny alice/secret

user bob
topic read alice/#

user root
topic readwrite #

user sys
topic read $SYS/#

pattern readwrite devices/%c/#
pattern read inbox/%u
";

fn write_rules(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("acl");
    std::fs::write(&path, text).unwrap();
    path
}

/// A memory broker's configuration with `RULES` as its ACL file (returned
/// too, to be rewritten before a reload).
fn acl_config(dir: &Path) -> (Config, PathBuf) {
    let acl = write_rules(dir, RULES);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        sys_interval: 0,
        durability: Durability::Memory,
        acl_file: acl.clone(),
        ..Config::default()
    };
    (config, acl)
}

async fn acl_broker(dir: &Path, change: impl FnOnce(&mut Config)) -> Broker {
    let acl = write_rules(dir, RULES);
    broker_with(|c| {
        c.acl_file = acl;
        change(c);
    })
    .await
}

fn as_user(protocol: Protocol, id: &str, user: Option<&str>) -> Connect {
    let mut c = connect_packet(protocol, id, true);
    c.username = user.map(|u| u.try_into().unwrap());
    c
}

async fn connect_as(broker: &Broker, protocol: Protocol, id: &str, user: Option<&str>) -> Raw {
    let (raw, connack) = Raw::connect_with(broker, as_user(protocol, id, user)).await;
    assert!(
        matches!(connack, Packet::ConnAck(ref c) if !c.reason_code.is_error()),
        "{connack:?}"
    );
    raw
}

/// Subscribes and returns the SUBACK's codes.
async fn subscribe_codes(c: &mut Raw, id: u16, filters: &[&str]) -> Vec<ReasonCode> {
    let filters: Vec<(&str, QoS)> = filters.iter().map(|f| (*f, QoS::AtLeastOnce)).collect();
    c.send(subscribe(id, &filters)).await;
    match c.recv().await {
        Some(Packet::SubAck(SubAck { reason_codes, .. })) => reason_codes,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Publishes at QoS 1 and returns the PUBACK's code.
async fn publish_code(c: &mut Raw, topic: &str, id: u16) -> ReasonCode {
    c.send(Packet::Publish(publish(topic, b"m", QoS::AtLeastOnce, id)))
        .await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => a.reason_code,
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

/// The topics of the PUBLISHes that arrive within a short wait, acknowledged.
async fn received(c: &mut Raw) -> Vec<String> {
    let mut topics = Vec::new();
    while let Some(packet) = c.recv_within(Duration::from_millis(300)).await {
        if let Packet::Publish(p) = packet {
            if let Some(id) = p.packet_id {
                c.send(Packet::PubAck(pigeon_proto::codec::Ack::new(id)))
                    .await;
            }
            topics.push(p.topic.as_str().to_owned());
        }
    }
    topics
}

#[tokio::test]
async fn publishing_needs_write_v5_gets_0x87_and_3_1_1_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path(), |_| {}).await;
    let mut bob = connect_as(&broker, V5, "bob", Some("bob")).await;
    assert_eq!(
        subscribe_codes(&mut bob, 1, &["alice/#"]).await,
        [ReasonCode::GRANTED_QOS_1]
    );
    let mut alice = connect_as(&broker, V5, "alice", Some("alice")).await;
    assert!(!publish_code(&mut alice, "alice/x", 1).await.is_error());
    // MQTT-3.1.4-2 (5.0) authorisation; a deny rule wins over readwrite.
    assert_eq!(
        publish_code(&mut alice, "alice/secret", 2).await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        publish_code(&mut alice, "bob/x", 3).await,
        ReasonCode::NOT_AUTHORIZED
    );
    // MQTT-3.3.5-2 (3.1.1): a positive acknowledgement, and the message
    // goes nowhere.
    let mut anon = connect_as(&broker, V311, "anon", None).await;
    assert_eq!(
        publish_code(&mut anon, "alice/y", 4).await,
        ReasonCode::SUCCESS
    );
    assert_eq!(received(&mut bob).await, ["alice/x"]);
    // Anonymous clients have their own section.
    assert_eq!(
        subscribe_codes(&mut anon, 5, &["public/#"]).await,
        [ReasonCode::GRANTED_QOS_1]
    );
    assert!(!publish_code(&mut anon, "public/anon", 6).await.is_error());
    assert_eq!(received(&mut anon).await, ["public/anon"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_3_1_1_denied_publish_can_close_the_connection_instead() {
    // MQTT-3.3.5-2 (3.1.1): "or close the Network Connection".
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path(), |c| {
        c.v3_denied_publish = pigeon_broker::config::DeniedPublish::Disconnect;
    })
    .await;
    let mut anon = connect_as(&broker, V311, "anon", None).await;
    anon.send(Packet::Publish(publish(
        "alice/y",
        b"m",
        QoS::AtLeastOnce,
        1,
    )))
    .await;
    assert!(anon.closed().await.is_empty(), "closed without a PUBACK");
    broker.shutdown().await;
}

#[tokio::test]
async fn subscribing_needs_a_read_rule_covering_the_whole_filter() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path(), |_| {}).await;
    // MQTT-3.9.3-2 (3.1.1): failure is 0x80.
    let mut anon = connect_as(&broker, V311, "anon", None).await;
    assert_eq!(
        subscribe_codes(&mut anon, 1, &["public/#", "public/+/x", "alice/#", "#"]).await,
        [
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::UNSPECIFIED_ERROR,
            ReasonCode::UNSPECIFIED_ERROR
        ]
    );
    let mut alice = connect_as(&broker, V5, "alice", Some("alice")).await;
    assert_eq!(
        subscribe_codes(
            &mut alice,
            2,
            &["alice/#", "alice/secret", "public/#", "$share/g/alice/+"]
        )
        .await,
        [
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::GRANTED_QOS_1
        ]
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn deliveries_and_retained_messages_need_read() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path(), |_| {}).await;
    let mut root = connect_as(&broker, V5, "root", Some("root")).await;
    // Retained before anyone subscribes (catalogue AU4).
    for (i, topic) in ["alice/secret", "alice/old"].iter().enumerate() {
        let mut p = publish(topic, b"r", QoS::AtLeastOnce, i as u16 + 1);
        p.retain = true;
        root.send(Packet::Publish(p)).await;
        assert!(matches!(root.recv().await, Some(Packet::PubAck(_))));
    }
    let mut alice = connect_as(&broker, V5, "alice", Some("alice")).await;
    assert_eq!(
        subscribe_codes(&mut alice, 1, &["alice/#"]).await,
        [ReasonCode::GRANTED_QOS_1]
    );
    assert_eq!(received(&mut alice).await, ["alice/old"]);
    // Live messages: the subscription is allowed, the denied topic is not
    // delivered through it.
    assert!(!publish_code(&mut root, "alice/secret", 3).await.is_error());
    assert!(!publish_code(&mut root, "alice/new", 4).await.is_error());
    assert_eq!(received(&mut alice).await, ["alice/new"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn patterns_give_each_client_its_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path(), |_| {}).await;
    let mut dev = connect_as(&broker, V5, "dev1", None).await;
    assert!(!publish_code(&mut dev, "devices/dev1/state", 1)
        .await
        .is_error());
    assert_eq!(
        publish_code(&mut dev, "devices/dev2/state", 2).await,
        ReasonCode::NOT_AUTHORIZED
    );
    let mut carol = connect_as(&broker, V5, "c", Some("carol")).await;
    assert_eq!(
        subscribe_codes(&mut carol, 1, &["inbox/carol", "inbox/alice", "inbox/+"]).await,
        [
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::NOT_AUTHORIZED
        ]
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_will_on_a_topic_the_client_may_not_write_is_refused_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path(), |_| {}).await;
    // 3.1.1 return code 5 reads back as 0x87.
    for protocol in [V5, V311] {
        let mut c = as_user(protocol, "w", Some("alice"));
        c.will = Some(Will {
            topic: TopicName::try_from("bob/will").unwrap(),
            payload: "gone".into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
        });
        let (mut raw, connack) = Raw::connect_with(&broker, c).await;
        // MQTT-3.1.4-2 (5.0): CONNACK refuses, then the connection closes.
        let Packet::ConnAck(ConnAck { reason_code, .. }) = connack else {
            panic!("{connack:?}")
        };
        assert_eq!(reason_code, ReasonCode::NOT_AUTHORIZED, "{protocol}");
        assert!(raw.closed().await.is_empty());
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn sys_is_readable_only_where_a_rule_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path(), |c| c.sys_interval = 1).await;
    // `topic readwrite #` does not cover $SYS (MQTT-4.7.2-1).
    let mut root = connect_as(&broker, V5, "root", Some("root")).await;
    assert_eq!(
        subscribe_codes(&mut root, 1, &["$SYS/#", "#"]).await,
        [ReasonCode::NOT_AUTHORIZED, ReasonCode::GRANTED_QOS_1]
    );
    let mut sys = connect_as(&broker, V5, "sys", Some("sys")).await;
    assert_eq!(
        subscribe_codes(&mut sys, 1, &["$SYS/broker/uptime"]).await,
        [ReasonCode::GRANTED_QOS_1]
    );
    let uptime = expect_publish(sys.recv().await);
    assert_eq!(uptime.topic.as_str(), "$SYS/broker/uptime");
    broker.shutdown().await;
}

#[tokio::test]
async fn reloaded_rules_apply_to_stored_subscriptions_and_a_broken_file_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, acl) = acl_config(dir.path());
    let broker = Broker::start(config.clone()).await.unwrap();
    let mut bob = connect_as(&broker, V5, "bob", Some("bob")).await;
    subscribe_codes(&mut bob, 1, &["alice/#"]).await;
    let mut root = connect_as(&broker, V5, "root", Some("root")).await;
    publish_code(&mut root, "alice/1", 1).await;
    assert_eq!(received(&mut bob).await, ["alice/1"]);

    // Catalogue AU6: a file that does not parse leaves the old rules.
    std::fs::write(&acl, "user bob\nallow everything\n").unwrap();
    let errors = broker.reload(&config);
    assert!(
        errors.iter().any(|e| e.contains("line 2")),
        "the error names the line: {errors:?}"
    );
    publish_code(&mut root, "alice/2", 2).await;
    assert_eq!(received(&mut bob).await, ["alice/2"]);

    // Catalogue AU3 (CVE-2021-34434): bob's read right is revoked; his
    // existing subscription stops delivering.
    std::fs::write(&acl, RULES.replace("user bob\ntopic read alice/#\n", "")).unwrap();
    assert!(broker.reload(&config).is_empty());
    publish_code(&mut root, "alice/3", 3).await;
    assert!(received(&mut bob).await.is_empty());

    // Catalogue AU2 (CVE-2018-12550): an empty file denies everything.
    std::fs::write(&acl, "").unwrap();
    config.acl_file = acl;
    assert!(broker.reload(&config).is_empty());
    assert_eq!(
        publish_code(&mut root, "a", 4).await,
        ReasonCode::NOT_AUTHORIZED
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn an_acl_file_that_does_not_parse_stops_the_start_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let acl = write_rules(dir.path(), "topic read a\n\ntopic read a/#/b\n");
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        durability: Durability::Memory,
        acl_file: acl,
        ..Config::default()
    };
    let e = Broker::start(config).await.unwrap_err().to_string();
    assert!(e.contains("acl_file") && e.contains("line 3"), "{e}");
}

#[tokio::test]
async fn a_stored_session_keeps_its_user_name_for_the_acl_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let acl = write_rules(dir.path(), RULES);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        sys_interval: 0,
        durability: Durability::Sync,
        data_dir: dir.path().join("data"),
        acl_file: acl,
        ..Config::default()
    };
    let broker = Broker::start(config.clone()).await.unwrap();
    let mut c = as_user(V5, "alice-phone", Some("alice"));
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(3600);
    let (mut alice, _) = Raw::connect_with(&broker, c.clone()).await;
    subscribe_codes(&mut alice, 1, &["alice/#"]).await;
    drop(alice);
    broker.shutdown().await;

    let broker = Broker::start(config).await.unwrap();
    let mut root = connect_as(&broker, V5, "root", Some("root")).await;
    for (i, topic) in ["alice/secret", "alice/x"].iter().enumerate() {
        publish_code(&mut root, topic, i as u16 + 1).await;
    }
    // Queued while alice was away, after the restart: the identity stored
    // with her session decided (a session without one gets nothing).
    let (mut alice, connack) = Raw::connect_with(&broker, c).await;
    assert!(matches!(connack, Packet::ConnAck(ref a) if a.session_present));
    assert_eq!(received(&mut alice).await, ["alice/x"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_users_client_id_cannot_be_taken_by_another_user() {
    // Catalogue AU9: bob (or an anonymous client) using alice's client id
    // neither takes her session over nor wipes it.
    let broker = broker().await;
    let mut c = as_user(V5, "alice-laptop", Some("alice"));
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(3600);
    let (mut alice, _) = Raw::connect_with(&broker, c.clone()).await;
    subscribe_codes(&mut alice, 1, &["alice/#"]).await;
    for user in [Some("bob"), None] {
        let (mut other, connack) =
            Raw::connect_with(&broker, as_user(V5, "alice-laptop", user)).await;
        let Packet::ConnAck(ConnAck { reason_code, .. }) = connack else {
            panic!("{connack:?}")
        };
        assert_eq!(reason_code, ReasonCode::NOT_AUTHORIZED, "{user:?}");
        assert!(other.closed().await.is_empty());
    }
    // alice was not disturbed, and may come back on another connection.
    alice.send(Packet::PingReq).await;
    assert_eq!(alice.recv().await, Some(Packet::PingResp));
    drop(alice);
    let (_, connack) = Raw::connect_with(&broker, c).await;
    assert!(matches!(connack, Packet::ConnAck(ref a) if a.session_present));
    broker.shutdown().await;
}

#[tokio::test]
async fn messages_queued_before_a_revocation_are_not_sent_after_it() {
    // Catalogue AU3 (CVE-2021-34434), offline then online: bob's right is
    // revoked while messages wait in his stored session.
    let dir = tempfile::tempdir().unwrap();
    let (config, acl) = acl_config(dir.path());
    let broker = Broker::start(config.clone()).await.unwrap();
    let mut c = as_user(V5, "bob-phone", Some("bob"));
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(3600);
    let (mut bob, _) = Raw::connect_with(&broker, c.clone()).await;
    subscribe_codes(&mut bob, 1, &["alice/#"]).await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut root = connect_as(&broker, V5, "root", Some("root")).await;
    publish_code(&mut root, "alice/queued", 1).await;
    std::fs::write(&acl, RULES.replace("user bob\ntopic read alice/#\n", "")).unwrap();
    assert!(broker.reload(&config).is_empty());
    let (mut bob, connack) = Raw::connect_with(&broker, c).await;
    assert!(matches!(connack, Packet::ConnAck(ref a) if a.session_present));
    assert!(
        received(&mut bob).await.is_empty(),
        "sent after the revocation"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_session_resumed_by_another_user_gets_only_what_that_user_may_read() {
    // With protect_client_ids off, carol may resume bob's session; what
    // was queued for bob is checked against carol's rights as it is sent.
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path(), |c| c.protect_client_ids = false).await;
    let mut c = as_user(V5, "shared-id", Some("bob"));
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(3600);
    let (mut bob, _) = Raw::connect_with(&broker, c.clone()).await;
    subscribe_codes(&mut bob, 1, &["alice/#"]).await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut root = connect_as(&broker, V5, "root", Some("root")).await;
    publish_code(&mut root, "alice/for-bob", 1).await;
    c.username = Some("carol".try_into().unwrap());
    let (mut carol, connack) = Raw::connect_with(&broker, c).await;
    assert!(matches!(connack, Packet::ConnAck(ref a) if a.session_present));
    assert!(
        received(&mut carol).await.is_empty(),
        "carol got bob's message"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_will_on_sys_is_refused_even_without_an_acl() {
    // Catalogue P5 for wills: a retained will must not plant a $SYS message.
    let broker = broker().await;
    let mut c = as_user(V5, "w", None);
    c.will = Some(Will {
        topic: TopicName::try_from("$SYS/broker/version").unwrap(),
        payload: "spoofed".into(),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: Default::default(),
    });
    let (_, connack) = Raw::connect_with(&broker, c).await;
    assert!(
        matches!(connack, Packet::ConnAck(ref a) if a.reason_code == ReasonCode::NOT_AUTHORIZED),
        "{connack:?}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_reload_with_other_listeners_changes_nothing() {
    // Per-listener files are matched by position: a changed list would
    // give one listener another's rules.
    let dir = tempfile::tempdir().unwrap();
    let (config, acl) = acl_config(dir.path());
    let broker = Broker::start(config.clone()).await.unwrap();
    std::fs::write(&acl, "").unwrap();
    let mut changed = config.clone();
    changed
        .listeners
        .push(pigeon_broker::config::ListenerConfig::default_websocket());
    let errors = broker.reload(&changed);
    assert!(
        errors.len() == 1 && errors[0].contains("restart"),
        "{errors:?}"
    );
    // The old rules still apply (the empty file would deny everything).
    let mut alice = connect_as(&broker, V5, "alice", Some("alice")).await;
    assert!(!publish_code(&mut alice, "alice/x", 1).await.is_error());
    broker.shutdown().await;
}
