//! pigeon-client against a Pigeon broker started in-process on a free
//! loopback port, and against Debian's mosquitto broker started by the test
//! (skipped with a message when `/usr/sbin/mosquitto` is missing; CI
//! installs it).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pigeon_broker::{Broker, Config, Durability};
use pigeon_client::{AsyncClient, Client, ClientError, Event, Options, Protocol, QoS, ReasonCode};

mod common;
use common::*;

#[tokio::test]
async fn publish_and_subscribe_at_each_qos_in_each_version() {
    let broker = broker().await;
    for protocol in [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5] {
        let (sub, mut sub_events) = AsyncClient::new(options(&broker, "sub", protocol));
        connected(&mut sub_events).await;
        assert_eq!(
            sub.subscribe("t/#", QoS::ExactlyOnce).await.unwrap(),
            [ReasonCode::GRANTED_QOS_2]
        );
        let (publisher, mut pub_events) = AsyncClient::new(options(&broker, "pub", protocol));
        connected(&mut pub_events).await;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let code = publisher
                .publish("t/x", qos, false, format!("{qos:?}"))
                .await
                .unwrap();
            assert!(!code.is_error(), "{protocol:?} {qos:?}: {code:?}");
            let m = message(&mut sub_events).await;
            assert_eq!(
                (m.qos, &m.payload[..]),
                (qos, format!("{qos:?}").as_bytes()),
                "{protocol:?}"
            );
        }
        sub.disconnect().await.unwrap();
        publisher.disconnect().await.unwrap();
    }
}

#[tokio::test]
async fn a_publish_waits_for_the_brokers_answer_and_carries_its_code() {
    // v5: a publish the broker refuses resolves with its reason code.
    let broker = broker().await;
    let (c, mut events) = AsyncClient::new(options(&broker, "p", Protocol::V5));
    connected(&mut events).await;
    let code = c
        .publish("$SYS/mine", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(code, ReasonCode::NOT_AUTHORIZED);
    let code = c
        .publish("nobody/listens", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(code, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert!(matches!(
        c.publish("bad/+", QoS::AtLeastOnce, false, "x").await,
        Err(ClientError::InvalidTopic(_))
    ));
}

#[tokio::test]
async fn reconnects_and_resumes_a_persistent_session_without_duplicates() {
    // The broker goes away and comes back on the same port; the client
    // reconnects by itself, its session resumes, and messages published
    // while it was away arrive once.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let start = |dir: std::path::PathBuf| async move {
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            sys_interval: 0,
            durability: Durability::Sync,
            data_dir: dir,
            ..Config::default()
        };
        Broker::start(config).await.unwrap()
    };
    let broker = start(dir.path().to_path_buf()).await;
    let o = Options::new("127.0.0.1", port)
        .client_id("keeper")
        .protocol(Protocol::V5)
        .persistent(3600);
    let (sub, mut events) = AsyncClient::new(o);
    assert!(!connected(&mut events).await);
    sub.subscribe("keep", QoS::ExactlyOnce).await.unwrap();
    broker.shutdown().await;
    match next(&mut events).await {
        Event::Disconnected { reconnecting, .. } => assert!(reconnecting),
        other => panic!("{other:?}"),
    }
    let broker = start(dir.path().to_path_buf()).await;
    // Published by another client before ours is back.
    let other = Options::new("127.0.0.1", port).client_id("other");
    let (p, mut p_events) = AsyncClient::new(other);
    connected(&mut p_events).await;
    p.publish("keep", QoS::ExactlyOnce, false, "while away")
        .await
        .unwrap();
    loop {
        match next(&mut events).await {
            Event::Connected {
                session_present, ..
            } => {
                assert!(session_present);
                break;
            }
            Event::ConnectFailed(_) => continue,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(message(&mut events).await.payload, "while away");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), events.recv())
            .await
            .is_err(),
        "once"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn messages_published_while_disconnected_go_out_on_connection() {
    let port = free_port();
    let o = Options::new("127.0.0.1", port).client_id("early");
    let (c, mut events) = AsyncClient::new(o);
    assert!(matches!(
        next(&mut events).await,
        Event::ConnectFailed(ClientError::Unreachable { .. })
    ));
    let pending = c
        .start_publish("late/news", QoS::AtLeastOnce, false, "queued")
        .unwrap();
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        sys_interval: 0,
        durability: Durability::Memory,
        ..Config::default()
    };
    let broker = Broker::start(config).await.unwrap();
    let (watch, mut watch_events) = AsyncClient::new(options(&broker, "watch", Protocol::V3_1_1));
    connected(&mut watch_events).await;
    watch.subscribe("late/#", QoS::AtLeastOnce).await.unwrap();
    // The client's backoff is short at first; the queued message follows
    // its connection.
    let code = tokio::time::timeout(Duration::from_secs(10), pending.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, ReasonCode::SUCCESS);
    assert_eq!(message(&mut watch_events).await.payload, "queued");
}

#[test]
fn blocking_client_with_paho_callbacks() {
    // paho's quick start: subscribe in on_connect, on_message collects,
    // loop_start, publish from the main thread and from inside a callback
    // (no deadlock), wait_for_publish, disconnect.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime.block_on(broker());
    let addr = broker.local_addr();
    let client = Client::new("paho-style", Protocol::V3_1_1);
    let got = Arc::new(Mutex::new(Vec::new()));
    let subscribed = Arc::new(AtomicUsize::new(0));
    let s = subscribed.clone();
    client.on_connect(move |c, flags, code, _| {
        assert!(!flags.session_present);
        assert_eq!(code, ReasonCode::SUCCESS);
        c.subscribe("paho/#", QoS::AtLeastOnce).unwrap();
    });
    client.on_subscribe(move |_, _, codes| {
        assert_eq!(codes, [ReasonCode::GRANTED_QOS_1]);
        s.fetch_add(1, Ordering::SeqCst);
    });
    let g = got.clone();
    client.on_message(move |c, m| {
        g.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&m.payload).into_owned());
        if &m.payload[..] == b"ping" {
            // Publishing from a callback must not deadlock.
            c.publish("paho/reply", "pong", QoS::AtLeastOnce, false);
        }
    });
    client
        .connect(&addr.ip().to_string(), addr.port(), 30)
        .unwrap();
    client.loop_start();
    let deadline = std::time::Instant::now() + WAIT;
    while subscribed.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "on_subscribe");
        std::thread::sleep(Duration::from_millis(10));
    }
    let info = client.publish("paho/ping", "ping", QoS::AtLeastOnce, false);
    assert_eq!(info.wait_for_publish(WAIT), Some(Ok(ReasonCode::SUCCESS)));
    assert!(info.is_published());
    while got.lock().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline + WAIT,
            "messages: {:?}",
            got.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*got.lock().unwrap(), ["ping", "pong"]);
    client.disconnect().unwrap();
    client.loop_stop();
    runtime.block_on(broker.shutdown());
}

#[test]
fn publish_from_many_threads_at_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime.block_on(broker());
    let addr = broker.local_addr();
    let (host, port) = (addr.ip().to_string(), addr.port());
    let counter = Client::new("counter", Protocol::V5);
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    counter.on_message(move |_, _| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    counter.connect(&host, port, 30).unwrap();
    counter.subscribe("many/#", QoS::AtLeastOnce).unwrap();
    counter.loop_start();
    std::thread::sleep(Duration::from_millis(200));
    let client = Client::new("many", Protocol::V5);
    client.connect(&host, port, 30).unwrap();
    client.loop_start();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|n| {
                        client.publish(
                            &format!("many/{t}"),
                            format!("{n}"),
                            QoS::AtLeastOnce,
                            false,
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for info in t.join().unwrap() {
            assert_eq!(info.wait_for_publish(WAIT), Some(Ok(ReasonCode::SUCCESS)));
        }
    }
    let deadline = std::time::Instant::now() + WAIT;
    while count.load(Ordering::SeqCst) < 800 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            count.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    client.disconnect().unwrap();
    counter.disconnect().unwrap();
    runtime.block_on(broker.shutdown());
}

#[test]
fn publish_single_and_subscribe_simple_against_mosquitto() {
    // Our client against Debian's mosquitto broker, started here.
    let Some(mosquitto) = Mosquitto::start() else {
        eprintln!("skipped: /usr/sbin/mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let port = mosquitto.port;
    pigeon_client::publish_single(
        "simple/t",
        "retained hello",
        QoS::AtLeastOnce,
        true,
        "127.0.0.1",
        port,
    )
    .unwrap();
    let got = pigeon_client::subscribe_simple("simple/#", QoS::AtLeastOnce, 1, "127.0.0.1", port)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].topic.as_str(), &got[0].payload[..]),
        ("simple/t", &b"retained hello"[..])
    );
    assert!(got[0].retain);
}

#[tokio::test]
async fn qos2_and_v5_against_mosquitto() {
    let Some(mosquitto) = Mosquitto::start() else {
        eprintln!("skipped: /usr/sbin/mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let o = |id: &str| {
        Options::new("127.0.0.1", mosquitto.port)
            .client_id(id)
            .protocol(Protocol::V5)
    };
    let (sub, mut events) = AsyncClient::new(o("m-sub"));
    connected(&mut events).await;
    assert_eq!(
        sub.subscribe("m/#", QoS::ExactlyOnce).await.unwrap(),
        [ReasonCode::GRANTED_QOS_2]
    );
    let (p, mut p_events) = AsyncClient::new(o("m-pub"));
    connected(&mut p_events).await;
    for n in 0..20 {
        p.publish("m/q2", QoS::ExactlyOnce, false, format!("{n}"))
            .await
            .unwrap();
    }
    for n in 0..20 {
        let m = message(&mut events).await;
        assert_eq!(
            (m.qos, m.payload.clone()),
            (QoS::ExactlyOnce, format!("{n}").into())
        );
    }
}

#[tokio::test]
async fn manual_acks_leave_a_message_unacknowledged_until_the_application_acks() {
    // With Options::manual_acks, a message the application has not acked is
    // sent again when the session resumes; once acked, it is not.
    let broker = broker().await;
    let o = || {
        options(&broker, "manual", Protocol::V5)
            .persistent(600)
            .manual_acks(true)
            .reconnect(None)
    };
    let (sub, mut events) = AsyncClient::new(o());
    connected(&mut events).await;
    sub.subscribe("work", QoS::AtLeastOnce).await.unwrap();
    let (p, mut p_events) = AsyncClient::new(options(&broker, "boss", Protocol::V5));
    connected(&mut p_events).await;
    p.publish("work", QoS::AtLeastOnce, false, "job")
        .await
        .unwrap();
    let first = message(&mut events).await;
    assert!(!first.dup);
    drop(sub); // gone without acknowledging
    drop(events);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (sub, mut events) = AsyncClient::new(o());
    assert!(connected(&mut events).await, "session present");
    let again = message(&mut events).await;
    assert!(again.dup, "sent again: it was never acknowledged");
    sub.ack(&again).unwrap();
    sub.disconnect().await.unwrap();
    let (_sub, mut events) = AsyncClient::new(o());
    assert!(connected(&mut events).await);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), events.recv())
            .await
            .is_err(),
        "acknowledged: not sent a third time"
    );
}

#[test]
fn paho_setters_and_subscription_options() {
    // username_pw_set against a broker that refuses anonymous clients;
    // subscribe_with a v5 Subscription Identifier, which comes back with
    // the message.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sys_interval: 0,
        durability: Durability::Memory,
        allow_anonymous: Some(false),
        ..Config::default()
    };
    let broker = runtime.block_on(Broker::start(config)).unwrap();
    let (host, port) = (
        broker.local_addr().ip().to_string(),
        broker.local_addr().port(),
    );
    let anonymous = Client::new("anon", Protocol::V5);
    assert_eq!(
        anonymous.connect(&host, port, 30),
        Err(ClientError::Refused(ReasonCode::NOT_AUTHORIZED))
    );
    let client = Client::new("named", Protocol::V5);
    client.username_pw_set("alice", Some("secret"));
    client.reconnect_delay_set(1, 5);
    client.max_inflight_messages_set(10);
    let (tx, rx) = std::sync::mpsc::channel();
    client.on_message(move |_, m| {
        let _ = tx.send(m.properties.subscription_identifiers.clone());
    });
    client.connect(&host, port, 30).unwrap();
    client.loop_start();
    let mut props = pigeon_client::proto::properties::Properties::default();
    props.subscription_identifiers = vec![42];
    let options = pigeon_client::proto::codec::SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..Default::default()
    };
    client.subscribe_with(&[("ids/#", options)], props).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let info = client.publish("ids/1", "x", QoS::AtLeastOnce, false);
    assert_eq!(info.wait_for_publish(WAIT), Some(Ok(ReasonCode::SUCCESS)));
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), [42]);
    client.disconnect().unwrap();
    client.loop_stop();
    runtime.block_on(broker.shutdown());
}

#[tokio::test]
async fn a_blocking_client_may_be_dropped_inside_async_code() {
    // Its runtime shuts down in the background instead of panicking.
    let broker = broker().await;
    let addr = broker.local_addr();
    let client = Client::new("dropped", Protocol::V3_1_1);
    client.connect_async(&addr.ip().to_string(), addr.port(), 30);
    drop(client);
}

#[test]
fn an_unacknowledged_stored_message_comes_again_after_a_restart() {
    // With a session store, a message the application did not acknowledge
    // is kept in the store's inbox and delivered again to the next process
    // (before it has even connected), marked redelivered, with the same
    // delivery number; one it acknowledged is not. The broker is not asked
    // again: it was answered when the message was stored.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime.block_on(broker());
    let addr = broker.local_addr();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("inbox.session");
    let stored = |manual| {
        Options::new(addr.ip().to_string(), addr.port())
            .client_id("inbox")
            .protocol(Protocol::V5)
            .persistent(3600)
            .manual_acks(manual)
            .session_store(&store)
    };
    let (publisher, _pub_events) = runtime.block_on(async {
        let (sub, mut events) = AsyncClient::new(stored(true));
        assert!(!connected(&mut events).await);
        sub.subscribe("inbox/#", QoS::ExactlyOnce).await.unwrap();
        let (publisher, mut pub_events) = AsyncClient::new(options(&broker, "p", Protocol::V5));
        connected(&mut pub_events).await;
        publisher
            .publish("inbox/a", QoS::AtLeastOnce, false, "one")
            .await
            .unwrap();
        publisher
            .publish("inbox/b", QoS::ExactlyOnce, false, "two")
            .await
            .unwrap();
        let one = message(&mut events).await;
        let two = message(&mut events).await;
        assert_eq!(
            (&one.payload[..], one.delivery, one.redelivered),
            (&b"one"[..], Some(1), false)
        );
        assert_eq!((&two.payload[..], two.delivery), (&b"two"[..], Some(2)));
        sub.ack(&one).unwrap();
        sub.disconnect().await.unwrap();
        (publisher, pub_events)
    });

    // The next process: a blocking client acknowledging automatically
    // (when on_message returns), logging packets as paho's on_log does.
    let client = Client::with_options(stored(false));
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (g, l) = (got.clone(), log.clone());
    client.on_message(move |_, m| {
        let payload = String::from_utf8_lossy(&m.payload).into_owned();
        g.lock().unwrap().push((payload, m.delivery, m.redelivered));
    });
    client.on_log(move |_, line| l.lock().unwrap().push(line.to_owned()));
    client
        .connect(&addr.ip().to_string(), addr.port(), 30)
        .unwrap();
    client.loop_start();
    runtime
        .block_on(publisher.publish("inbox/c", QoS::AtLeastOnce, false, "three"))
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while got.lock().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            got.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *got.lock().unwrap(),
        [
            ("two".to_owned(), Some(2), true),
            ("three".to_owned(), Some(3), false)
        ]
    );
    client.disconnect().unwrap();
    client.loop_stop();
    let log = log.lock().unwrap().clone();
    for expected in [
        "Sending CONNECT",
        "Received CONNACK (0)",
        "Received PUBLISH (d0, q1, r0, m",
        "Sending PUBACK (m",
    ] {
        assert!(
            log.iter().any(|line| line.starts_with(expected)),
            "no {expected:?} in {log:#?}"
        );
    }
    // The first process answered PUBREC when it stored "two": the broker
    // does not send it again (its PUBREL may come here, or may have been
    // answered before the first process disconnected).
    assert!(
        !log.iter().any(|line| line.contains("'inbox/b'")),
        "the broker sent \"two\" again: {log:#?}"
    );
    drop(client);

    // A third start finds the inbox empty: every message was acknowledged.
    runtime.block_on(async {
        let (again, mut events) = AsyncClient::new(stored(false));
        assert!(connected(&mut events).await, "the session was kept");
        let quiet = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
        assert!(
            !matches!(quiet, Ok(Some(Event::Message(_)))),
            "delivered again: {quiet:?}"
        );
        again.disconnect().await.unwrap();
    });
    runtime.block_on(broker.shutdown());
}
