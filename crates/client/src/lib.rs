//! # pigeon-client
//!
//! The Pigeon MQTT client: MQTT 3.1, 3.1.1 and 5.0 over TCP, TLS (rustls),
//! WebSocket and WebSocket over TLS (`transport`), built on the
//! same [`pigeon_proto::flow::Connection`] the broker drives, so the QoS 1
//! and QoS 2 handshakes exist once.
//!
//! ## Two faces
//!
//! - [`AsyncClient`] (tokio): a cloneable handle. `publish(…).await`
//!   resolves when the message is complete for its QoS (or
//!   `start_publish` returns a [`Publication`] to await later);
//!   `subscribe` / `unsubscribe` return the broker's reason codes; the
//!   [`Events`] stream says what happened (connected, message, …).
//! - [`Client`] (blocking), in paho-mqtt's shape: `connect`, `loop_start`
//!   / `loop_forever`, `publish` returning a [`MessageInfo`], `subscribe`,
//!   and callbacks `on_connect`, `on_message`, `on_publish`, … with paho
//!   2.x's version-2 arguments. Plus [`publish_single`],
//!   [`subscribe_simple`] and [`topic_matches_sub`].
//!
//! ## How it works
//!
//! One task owns the connection (`driver`): it connects, turns requests
//! into packets through the flow, turns packets into events, and on a lost
//! connection reconnects with exponential backoff and jitter. A persistent
//! session (`Options::persistent`) is resumed on reconnection: the flow
//! resends what the broker had not acknowledged, with DUP, and a QoS 2
//! message is never delivered to the application twice. With a clean
//! session, messages the broker had not yet received are published again
//! (QoS 2 ones past PUBREC are not: the broker has them), and filters are
//! subscribed again (`Options::resubscribe`).
//!
//! Requests travel to the task over an unbounded channel, so no caller
//! ever waits on the connection, and a callback may publish, subscribe or
//! disconnect. Events travel back over a bounded one: an application that
//! stops reading them slows the connection rather than growing memory.
//!
//! With `Options::session_store(path)` the session also survives the
//! process: outgoing QoS 1/2 messages (from the moment `publish` accepts
//! them), incoming QoS 2 identifiers, subscriptions, and an inbox of
//! received QoS 1/2 messages the application has not acknowledged yet live
//! in a redb file (see `store`). The connection task commits each turn's
//! changes in one transaction before writing the packets that depend on
//! them: a PUBACK or PUBREC leaves only once the message is in the inbox,
//! and a message comes again after a crash (marked `redelivered`, with its
//! delivery number) until the application acknowledges it. Without a
//! store, the session lives in memory and survives reconnections.
//!
//! Not yet: enhanced authentication (v5 AUTH).

mod asynchronous;
mod blocking;
mod driver;
pub mod options;
mod store;
mod transport;

pub use asynchronous::{AsyncClient, ClientError, Event, Events, Message, MessageId, Publication};
pub use blocking::{
    publish_single, subscribe_simple, topic_matches_sub, Client, ConnectFlags, MessageInfo,
};
pub use options::{Backoff, Options, OptionsError, TlsOptions, TlsVersion, Transport};

/// The protocol core this client is built on, re-exported for applications.
pub use pigeon_proto as proto;
/// QoS, protocol versions and reason codes, for convenience.
pub use pigeon_proto::{Protocol, QoS, ReasonCode};
