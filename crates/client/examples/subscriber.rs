//! The MQTT quick start's subscriber, with pigeon-client's blocking API:
//! subscribe in `on_connect` (so a reconnection subscribes again), print
//! every message in `on_message`, `loop_forever`.
//!
//! ```sh
//! cargo run -p pigeon-client --example subscriber -- localhost:1883
//! ```
//! Arguments: the broker (`host:port`, default `localhost:1883`) and,
//! optionally, how many messages to wait for before exiting.

use pigeon_client::{Client, Protocol, QoS};

fn main() {
    let mut args = std::env::args().skip(1);
    let broker = args.next().unwrap_or_else(|| "localhost:1883".into());
    let count: Option<usize> = args.next().and_then(|n| n.parse().ok());
    let Some((host, port)) = broker
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
    else {
        eprintln!("subscriber: the broker must be HOST:PORT, e.g. localhost:1883");
        std::process::exit(2);
    };

    let client = Client::new("", Protocol::V3_1_1);
    client.on_connect(|client, _flags, reason_code, _properties| {
        println!("Connected with result code {reason_code}");
        // Subscribing in on_connect means that if we lose the connection and
        // reconnect, the subscriptions are renewed.
        if let Err(e) = client.subscribe("paho/temperature", QoS::AtMostOnce) {
            eprintln!("subscribe failed: {e}");
        }
    });
    client.on_subscribe(|_, _mid, reason_codes| {
        println!("Subscribed: {reason_codes:?}");
    });
    let received = std::sync::atomic::AtomicUsize::new(0);
    client.on_message(move |client, message| {
        println!(
            "Received `{}` from `{}` topic",
            String::from_utf8_lossy(&message.payload),
            message.topic
        );
        let n = received.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if count == Some(n) {
            let _ = client.disconnect();
        }
    });
    if let Err(e) = client.connect(&host, port, 60) {
        eprintln!("subscriber: {e}");
        std::process::exit(1);
    }
    client.loop_forever();
}
