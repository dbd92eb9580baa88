//! The client's crash test: a publisher process using pigeon-client with a
//! session store (`Options::session_store`) and a persistent session sends
//! numbered QoS 1 and QoS 2 messages and is killed with SIGKILL at random
//! moments, twenty times, and started again on the same store. A
//! subscriber must end up with every message the publisher's application
//! handed over (`publish` returned), QoS 1 at least once and QoS 2 exactly
//! once. paho keeps this state in memory only: a killed paho publisher
//! loses what was unacknowledged.
//!
//! The publisher is this test binary run again (`child_publisher`, ignored
//! in normal runs); the broker (Pigeon, in-process) and the subscriber are
//! not killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pigeon_broker::{Broker, Config, Durability};
use pigeon_client::{AsyncClient, Event, Options, Protocol, QoS};

const CYCLES: u32 = 20;
const CHILD: &str = "PIGEON_CLIENT_CRASH_CHILD";

/// The publisher: `PIGEON_CLIENT_CRASH_CHILD=port,store,run` publishes
/// `run-n` for n = 1, 2, … to `crash/q1` (QoS 1) and `crash/q2` (QoS 2),
/// printing `handed run-n` once both are accepted, until it is killed.
/// With run 0 it publishes nothing and only resends what the store holds.
#[tokio::test]
#[ignore = "run by no_handed_over_message_is_lost_when_the_publisher_is_killed"]
async fn child_publisher() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.split(',');
    let port: u16 = parts.next().unwrap().parse().unwrap();
    let store = parts.next().unwrap().to_owned();
    let run: u64 = parts.next().unwrap().parse().unwrap();
    let options = Options::new("127.0.0.1", port)
        .client_id("crash-publisher")
        .protocol(Protocol::V5)
        .persistent(3600)
        .session_store(store);
    let (client, mut events) = AsyncClient::new(options);
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    if run == 0 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return;
    }
    let mut window = std::collections::VecDeque::new();
    for n in 1u64.. {
        let payload = format!("{run}-{n}");
        let q1 = client
            .start_publish("crash/q1", QoS::AtLeastOnce, false, payload.clone())
            .unwrap();
        let q2 = client
            .start_publish("crash/q2", QoS::ExactlyOnce, false, payload.clone())
            .unwrap();
        println!("handed {payload}");
        window.push_back(q1);
        window.push_back(q2);
        if window.len() > 40 {
            let _ = window.pop_front().unwrap().wait().await;
        }
    }
}

#[test]
fn no_handed_over_message_is_lost_when_the_publisher_is_killed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("publisher.session");
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sys_interval: 0,
        durability: Durability::Memory,
        ..Config::default()
    };
    let broker = runtime.block_on(Broker::start(config)).unwrap();
    let port = broker.local_addr().port();

    // The subscriber: persistent, QoS 2, never killed.
    let received: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let seen = received.clone();
    runtime.block_on(async {
        let options = Options::new("127.0.0.1", port)
            .client_id("crash-subscriber")
            .protocol(Protocol::V5)
            .persistent(3600);
        let (sub, mut events) = AsyncClient::new(options);
        assert!(matches!(events.recv().await, Some(Event::Connected { .. })));
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Event::Message(m) = event {
                    let payload = String::from_utf8_lossy(&m.payload).into_owned();
                    seen.lock()
                        .unwrap()
                        .entry(m.topic.as_str().to_owned())
                        .or_default()
                        .push(payload);
                }
            }
        });
        sub.subscribe("crash/#", QoS::ExactlyOnce).await.unwrap();
        std::mem::forget(sub); // lives until the runtime ends
    });

    let handed: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut random = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let started = Instant::now();
    for run in 1..=CYCLES {
        let mut child = spawn_child(port, &store, u64::from(run));
        let stdout = child.stdout.take().unwrap();
        let sink = handed.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(payload) = line.strip_prefix("handed ") {
                    sink.lock().unwrap().push(payload.to_owned());
                }
            }
        });
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        std::thread::sleep(Duration::from_millis(150 + random % 350));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
    }
    let handed = handed.lock().unwrap().clone();
    assert!(
        handed.len() > 100,
        "the publisher made progress: {} handed over",
        handed.len()
    );

    // One more start that only resends what the store holds.
    let mut drain = spawn_child(port, &store, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let got = received.lock().unwrap();
        let q1: HashSet<&String> = got
            .get("crash/q1")
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let q2: HashSet<&String> = got
            .get("crash/q2")
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let missing: Vec<&String> = handed
            .iter()
            .filter(|p| !q1.contains(p) || !q2.contains(p))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.len();
        }
        drop(got);
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = drain.kill();
    let _ = drain.wait();
    let got = received.lock().unwrap();
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for p in got.get("crash/q2").into_iter().flatten() {
        *counts.entry(p).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    println!(
        "client crash test: {CYCLES} kills in {:.1?}, {} messages handed over per topic, {} QoS 1 and {} QoS 2 received",
        started.elapsed(),
        handed.len(),
        got.get("crash/q1").map_or(0, Vec::len),
        got.get("crash/q2").map_or(0, Vec::len)
    );
    assert_eq!(missing, 0, "handed-over messages never delivered");
    assert!(
        twice.is_empty(),
        "QoS 2 messages delivered twice: {twice:?}"
    );
    drop(got);
    runtime.block_on(broker.shutdown());
}

fn spawn_child(port: u16, store: &std::path::Path, run: u64) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_publisher",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{port},{},{run}", store.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the publisher starts")
}
