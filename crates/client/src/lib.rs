//! # pigeon-client
//!
//! The Pigeon MQTT client library (async and blocking, paho-style
//! callbacks). Not written yet: it comes after the broker (see the project's
//! issues). It will drive the same [`pigeon_proto::flow::Connection`] the
//! broker uses, so QoS handshakes are implemented once.

/// The protocol core this client is built on, re-exported for applications.
pub use pigeon_proto as proto;
