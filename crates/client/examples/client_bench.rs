//! How fast one `AsyncClient` publishes: 64-byte messages to a broker for a
//! few seconds, QoS 0 (fire and forget) or QoS 1 with a window of 100
//! unacknowledged messages. Reports messages per second.
//!
//! ```sh
//! cargo run --release -p pigeon-client --example client_bench -- 127.0.0.1:1883 0 5
//! ```
//! Arguments: broker `host:port`, QoS (0 or 1), seconds, and `store` to
//! publish through a session store (a persistent session, each accepted
//! message on disk before `start_publish` returns).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pigeon_client::{AsyncClient, Event, Options, QoS};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let broker = args.next().unwrap_or_else(|| "127.0.0.1:1883".into());
    let qos = match args.next().as_deref() {
        Some("1") => QoS::AtLeastOnce,
        _ => QoS::AtMostOnce,
    };
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let stored = args.next().as_deref() == Some("store");
    let (host, port) = broker.rsplit_once(':').expect("HOST:PORT");
    let mut options = Options::new(host, port.parse().expect("port")).client_id("client-bench");
    let dir = tempfile::tempdir().expect("a temporary directory");
    if stored {
        options = options
            .persistent(60)
            .session_store(dir.path().join("bench.session"));
    }
    let (client, mut events) = AsyncClient::new(options);
    match events.recv().await {
        Some(Event::Connected { .. }) => {}
        other => panic!("not connected: {other:?}"),
    }
    // Counts what the connection reports complete: for QoS 0, written to
    // the socket (requests still queued do not count).
    let completed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = completed.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Published { .. } = event {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let payload = bytes::Bytes::from(vec![b'x'; 64]);
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut sent: u64 = 0;
    let mut window = VecDeque::new();
    while Instant::now() < until {
        for _ in 0..1000 {
            let p = client
                .start_publish("bench/client", qos, false, payload.clone())
                .expect("publish");
            if qos == QoS::AtLeastOnce {
                window.push_back(p);
                if window.len() >= 100 {
                    if let Some(oldest) = window.pop_front() {
                        oldest.wait().await.expect("acknowledged");
                    }
                }
            } else {
                drop(p);
            }
            // Stay within the client's queue (Options::max_queued).
            while sent.saturating_sub(completed.load(std::sync::atomic::Ordering::Relaxed)) > 5_000
            {
                tokio::task::yield_now().await;
            }
            sent += 1;
        }
        tokio::task::yield_now().await;
    }
    for p in window {
        p.wait().await.expect("acknowledged");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = completed.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "qos{}{} completed/s {:.0} (completed {done} of {sent} in {elapsed:.2} s)",
        qos as u8,
        if stored { " with a store" } else { "" },
        done as f64 / elapsed
    );
    client.disconnect().await.ok();
}
