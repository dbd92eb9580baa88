//! # pigeon-broker
//!
//! The Pigeon MQTT broker as an embeddable library. Not written yet: it is
//! the next piece of work (see the project's issues). It will drive
//! [`pigeon_proto::flow::Connection`] from tokio tasks, route messages
//! through a subscription trie, and keep sessions in a durable store, as
//! `DESIGN.md` describes.

/// The protocol core this broker is built on, re-exported for embedders.
pub use pigeon_proto as proto;
