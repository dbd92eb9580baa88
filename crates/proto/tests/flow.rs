//! Whole exchanges between a client and a server `Connection`, wired over
//! in-memory queues through the real codec, with a virtual clock that jumps
//! to the next deadline. No sockets, no sleeps.

// Test helpers panic on purpose: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use pigeon_proto::codec::{Ack, ConnAck, Connect, Publish, Subscribe, SubscribeFilter};
use pigeon_proto::error::{Error, Misuse, Violation};
use pigeon_proto::flow::{Config, Connection, Event, SessionState};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, Protocol, QoS, ReasonCode};

/// A client and a server connection and the bytes between them.
struct Pair {
    now: Instant,
    client: Connection,
    server: Connection,
    /// Packets the server received, as decoded (to inspect the wire).
    to_server: Vec<Packet>,
    /// Packets the client received.
    to_client: Vec<Packet>,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    server_errors: Vec<Error>,
    client_errors: Vec<Error>,
}

fn topic(s: &str) -> TopicName {
    TopicName::try_from(s).expect("valid topic")
}

fn message(t: &str, qos: QoS) -> Publish {
    let mut p = Publish::new(topic(t), &b"hello"[..]);
    p.qos = qos;
    p
}

fn connect(protocol: Protocol, clean_start: bool) -> Connect {
    let mut c = Connect::new(protocol, "client-1".try_into().expect("valid id"));
    c.clean_start = clean_start;
    c.keep_alive = 10;
    c
}

/// Moves every queued packet from `from` to `to` through encode and decode.
fn carry(
    now: Instant,
    from: &mut Connection,
    to: &mut Connection,
    seen: &mut Vec<Packet>,
    errors: &mut Vec<Error>,
) -> bool {
    let mut moved = false;
    while let Some(packet) = from.poll_transmit(now) {
        moved = true;
        let mut buf = BytesMut::new();
        packet.encode(from.protocol(), &mut buf).expect("encodes");
        match decode(&mut buf, to.protocol(), to.max_incoming_packet_size()) {
            Ok(Some(decoded)) => {
                seen.push(decoded.clone());
                if let Err(e) = to.handle_packet(now, decoded) {
                    errors.push(e);
                }
            }
            Ok(None) => panic!("whole packet did not decode"),
            Err(e) => {
                to.handle_decode_error(&e);
                errors.push(e);
            }
        }
    }
    moved
}

impl Pair {
    fn new(connect: Connect, session: SessionState) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            client: Connection::client(now, Config::default(), connect, session),
            server: Connection::server(now, Config::default()),
            to_server: Vec::new(),
            to_client: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            server_errors: Vec::new(),
            client_errors: Vec::new(),
        }
    }

    /// Carries packets both ways until both sides are quiet, collecting events.
    fn run(&mut self) {
        loop {
            let a = carry(
                self.now,
                &mut self.client,
                &mut self.server,
                &mut self.to_server,
                &mut self.server_errors,
            );
            let b = carry(
                self.now,
                &mut self.server,
                &mut self.client,
                &mut self.to_client,
                &mut self.client_errors,
            );
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            if !a && !b {
                return;
            }
        }
    }

    /// Runs the handshake; the server accepts with `connack`, resuming
    /// `server_session` when `connack.session_present`.
    fn open_with(&mut self, connack: ConnAck, server_session: SessionState) {
        self.run();
        assert!(
            matches!(self.server_events.pop(), Some(Event::Connect(_))),
            "server saw CONNECT"
        );
        self.server
            .accept(self.now, connack, server_session)
            .expect("accept");
        self.run();
    }

    fn open(&mut self) {
        self.open_with(ConnAck::default(), SessionState::new());
        assert!(self.client.is_open() && self.server.is_open());
    }

    /// Jumps the clock to the earliest deadline and fires it on both sides.
    fn advance(&mut self) {
        let deadline = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a deadline");
        self.now = self.now.max(deadline);
        if let Err(e) = self.client.handle_timeout(self.now) {
            self.client_errors.push(e);
        }
        if let Err(e) = self.server.handle_timeout(self.now) {
            self.server_errors.push(e);
        }
        self.run();
    }

    fn messages(events: &[Event]) -> Vec<&Publish> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Message(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn delivered(events: &[Event]) -> Vec<(PacketId, ReasonCode)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Delivered {
                    packet_id,
                    reason_code,
                } => Some((*packet_id, *reason_code)),
                _ => None,
            })
            .collect()
    }
}

const VERSIONS: [Protocol; 3] = [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5];

#[test]
fn qos1_publish_is_acknowledged_only_after_the_application_acks() {
    for v in VERSIONS {
        let mut pair = Pair::new(connect(v, true), SessionState::new());
        pair.open();
        let id = pair
            .client
            .publish(message("a/b", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
        pair.run();
        let got = Pair::messages(&pair.server_events);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].packet_id, Some(id));
        assert!(
            Pair::delivered(&pair.client_events).is_empty(),
            "{v}: no PUBACK before ack"
        );
        pair.server.ack(id, ReasonCode::SUCCESS).unwrap();
        pair.run();
        // MQTT-4.3.2-4 (v5): PUBACK with the PUBLISH's identifier.
        // MQTT-4.3.2-2 (v311): the same rule in 3.1.1.
        assert_eq!(
            Pair::delivered(&pair.client_events),
            [(id, ReasonCode::SUCCESS)]
        );
        assert!(pair.client.session().is_empty());
    }
}

#[test]
fn qos2_exchange_completes_both_ways_and_delivers_once() {
    for v in VERSIONS {
        let mut pair = Pair::new(connect(v, true), SessionState::new());
        pair.open();
        let id = pair
            .client
            .publish(message("up", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
        pair.run();
        pair.server.ack(id, ReasonCode::SUCCESS).unwrap();
        pair.run();
        assert_eq!(
            Pair::delivered(&pair.client_events),
            [(id, ReasonCode::SUCCESS)]
        );
        let sid = pair
            .server
            .publish(message("down", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
        pair.run();
        pair.client.ack(sid, ReasonCode::SUCCESS).unwrap();
        pair.run();
        assert_eq!(
            Pair::delivered(&pair.server_events),
            [(sid, ReasonCode::SUCCESS)]
        );
        assert_eq!(Pair::messages(&pair.server_events).len(), 1);
        assert_eq!(Pair::messages(&pair.client_events).len(), 1);
        let kinds: Vec<_> = pair
            .to_server
            .iter()
            .map(|p| p.packet_type().name())
            .collect();
        assert_eq!(
            kinds,
            ["CONNECT", "PUBLISH", "PUBREL", "PUBREC", "PUBCOMP"],
            "{v}"
        );
        assert!(pair.client.session().is_empty() && pair.server.session().is_empty());
    }
}

#[test]
fn qos2_publish_resent_after_reconnect_is_not_delivered_twice() {
    // MQTT-4.3.3-10 (5.0): until PUBREL, a PUBLISH with the same identifier
    // is not delivered onward again. MQTT-4.4.0-1: resent with DUP on resume.
    for v in VERSIONS {
        let mut pair = Pair::new(connect(v, false), SessionState::new());
        pair.open();
        let id = pair
            .client
            .publish(message("t", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
        pair.run();
        pair.server.ack(id, ReasonCode::SUCCESS).unwrap();
        // The PUBREC is lost with the connection.
        let _ = pair.server.poll_transmit(pair.now);
        let client_session = pair.client.session().clone();
        let server_session = pair.server.session().clone();

        let mut pair = Pair::new(connect(v, false), client_session);
        let connack = ConnAck {
            session_present: true,
            ..ConnAck::default()
        };
        pair.open_with(connack, server_session);
        let resent = pair.to_server.iter().find_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        });
        assert!(
            resent.expect("PUBLISH resent").dup,
            "{v}: DUP set on resend (MQTT-3.3.1-1)"
        );
        assert!(
            Pair::messages(&pair.server_events).is_empty(),
            "{v}: not delivered again"
        );
        assert_eq!(
            Pair::delivered(&pair.client_events),
            [(id, ReasonCode::SUCCESS)]
        );
        assert!(pair.server.session().is_empty());
    }
}

#[test]
fn unacknowledged_messages_are_resent_in_order_with_original_ids() {
    // MQTT-4.4.0-1, MQTT-4.6.0-1 (5.0): resend in the original order with
    // the original packet identifiers.
    let mut pair = Pair::new(connect(Protocol::V5, false), SessionState::new());
    pair.open();
    let ids: Vec<_> = (0..3)
        .map(|i| {
            let qos = if i == 1 {
                QoS::ExactlyOnce
            } else {
                QoS::AtLeastOnce
            };
            pair.server
                .publish(message(&format!("t/{i}"), qos))
                .unwrap()
                .unwrap()
        })
        .collect();
    // Lose them all.
    while pair.server.poll_transmit(pair.now).is_some() {}
    let server_session = pair.server.session().clone();
    let json = serde_json::to_string(&server_session).expect("session serialises");
    let restored: SessionState = serde_json::from_str(&json).expect("session deserialises");
    assert_eq!(restored, server_session);

    let mut pair = Pair::new(connect(Protocol::V5, false), pair.client.into_session());
    let connack = ConnAck {
        session_present: true,
        ..ConnAck::default()
    };
    pair.open_with(connack, restored);
    let got = Pair::messages(&pair.client_events);
    let got_ids: Vec<_> = got.iter().map(|p| p.packet_id.unwrap()).collect();
    assert_eq!(got_ids, ids);
    assert!(got.iter().all(|p| p.dup));
    let topics: Vec<_> = got.iter().map(|p| p.topic.as_str()).collect();
    assert_eq!(topics, ["t/0", "t/1", "t/2"]);
}

#[test]
fn clean_start_discards_the_session_and_resends_nothing() {
    let mut pair = Pair::new(connect(Protocol::V5, false), SessionState::new());
    pair.open();
    pair.server.publish(message("t", QoS::AtLeastOnce)).unwrap();
    while pair.server.poll_transmit(pair.now).is_some() {}
    let server_session = pair.server.session().clone();
    let mut pair = Pair::new(connect(Protocol::V5, true), SessionState::new());
    pair.open_with(ConnAck::default(), server_session);
    assert!(Pair::messages(&pair.client_events).is_empty());
    assert!(pair.server.session().is_empty());
}

#[test]
fn client_gets_back_unacknowledged_messages_when_the_server_lost_the_session() {
    // MQTT-3.2.2-5 (5.0): the client discards its session state; Pigeon
    // hands the messages back so they are not silently lost.
    let mut pair = Pair::new(connect(Protocol::V5, false), SessionState::new());
    pair.open();
    pair.client
        .publish(message("keep", QoS::AtLeastOnce))
        .unwrap();
    while pair.client.poll_transmit(pair.now).is_some() {}
    let mut pair = Pair::new(connect(Protocol::V5, false), pair.client.into_session());
    pair.open_with(ConnAck::default(), SessionState::new());
    let lost = pair.client_events.iter().find_map(|e| match e {
        Event::SessionLost(msgs) => Some(msgs),
        _ => None,
    });
    let lost = lost.expect("SessionLost event");
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].topic.as_str(), "keep");
    assert!(pair.client.session().is_empty());
}

#[test]
fn server_closes_a_silent_client_after_one_and_a_half_keep_alives() {
    // MQTT-3.1.2-22 (v5): closed after one and a half keep-alives.
    // MQTT-3.1.2-24 (v311): the same rule in 3.1.1.
    for v in VERSIONS {
        let mut pair = Pair::new(connect(v, true), SessionState::new());
        pair.open();
        let opened = pair.now;
        let deadline = pair.server.poll_timeout().expect("server deadline");
        assert_eq!(deadline - opened, Duration::from_secs(15));
        // The client goes silent: only the server's clock matters.
        pair.now = deadline;
        let err = pair.server.handle_timeout(pair.now).unwrap_err();
        assert_eq!(err, Error::Protocol(Violation::KeepAliveTimeout));
        assert!(pair.server.is_closed());
        let last = pair.server.poll_transmit(pair.now);
        match v {
            Protocol::V5 => assert!(
                matches!(last, Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::KEEP_ALIVE_TIMEOUT)
            ),
            _ => assert_eq!(last, None, "{v}: closed without a packet"),
        }
    }
}

#[test]
fn idle_client_pings_and_the_connection_stays_up() {
    // MQTT-3.1.2-23 (3.1.1): the client sends PINGREQ when idle.
    let mut pair = Pair::new(connect(Protocol::V3_1_1, true), SessionState::new());
    pair.open();
    let start = pair.now;
    for _ in 0..10 {
        pair.advance();
    }
    assert!(pair.now - start >= Duration::from_secs(90));
    let pings = pair
        .to_server
        .iter()
        .filter(|p| **p == Packet::PingReq)
        .count();
    assert!(pings >= 9, "pinged {pings} times");
    assert!(pair.client.is_open() && pair.server.is_open());
    assert!(pair.client_errors.is_empty() && pair.server_errors.is_empty());
}

#[test]
fn client_gives_up_when_pingresp_does_not_come() {
    let now = Instant::now();
    let mut client = Connection::client(
        now,
        Config::default(),
        connect(Protocol::V5, true),
        SessionState::new(),
    );
    let _connect = client.poll_transmit(now);
    client
        .handle_packet(now, Packet::ConnAck(ConnAck::default()))
        .unwrap();
    let ping_at = client.poll_timeout().unwrap();
    client.handle_timeout(ping_at).unwrap();
    assert_eq!(client.poll_transmit(ping_at), Some(Packet::PingReq));
    let give_up = client.poll_timeout().unwrap();
    assert_eq!(give_up - ping_at, Duration::from_secs(10));
    assert_eq!(
        client.handle_timeout(give_up),
        Err(Violation::KeepAliveTimeout.into())
    );
    assert!(client.is_closed());
}

#[test]
fn server_keep_alive_overrides_the_clients() {
    // MQTT-3.2.2-21 (5.0): the client uses the Server Keep Alive.
    let mut pair = Pair::new(connect(Protocol::V5, true), SessionState::new());
    let mut connack = ConnAck::default();
    connack.properties.server_keep_alive = Some(4);
    pair.open_with(connack, SessionState::new());
    assert_eq!(pair.client.keep_alive(), Duration::from_secs(4));
    assert_eq!(pair.server.keep_alive(), Duration::from_secs(4));
}

#[test]
fn server_times_out_a_connection_that_never_sends_connect() {
    // Catalogue C18.
    let now = Instant::now();
    let mut server = Connection::server(now, Config::default());
    let deadline = server.poll_timeout().expect("connect deadline");
    assert!(server.handle_timeout(deadline).is_err());
    assert!(server.is_closed());
    assert_eq!(server.poll_transmit(deadline), None);
}

#[test]
fn sender_stops_at_the_peers_receive_maximum() {
    // MQTT-3.3.4-7 (5.0): no more unacknowledged QoS 1/2 PUBLISH than the
    // receiver's Receive Maximum.
    let mut pair = Pair::new(connect(Protocol::V5, true), SessionState::new());
    let mut connack = ConnAck::default();
    connack.properties.receive_maximum = Some(2);
    pair.open_with(connack, SessionState::new());
    let a = pair
        .client
        .publish(message("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    pair.client.publish(message("t", QoS::ExactlyOnce)).unwrap();
    assert_eq!(pair.client.send_quota(), 0);
    let err = pair
        .client
        .publish(message("t", QoS::AtLeastOnce))
        .unwrap_err();
    assert_eq!(err, Error::Misuse(Misuse::InflightFull));
    // QoS 0 is not limited.
    pair.client.publish(message("t", QoS::AtMostOnce)).unwrap();
    pair.run();
    pair.server.ack(a, ReasonCode::SUCCESS).unwrap();
    pair.run();
    assert_eq!(pair.client.send_quota(), 1);
    pair.client.publish(message("t", QoS::AtLeastOnce)).unwrap();
}

fn open_server(protocol: Protocol, connack: ConnAck) -> (Instant, Connection) {
    let now = Instant::now();
    let mut server = Connection::server(now, Config::default());
    server
        .handle_packet(now, Packet::Connect(Box::new(connect(protocol, true))))
        .unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Connect(_))));
    server.accept(now, connack, SessionState::new()).unwrap();
    assert!(matches!(
        server.poll_transmit(now),
        Some(Packet::ConnAck(_))
    ));
    (now, server)
}

fn with_id(mut p: Publish, id: u16) -> Publish {
    p.packet_id = PacketId::new(id);
    p
}

#[test]
fn receiver_disconnects_a_sender_that_exceeds_receive_maximum() {
    // §3.3.4: DISCONNECT 0x93 Receive Maximum exceeded; catalogue P9.
    let mut connack = ConnAck::default();
    connack.properties.receive_maximum = Some(2);
    let (now, mut server) = open_server(Protocol::V5, connack);
    for id in 1..=2 {
        let p = with_id(message("t", QoS::AtLeastOnce), id);
        server.handle_packet(now, Packet::Publish(p)).unwrap();
    }
    let p = with_id(message("t", QoS::AtLeastOnce), 3);
    let err = server.handle_packet(now, Packet::Publish(p)).unwrap_err();
    assert_eq!(
        err.reason_code(),
        Some(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
    );
    let disconnect = server.poll_transmit(now);
    assert!(
        matches!(disconnect, Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
    );
    assert!(server.is_closed());
}

#[test]
fn a_million_qos2_duplicates_deliver_once_and_keep_state_flat() {
    // MQTT-4.3.3-10 (5.0); catalogue P8 (scaled down to 10,000).
    let (now, mut server) = open_server(Protocol::V5, ConnAck::default());
    let p = with_id(message("t", QoS::ExactlyOnce), 7);
    server
        .handle_packet(now, Packet::Publish(p.clone()))
        .unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Message(_))));
    server
        .ack(PacketId::new(7).unwrap(), ReasonCode::SUCCESS)
        .unwrap();
    for _ in 0..10_000 {
        let mut dup = p.clone();
        dup.dup = true;
        server.handle_packet(now, Packet::Publish(dup)).unwrap();
    }
    assert_eq!(server.poll_event(), None, "never delivered again");
    let mut pubrecs = 0;
    while let Some(packet) = server.poll_transmit(now) {
        assert!(matches!(packet, Packet::PubRec(_)));
        pubrecs += 1;
    }
    assert_eq!(pubrecs, 10_001, "PUBREC answers every copy");
    assert_eq!(server.session().inbound_qos2().count(), 1);
}

#[test]
fn pubrel_for_unknown_packet_id_is_answered_with_pubcomp_not_found() {
    // §3.7.2.1; catalogue A2.
    let (now, mut server) = open_server(Protocol::V5, ConnAck::default());
    let id = PacketId::new(42).unwrap();
    server
        .handle_packet(now, Packet::PubRel(Ack::new(id)))
        .unwrap();
    let reply = server.poll_transmit(now);
    assert_eq!(
        reply,
        Some(Packet::PubComp(Ack::with_code(
            id,
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        )))
    );
}

#[test]
fn acks_for_unknown_packet_ids_are_ignored() {
    // Catalogue A1.
    let (now, mut server) = open_server(Protocol::V5, ConnAck::default());
    for id in 1..=1000 {
        let ack = Ack::new(PacketId::new(id).unwrap());
        server
            .handle_packet(now, Packet::PubAck(ack.clone()))
            .unwrap();
        server.handle_packet(now, Packet::PubComp(ack)).unwrap();
    }
    assert!(server.is_open());
    assert_eq!(server.poll_transmit(now), None);
}

#[test]
fn puback_for_a_qos2_message_is_a_protocol_violation() {
    // Catalogue A5.
    let (now, mut server) = open_server(Protocol::V5, ConnAck::default());
    let id = server
        .publish(message("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let err = server
        .handle_packet(now, Packet::PubAck(Ack::new(id)))
        .unwrap_err();
    assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
    assert!(server.is_closed());
}

#[test]
fn first_packet_other_than_connect_closes_without_a_reply() {
    // MQTT-3.1.0-1.
    let now = Instant::now();
    let mut server = Connection::server(now, Config::default());
    let err = server.handle_packet(now, Packet::PingReq).unwrap_err();
    assert_eq!(err, Error::Protocol(Violation::FirstPacketNotConnect));
    assert!(server.is_closed());
    assert_eq!(server.poll_transmit(now), None);
}

#[test]
fn second_connect_is_a_protocol_error() {
    // MQTT-3.1.0-2; catalogue C1.
    let (now, mut server) = open_server(Protocol::V5, ConnAck::default());
    let err = server
        .handle_packet(now, Packet::Connect(Box::new(connect(Protocol::V5, true))))
        .unwrap_err();
    assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
    assert!(
        matches!(server.poll_transmit(now), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::PROTOCOL_ERROR)
    );
}

#[test]
fn server_only_packets_from_a_client_are_protocol_errors() {
    // Catalogue F12 (CVE-2021-28166).
    for packet in [Packet::ConnAck(ConnAck::default()), Packet::PingResp] {
        let (now, mut server) = open_server(Protocol::V5, ConnAck::default());
        assert!(server.handle_packet(now, packet).is_err());
        assert!(server.is_closed());
    }
}

#[test]
fn client_publish_with_subscription_identifier_is_a_protocol_error() {
    // MQTT-3.3.4-6 (5.0); catalogue P11.
    let (now, mut server) = open_server(Protocol::V5, ConnAck::default());
    let mut p = message("t", QoS::AtMostOnce);
    p.properties.subscription_identifiers.push(3);
    let err = server.handle_packet(now, Packet::Publish(p)).unwrap_err();
    assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
}

#[test]
fn qos_and_retain_beyond_what_the_server_announced_are_refused() {
    // §3.2.2.3.4 / §3.2.2.3.5; catalogue P14.
    let mut connack = ConnAck::default();
    connack.properties.maximum_qos = Some(QoS::AtLeastOnce);
    connack.properties.retain_available = Some(false);
    let (now, mut server) = open_server(Protocol::V5, connack.clone());
    let p = with_id(message("t", QoS::ExactlyOnce), 1);
    let err = server.handle_packet(now, Packet::Publish(p)).unwrap_err();
    assert_eq!(err.reason_code(), Some(ReasonCode::QOS_NOT_SUPPORTED));
    let (now, mut server) = open_server(Protocol::V5, connack);
    let mut p = message("t", QoS::AtMostOnce);
    p.retain = true;
    let err = server.handle_packet(now, Packet::Publish(p)).unwrap_err();
    assert_eq!(err.reason_code(), Some(ReasonCode::RETAIN_NOT_SUPPORTED));
}

#[test]
fn topic_alias_replaces_the_topic_after_first_use() {
    // MQTT-3.3.2-9 (v5): the client stays within the server's maximum.
    // MQTT-3.3.2-12 (v5): the server accepts the aliases and maps them back.
    let mut pair = Pair::new(connect(Protocol::V5, true), SessionState::new());
    let mut connack = ConnAck::default();
    connack.properties.topic_alias_maximum = Some(1);
    pair.open_with(connack, SessionState::new());
    for t in ["sensors/kitchen/temp", "sensors/kitchen/temp", "other"] {
        pair.client.publish(message(t, QoS::AtMostOnce)).unwrap();
    }
    pair.run();
    let wire: Vec<_> = pair
        .to_server
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.topic.as_str().to_owned(), p.properties.topic_alias)),
            _ => None,
        })
        .collect();
    assert_eq!(
        wire,
        [
            ("sensors/kitchen/temp".to_owned(), Some(1)),
            (String::new(), Some(1)),
            // The one alias is taken: stay at or below the maximum.
            ("other".to_owned(), None),
        ]
    );
    let topics: Vec<_> = Pair::messages(&pair.server_events)
        .iter()
        .map(|p| (p.topic.as_str().to_owned(), p.properties.topic_alias))
        .collect();
    assert_eq!(
        topics,
        [
            ("sensors/kitchen/temp".to_owned(), None),
            ("sensors/kitchen/temp".to_owned(), None),
            ("other".to_owned(), None)
        ]
    );
}

#[test]
fn topic_alias_zero_or_above_the_maximum_is_invalid() {
    // §3.3.2.3.4: the receiver answers Topic Alias 0, or one above its
    // maximum, with 0x94; catalogue P10.
    for alias in [0, 6] {
        let mut connack = ConnAck::default();
        connack.properties.topic_alias_maximum = Some(5);
        let (now, mut server) = open_server(Protocol::V5, connack);
        let mut p = message("t", QoS::AtMostOnce);
        p.properties.topic_alias = Some(alias);
        let err = server.handle_packet(now, Packet::Publish(p)).unwrap_err();
        assert_eq!(err.reason_code(), Some(ReasonCode::TOPIC_ALIAS_INVALID));
        assert!(
            matches!(server.poll_transmit(now), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::TOPIC_ALIAS_INVALID)
        );
    }
}

#[test]
fn topic_aliases_do_not_survive_the_connection() {
    // MQTT-3.3.2-7 (5.0); catalogue P10, third case.
    let mut connack = ConnAck::default();
    connack.properties.topic_alias_maximum = Some(5);
    let (now, mut server) = open_server(Protocol::V5, connack.clone());
    let mut p = message("t", QoS::AtMostOnce);
    p.properties.topic_alias = Some(1);
    server.handle_packet(now, Packet::Publish(p)).unwrap();
    let (now, mut server) = open_server(Protocol::V5, connack);
    let mut buf = BytesMut::new();
    // An empty topic with alias 1 on the new connection: the alias is unknown.
    buf.extend_from_slice(&[0x30, 6, 0, 0, 3, 0x23, 0, 1]);
    let packet = decode(&mut buf, Protocol::V5, u32::MAX).unwrap().unwrap();
    let err = server.handle_packet(now, packet).unwrap_err();
    assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
}

#[test]
fn publish_over_the_peers_maximum_packet_size_is_not_sent() {
    // MQTT-3.2.2-15 (v5): the client does not send packets over the server's
    // Maximum Packet Size; catalogue P13/P16.
    let mut pair = Pair::new(connect(Protocol::V5, true), SessionState::new());
    let mut connack = ConnAck::default();
    connack.properties.maximum_packet_size = Some(64);
    pair.open_with(connack, SessionState::new());
    let mut big = message("t", QoS::AtLeastOnce);
    big.payload = vec![0u8; 100].into();
    let err = pair.client.publish(big).unwrap_err();
    assert!(matches!(
        err,
        Error::Misuse(Misuse::ExceedsPeerMaximum { max: 64, .. })
    ));
    assert!(pair.client.session().is_empty(), "nothing kept for resend");
    assert_eq!(pair.client.poll_transmit(pair.now), None);
}

#[test]
fn packet_over_the_announced_maximum_is_refused_with_packet_too_large() {
    // §3.2.2.3.6: DISCONNECT 0x95; catalogue P13.
    let mut pair = Pair::new(connect(Protocol::V5, true), SessionState::new());
    let mut connack = ConnAck::default();
    connack.properties.maximum_packet_size = Some(64);
    pair.open_with(connack, SessionState::new());
    let mut buf = BytesMut::new();
    let mut big = message("t", QoS::AtMostOnce);
    big.payload = vec![0u8; 100].into();
    Packet::Publish(big).encode(Protocol::V5, &mut buf).unwrap();
    let max = pair.server.max_incoming_packet_size();
    let err = decode(&mut buf, Protocol::V5, max).unwrap_err();
    assert_eq!(err.reason_code(), Some(ReasonCode::PACKET_TOO_LARGE));
    pair.server.handle_decode_error(&err);
    assert!(
        matches!(pair.server.poll_transmit(pair.now), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::PACKET_TOO_LARGE)
    );
}

#[test]
fn unsupported_protocol_level_gets_connack_in_a_version_the_client_reads() {
    // MQTT-3.1.2-2: 3.1.1 return code 0x01; 5.0 reason code 0x84.
    for (level, protocol) in [(2u8, Protocol::V3_1_1), (6, Protocol::V5)] {
        let now = Instant::now();
        let mut server = Connection::server(now, Config::default());
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', level, 2, 0, 10]);
        let err = decode(&mut buf, Protocol::V5, u32::MAX).unwrap_err();
        server.handle_decode_error(&err);
        let reply = server.poll_transmit(now).expect("CONNACK");
        assert_eq!(server.protocol(), protocol);
        let mut out = BytesMut::new();
        reply.encode(server.protocol(), &mut out).unwrap();
        let expected: &[u8] = if protocol == Protocol::V5 {
            &[0x20, 3, 0, 0x84, 0]
        } else {
            &[0x20, 2, 0, 1]
        };
        assert_eq!(&out[..], expected);
        assert!(server.is_closed());
    }
}

#[test]
fn packets_sent_right_after_connect_wait_for_the_servers_decision() {
    let now = Instant::now();
    let mut server = Connection::server(now, Config::default());
    server
        .handle_packet(
            now,
            Packet::Connect(Box::new(connect(Protocol::V3_1_1, true))),
        )
        .unwrap();
    let sub = Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        properties: Default::default(),
        filters: vec![SubscribeFilter {
            filter: "a/#".try_into().unwrap(),
            options: Default::default(),
        }],
    };
    server.handle_packet(now, Packet::Subscribe(sub)).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Connect(_))));
    assert_eq!(server.poll_event(), None, "SUBSCRIBE waits for accept");
    server
        .accept(now, ConnAck::default(), SessionState::new())
        .unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Subscribe(_))));
    assert!(matches!(
        server.poll_transmit(now),
        Some(Packet::ConnAck(_))
    ));
}

#[test]
fn disconnect_raising_session_expiry_from_zero_is_a_protocol_error() {
    // §3.14.2.2.2; catalogue row 46.
    let (now, mut server) = open_server(Protocol::V5, ConnAck::default());
    let mut d = pigeon_proto::codec::Disconnect::default();
    d.properties.session_expiry_interval = Some(60);
    let err = server
        .handle_packet(now, Packet::Disconnect(d))
        .unwrap_err();
    assert_eq!(err, Error::Protocol(Violation::SessionExpiryAfterZero));
}

#[test]
fn packet_ids_are_not_reused_while_in_flight() {
    // MQTT-2.2.1-3 (5.0): a new packet uses an identifier currently unused.
    let (_, mut server) = open_server(Protocol::V5, ConnAck::default());
    let sub_id = server.allocate_packet_id().unwrap();
    let mut ids = vec![sub_id];
    for _ in 0..500 {
        ids.push(
            server
                .publish(message("t", QoS::AtLeastOnce))
                .unwrap()
                .unwrap(),
        );
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len());
}
