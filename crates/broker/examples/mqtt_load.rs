//! A small MQTT load generator for comparing brokers on one machine:
//! fan-in (8 publishers, 1 subscriber), fan-out (1 publisher, 8
//! subscribers) and pairs (16 publisher/subscriber pairs), QoS 0 or 1,
//! 64-byte payloads, MQTT 3.1.1. It reports messages delivered to
//! subscribers per second. `scripts/bench-brokers` runs it against Pigeon
//! and mosquitto in the same run.
//!
//! ```sh
//! cargo run --release --example mqtt_load -- 127.0.0.1:1883 fanin 1 5
//! ```
//! (address, scenario, QoS, seconds). The `latency` scenario sends a fixed
//! 5,000 msg/s from 8 publishers to 1 subscriber, with a timestamp in each
//! payload, and reports latency percentiles instead. The `durable` scenario
//! is 16 publishers to 1 subscriber with a persistent session (clean
//! session off), so a broker with a durable store writes every QoS 1
//! message to disk before acknowledging it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{Conn, Res, V};

use pigeon_proto::codec::{Ack, Publish, Subscribe, SubscribeFilter, SubscriptionOptions};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, QoS};
use tokio::io::AsyncReadExt;

/// QoS 1 messages a publisher keeps unacknowledged.
const WINDOW: usize = 64;

/// A client id and the topic (or filter) it uses.
type Client = (String, String);

/// Shared by publishers (who stamp payloads) and subscribers (who read
/// the stamps): nanoseconds since this instant.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn nanos() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Latencies seen by subscribers once `recording` is set.
struct Latencies {
    recording: AtomicBool,
    histogram: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
}

async fn subscriber(
    addr: SocketAddr,
    (id, filter): Client,
    qos: QoS,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    latencies: Arc<Latencies>,
    clean: bool,
) -> Res<()> {
    let mut c = Conn::open(addr, &id, clean).await?;
    let options = SubscriptionOptions {
        qos,
        ..Default::default()
    };
    let filters = vec![SubscribeFilter {
        filter: filter.as_str().try_into()?,
        options,
    }];
    let packet_id = PacketId::MIN;
    c.send(Packet::Subscribe(Subscribe {
        packet_id,
        properties: Default::default(),
        filters,
    }))
    .await?;
    while !stop.load(Ordering::Relaxed) {
        let read =
            tokio::time::timeout(Duration::from_millis(200), c.stream.read_buf(&mut c.buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
            Err(_) => continue,
        }
        let mut n = 0;
        while let Some(p) = decode(&mut c.buf, V, u32::MAX)? {
            if let Packet::Publish(p) = p {
                n += 1;
                if latencies.recording.load(Ordering::Relaxed) && p.payload.len() >= 8 {
                    let mut stamp = [0u8; 8];
                    stamp.copy_from_slice(&p.payload[..8]);
                    let took = nanos().saturating_sub(u64::from_le_bytes(stamp));
                    if let Ok(mut h) = latencies.histogram.lock() {
                        let _ = h.record(took.max(1));
                    }
                }
                if let Some(id) = p.packet_id {
                    Packet::PubAck(Ack::new(id)).encode(V, &mut c.out)?;
                }
            }
        }
        count.fetch_add(n, Ordering::Relaxed);
        if !c.out.is_empty() {
            c.flush().await?;
        }
    }
    Ok(())
}

async fn publisher(
    addr: SocketAddr,
    id: String,
    topic: String,
    qos: QoS,
    stop: Arc<AtomicBool>,
    per_second: Option<u64>,
) -> Res<()> {
    let mut c = Conn::open(addr, &id, true).await?;
    let topic = TopicName::try_from(topic.as_str())?;
    let mut ticker =
        per_second.map(|r| tokio::time::interval(Duration::from_nanos(1_000_000_000 / r)));
    let mut next = PacketId::MIN;
    let mut unacked = 0usize;
    while !stop.load(Ordering::Relaxed) {
        // A batch per write: up to the window for QoS 1, 32 for QoS 0.
        let room = match (&mut ticker, qos) {
            (Some(t), _) => {
                t.tick().await;
                usize::from(unacked < WINDOW)
            }
            (None, QoS::AtMostOnce) => 32,
            (None, _) => WINDOW - unacked,
        };
        for _ in 0..room {
            let mut payload = vec![b'x'; 64];
            payload[..8].copy_from_slice(&nanos().to_le_bytes());
            let mut p = Publish::new(topic.clone(), payload);
            p.qos = qos;
            if qos != QoS::AtMostOnce {
                p.packet_id = Some(next);
                next = next.next();
                unacked += 1;
            }
            Packet::Publish(p).encode(V, &mut c.out)?;
        }
        c.flush().await?;
        if qos == QoS::AtMostOnce {
            continue;
        }
        // Wait for at least one acknowledgement, then take all that came.
        let wait = if ticker.is_some() {
            Duration::from_micros(1)
        } else {
            Duration::from_millis(500)
        };
        let read = tokio::time::timeout(wait, c.stream.read_buf(&mut c.buf)).await;
        if let Ok(Ok(0)) = read {
            return Ok(());
        }
        while let Some(p) = decode(&mut c.buf, V, u32::MAX)? {
            if let Packet::PubAck(_) = p {
                unacked -= 1;
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: mqtt_load ADDR fanin|fanout|pairs|latency|durable QOS SECONDS";
    let addr: SocketAddr = args.get(1).ok_or(usage)?.parse()?;
    let scenario = args.get(2).ok_or(usage)?.clone();
    let qos = QoS::from_u8(args.get(3).ok_or(usage)?.parse()?).ok_or(usage)?;
    let secs: u64 = args.get(4).ok_or(usage)?.parse()?;
    let (subs, pubs): (Vec<Client>, Vec<Client>) = match scenario.as_str() {
        "fanin" => (
            vec![("s0".into(), "load/in/+".into())],
            (0..8)
                .map(|i| (format!("p{i}"), format!("load/in/{i}")))
                .collect(),
        ),
        "fanout" => (
            (0..8)
                .map(|i| (format!("s{i}"), "load/out".into()))
                .collect(),
            vec![("p0".into(), "load/out".into())],
        ),
        "latency" => (
            vec![("s0".into(), "load/lat/+".into())],
            (0..8)
                .map(|i| (format!("p{i}"), format!("load/lat/{i}")))
                .collect(),
        ),
        "durable" => (
            // Unique per run: the session outlives it in the broker.
            vec![(
                format!("durable-{}", std::process::id()),
                "load/dur/+".into(),
            )],
            (0..16)
                .map(|i| (format!("p{i}"), format!("load/dur/{i}")))
                .collect(),
        ),
        "pairs" => (
            (0..16)
                .map(|i| (format!("s{i}"), format!("load/pair/{i}")))
                .collect(),
            (0..16)
                .map(|i| (format!("p{i}"), format!("load/pair/{i}")))
                .collect(),
        ),
        _ => return Err(usage.into()),
    };
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Latencies {
        recording: AtomicBool::new(false),
        histogram: std::sync::Mutex::new(hdrhistogram::Histogram::new(3)?),
    });
    // Latency runs publish 5,000 msg/s in all; the others as fast as they can.
    let per_second = (scenario == "latency").then_some(5_000 / 8);
    nanos();
    let mut tasks = Vec::new();
    for client in subs {
        tasks.push(tokio::spawn(subscriber(
            addr,
            client,
            qos,
            count.clone(),
            stop.clone(),
            latencies.clone(),
            scenario != "durable",
        )));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // subscriptions in place
    for (id, topic) in pubs {
        tasks.push(tokio::spawn(publisher(
            addr,
            id,
            topic,
            qos,
            stop.clone(),
            per_second,
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
    let start_count = count.load(Ordering::Relaxed);
    latencies.recording.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let delivered = count.load(Ordering::Relaxed) - start_count;
    let rate = delivered as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let total = count.load(Ordering::Relaxed);
    if scenario == "latency" {
        let h = latencies.histogram.lock().map_err(|_| "histogram lock")?;
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "latency qos{} delivered/s {rate:.0} p50_us {:.0} p99_us {:.0} p999_us {:.0} max_us {:.0}",
            qos as u8, us(0.5), us(0.99), us(0.999), h.max() as f64 / 1000.0
        );
    } else {
        println!(
            "{scenario} qos{} delivered/s {rate:.0} total {total}",
            qos as u8
        );
    }
    Ok(())
}
