//! CONNACK (§3.2): the server's answer to CONNECT.

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::connect::decode_properties;
use super::wire::Reader;
use crate::error::{Error, Malformed};
use crate::properties::{Context, LazyProperties};
use crate::reason::v3_connack;
use crate::{PacketType, Protocol, ReasonCode};

/// Accepts or refuses a connection. v3.x return codes are mapped to and
/// from the v5 reason codes of the same meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnAck {
    /// Whether the server resumed a stored session.
    pub session_present: bool,
    /// Success, or why the connection is refused.
    pub reason_code: ReasonCode,
    /// CONNACK properties (5.0 only).
    pub properties: LazyProperties,
}

impl ConnAck {
    pub(crate) fn decode(mut r: Reader, protocol: Protocol) -> Result<ConnAck, Error> {
        let flags = r.u8("acknowledge flags")?;
        if flags & 0xFE != 0 {
            // MQTT-3.2.2-1 (3.1.1): bits 7-1 are reserved.
            return Err(Malformed::ReservedBit("CONNACK flags").into());
        }
        let code = r.u8("connect reason code")?;
        let reason_code = match protocol {
            Protocol::V5 => ReasonCode::for_packet(code, PacketType::ConnAck),
            _ => v3_connack::decode(code),
        }
        .ok_or(Malformed::InvalidReasonCode {
            code,
            packet: "CONNACK",
        })?;
        let properties = decode_properties(&mut r, protocol, Context::ConnAck)?;
        r.finish()?;
        Ok(ConnAck {
            session_present: flags & 1 != 0,
            reason_code,
            properties: properties.into(),
        })
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> usize {
        2 + self.properties.wire_len_in(protocol)
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, buf: &mut BytesMut) {
        buf.put_u8(u8::from(self.session_present));
        match protocol {
            Protocol::V5 => {
                buf.put_u8(self.reason_code.value());
                self.properties.encode(buf);
            }
            _ => buf.put_u8(v3_connack::encode(self.reason_code)),
        }
    }
}
