//! The crash test with Pigeon's own MQTT state machine as the client (the
//! `pigeon_proto::flow` that `pigeon-client` drives): the `pigeon` binary
//! runs as a child process in sync mode; a QoS 1 and a QoS 2 publisher send
//! numbered messages to two persistent subscribers (subscribed once, never
//! again) while the broker is killed with SIGKILL twenty times at random
//! moments and restarted on the same data directory. Afterwards every QoS 1
//! message the broker acknowledged (PUBACK) must have arrived at least once,
//! every acknowledged QoS 2 message (PUBCOMP) exactly once, no QoS 2
//! message twice, and no reconnection may have found its session gone.
//! `tests/crash/crash_test.py` runs the same check with paho-mqtt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pigeon_proto::codec::{Connect, Publish, Subscribe, SubscribeFilter, SubscriptionOptions};
use pigeon_proto::flow::{Config, Connection, Event, SessionState};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, Protocol, QoS, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CYCLES: usize = 20;
const WINDOW: usize = 32;
/// A publisher stays at most this far ahead of its subscriber, well inside
/// the broker's queue limit (1,000), which this test must not overflow.
const MAX_AHEAD: u64 = 500;

/// The broker as a child process on one port and one data directory.
struct Broker {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Broker {
    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_pigeon"))
            .args(["broker", "-p", &self.port.to_string(), "--data-dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pigeon broker starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the clients saw, for the checks.
#[derive(Default)]
struct Seen {
    acked: BTreeMap<QoS, BTreeSet<u64>>,
    received: BTreeMap<QoS, HashMap<u64, u32>>,
    sessions_lost: Vec<String>,
}

struct Shared {
    addr: SocketAddr,
    seen: Mutex<Seen>,
    stop: AtomicBool,
    /// Highest number each subscriber has received, by QoS.
    highest: [AtomicU64; 3],
}

fn number(publish: &Publish) -> u64 {
    std::str::from_utf8(&publish.payload)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("numbered payload")
}

/// What a client does on its connections.
trait Role: Send {
    /// Sees every event; may act on the flow.
    fn on_event(&mut self, conn: &mut Connection, event: Event);
    /// Runs before each write.
    fn fill(&mut self, _conn: &mut Connection) {}
    /// Nothing left to do: the connection may end.
    fn finished(&self) -> bool {
        false
    }
}

/// One connection's life: CONNECT with the kept session state, then packets
/// in and out until the connection ends.
async fn run_connection(
    shared: &Shared,
    client_id: &str,
    session: SessionState,
    role: &mut dyn Role,
) -> SessionState {
    let mut connect = Connect::new(Protocol::V5, client_id.try_into().unwrap());
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(3600);
    let mut conn = Connection::client(Instant::now(), Config::default(), connect, session);
    let Ok(mut stream) = TcpStream::connect(shared.addr).await else {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return conn.into_session();
    };
    let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
    loop {
        role.fill(&mut conn);
        while let Some(packet) = conn.poll_transmit(Instant::now()) {
            packet.encode(Protocol::V5, &mut out).unwrap();
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            break;
        }
        out.clear();
        if conn.is_closed() || role.finished() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(20), stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                let _ = conn.handle_timeout(Instant::now());
                continue;
            }
        }
        let now = Instant::now();
        while let Ok(Some(packet)) = decode(&mut buf, Protocol::V5, u32::MAX) {
            let _ = conn.handle_packet(now, packet);
        }
        while let Some(event) = conn.poll_event() {
            role.on_event(&mut conn, event);
        }
    }
    conn.into_session()
}

/// Subscribes once, on its first connection, and counts what arrives.
struct Subscriber {
    shared: Arc<Shared>,
    client_id: String,
    qos: QoS,
    subscribed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Role for Subscriber {
    fn on_event(&mut self, conn: &mut Connection, event: Event) {
        match event {
            Event::Connected(_) if self.subscribed.is_some() => {
                let filter = format!("own/q{}/#", self.qos as u8);
                let packet_id = conn.allocate_packet_id().unwrap();
                let _ = conn.send(Packet::Subscribe(Subscribe {
                    packet_id,
                    properties: Default::default(),
                    filters: vec![SubscribeFilter {
                        filter: filter.as_str().try_into().unwrap(),
                        options: SubscriptionOptions {
                            qos: self.qos,
                            ..Default::default()
                        },
                    }],
                }));
            }
            Event::Connected(ack) if !ack.session_present => {
                let mut seen = self.shared.seen.lock().unwrap();
                seen.sessions_lost.push(self.client_id.clone());
            }
            Event::SubAck(_) => {
                if let Some(done) = self.subscribed.take() {
                    let _ = done.send(());
                }
            }
            Event::Message(publish) => {
                let n = number(&publish);
                let mut seen = self.shared.seen.lock().unwrap();
                *seen
                    .received
                    .entry(self.qos)
                    .or_default()
                    .entry(n)
                    .or_default() += 1;
                drop(seen);
                self.shared.highest[self.qos as usize].fetch_max(n, Ordering::Relaxed);
                if let Some(id) = publish.packet_id {
                    let _ = conn.ack(id, ReasonCode::SUCCESS);
                }
            }
            _ => {}
        }
    }
}

async fn subscriber(shared: Arc<Shared>, qos: QoS, subscribed: tokio::sync::oneshot::Sender<()>) {
    let mut role = Subscriber {
        client_id: format!("own-sub-q{}", qos as u8),
        shared: shared.clone(),
        qos,
        subscribed: Some(subscribed),
    };
    let mut session = SessionState::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let client_id = role.client_id.clone();
        session = run_connection(&shared, &client_id, session, &mut role).await;
    }
}

/// Publishes numbered messages, remembering which the broker acknowledged.
struct Publisher {
    shared: Arc<Shared>,
    client_id: String,
    topic: TopicName,
    qos: QoS,
    /// Packet identifier → message number. In-flight messages keep their
    /// identifiers in the session state, and the flow sends them again
    /// (DUP) when the session resumes.
    in_flight: HashMap<PacketId, u64>,
    next: u64,
}

impl Role for Publisher {
    fn on_event(&mut self, _conn: &mut Connection, event: Event) {
        match event {
            Event::Connected(ack) if !ack.session_present && self.next > 1 => {
                let mut seen = self.shared.seen.lock().unwrap();
                seen.sessions_lost.push(self.client_id.clone());
            }
            Event::Delivered {
                packet_id,
                reason_code,
            } => {
                if let Some(n) = self.in_flight.remove(&packet_id) {
                    if !reason_code.is_error() {
                        let mut seen = self.shared.seen.lock().unwrap();
                        seen.acked.entry(self.qos).or_default().insert(n);
                    }
                }
            }
            _ => {}
        }
    }

    fn finished(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed) && self.in_flight.is_empty()
    }

    fn fill(&mut self, conn: &mut Connection) {
        let highest = &self.shared.highest[self.qos as usize];
        while !self.shared.stop.load(Ordering::Relaxed)
            && conn.is_open()
            && conn.send_quota() > 0
            && self.in_flight.len() < WINDOW
            && self.next <= highest.load(Ordering::Relaxed) + MAX_AHEAD
        {
            let mut p = Publish::new(self.topic.clone(), self.next.to_string().into_bytes());
            p.qos = self.qos;
            let id = conn.publish(p).unwrap().unwrap();
            self.in_flight.insert(id, self.next);
            self.next += 1;
        }
    }
}

async fn publisher(shared: Arc<Shared>, qos: QoS) {
    let mut role = Publisher {
        client_id: format!("own-pub-q{}", qos as u8),
        topic: TopicName::try_from(format!("own/q{}/x", qos as u8).as_str()).unwrap(),
        shared: shared.clone(),
        qos,
        in_flight: HashMap::new(),
        next: 1,
    };
    let mut session = SessionState::new();
    while !(shared.stop.load(Ordering::Relaxed) && role.in_flight.is_empty()) {
        let client_id = role.client_id.clone();
        session = run_connection(&shared, &client_id, session, &mut role).await;
    }
}

/// A small deterministic random number generator for kill timings.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn check(seen: &Seen) -> Vec<String> {
    let mut violations = Vec::new();
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let acked = seen.acked.get(&qos).cloned().unwrap_or_default();
        let received = seen.received.get(&qos).cloned().unwrap_or_default();
        let lost: Vec<u64> = acked
            .iter()
            .filter(|n| !received.contains_key(n))
            .copied()
            .collect();
        if !lost.is_empty() {
            violations.push(format!(
                "{qos:?}: {} acknowledged messages lost: {:?}",
                lost.len(),
                &lost[..lost.len().min(20)]
            ));
        }
        if qos == QoS::ExactlyOnce {
            let mut twice: Vec<u64> = received
                .iter()
                .filter(|(_, &c)| c > 1)
                .map(|(&n, _)| n)
                .collect();
            twice.sort_unstable();
            if !twice.is_empty() {
                violations.push(format!(
                    "QoS 2 messages delivered more than once: {:?}",
                    &twice[..twice.len().min(20)]
                ));
            }
        }
    }
    if !seen.sessions_lost.is_empty() {
        violations.push(format!(
            "sessions lost on reconnection: {:?}",
            seen.sessions_lost
        ));
    }
    violations
}

fn run_crash_test(dir: &Path) {
    let mut broker = Broker {
        port: free_port(),
        dir: dir.to_path_buf(),
        child: None,
    };
    broker.start();
    let shared = Arc::new(Shared {
        addr: SocketAddr::from(([127, 0, 0, 1], broker.port)),
        seen: Mutex::default(),
        stop: AtomicBool::new(false),
        highest: Default::default(),
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let (done, subscribed) = tokio::sync::oneshot::channel();
        runtime.spawn(subscriber(shared.clone(), qos, done));
        runtime.block_on(subscribed).expect("subscribed");
    }
    let publishers: Vec<_> = [QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .map(|qos| runtime.spawn(publisher(shared.clone(), qos)))
        .collect();
    let mut random = 0x9E37_79B9_7F4A_7C15 ^ u64::from(broker.port);
    for cycle in 1..=CYCLES {
        std::thread::sleep(Duration::from_millis(200 + next_random(&mut random) % 1000));
        broker.kill();
        broker.start();
        let seen = shared.seen.lock().unwrap();
        let acked: usize = seen.acked.values().map(BTreeSet::len).sum();
        eprintln!(
            "cycle {cycle}/{CYCLES}: killed and restarted; {acked} messages acknowledged so far"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    shared.stop.store(true, Ordering::Relaxed);
    // Publishers finish their in-flight messages (so nothing is acknowledged
    // after this), then the subscribers drain.
    for publisher in publishers {
        let finished = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), publisher).await });
        assert!(
            finished.is_ok(),
            "a publisher's messages were never acknowledged"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = shared.seen.lock().unwrap();
        let pending = [QoS::AtLeastOnce, QoS::ExactlyOnce].iter().any(|q| {
            let received = seen.received.get(q);
            seen.acked.get(q).is_some_and(|a| {
                a.iter()
                    .any(|n| !received.is_some_and(|r| r.contains_key(n)))
            })
        });
        drop(seen);
        if !pending || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    let seen = shared.seen.lock().unwrap();
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let acked = seen.acked.get(&qos).map_or(0, BTreeSet::len);
        assert!(
            acked > 100,
            "{qos:?}: only {acked} messages were acknowledged"
        );
    }
    let violations = check(&seen);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn no_acknowledged_message_is_lost_when_the_broker_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    run_crash_test(dir.path());
}
