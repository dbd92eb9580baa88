//! Drives a server-side and a client-side `flow::Connection` with arbitrary
//! packet sequences, clock jumps and application calls. Nothing may panic,
//! and the state machine's promises must hold whatever the peer sends.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pigeon_proto::codec::{ConnAck, Connect, Publish};
use pigeon_proto::flow::{Config, Connection, Event, SessionState};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, Protocol, QoS, ReasonCode};

/// Input: a first byte choosing the role and version, then commands.
/// Command byte `c`: below 0xA0 feeds the next `c + 1` bytes to the
/// decoder; above, by high nibble: 0xA advance the clock, 0xB publish,
/// 0xC ack the oldest pending message, 0xD accept a pending CONNECT,
/// 0xE and 0xF disconnect.
fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut clock = now;
    let protocol = [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5][usize::from(first % 3)];
    let mut conn = if first & 0x80 == 0 {
        Connection::server(now, Config::default())
    } else {
        let connect = Connect::new(protocol, "fuzz".try_into().expect("valid id"));
        Connection::client(now, Config::default(), connect, SessionState::new())
    };
    let mut buf = BytesMut::new();
    let mut pending = Vec::new();
    while let Some((&cmd, tail)) = rest.split_first() {
        rest = tail;
        match cmd >> 4 {
            0..=9 => {
                let n = usize::from(cmd) + 1;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                buf.extend_from_slice(chunk);
                feed(&mut conn, &mut buf, clock);
            }
            10 => {
                clock += Duration::from_secs(u64::from(cmd & 0x0F) * 7);
                let _ = conn.handle_timeout(clock);
            }
            11 => {
                let mut p = Publish::new(TopicName::try_from("t").expect("valid"), &b"x"[..]);
                p.qos = QoS::from_u8(cmd % 3).unwrap_or_default();
                let _ = conn.publish(p);
            }
            12 => {
                if !pending.is_empty() {
                    let _ = conn.ack(pending.remove(0), ReasonCode::SUCCESS);
                }
            }
            13 => {
                let connack = ConnAck {
                    session_present: cmd & 1 == 1,
                    ..ConnAck::default()
                };
                let _ = conn.accept(clock, connack, SessionState::new());
            }
            _ => conn.disconnect(ReasonCode::SUCCESS, Default::default()),
        }
        drain(&mut conn, clock, &mut pending);
    }
});

fn feed(conn: &mut Connection, buf: &mut BytesMut, now: Instant) {
    loop {
        match decode(buf, conn.protocol(), conn.max_incoming_packet_size()) {
            Ok(Some(packet)) => {
                if conn.handle_packet(now, packet).is_err() {
                    assert!(conn.is_closed(), "a peer fault closes the connection");
                }
            }
            Ok(None) => return,
            Err(e) => {
                conn.handle_decode_error(&e);
                buf.clear();
                return;
            }
        }
    }
}

fn drain(conn: &mut Connection, now: Instant, pending: &mut Vec<pigeon_proto::PacketId>) {
    while let Some(packet) = conn.poll_transmit(now) {
        let mut out = BytesMut::new();
        // Whatever the state machine sends must be encodable.
        packet
            .encode(conn.protocol(), &mut out)
            .expect("flow emits encodable packets");
    }
    while let Some(event) = conn.poll_event() {
        if let Event::Message(p) = event {
            assert!(!p.topic.is_empty(), "aliases are resolved before delivery");
            if let Some(id) = p.packet_id {
                pending.push(id);
            }
        }
    }
}
