//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4–3.7): four packets of one shape,
//! a packet identifier, then in v5 an optional reason code and properties.

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::wire::Reader;
use crate::error::{Error, Malformed};
use crate::properties::{Context, LazyProperties};
use crate::{PacketId, PacketType, Protocol, ReasonCode};

/// The body of PUBACK, PUBREC, PUBREL and PUBCOMP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The PUBLISH this acknowledges.
    pub packet_id: PacketId,
    /// Success or why not (v5; always success in 3.x).
    pub reason_code: ReasonCode,
    /// Properties (v5 only).
    pub properties: LazyProperties,
}

impl Ack {
    /// A successful acknowledgement with no properties.
    pub fn new(packet_id: PacketId) -> Ack {
        Ack::with_code(packet_id, ReasonCode::SUCCESS)
    }

    /// An acknowledgement with a reason code and no properties.
    pub fn with_code(packet_id: PacketId, reason_code: ReasonCode) -> Ack {
        Ack {
            packet_id,
            reason_code,
            properties: LazyProperties::default(),
        }
    }

    pub(crate) fn decode(
        mut r: Reader,
        protocol: Protocol,
        kind: PacketType,
    ) -> Result<Ack, Error> {
        let packet_id = packet_id(&mut r)?;
        let mut ack = Ack::new(packet_id);
        // v5 §3.4.2.1: no reason code means Success; no property length
        // means no properties.
        if protocol.is_v5() && !r.is_empty() {
            let code = r.u8("reason code")?;
            ack.reason_code =
                ReasonCode::for_packet(code, kind).ok_or(Malformed::InvalidReasonCode {
                    code,
                    packet: kind.name(),
                })?;
            if !r.is_empty() {
                ack.properties = LazyProperties::decode(&mut r, Context::Ack)?;
            }
        }
        r.finish()?;
        Ok(ack)
    }

    fn is_short(&self, protocol: Protocol) -> bool {
        !protocol.is_v5() || (self.reason_code == ReasonCode::SUCCESS && self.properties.is_empty())
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> usize {
        if self.is_short(protocol) {
            return 2;
        }
        match self.properties.is_empty() {
            true => 3,
            false => 3 + self.properties.wire_len(),
        }
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if self.is_short(protocol) {
            return;
        }
        buf.put_u8(self.reason_code.value());
        if !self.properties.is_empty() {
            self.properties.encode(buf);
        }
    }
}

/// Reads a packet identifier, which must not be zero (MQTT-2.2.1-3).
pub(crate) fn packet_id(r: &mut Reader) -> Result<PacketId, Error> {
    let raw = r.u16("packet identifier")?;
    Ok(PacketId::new(raw).ok_or(Malformed::ZeroPacketId)?)
}
