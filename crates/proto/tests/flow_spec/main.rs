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
        properties: Default::default(),
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

fn suback(n: u16) -> SubAck {
    SubAck {
        packet_id: id(n),
        properties: Default::default(),
        reason_codes: vec![ReasonCode::GRANTED_QOS_0],
    }
}

mod aliases;
mod auth;
mod basics;
mod connect;
mod diagnostics;
mod disconnect;
mod publish;
mod qos;
