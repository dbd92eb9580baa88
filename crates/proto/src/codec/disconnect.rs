//! DISCONNECT (§3.14) and AUTH (§3.15): a reason code and properties, both
//! omitted when the code is Success and there are no properties.

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::wire::Reader;
use crate::error::{Error, Malformed, Violation};
use crate::properties::{Context, LazyProperties};
use crate::{PacketType, Protocol, ReasonCode};

/// The body of DISCONNECT and AUTH. In 3.x DISCONNECT is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disconnect {
    /// Why (5.0); Normal disconnection in 3.x.
    pub reason_code: ReasonCode,
    /// Properties (5.0 only).
    pub properties: LazyProperties,
}

/// AUTH has the same shape as DISCONNECT.
pub type Auth = Disconnect;

impl Disconnect {
    /// A body with this reason code and no properties.
    pub fn new(reason_code: ReasonCode) -> Disconnect {
        Disconnect {
            reason_code,
            properties: LazyProperties::default(),
        }
    }

    pub(crate) fn decode(
        mut r: Reader,
        protocol: Protocol,
        kind: PacketType,
    ) -> Result<Disconnect, Error> {
        let mut packet = Disconnect::default();
        if protocol.is_v5() && !r.is_empty() {
            let code = r.u8("reason code")?;
            packet.reason_code = match ReasonCode::for_packet(code, kind) {
                Some(code) => code,
                // MQTT-3.14.2-1; catalogue A7 treats it as a Protocol Error.
                None if kind == PacketType::Disconnect => {
                    return Err(Violation::DisconnectReason(code).into())
                }
                None => {
                    return Err(Malformed::InvalidReasonCode {
                        code,
                        packet: "AUTH",
                    }
                    .into())
                }
            };
            if !r.is_empty() {
                let ctx = if kind == PacketType::Auth {
                    Context::Auth
                } else {
                    Context::Disconnect
                };
                packet.properties = LazyProperties::decode(&mut r, ctx)?;
            }
        }
        r.finish()?;
        Ok(packet)
    }

    fn is_empty(&self, protocol: Protocol) -> bool {
        !protocol.is_v5() || (self.reason_code == ReasonCode::SUCCESS && self.properties.is_empty())
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> usize {
        match self.is_empty(protocol) {
            true => 0,
            false => 1 + self.properties.wire_len(),
        }
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, buf: &mut BytesMut) {
        if !self.is_empty(protocol) {
            buf.put_u8(self.reason_code.value());
            self.properties.encode(buf);
        }
    }
}
