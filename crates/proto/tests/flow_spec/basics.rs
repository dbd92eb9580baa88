//! Packet identifiers and keep-alive.

use super::*;

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
