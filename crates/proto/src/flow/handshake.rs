//! CONNECT / CONNACK: what each side learns from the other, and resuming
//! the session.

use std::time::{Duration, Instant};

use super::{alias, Connection, Event, Role, SessionState, State};
use crate::codec::{Ack, ConnAck, Connect, Disconnect};
use crate::error::{Error, Incompatible, Misuse, Violation};
use crate::flow::Outbound;
use crate::{Packet, Protocol, ReasonCode};

impl Connection {
    /// Server: the first packet, CONNECT.
    pub(super) fn on_connect(&mut self, connect: Box<Connect>) {
        self.protocol = connect.protocol;
        self.keep_alive = Duration::from_secs(connect.keep_alive.into());
        self.peer.apply_announced(&connect.properties);
        let alias_max = connect.properties.topic_alias_maximum.unwrap_or(0);
        let alias_max = alias_max.min(self.config.max_outbound_aliases);
        self.outbound_aliases = alias::Outbound::new(alias_max);
        self.session_expiry_zero = connect.properties.session_expiry_interval.unwrap_or(0) == 0;
        self.clean_start = connect.clean_start;
        self.auth_method = connect
            .properties
            .authentication_method
            .clone()
            .map(Box::new);
        self.problem_information = connect.properties.request_problem_information != Some(false);
        self.connect_deadline = None;
        self.state = State::AwaitAccept;
        self.events.push_back(Event::Connect(connect));
    }

    /// Server: accepts the client with `connack` (its reason code must be
    /// Success) and resumes `session` if `connack.session_present`; else
    /// the session starts empty. Limits announced in `connack`'s properties
    /// are enforced from now on. Packets that arrived meanwhile are handled
    /// now, so this can fail like [`Connection::handle_packet`].
    pub fn accept(
        &mut self,
        now: Instant,
        connack: ConnAck,
        session: SessionState,
    ) -> Result<(), Error> {
        if self.state != State::AwaitAccept || connack.reason_code.is_error() {
            return Err(
                Misuse::InvalidState("accept needs a pending CONNECT and a Success code").into(),
            );
        }
        // MQTT-4.12.0-5, MQTT-4.12.0-6 (5.0): the CONNACK names the
        // CONNECT's Authentication Method, or none if it had none.
        if connack.properties.authentication_method.as_ref() != self.auth_method.as_deref() {
            return Err(Misuse::InvalidValue(
                "CONNACK Authentication Method differs from CONNECT's",
            )
            .into());
        }
        let reply = self.fit_to_peer(Packet::ConnAck(connack.clone()))?;
        self.local.apply_announced(&connack.properties);
        let alias_max = connack.properties.topic_alias_maximum.unwrap_or(0);
        self.inbound_aliases = alias::Inbound::new(alias_max);
        if let Some(keep_alive) = connack.properties.server_keep_alive {
            self.keep_alive = Duration::from_secs(keep_alive.into());
        }
        let resume = connack.session_present;
        self.session = if resume { session } else { SessionState::new() };
        self.transmit.push_back(reply);
        self.state = State::Open;
        self.last_received = Some(now);
        if resume {
            self.resend();
        }
        while let Some((at, packet)) = self.deferred.as_mut().and_then(|d| d.pop_front()) {
            self.handle_packet(at, packet)?;
        }
        self.deferred = None;
        Ok(())
    }

    /// Server: refuses the client with `connack` (an error code) and closes.
    pub fn refuse(&mut self, connack: ConnAck) -> Result<(), Misuse> {
        if self.state != State::AwaitAccept || !connack.reason_code.is_error() {
            return Err(Misuse::InvalidState(
                "refuse needs a pending CONNECT and an error code",
            ));
        }
        let reply = self.fit_to_peer(Packet::ConnAck(connack))?;
        self.transmit.push_back(reply);
        self.state = State::Closed;
        Ok(())
    }

    /// Client: the server's answer.
    pub(super) fn on_connack(&mut self, now: Instant, connack: ConnAck) -> Result<(), Error> {
        if connack.reason_code.is_error() {
            self.state = State::Closed;
            self.events.push_back(Event::Refused(connack));
            return Ok(());
        }
        // MQTT-3.2.2-2 (5.0) / MQTT-3.2.2-1 (3.1.1): after a clean start the
        // server must not claim a session.
        if connack.session_present && self.clean_start {
            return Err(Violation::UnexpectedPacket(
                "CONNACK with session present after clean start",
            )
            .into());
        }
        self.peer.apply_announced(&connack.properties);
        let alias_max = connack.properties.topic_alias_maximum.unwrap_or(0);
        let alias_max = alias_max.min(self.config.max_outbound_aliases);
        self.outbound_aliases = alias::Outbound::new(alias_max);
        if let Some(keep_alive) = connack.properties.server_keep_alive {
            // MQTT-3.2.2-21: the client must use the server's value.
            self.keep_alive = Duration::from_secs(keep_alive.into());
        }
        self.state = State::Open;
        self.connect_deadline = None;
        self.last_received = Some(now);
        let resume = connack.session_present;
        self.events.push_back(Event::Connected(connack));
        if resume {
            self.resend();
        } else if !self.session.is_empty() {
            // MQTT-3.2.2-5 (5.0): without a server session the client
            // discards its own; the unacknowledged messages go back to the
            // application rather than vanishing.
            let unsent = self.session.take_unsent();
            self.events.push_back(Event::SessionLost(unsent));
        }
        Ok(())
    }

    /// Resends every unacknowledged PUBLISH with DUP set and every PUBREL,
    /// in their original order and with their original identifiers
    /// (MQTT-4.4.0-1, MQTT-3.3.1-1, MQTT-4.6.0-1).
    fn resend(&mut self) {
        let entries: Vec<Outbound> = self.session.outbound().cloned().collect();
        for entry in entries {
            match entry {
                Outbound::AwaitPubAck(mut p) | Outbound::AwaitPubRec(mut p) => {
                    p.dup = true;
                    self.transmit_publish(p);
                }
                Outbound::AwaitPubComp(id) => self.transmit.push_back(Packet::PubRel(Ack::new(id))),
            }
        }
    }

    /// Queues the CONNACK or DISCONNECT the spec requires for `error` and
    /// closes the connection.
    pub(super) fn fail(&mut self, error: &Error) {
        let code = error.reason_code();
        match (self.state, code) {
            (State::AwaitConnect, _) => self.refuse_connect(error),
            // MQTT-3.14.0-1 (5.0): a server sends no DISCONNECT before its
            // CONNACK, so a fault while the application decides on CONNECT
            // just closes.
            (State::Open, Some(code)) if self.protocol.is_v5() => {
                // With a Reason String saying what was wrong, if it fits.
                let mut disconnect = Disconnect::new(code);
                let reason = crate::string::MqttStr::try_from(error.to_string().as_str());
                disconnect.properties.reason_string = reason.ok();
                let bare = Packet::Disconnect(Disconnect::new(code));
                let packet = self
                    .fit_to_peer(Packet::Disconnect(disconnect))
                    .unwrap_or(bare);
                self.transmit.push_back(packet);
            }
            _ => {}
        }
        self.state = State::Closed;
    }

    /// A CONNECT that could not be accepted at all. Only an unsupported
    /// protocol level gets a CONNACK (MQTT-3.1.2-2 in 3.1.1: return code
    /// 0x01; 5.0: 0x84), in the format of a version the client can read;
    /// anything else is closed silently (MQTT-4.13.1-1, §4.13.1 MAY).
    fn refuse_connect(&mut self, error: &Error) {
        if let Error::Incompatible(Incompatible::ProtocolLevel(level)) = error {
            self.protocol = if *level >= 5 {
                Protocol::V5
            } else {
                Protocol::V3_1_1
            };
            let connack = ConnAck {
                reason_code: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                ..ConnAck::default()
            };
            self.transmit.push_back(Packet::ConnAck(connack));
        }
    }

    /// Lets the driver report a packet it could not decode, so the right
    /// DISCONNECT or CONNACK goes out before the socket closes.
    pub fn handle_decode_error(&mut self, error: &Error) {
        if self.state != State::Closed {
            self.fail(error);
        }
    }

    pub(super) fn is_server(&self) -> bool {
        self.role == Role::Server
    }
}
