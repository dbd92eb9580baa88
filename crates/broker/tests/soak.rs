//! A bounded soak: rounds of clients that connect, subscribe, publish at
//! every QoS and leave, half of them abruptly. Afterwards nothing may be
//! left: no connections, sessions or subscriptions, and memory does not
//! keep growing from round to round.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use pigeon_proto::codec::{Ack, Disconnect};
use pigeon_proto::{Packet, Protocol, QoS};

const ROUNDS: usize = 20;
const CLIENTS: usize = 50;

/// Resident memory of this process in KiB (Linux).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

async fn client_life(broker: &pigeon_broker::Broker, round: usize, n: usize) {
    let protocol = if n % 2 == 0 {
        Protocol::V3_1_1
    } else {
        Protocol::V5
    };
    let mut c = Raw::connect(broker, protocol, &format!("soak-{round}-{n}")).await;
    c.send(subscribe(1, &[("soak/#", QoS::ExactlyOnce)])).await;
    c.recv().await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let id = if qos == QoS::AtMostOnce { 0 } else { i as u16 };
        c.send(Packet::Publish(publish(
            &format!("soak/{n}"),
            b"payload",
            qos,
            id,
        )))
        .await;
    }
    // Answer whatever arrives for a moment, then leave.
    while let Some(packet) = c.recv_within(Duration::from_millis(50)).await {
        match packet {
            Packet::Publish(p) => match (p.qos, p.packet_id) {
                (QoS::AtLeastOnce, Some(id)) => c.send(Packet::PubAck(Ack::new(id))).await,
                (QoS::ExactlyOnce, Some(id)) => c.send(Packet::PubRec(Ack::new(id))).await,
                _ => {}
            },
            Packet::PubRec(a) => c.send(Packet::PubRel(Ack::new(a.packet_id))).await,
            Packet::PubRel(a) => c.send(Packet::PubComp(Ack::new(a.packet_id))).await,
            _ => {}
        }
    }
    if n % 2 == 0 {
        c.send(Packet::Disconnect(Disconnect::default())).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_come_and_go_and_leave_nothing_behind() {
    let broker = broker().await;
    let mut rss_after_first = 0;
    for round in 0..ROUNDS {
        let lives = (0..CLIENTS).map(|n| client_life(&broker, round, n));
        futures::future::join_all(lives).await;
        if round == 0 {
            rss_after_first = rss_kib();
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (broker.connected_clients() > 0 || broker.session_count() > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(broker.connected_clients(), 0);
    assert_eq!(broker.session_count(), 0);
    assert_eq!(broker.subscription_count(), 0);
    let growth = rss_kib().saturating_sub(rss_after_first);
    assert!(
        growth < 16 * 1024,
        "RSS grew by {growth} KiB over {} rounds",
        ROUNDS - 1
    );
}
