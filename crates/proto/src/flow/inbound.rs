//! Packets from the peer: dispatch by state, and the receiving half of the
//! QoS 1 and QoS 2 exchanges.

use std::time::Instant;

use super::{Connection, Event, Outbound, PendingAck, State};
use crate::codec::{Ack, Disconnect, Publish};
use crate::error::{Error, Violation};
use crate::{Packet, PacketId, QoS, ReasonCode};

impl Connection {
    /// Handles one packet from the peer, received at `now`.
    ///
    /// An `Err` is the peer's fault: the reply the spec requires is queued,
    /// the connection is closed, and the error says why (for the log).
    /// Packets after the connection closed are ignored.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) -> Result<(), Error> {
        match (self.state, packet) {
            (State::Closed, _) => Ok(()),
            // §4.12: the enhanced authentication exchange runs while the
            // application decides on CONNECT.
            (State::AwaitAccept, Packet::Auth(auth)) => {
                self.last_received = Some(now);
                let result = self.on_auth(auth, true);
                if let Err(error) = &result {
                    self.fail(error);
                }
                result
            }
            (State::AwaitAccept, packet) => {
                self.deferred
                    .get_or_insert_with(Box::default)
                    .push_back((now, packet));
                Ok(())
            }
            (_, packet) => self.handle_open(now, packet),
        }
    }

    fn handle_open(&mut self, now: Instant, packet: Packet) -> Result<(), Error> {
        self.last_received = Some(now);
        let result = self.dispatch(now, packet);
        if let Err(error) = &result {
            self.fail(error);
        }
        result
    }

    fn dispatch(&mut self, now: Instant, packet: Packet) -> Result<(), Error> {
        match (self.state, packet) {
            (State::AwaitConnect, Packet::Connect(connect)) => self.on_connect(connect),
            // MQTT-3.1.0-1: the first packet from the client must be CONNECT.
            (State::AwaitConnect, _) => return Err(Violation::FirstPacketNotConnect.into()),
            (State::AwaitConnAck, Packet::ConnAck(connack)) => self.on_connack(now, connack)?,
            (State::AwaitConnAck, Packet::Auth(auth)) => self.events.push_back(Event::Auth(auth)),
            (State::AwaitConnAck, Packet::Disconnect(d)) => self.on_disconnect(d)?,
            (State::AwaitConnAck, p) => return Err(unexpected(&p)),
            (_, packet) => self.dispatch_open(packet)?,
        }
        Ok(())
    }

    fn dispatch_open(&mut self, packet: Packet) -> Result<(), Error> {
        let server = self.is_server();
        match packet {
            // MQTT-3.1.0-2: a second CONNECT is a Protocol Error.
            Packet::Connect(_) if server => return Err(Violation::SecondConnect.into()),
            Packet::Publish(p) => self.on_publish(p)?,
            Packet::PubAck(ack) => self.on_puback(ack)?,
            Packet::PubRec(ack) => self.on_pubrec(ack)?,
            Packet::PubRel(ack) => self.on_pubrel(ack)?,
            Packet::PubComp(ack) => self.on_pubcomp(ack)?,
            Packet::Subscribe(s) if server => self.events.push_back(Event::Subscribe(s)),
            Packet::Unsubscribe(u) if server => self.events.push_back(Event::Unsubscribe(u)),
            Packet::SubAck(s) if !server => {
                self.control_ids.retain(|&id| id != s.packet_id);
                self.events.push_back(Event::SubAck(s));
            }
            Packet::UnsubAck(s) if !server => {
                self.control_ids.retain(|&id| id != s.packet_id);
                self.events.push_back(Event::UnsubAck(s));
            }
            Packet::PingReq if server => self.transmit.push_back(Packet::PingResp),
            Packet::PingResp if !server => self.ping_sent = None,
            Packet::Disconnect(d) => self.on_disconnect(d)?,
            Packet::Auth(a) if self.protocol.is_v5() => self.on_auth(a, false)?,
            // Catalogue F12: packets only the other role may send.
            other => return Err(unexpected(&other)),
        }
        Ok(())
    }

    /// An AUTH packet. A server takes one only when CONNECT named an
    /// Authentication Method (MQTT-4.12.0-7) and it names the same one
    /// (MQTT-4.12.0-5, MQTT-4.12.1-1): Continue while CONNECT is pending
    /// (MQTT-4.12.0-3), Continue or Re-authenticate once connected.
    fn on_auth(&mut self, auth: Disconnect, connecting: bool) -> Result<(), Error> {
        if self.is_server() {
            let method = &auth.properties.authentication_method;
            let code = auth.reason_code;
            let allowed = match connecting {
                true => code == ReasonCode::CONTINUE_AUTHENTICATION,
                false => {
                    code == ReasonCode::CONTINUE_AUTHENTICATION
                        || code == ReasonCode::RE_AUTHENTICATE
                }
            };
            if self.auth_method.is_none()
                || method.as_ref() != self.auth_method.as_deref()
                || !allowed
            {
                return Err(Violation::UnexpectedPacket("AUTH").into());
            }
        }
        self.events.push_back(Event::Auth(auth));
        Ok(())
    }

    fn on_publish(&mut self, mut publish: Publish) -> Result<(), Error> {
        self.check_publish(&publish)?;
        self.inbound_aliases.resolve(&mut publish)?;
        let Some(id) = publish.packet_id else {
            self.events.push_back(Event::Message(publish));
            return Ok(());
        };
        if self.is_duplicate(id, publish.qos) {
            return Ok(());
        }
        // §3.3.4: more unacknowledged QoS 1/2 messages than we announced
        // in Receive Maximum.
        if self.inbound_inflight() >= usize::from(self.local.receive_maximum) {
            return Err(Violation::ReceiveMaximumExceeded.into());
        }
        self.awaiting_app_ack.push_back(PendingAck {
            packet_id: id,
            qos: publish.qos,
            answer: None,
            reason: None,
        });
        self.events.push_back(Event::Message(publish));
        Ok(())
    }

    fn check_publish(&self, publish: &Publish) -> Result<(), Violation> {
        // MQTT-3.3.4-6: a client's PUBLISH never carries Subscription Identifiers.
        if self.is_server() && !publish.properties.subscription_identifiers.is_empty() {
            return Err(Violation::SubscriptionIdFromClient);
        }
        // §3.2.2.3.4 / §3.2.2.3.5: QoS or RETAIN beyond what we announced.
        if publish.qos > self.local.maximum_qos {
            return Err(Violation::QosNotSupported);
        }
        if publish.retain && !self.local.retain_available {
            return Err(Violation::RetainNotSupported);
        }
        Ok(())
    }

    /// A QoS 2 PUBLISH whose identifier is already recorded is a duplicate:
    /// answer PUBREC again if we did before, but never deliver it again
    /// (MQTT-4.3.3-10 in 5.0; catalogue P8). A QoS 1 duplicate still
    /// waiting for the application is not delivered twice either.
    fn is_duplicate(&mut self, id: PacketId, qos: QoS) -> bool {
        if qos == QoS::ExactlyOnce && self.session.has_inbound_qos2(id) {
            self.transmit.push_back(Packet::PubRec(Ack::new(id)));
            return true;
        }
        self.is_awaiting_ack(id)
    }

    pub(super) fn is_awaiting_ack(&self, id: PacketId) -> bool {
        self.awaiting_app_ack.iter().any(|p| p.packet_id == id)
    }

    /// QoS 1/2 messages received and not yet answered with PUBACK / PUBCOMP.
    pub(super) fn inbound_inflight(&self) -> usize {
        self.awaiting_app_ack.len() + self.session.inbound_qos2().count()
    }

    fn on_puback(&mut self, ack: Ack) -> Result<(), Error> {
        let Some(index) = self.session.position(ack.packet_id) else {
            return Ok(());
        };
        match self.session.get(index) {
            Some(Outbound::AwaitPubAck(_)) => self.complete(index, ack),
            // Catalogue A5: PUBACK for a QoS 2 message.
            _ => Err(Violation::AckMismatch("PUBACK").into()),
        }
    }

    fn on_pubrec(&mut self, ack: Ack) -> Result<(), Error> {
        let id = ack.packet_id;
        let Some(index) = self.session.position(id) else {
            // §3.6.2.1: PUBREL 0x92 for an identifier we do not know.
            let code = self.not_found();
            self.transmit
                .push_back(Packet::PubRel(Ack::with_code(id, code)));
            return Ok(());
        };
        match self.session.get(index) {
            Some(Outbound::AwaitPubRec(_)) if ack.reason_code.is_error() => {
                self.complete(index, ack)
            }
            Some(Outbound::AwaitPubRec(_)) => {
                // MQTT-4.3.3-4 (5.0): answer PUBREC with PUBREL and discard
                // the message.
                self.session.replace(index, Outbound::AwaitPubComp(id));
                self.events.push_back(Event::Received { packet_id: id });
                self.transmit.push_back(Packet::PubRel(Ack::new(id)));
                Ok(())
            }
            Some(Outbound::AwaitPubComp(_)) => {
                // A repeated PUBREC gets the PUBREL again.
                self.transmit.push_back(Packet::PubRel(Ack::new(id)));
                Ok(())
            }
            _ => Err(Violation::AckMismatch("PUBREC").into()),
        }
    }

    fn on_pubrel(&mut self, ack: Ack) -> Result<(), Error> {
        let id = ack.packet_id;
        if self.session.release_inbound_qos2(id) {
            // MQTT-4.3.3-11 (5.0): PUBCOMP with the same identifier.
            self.events.push_back(Event::Released { packet_id: id });
            self.transmit.push_back(Packet::PubComp(Ack::new(id)));
            return Ok(());
        }
        if self.is_awaiting_ack(id) {
            return Err(Violation::AckMismatch("PUBREL before PUBREC").into());
        }
        // Catalogue A2: PUBCOMP 0x92 for an unknown identifier.
        let code = self.not_found();
        self.transmit
            .push_back(Packet::PubComp(Ack::with_code(id, code)));
        Ok(())
    }

    fn on_pubcomp(&mut self, ack: Ack) -> Result<(), Error> {
        let Some(index) = self.session.position(ack.packet_id) else {
            return Ok(());
        };
        match self.session.get(index) {
            Some(Outbound::AwaitPubComp(_)) => self.complete(index, ack),
            // Catalogue A5: PUBCOMP before PUBREC, or for a QoS 1 message.
            _ => Err(Violation::AckMismatch("PUBCOMP").into()),
        }
    }

    /// Ends an outgoing exchange: the identifier is free again.
    fn complete(&mut self, index: usize, ack: Ack) -> Result<(), Error> {
        self.session.remove(index);
        let (packet_id, reason_code) = (ack.packet_id, ack.reason_code);
        self.events.push_back(Event::Delivered {
            packet_id,
            reason_code,
        });
        Ok(())
    }

    fn not_found(&self) -> ReasonCode {
        match self.protocol.is_v5() {
            true => ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            false => ReasonCode::SUCCESS,
        }
    }

    fn on_disconnect(&mut self, disconnect: Disconnect) -> Result<(), Error> {
        let expiry = disconnect.properties.session_expiry_interval.unwrap_or(0);
        // §3.14.2.2.2: Session Expiry may not be raised from 0 in DISCONNECT.
        if self.is_server() && self.session_expiry_zero && expiry > 0 {
            return Err(Violation::SessionExpiryAfterZero.into());
        }
        self.state = State::Closed;
        self.events.push_back(Event::Disconnected(disconnect));
        Ok(())
    }
}

fn unexpected(packet: &Packet) -> Error {
    Violation::UnexpectedPacket(packet.packet_type().name()).into()
}
