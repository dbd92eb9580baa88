//! `$SYS/broker/...`: the broker's own state, published retained every
//! `sys_interval` seconds under mosquitto's topic names, so dashboards and
//! MQTT Explorer show it as they do for mosquitto.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pigeon_proto::codec::Publish;
use pigeon_proto::topic::TopicName;

use crate::broker::Shared;

/// Per-minute rates averaged over 1, 5 and 15 minutes, as mosquitto's
/// `$SYS/broker/load/...`: each update folds the rate since the last one
/// into an exponentially decaying average (like Unix load averages).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LoadAverage {
    last: u64,
    averages: [f64; 3],
}

impl LoadAverage {
    const PERIODS: [(f64, &'static str); 3] = [(60.0, "1min"), (300.0, "5min"), (900.0, "15min")];

    /// Folds in the counter's value `seconds` after the previous update.
    pub fn update(&mut self, counter: u64, seconds: f64) {
        if seconds <= 0.0 {
            return;
        }
        let per_minute = counter.saturating_sub(self.last) as f64 * 60.0 / seconds;
        self.last = counter;
        for (avg, (period, _)) in self.averages.iter_mut().zip(Self::PERIODS) {
            let decay = (-seconds / period).exp();
            *avg = per_minute + decay * (*avg - per_minute);
        }
    }
}

/// The `$SYS` load averages, kept between updates.
#[derive(Debug)]
pub(crate) struct Loads {
    at: Instant,
    metrics: [(&'static str, LoadAverage); 4],
}

impl Loads {
    pub fn new() -> Loads {
        let names = [
            "messages/received",
            "messages/sent",
            "bytes/received",
            "bytes/sent",
        ];
        Loads {
            at: Instant::now(),
            metrics: names.map(|n| (n, LoadAverage::default())),
        }
    }

    fn update(&mut self, shared: &Shared) {
        let s = &shared.stats;
        let counters: [&AtomicU64; 4] = [
            &s.messages_received,
            &s.messages_sent,
            &s.bytes_received,
            &s.bytes_sent,
        ];
        let seconds = self.at.elapsed().as_secs_f64();
        self.at = Instant::now();
        for ((_, load), counter) in self.metrics.iter_mut().zip(counters) {
            load.update(counter.load(Ordering::Relaxed), seconds);
        }
    }
}

fn publish_value(shared: &Shared, name: &str, value: String) {
    let Ok(topic) = TopicName::try_from(format!("$SYS/broker/{name}").as_str()) else {
        return;
    };
    let mut message = Publish::new(topic, value.into_bytes());
    message.retain = true;
    shared.publish(Arc::new(message), None);
}

/// Publishes every `$SYS` topic once.
pub(crate) fn publish_all(shared: &Shared, loads: &mut Loads) {
    loads.update(shared);
    for (name, load) in &loads.metrics {
        for (avg, (_, period)) in load.averages.iter().zip(LoadAverage::PERIODS) {
            publish_value(
                shared,
                &format!("load/{name}/{period}"),
                format!("{avg:.2}"),
            );
        }
    }
    let s = &shared.stats;
    let load = |v: u64| v.to_string();
    let values: [(&str, String); 12] = [
        ("version", format!("pigeon {}", env!("CARGO_PKG_VERSION"))),
        (
            "uptime",
            format!("{} seconds", shared.started.elapsed().as_secs()),
        ),
        (
            "clients/connected",
            s.clients_connected.load(Ordering::Relaxed).to_string(),
        ),
        ("clients/total", shared.session_count().to_string()),
        (
            "clients/maximum",
            s.clients_maximum.load(Ordering::Relaxed).to_string(),
        ),
        (
            "messages/received",
            load(s.messages_received.load(Ordering::Relaxed)),
        ),
        (
            "messages/sent",
            load(s.messages_sent.load(Ordering::Relaxed)),
        ),
        (
            "messages/dropped",
            load(s.messages_dropped.load(Ordering::Relaxed)),
        ),
        (
            "bytes/received",
            load(s.bytes_received.load(Ordering::Relaxed)),
        ),
        ("bytes/sent", load(s.bytes_sent.load(Ordering::Relaxed))),
        (
            "subscriptions/count",
            shared.subscription_count().to_string(),
        ),
        (
            "retained messages/count",
            shared.retained_count().to_string(),
        ),
    ];
    for (name, value) in values {
        publish_value(shared, name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_average_converges_to_a_steady_rate_faster_for_shorter_periods() {
        let mut load = LoadAverage::default();
        let mut counter = 0;
        for _ in 0..6 {
            counter += 100; // 100 every 10 s = 600 a minute
            load.update(counter, 10.0);
        }
        let [one, five, fifteen] = load.averages;
        assert!(one > five && five > fifteen, "{:?}", load.averages);
        assert!(
            (one - 600.0).abs() < 600.0 * 0.4,
            "1-minute average after a minute: {one}"
        );
        for _ in 0..60 {
            counter += 100;
            load.update(counter, 10.0);
        }
        assert!((load.averages[0] - 600.0).abs() < 1.0);
    }
}
