//! The tables and how each record is laid out in them. Messages are kept as
//! MQTT 5.0 PUBLISH packets (our own codec, so every property survives),
//! behind two bytes for QoS and RETAIN; the other records are a few fixed
//! fields in big-endian order.

use std::sync::Arc;

use bytes::BytesMut;
use pigeon_proto::codec::{Publish, SubscriptionOptions};
use pigeon_proto::{decode, Packet, PacketId, Protocol, QoS};
use redb::TableDefinition;

use super::{EntryState, LastWill};
use crate::auth::acl::Identity;
use crate::router::Subscription;

/// Client id → [`SessionRecord`].
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (client id, filter) → subscription options and identifier.
pub const SUBSCRIPTIONS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("subscriptions");
/// Message id → the message, stored once for all the sessions it is queued for.
pub const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
/// (client id, entry id) → [`EntryRecord`]; entry ids grow, so a session's
/// entries come back in the order they were queued.
pub const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
/// (client id, packet id) of QoS 2 messages received and not yet released.
pub const INBOUND_QOS2: TableDefinition<(&str, u16), ()> = TableDefinition::new("inbound_qos2");
/// Topic → retained message.
pub const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");

/// A session's lifetime, and the will of its connection while connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Seconds it outlives its connection; `None` is forever.
    pub expiry: Option<u32>,
    /// Unix time its connection ended; `None` while connected.
    pub disconnected_at: Option<u64>,
    /// The will, stored as the message it becomes, with its delay.
    pub will: Option<Arc<LastWill>>,
    /// Its client's user name and listener, for the ACL (records written
    /// before ACLs have none). Decoded with `listener: None`: the broker
    /// maps `listener_name` back to its listener.
    pub identity: Option<Arc<Identity>>,
}

impl SessionRecord {
    pub fn encode(&self) -> Vec<u8> {
        // Byte 0: bit 0 an expiry is set, bit 1 a will delay follows the
        // fixed fields (records written before will delays have neither),
        // bit 2 an identity follows (the listener's name with a 2-byte
        // length), bit 3 with a user name (a 2-byte length: MQTT strings
        // are at most 65,535 bytes).
        let delay = self.will.as_ref().map_or(0, |w| w.delay);
        let mut out = Vec::with_capacity(17);
        let flags = u8::from(self.expiry.is_some())
            | u8::from(delay > 0) << 1
            | u8::from(self.identity.is_some()) << 2
            | u8::from(self.identity.as_ref().is_some_and(|i| i.username.is_some())) << 3;
        out.push(flags);
        out.extend_from_slice(&self.expiry.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.disconnected_at.unwrap_or(0).to_be_bytes());
        if delay > 0 {
            out.extend_from_slice(&delay.to_be_bytes());
        }
        if let Some(identity) = &self.identity {
            // A listener's name is its address; a user name comes from an
            // MQTT string or a certificate (both far below 64 KiB, and
            // cut at a character boundary if not).
            let short = |text: &str| {
                let mut end = text.len().min(0xFFFF);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.as_bytes()[..end].to_vec()
            };
            let name = short(&identity.listener_name);
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(&name);
            if let Some(user) = identity.username.as_deref().map(short) {
                out.extend_from_slice(&(user.len() as u16).to_be_bytes());
                out.extend_from_slice(&user);
            }
        }
        if let Some(will) = self
            .will
            .as_ref()
            .and_then(|w| encode_message(&w.message, None))
        {
            out.extend_from_slice(&will);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<SessionRecord> {
        let expiry = u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?);
        let at = u64::from_be_bytes(bytes.get(5..13)?.try_into().ok()?);
        let (delay, mut rest) = match bytes[0] & 2 {
            0 => (0, 13),
            _ => (u32::from_be_bytes(bytes.get(13..17)?.try_into().ok()?), 17),
        };
        let mut identity = None;
        if bytes[0] & 4 != 0 {
            let field = |at: &mut usize| -> Option<&str> {
                let len = u16::from_be_bytes(bytes.get(*at..*at + 2)?.try_into().ok()?);
                *at += 2;
                let text = std::str::from_utf8(bytes.get(*at..*at + usize::from(len))?).ok()?;
                *at += usize::from(len);
                Some(text)
            };
            let listener_name = field(&mut rest)?;
            let username = match bytes[0] & 8 {
                0 => None,
                _ => Some(field(&mut rest)?),
            };
            identity = Some(Arc::new(Identity {
                username: username.map(Into::into),
                listener: None,
                listener_name: listener_name.into(),
            }));
        }
        let will = bytes.get(rest..).filter(|w| !w.is_empty());
        let will = will
            .and_then(decode_message)
            .map(|(message, _)| LastWill { message, delay });
        Some(SessionRecord {
            expiry: (bytes[0] & 1 != 0).then_some(expiry),
            disconnected_at: (at != 0).then_some(at),
            will: will.map(Arc::new),
            identity,
        })
    }
}

pub fn encode_subscription(sub: &Subscription) -> [u8; 6] {
    let mut out = [0u8; 6];
    out[0] = sub.options.to_byte();
    out[1] = u8::from(sub.identifier.is_some());
    out[2..6].copy_from_slice(&sub.identifier.unwrap_or(0).to_be_bytes());
    out
}

pub fn decode_subscription(bytes: &[u8]) -> Option<Subscription> {
    let options = SubscriptionOptions::from_byte(*bytes.first()?)?;
    let id = u32::from_be_bytes(bytes.get(2..6)?.try_into().ok()?);
    Some(Subscription {
        options,
        identifier: (bytes[1] != 0).then_some(id),
    })
}

/// A queued message of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    pub message: u64,
    pub payload_len: u32,
    pub qos: QoS,
    pub retain: bool,
    pub state: EntryState,
    pub identifiers: Vec<u32>,
}

impl EntryRecord {
    pub fn encode(&self) -> Vec<u8> {
        let (state, packet_id) = match self.state {
            EntryState::Queued => (0, 0),
            EntryState::Sent(id) => (1, id.get()),
            EntryState::Received(id) => (2, id.get()),
        };
        let mut out = Vec::with_capacity(17 + 4 * self.identifiers.len());
        out.extend_from_slice(&self.message.to_be_bytes());
        out.extend_from_slice(&self.payload_len.to_be_bytes());
        out.extend_from_slice(&[self.qos as u8, u8::from(self.retain), state]);
        out.extend_from_slice(&packet_id.to_be_bytes());
        for id in &self.identifiers {
            out.extend_from_slice(&id.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<EntryRecord> {
        let message = u64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?);
        let payload_len = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
        let qos = QoS::from_u8(*bytes.get(12)?)?;
        let packet_id = u16::from_be_bytes(bytes.get(15..17)?.try_into().ok()?);
        let state = match (bytes[14], PacketId::new(packet_id)) {
            (0, _) => EntryState::Queued,
            (1, Some(id)) => EntryState::Sent(id),
            (2, Some(id)) => EntryState::Received(id),
            _ => return None,
        };
        let identifiers = bytes[17..]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some(EntryRecord {
            message,
            payload_len,
            qos,
            retain: bytes[13] != 0,
            state,
            identifiers,
        })
    }
}

/// A message as stored: QoS, flags (bit 0 RETAIN, bit 1 an expiry
/// follows), the expiry in Unix milliseconds if any, then the PUBLISH
/// packet (QoS 0, so it carries no packet identifier).
pub fn encode_message(message: &Publish, expires_at: Option<u64>) -> Option<Vec<u8>> {
    let mut plain = message.clone();
    plain.qos = QoS::AtMostOnce;
    plain.packet_id = None;
    plain.dup = false;
    plain.retain = false;
    let mut buf =
        BytesMut::with_capacity(16 + message.topic.as_str().len() + message.payload.len());
    let flags = u8::from(message.retain) | u8::from(expires_at.is_some()) << 1;
    buf.extend_from_slice(&[message.qos as u8, flags]);
    if let Some(at) = expires_at {
        buf.extend_from_slice(&at.to_be_bytes());
    }
    Packet::Publish(plain).encode(Protocol::V5, &mut buf).ok()?;
    Some(buf.to_vec())
}

/// A stored message and when it expires (Unix milliseconds), if it does.
pub type Expiring = (Arc<Publish>, Option<u64>);

pub fn decode_message(bytes: &[u8]) -> Option<Expiring> {
    let qos = QoS::from_u8(*bytes.first()?)?;
    let flags = *bytes.get(1)?;
    let (expires_at, rest) = match flags & 2 {
        0 => (None, bytes.get(2..)?),
        _ => {
            let at = u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?);
            (Some(at), bytes.get(10..)?)
        }
    };
    let mut buf = BytesMut::from(rest);
    match decode(&mut buf, Protocol::V5, u32::MAX) {
        Ok(Some(Packet::Publish(mut publish))) => {
            publish.qos = qos;
            publish.retain = flags & 1 != 0;
            Some((Arc::new(publish), expires_at))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use pigeon_proto::codec::RetainHandling;
    use pigeon_proto::topic::TopicName;

    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let session = SessionRecord {
            expiry: Some(3600),
            disconnected_at: Some(1_700_000_000),
            will: None,
            identity: None,
        };
        assert_eq!(SessionRecord::decode(&session.encode()), Some(session));
        let mut will = Publish::new(TopicName::try_from("gone").unwrap(), &b"bye"[..]);
        will.qos = QoS::AtLeastOnce;
        let forever = SessionRecord {
            expiry: None,
            disconnected_at: None,
            will: Some(Arc::new(LastWill {
                message: Arc::new(will),
                delay: 0,
            })),
            identity: None,
        };
        assert_eq!(
            SessionRecord::decode(&forever.encode()),
            Some(forever.clone())
        );
        let mut delayed = forever;
        delayed.will = delayed.will.map(|w| {
            Arc::new(LastWill {
                delay: 30,
                ..LastWill::clone(&w)
            })
        });
        delayed.disconnected_at = Some(1_700_000_000);
        assert_eq!(
            SessionRecord::decode(&delayed.encode()),
            Some(delayed.clone())
        );
        // With an identity (and a will after it), anonymous or named.
        let long = "u".repeat(65_535);
        for username in [None, Some("alice"), Some(""), Some(long.as_str())] {
            let mut with = delayed.clone();
            with.identity = Some(Arc::new(Identity {
                username: username.map(Into::into),
                listener: None,
                listener_name: "0.0.0.0:8883".into(),
            }));
            assert_eq!(SessionRecord::decode(&with.encode()), Some(with));
        }

        let sub = Subscription {
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
            identifier: Some(268_435_455),
        };
        assert_eq!(decode_subscription(&encode_subscription(&sub)), Some(sub));

        let entry = EntryRecord {
            message: 42,
            payload_len: 1024,
            qos: QoS::ExactlyOnce,
            retain: true,
            state: EntryState::Received(PacketId::new(65_535).unwrap()),
            identifiers: vec![1, 7],
        };
        assert_eq!(EntryRecord::decode(&entry.encode()), Some(entry));
    }

    #[test]
    fn a_message_keeps_topic_payload_flags_and_properties() {
        let mut message = Publish::new(TopicName::try_from("a/b").unwrap(), &b"hello"[..]);
        message.qos = QoS::ExactlyOnce;
        message.retain = true;
        message.properties.content_type = Some("text/plain".try_into().unwrap());
        message.properties.user_properties =
            vec![("k".try_into().unwrap(), "v".try_into().unwrap())];
        let (back, expires_at) = decode_message(&encode_message(&message, None).unwrap()).unwrap();
        assert_eq!((&*back, expires_at), (&message, None));
        let deadline = Some(1_800_000_000_123);
        let (back, expires_at) =
            decode_message(&encode_message(&message, deadline).unwrap()).unwrap();
        assert_eq!((&*back, expires_at), (&message, deadline));
    }
}
