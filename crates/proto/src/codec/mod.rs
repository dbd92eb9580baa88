//! The codec: bytes to [`Packet`]s and back, for MQTT 3.1, 3.1.1 and 5.0.
//!
//! Decoding is check → parse → advance. [`decode`] looks at the front of a
//! buffer; if a whole packet is not there yet it returns `Ok(None)` and
//! leaves the buffer alone. The fixed header is checked as soon as its first
//! byte arrives (type and flags) and the declared length is checked against
//! the maximum packet size before anything is buffered for it, so a peer
//! cannot make us allocate what it declares. A whole packet is split off the
//! buffer as `Bytes`, and its fields are slices of it.
//!
//! There is one packet model; the protocol version is a parameter. CONNECT
//! carries its own version, since it is what announces it.

mod ack;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod suback;
mod subscribe;
mod unsubscribe;
pub(crate) mod wire;

use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize};

pub use ack::Ack;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::{Auth, Disconnect};
pub use publish::Publish;
pub use suback::SubAck;
pub use subscribe::{RetainHandling, Subscribe, SubscribeFilter, SubscriptionOptions};
pub use unsubscribe::Unsubscribe;

use crate::error::{Error, Malformed, Misuse, Violation};
use crate::properties::Properties;
use crate::{PacketType, Protocol};
use wire::{Reader, MAX_VARINT};

/// Largest packet the protocol can express: 1 type byte, 4 length bytes and
/// the largest remaining length.
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + MAX_VARINT;

/// A control packet of any version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // the names are the spec's
pub enum Packet {
    /// Boxed: with its will it holds two property sets, twice any other
    /// packet, and it comes once per connection.
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(SubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

/// The parsed fixed header.
#[derive(Debug, Clone, Copy)]
struct FixedHeader {
    kind: PacketType,
    flags: u8,
    header_len: usize,
    remaining: usize,
}

/// Checks the first byte: a known type for this version, and the fixed
/// flags every type but PUBLISH must carry (MQTT-2.1.3-1, catalogue F5, F6).
fn check_first_byte(byte: u8, protocol: Protocol) -> Result<(PacketType, u8), Malformed> {
    let (raw, flags) = (byte >> 4, byte & 0x0F);
    let kind = match PacketType::from_u8(raw) {
        Some(PacketType::Auth) if !protocol.is_v5() => None,
        kind => kind,
    }
    .ok_or(Malformed::ReservedPacketType(raw))?;
    if kind != PacketType::Publish && flags != kind.required_flags() {
        return Err(Malformed::FixedHeaderFlags {
            packet: kind.name(),
            flags,
        });
    }
    Ok((kind, flags))
}

fn fixed_header(buf: &[u8], protocol: Protocol) -> Result<Option<FixedHeader>, Malformed> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (kind, flags) = check_first_byte(first, protocol)?;
    let Some((remaining, len)) = wire::read_varint(&buf[1..])? else {
        return Ok(None);
    };
    let header_len = 1 + len;
    Ok(Some(FixedHeader {
        kind,
        flags,
        header_len,
        remaining: remaining as usize,
    }))
}

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed (the buffer is untouched),
/// or the packet, removed from the buffer. `protocol` is the connection's
/// version; before CONNECT any value will do, as CONNECT names its own.
/// A packet larger than `max_packet_size` is refused from its fixed header
/// alone ([`Violation::PacketTooLarge`], reason code 0x95).
pub fn decode(
    buf: &mut BytesMut,
    protocol: Protocol,
    max_packet_size: u32,
) -> Result<Option<Packet>, Error> {
    let Some(header) = fixed_header(buf, protocol)? else {
        return Ok(None);
    };
    let size = header.header_len + header.remaining;
    if size > max_packet_size as usize {
        return Err(Violation::PacketTooLarge {
            size,
            max: max_packet_size,
        }
        .into());
    }
    if buf.len() < size {
        return Ok(None);
    }
    let mut bytes = buf.split_to(size).freeze();
    bytes.advance(header.header_len);
    decode_body(header, Reader::new(bytes), protocol).map(Some)
}

fn decode_body(h: FixedHeader, r: Reader, protocol: Protocol) -> Result<Packet, Error> {
    use PacketType as T;
    Ok(match h.kind {
        T::Connect => Packet::Connect(Box::new(Connect::decode(r)?)),
        T::ConnAck => Packet::ConnAck(ConnAck::decode(r, protocol)?),
        T::Publish => Packet::Publish(Publish::decode(r, h.flags, protocol)?),
        T::PubAck => Packet::PubAck(Ack::decode(r, protocol, h.kind)?),
        T::PubRec => Packet::PubRec(Ack::decode(r, protocol, h.kind)?),
        T::PubRel => Packet::PubRel(Ack::decode(r, protocol, h.kind)?),
        T::PubComp => Packet::PubComp(Ack::decode(r, protocol, h.kind)?),
        T::Subscribe => Packet::Subscribe(Subscribe::decode(r, protocol)?),
        T::SubAck => Packet::SubAck(SubAck::decode(r, protocol, h.kind)?),
        T::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(r, protocol)?),
        T::UnsubAck => Packet::UnsubAck(SubAck::decode(r, protocol, h.kind)?),
        T::PingReq => r.finish().map(|()| Packet::PingReq)?,
        T::PingResp => r.finish().map(|()| Packet::PingResp)?,
        T::Disconnect => Packet::Disconnect(Disconnect::decode(r, protocol, h.kind)?),
        T::Auth => Packet::Auth(Auth::decode(r, protocol, h.kind)?),
    })
}

/// Fails if a remaining length cannot be expressed.
pub(crate) fn check_remaining(remaining: usize) -> Result<(), Misuse> {
    if remaining > MAX_VARINT as usize {
        return Err(Misuse::PacketTooLarge);
    }
    Ok(())
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        use PacketType as T;
        match self {
            Packet::Connect(_) => T::Connect,
            Packet::ConnAck(_) => T::ConnAck,
            Packet::Publish(_) => T::Publish,
            Packet::PubAck(_) => T::PubAck,
            Packet::PubRec(_) => T::PubRec,
            Packet::PubRel(_) => T::PubRel,
            Packet::PubComp(_) => T::PubComp,
            Packet::Subscribe(_) => T::Subscribe,
            Packet::SubAck(_) => T::SubAck,
            Packet::Unsubscribe(_) => T::Unsubscribe,
            Packet::UnsubAck(_) => T::UnsubAck,
            Packet::PingReq => T::PingReq,
            Packet::PingResp => T::PingResp,
            Packet::Disconnect(_) => T::Disconnect,
            Packet::Auth(_) => T::Auth,
        }
    }

    /// The version CONNECT announces overrides the connection's.
    fn version(&self, protocol: Protocol) -> Protocol {
        match self {
            Packet::Connect(c) => c.protocol,
            _ => protocol,
        }
    }

    /// Length of the remaining part (after the fixed header).
    fn remaining_len(&self, protocol: Protocol) -> usize {
        match self {
            Packet::Connect(p) => p.body_len(),
            Packet::ConnAck(p) => p.body_len(protocol),
            Packet::Publish(p) => p.body_len(protocol),
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.body_len(protocol)
            }
            Packet::Subscribe(p) => p.body_len(protocol),
            Packet::SubAck(p) | Packet::UnsubAck(p) => p.body_len(protocol, self.packet_type()),
            Packet::Unsubscribe(p) => p.body_len(protocol),
            Packet::PingReq | Packet::PingResp => 0,
            Packet::Disconnect(p) | Packet::Auth(p) => p.body_len(protocol),
        }
    }

    /// Size of the whole encoded packet, fixed header included; what the
    /// peer's Maximum Packet Size is compared with.
    pub fn encoded_len(&self, protocol: Protocol) -> usize {
        let protocol = self.version(protocol);
        let remaining = self.remaining_len(protocol);
        1 + wire::varint_len(remaining) + remaining
    }

    fn check(&self, protocol: Protocol) -> Result<(), Error> {
        if let Packet::Auth(_) = self {
            if !protocol.is_v5() {
                return Err(Misuse::InvalidValue("AUTH exists only in MQTT 5.0").into());
            }
        }
        match self {
            Packet::Connect(c) => c.check()?,
            Packet::Publish(p) => p.check()?,
            _ => {}
        }
        let will = match self {
            Packet::Connect(c) => c.will.as_ref().map(|w| &w.properties),
            _ => None,
        };
        if !self
            .properties()
            .into_iter()
            .chain(will)
            .all(Properties::fits)
        {
            return Err(Misuse::InvalidValue(Properties::TOO_LARGE).into());
        }
        Ok(())
    }

    /// The packet's properties; `None` for PINGREQ and PINGRESP.
    pub fn properties(&self) -> Option<&Properties> {
        Some(match self {
            Packet::Connect(p) => &p.properties,
            Packet::ConnAck(p) => &p.properties,
            Packet::Publish(p) => &p.properties,
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                &p.properties
            }
            Packet::Subscribe(p) => &p.properties,
            Packet::SubAck(p) | Packet::UnsubAck(p) => &p.properties,
            Packet::Unsubscribe(p) => &p.properties,
            Packet::PingReq | Packet::PingResp => return None,
            Packet::Disconnect(p) | Packet::Auth(p) => &p.properties,
        })
    }

    /// Appends the encoded packet to `buf`.
    pub fn encode(&self, protocol: Protocol, buf: &mut BytesMut) -> Result<(), Error> {
        let protocol = self.version(protocol);
        self.check(protocol)?;
        let remaining = self.remaining_len(protocol);
        check_remaining(remaining)?;
        let kind = self.packet_type();
        let flags = match self {
            Packet::Publish(p) => p.flags(),
            _ => kind.required_flags(),
        };
        buf.reserve(5 + remaining);
        buf.put_u8((kind as u8) << 4 | flags);
        wire::put_varint(buf, remaining);
        self.encode_body(protocol, buf);
        Ok(())
    }

    fn encode_body(&self, protocol: Protocol, buf: &mut BytesMut) {
        match self {
            Packet::Connect(p) => p.encode_body(buf),
            Packet::ConnAck(p) => p.encode_body(protocol, buf),
            Packet::Publish(p) => p.encode_body(protocol, buf),
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.encode_body(protocol, buf)
            }
            Packet::Subscribe(p) => p.encode_body(protocol, buf),
            Packet::SubAck(p) | Packet::UnsubAck(p) => {
                p.encode_body(protocol, self.packet_type(), buf)
            }
            Packet::Unsubscribe(p) => p.encode_body(protocol, buf),
            Packet::PingReq | Packet::PingResp => {}
            Packet::Disconnect(p) | Packet::Auth(p) => p.encode_body(protocol, buf),
        }
    }
}
