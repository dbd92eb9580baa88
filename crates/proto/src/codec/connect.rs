//! CONNECT (§3.1): the first packet a client sends.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::wire::{self, Reader};
use crate::error::{Error, Incompatible, Malformed, Misuse, Violation};
use crate::properties::{Context, Properties};
use crate::string::MqttStr;
use crate::topic::TopicName;
use crate::{Protocol, QoS};

/// A connection request. Its `protocol` field decides how it is encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connect {
    /// Protocol version the client speaks.
    pub protocol: Protocol,
    /// Clean Session (3.x) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep-alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// CONNECT properties (5.0 only).
    pub properties: Properties,
    /// Client identifier; may be empty.
    pub client_id: MqttStr,
    /// The will message, if any.
    pub will: Option<Will>,
    /// User name, if any.
    pub username: Option<MqttStr>,
    /// Password, if any.
    pub password: Option<Bytes>,
}

/// The message the server publishes when the client goes away uncleanly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Will {
    /// Where to publish it.
    pub topic: TopicName,
    /// What to publish.
    pub payload: Bytes,
    /// At which QoS.
    pub qos: QoS,
    /// Whether to retain it.
    pub retain: bool,
    /// Will properties (5.0 only).
    pub properties: Properties,
}

impl Connect {
    /// A CONNECT with the given version and client id, clean start, a
    /// 60-second keep-alive and nothing else.
    pub fn new(protocol: Protocol, client_id: MqttStr) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            properties: Default::default(),
            client_id,
            will: None,
            username: None,
            password: None,
        }
    }
}

const RESERVED: u8 = 0b0000_0001;
const CLEAN_START: u8 = 0b0000_0010;
const WILL: u8 = 0b0000_0100;
const WILL_RETAIN: u8 = 0b0010_0000;
const PASSWORD: u8 = 0b0100_0000;
const USERNAME: u8 = 0b1000_0000;

fn protocol(name: &str, level: u8) -> Result<Protocol, Incompatible> {
    match (name, level) {
        ("MQTT", 4) => Ok(Protocol::V3_1_1),
        ("MQTT", 5) => Ok(Protocol::V5),
        ("MQIsdp", 3) => Ok(Protocol::V3_1),
        ("MQTT" | "MQIsdp", _) => Err(Incompatible::ProtocolLevel(level)),
        _ => Err(Incompatible::ProtocolName),
    }
}

/// Checks the flag rules of §3.1.2.3 that do not depend on later fields.
fn check_flags(flags: u8, protocol: Protocol) -> Result<(), Malformed> {
    if flags & RESERVED != 0 {
        return Err(Malformed::ReservedBit("CONNECT flags"));
    }
    let will_qos = (flags >> 3) & 0b11;
    if flags & WILL == 0 && (will_qos != 0 || flags & WILL_RETAIN != 0) {
        return Err(Malformed::ConnectFlags(
            "will QoS or retain without will flag",
        ));
    }
    if will_qos == 3 {
        return Err(Malformed::InvalidQos);
    }
    if !protocol.is_v5() && flags & PASSWORD != 0 && flags & USERNAME == 0 {
        return Err(Malformed::ConnectFlags("password without user name"));
    }
    Ok(())
}

impl Connect {
    pub(crate) fn decode(mut r: Reader) -> Result<Connect, Error> {
        let name = r.string("protocol name")?;
        let level = r.u8("protocol level")?;
        let protocol = protocol(&name, level)?;
        let flags = r.u8("connect flags")?;
        check_flags(flags, protocol)?;
        let keep_alive = r.u16("keep alive")?;
        let properties = decode_properties(&mut r, protocol, Context::Connect)?;
        let client_id = r.string("client identifier")?;
        let will = match flags & WILL {
            0 => None,
            _ => Some(Will::decode(&mut r, protocol, flags)?),
        };
        let username = (flags & USERNAME != 0)
            .then(|| r.string("user name"))
            .transpose()?;
        let password = (flags & PASSWORD != 0)
            .then(|| r.binary("password"))
            .transpose()?;
        r.finish()?;
        let clean_start = flags & CLEAN_START != 0;
        Ok(Connect {
            protocol,
            clean_start,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= WILL | (will.qos as u8) << 3;
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        flags
    }

    pub(crate) fn body_len(&self) -> usize {
        let v5 = self.protocol.is_v5();
        let mut len = 2 + self.protocol.name().len() + 1 + 1 + 2 + 2 + self.client_id.len();
        if v5 {
            len += self.properties.wire_len();
        }
        if let Some(will) = &self.will {
            len += will.wire_len(v5);
        }
        len += self.username.as_ref().map_or(0, |u| 2 + u.len());
        len + self.password.as_ref().map_or(0, |p| 2 + p.len())
    }

    pub(crate) fn check(&self) -> Result<(), Misuse> {
        let will_payload = self
            .will
            .as_ref()
            .map(|w| &w.payload[..])
            .unwrap_or_default();
        let password = self.password.as_deref().unwrap_or_default();
        if !wire::binary_fits(will_payload) || !wire::binary_fits(password) {
            return Err(Misuse::InvalidValue(
                "will payload or password over 65535 bytes",
            ));
        }
        if !self.protocol.is_v5() && self.password.is_some() && self.username.is_none() {
            return Err(Misuse::InvalidValue(
                "MQTT 3.x forbids a password without a user name",
            ));
        }
        Ok(())
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) {
        let v5 = self.protocol.is_v5();
        wire::put_binary(buf, self.protocol.name().as_bytes());
        buf.put_u8(self.protocol.level());
        buf.put_u8(self.flags());
        buf.put_u16(self.keep_alive);
        if v5 {
            self.properties.encode(buf);
        }
        wire::put_str(buf, &self.client_id);
        if let Some(will) = &self.will {
            if v5 {
                will.properties.encode(buf);
            }
            wire::put_str(buf, will.topic.as_mqtt_str());
            wire::put_binary(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            wire::put_str(buf, username);
        }
        if let Some(password) = &self.password {
            wire::put_binary(buf, password);
        }
    }
}

impl Will {
    fn decode(r: &mut Reader, protocol: Protocol, flags: u8) -> Result<Will, Error> {
        let properties = decode_properties(r, protocol, Context::Will)?;
        let topic = TopicName::new(r.string("will topic")?).map_err(Violation::TopicName)?;
        let payload = r.binary("will payload")?;
        let qos = wire::qos((flags >> 3) & 0b11)?;
        let retain = flags & WILL_RETAIN != 0;
        Ok(Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
    }

    fn wire_len(&self, v5: bool) -> usize {
        let props = if v5 { self.properties.wire_len() } else { 0 };
        props + 2 + self.topic.as_mqtt_str().len() + 2 + self.payload.len()
    }
}

/// Properties in v5, nothing before it.
pub(crate) fn decode_properties(
    r: &mut Reader,
    protocol: Protocol,
    ctx: Context,
) -> Result<Properties, Error> {
    match protocol {
        Protocol::V5 => Properties::decode(r, ctx),
        _ => Ok(Properties::default()),
    }
}
