//! Reason codes (MQTT 5.0 §2.4) and which packet may carry which.
//!
//! One value can have several names (0x00 is Success, Normal disconnection
//! and Granted QoS 0), so a reason code is a checked byte with named
//! constants rather than an enum. v3.x CONNACK return codes and SUBACK
//! failure codes are mapped to and from these in the codec, so the rest of
//! Pigeon speaks one vocabulary.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::PacketType;

/// A v5 reason code. `ReasonCode::SUCCESS` is the default.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReasonCode(u8);

macro_rules! codes {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        impl ReasonCode {
            $(#[doc = $text] pub const $name: ReasonCode = ReasonCode($value);)*

            /// The name the specification gives this code.
            pub fn name(self) -> &'static str {
                match self.0 {
                    $($value => $text,)*
                    _ => "unknown reason code",
                }
            }
        }
    };
}

codes! {
    SUCCESS = 0x00, "Success";
    GRANTED_QOS_1 = 0x01, "Granted QoS 1";
    GRANTED_QOS_2 = 0x02, "Granted QoS 2";
    DISCONNECT_WITH_WILL = 0x04, "Disconnect with Will Message";
    NO_MATCHING_SUBSCRIBERS = 0x10, "No matching subscribers";
    NO_SUBSCRIPTION_EXISTED = 0x11, "No subscription existed";
    CONTINUE_AUTHENTICATION = 0x18, "Continue authentication";
    RE_AUTHENTICATE = 0x19, "Re-authenticate";
    UNSPECIFIED_ERROR = 0x80, "Unspecified error";
    MALFORMED_PACKET = 0x81, "Malformed Packet";
    PROTOCOL_ERROR = 0x82, "Protocol Error";
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "Implementation specific error";
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "Unsupported Protocol Version";
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "Client Identifier not valid";
    BAD_USER_NAME_OR_PASSWORD = 0x86, "Bad User Name or Password";
    NOT_AUTHORIZED = 0x87, "Not authorized";
    SERVER_UNAVAILABLE = 0x88, "Server unavailable";
    SERVER_BUSY = 0x89, "Server busy";
    BANNED = 0x8A, "Banned";
    SERVER_SHUTTING_DOWN = 0x8B, "Server shutting down";
    BAD_AUTHENTICATION_METHOD = 0x8C, "Bad authentication method";
    KEEP_ALIVE_TIMEOUT = 0x8D, "Keep Alive timeout";
    SESSION_TAKEN_OVER = 0x8E, "Session taken over";
    TOPIC_FILTER_INVALID = 0x8F, "Topic Filter invalid";
    TOPIC_NAME_INVALID = 0x90, "Topic Name invalid";
    PACKET_IDENTIFIER_IN_USE = 0x91, "Packet Identifier in use";
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "Packet Identifier not found";
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "Receive Maximum exceeded";
    TOPIC_ALIAS_INVALID = 0x94, "Topic Alias invalid";
    PACKET_TOO_LARGE = 0x95, "Packet too large";
    MESSAGE_RATE_TOO_HIGH = 0x96, "Message rate too high";
    QUOTA_EXCEEDED = 0x97, "Quota exceeded";
    ADMINISTRATIVE_ACTION = 0x98, "Administrative action";
    PAYLOAD_FORMAT_INVALID = 0x99, "Payload format invalid";
    RETAIN_NOT_SUPPORTED = 0x9A, "Retain not supported";
    QOS_NOT_SUPPORTED = 0x9B, "QoS not supported";
    USE_ANOTHER_SERVER = 0x9C, "Use another server";
    SERVER_MOVED = 0x9D, "Server moved";
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "Shared Subscriptions not supported";
    CONNECTION_RATE_EXCEEDED = 0x9F, "Connection rate exceeded";
    MAXIMUM_CONNECT_TIME = 0xA0, "Maximum connect time";
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "Subscription Identifiers not supported";
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "Wildcard Subscriptions not supported";
}

impl ReasonCode {
    /// Alias of [`ReasonCode::SUCCESS`] for DISCONNECT.
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode(0x00);
    /// Alias of [`ReasonCode::SUCCESS`] for SUBACK.
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode(0x00);

    /// The code as sent on the wire.
    pub const fn value(self) -> u8 {
        self.0
    }

    /// Codes of 0x80 and above report failure (MQTT 5.0 §2.4).
    pub const fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// The code for `value` if `packet` may carry it (MQTT-3.14.2-1 and the
    /// reason-code tables of each packet).
    pub fn for_packet(value: u8, packet: PacketType) -> Option<ReasonCode> {
        let code = ReasonCode(value);
        allowed(packet).contains(&value).then_some(code)
    }

    /// The code for a value without checking where it is used (for
    /// applications building packets; the encoder does not check either).
    pub const fn from_u8(value: u8) -> ReasonCode {
        ReasonCode(value)
    }
}

/// The reason codes each packet type may carry (MQTT 5.0 §3.x.2.1 tables).
fn allowed(packet: PacketType) -> &'static [u8] {
    use PacketType::*;
    match packet {
        ConnAck => &[
            0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
            0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
        ],
        PubAck | PubRec => &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
        PubRel | PubComp => &[0x00, 0x92],
        SubAck => &[
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
        ],
        UnsubAck => &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
        Disconnect => &[
            0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
            0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1,
            0xA2,
        ],
        Auth => &[0x00, 0x18, 0x19],
        Connect | Publish | Subscribe | Unsubscribe | PingReq | PingResp => &[],
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} ({})", self.0, self.name())
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#04x})", self.name(), self.0)
    }
}

/// v3.x CONNACK return codes (MQTT 3.1.1 §3.2.2.3), mapped to v5 codes.
/// MQTT 3.x CONNACK return codes and their v5 equivalents.
pub mod v3_connack {
    use super::ReasonCode;

    /// The v3 return code to send for a v5 reason code.
    pub fn encode(code: ReasonCode) -> u8 {
        match code {
            ReasonCode::SUCCESS => 0,
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => 1,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => 2,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD => 4,
            ReasonCode::NOT_AUTHORIZED | ReasonCode::BANNED => 5,
            // Everything else is a server-side refusal.
            _ => 3,
        }
    }

    /// The v5 reason code for a v3 return code, if it is defined.
    pub fn decode(value: u8) -> Option<ReasonCode> {
        Some(match value {
            0 => ReasonCode::SUCCESS,
            1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            3 => ReasonCode::SERVER_UNAVAILABLE,
            4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            5 => ReasonCode::NOT_AUTHORIZED,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_accepts_only_its_own_reason_codes() {
        // MQTT-3.14.2-1
        assert!(ReasonCode::for_packet(0x04, PacketType::Disconnect).is_some());
        assert!(ReasonCode::for_packet(0x03, PacketType::Disconnect).is_none());
        assert!(ReasonCode::for_packet(0x8E, PacketType::Disconnect).is_some());
        assert!(ReasonCode::for_packet(0x8E, PacketType::PubAck).is_none());
    }

    #[test]
    fn v3_connack_codes_round_trip_through_v5_names() {
        for v3 in 0..=5u8 {
            let code = v3_connack::decode(v3).expect("defined v3 code");
            assert_eq!(v3_connack::encode(code), v3);
        }
        assert_eq!(v3_connack::decode(6), None);
    }
}
