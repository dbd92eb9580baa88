//! The MQTT quick start's publisher, with pigeon-client's blocking API:
//! connect, `loop_start`, then publish a reading every second.
//!
//! ```sh
//! cargo run -p pigeon-client --example publisher -- localhost:1883
//! ```
//! Arguments: the broker (`host:port`, default `localhost:1883`), how many
//! messages (default 10) and the pause between them in milliseconds
//! (default 1000).

use std::time::Duration;

use pigeon_client::{Client, Protocol, QoS};

fn main() {
    let mut args = std::env::args().skip(1);
    let broker = args.next().unwrap_or_else(|| "localhost:1883".into());
    let count: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
    let pause: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let Some((host, port)) = broker
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
    else {
        eprintln!("publisher: the broker must be HOST:PORT, e.g. localhost:1883");
        std::process::exit(2);
    };

    let client = Client::new("", Protocol::V3_1_1);
    client.on_connect(|_, _, reason_code, _| println!("Connected with result code {reason_code}"));
    if let Err(e) = client.connect(&host, port, 60) {
        eprintln!("publisher: {e}");
        std::process::exit(1);
    }
    client.loop_start();
    for n in 0..count {
        let temperature = 20.0 + f64::from(n % 7) * 0.5;
        let info = client.publish(
            "paho/temperature",
            format!("{temperature:.1}"),
            QoS::AtLeastOnce,
            false,
        );
        // QoS 1: wait until the broker has it.
        match info.wait_for_publish(Duration::from_secs(10)) {
            Some(Ok(_)) => println!("Published {temperature:.1}"),
            Some(Err(e)) => eprintln!("publish failed: {e}"),
            None => eprintln!("publish not acknowledged within 10 s"),
        }
        std::thread::sleep(Duration::from_millis(pause));
    }
    let _ = client.disconnect();
    client.loop_stop();
}
