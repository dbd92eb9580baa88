//! What the application sends: messages (the sending half of QoS 1 and 2),
//! acknowledgements of received messages, and other packets.

use super::{Connection, Outbound, PendingAck, State};
use crate::codec::{Ack, Disconnect, Publish};
use crate::error::{Error, Misuse};
use crate::properties::Properties;
use crate::string::MqttStr;
use crate::{Packet, PacketId, QoS, ReasonCode};

impl Connection {
    /// Sends an application message. QoS 1/2 messages get a packet
    /// identifier (returned) and are kept in the session until acknowledged.
    ///
    /// Fails without sending when the connection is not open, the inflight
    /// window is full ([`Misuse::InflightFull`]: wait for `Delivered`), the
    /// peer does not support the QoS or RETAIN, or the packet exceeds the
    /// peer's Maximum Packet Size (MQTT-3.1.2-24; a server treats that
    /// message as delivered, MQTT-3.1.2-25).
    pub fn publish(&mut self, mut publish: Publish) -> Result<Option<PacketId>, Error> {
        self.check_can_send(&publish)?;
        publish.dup = false;
        publish.packet_id = None;
        if publish.qos == QoS::AtMostOnce {
            self.transmit_publish(publish);
            return Ok(None);
        }
        if self.send_quota() == 0 {
            return Err(Misuse::InflightFull.into());
        }
        let control = &self.control_ids;
        let id = self.session.allocate_id(|id| control.contains(&id))?;
        publish.packet_id = Some(id);
        let entry = match publish.qos {
            QoS::AtLeastOnce => Outbound::AwaitPubAck(publish.clone()),
            _ => Outbound::AwaitPubRec(publish.clone()),
        };
        self.session.push(entry);
        self.transmit_publish(publish);
        Ok(Some(id))
    }

    fn check_can_send(&self, publish: &Publish) -> Result<(), Misuse> {
        if self.state != State::Open {
            return Err(Misuse::InvalidState(
                "publish before the connection is open",
            ));
        }
        // MQTT-3.2.2-11 / MQTT-3.2.2-14 (5.0): stay within what the server supports.
        if publish.qos > self.peer.maximum_qos {
            return Err(Misuse::InvalidValue("QoS above the peer's Maximum QoS"));
        }
        if publish.retain && !self.peer.retain_available {
            return Err(Misuse::InvalidValue(
                "RETAIN while the peer has no Retain Available",
            ));
        }
        let size = publish.encoded_len(self.protocol);
        let max = self.peer.maximum_packet_size;
        if size > max as usize {
            return Err(Misuse::ExceedsPeerMaximum { size, max });
        }
        Ok(())
    }

    /// Queues a PUBLISH, applying a topic alias when the peer allows them.
    pub(super) fn transmit_publish(&mut self, mut publish: Publish) {
        if self.protocol.is_v5() {
            let size = publish.encoded_len(self.protocol);
            // Setting an alias adds 3 bytes; never let that cross the limit.
            let room = size + 3 <= self.peer.maximum_packet_size as usize;
            self.outbound_aliases.apply(&mut publish, room);
        }
        self.transmit.push_back(Packet::Publish(publish));
    }

    /// Acknowledges a received QoS 1/2 message once the application has
    /// taken responsibility for it: PUBACK for QoS 1, PUBREC for QoS 2.
    /// An error `reason_code` (v5) refuses it; a refused QoS 2 message is
    /// not recorded, so the exchange ends there.
    pub fn ack(&mut self, packet_id: PacketId, reason_code: ReasonCode) -> Result<(), Misuse> {
        self.ack_with_reason(packet_id, reason_code, None)
    }

    /// Like [`Connection::ack`], with a Reason String saying why (v5; left
    /// out when the client asked for no problem information or it would
    /// not fit the client's Maximum Packet Size).
    pub fn ack_with_reason(
        &mut self,
        packet_id: PacketId,
        reason_code: ReasonCode,
        reason: Option<&'static str>,
    ) -> Result<(), Misuse> {
        let pending = self
            .awaiting_app_ack
            .iter_mut()
            .find(|p| p.packet_id == packet_id && p.answer.is_none())
            .ok_or(Misuse::InvalidState("ack for a message not awaiting one"))?;
        pending.answer = Some(if self.protocol.is_v5() {
            reason_code
        } else {
            ReasonCode::SUCCESS
        });
        pending.reason = reason;
        // MQTT-4.6.0-2 / MQTT-4.6.0-3: PUBACK and PUBREC leave in the order
        // the PUBLISH packets arrived, so only answered messages at the front
        // of the queue go out now.
        while let Some(&PendingAck {
            packet_id,
            qos,
            answer: Some(code),
            reason,
        }) = self.awaiting_app_ack.front()
        {
            self.awaiting_app_ack.pop_front();
            self.send_ack(packet_id, qos, code, reason);
        }
        Ok(())
    }

    fn send_ack(
        &mut self,
        packet_id: PacketId,
        qos: QoS,
        reason_code: ReasonCode,
        reason: Option<&'static str>,
    ) {
        if self.state == State::Closed {
            return;
        }
        if qos == QoS::ExactlyOnce && !reason_code.is_error() {
            // From here until PUBREL, a PUBLISH with this identifier is a
            // duplicate (MQTT-4.3.3-10 in 5.0).
            self.session.record_inbound_qos2(packet_id);
        }
        let packet = |ack: Ack| match qos {
            QoS::AtLeastOnce => Packet::PubAck(ack),
            _ => Packet::PubRec(ack),
        };
        let bare = packet(Ack::with_code(packet_id, reason_code));
        let text = reason.filter(|_| self.protocol.is_v5());
        let Some(text) = text.and_then(|r| MqttStr::try_from(r).ok()) else {
            self.transmit.push_back(bare);
            return;
        };
        // Only acks that carry a Reason String pay for fitting.
        let mut ack = Ack::with_code(packet_id, reason_code);
        ack.properties.reason_string = Some(text);
        let packet = self.fit_to_peer(packet(ack)).unwrap_or(bare);
        self.transmit.push_back(packet);
    }

    /// Reserves a packet identifier for a SUBSCRIBE or UNSUBSCRIBE; it is
    /// free again when the SUBACK / UNSUBACK arrives.
    pub fn allocate_packet_id(&mut self) -> Result<PacketId, Misuse> {
        let control = &self.control_ids;
        let id = self.session.allocate_id(|id| control.contains(&id))?;
        self.control_ids.push(id);
        Ok(id)
    }

    /// Sends a packet that has no exchange to track here: SUBSCRIBE and
    /// UNSUBSCRIBE (with an identifier from `allocate_packet_id`), SUBACK,
    /// UNSUBACK, AUTH. Use [`Connection::publish`], [`Connection::ack`],
    /// [`Connection::disconnect`] for the others.
    pub fn send(&mut self, packet: Packet) -> Result<(), Misuse> {
        let allowed = match (&packet, self.is_server()) {
            (Packet::Subscribe(_) | Packet::Unsubscribe(_), false) => true,
            (Packet::SubAck(_) | Packet::UnsubAck(_), true) => true,
            // MQTT-4.12.0-5, -6, -7, MQTT-4.12.1-1 (5.0): AUTH only with
            // enhanced authentication, naming the CONNECT's method.
            (Packet::Auth(auth), _) => {
                let method = &auth.properties.authentication_method;
                self.protocol.is_v5()
                    && self.auth_method.is_some()
                    && method.as_ref() == self.auth_method.as_deref()
            }
            _ => false,
        };
        if !allowed || !self.may_send_now(&packet) {
            return Err(Misuse::InvalidState(
                "this packet cannot be sent with send() now",
            ));
        }
        let packet = self.fit_to_peer(packet)?;
        self.transmit.push_back(packet);
        Ok(())
    }

    /// Whether `packet` may go out in the current state. Before its CONNACK
    /// a server sends nothing but AUTH (MQTT-3.2.0-1), and so does a client
    /// doing enhanced authentication until it gets one (MQTT-3.1.2-30).
    fn may_send_now(&self, packet: &Packet) -> bool {
        let auth = matches!(packet, Packet::Auth(_));
        match self.state {
            State::Open => true,
            State::AwaitAccept => auth,
            State::AwaitConnAck => auth || self.auth_method.is_none(),
            State::AwaitConnect | State::Closed => false,
        }
    }

    /// Makes `packet` fit what the peer accepts. The Reason String and User
    /// Properties are optional, so they are left out rather than exceed the
    /// peer's Maximum Packet Size (MQTT-3.2.2-19, -20, MQTT-3.9.2-1, -2,
    /// MQTT-3.11.2-1, -2, MQTT-3.14.2-3, -4, MQTT-3.15.2-2, -3), and a
    /// server leaves them out of all but CONNACK and DISCONNECT when the
    /// client set Request Problem Information to 0 (MQTT-3.1.2-29).
    pub(super) fn fit_to_peer(&self, mut packet: Packet) -> Result<Packet, Misuse> {
        let max = self.peer.maximum_packet_size;
        let size = packet.encoded_len(self.protocol);
        let quiet = self.is_server()
            && !self.problem_information
            && !matches!(packet, Packet::ConnAck(_) | Packet::Disconnect(_));
        if size > max as usize || quiet {
            if let Some(properties) = diagnostics(&mut packet) {
                properties.reason_string = None;
                properties.user_properties.clear();
            }
        }
        let size = packet.encoded_len(self.protocol);
        if size > max as usize {
            return Err(Misuse::ExceedsPeerMaximum { size, max });
        }
        Ok(packet)
    }

    /// Drops every packet queued and not yet taken by
    /// [`Connection::poll_transmit`]: acknowledgements that must not go
    /// out after all (their message could not be stored). Messages in
    /// flight stay in the session and are sent again on resume.
    pub fn discard_unsent(&mut self) {
        self.transmit.clear();
    }

    /// Ends the connection without a word: nothing queued is sent, not even
    /// DISCONNECT. For a server whose CONNACK could not be sent after all.
    pub fn abort(&mut self) {
        self.transmit.clear();
        self.state = State::Closed;
    }

    /// Ends the connection with DISCONNECT (in v3 the reason code and
    /// properties are not sent). A 3.x server sends none: DISCONNECT goes
    /// from client to server only before 5.0 (§3.14 of 3.1.1), so it just
    /// closes.
    pub fn disconnect(&mut self, reason_code: ReasonCode, properties: Properties) {
        if self.state == State::Closed {
            return;
        }
        let server = self.is_server();
        let sends = match server {
            true => self.state == State::Open && self.protocol.is_v5(),
            false => true,
        };
        if sends {
            let disconnect = Packet::Disconnect(Disconnect {
                reason_code,
                properties: properties.into(),
            });
            // The connection ends either way; at worst with the bare code.
            let bare = Packet::Disconnect(Disconnect::new(reason_code));
            let disconnect = self.fit_to_peer(disconnect).unwrap_or(bare);
            self.transmit.push_back(disconnect);
        }
        self.state = State::Closed;
    }
}

/// The properties of `packet` that carry only diagnostics a sender may
/// leave out: Reason String and User Properties.
fn diagnostics(packet: &mut Packet) -> Option<&mut Properties> {
    match packet {
        Packet::ConnAck(p) => Some(&mut p.properties),
        Packet::SubAck(p) | Packet::UnsubAck(p) => Some(&mut p.properties),
        Packet::Disconnect(p) | Packet::Auth(p) => Some(&mut p.properties),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            Some(&mut p.properties)
        }
        _ => None,
    }
}
