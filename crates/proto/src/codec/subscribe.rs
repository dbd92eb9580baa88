//! SUBSCRIBE (§3.8): topic filters with their subscription options.

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::ack::packet_id;
use super::connect::decode_properties;
use super::wire::{self, Reader};
use crate::error::{Error, Malformed, Violation};
use crate::properties::{Context, LazyProperties};
use crate::string::MqttStr;
use crate::{PacketId, Protocol, QoS};

/// A request to subscribe to one or more topic filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// Identifier the SUBACK will echo.
    pub packet_id: PacketId,
    /// SUBSCRIBE properties (5.0 only).
    pub properties: LazyProperties,
    /// At least one filter with its options.
    pub filters: Vec<SubscribeFilter>,
}

/// One topic filter of a SUBSCRIBE.
///
/// The filter stays a string here: an invalid filter is answered with a
/// failure code for that filter alone (MQTT 5.0 0x8F, 3.1.1 0x80) while the
/// others are granted, so it is parsed by the receiver, filter by filter,
/// with [`crate::topic::Subscription::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeFilter {
    /// The filter as sent.
    pub filter: MqttStr,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// Subscription options (§3.8.3.1); in 3.x only the QoS exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubscriptionOptions {
    /// Maximum QoS the subscriber wants.
    pub qos: QoS,
    /// Don't send the subscriber its own messages (5.0).
    pub no_local: bool,
    /// Keep the RETAIN flag as published (5.0).
    pub retain_as_published: bool,
    /// When to send retained messages (5.0).
    pub retain_handling: RetainHandling,
}

/// When retained messages are sent on subscribe (§3.8.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RetainHandling {
    /// Send retained messages at every subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send them only if the subscription did not exist.
    SendAtNewSubscribe = 1,
    /// Never send them.
    DoNotSend = 2,
}

impl SubscriptionOptions {
    /// The options as their MQTT 5.0 byte, for storing.
    pub fn to_byte(&self) -> u8 {
        self.encode(Protocol::V5)
    }

    /// Options from their MQTT 5.0 byte; `None` if it is not valid.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::decode(byte, Protocol::V5).ok()
    }

    fn decode(byte: u8, protocol: Protocol) -> Result<Self, Error> {
        // Reserved bits are malformed: 7-6 in 5.0 (MQTT-3.8.3-5), 7-2 in
        // 3.1.1 (MQTT-3-8.3-4), where QoS 3 is malformed too. 5.0 §3.8.3.1
        // makes QoS 3 and Retain Handling 3 Protocol Errors instead.
        let reserved = if protocol.is_v5() {
            0b1100_0000
        } else {
            0b1111_1100
        };
        if byte & reserved != 0 {
            return Err(Malformed::SubscriptionOptions(byte).into());
        }
        let qos = match QoS::from_u8(byte & 0b11) {
            Some(qos) => qos,
            None if protocol.is_v5() => return Err(Violation::SubscriptionOptions(byte).into()),
            None => return Err(Malformed::InvalidQos.into()),
        };
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtNewSubscribe,
            2 => RetainHandling::DoNotSend,
            _ => return Err(Violation::SubscriptionOptions(byte).into()),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & 0b0100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }

    fn encode(&self, protocol: Protocol) -> u8 {
        let qos = self.qos as u8;
        if !protocol.is_v5() {
            return qos;
        }
        qos | u8::from(self.no_local) << 2
            | u8::from(self.retain_as_published) << 3
            | (self.retain_handling as u8) << 4
    }
}

impl Subscribe {
    pub(crate) fn decode(mut r: Reader, protocol: Protocol) -> Result<Subscribe, Error> {
        let packet_id = packet_id(&mut r)?;
        let properties = decode_properties(&mut r, protocol, Context::Subscribe)?;
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = r.string("topic filter")?;
            let options = SubscriptionOptions::decode(r.u8("subscription options")?, protocol)?;
            filters.push(SubscribeFilter { filter, options });
        }
        if filters.is_empty() {
            return Err(Violation::NoTopicFilters("SUBSCRIBE").into());
        }
        Ok(Subscribe {
            packet_id,
            properties: properties.into(),
            filters,
        })
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> usize {
        let props = self.properties.wire_len_in(protocol);
        let filters: usize = self.filters.iter().map(|f| 3 + f.filter.len()).sum();
        2 + props + filters
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        self.properties.encode_in(protocol, buf);
        for f in &self.filters {
            wire::put_str(buf, &f.filter);
            buf.put_u8(f.options.encode(protocol));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_qos_3_and_retain_handling_3_are_protocol_errors_not_malformed() {
        // 5.0 §3.8.3.1: "It is a Protocol Error" for both; reserved bits stay
        // malformed (MQTT-3.8.3-5), and so does QoS 3 in 3.1.1 (MQTT-3-8.3-4).
        let decode = SubscriptionOptions::decode;
        assert_eq!(
            decode(0x03, Protocol::V5),
            Err(Violation::SubscriptionOptions(0x03).into())
        );
        assert_eq!(
            decode(0x30, Protocol::V5),
            Err(Violation::SubscriptionOptions(0x30).into())
        );
        assert_eq!(
            decode(0x40, Protocol::V5),
            Err(Malformed::SubscriptionOptions(0x40).into())
        );
        assert_eq!(
            decode(0x03, Protocol::V3_1_1),
            Err(Malformed::InvalidQos.into())
        );
    }
}
