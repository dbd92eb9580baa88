//! `$SYS/broker/...`: the broker's own state, published retained every
//! `sys_interval` seconds under mosquitto's topic names, so dashboards and
//! MQTT Explorer show it as they do for mosquitto.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pigeon_proto::codec::Publish;
use pigeon_proto::topic::TopicName;

use crate::broker::Shared;

/// Publishes every `$SYS` topic once.
pub(crate) fn publish_all(shared: &Shared) {
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
        let Ok(topic) = TopicName::try_from(format!("$SYS/broker/{name}").as_str()) else {
            continue;
        };
        let mut message = Publish::new(topic, value.into_bytes());
        message.retain = true;
        shared.publish(Arc::new(message), None);
    }
}
