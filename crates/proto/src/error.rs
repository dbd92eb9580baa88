//! Errors, typed by who is at fault.
//!
//! A peer can send bytes that are not a packet ([`Malformed`]), a packet that
//! breaks the rules of the conversation ([`Violation`]), or speak a protocol we
//! do not ([`Incompatible`]). The local application can misuse the API
//! ([`Misuse`]). Every peer fault maps to the reason code the specification
//! requires, which the driver sends (v5) before closing the connection.

use crate::string::StringError;
use crate::topic::TopicError;
use crate::ReasonCode;

/// Any error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent bytes that are not a valid packet.
    #[error("malformed packet: {0}")]
    Malformed(#[from] Malformed),
    /// The peer sent a well-formed packet that breaks the protocol.
    #[error("protocol violation: {0}")]
    Protocol(#[from] Violation),
    /// The peer speaks a protocol or version we do not support.
    #[error("incompatible peer: {0}")]
    Incompatible(#[from] Incompatible),
    /// The local application asked for something the protocol forbids.
    #[error("API misuse: {0}")]
    Misuse(#[from] Misuse),
}

impl Error {
    /// The reason code to send the peer, or `None` for local misuse.
    pub fn reason_code(&self) -> Option<ReasonCode> {
        match self {
            Error::Malformed(_) => Some(ReasonCode::MALFORMED_PACKET),
            Error::Protocol(v) => Some(v.reason_code()),
            Error::Incompatible(_) => Some(ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
            Error::Misuse(_) => None,
        }
    }
}

/// Ways bytes fail to be a packet (reason code 0x81).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// Packet type 0, or 15 before MQTT 5.0.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// Fixed-header flag bits that must have fixed values do not.
    #[error("invalid fixed header flags {flags:#06b} for {packet}")]
    FixedHeaderFlags {
        /// The packet type's name.
        packet: &'static str,
        /// The low nibble of the first byte.
        flags: u8,
    },
    /// A variable byte integer of more than four bytes.
    #[error("variable byte integer longer than 4 bytes")]
    VarIntTooLong,
    /// A variable byte integer not in its shortest form (MQTT-1.5.5-1).
    #[error("variable byte integer not in its shortest form")]
    VarIntNotMinimal,
    /// A field runs past the end of the packet.
    #[error("{0} runs past the end of the packet")]
    Truncated(&'static str),
    /// Bytes left over after the last field.
    #[error("{0} unexpected bytes after the last field")]
    TrailingBytes(usize),
    /// A UTF-8 string field is invalid.
    #[error("{field}: {error}")]
    String {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        error: StringError,
    },
    /// QoS 3 in a PUBLISH, a will or a subscription (MQTT-3.3.1-4).
    #[error("QoS 3 is not a valid QoS")]
    InvalidQos,
    /// A PUBLISH with QoS 0 and DUP set (MQTT-3.3.1-2).
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupOnQos0,
    /// A packet identifier of zero (MQTT-2.2.1-3).
    #[error("packet identifier 0")]
    ZeroPacketId,
    /// A CONNECT flag combination the spec forbids.
    #[error("invalid CONNECT flags: {0}")]
    ConnectFlags(&'static str),
    /// Reserved subscription option bits are set (MQTT-3.8.3-5).
    #[error("reserved bits set in subscription options {0:#04x}")]
    SubscriptionOptions(u8),
    /// A property identifier that does not exist.
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u32),
    /// A property that may not appear in this packet.
    #[error("property {property:#04x} is not allowed in {packet}")]
    PropertyNotAllowed {
        /// The property identifier.
        property: u8,
        /// Where it appeared.
        packet: &'static str,
    },
    /// A reason code the packet may not carry.
    #[error("reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode {
        /// The code received.
        code: u8,
        /// The packet it came in.
        packet: &'static str,
    },
    /// A reserved bit in a flags byte is set.
    #[error("reserved bit set in {0}")]
    ReservedBit(&'static str),
}

/// Well-formed packets that break the protocol; each has its reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A property that may appear once appears twice.
    #[error("property {0:#04x} appears more than once")]
    DuplicateProperty(u8),
    /// A property has a value the spec forbids (e.g. Receive Maximum 0).
    #[error("property {0:#04x} has a forbidden value")]
    InvalidPropertyValue(u8),
    /// Subscription options with Maximum QoS 3 or Retain Handling 3 (5.0
    /// §3.8.3.1).
    #[error("subscription options {0:#04x} hold QoS 3 or Retain Handling 3")]
    SubscriptionOptions(u8),
    /// SUBSCRIBE or UNSUBSCRIBE with no topic filter (MQTT-3.8.3-2, MQTT-3.10.3-2).
    #[error("{0} carries no topic filter")]
    NoTopicFilters(&'static str),
    /// A topic name that is not valid (wildcards, empty without alias).
    #[error("invalid topic name: {0}")]
    TopicName(TopicError),
    /// A PUBLISH with an empty topic and no Topic Alias.
    #[error("PUBLISH has an empty topic and no Topic Alias")]
    EmptyTopicWithoutAlias,
    /// A DISCONNECT reason code that DISCONNECT may not carry (MQTT-3.14.2-1).
    #[error("invalid DISCONNECT reason code {0:#04x}")]
    DisconnectReason(u8),
    /// A packet the peer may not send now or in its role.
    #[error("unexpected {0}")]
    UnexpectedPacket(&'static str),
    /// A second CONNECT on one connection (MQTT-3.1.0-2).
    #[error("second CONNECT on the connection")]
    SecondConnect,
    /// A packet other than CONNECT came first (MQTT-3.1.0-1).
    #[error("first packet was not CONNECT")]
    FirstPacketNotConnect,
    /// More unacknowledged QoS 1/2 PUBLISH than Receive Maximum allows.
    #[error("receive maximum exceeded")]
    ReceiveMaximumExceeded,
    /// Topic Alias 0, above the maximum, or unknown.
    #[error("topic alias {0} is invalid")]
    TopicAliasInvalid(u16),
    /// A packet larger than the Maximum Packet Size we announced.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// Size of the packet, fixed header included.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// No packet within the keep-alive period.
    #[error("keep-alive timeout")]
    KeepAliveTimeout,
    /// A packet identifier already in use for another unacknowledged packet.
    #[error("packet identifier {0} in use")]
    PacketIdInUse(u16),
    /// The peer acknowledged a packet in a way that contradicts its QoS.
    #[error("acknowledgement {0} does not fit the packet's QoS")]
    AckMismatch(&'static str),
    /// Subscription Identifier in a PUBLISH sent by a client (MQTT-3.3.4-6).
    #[error("client PUBLISH carries a Subscription Identifier")]
    SubscriptionIdFromClient,
    /// A QoS above the Maximum QoS announced.
    #[error("QoS above the maximum allowed")]
    QosNotSupported,
    /// RETAIN set while Retain Available is 0.
    #[error("retain not supported")]
    RetainNotSupported,
    /// Session Expiry raised from zero in DISCONNECT (§3.14.2.2.2).
    #[error("session expiry set in DISCONNECT after CONNECT had 0")]
    SessionExpiryAfterZero,
    /// The peer closed the session with an error reason code.
    #[error("peer disconnected: {0}")]
    PeerDisconnected(ReasonCode),
}

impl Violation {
    /// The reason code the spec requires for this violation.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Violation::ReceiveMaximumExceeded => ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
            Violation::TopicAliasInvalid(_) => ReasonCode::TOPIC_ALIAS_INVALID,
            Violation::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            Violation::KeepAliveTimeout => ReasonCode::KEEP_ALIVE_TIMEOUT,
            Violation::TopicName(_) => ReasonCode::TOPIC_NAME_INVALID,
            Violation::PacketIdInUse(_) => ReasonCode::PACKET_IDENTIFIER_IN_USE,
            Violation::QosNotSupported => ReasonCode::QOS_NOT_SUPPORTED,
            Violation::RetainNotSupported => ReasonCode::RETAIN_NOT_SUPPORTED,
            Violation::PeerDisconnected(code) => *code,
            _ => ReasonCode::PROTOCOL_ERROR,
        }
    }
}

/// The peer speaks something other than MQTT 3.1, 3.1.1 or 5.0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Incompatible {
    /// Protocol name is neither "MQTT" nor "MQIsdp" (MQTT-3.1.2-1).
    #[error("unknown protocol name")]
    ProtocolName,
    /// Protocol level is not 3, 4 or 5, or does not fit the name (MQTT-3.1.2-2).
    #[error("unsupported protocol level {0}")]
    ProtocolLevel(u8),
}

/// The local application asked for something the protocol forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// A QoS 1 or 2 PUBLISH without a packet identifier, or QoS 0 with one.
    #[error("packet identifier must be present exactly when QoS > 0")]
    PacketIdMismatch,
    /// The encoded packet would exceed 268,435,455 bytes.
    #[error("packet too large to encode")]
    PacketTooLarge,
    /// The operation is not valid in the connection's current state.
    #[error("not allowed now: {0}")]
    InvalidState(&'static str),
    /// No packet identifier is free (65,535 in flight).
    #[error("no free packet identifier")]
    PacketIdsExhausted,
    /// The inflight window is full; wait for acknowledgements.
    #[error("inflight window full")]
    InflightFull,
    /// The packet exceeds the peer's Maximum Packet Size.
    #[error("packet of {size} bytes exceeds the peer's maximum of {max}")]
    ExceedsPeerMaximum {
        /// Encoded size.
        size: usize,
        /// The peer's limit.
        max: u32,
    },
    /// A value the protocol cannot express or does not allow here.
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
}
