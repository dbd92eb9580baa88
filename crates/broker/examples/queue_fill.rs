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
//! N`, it instead reconnects session N and counts the messages waiting;
//! with `--drain SESSIONS`, it reconnects sessions 0..SESSIONS at once and
//! takes (and acknowledges) everything queued for them.

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

/// Reconnects session `session` and takes what it receives until nothing
/// has come for `quiet`; returns how many messages that was.
async fn take(addr: SocketAddr, session: usize, quiet: Duration) -> Res<u64> {
    let mut c = Conn::open(addr, &format!("fill-{session}"), false).await?;
    let mut received = 0u64;
    while let Ok(Ok(p)) = tokio::time::timeout(quiet, c.recv()).await {
        if let Packet::Publish(p) = p {
            received += 1;
            if let Some(id) = p.packet_id {
                c.send(Packet::PubAck(Ack::new(id))).await?;
            }
        }
    }
    c.send(Packet::Disconnect(Default::default())).await?;
    Ok(received)
}

async fn drain(addr: SocketAddr, sessions: usize) -> Res<()> {
    let tasks: Vec<_> = (0..sessions)
        .map(|s| tokio::spawn(take(addr, s, Duration::from_secs(2))))
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    println!("drained {total} messages from {sessions} sessions");
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: queue_fill ADDR SESSIONS PER_SESSION PAYLOAD | ADDR --check N | ADDR --drain SESSIONS";
    let addr: SocketAddr = args.get(1).ok_or(usage)?.parse()?;
    match args.get(2).map(String::as_str) {
        Some("--check") => {
            let session = args.get(3).ok_or(usage)?.parse()?;
            let waiting = take(addr, session, Duration::from_secs(3)).await?;
            println!("session fill-{session}: {waiting} messages were waiting");
            return Ok(());
        }
        Some("--drain") => return drain(addr, args.get(3).ok_or(usage)?.parse()?).await,
        _ => {}
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
