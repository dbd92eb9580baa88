//! PUBLISH and flow control.

use super::*;

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
        properties: Default::default(),
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
