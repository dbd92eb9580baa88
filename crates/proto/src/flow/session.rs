//! The part of a connection's state that outlives it: packet identifiers,
//! unacknowledged outgoing messages and QoS 2 receive state. It is plain
//! data with serde, so the broker and client stores can persist it and a
//! restarted process can resume exactly where the acknowledged state was.

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::codec::Publish;
use crate::error::Misuse;
use crate::PacketId;

/// Session state of one side of a connection (MQTT 5.0 §4.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// The last packet identifier handed out.
    last_packet_id: u16,
    /// Outgoing QoS 1/2 messages not yet completed, in the order sent, so
    /// they are resent in that order after a reconnect (MQTT-4.6.0-1).
    outbound: VecDeque<Outbound>,
    /// QoS 2 messages received and answered with PUBREC, awaiting PUBREL.
    /// A PUBLISH with one of these ids is a duplicate and is not delivered
    /// again (MQTT-4.3.3-10 in 5.0, MQTT-4.3.3-2 in 3.1.1).
    inbound_qos2: BTreeSet<u16>,
}

/// An outgoing QoS 1/2 message and the acknowledgement it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outbound {
    /// QoS 1, sent, awaiting PUBACK.
    AwaitPubAck(Publish),
    /// QoS 2, sent, awaiting PUBREC.
    AwaitPubRec(Publish),
    /// QoS 2, PUBREL sent, awaiting PUBCOMP.
    AwaitPubComp(PacketId),
}

impl Outbound {
    /// The packet identifier this entry holds.
    pub fn packet_id(&self) -> Option<PacketId> {
        match self {
            Outbound::AwaitPubAck(p) | Outbound::AwaitPubRec(p) => p.packet_id,
            Outbound::AwaitPubComp(id) => Some(*id),
        }
    }
}

impl SessionState {
    /// A fresh session with nothing in flight.
    pub fn new() -> SessionState {
        SessionState::default()
    }

    /// A session as a store kept it: outgoing messages in flight in the
    /// order they were sent, and the QoS 2 identifiers received and not yet
    /// released. Identifiers continue after the last one sent.
    pub fn restore(outbound: Vec<Outbound>, inbound_qos2: impl IntoIterator<Item = u16>) -> Self {
        let last_packet_id = outbound
            .last()
            .and_then(Outbound::packet_id)
            .map_or(0, PacketId::get);
        SessionState {
            last_packet_id,
            outbound: outbound.into(),
            inbound_qos2: inbound_qos2.into_iter().collect(),
        }
    }

    /// Whether nothing is in flight in either direction.
    pub fn is_empty(&self) -> bool {
        self.outbound.is_empty() && self.inbound_qos2.is_empty()
    }

    /// Outgoing messages in flight, oldest first.
    pub fn outbound(&self) -> impl Iterator<Item = &Outbound> {
        self.outbound.iter()
    }

    /// Number of outgoing QoS 1/2 messages in flight.
    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }

    /// QoS 2 packet identifiers received and awaiting PUBREL.
    pub fn inbound_qos2(&self) -> impl Iterator<Item = u16> + '_ {
        self.inbound_qos2.iter().copied()
    }

    /// Takes every outgoing message that still carries a PUBLISH, for an
    /// application whose peer lost the session (the messages are not lost:
    /// it may publish them again as new messages).
    pub(crate) fn take_unsent(&mut self) -> Vec<Publish> {
        let unsent = self.outbound.drain(..).filter_map(|o| match o {
            Outbound::AwaitPubAck(p) | Outbound::AwaitPubRec(p) => Some(p),
            Outbound::AwaitPubComp(_) => None,
        });
        let unsent = unsent.collect();
        self.inbound_qos2.clear();
        unsent
    }

    /// A packet identifier not used by any outgoing message or by `busy`
    /// (MQTT-2.2.1-3: an identifier is reused only after its exchange ends).
    pub(crate) fn allocate_id(
        &mut self,
        busy: impl Fn(PacketId) -> bool,
    ) -> Result<PacketId, Misuse> {
        let mut id = PacketId::new(self.last_packet_id).map_or(PacketId::MIN, PacketId::next);
        // Fast path, taken on every message: identifiers are allocated in
        // order and entries are pushed in that order, so every identifier in
        // use lies in the cyclic range from the oldest entry's to the last
        // allocated. The next one is outside that range unless the range is
        // the whole circle, which is exactly when it is the oldest entry's.
        let oldest = self.outbound.front().and_then(Outbound::packet_id);
        if !busy(id) && oldest != Some(id) {
            self.last_packet_id = id.get();
            return Ok(id);
        }
        for _ in 0..u16::MAX {
            if !busy(id) && self.position(id).is_none() {
                self.last_packet_id = id.get();
                return Ok(id);
            }
            id = id.next();
        }
        Err(Misuse::PacketIdsExhausted)
    }

    pub(crate) fn position(&self, id: PacketId) -> Option<usize> {
        // Acknowledgements mostly arrive in order, so the front is the
        // likely hit.
        self.outbound.iter().position(|o| o.packet_id() == Some(id))
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Outbound> {
        self.outbound.get(index)
    }

    pub(crate) fn push(&mut self, entry: Outbound) {
        self.outbound.push_back(entry);
    }

    pub(crate) fn replace(&mut self, index: usize, entry: Outbound) {
        if let Some(slot) = self.outbound.get_mut(index) {
            *slot = entry;
        }
    }

    pub(crate) fn remove(&mut self, index: usize) -> Option<Outbound> {
        self.outbound.remove(index)
    }

    pub(crate) fn has_inbound_qos2(&self, id: PacketId) -> bool {
        self.inbound_qos2.contains(&id.get())
    }

    pub(crate) fn record_inbound_qos2(&mut self, id: PacketId) {
        self.inbound_qos2.insert(id.get());
    }

    pub(crate) fn release_inbound_qos2(&mut self, id: PacketId) -> bool {
        self.inbound_qos2.remove(&id.get())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::topic::TopicName;

    fn entry(id: PacketId) -> Outbound {
        let mut p = Publish::new(TopicName::try_from("t").unwrap(), &b""[..]);
        p.qos = crate::QoS::AtLeastOnce;
        p.packet_id = Some(id);
        Outbound::AwaitPubAck(p)
    }

    proptest! {
        /// MQTT-2.2.1-3 (5.0): a new identifier is one not in use, whatever
        /// order acknowledgements come in, across wrap-around.
        #[test]
        fn allocated_identifiers_are_never_in_use(
            ops in proptest::collection::vec((any::<bool>(), any::<u16>()), 1..3000),
            start in any::<u16>(),
        ) {
            let mut s = SessionState { last_packet_id: start, ..SessionState::default() };
            for (allocate, pick) in ops {
                if allocate || s.outbound.is_empty() {
                    let id = s.allocate_id(|_| false).unwrap();
                    prop_assert!(s.position(id).is_none(), "{id:?} was in use");
                    s.push(entry(id));
                } else {
                    let index = usize::from(pick) % s.outbound.len();
                    s.remove(index);
                }
            }
        }
    }

    #[test]
    fn after_a_full_circle_the_oldest_identifier_is_not_handed_out_again() {
        // Identifiers wrapped all the way round: the next in sequence is the
        // oldest one still in flight, and must be skipped.
        let oldest = PacketId::new(11).unwrap();
        let mut s = SessionState {
            last_packet_id: 10,
            ..SessionState::default()
        };
        s.push(entry(oldest));
        assert_eq!(s.allocate_id(|_| false), Ok(PacketId::new(12).unwrap()));
    }
}
