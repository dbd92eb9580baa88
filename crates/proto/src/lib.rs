//! # pigeon-proto: MQTT without I/O
//!
//! Everything Pigeon knows about the MQTT protocol, for versions 3.1, 3.1.1
//! and 5.0, with no sockets, no tasks and no clock. The broker and the client
//! are thin async drivers around it, so the protocol is written and tested
//! once.
//!
//! ## The parts
//!
//! - [`codec`]: bytes ⇄ [`Packet`]. One packet model for all versions; the
//!   [`Protocol`] is a parameter of [`decode`] and [`Packet::encode`].
//!   Decoding is streaming (`Ok(None)` until a whole packet is buffered),
//!   checks the fixed header and the declared size before buffering, and
//!   never copies a payload: topics, strings and payloads are `Bytes` slices
//!   of the input.
//! - [`properties`]: MQTT 5.0 properties in one struct, checked against the
//!   packet they appear in; [`reason`]: reason codes and which packet may
//!   carry which.
//! - [`string`]: [`string::MqttStr`], a UTF-8 string as MQTT defines it,
//!   validated once. [`topic`]: [`topic::TopicName`], [`topic::TopicFilter`],
//!   shared subscriptions, and matching.
//! - [`flow`]: [`flow::Connection`], the per-connection state machine both
//!   ends use: handshake, keep-alive, packet identifiers, QoS 1/2 in both
//!   directions, receive maximum, topic aliases, maximum packet size, and
//!   the reason code for each violation. Its [`flow::SessionState`] is what
//!   outlives a connection, serialisable for the stores.
//! - [`error`]: errors typed by who is at fault (malformed bytes, protocol
//!   violation, incompatible peer, local misuse), each peer fault with the
//!   reason code the specification requires.
//!
//! ## How data moves
//!
//! A driver reads socket bytes into a `BytesMut`, calls [`decode`] until it
//! returns `Ok(None)`, and hands each packet to
//! [`flow::Connection::handle_packet`]. It drains `poll_transmit` (packets to
//! encode and write), `poll_event` (messages, acknowledgements, requests for
//! the application) and arms a timer from `poll_timeout`. The module docs of
//! [`flow`] give the exact calling order.

pub mod codec;
pub mod error;
pub mod flow;
pub mod properties;
pub mod reason;
pub mod string;
pub mod topic;
mod types;

pub use codec::{decode, Packet};
pub use error::Error;
pub use reason::ReasonCode;
pub use types::{PacketId, PacketType, Protocol, QoS};
