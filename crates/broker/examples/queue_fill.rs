//! Fills a broker with messages queued for absent clients: SESSIONS
//! persistent sessions (clean session off, ids `fill-0`, `fill-1`, …) each
//! subscribe to their own topic at QoS 1 and disconnect; then 16 publishers
//! send PER_SESSION distinct messages of PAYLOAD bytes to every topic at
//! QoS 1. `scripts/bench-recovery` uses it to time recovery and measure
//! memory with a million queued messages.
//!
//! ```sh
//! cargo run --release --example queue_fill -- 127.0.0.1:1883 1000 1000 1024
//! ```
//! (address, sessions, messages per session, payload bytes). With `--check
//! N`, it instead reconnects session N and counts the messages waiting.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pigeon_proto::codec::{Ack, Publish, Subscribe, SubscribeFilter, SubscriptionOptions};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, QoS};
use tokio::io::AsyncReadExt;

mod common;

use common::{Conn, Res, V};

const PUBLISHERS: usize = 16;
/// QoS 1 messages a publisher keeps unacknowledged.
const WINDOW: usize = 64;

async fn subscribe_and_leave(addr: SocketAddr, session: usize) -> Res<()> {
    let mut c = Conn::open(addr, &format!("fill-{session}"), false).await?;
    c.send(Packet::Subscribe(Subscribe {
        packet_id: PacketId::MIN,
        properties: Default::default(),
        filters: vec![SubscribeFilter {
            filter: format!("fill/{session}").as_str().try_into()?,
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        }],
    }))
    .await?;
    match c.recv().await? {
        Packet::SubAck(_) => Ok(c.send(Packet::Disconnect(Default::default())).await?),
        other => Err(format!("expected SUBACK, got {other:?}").into()),
    }
}

/// Publishes `per_topic` messages to each of `topics`, QoS 1.
async fn publish(
    addr: SocketAddr,
    id: usize,
    topics: Vec<usize>,
    per_topic: usize,
    payload: usize,
    acked: Arc<AtomicU64>,
) -> Res<()> {
    let mut c = Conn::open(addr, &format!("filler-{id}"), true).await?;
    let mut next = PacketId::MIN;
    let mut unacked = 0usize;
    let mut todo = topics
        .iter()
        .flat_map(|&t| (0..per_topic).map(move |n| (t, n)));
    let mut done = false;
    while !done || unacked > 0 {
        while !done && unacked < WINDOW {
            let Some((topic, n)) = todo.next() else {
                done = true;
                break;
            };
            let mut body = format!("{topic}:{n}:").into_bytes();
            body.resize(payload.max(body.len()), b'x');
            let mut p = Publish::new(TopicName::try_from(format!("fill/{topic}").as_str())?, body);
            p.qos = QoS::AtLeastOnce;
            p.packet_id = Some(next);
            next = next.next();
            unacked += 1;
            Packet::Publish(p).encode(V, &mut c.out)?;
        }
        c.flush().await?;
        if unacked == 0 {
            break;
        }
        if c.stream.read_buf(&mut c.buf).await? == 0 {
            return Err("publisher connection closed".into());
        }
        while let Some(p) = decode(&mut c.buf, V, u32::MAX)? {
            if let Packet::PubAck(a) = p {
                if a.reason_code.is_error() {
                    return Err(format!("message refused: {:?}", a.reason_code).into());
                }
                unacked -= 1;
                acked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Reconnects session `session` and counts what it receives within 10 s.
async fn check(addr: SocketAddr, session: usize) -> Res<()> {
    let mut c = Conn::open(addr, &format!("fill-{session}"), false).await?;
    let mut received = 0u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(Ok(p)) = tokio::time::timeout_at(deadline.into(), c.recv()).await {
        if let Packet::Publish(p) = p {
            received += 1;
            if let Some(id) = p.packet_id {
                c.send(Packet::PubAck(Ack::new(id))).await?;
            }
        }
    }
    println!("session fill-{session}: {received} messages were waiting");
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: queue_fill ADDR SESSIONS PER_SESSION PAYLOAD | queue_fill ADDR --check N";
    let addr: SocketAddr = args.get(1).ok_or(usage)?.parse()?;
    if args.get(2).map(String::as_str) == Some("--check") {
        return check(addr, args.get(3).ok_or(usage)?.parse()?).await;
    }
    let sessions: usize = args.get(2).ok_or(usage)?.parse()?;
    let per_session: usize = args.get(3).ok_or(usage)?.parse()?;
    let payload: usize = args.get(4).ok_or(usage)?.parse()?;
    for session in 0..sessions {
        subscribe_and_leave(addr, session).await?;
    }
    eprintln!("{sessions} persistent sessions subscribed and away");
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let topics = (p..sessions).step_by(PUBLISHERS).collect();
        tasks.push(tokio::spawn(publish(
            addr,
            p,
            topics,
            per_session,
            payload,
            acked.clone(),
        )));
    }
    let total = (sessions * per_session) as u64;
    while !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = acked.load(Ordering::Relaxed);
        eprintln!(
            "  {n:>9} / {total} acknowledged ({:.0}/s)",
            n as f64 / start.elapsed().as_secs_f64()
        );
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "queued {total} messages of {payload} bytes for {sessions} sessions in {secs:.1} s ({:.0} msg/s)",
        total as f64 / secs
    );
    Ok(())
}
