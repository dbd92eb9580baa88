//! UNSUBSCRIBE (§3.10): topic filters to remove.

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::ack::packet_id;
use super::connect::decode_properties;
use super::wire::{self, Reader};
use crate::error::{Error, Violation};
use crate::properties::{Context, LazyProperties};
use crate::string::MqttStr;
use crate::{PacketId, Protocol};

/// A request to remove subscriptions. Filters stay strings for the same
/// reason as in [`super::SubscribeFilter`]: each gets its own UNSUBACK code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// Identifier the UNSUBACK will echo.
    pub packet_id: PacketId,
    /// UNSUBSCRIBE properties (5.0 only).
    pub properties: LazyProperties,
    /// At least one filter.
    pub filters: Vec<MqttStr>,
}

impl Unsubscribe {
    pub(crate) fn decode(mut r: Reader, protocol: Protocol) -> Result<Unsubscribe, Error> {
        let packet_id = packet_id(&mut r)?;
        let properties = decode_properties(&mut r, protocol, Context::Unsubscribe)?;
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(r.string("topic filter")?);
        }
        if filters.is_empty() {
            return Err(Violation::NoTopicFilters("UNSUBSCRIBE").into());
        }
        Ok(Unsubscribe {
            packet_id,
            properties: properties.into(),
            filters,
        })
    }

    pub(crate) fn body_len(&self, protocol: Protocol) -> usize {
        let props = self.properties.wire_len_in(protocol);
        2 + props + self.filters.iter().map(|f| 2 + f.len()).sum::<usize>()
    }

    pub(crate) fn encode_body(&self, protocol: Protocol, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        self.properties.encode_in(protocol, buf);
        for f in &self.filters {
            wire::put_str(buf, f);
        }
    }
}
