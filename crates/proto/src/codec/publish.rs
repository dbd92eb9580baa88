//! PUBLISH (§3.3): an application message.
//!
//! Decoding copies nothing: the topic, string properties and payload are
//! slices of the packet's buffer. Encoding can stop before the payload
//! ([`Publish::encode_header`]) so a driver can write the header and the
//! shared payload with one vectored write.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::ack::packet_id;
use super::wire::{self, Reader};
use crate::error::{Error, Malformed, Misuse, Violation};
use crate::properties::{Context, LazyProperties, Properties};
use crate::topic::TopicName;
use crate::{PacketId, PacketType, Protocol, QoS};

/// An application message on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// Set on a re-delivery of a QoS 1/2 message.
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic. Empty only in a v5 PUBLISH that names its topic by Topic
    /// Alias alone; the flow replaces it with the aliased topic.
    pub topic: TopicName,
    /// Present exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// PUBLISH properties (5.0 only).
    /// PUBLISH properties (5.0 only); stored out of line, and only when
    /// there are some.
    pub properties: LazyProperties,
    /// The message body, shared with the decode buffer.
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0 message with no properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            properties: LazyProperties::default(),
            payload: payload.into(),
        }
    }

    pub(crate) fn decode(mut r: Reader, flags: u8, protocol: Protocol) -> Result<Publish, Error> {
        let dup = flags & 0b1000 != 0;
        let qos = wire::qos((flags >> 1) & 0b11)?;
        if dup && qos == QoS::AtMostOnce {
            return Err(Malformed::DupOnQos0.into());
        }
        let raw_topic = r.string("topic name")?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(packet_id(&mut r)?),
        };
        // Built in place: `Publish` is mostly `Properties`, and moving it
        // through each `Result` is a 400-byte copy.
        let mut publish = Publish {
            dup,
            qos,
            retain: flags & 1 != 0,
            topic: TopicName::empty(),
            packet_id,
            properties: LazyProperties::default(),
            payload: Bytes::new(),
        };
        if protocol.is_v5() {
            publish.properties = LazyProperties::decode(&mut r, Context::Publish)?;
        }
        publish.topic = match (raw_topic.is_empty(), publish.properties.topic_alias) {
            (true, Some(_)) => TopicName::empty(),
            (true, None) => return Err(Violation::EmptyTopicWithoutAlias.into()),
            (false, _) => TopicName::new(raw_topic).map_err(Violation::TopicName)?,
        };
        publish.payload = r.rest();
        Ok(publish)
    }

    pub(crate) fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    /// Length of everything after the fixed header except the payload.
    fn variable_header_len(&self, protocol: Protocol) -> usize {
        let id = if self.packet_id.is_some() { 2 } else { 0 };
        let props = self.properties.wire_len_in(protocol);
        2 + self.topic.as_mqtt_str().len() + id + props
    }

    /// Size of the whole encoded packet, as [`crate::Packet::encoded_len`]
    /// gives it, without wrapping (and so copying) the PUBLISH.
    pub fn encoded_len(&self, protocol: Protocol) -> usize {
        let remaining = self.body_len(protocol);
        1 + wire::varint_len(remaining) + remaining
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> usize {
        self.variable_header_len(protocol) + self.payload.len()
    }

    pub(crate) fn check(&self) -> Result<(), Misuse> {
        if self.packet_id.is_some() != (self.qos != QoS::AtMostOnce) {
            return Err(Misuse::PacketIdMismatch);
        }
        if self.dup && self.qos == QoS::AtMostOnce {
            return Err(Misuse::InvalidValue("DUP on a QoS 0 PUBLISH"));
        }
        // Checked here too, not only in `Packet::encode`, because
        // `encode_header` does not go through it.
        if !self.properties.fits() {
            return Err(Misuse::InvalidValue(Properties::TOO_LARGE));
        }
        Ok(())
    }

    fn encode_variable_header(&self, protocol: Protocol, buf: &mut BytesMut) {
        wire::put_str(buf, self.topic.as_mqtt_str());
        if let Some(id) = self.packet_id {
            buf.put_u16(id.get());
        }
        self.properties.encode_in(protocol, buf);
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, buf: &mut BytesMut) {
        self.encode_variable_header(protocol, buf);
        buf.put_slice(&self.payload);
    }

    /// Writes the fixed and variable headers, but not the payload, which the
    /// caller sends next from `self.payload` without copying it.
    pub fn encode_header(&self, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
        self.check()?;
        let remaining = self.body_len(protocol);
        super::check_remaining(remaining)?;
        buf.reserve(5 + self.variable_header_len(protocol));
        buf.put_u8((PacketType::Publish as u8) << 4 | self.flags());
        wire::put_varint(buf, remaining);
        self.encode_variable_header(protocol, buf);
        Ok(())
    }
}
