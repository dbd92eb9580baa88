//! # pigeon-broker
//!
//! The Pigeon MQTT broker as a library: `Broker::start(config)` binds and
//! serves; `Broker::shutdown` stops it gracefully. The `pigeon broker`
//! command is a thin wrapper; tests start one in-process on port 0.
//!
//! ## The parts
//!
//! - [`config`]: the TOML configuration with safe defaults.
//! - `server`: the accept loops (connection cap), housekeeping (session
//!   expiry, `$SYS`), shutdown.
//! - `listeners`: the `[[listeners]]` of the configuration: TLS (rustls,
//!   client certificates), WebSocket and WSS handshakes, run in the
//!   connection's task before MQTT starts; per-listener auth settings,
//!   connection caps and rate limits, the PROXY protocol (`proxy`) and
//!   the user name taken from a client certificate.
//! - `transport`: the stream a connection reads: plain TCP with readiness
//!   reads (no buffer while idle), or a boxed TLS / WebSocket stream.
//! - `connection`: one task per client, a thin driver around
//!   [`pigeon_proto::flow::Connection`]: bytes in, events handled, queued
//!   messages moved into the flow's inflight window, one write per wake-up.
//! - `broker`: state shared by connections: the session registry (with
//!   take-over), the router, retained messages, counters.
//! - [`router`]: the subscription trie.
//! - [`session`]: a session's subscriptions, bounded message queue and the
//!   protocol state left by its last connection.
//! - [`store`]: durable state: the ops the broker records, the redb store
//!   that applies them with group commit, and what it reads back at
//!   start-up.
//! - [`auth`]: the hook every CONNECT goes through, and MQTT 5 enhanced
//!   authentication (SCRAM-SHA-256 built in, re-authentication, redirection);
//!   password files and ACL files in mosquitto's formats. The ACL is checked
//!   by the connection (publish, subscribe, will) and by the broker at
//!   routing time (each delivery, retained ones too), against the identity
//!   (user name, listener) stored with each session.
//!
//! ## MQTT 5
//!
//! The protocol core enforces what each side announced (Receive Maximum,
//! Maximum Packet Size, Topic Alias Maximum, Maximum QoS, Retain
//! Available); the broker adds what needs its state: session and message
//! expiry (deadlines in wall-clock time, stored with the message), will
//! delay (held on the session until the delay or the session's end),
//! shared subscriptions (groups in the router's trie, one member picked per
//! message, unsent messages handed on when a member leaves), subscription
//! options and identifiers, request/response information and Reason
//! Strings. `[features]` in the configuration turns features off; CONNACK
//! announces exactly that. The choices the spec leaves open are in
//! `docs/choices.md`.
//!
//! ## The path of a message
//!
//! A connection decodes a PUBLISH (its payload a slice of the read buffer),
//! the flow checks it, and the connection hands it to the broker as an
//! `Arc`. The router (under a read lock) names the sessions that match; each
//! gets a queue entry pointing at the same message and its connection task
//! is woken. That task takes entries while its client's inflight window has
//! room, lets the flow assign packet identifiers, and writes. The
//! publisher's PUBACK / PUBREC goes out once the message is queued for every
//! subscriber and, when a persistent session takes it, once the store has
//! it on disk: a connection writes nothing until the store ops its packets
//! caused are durable. A slow subscriber only fills its own queue, whose
//! limits drop QoS 0 first.

pub mod auth;
mod broker;
pub mod config;
mod connection;
mod listeners;
mod proxy;
pub mod router;
mod server;
pub mod session;
pub mod store;
mod sys;
mod transport;

pub use config::{Config, ConfigError, Durability};
pub use server::{check_files, open_store, Broker};

/// The protocol core this broker is built on, re-exported for embedders.
pub use pigeon_proto as proto;
