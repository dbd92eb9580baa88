//! SUBACK (§3.9) and UNSUBACK (§3.11): a packet identifier and one reason
//! code per filter. (3.x UNSUBACK has no codes.)

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::ack::packet_id;
use super::connect::decode_properties;
use super::wire::Reader;
use crate::error::{Error, Malformed};
use crate::properties::{Context, LazyProperties};
use crate::{PacketId, PacketType, Protocol, ReasonCode};

/// The answer to SUBSCRIBE or UNSUBSCRIBE: one code per filter, in order
/// (MQTT-3.9.3-1). In 3.x, SUBACK codes other than the granted QoS are sent
/// as 0x80 and UNSUBACK carries none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubAck {
    /// The SUBSCRIBE or UNSUBSCRIBE this answers.
    pub packet_id: PacketId,
    /// Properties (5.0 only).
    pub properties: LazyProperties,
    /// One per filter.
    pub reason_codes: Vec<ReasonCode>,
}

impl SubAck {
    pub(crate) fn decode(
        mut r: Reader,
        protocol: Protocol,
        kind: PacketType,
    ) -> Result<SubAck, Error> {
        let packet_id = packet_id(&mut r)?;
        let ctx = if kind == PacketType::SubAck {
            Context::SubAck
        } else {
            Context::UnsubAck
        };
        let properties = decode_properties(&mut r, protocol, ctx)?;
        let mut reason_codes = Vec::new();
        if Self::has_codes(protocol, kind) {
            reason_codes.reserve_exact(r.remaining());
            while !r.is_empty() {
                let code = r.u8("reason code")?;
                reason_codes.push(decode_code(code, protocol, kind)?);
            }
        }
        r.finish()?;
        Ok(SubAck {
            packet_id,
            properties: properties.into(),
            reason_codes,
        })
    }

    fn has_codes(protocol: Protocol, kind: PacketType) -> bool {
        protocol.is_v5() || kind == PacketType::SubAck
    }

    pub(crate) fn body_len(&self, protocol: Protocol, kind: PacketType) -> usize {
        let props = self.properties.wire_len_in(protocol);
        let codes = if Self::has_codes(protocol, kind) {
            self.reason_codes.len()
        } else {
            0
        };
        2 + props + codes
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, kind: PacketType, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if protocol.is_v5() {
            self.properties.encode(buf);
            buf.extend(self.reason_codes.iter().map(|c| c.value()));
        } else if kind == PacketType::SubAck {
            buf.extend(self.reason_codes.iter().map(|c| match c.is_error() {
                true => 0x80,
                false => c.value(),
            }));
        }
    }
}

fn decode_code(code: u8, protocol: Protocol, kind: PacketType) -> Result<ReasonCode, Malformed> {
    let valid = match protocol {
        Protocol::V5 => ReasonCode::for_packet(code, kind),
        // MQTT-3.9.3-2 (3.1.1): 0x00, 0x01, 0x02 and 0x80 only.
        _ if matches!(code, 0..=2 | 0x80) => Some(ReasonCode::from_u8(code)),
        _ => None,
    };
    valid.ok_or(Malformed::InvalidReasonCode {
        code,
        packet: kind.name(),
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn v311_unsuback_with_a_byte_after_the_packet_identifier_has_trailing_bytes() {
        // §3.11 (3.1.1): no payload, so the extra byte is not a reason code.
        let r = Reader::new(Bytes::from_static(&[0, 1, 0]));
        let error = SubAck::decode(r, Protocol::V3_1_1, PacketType::UnsubAck).unwrap_err();
        assert_eq!(error, Malformed::TrailingBytes(1).into());
    }
}
