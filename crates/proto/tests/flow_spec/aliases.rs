//! Topic aliases.

use super::*;

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
