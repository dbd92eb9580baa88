//! MQTT 5.0 properties (§2.2.2), one struct for every packet.
//!
//! A packet's properties are decoded into [`Properties`] and checked against
//! the packet they came in: an identifier that may not appear there is a
//! Malformed Packet, a second copy of a single-instance property is a
//! Protocol Error, and so are the forbidden values (Receive Maximum 0, a
//! boolean other than 0 or 1, …). User properties keep their order and may
//! repeat. One list ([`Properties::visit`]) drives both the length and the
//! writing when encoding, so the two cannot disagree.

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::wire::{self, Reader};
use crate::error::{Error, Malformed, Violation};
use crate::string::MqttStr;
use crate::topic::TopicName;
use crate::QoS;

/// Where a property set appears; each property is allowed in some of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the names are the packets'
pub enum Context {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl Context {
    const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The packet name, for error messages.
    pub const fn name(self) -> &'static str {
        match self {
            Context::Connect => "CONNECT",
            Context::Will => "Will Properties",
            Context::ConnAck => "CONNACK",
            Context::Publish => "PUBLISH",
            Context::Ack => "PUBACK/PUBREC/PUBREL/PUBCOMP",
            Context::Subscribe => "SUBSCRIBE",
            Context::SubAck => "SUBACK",
            Context::Unsubscribe => "UNSUBSCRIBE",
            Context::UnsubAck => "UNSUBACK",
            Context::Disconnect => "DISCONNECT",
            Context::Auth => "AUTH",
        }
    }
}

/// The properties of one packet. Absent properties are `None` or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Properties {
    /// 0x01: `Some(true)` when the payload is UTF-8 text.
    pub payload_format_indicator: Option<bool>,
    /// 0x02: seconds until the message expires.
    pub message_expiry_interval: Option<u32>,
    /// 0x03: MIME type of the payload.
    pub content_type: Option<MqttStr>,
    /// 0x08: topic for the response (no wildcards, MQTT-3.3.2-14).
    pub response_topic: Option<TopicName>,
    /// 0x09: correlation data of a request.
    pub correlation_data: Option<Bytes>,
    /// 0x0B: subscription identifiers (several in PUBLISH, one in SUBSCRIBE).
    pub subscription_identifiers: Vec<u32>,
    /// 0x11: seconds the session outlives the connection.
    pub session_expiry_interval: Option<u32>,
    /// 0x12: the client id the server assigned.
    pub assigned_client_identifier: Option<MqttStr>,
    /// 0x13: keep-alive the server imposes.
    pub server_keep_alive: Option<u16>,
    /// 0x15: enhanced authentication method.
    pub authentication_method: Option<MqttStr>,
    /// 0x16: enhanced authentication data.
    pub authentication_data: Option<Bytes>,
    /// 0x17: whether the client wants reason strings and user properties on failures.
    pub request_problem_information: Option<bool>,
    /// 0x18: seconds to delay the will.
    pub will_delay_interval: Option<u32>,
    /// 0x19: whether the client asks for Response Information.
    pub request_response_information: Option<bool>,
    /// 0x1A: basis for response topics.
    pub response_information: Option<MqttStr>,
    /// 0x1C: another server to use.
    pub server_reference: Option<MqttStr>,
    /// 0x1F: human-readable reason.
    pub reason_string: Option<MqttStr>,
    /// 0x21: how many QoS 1/2 PUBLISH the sender accepts unacknowledged.
    pub receive_maximum: Option<u16>,
    /// 0x22: highest topic alias the sender accepts.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23: topic alias of this PUBLISH.
    pub topic_alias: Option<u16>,
    /// 0x24: highest QoS the server supports (0 or 1; absent means 2).
    pub maximum_qos: Option<QoS>,
    /// 0x25: whether the server supports retained messages.
    pub retain_available: Option<bool>,
    /// 0x26: user properties, in order, repeats allowed.
    pub user_properties: Vec<(MqttStr, MqttStr)>,
    /// 0x27: largest packet the sender accepts.
    pub maximum_packet_size: Option<u32>,
    /// 0x28: whether wildcard subscriptions are supported.
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29: whether subscription identifiers are supported.
    pub subscription_identifier_available: Option<bool>,
    /// 0x2A: whether shared subscriptions are supported.
    pub shared_subscription_available: Option<bool>,
}

/// Properties kept behind a pointer that stays null while there are none.
///
/// A PUBLISH usually carries no properties, and an inline [`Properties`]
/// (some 400 bytes) would make every PUBLISH that large to move: from the
/// decoder into the flow, into queues, to each subscriber. Reading an absent
/// set sees the empty one; the first write through `DerefMut` allocates, so
/// a PUBLISH with no properties costs no allocation and 8 bytes.
#[derive(Clone, Default)]
pub struct LazyProperties(Option<Box<Properties>>);

static EMPTY: Properties = Properties {
    payload_format_indicator: None,
    message_expiry_interval: None,
    content_type: None,
    response_topic: None,
    correlation_data: None,
    subscription_identifiers: Vec::new(),
    session_expiry_interval: None,
    assigned_client_identifier: None,
    server_keep_alive: None,
    authentication_method: None,
    authentication_data: None,
    request_problem_information: None,
    will_delay_interval: None,
    request_response_information: None,
    response_information: None,
    server_reference: None,
    reason_string: None,
    receive_maximum: None,
    topic_alias_maximum: None,
    topic_alias: None,
    maximum_qos: None,
    retain_available: None,
    user_properties: Vec::new(),
    maximum_packet_size: None,
    wildcard_subscription_available: None,
    subscription_identifier_available: None,
    shared_subscription_available: None,
};

impl LazyProperties {
    /// Whether no property is set (without allocating).
    pub fn is_empty(&self) -> bool {
        self.0.as_deref().is_none_or(Properties::is_empty)
    }

    /// The properties if any are stored, for changing them without
    /// allocating when there are none.
    pub fn get_mut(&mut self) -> Option<&mut Properties> {
        self.0.as_deref_mut()
    }

    /// Decodes a property length and the properties, allocating only when
    /// the length is not zero.
    pub(crate) fn decode(r: &mut Reader, ctx: Context) -> Result<LazyProperties, Error> {
        let len = r.varint("property length")? as usize;
        if len == 0 {
            return Ok(LazyProperties(None));
        }
        let mut props = Box::<Properties>::default();
        props.decode_body(Reader::new(r.take(len, "properties")?), ctx)?;
        Ok(LazyProperties(Some(props)))
    }

    pub(crate) fn wire_len(&self) -> usize {
        self.0.as_deref().map_or(1, Properties::wire_len)
    }

    /// Length on the wire in `protocol`: nothing before MQTT 5.0.
    pub(crate) fn wire_len_in(&self, protocol: crate::Protocol) -> usize {
        if protocol.is_v5() {
            self.wire_len()
        } else {
            0
        }
    }

    /// Writes the properties if `protocol` has them (MQTT 5.0).
    pub(crate) fn encode_in(&self, protocol: crate::Protocol, buf: &mut BytesMut) {
        if protocol.is_v5() {
            self.encode(buf);
        }
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        match self.0.as_deref() {
            Some(props) => props.encode(buf),
            None => buf.put_u8(0),
        }
    }
}

impl Deref for LazyProperties {
    type Target = Properties;
    fn deref(&self) -> &Properties {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

impl DerefMut for LazyProperties {
    fn deref_mut(&mut self) -> &mut Properties {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<Properties> for LazyProperties {
    fn from(props: Properties) -> Self {
        LazyProperties((!props.is_empty()).then(|| Box::new(props)))
    }
}

impl PartialEq for LazyProperties {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for LazyProperties {}

impl fmt::Debug for LazyProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for LazyProperties {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LazyProperties {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Properties::deserialize(d).map(LazyProperties::from)
    }
}

/// One property as it goes on the wire.
enum Prop<'a> {
    Byte(u8, u8),
    U16(u8, u16),
    U32(u8, u32),
    VarInt(u8, u32),
    Str(u8, &'a MqttStr),
    Bin(u8, &'a [u8]),
    Pair(&'a MqttStr, &'a MqttStr),
}

impl Prop<'_> {
    fn len(&self) -> usize {
        1 + match self {
            Prop::Byte(..) => 1,
            Prop::U16(..) => 2,
            Prop::U32(..) => 4,
            Prop::VarInt(_, v) => wire::varint_len(*v as usize),
            Prop::Str(_, s) => 2 + s.len(),
            Prop::Bin(_, b) => 2 + b.len(),
            Prop::Pair(k, v) => 4 + k.len() + v.len(),
        }
    }

    fn write(&self, buf: &mut BytesMut) {
        match *self {
            Prop::Byte(id, v) => buf.put_slice(&[id, v]),
            Prop::U16(id, v) => {
                buf.put_u8(id);
                buf.put_u16(v)
            }
            Prop::U32(id, v) => {
                buf.put_u8(id);
                buf.put_u32(v)
            }
            Prop::VarInt(id, v) => {
                buf.put_u8(id);
                wire::put_varint(buf, v as usize)
            }
            Prop::Str(id, s) => {
                buf.put_u8(id);
                wire::put_str(buf, s)
            }
            Prop::Bin(id, b) => {
                buf.put_u8(id);
                wire::put_binary(buf, b)
            }
            Prop::Pair(k, v) => {
                buf.put_u8(USER_PROPERTY);
                wire::put_str(buf, k);
                wire::put_str(buf, v)
            }
        }
    }
}

const USER_PROPERTY: u8 = 0x26;
const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;

/// The contexts each property identifier may appear in (MQTT 5.0 §2.2.2.2).
fn allowed_in(id: u8) -> Option<u16> {
    use Context::*;
    let mask = |cs: &[Context]| cs.iter().fold(0u16, |m, c| m | c.bit());
    Some(match id {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => mask(&[Publish, Will]),
        0x0B => mask(&[Publish, Subscribe]),
        0x11 => mask(&[Connect, ConnAck, Disconnect]),
        0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => mask(&[ConnAck]),
        0x15 | 0x16 => mask(&[Connect, ConnAck, Auth]),
        0x17 | 0x19 => mask(&[Connect]),
        0x18 => mask(&[Will]),
        0x1C => mask(&[ConnAck, Disconnect]),
        0x1F => mask(&[ConnAck, Ack, SubAck, UnsubAck, Disconnect, Auth]),
        0x21 | 0x22 | 0x27 => mask(&[Connect, ConnAck]),
        0x23 => mask(&[Publish]),
        USER_PROPERTY => u16::MAX,
        _ => return None,
    })
}

fn flag(id: u8, value: u8) -> Result<bool, Error> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Violation::InvalidPropertyValue(id).into()),
    }
}

fn non_zero<T: Default + PartialEq>(id: u8, value: T) -> Result<T, Error> {
    if value == T::default() {
        return Err(Violation::InvalidPropertyValue(id).into());
    }
    Ok(value)
}

/// Stores `value` in `slot`, refusing a second copy (Protocol Error, §2.2.2.2).
fn once<T>(slot: &mut Option<T>, id: u8, value: T) -> Result<(), Error> {
    if slot.replace(value).is_some() {
        return Err(Violation::DuplicateProperty(id).into());
    }
    Ok(())
}

impl Properties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        let mut any = false;
        self.visit(&mut |_| any = true);
        !any
    }

    /// Decodes a property length and the properties that follow, checking
    /// each against `ctx`.
    pub(crate) fn decode(r: &mut Reader, ctx: Context) -> Result<Properties, Error> {
        let mut props = Properties::default();
        props.decode_into(r, ctx)?;
        Ok(props)
    }

    /// [`Properties::decode`] into properties that are already in place
    /// (empty): a packet being built decodes into its own field rather
    /// than have some 400 bytes copied into it.
    pub(crate) fn decode_into(&mut self, r: &mut Reader, ctx: Context) -> Result<(), Error> {
        let len = r.varint("property length")? as usize;
        self.decode_body(Reader::new(r.take(len, "properties")?), ctx)
    }

    /// Decodes the properties that fill `body` (after the length).
    fn decode_body(&mut self, mut body: Reader, ctx: Context) -> Result<(), Error> {
        while !body.is_empty() {
            self.decode_one(&mut body, ctx)?;
        }
        Ok(())
    }

    fn decode_one(&mut self, r: &mut Reader, ctx: Context) -> Result<(), Error> {
        let raw_id = r.varint("property identifier")?;
        let id = u8::try_from(raw_id).map_err(|_| Malformed::UnknownProperty(raw_id))?;
        let mask = allowed_in(id).ok_or(Malformed::UnknownProperty(raw_id))?;
        if mask & ctx.bit() == 0 {
            let packet = ctx.name();
            return Err(Malformed::PropertyNotAllowed {
                property: id,
                packet,
            }
            .into());
        }
        match id {
            0x01 => once(
                &mut self.payload_format_indicator,
                id,
                flag(id, r.u8("0x01")?)?,
            ),
            0x02 => once(&mut self.message_expiry_interval, id, r.u32("0x02")?),
            0x03 => once(&mut self.content_type, id, r.string("content type")?),
            0x08 => {
                let topic = TopicName::new(r.string("response topic")?)
                    .map_err(|_| Violation::InvalidPropertyValue(id))?;
                once(&mut self.response_topic, id, topic)
            }
            0x09 => once(
                &mut self.correlation_data,
                id,
                r.binary("correlation data")?,
            ),
            0x0B => self.decode_subscription_id(r, ctx),
            0x11 => once(&mut self.session_expiry_interval, id, r.u32("0x11")?),
            0x12 => once(&mut self.assigned_client_identifier, id, r.string("0x12")?),
            0x13 => once(&mut self.server_keep_alive, id, r.u16("0x13")?),
            0x15 => once(&mut self.authentication_method, id, r.string("0x15")?),
            0x16 => once(&mut self.authentication_data, id, r.binary("0x16")?),
            0x17 => once(
                &mut self.request_problem_information,
                id,
                flag(id, r.u8("0x17")?)?,
            ),
            0x18 => once(&mut self.will_delay_interval, id, r.u32("0x18")?),
            0x19 => once(
                &mut self.request_response_information,
                id,
                flag(id, r.u8("0x19")?)?,
            ),
            0x1A => once(&mut self.response_information, id, r.string("0x1A")?),
            0x1C => once(&mut self.server_reference, id, r.string("0x1C")?),
            0x1F => once(&mut self.reason_string, id, r.string("reason string")?),
            0x21 => once(&mut self.receive_maximum, id, non_zero(id, r.u16("0x21")?)?),
            0x22 => once(&mut self.topic_alias_maximum, id, r.u16("0x22")?),
            0x23 => once(&mut self.topic_alias, id, r.u16("0x23")?),
            0x24 => {
                let qos = match r.u8("0x24")? {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(Violation::InvalidPropertyValue(id).into()),
                };
                once(&mut self.maximum_qos, id, qos)
            }
            0x25 => once(&mut self.retain_available, id, flag(id, r.u8("0x25")?)?),
            USER_PROPERTY => {
                let pair = (r.string("user property")?, r.string("user property")?);
                self.user_properties.push(pair);
                Ok(())
            }
            0x27 => once(
                &mut self.maximum_packet_size,
                id,
                non_zero(id, r.u32("0x27")?)?,
            ),
            0x28 => once(
                &mut self.wildcard_subscription_available,
                id,
                flag(id, r.u8("0x28")?)?,
            ),
            0x29 => once(
                &mut self.subscription_identifier_available,
                id,
                flag(id, r.u8("0x29")?)?,
            ),
            0x2A => once(
                &mut self.shared_subscription_available,
                id,
                flag(id, r.u8("0x2A")?)?,
            ),
            _ => Err(Malformed::UnknownProperty(raw_id).into()),
        }
    }

    fn decode_subscription_id(&mut self, r: &mut Reader, ctx: Context) -> Result<(), Error> {
        let id = SUBSCRIPTION_IDENTIFIER;
        let value = non_zero(id, r.varint("subscription identifier")?)?;
        // A PUBLISH to a subscriber may carry one per matching subscription;
        // a SUBSCRIBE carries at most one.
        if ctx == Context::Subscribe && !self.subscription_identifiers.is_empty() {
            return Err(Violation::DuplicateProperty(id).into());
        }
        self.subscription_identifiers.push(value);
        Ok(())
    }

    /// Calls `f` with every present property, in identifier order.
    fn visit<'a>(&'a self, f: &mut impl FnMut(Prop<'a>)) {
        let byte = |b: bool| u8::from(b);
        if let Some(v) = self.payload_format_indicator {
            f(Prop::Byte(0x01, byte(v)));
        }
        if let Some(v) = self.message_expiry_interval {
            f(Prop::U32(0x02, v));
        }
        if let Some(v) = &self.content_type {
            f(Prop::Str(0x03, v));
        }
        if let Some(v) = &self.response_topic {
            f(Prop::Str(0x08, v.as_mqtt_str()));
        }
        if let Some(v) = &self.correlation_data {
            f(Prop::Bin(0x09, v));
        }
        for &v in &self.subscription_identifiers {
            f(Prop::VarInt(SUBSCRIPTION_IDENTIFIER, v));
        }
        if let Some(v) = self.session_expiry_interval {
            f(Prop::U32(0x11, v));
        }
        if let Some(v) = &self.assigned_client_identifier {
            f(Prop::Str(0x12, v));
        }
        if let Some(v) = self.server_keep_alive {
            f(Prop::U16(0x13, v));
        }
        if let Some(v) = &self.authentication_method {
            f(Prop::Str(0x15, v));
        }
        if let Some(v) = &self.authentication_data {
            f(Prop::Bin(0x16, v));
        }
        if let Some(v) = self.request_problem_information {
            f(Prop::Byte(0x17, byte(v)));
        }
        if let Some(v) = self.will_delay_interval {
            f(Prop::U32(0x18, v));
        }
        if let Some(v) = self.request_response_information {
            f(Prop::Byte(0x19, byte(v)));
        }
        if let Some(v) = &self.response_information {
            f(Prop::Str(0x1A, v));
        }
        if let Some(v) = &self.server_reference {
            f(Prop::Str(0x1C, v));
        }
        if let Some(v) = &self.reason_string {
            f(Prop::Str(0x1F, v));
        }
        if let Some(v) = self.receive_maximum {
            f(Prop::U16(0x21, v));
        }
        if let Some(v) = self.topic_alias_maximum {
            f(Prop::U16(0x22, v));
        }
        if let Some(v) = self.topic_alias {
            f(Prop::U16(0x23, v));
        }
        if let Some(v) = self.maximum_qos {
            f(Prop::Byte(0x24, v as u8));
        }
        if let Some(v) = self.retain_available {
            f(Prop::Byte(0x25, byte(v)));
        }
        for (k, v) in &self.user_properties {
            f(Prop::Pair(k, v));
        }
        if let Some(v) = self.maximum_packet_size {
            f(Prop::U32(0x27, v));
        }
        if let Some(v) = self.wildcard_subscription_available {
            f(Prop::Byte(0x28, byte(v)));
        }
        if let Some(v) = self.subscription_identifier_available {
            f(Prop::Byte(0x29, byte(v)));
        }
        if let Some(v) = self.shared_subscription_available {
            f(Prop::Byte(0x2A, byte(v)));
        }
    }

    /// Length of the properties alone, without the property-length prefix.
    pub(crate) fn body_len(&self) -> usize {
        let mut len = 0;
        self.visit(&mut |p| len += p.len());
        len
    }

    /// Length with the property-length prefix, as it goes on the wire.
    pub(crate) fn wire_len(&self) -> usize {
        let body = self.body_len();
        wire::varint_len(body) + body
    }

    /// Writes the property length and the properties.
    pub(crate) fn encode(&self, buf: &mut BytesMut) {
        wire::put_varint(buf, self.body_len());
        self.visit(&mut |p| p.write(buf));
    }

    /// What [`Properties::fits`] refuses, for `Misuse::InvalidValue`.
    pub(crate) const TOO_LARGE: &'static str =
        "binary property over 65,535 bytes or subscription identifier over 268,435,455";

    /// Whether every value fits its wire form: binary data its two-byte
    /// length prefix (strings are bounded by `MqttStr` already), and
    /// subscription identifiers a four-byte variable byte integer. Past
    /// that, `put_varint` would write a fifth byte that `Prop::len` does not
    /// count, and every length before it would be wrong.
    pub(crate) fn fits(&self) -> bool {
        let binaries = [&self.correlation_data, &self.authentication_data];
        binaries.into_iter().flatten().all(|b| wire::binary_fits(b))
            && self
                .subscription_identifiers
                .iter()
                .all(|&id| id <= wire::MAX_VARINT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &'static [u8], ctx: Context) -> Result<Properties, Error> {
        Properties::decode(&mut Reader::new(Bytes::from_static(bytes)), ctx)
    }

    #[test]
    fn property_not_allowed_in_the_packet_is_malformed() {
        // Catalogue PR1: Topic Alias in CONNECT; Session Expiry in PUBLISH.
        let err = decode(&[3, 0x23, 0, 1], Context::Connect).unwrap_err();
        assert!(matches!(
            err,
            Error::Malformed(Malformed::PropertyNotAllowed { .. })
        ));
        let err = decode(&[5, 0x11, 0, 0, 0, 1], Context::Publish).unwrap_err();
        assert!(matches!(
            err,
            Error::Malformed(Malformed::PropertyNotAllowed { .. })
        ));
    }

    #[test]
    fn single_instance_property_twice_is_a_protocol_error() {
        // Catalogue PR2 / C15.
        let err = decode(&[10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2], Context::Connect).unwrap_err();
        assert_eq!(err, Error::Protocol(Violation::DuplicateProperty(0x11)));
    }

    #[test]
    fn receive_maximum_zero_and_flag_two_are_protocol_errors() {
        // Catalogue C15.
        let err = decode(&[3, 0x21, 0, 0], Context::Connect).unwrap_err();
        assert_eq!(err.reason_code(), Some(crate::ReasonCode::PROTOCOL_ERROR));
        let err = decode(&[2, 0x17, 2], Context::Connect).unwrap_err();
        assert_eq!(err.reason_code(), Some(crate::ReasonCode::PROTOCOL_ERROR));
        let err = decode(&[5, 0x27, 0, 0, 0, 0], Context::Connect).unwrap_err();
        assert_eq!(err.reason_code(), Some(crate::ReasonCode::PROTOCOL_ERROR));
    }

    #[test]
    fn property_length_beyond_the_packet_is_malformed() {
        // Catalogue PR3, PR5.
        let err = decode(&[9, 0x11, 0, 0], Context::Connect).unwrap_err();
        assert!(matches!(err, Error::Malformed(Malformed::Truncated(_))));
        let err = decode(&[5, 0x09, 0xFF, 0xFF, 1, 2], Context::Publish).unwrap_err();
        assert!(matches!(err, Error::Malformed(Malformed::Truncated(_))));
        let err = decode(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01], Context::Publish).unwrap_err();
        assert_eq!(err, Error::Malformed(Malformed::VarIntTooLong));
    }

    #[test]
    fn user_property_cut_short_is_malformed() {
        // Catalogue PR4.
        let err = decode(&[7, 0x26, 0, 1, b'k', 0, 5, b'v'], Context::Publish).unwrap_err();
        assert!(matches!(err, Error::Malformed(Malformed::Truncated(_))));
    }

    #[test]
    fn unknown_property_identifiers_are_malformed() {
        // Catalogue PR6: 0x00, 0x7F, a two-byte identifier.
        for bytes in [&[2u8, 0x00, 0][..], &[2, 0x7F, 0], &[3, 0x80, 0x01, 0]] {
            let err = Properties::decode(
                &mut Reader::new(Bytes::copy_from_slice(bytes)),
                Context::Publish,
            )
            .unwrap_err();
            assert!(
                matches!(err, Error::Malformed(Malformed::UnknownProperty(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn response_topic_with_wildcard_is_a_protocol_error() {
        // MQTT-3.3.2-14; catalogue PR7.
        let err = decode(&[6, 0x08, 0, 3, b'a', b'/', b'#'], Context::Publish).unwrap_err();
        assert_eq!(err, Error::Protocol(Violation::InvalidPropertyValue(0x08)));
    }

    #[test]
    fn server_only_properties_in_connect_are_malformed() {
        // Catalogue PR8: Assigned Client Identifier, Server Keep Alive.
        let err = decode(&[4, 0x12, 0, 1, b'x'], Context::Connect).unwrap_err();
        assert!(matches!(
            err,
            Error::Malformed(Malformed::PropertyNotAllowed { .. })
        ));
        let err = decode(&[3, 0x13, 0, 9], Context::Connect).unwrap_err();
        assert!(matches!(
            err,
            Error::Malformed(Malformed::PropertyNotAllowed { .. })
        ));
    }

    #[test]
    fn user_properties_keep_order_and_may_repeat() {
        // MQTT-3.3.2-18 (order kept when forwarded relies on this).
        let bytes: &'static [u8] = &[
            14, 0x26, 0, 1, b'k', 0, 1, b'2', 0x26, 0, 1, b'k', 0, 1, b'1',
        ];
        let props = decode(bytes, Context::Publish).expect("valid");
        let values: Vec<_> = props
            .user_properties
            .iter()
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(values, ["2", "1"]);
        let mut out = BytesMut::new();
        props.encode(&mut out);
        assert_eq!(&out[..], bytes);
    }

    #[test]
    fn subscription_identifier_above_four_varint_bytes_does_not_fit() {
        // §3.3.2.3.8: 1 to 268,435,455.
        let mut props = Properties {
            subscription_identifiers: vec![wire::MAX_VARINT],
            ..Properties::default()
        };
        assert!(props.fits());
        props.subscription_identifiers.push(wire::MAX_VARINT + 1);
        assert!(!props.fits());
    }

    #[test]
    fn subscribe_may_carry_one_subscription_identifier_and_not_zero() {
        // §3.8.2.1.2; catalogue S7.
        let err = decode(&[4, 0x0B, 1, 0x0B, 2], Context::Subscribe).unwrap_err();
        assert_eq!(err, Error::Protocol(Violation::DuplicateProperty(0x0B)));
        let err = decode(&[2, 0x0B, 0], Context::Subscribe).unwrap_err();
        assert_eq!(err, Error::Protocol(Violation::InvalidPropertyValue(0x0B)));
        let props = decode(&[4, 0x0B, 1, 0x0B, 2], Context::Publish).expect("several in PUBLISH");
        assert_eq!(props.subscription_identifiers, [1, 2]);
    }
}
