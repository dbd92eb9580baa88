//! One test per normative statement of the per-connection state machine
//! (scope `flow` in docs/spec-scope.tsv). Each test drives one or two
//! `Connection`s directly and looks at what goes on the wire (through the
//! real encoder and decoder), the events, the errors and `is_closed()`.
//! Where 3.1.1 and 5.0 number a statement differently, each id is cited on
//! its own line with its version.

// Test helpers panic on purpose: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use pigeon_proto::codec::{Ack, ConnAck, Connect, Disconnect, Publish, SubAck};
use pigeon_proto::codec::{Subscribe, SubscribeFilter};
use pigeon_proto::error::{Error, Malformed, Misuse};
use pigeon_proto::flow::{Config, Connection, Event, SessionState};
use pigeon_proto::properties::Properties;
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, Protocol, QoS, ReasonCode};

/// The versions whose statements are numbered separately.
const VERSIONS: [Protocol; 2] = [Protocol::V3_1_1, Protocol::V5];

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn message(topic: &str, qos: QoS) -> Publish {
    let mut p = Publish::new(TopicName::try_from(topic).unwrap(), &b"hello"[..]);
    p.qos = qos;
    p
}

fn with_id(mut p: Publish, n: u16) -> Publish {
    p.packet_id = Some(id(n));
    p
}

fn connect(protocol: Protocol) -> Connect {
    let mut c = Connect::new(protocol, "client-1".try_into().unwrap());
    c.keep_alive = 10;
    c
}

fn subscribe(n: u16) -> Subscribe {
    Subscribe {
        packet_id: id(n),
        properties: Properties::default(),
        filters: vec![SubscribeFilter {
            filter: "a/#".try_into().unwrap(),
            options: Default::default(),
        }],
    }
}

/// What the peer reads: `packet` encoded as `protocol` and decoded again.
fn wire(protocol: Protocol, packet: Packet) -> Packet {
    let mut buf = BytesMut::new();
    packet.encode(protocol, &mut buf).unwrap();
    decode(&mut buf, protocol, u32::MAX).unwrap().unwrap()
}

/// Everything `conn` has queued, as the peer decodes it.
fn sent(conn: &mut Connection, now: Instant) -> Vec<Packet> {
    let mut out = Vec::new();
    while let Some(packet) = conn.poll_transmit(now) {
        out.push(wire(conn.protocol(), packet));
    }
    out
}

/// Hands `conn` a packet from its peer, through the codec.
fn feed(conn: &mut Connection, now: Instant, packet: Packet) -> Result<(), Error> {
    let packet = wire(conn.protocol(), packet);
    conn.handle_packet(now, packet)
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn messages(conn: &mut Connection) -> Vec<Publish> {
    let events = events(conn);
    let messages = events.into_iter().filter_map(|e| match e {
        Event::Message(p) => Some(p),
        _ => None,
    });
    messages.collect()
}

fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    let publishes = packets.iter().filter_map(|p| match p {
        Packet::Publish(p) => Some(p),
        _ => None,
    });
    publishes.collect()
}

/// A server that has received `connect` and not answered yet.
fn pending_server(now: Instant, connect: Connect) -> Connection {
    let mut server = Connection::server(now, Config::default());
    feed(&mut server, now, Packet::Connect(Box::new(connect))).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Connect(_))));
    server
}

/// A server that accepted `connect` with `connack`; its CONNACK is drained.
fn server_with(connect: Connect, connack: ConnAck, session: SessionState) -> (Instant, Connection) {
    let now = Instant::now();
    let mut server = pending_server(now, connect);
    server.accept(now, connack, session).unwrap();
    assert!(matches!(
        server.poll_transmit(now),
        Some(Packet::ConnAck(_))
    ));
    (now, server)
}

fn server(protocol: Protocol) -> (Instant, Connection) {
    server_with(connect(protocol), ConnAck::default(), SessionState::new())
}

/// A client that sent `connect` and got `connack`; CONNECT and the events
/// are drained.
fn client_with(connect: Connect, connack: ConnAck) -> (Instant, Connection) {
    let now = Instant::now();
    let mut client = Connection::client(now, Config::default(), connect, SessionState::new());
    assert!(matches!(
        client.poll_transmit(now),
        Some(Packet::Connect(_))
    ));
    feed(&mut client, now, Packet::ConnAck(connack)).unwrap();
    assert!(matches!(client.poll_event(), Some(Event::Connected(_))));
    (now, client)
}

fn client(protocol: Protocol) -> (Instant, Connection) {
    client_with(connect(protocol), ConnAck::default())
}

fn resumed() -> ConnAck {
    ConnAck {
        session_present: true,
        ..ConnAck::default()
    }
}

/// A server resuming `session` for a client that asked to keep it.
fn resume_server(protocol: Protocol, session: SessionState) -> (Instant, Connection) {
    let mut c = connect(protocol);
    c.clean_start = false;
    let now = Instant::now();
    let mut server = pending_server(now, c);
    server.accept(now, resumed(), session).unwrap();
    (now, server)
}

// --- Packet identifiers --------------------------------------------------

// MQTT-2.2.1-5 (v5)
// MQTT-2.3.1-6 (v311)
#[test]
fn acknowledgements_carry_the_packet_identifier_of_the_publish() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        let qos1 = with_id(message("t", QoS::AtLeastOnce), 7);
        feed(&mut server, now, Packet::Publish(qos1)).unwrap();
        server.ack(id(7), ReasonCode::SUCCESS).unwrap();
        let qos2 = with_id(message("t", QoS::ExactlyOnce), 9);
        feed(&mut server, now, Packet::Publish(qos2)).unwrap();
        server.ack(id(9), ReasonCode::SUCCESS).unwrap();
        feed(&mut server, now, Packet::PubRel(Ack::new(id(9)))).unwrap();
        let out = server
            .publish(message("t", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
        feed(&mut server, now, Packet::PubRec(Ack::new(out))).unwrap();
        let acks: Vec<_> = sent(&mut server, now)
            .into_iter()
            .filter(|p| !matches!(p, Packet::Publish(_)))
            .collect();
        let expected = [
            Packet::PubAck(Ack::new(id(7))),
            Packet::PubRec(Ack::new(id(9))),
            Packet::PubComp(Ack::new(id(9))),
            Packet::PubRel(Ack::new(out)),
        ];
        assert_eq!(acks, expected, "{v}");
    }
}

// MQTT-4.3.2-1 (v5)
// MQTT-4.3.3-1 (v5)
// MQTT-2.3.1-2 (v311)
// MQTT-2.3.1-4 (v311)
#[test]
fn each_new_message_gets_a_packet_identifier_not_in_use() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        let (_, mut client) = client(v);
        for conn in [&mut server, &mut client] {
            let mut in_flight = std::collections::VecDeque::new();
            for round in 0..300 {
                let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce][round % 2];
                let new = conn.publish(message("t", qos)).unwrap().unwrap();
                assert!(
                    !in_flight.contains(&(new, QoS::AtLeastOnce)),
                    "{v}: {new} in use"
                );
                assert!(
                    !in_flight.contains(&(new, QoS::ExactlyOnce)),
                    "{v}: {new} in use"
                );
                in_flight.push_back((new, qos));
                if round % 3 == 0 {
                    // Completing the oldest message frees its identifier.
                    let (done, qos) = in_flight.pop_front().unwrap();
                    if qos == QoS::AtLeastOnce {
                        feed(conn, now, Packet::PubAck(Ack::new(done))).unwrap();
                    } else {
                        feed(conn, now, Packet::PubRec(Ack::new(done))).unwrap();
                        feed(conn, now, Packet::PubComp(Ack::new(done))).unwrap();
                    }
                }
            }
            assert_eq!(conn.session().outbound_len(), in_flight.len());
        }
    }
}

// MQTT-3.1.2-20 (v5): idle for the keep-alive period, the client pings.
#[test]
fn idle_client_sends_pingreq_when_keep_alive_is_non_zero_v5() {
    let (opened, mut client) = client(Protocol::V5);
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline - opened, Duration::from_secs(10));
    client.handle_timeout(deadline).unwrap();
    assert_eq!(sent(&mut client, deadline), [Packet::PingReq]);
    assert!(client.is_open());
}

// MQTT-3.1.2-21 (v5)
#[test]
fn client_pings_on_the_server_keep_alive_instead_of_its_own_v5() {
    let mut connack = ConnAck::default();
    connack.properties.server_keep_alive = Some(3);
    let (opened, mut client) = client_with(connect(Protocol::V5), connack);
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline - opened, Duration::from_secs(3));
    client.handle_timeout(deadline).unwrap();
    assert_eq!(sent(&mut client, deadline), [Packet::PingReq]);
}

// MQTT-3.2.2-22 (v5)
#[test]
fn server_without_server_keep_alive_uses_the_clients_keep_alive_v5() {
    let mut c = connect(Protocol::V5);
    c.keep_alive = 20;
    let (opened, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    assert_eq!(server.keep_alive(), Duration::from_secs(20));
    let deadline = server.poll_timeout().unwrap();
    assert_eq!(deadline - opened, Duration::from_secs(30));
    assert!(server.handle_timeout(deadline).is_err());
    assert!(server.is_closed());
}

// MQTT-3.12.4-1
#[test]
fn server_answers_pingreq_with_pingresp() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        feed(&mut server, now, Packet::PingReq).unwrap();
        assert_eq!(sent(&mut server, now), [Packet::PingResp], "{v}");
    }
}

// MQTT-3.1.2-25 (v5): the message is dropped, nothing is kept to resend,
// and the connection carries on.
#[test]
fn server_discards_a_message_too_large_for_the_client_as_if_sent_v5() {
    let mut c = connect(Protocol::V5);
    c.properties.maximum_packet_size = Some(64);
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let mut big = message("t", QoS::AtLeastOnce);
    big.payload = vec![0u8; 100].into();
    let err = server.publish(big).unwrap_err();
    assert!(matches!(
        err,
        Error::Misuse(Misuse::ExceedsPeerMaximum { max: 64, .. })
    ));
    assert_eq!(sent(&mut server, now), []);
    assert!(server.session().is_empty());
    assert!(server.is_open());
    assert!(server.publish(message("t", QoS::AtLeastOnce)).is_ok());
}

// --- CONNECT and CONNACK -------------------------------------------------

// MQTT-3.1.4-5 (v5)
// MQTT-3.1.4-4 (v311)
#[test]
fn server_acknowledges_an_accepted_connect_with_a_success_connack() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        let refusal = ConnAck {
            reason_code: ReasonCode::NOT_AUTHORIZED,
            ..ConnAck::default()
        };
        let err = server
            .accept(now, refusal, SessionState::new())
            .unwrap_err();
        assert!(matches!(err, Error::Misuse(Misuse::InvalidState(_))));
        server
            .accept(now, ConnAck::default(), SessionState::new())
            .unwrap();
        let out = sent(&mut server, now);
        assert!(
            matches!(&out[..], [Packet::ConnAck(c)] if c.reason_code == ReasonCode::SUCCESS),
            "{v}: {out:?}"
        );
    }
}

// MQTT-3.1.4-6 (v5)
// MQTT-3.1.4-5 (v311)
#[test]
fn refused_client_has_nothing_it_sent_after_connect_processed() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        let qos1 = with_id(message("t", QoS::AtLeastOnce), 1);
        feed(&mut server, now, Packet::Publish(qos1)).unwrap();
        feed(&mut server, now, Packet::Subscribe(subscribe(2))).unwrap();
        feed(&mut server, now, Packet::PingReq).unwrap();
        let refusal = ConnAck {
            reason_code: ReasonCode::NOT_AUTHORIZED,
            ..ConnAck::default()
        };
        server.refuse(refusal).unwrap();
        assert_eq!(events(&mut server), [], "{v}");
        let out = sent(&mut server, now);
        assert!(matches!(&out[..], [Packet::ConnAck(_)]), "{v}: {out:?}");
    }
}

// MQTT-3.2.0-1: packets that arrived with CONNECT are answered after it.
#[test]
fn server_sends_connack_before_any_other_packet() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        feed(&mut server, now, Packet::PingReq).unwrap();
        let qos1 = with_id(message("t", QoS::AtLeastOnce), 1);
        feed(&mut server, now, Packet::Publish(qos1)).unwrap();
        assert_eq!(
            sent(&mut server, now),
            [],
            "{v}: nothing before the decision"
        );
        server
            .accept(now, ConnAck::default(), SessionState::new())
            .unwrap();
        server.ack(id(1), ReasonCode::SUCCESS).unwrap();
        let kinds: Vec<_> = sent(&mut server, now)
            .iter()
            .map(|p| p.packet_type().name())
            .collect();
        assert_eq!(kinds, ["CONNACK", "PINGRESP", "PUBACK"], "{v}");
    }
}

// MQTT-3.2.0-2 (v5)
#[test]
fn server_sends_no_more_than_one_connack_v5() {
    let now = Instant::now();
    let mut server = pending_server(now, connect(Protocol::V5));
    server
        .accept(now, ConnAck::default(), SessionState::new())
        .unwrap();
    let again = server.accept(now, ConnAck::default(), SessionState::new());
    assert!(matches!(again, Err(Error::Misuse(_))));
    let refusal = ConnAck {
        reason_code: ReasonCode::NOT_AUTHORIZED,
        ..ConnAck::default()
    };
    assert!(server.refuse(refusal).is_err());
    let connacks = sent(&mut server, now)
        .into_iter()
        .filter(|p| matches!(p, Packet::ConnAck(_)))
        .count();
    assert_eq!(connacks, 1);
    assert!(server.is_open());
}

// MQTT-3.2.2-4 (v5): a client that asked for a clean start has no session
// state, so a server claiming one is answered by closing.
#[test]
fn client_without_session_state_closes_on_session_present_v5() {
    let now = Instant::now();
    let mut client = Connection::client(
        now,
        Config::default(),
        connect(Protocol::V5),
        SessionState::new(),
    );
    let _ = sent(&mut client, now);
    let err = feed(&mut client, now, Packet::ConnAck(resumed())).unwrap_err();
    assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
    assert!(client.is_closed());
    assert!(!events(&mut client)
        .iter()
        .any(|e| matches!(e, Event::Connected(_))));
}

// MQTT-3.2.2-7 (v5)
// MQTT-3.2.2-5 (v311)
#[test]
fn server_closes_the_connection_after_a_refusing_connack() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        let refusal = ConnAck {
            reason_code: ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            ..ConnAck::default()
        };
        server.refuse(refusal).unwrap();
        assert!(server.is_closed(), "{v}");
        let out = sent(&mut server, now);
        assert!(
            matches!(&out[..], [Packet::ConnAck(c)] if c.reason_code.is_error()),
            "{v}"
        );
        feed(&mut server, now, Packet::PingReq).unwrap();
        assert_eq!(sent(&mut server, now), [], "{v}: nothing after it");
    }
}

// MQTT-4.13.2-1 (v5): the client closes on a refusing CONNACK, and either
// side closes after a DISCONNECT with an error code, sent or received.
#[test]
fn error_code_in_connack_or_disconnect_closes_the_connection_v5() {
    let now = Instant::now();
    let mut refused = Connection::client(
        now,
        Config::default(),
        connect(Protocol::V5),
        SessionState::new(),
    );
    let refusal = ConnAck {
        reason_code: ReasonCode::SERVER_UNAVAILABLE,
        ..ConnAck::default()
    };
    feed(&mut refused, now, Packet::ConnAck(refusal)).unwrap();
    assert!(refused.is_closed());
    assert!(matches!(events(&mut refused)[..], [Event::Refused(_)]));

    let (_, mut client) = client(Protocol::V5);
    client.disconnect(ReasonCode::UNSPECIFIED_ERROR, Properties::default());
    assert!(client.is_closed());

    let (now, mut server) = server(Protocol::V5);
    let d = Disconnect::new(ReasonCode::UNSPECIFIED_ERROR);
    feed(&mut server, now, Packet::Disconnect(d)).unwrap();
    assert!(server.is_closed());
}

// MQTT-3.2.2-11 (v5)
#[test]
fn client_does_not_publish_above_the_servers_maximum_qos_v5() {
    let mut connack = ConnAck::default();
    connack.properties.maximum_qos = Some(QoS::AtMostOnce);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let err = client.publish(message("t", qos)).unwrap_err();
        assert!(matches!(err, Error::Misuse(Misuse::InvalidValue(_))));
    }
    assert_eq!(sent(&mut client, now), []);
    assert!(client.session().is_empty());
}

// MQTT-3.2.2-14 (v5)
#[test]
fn client_does_not_publish_retained_when_the_server_has_no_retain_v5() {
    let mut connack = ConnAck::default();
    connack.properties.retain_available = Some(false);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    let mut retained = message("t", QoS::AtMostOnce);
    retained.retain = true;
    let err = client.publish(retained).unwrap_err();
    assert!(matches!(err, Error::Misuse(Misuse::InvalidValue(_))));
    assert_eq!(sent(&mut client, now), []);
}

// MQTT-3.2.2-15 (v5)
#[test]
fn client_does_not_send_a_publish_over_the_servers_maximum_packet_size_v5() {
    let mut connack = ConnAck::default();
    connack.properties.maximum_packet_size = Some(32);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    let mut big = message("t", QoS::AtMostOnce);
    big.payload = vec![0u8; 40].into();
    let err = client.publish(big).unwrap_err();
    assert!(matches!(
        err,
        Error::Misuse(Misuse::ExceedsPeerMaximum { max: 32, .. })
    ));
    assert_eq!(sent(&mut client, now), []);
}

// --- Topic aliases -------------------------------------------------------

/// The Topic Alias of every PUBLISH `conn` sends for `topics`.
fn aliases_sent(conn: &mut Connection, now: Instant, topics: &[&str]) -> Vec<Option<u16>> {
    for t in topics {
        conn.publish(message(t, QoS::AtMostOnce)).unwrap();
    }
    let out = sent(conn, now);
    publishes(&out)
        .iter()
        .map(|p| p.properties.topic_alias)
        .collect()
}

const TOPICS: [&str; 5] = ["a", "b", "a", "c", "b"];

// MQTT-3.1.2-27 (v5)
#[test]
fn server_sends_no_topic_alias_when_the_client_announced_none_v5() {
    let (now, mut server) = server(Protocol::V5);
    assert_eq!(aliases_sent(&mut server, now, &TOPICS), [None; 5]);
}

// MQTT-3.1.2-26 (v5)
// MQTT-3.3.2-11 (v5)
#[test]
fn server_topic_aliases_stay_within_the_clients_maximum_v5() {
    let mut c = connect(Protocol::V5);
    c.properties.topic_alias_maximum = Some(1);
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let aliases = aliases_sent(&mut server, now, &TOPICS);
    assert_eq!(aliases, [Some(1), None, Some(1), None, None]);
}

// MQTT-3.2.2-18 (v5)
#[test]
fn client_sends_no_topic_alias_when_the_server_announced_none_v5() {
    let (now, mut client) = client(Protocol::V5);
    assert_eq!(aliases_sent(&mut client, now, &TOPICS), [None; 5]);
}

// MQTT-3.2.2-17 (v5)
#[test]
fn client_topic_aliases_stay_within_the_servers_maximum_v5() {
    let mut connack = ConnAck::default();
    connack.properties.topic_alias_maximum = Some(2);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    let aliases = aliases_sent(&mut client, now, &TOPICS);
    assert_eq!(aliases, [Some(1), Some(2), Some(1), None, Some(2)]);
}

// MQTT-3.3.2-12 (v5)
#[test]
fn server_accepts_every_topic_alias_up_to_the_maximum_it_announced_v5() {
    let mut connack = ConnAck::default();
    connack.properties.topic_alias_maximum = Some(10);
    let (now, mut server) = server_with(connect(Protocol::V5), connack, SessionState::new());
    for alias in 1..=10 {
        let mut set = message(&format!("t/{alias}"), QoS::AtMostOnce);
        set.properties.topic_alias = Some(alias);
        feed(&mut server, now, Packet::Publish(set)).unwrap();
    }
    for alias in (1..=10).rev() {
        // An empty topic with only the alias: decoded from raw bytes, as
        // the model has no way to build one.
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0x30, 6, 0, 0, 3, 0x23, 0, alias]);
        let packet = decode(&mut buf, Protocol::V5, u32::MAX).unwrap().unwrap();
        server.handle_packet(now, packet).unwrap();
    }
    let topics: Vec<_> = messages(&mut server)
        .iter()
        .map(|p| p.topic.to_string())
        .collect();
    let expected: Vec<_> = (1..=10)
        .chain((1..=10).rev())
        .map(|n| format!("t/{n}"))
        .collect();
    assert_eq!(topics, expected);
}

// --- PUBLISH -------------------------------------------------------------

// MQTT-3.3.1-3: a message received with DUP and published onward goes out
// as a first transmission.
#[test]
fn dup_of_a_forwarded_message_is_not_propagated() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        let mut incoming = with_id(message("t", QoS::AtLeastOnce), 5);
        incoming.dup = true;
        feed(&mut server, now, Packet::Publish(incoming)).unwrap();
        let received = messages(&mut server).pop().unwrap();
        assert!(received.dup, "{v}");
        server.publish(received).unwrap();
        let out = sent(&mut server, now);
        assert!(!publishes(&out)[0].dup, "{v}");
    }
}

// MQTT-3.3.4-1: QoS 0 gets no answer, QoS 1 a PUBACK, QoS 2 a PUBREC.
#[test]
fn receiver_answers_publish_as_its_qos_requires() {
    for v in VERSIONS {
        for (qos, answer) in [
            (QoS::AtMostOnce, None),
            (QoS::AtLeastOnce, Some("PUBACK")),
            (QoS::ExactlyOnce, Some("PUBREC")),
        ] {
            let (now, mut server) = server(v);
            let mut p = message("t", qos);
            if qos != QoS::AtMostOnce {
                p.packet_id = Some(id(3));
            }
            feed(&mut server, now, Packet::Publish(p)).unwrap();
            if let Some(received) = messages(&mut server).pop().unwrap().packet_id {
                server.ack(received, ReasonCode::SUCCESS).unwrap();
            }
            let kinds: Vec<_> = sent(&mut server, now)
                .iter()
                .map(|p| p.packet_type().name())
                .collect();
            assert_eq!(kinds, answer.into_iter().collect::<Vec<_>>(), "{v} {qos:?}");
        }
    }
}

// MQTT-3.3.4-9 (v5)
// MQTT-4.9.0-2 (v5)
#[test]
fn server_stops_sending_qos1_and_qos2_at_the_clients_receive_maximum_v5() {
    let mut c = connect(Protocol::V5);
    c.properties.receive_maximum = Some(2);
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let first = server
        .publish(message("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    server.publish(message("t", QoS::ExactlyOnce)).unwrap();
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let err = server.publish(message("t", qos)).unwrap_err();
        assert_eq!(err, Error::Misuse(Misuse::InflightFull));
    }
    assert_eq!(publishes(&sent(&mut server, now)).len(), 2);
    // A PUBACK gives one back.
    feed(&mut server, now, Packet::PubAck(Ack::new(first))).unwrap();
    assert!(server.publish(message("t", QoS::AtLeastOnce)).is_ok());
}

// MQTT-4.9.0-1 (v5)
#[test]
fn initial_send_quota_is_non_zero_and_within_the_peers_receive_maximum_v5() {
    for (announced, quota) in [(None, 1024), (Some(1), 1), (Some(7), 7)] {
        let mut connack = ConnAck::default();
        connack.properties.receive_maximum = announced;
        let (_, client) = client_with(connect(Protocol::V5), connack);
        assert_eq!(client.send_quota(), quota, "{announced:?}");
    }
}

/// A client whose one-message send quota is used up.
fn client_with_no_quota() -> (Instant, Connection) {
    let mut connack = ConnAck::default();
    connack.properties.receive_maximum = Some(1);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    client.publish(message("t", QoS::AtLeastOnce)).unwrap();
    let _ = sent(&mut client, now);
    assert_eq!(client.send_quota(), 0);
    (now, client)
}

// MQTT-3.3.4-8 (v5)
#[test]
fn client_does_not_hold_back_other_packets_when_its_quota_is_used_up_v5() {
    let (now, mut client) = client_with_no_quota();
    let sub = client.allocate_packet_id().unwrap();
    client
        .send(Packet::Subscribe(subscribe(sub.get())))
        .unwrap();
    client.publish(message("t", QoS::AtMostOnce)).unwrap();
    let incoming = with_id(message("t", QoS::AtLeastOnce), 9);
    feed(&mut client, now, Packet::Publish(incoming)).unwrap();
    client.ack(id(9), ReasonCode::SUCCESS).unwrap();
    let kinds: Vec<_> = sent(&mut client, now)
        .iter()
        .map(|p| p.packet_type().name())
        .collect();
    assert_eq!(kinds, ["SUBSCRIBE", "PUBLISH", "PUBACK"]);
}

// MQTT-4.9.0-3 (v5)
#[test]
fn packets_are_still_processed_and_answered_when_the_quota_is_zero_v5() {
    let (now, mut client) = client_with_no_quota();
    let incoming = with_id(message("t", QoS::ExactlyOnce), 4);
    feed(&mut client, now, Packet::Publish(incoming)).unwrap();
    assert_eq!(messages(&mut client).len(), 1);
    client.ack(id(4), ReasonCode::SUCCESS).unwrap();
    feed(&mut client, now, Packet::PubRel(Ack::new(id(4)))).unwrap();
    let kinds: Vec<_> = sent(&mut client, now)
        .iter()
        .map(|p| p.packet_type().name())
        .collect();
    assert_eq!(kinds, ["PUBREC", "PUBCOMP"]);
}

// MQTT-3.3.4-10 (v5)
#[test]
fn server_does_not_hold_back_other_packets_when_its_quota_is_used_up_v5() {
    let mut c = connect(Protocol::V5);
    c.properties.receive_maximum = Some(1);
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    server.publish(message("t", QoS::AtLeastOnce)).unwrap();
    let _ = sent(&mut server, now);
    assert_eq!(server.send_quota(), 0);
    feed(&mut server, now, Packet::Subscribe(subscribe(3))).unwrap();
    let suback = SubAck {
        packet_id: id(3),
        properties: Properties::default(),
        reason_codes: vec![ReasonCode::GRANTED_QOS_0],
    };
    server.send(Packet::SubAck(suback)).unwrap();
    feed(&mut server, now, Packet::PingReq).unwrap();
    let incoming = with_id(message("t", QoS::AtLeastOnce), 8);
    feed(&mut server, now, Packet::Publish(incoming)).unwrap();
    server.ack(id(8), ReasonCode::SUCCESS).unwrap();
    let kinds: Vec<_> = sent(&mut server, now)
        .iter()
        .map(|p| p.packet_type().name())
        .collect();
    assert_eq!(kinds, ["SUBACK", "PINGRESP", "PUBACK"]);
}

// --- QoS 1 and QoS 2 -----------------------------------------------------

// MQTT-4.3.2-3 (v5)
// MQTT-4.3.2-1 (v311)
#[test]
fn qos1_publish_stays_unacknowledged_until_its_puback() {
    for v in VERSIONS {
        let (now, mut client) = client(v);
        let p = client
            .publish(message("t", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
        let out = sent(&mut client, now);
        let wired = publishes(&out)[0];
        assert_eq!(
            (wired.packet_id, wired.qos, wired.dup),
            (Some(p), QoS::AtLeastOnce, false)
        );
        feed(&mut client, now, Packet::PubAck(Ack::new(p.next()))).unwrap();
        assert_eq!(client.session().outbound_len(), 1, "{v}: other PUBACK");
        feed(&mut client, now, Packet::PubAck(Ack::new(p))).unwrap();
        assert!(client.session().is_empty(), "{v}");
        let delivered = events(&mut client);
        assert!(matches!(delivered[..], [Event::Delivered { packet_id, .. }] if packet_id == p));
    }
}

// MQTT-4.3.2-4 (v5)
#[test]
fn receiver_sends_puback_with_the_identifier_once_it_owns_the_message_v5() {
    let (now, mut server) = server(Protocol::V5);
    feed(
        &mut server,
        now,
        Packet::Publish(with_id(message("t", QoS::AtLeastOnce), 12)),
    )
    .unwrap();
    assert_eq!(
        sent(&mut server, now),
        [],
        "nothing before the application acks"
    );
    server.ack(id(12), ReasonCode::SUCCESS).unwrap();
    assert_eq!(sent(&mut server, now), [Packet::PubAck(Ack::new(id(12)))]);
}

// MQTT-4.3.2-5 (v5)
// MQTT-4.3.2-2 (v311)
#[test]
fn publish_reusing_an_acknowledged_qos1_identifier_is_a_new_message() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        let first = with_id(message("t", QoS::AtLeastOnce), 3);
        feed(&mut server, now, Packet::Publish(first.clone())).unwrap();
        server.ack(id(3), ReasonCode::SUCCESS).unwrap();
        let mut again = first;
        again.dup = true;
        feed(&mut server, now, Packet::Publish(again)).unwrap();
        assert_eq!(messages(&mut server).len(), 2, "{v}");
        server.ack(id(3), ReasonCode::SUCCESS).unwrap();
        let pubacks = sent(&mut server, now);
        assert_eq!(
            pubacks,
            [
                Packet::PubAck(Ack::new(id(3))),
                Packet::PubAck(Ack::new(id(3)))
            ]
        );
    }
}

// MQTT-4.3.3-2 (v5)
#[test]
fn qos2_publish_goes_out_with_its_identifier_and_dup_0_v5() {
    let (now, mut client) = client(Protocol::V5);
    let mut p = message("t", QoS::ExactlyOnce);
    p.dup = true;
    let assigned = client.publish(p).unwrap().unwrap();
    let out = sent(&mut client, now);
    let wired = publishes(&out)[0];
    assert_eq!(
        (wired.packet_id, wired.qos, wired.dup),
        (Some(assigned), QoS::ExactlyOnce, false)
    );
}

// MQTT-4.3.3-3 (v5)
// MQTT-4.3.3-1 (v311)
#[test]
fn qos2_publish_stays_unacknowledged_until_its_pubrec() {
    for v in VERSIONS {
        let (now, mut client) = client(v);
        let p = client
            .publish(message("t", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
        let _ = sent(&mut client, now);
        feed(&mut client, now, Packet::PubComp(Ack::new(p.next()))).unwrap();
        let held = client.session().outbound().next().cloned();
        assert!(
            matches!(held, Some(pigeon_proto::flow::Outbound::AwaitPubRec(_))),
            "{v}"
        );
        feed(&mut client, now, Packet::PubRec(Ack::new(p))).unwrap();
        let held = client.session().outbound().next().cloned();
        assert_eq!(
            held,
            Some(pigeon_proto::flow::Outbound::AwaitPubComp(p)),
            "{v}"
        );
    }
}

// MQTT-4.3.3-4 (v5)
#[test]
fn pubrec_is_answered_with_pubrel_carrying_the_same_identifier_v5() {
    let (now, mut client) = client(Protocol::V5);
    let p = client
        .publish(message("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut client, now);
    feed(&mut client, now, Packet::PubRec(Ack::new(p))).unwrap();
    assert_eq!(sent(&mut client, now), [Packet::PubRel(Ack::new(p))]);
}

/// A server session whose one QoS 2 message got its PUBREC and PUBREL
/// but no PUBCOMP before the connection dropped.
fn session_awaiting_pubcomp(v: Protocol) -> (PacketId, SessionState) {
    let mut c = connect(v);
    c.clean_start = false;
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let p = server
        .publish(message("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    feed(&mut server, now, Packet::PubRec(Ack::new(p))).unwrap();
    let _ = sent(&mut server, now);
    (p, server.into_session())
}

// MQTT-4.3.3-5 (v5)
#[test]
fn pubrel_stays_unacknowledged_until_pubcomp_and_is_resent_on_resume_v5() {
    let (p, session) = session_awaiting_pubcomp(Protocol::V5);
    let (now, mut server) = resume_server(Protocol::V5, session);
    let out = sent(&mut server, now);
    assert_eq!(out[1..], [Packet::PubRel(Ack::new(p))]);
    feed(&mut server, now, Packet::PubComp(Ack::new(p))).unwrap();
    assert!(server.session().is_empty());
}

// MQTT-4.3.3-6 (v5)
#[test]
fn publish_is_not_resent_once_its_pubrel_was_sent_v5() {
    let (_, session) = session_awaiting_pubcomp(Protocol::V5);
    let (now, mut server) = resume_server(Protocol::V5, session);
    assert!(publishes(&sent(&mut server, now)).is_empty());
}

// MQTT-4.3.3-7 (v5): a sent QoS 2 message is resent on resume even after
// its Message Expiry Interval has passed.
#[test]
fn sent_qos2_message_does_not_expire_v5() {
    let mut c = connect(Protocol::V5);
    c.clean_start = false;
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let mut p = message("t", QoS::ExactlyOnce);
    p.properties.message_expiry_interval = Some(1);
    let sent_id = server.publish(p).unwrap().unwrap();
    let _ = sent(&mut server, now);
    let (now, mut server) = resume_server(Protocol::V5, server.into_session());
    let later = now + Duration::from_secs(60);
    let out = sent(&mut server, later);
    let resent = publishes(&out);
    assert_eq!(resent.len(), 1);
    assert_eq!((resent[0].packet_id, resent[0].dup), (Some(sent_id), true));
}

// MQTT-4.3.3-8 (v5)
// MQTT-4.3.3-2 (v311)
#[test]
fn receiver_sends_pubrec_with_the_identifier_once_it_owns_the_message() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        feed(
            &mut server,
            now,
            Packet::Publish(with_id(message("t", QoS::ExactlyOnce), 6)),
        )
        .unwrap();
        assert_eq!(
            sent(&mut server, now),
            [],
            "{v}: nothing before the application acks"
        );
        server.ack(id(6), ReasonCode::SUCCESS).unwrap();
        assert_eq!(
            sent(&mut server, now),
            [Packet::PubRec(Ack::new(id(6)))],
            "{v}"
        );
    }
}

// MQTT-4.3.3-9 (v5)
#[test]
fn after_an_error_pubrec_the_same_identifier_is_a_new_message_v5() {
    let (now, mut server) = server(Protocol::V5);
    let p = with_id(message("t", QoS::ExactlyOnce), 6);
    feed(&mut server, now, Packet::Publish(p.clone())).unwrap();
    server.ack(id(6), ReasonCode::QUOTA_EXCEEDED).unwrap();
    feed(&mut server, now, Packet::Publish(p)).unwrap();
    assert_eq!(messages(&mut server).len(), 2);
    let out = sent(&mut server, now);
    assert_eq!(
        out,
        [Packet::PubRec(Ack::with_code(
            id(6),
            ReasonCode::QUOTA_EXCEEDED
        ))]
    );
}

// MQTT-4.3.3-11 (v5)
#[test]
fn pubrel_is_answered_with_pubcomp_carrying_the_same_identifier_v5() {
    let (now, mut server) = server(Protocol::V5);
    feed(
        &mut server,
        now,
        Packet::Publish(with_id(message("t", QoS::ExactlyOnce), 6)),
    )
    .unwrap();
    server.ack(id(6), ReasonCode::SUCCESS).unwrap();
    let _ = sent(&mut server, now);
    feed(&mut server, now, Packet::PubRel(Ack::new(id(6)))).unwrap();
    assert_eq!(sent(&mut server, now), [Packet::PubComp(Ack::new(id(6)))]);
}

// MQTT-4.3.3-12 (v5)
#[test]
fn after_pubcomp_the_same_identifier_is_a_new_message_v5() {
    let (now, mut server) = server(Protocol::V5);
    let p = with_id(message("t", QoS::ExactlyOnce), 6);
    feed(&mut server, now, Packet::Publish(p.clone())).unwrap();
    server.ack(id(6), ReasonCode::SUCCESS).unwrap();
    feed(&mut server, now, Packet::PubRel(Ack::new(id(6)))).unwrap();
    feed(&mut server, now, Packet::Publish(p)).unwrap();
    assert_eq!(messages(&mut server).len(), 2);
}

// MQTT-4.4.0-2 (v5)
#[test]
fn publish_answered_with_an_error_code_is_not_retransmitted_v5() {
    let mut c = connect(Protocol::V5);
    c.clean_start = false;
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let a = server
        .publish(message("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let b = server
        .publish(message("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut server, now);
    feed(
        &mut server,
        now,
        Packet::PubAck(Ack::with_code(a, ReasonCode::QUOTA_EXCEEDED)),
    )
    .unwrap();
    feed(
        &mut server,
        now,
        Packet::PubRec(Ack::with_code(b, ReasonCode::QUOTA_EXCEEDED)),
    )
    .unwrap();
    assert_eq!(
        sent(&mut server, now),
        [],
        "no PUBREL after an error PUBREC"
    );
    let (now, mut server) = resume_server(Protocol::V5, server.into_session());
    let out = sent(&mut server, now);
    assert!(matches!(&out[..], [Packet::ConnAck(_)]), "{out:?}");
}

// MQTT-4.6.0-4
#[test]
fn pubrels_follow_the_order_of_the_pubrecs() {
    for v in VERSIONS {
        let (now, mut client) = client(v);
        let ids: Vec<_> = (0..3)
            .map(|_| {
                client
                    .publish(message("t", QoS::ExactlyOnce))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        let _ = sent(&mut client, now);
        for &p in [ids[2], ids[0], ids[1]].iter() {
            feed(&mut client, now, Packet::PubRec(Ack::new(p))).unwrap();
        }
        let order = sent(&mut client, now);
        let expected = [ids[2], ids[0], ids[1]].map(|p| Packet::PubRel(Ack::new(p)));
        assert_eq!(order, expected, "{v}");
    }
}

// MQTT-4.6.0-1 (v311)
// MQTT-2.3.1-3 (v311)
#[test]
fn resent_publishes_keep_their_order_and_identifiers_v311() {
    let mut c = connect(Protocol::V3_1_1);
    c.clean_start = false;
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce];
    let ids: Vec<_> = qos
        .iter()
        .map(|&q| server.publish(message("t", q)).unwrap().unwrap())
        .collect();
    let _ = sent(&mut server, now);
    let (now, mut server) = resume_server(Protocol::V3_1_1, server.into_session());
    let out = sent(&mut server, now);
    let resent: Vec<_> = publishes(&out)
        .iter()
        .map(|p| (p.packet_id.unwrap(), p.dup))
        .collect();
    assert_eq!(resent, ids.iter().map(|&p| (p, true)).collect::<Vec<_>>());
}

// --- DISCONNECT and errors -----------------------------------------------

// MQTT-3.14.4-1 (v5)
// MQTT-3.14.4-2 (v311)
#[test]
fn nothing_is_sent_after_disconnect() {
    for v in VERSIONS {
        let (now, mut client) = client(v);
        feed(
            &mut client,
            now,
            Packet::Publish(with_id(message("t", QoS::AtLeastOnce), 2)),
        )
        .unwrap();
        client.disconnect(ReasonCode::NORMAL_DISCONNECTION, Properties::default());
        assert!(client.publish(message("t", QoS::AtMostOnce)).is_err());
        assert!(client.send(Packet::Subscribe(subscribe(5))).is_err());
        client.ack(id(2), ReasonCode::SUCCESS).unwrap();
        assert_eq!(client.poll_timeout(), None, "{v}: no PINGREQ to come");
        let out = sent(&mut client, now);
        assert!(matches!(&out[..], [Packet::Disconnect(_)]), "{v}: {out:?}");
    }
}

// MQTT-3.14.4-2 (v5)
// MQTT-3.14.4-1 (v311)
#[test]
fn connection_is_closed_after_sending_disconnect() {
    for v in VERSIONS {
        let (_, mut client) = client(v);
        client.disconnect(ReasonCode::NORMAL_DISCONNECTION, Properties::default());
        assert!(client.is_closed(), "{v}");
    }
}

// MQTT-4.13.1-1 (v5)
// MQTT-4.8.0-1 (v311)
#[test]
fn protocol_violation_closes_the_connection() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        let err = feed(&mut server, now, Packet::PingResp).unwrap_err();
        assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
        assert!(server.is_closed(), "{v}");
        let (now, mut client) = client(v);
        let err = feed(&mut client, now, Packet::Subscribe(subscribe(1))).unwrap_err();
        assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
        assert!(client.is_closed(), "{v}");
        let out = sent(&mut client, now);
        match v {
            Protocol::V5 => assert!(
                matches!(&out[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::PROTOCOL_ERROR)
            ),
            _ => assert_eq!(out, [], "{v}: closed without a packet"),
        }
    }
}

// MQTT-3.14.0-1 (v5)
#[test]
fn server_sends_no_disconnect_before_its_connack_v5() {
    let now = Instant::now();
    let mut server = pending_server(now, connect(Protocol::V5));
    server.disconnect(ReasonCode::UNSPECIFIED_ERROR, Properties::default());
    assert_eq!(sent(&mut server, now), []);
    let mut server = pending_server(now, connect(Protocol::V5));
    server.handle_decode_error(&Malformed::Truncated("test").into());
    assert!(server.is_closed());
    assert_eq!(sent(&mut server, now), []);
}

// MQTT-3.2.0-1
#[test]
fn server_cannot_send_suback_before_its_connack() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        feed(&mut server, now, Packet::Subscribe(subscribe(1))).unwrap();
        let err = server.send(Packet::SubAck(suback(1))).unwrap_err();
        assert!(matches!(err, Misuse::InvalidState(_)), "{v}");
        assert_eq!(sent(&mut server, now), [], "{v}");
    }
}

// --- Enhanced authentication ---------------------------------------------

fn auth(method: Option<&str>) -> Packet {
    let mut a = Disconnect::new(ReasonCode::CONTINUE_AUTHENTICATION);
    a.properties.authentication_method = method.map(|m| m.try_into().unwrap());
    Packet::Auth(a)
}

fn connect_with_auth(method: &str) -> Connect {
    let mut c = connect(Protocol::V5);
    c.properties.authentication_method = Some(method.try_into().unwrap());
    c
}

// MQTT-3.1.2-30 (v5)
#[test]
fn client_doing_enhanced_authentication_sends_only_auth_before_connack_v5() {
    let now = Instant::now();
    let c = connect_with_auth("SCRAM-SHA-1");
    let mut client = Connection::client(now, Config::default(), c, SessionState::new());
    let err = client.send(Packet::Subscribe(subscribe(1))).unwrap_err();
    assert!(matches!(err, Misuse::InvalidState(_)));
    client.send(auth(Some("SCRAM-SHA-1"))).unwrap();
    let kinds: Vec<_> = sent(&mut client, now)
        .iter()
        .map(|p| p.packet_type().name())
        .collect();
    assert_eq!(kinds, ["CONNECT", "AUTH"]);
}

// MQTT-4.12.0-5 (v5)
#[test]
fn auth_and_connack_carry_the_connects_authentication_method_v5() {
    let now = Instant::now();
    let mut server = pending_server(now, connect_with_auth("SCRAM-SHA-1"));
    assert!(server.send(auth(Some("GS2-KRB5"))).is_err());
    assert!(server.send(auth(None)).is_err());
    server.send(auth(Some("SCRAM-SHA-1"))).unwrap();
    let bare = server.accept(now, ConnAck::default(), SessionState::new());
    assert!(matches!(bare, Err(Error::Misuse(_))));
    let mut connack = ConnAck::default();
    connack.properties.authentication_method = Some("SCRAM-SHA-1".try_into().unwrap());
    server.accept(now, connack, SessionState::new()).unwrap();
    let out = sent(&mut server, now);
    assert!(
        matches!(&out[..], [Packet::Auth(_), Packet::ConnAck(_)]),
        "{out:?}"
    );
}

// MQTT-4.12.0-6 (v5)
#[test]
fn server_sends_no_auth_or_method_to_a_client_that_named_none_v5() {
    let now = Instant::now();
    let mut server = pending_server(now, connect(Protocol::V5));
    assert!(server.send(auth(Some("SCRAM-SHA-1"))).is_err());
    let mut connack = ConnAck::default();
    connack.properties.authentication_method = Some("SCRAM-SHA-1".try_into().unwrap());
    assert!(server.accept(now, connack, SessionState::new()).is_err());
    assert_eq!(sent(&mut server, now), []);
}

// MQTT-4.12.0-7 (v5)
#[test]
fn client_that_named_no_authentication_method_sends_no_auth_v5() {
    let (now, mut client) = client(Protocol::V5);
    assert!(client.send(auth(Some("SCRAM-SHA-1"))).is_err());
    assert!(client.send(auth(None)).is_err());
    assert_eq!(sent(&mut client, now), []);
}

// MQTT-4.12.1-1 (v5)
#[test]
fn reauthentication_names_the_original_authentication_method_v5() {
    let mut connack = ConnAck::default();
    connack.properties.authentication_method = Some("SCRAM-SHA-1".try_into().unwrap());
    let (now, mut client) = client_with(connect_with_auth("SCRAM-SHA-1"), connack);
    let mut other = Disconnect::new(ReasonCode::RE_AUTHENTICATE);
    other.properties.authentication_method = Some("GS2-KRB5".try_into().unwrap());
    assert!(client.send(Packet::Auth(other.clone())).is_err());
    other.properties.authentication_method = Some("SCRAM-SHA-1".try_into().unwrap());
    client.send(Packet::Auth(other)).unwrap();
    assert!(matches!(&sent(&mut client, now)[..], [Packet::Auth(_)]));
}

// --- Reason String and User Properties -----------------------------------

fn suback(n: u16) -> SubAck {
    SubAck {
        packet_id: id(n),
        properties: Properties::default(),
        reason_codes: vec![ReasonCode::GRANTED_QOS_0],
    }
}

/// Properties with a Reason String and a User Property of about 60 bytes.
fn chatty() -> Properties {
    let mut p = Properties::default();
    p.reason_string = Some("x".repeat(30).as_str().try_into().unwrap());
    p.user_properties.push((
        "k".try_into().unwrap(),
        "v".repeat(20).as_str().try_into().unwrap(),
    ));
    p
}

/// A v5 server whose client announced a Maximum Packet Size of `max` and
/// has a SUBSCRIBE 1 and an UNSUBSCRIBE 2 awaiting answers.
fn server_for_small_client(max: u32) -> (Instant, Connection) {
    let mut c = connect(Protocol::V5);
    c.properties.maximum_packet_size = Some(max);
    server_with(c, ConnAck::default(), SessionState::new())
}

/// The Reason String and User Properties of `packet`, as received.
fn diagnostics_of(packet: &Packet) -> (bool, usize) {
    let p = packet.properties().unwrap();
    (p.reason_string.is_some(), p.user_properties.len())
}

// MQTT-3.2.2-19 (v5)
// MQTT-3.2.2-20 (v5)
#[test]
fn connack_leaves_out_diagnostics_that_would_exceed_the_clients_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let now = Instant::now();
        let mut c = connect(Protocol::V5);
        c.properties.maximum_packet_size = Some(max);
        let mut server = pending_server(now, c);
        let connack = ConnAck {
            properties: chatty(),
            ..ConnAck::default()
        };
        server.accept(now, connack, SessionState::new()).unwrap();
        let out = sent(&mut server, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
        assert!(out[0].encoded_len(Protocol::V5) <= max as usize);
    }
}

// MQTT-3.9.2-1 (v5)
// MQTT-3.9.2-2 (v5)
#[test]
fn suback_leaves_out_diagnostics_that_would_exceed_the_clients_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let (now, mut server) = server_for_small_client(max);
        let mut answer = suback(1);
        answer.properties = chatty();
        server.send(Packet::SubAck(answer)).unwrap();
        let out = sent(&mut server, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
    }
}

// MQTT-3.11.2-1 (v5)
// MQTT-3.11.2-2 (v5)
#[test]
fn unsuback_leaves_out_diagnostics_that_would_exceed_the_clients_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let (now, mut server) = server_for_small_client(max);
        let mut answer = suback(2);
        answer.properties = chatty();
        server.send(Packet::UnsubAck(answer)).unwrap();
        let out = sent(&mut server, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
    }
}

// MQTT-3.14.2-3 (v5)
// MQTT-3.14.2-4 (v5)
#[test]
fn disconnect_leaves_out_diagnostics_that_would_exceed_the_peers_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let (now, mut server) = server_for_small_client(max);
        server.disconnect(ReasonCode::SERVER_SHUTTING_DOWN, chatty());
        let out = sent(&mut server, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
    }
}

// MQTT-3.15.2-2 (v5)
// MQTT-3.15.2-3 (v5)
#[test]
fn auth_leaves_out_diagnostics_that_would_exceed_the_peers_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let mut connack = ConnAck::default();
        connack.properties.maximum_packet_size = Some(max);
        connack.properties.authentication_method = Some("M".try_into().unwrap());
        let (now, mut client) = client_with(connect_with_auth("M"), connack);
        let Packet::Auth(mut reauth) = auth(Some("M")) else {
            unreachable!()
        };
        reauth.properties.reason_string = chatty().reason_string;
        reauth.properties.user_properties = chatty().user_properties;
        client.send(Packet::Auth(reauth)).unwrap();
        let out = sent(&mut client, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
    }
}

// MQTT-3.2.2-15 (v5)
#[test]
fn client_does_not_send_a_subscribe_over_the_servers_maximum_packet_size_v5() {
    let mut connack = ConnAck::default();
    connack.properties.maximum_packet_size = Some(16);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    let mut big = subscribe(1);
    big.filters[0].filter = "a/very/long/topic/filter/#".try_into().unwrap();
    let err = client.send(Packet::Subscribe(big)).unwrap_err();
    assert!(matches!(err, Misuse::ExceedsPeerMaximum { max: 16, .. }));
    assert_eq!(sent(&mut client, now), []);
}

// MQTT-3.1.2-29 (v5)
#[test]
fn without_problem_information_the_server_keeps_diagnostics_to_connack_disconnect_and_publish_v5() {
    let mut c = connect(Protocol::V5);
    c.properties.request_problem_information = Some(false);
    let now = Instant::now();
    let mut server = pending_server(now, c);
    let connack = ConnAck {
        properties: chatty(),
        ..ConnAck::default()
    };
    server.accept(now, connack, SessionState::new()).unwrap();
    let mut answer = suback(1);
    answer.properties = chatty();
    server.send(Packet::SubAck(answer)).unwrap();
    let mut p = message("t", QoS::AtMostOnce);
    p.properties.user_properties = chatty().user_properties;
    server.publish(p).unwrap();
    server.disconnect(ReasonCode::SERVER_SHUTTING_DOWN, chatty());
    let out = sent(&mut server, now);
    let seen: Vec<_> = out.iter().map(diagnostics_of).collect();
    assert_eq!(seen, [(true, 1), (false, 0), (false, 1), (true, 1)]);
}

// MQTT-4.6.0-2: PUBACK in the order the QoS 1 PUBLISH packets were received.
// MQTT-4.6.0-3: PUBREC in the order the QoS 2 PUBLISH packets were received.
#[test]
fn acknowledgements_leave_in_arrival_order_whatever_order_the_application_acks_in() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce];
        for (n, q) in (1..).zip(qos) {
            feed(
                &mut server,
                now,
                Packet::Publish(with_id(message("t", q), n)),
            )
            .unwrap();
        }
        assert_eq!(messages(&mut server).len(), 3);
        server.ack(id(3), ReasonCode::SUCCESS).unwrap();
        server.ack(id(2), ReasonCode::SUCCESS).unwrap();
        assert!(
            sent(&mut server, now).is_empty(),
            "{v}: held until #1 is acked"
        );
        server.ack(id(1), ReasonCode::SUCCESS).unwrap();
        let order: Vec<_> = sent(&mut server, now)
            .iter()
            .map(|p| match p {
                Packet::PubAck(a) => ("PUBACK", a.packet_id.get()),
                Packet::PubRec(a) => ("PUBREC", a.packet_id.get()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(order, [("PUBACK", 1), ("PUBREC", 2), ("PUBACK", 3)], "{v}");
    }
}
